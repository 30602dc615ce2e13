"""The far end's media in the interop tests: a real UDP socket speaking RTP.

sipp can play a pcap but cannot count or timestamp what it receives, so every
interop scenario advertises one of these sockets in its SDP and the test reads
the wire view from it: each datagram that arrives, with its arrival time as the
kernel stamped it (wall clock, to compare with sipp's logged times), its RTP fields
and payload.
It can send paced 20 ms G.711 packets (:meth:`RtpPeer.send_audio`), or answer
with a tone as soon as the server's RTP reaches it (``reply_hz``; symmetric RTP:
to where it came from).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

__all__ = (
    "ALAW",
    "PCMA_SILENCE",
    "PCMU_SILENCE",
    "Digit",
    "DtmfEvent",
    "RtpPacket",
    "RtpPeer",
    "alaw_decode",
    "alaw_encode",
    "digits_on_wire",
    "tone",
)

#: 20 ms of G.711 silence.
PCMA_SILENCE = b"\xd5" * 160
PCMU_SILENCE = b"\xff" * 160
#: Samples per 20 ms packet at 8 kHz.
FRAME = 160
_RATE = 8000
#: Most seconds a peer's threads run (every loop is bounded).
LIFETIME = 120.0

_RTP = struct.Struct("!BBHII")
_EVENTS = "0123456789*#ABCD"


# -- arrival times ----------------------------------------------------------------------


#: Linux's ``SO_TIMESTAMPNS`` (also the control message's type): the kernel stamps each
#: datagram with its arrival (``CLOCK_REALTIME``, a ``struct timespec``).  Times taken
#: after ``recvfrom`` in this thread would add the test process's own scheduling
#: delays (the GIL, a busy machine) to the timings the tests check.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def _ask_arrival_times(sock: socket.socket) -> None:
    """Ask the kernel to stamp arrivals (Linux); elsewhere ``time.time()`` is used."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def _arrival_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's arrival time from ``recvmsg``'s ancillary data, if it gave one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return None


# -- G.711 A-law, written out here so the checks do not lean on the server's codec ---


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    table = np.zeros(256, dtype=np.int16)
    for code in range(256):
        a = code ^ 0x55
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        segment = (mantissa << 4) + (8 if exponent == 0 else 0x108)
        magnitude = segment << max(0, exponent - 1)
        table[code] = magnitude if a & 0x80 else -magnitude
    return table


ALAW = _alaw_decode_table()
_ALAW_ORDER = np.argsort(ALAW)
_ALAW_SORTED = ALAW[_ALAW_ORDER]


def alaw_decode(payload: bytes) -> npt.NDArray[np.int16]:
    """PCMA bytes to 16-bit linear samples (ITU-T G.711)."""
    return ALAW[np.frombuffer(payload, dtype=np.uint8)]


def alaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """16-bit linear samples to PCMA bytes (the nearest A-law value)."""
    index = np.clip(np.searchsorted(_ALAW_SORTED, samples), 1, 255)
    below = _ALAW_SORTED[index - 1]
    above = _ALAW_SORTED[index]
    nearest = np.where(samples - below <= above - samples, index - 1, index)
    return bytes(_ALAW_ORDER[nearest].astype(np.uint8))


