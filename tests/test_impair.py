"""The impairment relay does what it says: the losses, reorderings and delays it
counts are the ones a receiver sees (tests/impair.py)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.impair import Impairment, Profile

#: Datagrams per direction: enough for the rates to show, a fraction of a second.
COUNT = 4000


def _blast(sock: socket.socket, dest: tuple[str, int], count: int) -> None:
    for i in range(count):
        sock.sendto(struct.pack("!Id", i, time.monotonic()), dest)
        if i % 200 == 199:
            time.sleep(0.005)  # keep the receive buffers from overflowing


class Collector(threading.Thread):
    """Reads (index, seconds in flight) of every datagram as it arrives, until
    *quiet* seconds pass without one."""

    def __init__(self, sock: socket.socket, quiet: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.quiet = quiet
        self.got: list[tuple[int, float]] = []
        self.start()

    def run(self) -> None:
        self.sock.settimeout(self.quiet)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(64)
            except TimeoutError:
                return
            index, sent = struct.unpack("!Id", data)
            self.got.append((index, time.monotonic() - sent))


@pytest.mark.parametrize("seed", [16, 4475])
def test_it_drops_reorders_and_delays_as_it_counts(seed: int) -> None:
    profile = Profile(loss=0.05, reorder=0.10, delay=0.100)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    try:
        with Impairment(profile, seed=seed) as net:
            link = net.link(target=server.getsockname())
            collector = Collector(server)
            _blast(peer, link.front_address, COUNT)
            collector.join(40)
            arrived = collector.got
            out, _ = link.stats
    finally:
        server.close()
        peer.close()
    # What it counted adds up, and is what the receiver saw.
    assert out.received == COUNT
    assert out.received == out.dropped + out.sent_at_once + out.delayed + out.overflow
    assert out.overflow == 0
    assert len(arrived) == out.forwarded == COUNT - out.dropped
    inversions = sum(
        1 for k in range(1, len(arrived)) if arrived[k][0] < max(a[0] for a in arrived[:k])
    )
    assert inversions == out.reordered
    # The rates are the profile's (binomial: 4 standard deviations).
    assert abs(out.dropped / COUNT - 0.05) < 4 * (0.05 * 0.95 / COUNT) ** 0.5
    kept = COUNT - out.dropped
    assert abs(out.sent_at_once / kept - 0.10) < 4 * (0.10 * 0.90 / kept) ** 0.5
    assert out.reordered > 0.5 * out.sent_at_once
    # Delayed datagrams took the delay (a little more on a busy machine), the others not.
    flights = sorted(flight for _, flight in arrived)
    assert flights[out.sent_at_once + 5] >= 0.095
    assert flights[out.sent_at_once // 2] < 0.05


def test_it_is_reproducible_and_counts_repeats() -> None:
    """Same seed, same decisions; a datagram sent twice is counted as a repeat."""

    def run() -> tuple[int, int, int, list[float]]:
        target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target.bind(("127.0.0.1", 0))
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        try:
            with Impairment(Profile(loss=0.2, reorder=0.3, delay=0.01), seed=7) as net:
                link = net.link(target=target.getsockname(), count_repeats=True)
                for i in range(300):
                    peer.sendto(b"msg %d" % (i % 100), link.front_address)
                time.sleep(0.2)
                out, _ = link.stats
                return out.dropped, out.sent_at_once, out.repeats, out.repeat_gaps
        finally:
            target.close()
            peer.close()

    first, second = run(), run()
    assert first[:3] == second[:3]
    assert first[2] == 200  # messages 0..99 were each sent three times
    assert all(gap >= 0 for gap in first[3])


def test_answers_go_back_to_the_peer_impaired_too() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    server.settimeout(2)
    try:
        with Impairment(Profile(loss=0.0, reorder=0.0, delay=0.05), seed=1) as net:
            link = net.link(target=server.getsockname())
            started = time.monotonic()
            peer.sendto(b"ping", link.front_address)
            data, source = server.recvfrom(100)
            assert (data, source) == (b"ping", link.back_address)
            server.sendto(b"pong", source)
            assert peer.recvfrom(100) == (b"pong", link.front_address)
            assert time.monotonic() - started >= 0.1
        assert [s.forwarded for s in link.stats] == [1, 1]  # the thread has stopped
    finally:
        server.close()
        peer.close()
