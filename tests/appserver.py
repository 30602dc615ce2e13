"""A real answer_url server for interop tests: records every request, answers configured XML.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread.  Each request is
recorded (path, method, form parameters from the query and the body) and answered
with the document configured for its path, or an empty ``<Response/>``.  Tests wait
for a request with :meth:`AppServer.wait_for` (bounded by a timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import attrs

EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


@attrs.frozen
class AppRequest:
    """One request the server got: ``params`` merges the query and the form body."""

    path: str
    method: str
    params: dict[str, str]
    at: float


#: A configured reply: a document, or a function of the request returning one.
Reply = bytes | str | Callable[[AppRequest], bytes | str]


class AppServer:
    """The server and what it saw.  Use :func:`app_server` to run one."""

    def __init__(self) -> None:
        self.requests: list[AppRequest] = []
        self.replies: dict[str, Reply] = {}
        self._cond = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        """The absolute URL of *path* on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, path: str, document: Reply) -> None:
        """Answer requests to *path* with *document* (XML text, or a function of the request)."""
        self.replies[path] = document

    def _record(self, request: AppRequest) -> bytes:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        reply = self.replies.get(request.path, EMPTY)
        if callable(reply):
            reply = reply(request)
        return reply.encode() if isinstance(reply, str) else reply

    def seen(self, path: str) -> list[AppRequest]:
        """The requests made to *path* so far."""
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[AppRequest]:
        """Wait until *path* got *count* requests; returns them.

        :raises AssertionError: if they did not come within *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.path, r.params) for r in self.requests]
                    raise AssertionError(f"{count} request(s) to {path} expected; seen {seen}")
                self._cond.wait(left)

    def serve(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    body = self.rfile.read(length).decode("utf-8", "replace")
                    params.update(parse_qsl(body, keep_blank_values=True))
                request = AppRequest(parts.path, self.command, params, time.time())
                document = server._record(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@contextmanager
def app_server() -> Iterator[AppServer]:
    """An :class:`AppServer` listening for the duration of a ``with`` block."""
    server = AppServer()
    server.serve()
    try:
        yield server
    finally:
        server.close()
