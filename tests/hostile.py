"""Hostile peers and the measurements around them (issue 16), for tests and benches.

* :class:`Probe` asks the server for OPTIONS over UDP every ``interval`` seconds and
  records how long each answer took: a reactor that blocks shows as a slow or missing
  answer, whatever else the server is doing.
* :func:`slow_connections` opens TCP connections that send part of a message (a head
  that never ends) and stay open: Slowloris for SIP.
* :class:`HostileApp` is an answer_url server whose ``/hang`` accepts the request and
  never answers, and whose ``/huge`` answers 10 MB.
* :func:`rss_kib` reads a process's resident memory.

Every thread and loop here is bounded in time; only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs

from tests.rawsip import parse_response, request

__all__ = ("HUGE_BYTES", "HostileApp", "Probe", "ProbeFigures", "rss_kib", "slow_connections")

#: What ``/huge`` answers, in bytes (the issue's 10 MB).
HUGE_BYTES = 10 * 1000 * 1000
#: Most seconds ``/hang`` holds a request, and a probe runs.
LIFETIME = 300.0


def rss_kib(pid: int) -> int:
    """Resident set size of process *pid*, in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@attrs.frozen
class ProbeFigures:
    """Answer times of the OPTIONS probes, in seconds; ``missed`` got no answer."""

    sent: int
    missed: int
    p50: float
    p99: float
    worst: float


class Probe:
    """OPTIONS to *server* every *interval* s from *host*, in a thread, until stopped."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1", interval: float = 0.1):
        self.server = server
        self.interval = interval
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(2.0)
        self.rtts: list[float] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        local = self.sock.getsockname()
        started = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - started < LIFETIME:
            n += 1
            call_id = f"probe-{n}-{local[1]}"
            data = request(
                "OPTIONS", f"sip:{self.server[0]}:{self.server[1]}", local=local, call_id=call_id
            )
            sent = time.monotonic()
            self.sock.sendto(data, self.server)
            while True:
                try:
                    answer = self.sock.recv(65535)
                except TimeoutError:
                    self.missed += 1
                    break
                if parse_response(answer).get("Call-ID") == call_id:
                    self.rtts.append(time.monotonic() - sent)
                    break
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - sent)))

    def stop(self) -> ProbeFigures:
        """Stop probing; the figures."""
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()
        rtts = sorted(self.rtts) or [0.0]
        return ProbeFigures(
            sent=len(self.rtts) + self.missed,
            missed=self.missed,
            p50=rtts[len(rtts) // 2],
            p99=rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
            worst=rtts[-1],
        )


def slow_connections(
    server: tuple[str, int],
    count: int,
    head_bytes: int,
    host: str = "127.0.0.1",
    settle: float = 1.0,
) -> tuple[list[socket.socket], int]:
    """Open *count* TCP connections from *host*, each sending *head_bytes* of a head
    that never ends; the ones open, and how many the server refused (closed within
    *settle* seconds)."""
    opened: list[socket.socket] = []
    refused = 0
    head = (
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKslow\r\n"
    )
    filler = b"X-Slow: " + b"a" * max(0, head_bytes - len(head) - 10)
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.settimeout(2.0)
        try:
            sock.connect(server)
            sock.sendall(head + filler)
        except OSError:
            refused += 1
            sock.close()
            continue
        opened.append(sock)
    # A refused connection is accepted by the kernel, then closed by the server: give
    # the server *settle* seconds to close those (it may be busy), then count them.
    still = list(opened)
    deadline = time.monotonic() + settle
    while still and time.monotonic() < deadline:
        readable, _, _ = select.select(still, [], [], 0.05)
        for sock in readable:
            try:
                closed = sock.recv(1) == b""
            except OSError:
                closed = True
            if closed:
                refused += 1
                sock.close()
                still.remove(sock)
    return still, refused


class _QuietServer(ThreadingHTTPServer):
    """No traceback on stderr when the server under test hangs up mid-answer (it
    does, on purpose, for ``/huge``)."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class HostileApp:
    """An answer_url server: ``/hang`` never answers, ``/huge`` answers
    :data:`HUGE_BYTES`, anything else a valid document (*document*)."""

    def __init__(self, document: bytes = b"<Response><Hangup/></Response>") -> None:
        self.requests: dict[str, int] = {}
        #: The most bytes one ``/huge`` answer got into the socket before it closed
        #: (the kernel's buffers take some past what the server read).
        self.huge_bytes_sent = 0
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                path = self.path.split("?")[0]
                owner.requests[path] = owner.requests.get(path, 0) + 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if path == "/hang":
                    owner._release.wait(LIFETIME)
                    return
                body = document
                if path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(HUGE_BYTES))
                    self.end_headers()
                    chunk = b"<Response>" + b"<Wait length='1'/>" * 3000
                    sent = 0
                    with contextlib.suppress(OSError):
                        while sent < HUGE_BYTES:
                            part = chunk[: HUGE_BYTES - sent]
                            self.wfile.write(part)
                            sent += len(part)
                    owner.huge_bytes_sent = max(owner.huge_bytes_sent, sent)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def close(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
