"""Peers for the REST call-control tests: an answer_url server, a far end's RTP socket, sipp.

* :class:`AnswerServer` serves Plivo XML documents (and WAV files) from a thread and
  records every fetch, so a test can tell which document ran and with what parameters.
* :class:`RtpPeer` (``tests/interop/rtppeer.py``) is the far end's media: a UDP socket
  on 127.0.0.2 whose port goes into sipp's SDP answer (sipp itself moves no media in
  ``gateway_answer_rtp.xml``).
  It records every packet the server sends (audio decoded from PCMA, RFC 4733 events
  decoded into digits) and, once it has heard the server, sends a steady tone back
  (symmetric RTP) so that recordings have something in them.
* :class:`Sipp` runs ``sipp`` as the gateway on 127.0.0.2 and reads what it logged.

All of it is bounded: every wait has a deadline, every thread stops on ``close()``.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import numpy as np
import numpy.typing as npt

from tests.interop.rtppeer import RtpPeer
from tests.sipp import free_media_ports

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


def cdr(client: Any, call_uuid: str, timeout: float = 5.0) -> Any:
    """The finished call's record through the plivo SDK *client* (it is written just
    after the leg ends, so it is waited for)."""
    import plivo

    found: list[Any] = []

    def written() -> bool:
        try:
            found.append(client.calls.get(call_uuid))
        except plivo.exceptions.ResourceNotFoundError:
            return False
        return True

    wait_until(written, timeout, f"the CDR of {call_uuid}")
    return found[-1]


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
            "-mi", FAR_END_HOST, "-mp", str(free_media_ports(FAR_END_HOST, avoid=port)),
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
    peer = RtpPeer(FAR_END_HOST, reply_hz=440.0) if media else None
    rows = [peer.address] * calls if peer is not None else ()
    sipp = Sipp(scenario, port=port, workdir=workdir, calls=calls, csv_lines=rows)
    try:
        yield sipp, peer
    finally:
        sipp.stop()
        if peer is not None:
            peer.close()
