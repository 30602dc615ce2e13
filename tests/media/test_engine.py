"""The engine on the real reactor: ports, real UDP on loopback, RTCP, speech and files."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater

from media.audio import wav_bytes
from media.config import MediaConfig, PortRange
from media.engine import MediaEngine, PortAllocator
from media.errors import MediaArgumentError, PortsExhaustedError
from media.g711 import Codec
from media.inband import tone
from media.interfaces import DigitsEnd, PlayOutcome, RecordEnd, SessionState
from media.sdp import Direction, Negotiated, parse_sdp

from .helpers import rtp


def test_port_range_parsing_and_rules() -> None:
    assert PortRange.parse("16384-32767") == PortRange(16384, 32767)
    assert PortRange(16385, 16390).first_even == 16386
    assert PortRange(16384, 32767).pairs == 8192
    with pytest.raises(MediaArgumentError, match="rtp-ports: must be LOW-HIGH"):
        PortRange.parse("16384")
    with pytest.raises(MediaArgumentError, match="rtp-ports: low port must be 1024-65534"):
        PortRange(80, 100)
    with pytest.raises(MediaArgumentError, match="rtp-ports: high port must be 20001-65535"):
        PortRange(20000, 20000)
    with pytest.raises(MediaArgumentError, match="holds no even port with its odd neighbour"):
        PortRange(20001, 20002)


def test_allocator_round_robin_skips_taken_and_exhausts() -> None:
    import random

    allocator = PortAllocator(PortRange(20000, 20007), rng=random.Random(0))
    taken = {20002}

    def bind(port: int) -> int:
        if port in taken:
            raise CannotListenError("127.0.0.1", port, OSError("in use"))
        return port

    ports = [allocator.allocate(bind)[0] for _ in range(3)]
    assert sorted(ports) == [20000, 20004, 20006]
    assert all(p % 2 == 0 for p in ports)
    with pytest.raises(PortsExhaustedError, match="no free even port pair in 20000-20007"):
        allocator.allocate(bind)
    allocator.release(20004)
    assert allocator.allocate(bind)[0] == 20004


def free_range(pairs: int) -> PortRange:
    """An even-aligned range of free ports on loopback (probed, then released)."""
    for base in range(41000, 60000, 64):
        ok = True
        for port in range(base, base + 2 * pairs):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return PortRange(base, base + 2 * pairs - 1)
    raise AssertionError("no free port range")


def make_engine(tmp_path: Path, pairs: int = 4, **kw: Any) -> MediaEngine:
    config = MediaConfig(rtp_ports=free_range(pairs), data_dir=tmp_path, **kw)
    return MediaEngine(reactor=reactor, config=config)


def connect(a: Any, b: Any) -> None:
    offer = parse_sdp(a.create_offer().to_bytes())
    answer = parse_sdp(b.accept_offer(offer).to_bytes())
    a.accept_answer(answer)


def within(d: Deferred[Any], seconds: float = 10.0) -> Deferred[Any]:
    return d.addTimeout(seconds, reactor)


@pytest_twisted.ensureDeferred
async def test_digits_over_real_udp_and_rtcp_reports(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, rtcp_interval=0.2)
    a = engine.create_session(call_uuid="a")
    b = engine.create_session(call_uuid="b")
    try:
        connect(a, b)
        collected = b.collect_digits(max_digits=10, finish_on_key="#")
        await within(a.send_digits("1*9#"))
        result = await within(collected)
        assert (result.digits, result.reason) == ("1*9", DigitsEnd.FINISH_KEY)
        await deferLater(reactor, 0.6, lambda: None)
        assert a.counters.received > 10
        assert b.counters.received > 10
        assert a.counters.malformed == b.counters.malformed == 0
        # RTCP: each side has the other's report about its own stream.
        assert a.rtcp is not None
        assert b.rtcp is not None
        report = a.rtcp.remote_report
        assert report is not None
        assert report.ssrc == a.stream.ssrc
        assert report.cumulative_lost == 0
        assert b.rtcp.received > 0
        stats = b.sources[a.stream.ssrc]
        assert stats.lost == 0
        assert 0 <= stats.jitter < 8000 * 0.05  # loopback: well under 50 ms, even on a busy CI box
    finally:
        a.close()
        b.close()
    assert not engine.ticker.running
    assert engine.ports.in_use == 0


@pytest_twisted.ensureDeferred
async def test_ports_are_even_exhaust_and_come_back(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, pairs=2)
    sessions = [engine.create_session(), engine.create_session()]
    try:
        ports = sorted(s.local_address[1] for s in sessions)
        low = engine.config.rtp_ports.low
        assert ports == [low, low + 2]
        with pytest.raises(PortsExhaustedError):
            engine.create_session()
        sessions[0].close()
        await deferLater(reactor, 0, lambda: None)
        again = engine.create_session()
        sessions[0] = again
        assert again.local_address[1] in ports
        assert again.state is SessionState.IDLE
    finally:
        for s in sessions:
            s.close()


@pytest_twisted.ensureDeferred
async def test_a_port_held_by_another_program_is_skipped(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, pairs=2)
    low = engine.config.rtp_ports.low
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", low + 1))  # the RTCP port of the first pair
    try:
        session = engine.create_session()
        assert session.local_address[1] == low + 2
        with pytest.raises(PortsExhaustedError):
            engine.create_session()
        session.close()
    finally:
        blocker.close()


@pytest_twisted.ensureDeferred
async def test_play_a_file_and_record_it_over_udp(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    clip = tone((600.0,), 8000, amplitude=9000)  # 1 s
    (sounds / "prompt.wav").write_bytes(wav_bytes(clip))
    a = engine.create_session()
    b = engine.create_session()
    try:
        connect(a, b)
        recording = b.record(beep=False, max_length=30, silence_timeout=0.5)
        outcome = await within(a.play([str(sounds / "prompt.wav")]))
        assert outcome is PlayOutcome.FINISHED
        result = await within(recording)
        assert result.reason is RecordEnd.SILENCE
        assert result.path.parent == tmp_path / "recordings"
        data = np.frombuffer(result.path.read_bytes()[44:], dtype="<i2").astype(float)
        frames = data[: len(data) // 160 * 160].reshape(-1, 160)
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 3000
        assert 49 <= loud.sum() <= 51  # the 1 s clip, 50 frames, arrived whole
    finally:
        a.close()
        b.close()


@pytest.mark.interop
@pytest_twisted.ensureDeferred
async def test_speak_over_udp(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    a = engine.create_session()
    b = engine.create_session()
    try:
        connect(a, b)
        recording = b.record(beep=False, silence_timeout=0.6)
        assert await within(a.speak("Hello from telephony")) is PlayOutcome.FINISHED
        result = await within(recording)
        assert result.duration > 0.8
        data = np.frombuffer(result.path.read_bytes()[44:], dtype="<i2").astype(float)
        assert np.sqrt(np.mean(data**2)) > 200
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_rtp_port_reads_a_burst_one_datagram_per_event(tmp_path: Path) -> None:
    from media.udp import RTPPort

    engine = make_engine(tmp_path, pairs=1)
    session = engine.create_session()
    assert isinstance(session.listening[0], RTPPort)
    session.configure(
        Negotiated(Codec.PCMU, 0, None, "127.0.0.1", 9, Direction.RECVONLY)  # never sends
    )
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for seq in range(40):  # queued faster than the reactor reads them
            sender.sendto(rtp(0, seq, seq * 160, b"\xff" * 160), session.local_address)
        sender.sendto(b"\x00" * 5, session.local_address)
        for _ in range(100):
            await deferLater(reactor, 0.01, lambda: None)
            if session.counters.received + session.counters.malformed == 41:
                break
        assert (session.counters.received, session.counters.malformed) == (40, 1)
    finally:
        sender.close()
        session.close()
