"""The REST API fuzz target: raw HTTP requests into the real site.

The bytes go to Twisted's HTTP parser over an in-memory transport, then through the
site the server builds (``telephony.api.site.build_site``): Basic auth, the body cap,
JSON and form decoding, routing, the directory handlers over an in-memory SQLite
store (:mod:`tests.fuzz._inline`) and ``POST /Call/``'s rules with a recording call
manager.  A bug is a 5xx answer (but 501: a method a page does not have), a failure
logged, or a 4xx whose JSON does not say
what was wrong.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.web.server import Site

from telephony.api.calls_v1 import CallsAPI
from telephony.api.directory_v1 import DirectoryAPI
from telephony.api.site import build_site
from telephony.credentials import Credentials
from telephony.directory import Directory
from tests.fuzz._inline import inline_database
from tests.fuzz._sip import BugFoundError

__all__ = ("REST_SEEDS", "fuzz_rest")

CREDS = Credentials("MAFUZZFUZZFUZZFUZZFUZZ", "T" * 40)
_BASIC = base64.b64encode(f"{CREDS.auth_id}:{CREDS.auth_token}".encode()).decode()
_BASE = f"/v1/Account/{CREDS.auth_id}"


def _http(
    method: str, path: str, body: bytes = b"", content_type: str = "application/json"
) -> bytes:
    head = (
        f"{method} {_BASE}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {_BASIC}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REST_SEEDS = [
    _http("POST", "/Endpoint/", b'{"username": "bob", "password": "s3cret", "alias": "Bob"}'),
    _http(
        "POST",
        "/Application/",
        b'{"app_name": "ivr", "answer_url": "http://127.0.0.1/a", "answer_method": "GET",'
        b' "hangup_url": "https://127.0.0.1/h", "default_endpoint_app": true}',
    ),
    _http(
        "POST",
        "/Number/",
        b"numbers=14155550100%2C14155550101&carrier=x&region=y&app_id=123",
        "application/x-www-form-urlencoded",
    ),
    _http(
        "POST",
        "/Call/",
        b'{"from": "18004321321", "to": "18001231234<sip:a@example.test", "answer_url":'
        b' "http://127.0.0.1/a", "send_digits": "12w3@200", "sip_headers": "X-A=1,B=2",'
        b' "time_limit": 60, "ring_timeout": 30, "caller_name": "\\u00e9"}',
    ),
    _http("GET", "/Endpoint/?limit=5&offset=0"),
    _http("POST", "/Endpoint/ALICE/", b'{"alias": "x", "password": "p"}'),
    _http("DELETE", "/Number/%2B14155550100/"),
]


class _Originator:
    def originate(self, request: Any) -> str:
        return "request-1"


class _Manager:
    """What ``POST /Call/`` needs of the call manager."""

    originator = _Originator()

    def resolve(self, target: Any, *args: Any) -> object:
        return object()


class _Api:
    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        db = inline_database()
        directory = Directory(db, "example.test", self.clock)
        calls = CallsAPI(manager=_Manager(), cdrs=None)  # type: ignore[arg-type]
        routes = DirectoryAPI(directory, "example.test").routes()
        routes += [r for r in calls.routes() if r.handler == calls.create]
        self.site: Site = build_site(
            directory=directory,
            auth_id=CREDS.auth_id,
            check_auth=CREDS.check,
            routes=routes,
            clock=self.clock,
            started_at=self.clock.seconds(),
        )
        self.site.timeOut = None  # no idle timer per connection: nothing runs the reactor
        self.failures: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self._observe)

    def _observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event:
            self.failures.append(event)


_API: _Api | None = None
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
#: Inputs served by one site and store before a fresh one is built: the store grows
#: with what the inputs create, and a long run must stay bounded in memory.
INPUTS_PER_STORE = 20_000
_served = 0


def _dechunk(body: bytes) -> bytes:
    """The payload of a chunked body (what a client reads)."""
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def fuzz_rest(data: bytes) -> None:
    """One connection's bytes: every answer is below 500, nothing is logged as a
    failure, and a 4xx from the API carries an ``error`` that names the problem."""
    global _API, _served  # one site and store for many inputs, as a server has
    if _API is None or _served >= INPUTS_PER_STORE:
        if _API is not None:
            globalLogPublisher.removeObserver(_API._observe)
        _API, _served = _Api(), 0
    _served += 1
    api = _API
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel = api.site.buildProtocol(transport.getPeer())
    assert channel is not None
    channel.makeConnection(transport)
    channel.dataReceived(data)
    channel.connectionLost(None)
    if api.failures:
        raise BugFoundError(f"logged failure: {api.failures[0].get('log_format')}")
    out = transport.value()
    for match in _STATUS.finditer(out):
        status = int(match.group(1))
        # 501 is Twisted's answer to a method a page outside the API does not have
        # (DELETE /, say): a refusal, not a fault; the API itself answers 405.
        if status >= 500 and status != 501:
            raise BugFoundError(f"HTTP {status} for {data[:300]!r}: {out[:600]!r}")
    head, _, body = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 4") or b"application/json" not in head:
        return
    if b"chunked" in head.lower():
        body = _dechunk(body)
    try:
        reply = json.loads(body)
    except ValueError:
        return  # pipelined answers after the first: not read one by one
    if not isinstance(reply, dict) or not reply.get("error") or not reply.get("api_id"):
        raise BugFoundError(f"4xx without an error and api_id: {out[:600]!r}")