def tone(frequency: float, seconds: float, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    """A sine tone at 8 kHz."""
    t = np.arange(int(seconds * _RATE)) / _RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


@attrs.frozen
class RtpPacket:
    """One datagram received: arrival time (wall clock), source, and its RTP fields."""

    at: float
    source: tuple[str, int]
    pt: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


@attrs.frozen
class DtmfEvent:
    """An RFC 4733 payload: event, end bit, volume, duration (timestamp units)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def decode(cls, payload: bytes) -> DtmfEvent:
        event, flags, duration = struct.unpack("!BBH", payload[:4])
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


@attrs.frozen
class Digit:
    """One RFC 4733 event, from all the packets that carried its timestamp."""

    digit: str
    timestamp: int
    first_at: float
    ended: bool
    duration: int


class RtpPeer:
    """A UDP socket playing one side's media.

    :param host: the loopback address to bind.
    :param reply_hz: once the first packet arrives, answer its source with this tone
        in paced 20 ms PCMA packets (0: stay silent unless :meth:`send_audio` is used).
    """

    def __init__(self, host: str = "127.0.0.1", reply_hz: float = 0.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.02)
        _ask_arrival_times(self.sock)
        self.port = int(self.sock.getsockname()[1])
        #: Every RTP datagram received, in order; where the first one came from.
        self.packets: list[RtpPacket] = []
        self.remote: tuple[str, int] | None = None
        self.garbage = 0
        self.sent = 0
        self._reply = alaw_encode(tone(reply_hz, 1.0)) if reply_hz else b""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sender: threading.Thread | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def _read(self) -> None:
        started = time.monotonic()
        next_reply = started
        seq, ssrc = 1000, 0x5EED5EED
        while not self._closed.is_set() and time.monotonic() - started < LIFETIME:
            try:
                data, ancillary, _, source = self.sock.recvmsg(2048, _ANCILLARY_SPACE)
            except TimeoutError:
                data = b""
            except OSError:
                return
            if data:
                self._received(data, source, _arrival_time(ancillary))
            now = time.monotonic()
            if self._reply and self.remote is not None and now >= next_reply:
                k = self.sent
                chunk = self._reply[(k * FRAME) % len(self._reply) :][:FRAME]
                header = _RTP.pack(0x80, 8, seq & 0xFFFF, (k * FRAME) & 0xFFFFFFFF, ssrc)
                with contextlib.suppress(OSError):
                    self.sock.sendto(header + chunk, self.remote)
                seq += 1
                self.sent += 1
                next_reply = max(next_reply + 0.02, now - 0.1)  # behind: do not burst

    def _received(self, data: bytes, source: tuple[str, int], at: float | None) -> None:
        if at is None:
            at = time.time()
        if len(data) < 12 or data[0] >> 6 != 2:
            self.garbage += 1
            return
        b0, b1, seq, ts, ssrc = _RTP.unpack(data[:12])
        packet = RtpPacket(
            at, source, b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[12 + 4 * (b0 & 0x0F) :]
        )
        with self._lock:
            if self.remote is None:
                self.remote = source
            self.packets.append(packet)

    def send_audio(self, dest: tuple[str, int], count: int, pt: int = 8) -> None:
        """Start sending *count* 20 ms G.711 silence packets to *dest* (a thread, paced)."""
        silence = PCMA_SILENCE if pt == 8 else PCMU_SILENCE
        self._send_paced(dest, [(pt, i == 0, 160 * i, silence) for i in range(count)])

    def send_dtmf(self, dest: tuple[str, int], digits: str, pt: int = 101) -> None:
        """Start sending *digits* to *dest* as RFC 4733 events (a thread, paced 20 ms),
        as a phone does: each digit 100 ms (updates every 20 ms, the marker on the
        first, the end packet three times), 100 ms of PCMA silence between digits, all
        in one stream (one SSRC and sequence space)."""
        packets: list[tuple[int, bool, int, bytes]] = []
        ts = 0
        for digit in digits:
            event = _EVENTS.index(digit)
            for k in range(1, 6):
                end = 0x80 if k == 5 else 0
                packets.append((pt, k == 1, ts, struct.pack("!BBH", event, end | 10, 160 * k)))
            packets += [packets[-1]] * 2  # the end packet, three times (§2.5.1.4)
            ts += 800
            for _ in range(5):
                packets.append((8, False, ts, PCMA_SILENCE))
                ts += 160
        self._send_paced(dest, packets)

    def _send_paced(
        self, dest: tuple[str, int], packets: Sequence[tuple[int, bool, int, bytes]]
    ) -> None:
        """Send (payload type, marker, timestamp offset, payload) packets every 20 ms,
        from a thread, in one stream with a random SSRC, sequence and timestamp base."""
        ssrc, seq0, ts0 = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)

        def run() -> None:
            start = time.monotonic()
            for i, (pt, marker, timestamp, payload) in enumerate(packets):
                if self._closed.is_set():
                    return
                delay = start + i * 0.020 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                header = _RTP.pack(
                    0x80, (0x80 if marker else 0) | pt, (seq0 + i) & 0xFFFF,
                    (ts0 + timestamp) & 0xFFFFFFFF, ssrc,
                )  # fmt: skip
                try:
                    self.sock.sendto(header + payload, dest)
                except OSError:
                    return
                self.sent += 1

        self._sender = threading.Thread(target=run, daemon=True)
        self._sender.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for :meth:`send_audio` to finish."""
        if self._sender is not None:
            self._sender.join(timeout)

    def received(self, since: float = 0.0, payload_type: int | None = None) -> list[RtpPacket]:
        """The packets received since *since* (``time.time()``), of one payload type or all."""
        with self._lock:
            return [
                p
                for p in self.packets
                if p.at >= since and (payload_type is None or p.pt == payload_type)
            ]

    def audio(self, pts: Iterable[int] = (0, 8)) -> list[RtpPacket]:
        """The audio packets received."""
        wanted = set(pts)
        return [p for p in self.received() if p.pt in wanted]

    def audio_frames(self, since: float = 0.0) -> list[tuple[float, npt.NDArray[np.int16]]]:
        """Each PCMA packet since *since*: arrival time and samples."""
        return [(p.at, alaw_decode(p.payload)) for p in self.received(since, payload_type=8)]

    def events(self, pt: int = 101) -> list[tuple[RtpPacket, DtmfEvent]]:
        """The RFC 4733 packets received, decoded."""
        return [(p, DtmfEvent.decode(p.payload)) for p in self.received(payload_type=pt)]

    def digits(self, since: float = 0.0) -> list[Digit]:
        """The RFC 4733 events heard since *since* (any dynamic payload type), in order."""
        groups: dict[int, list[RtpPacket]] = {}
        for p in self.received(since):
            if 96 <= p.pt <= 127 and len(p.payload) >= 4:
                groups.setdefault(p.timestamp, []).append(p)
        found = []
        for timestamp, packets in groups.items():
            event = packets[0].payload[0]
            ended = any(q.payload[1] & 0x80 for q in packets)
            longest = max(struct.unpack("!H", q.payload[2:4])[0] for q in packets)
            found.append(Digit(_EVENTS[event], timestamp, packets[0].at, ended, longest))
        return sorted(found, key=lambda d: d.first_at)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(2.0)
        if self._sender is not None:
            self._sender.join(2.0)
        self.sock.close()


def digits_on_wire(packets: Sequence[tuple[RtpPacket, DtmfEvent]]) -> list[tuple[str, float]]:
    """The digits the RFC 4733 packets carry, one per (SSRC, timestamp), with the arrival
    time of each digit's first packet."""
    seen: dict[tuple[int, int], tuple[str, float]] = {}
    for packet, event in packets:
        key = (packet.ssrc, packet.timestamp)
        if key not in seen:
            seen[key] = (_EVENTS[event.event] if event.event < 16 else "?", packet.at)
    return sorted(seen.values(), key=lambda item: item[1])
