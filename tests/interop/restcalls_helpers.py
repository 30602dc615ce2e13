"""Peers for the REST call-control tests: an answer_url server, a far end's RTP socket, sipp.

* :class:`AnswerServer` serves Plivo XML documents (and WAV files) from a thread and
  records every fetch, so a test can tell which document ran and with what parameters.
* :class:`RtpPeer` is the far end's media: a UDP socket on 127.0.0.2 whose port goes
  into sipp's SDP answer (sipp itself moves no media in ``gateway_answer_rtp.xml``).
  It records every packet the server sends (audio decoded from PCMA, RFC 4733 events
  decoded into digits) and, once it has heard the server, sends a steady tone back
  (symmetric RTP) so that recordings have something in them.
* :class:`Sipp` runs ``sipp`` as the gateway on 127.0.0.2 and reads what it logged.

All of it is bounded: every wait has a deadline, every thread stops on ``close()``.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import select
import socket
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import attrs
import numpy as np
import numpy.typing as npt

SCENARIOS = Path(__file__).parent / "scenarios"
#: The far end (gateway) lives here; the server listens on 127.0.0.1.
FAR_END_HOST = "127.0.0.2"
SAMPLE_RATE = 8000
FRAME = 160  # samples per 20 ms packet


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll *predicate* every 50 ms until it is true; AssertionError after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def free_udp_port(host: str) -> int:
    """A UDP port free on *host* right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * math.pi * frequency * t)).astype(np.int16)


def wav_bytes(samples: npt.NDArray[np.int16]) -> bytes:
    """A mono 16-bit 8 kHz WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def dominant_frequency(samples: npt.NDArray[np.int16]) -> float:
    """The strongest frequency in *samples*, in Hz (resolution 8000 / len)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * SAMPLE_RATE / len(samples)


def rms(samples: npt.NDArray[np.int16]) -> float:
    """Root-mean-square level of *samples*."""
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


# -- the answer_url server ------------------------------------------------------------


@attrs.frozen
class Fetch:
    """One request the answer server received."""

    method: str
    path: str
    params: dict[str, str]
    at: float


