"""A userspace network impairment for UDP: loss, reordering and delay, reproducibly.

Linux's netem would do this in the kernel, but the machines the suite runs on have no
``sch_netem`` (``tc qdisc add dev lo root netem ...`` answers "Specified qdisc kind is
unknown") and cannot load modules.  So the tests put this relay between a peer and
the server instead: the peer talks to a :class:`Link`'s *front* socket, the link
talks to the target from its *back* socket, and every datagram either way is dropped
with probability ``loss``, sent at once with probability ``reorder`` (overtaking the
delayed ones: netem's ``reorder``), or else sent ``delay`` (+ up to ``jitter``)
seconds later.  Decisions come from a seeded RNG per link and direction, so a run is
reproducible; every decision is counted, and so are the datagrams that really left
out of order and the repeats of a datagram already seen (SIP retransmissions are
byte-identical).

One thread serves every link of an :class:`Impairment`; it is bounded in lifetime
(:data:`LIFETIME`) and in datagrams held (:data:`MAX_HELD`), and :meth:`Impairment.close`
stops it.  Only loopback addresses (and those of a namespace a test made) are used.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import selectors
import socket
import threading
import time

import attrs

__all__ = ("LIFETIME", "MAX_HELD", "DirectionStats", "Impairment", "Link", "Profile")

#: Most seconds an impairment thread runs.
LIFETIME = 900.0
#: Receive buffer asked for each relay socket, in bytes.
SOCKET_BUFFER = 4 * 1024 * 1024
#: Most datagrams held for later sending, across all links; past it they are dropped
#: (and counted as ``overflow``).
MAX_HELD = 20_000


@attrs.frozen
class Profile:
    """How a link mistreats datagrams (the issue's: 5 % loss, reordering, 100 ms).

    :ivar loss: probability a datagram is dropped.
    :ivar reorder: probability a datagram that is kept is sent at once.
    :ivar delay: seconds every other datagram waits; :ivar jitter: up to this many more.
    """

    loss: float = 0.05
    reorder: float = 0.10
    delay: float = 0.100
    jitter: float = 0.0


@attrs.define
class DirectionStats:
    """What one direction of a link did.

    :ivar reordered: datagrams that left before one that arrived earlier.
    :ivar repeats: datagrams byte-identical to one seen before (retransmissions).
    :ivar repeat_gaps: seconds between each repeat and the previous copy.
    """

    received: int = 0
    dropped: int = 0
    sent_at_once: int = 0
    delayed: int = 0
    forwarded: int = 0
    reordered: int = 0
    overflow: int = 0
    repeats: int = 0
    repeat_gaps: list[float] = attrs.Factory(list)


@attrs.define(eq=False)
class _Direction:
    rng: random.Random
    stats: DirectionStats = attrs.Factory(DirectionStats)
    arrivals: itertools.count[int] = attrs.Factory(itertools.count)
    highest_sent: int = -1
    last_seen: dict[bytes, float] = attrs.Factory(dict)


class Link:
    """One peer's path to one target, impaired both ways.

    :param target: where datagrams from the front go (settable later: RTP learns the
        server's port from its SDP).
    :param client: where datagrams from the target go; by default the last address
        that sent to the front.
    :param count_repeats: find retransmissions (keeps a digest per datagram).
    """

    def __init__(
        self,
        owner: Impairment,
        profile: Profile,
        seed: int,
        *,
        host: str,
        target: tuple[str, int] | None,
        client: tuple[str, int] | None,
        count_repeats: bool,
    ) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((host, 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((host, 0))
        for sock in (self.front, self.back):
            sock.setblocking(False)
            # A burst must wait in the socket, not be dropped by the kernel before
            # the relay counts it (the default buffer holds about 250 datagrams).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self.profile = profile
        self.target = target
        self.client = client
        self.count_repeats = count_repeats
        self.outbound = _Direction(random.Random(seed * 2))
        self.inbound = _Direction(random.Random(seed * 2 + 1))
        self._owner = owner

    @property
    def front_address(self) -> tuple[str, int]:
        """Where the peer sends (give this to it as the server's address)."""
        host, port = self.front.getsockname()
        return str(host), int(port)

    @property
    def back_address(self) -> tuple[str, int]:
        """Where the target sees the peer (give this as the peer's media address)."""
        host, port = self.back.getsockname()
        return str(host), int(port)

    @property
    def stats(self) -> tuple[DirectionStats, DirectionStats]:
        """(peer to target, target to peer)."""
        return self.outbound.stats, self.inbound.stats


class Impairment:
    """The thread that carries every :class:`Link`'s datagrams."""

    def __init__(self, profile: Profile = Profile(), seed: int = 16) -> None:
        self.profile = profile
        self.seed = seed
        self.links: list[Link] = []
        self._selector = selectors.DefaultSelector()
        self._held: list[
            tuple[float, int, socket.socket, bytes, tuple[str, int], _Direction, int]
        ] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="impairment", daemon=True)
        self._thread.start()

    def link(
        self,
        *,
        target: tuple[str, int] | None = None,
        client: tuple[str, int] | None = None,
        host: str = "127.0.0.1",
        count_repeats: bool = False,
        profile: Profile | None = None,
    ) -> Link:
        """A new link, served from now on."""
        with self._lock:
            link = Link(
                self,
                profile or self.profile,
                self.seed * 1000 + len(self.links),
                host=host,
                target=target,
                client=client,
                count_repeats=count_repeats,
            )
            self.links.append(link)
            self._selector.register(link.front, selectors.EVENT_READ, (link, True))
            self._selector.register(link.back, selectors.EVENT_READ, (link, False))
        self._wake_w.send(b"x")
        return link

    def close(self) -> None:
        """Stop the thread and close every socket (what is still held is dropped)."""
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(5.0)
        for link in self.links:
            link.front.close()
            link.back.close()
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    def __enter__(self) -> Impairment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < LIFETIME:
            now = time.monotonic()
            timeout = 0.05
            if self._held:
                timeout = max(0.0, min(timeout, self._held[0][0] - now))
            with self._lock:
                events = self._selector.select(timeout)
            for key, _ in events:
                if key.data is None:
                    self._wake_r.recv(4096)
                    continue
                link, from_front = key.data
                self._read(link, from_front)
            self._send_due(time.monotonic())

    def _read(self, link: Link, from_front: bool) -> None:
        sock = link.front if from_front else link.back
        for _ in range(256):  # bounded per wake-up
            try:
                data, source = sock.recvfrom(65535)
            except (BlockingIOError, OSError):
                return
            if from_front:
                if link.client is None:
                    link.client = source
                direction, out, dest = link.outbound, link.back, link.target
            else:
                direction, out, dest = link.inbound, link.front, link.client
            self._impair(link, direction, out, dest, data)

    def _impair(
        self,
        link: Link,
        direction: _Direction,
        out: socket.socket,
        dest: tuple[str, int] | None,
        data: bytes,
    ) -> None:
        stats = direction.stats
        stats.received += 1
        index = next(direction.arrivals)
        now = time.monotonic()
        if link.count_repeats:
            digest = hashlib.blake2b(data, digest_size=16).digest()
            seen = direction.last_seen.get(digest)
            if seen is not None:
                stats.repeats += 1
                stats.repeat_gaps.append(now - seen)
            direction.last_seen[digest] = now
        profile = link.profile
        if dest is None or direction.rng.random() < profile.loss:
            stats.dropped += 1
            return
        if direction.rng.random() < profile.reorder:
            stats.sent_at_once += 1
            self._send(out, data, dest, direction, index)
            return
        if len(self._held) >= MAX_HELD:
            stats.overflow += 1
            return
        stats.delayed += 1
        due = now + profile.delay + direction.rng.random() * profile.jitter
        heapq.heappush(self._held, (due, next(self._order), out, data, dest, direction, index))

    def _send_due(self, now: float) -> None:
        while self._held and self._held[0][0] <= now:
            _, _, out, data, dest, direction, index = heapq.heappop(self._held)
            self._send(out, data, dest, direction, index)

    @staticmethod
    def _send(
        out: socket.socket, data: bytes, dest: tuple[str, int], direction: _Direction, index: int
    ) -> None:
        try:
            out.sendto(data, dest)
        except OSError:
            direction.stats.dropped += 1
            return
        direction.stats.forwarded += 1
        if index < direction.highest_sent:
            direction.stats.reordered += 1
        direction.highest_sent = max(direction.highest_sent, index)