class AnswerServer:
    """Serves documents by path from a thread on 127.0.0.1; records every fetch."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[str, bytes]] = {}
        self.fetches: list[Fetch] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                params = dict(parse_qsl(split.query))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    params.update(parse_qsl(self.rfile.read(length).decode("utf-8")))
                with owner._lock:
                    owner.fetches.append(Fetch(self.command, split.path, params, time.monotonic()))
                    found = owner.documents.get(split.path)
                if found is None:
                    self.send_error(404)
                    return
                content_type, body = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def xml(self, path: str, body: str) -> str:
        """Serve a Plivo XML document at *path*; its URL."""
        self.documents[path] = ("application/xml", body.encode("utf-8"))
        return self.url(path)

    def wav(self, path: str, samples: npt.NDArray[np.int16]) -> str:
        """Serve a WAV file at *path*; its URL."""
        self.documents[path] = ("audio/wav", wav_bytes(samples))
        return self.url(path)

    def fetched(self, path: str) -> list[Fetch]:
        with self._lock:
            return [f for f in self.fetches if f.path == path]

    def wait_fetched(self, path: str, timeout: float = 10.0, count: int = 1) -> list[Fetch]:
        wait_until(lambda: len(self.fetched(path)) >= count, timeout, f"a fetch of {path}")
        return self.fetched(path)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# -- the far end's media ----------------------------------------------------------------


@attrs.frozen
class Packet:
    """One RTP packet the far end received."""

    at: float
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


@attrs.frozen
class Digit:
    """One RFC 4733 event, from all the packets that carried its timestamp."""

    digit: str
    timestamp: int
    first_at: float
    ended: bool
    duration: int


_EVENTS = "0123456789*#ABCD"


class RtpPeer:
    """The far end's RTP socket: hears what the server sends, answers with a tone.

    :param reply_hz: the tone sent back once the server's address is known (0: none).
    """

    def __init__(self, host: str = FAR_END_HOST, reply_hz: float = 440.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.packets: list[Packet] = []
        self.remote: tuple[str, int] | None = None
        self.sent = 0
        self._reply = alaw_encode(tone(reply_hz, 1.0)) if reply_hz else b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def _run(self, limit: float = 120.0) -> None:
        started = time.monotonic()
        next_send = started
        seq = 1000
        ssrc = 0x5EED5EED
        while not self._stop.is_set() and time.monotonic() - started < limit:
            now = time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], max(0.0, min(0.02, next_send - now)))
            if ready:
                data, source = self.sock.recvfrom(2048)
                self._received(data, source)
            now = time.monotonic()
            if self.remote is not None and self._reply and now >= next_send:
                k = self.sent
                chunk = self._reply[(k * FRAME) % len(self._reply) :][:FRAME]
                stamp = (k * FRAME) & 0xFFFFFFFF
                header = struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, stamp, ssrc)
                with contextlib.suppress(OSError):
                    self.sock.sendto(header + chunk, self.remote)
                seq += 1
                self.sent += 1
                next_send += 0.02
                if next_send < now - 0.1:  # we fell behind: do not burst
                    next_send = now + 0.02
            elif self.remote is None:
                next_send = time.monotonic() + 0.02

    def _received(self, data: bytes, source: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        cc = data[0] & 0x0F
        _, mpt, seq, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
        payload = data[12 + 4 * cc :]
        packet = Packet(
            time.monotonic(), mpt & 0x7F, bool(mpt & 0x80), seq, timestamp, ssrc, payload
        )
        with self._lock:
            if self.remote is None:
                self.remote = source
            self.packets.append(packet)

    def received(self, since: float = 0.0, payload_type: int | None = None) -> list[Packet]:
        with self._lock:
            return [
                p
                for p in self.packets
                if p.at >= since and (payload_type is None or p.payload_type == payload_type)
            ]

    def audio_frames(self, since: float = 0.0) -> list[tuple[float, npt.NDArray[np.int16]]]:
        """Each PCMA packet since *since*: arrival time and samples."""
        return [(p.at, alaw_decode(p.payload)) for p in self.received(since, payload_type=8)]

    def digits(self, since: float = 0.0) -> list[Digit]:
        """The RFC 4733 events heard since *since* (any dynamic payload type), in order."""
        groups: dict[int, list[Packet]] = {}
        for p in self.received(since):
            if 96 <= p.payload_type <= 127 and len(p.payload) >= 4:
                groups.setdefault(p.timestamp, []).append(p)
        found = []
        for timestamp, packets in groups.items():
            event = packets[0].payload[0]
            ended = any(q.payload[1] & 0x80 for q in packets)
            longest = max(struct.unpack("!H", q.payload[2:4])[0] for q in packets)
            found.append(Digit(_EVENTS[event], timestamp, packets[0].at, ended, longest))
        return sorted(found, key=lambda d: d.first_at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


# -- sipp as the gateway -------------------------------------------------------------------


class Sipp:
    """``sipp`` on 127.0.0.2 running a scenario of ``tests/interop/scenarios``.

    :param csv_lines: rows for ``-inf`` (``[field0]``…), one per call, read in order.
    """

    def __init__(
        self,
        scenario: str,
        *,
        port: int,
        workdir: Path,
        calls: int = 1,
        csv_lines: Sequence[Sequence[object]] = (),
        timeout: float = 30.0,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / f"sipp-{scenario}-{port}-logs.log"
        self.error_path = workdir / f"sipp-{scenario}-{port}-errors.log"
        self.out_path = workdir / f"sipp-{scenario}-{port}.out"
        args = [
            "sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-i", FAR_END_HOST, "-p", str(port),
            "-mi", FAR_END_HOST, "-mp", str(free_udp_port(FAR_END_HOST)),
            "-m", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-trace_err", "-error_file", str(self.error_path),
            "-trace_logs", "-log_file", str(self.log_path),
        ]  # fmt: skip
        if csv_lines:
            csv = workdir / f"sipp-{scenario}-{port}.csv"
            csv.write_text(
                "SEQUENTIAL\n" + "".join(";".join(map(str, row)) + ";\n" for row in csv_lines)
            )
            args += ["-inf", str(csv)]
        self._out = self.out_path.open("wb")
        self.process = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
        )
        self.timeout = timeout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def called(self) -> list[tuple[str, str]]:
        """(Request-URI user, From user) of each INVITE, as sipp logged them."""
        return re.findall(r"CALLED (\S*) CALLER (\S*)", self.log())

    def wait_logged(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= count, timeout, f"sipp to log {text!r}")

    def finish(self, timeout: float | None = None) -> int:
        """Wait for sipp to exit (every call done); its exit code (0: all succeeded)."""
        try:
            return self.process.wait(timeout or self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"sipp did not finish:\n{self.report()}") from None

    def report(self) -> str:
        parts = [self.log()]
        for path in (self.error_path, self.out_path):
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


@contextlib.contextmanager
def far_end(
    scenario: str, *, port: int, workdir: Path, calls: int = 1, media: bool = True
) -> Iterator[tuple[Sipp, RtpPeer | None]]:
    """sipp as the gateway (and, for ``gateway_answer_rtp``, an :class:`RtpPeer` per call
    sharing one socket); both stopped after the block."""
    peer = RtpPeer() if media else None
    rows = [peer.address] * calls if peer is not None else ()
    sipp = Sipp(scenario, port=port, workdir=workdir, calls=calls, csv_lines=rows)
    try:
        yield sipp, peer
    finally:
        sipp.stop()
        if peer is not None:
            peer.close()
