"""The fetcher against a real twisted.web server on 127.0.0.1 (pytest-twisted's reactor)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
import pytest_twisted
from plivo.utils.signature_v3 import validate_v3_signature
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.web import server
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource

from xml_dsl import Fetcher, FetchError, Method, UrlSpec, XMLError
from xml_dsl.fetcher import application_agent
from xml_dsl.signature import NONCE_HEADER, SIGNATURE_HEADER, verify
from xml_dsl.verbs import Speak

TOKEN = "MAtestauthtoken0123456789"
GOOD = b'<?xml version="1.0"?><Response><Speak>hello</Speak></Response>'
FALLBACK = b"<Response><Speak>fallback</Speak></Response>"


class Seen:
    """One request as the server saw it."""

    def __init__(self, request: server.Request, url: str, form: dict[str, str]) -> None:
        self.method = request.method.decode()
        self.path = request.path.decode()
        self.url = url
        self.form = form
        self.query = dict(parse_qsl(url.partition("?")[2]))
        self.nonce = (request.getHeader(NONCE_HEADER) or "").strip()
        self.signature = (request.getHeader(SIGNATURE_HEADER) or "").strip()
        self.content_type = request.getHeader("content-type")

    def signed_ok(self) -> bool:
        return verify(TOKEN, self.method, self.url, self.form, self.nonce, self.signature)

    def plivo_sdk_ok(self) -> bool:
        return bool(
            validate_v3_signature(
                self.method, self.url, self.nonce, TOKEN, self.signature, dict(self.form)
            )
        )


class App(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.port = 0
        self.pending: list[server.Request] = []

    def render(self, request: server.Request) -> bytes | int:
        host = f"http://127.0.0.1:{self.port}"
        url = host + request.uri.decode()
        form: dict[str, str] = {}
        if request.method == b"POST":
            body = request.content.read() if request.content is not None else b""
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.seen.append(Seen(request, url, form))
        path = request.path
        if path == b"/answer":
            return GOOD
        if path == b"/fallback":
            return FALLBACK
        if path == b"/error500":
            request.setResponseCode(500)
            return b"<Response/>"
        if path == b"/html":
            return b"<html><head><title>502 Bad Gateway</title></head><body>oops</html>"
        if path == b"/entities":
            return b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><Response><Speak>&a;</Speak></Response>'
        if path == b"/huge":  # 10 MB, chunked (no Content-Length)
            for _ in range(160):
                request.write(b"x" * 65536)
            request.finish()
            return server.NOT_DONE_YET
        if path == b"/huge-declared":
            request.setHeader(b"content-length", b"10485760")
            request.write(b"x" * 65536)
            self.pending.append(request)
            return server.NOT_DONE_YET
        if path == b"/stalled":  # the head and a little of the body, then nothing
            request.setHeader(b"content-length", b"1000")
            request.write(b"<Response>")
            self.pending.append(request)
            return server.NOT_DONE_YET
        if path == b"/moved-stalled":  # a redirect whose body never ends
            request.setResponseCode(302)
            request.setHeader(b"location", b"/answer")
            request.setHeader(b"content-length", b"1000")
            request.write(b"moved")
            self.pending.append(request)
            return server.NOT_DONE_YET
        if path == b"/slow":
            self.pending.append(request)
            return server.NOT_DONE_YET
        if path == b"/moved":
            request.setResponseCode(302)
            request.setHeader(b"location", b"/answer")
            return b""
        if path == b"/loop":
            request.setResponseCode(307)
            request.setHeader(b"location", b"/loop")
            return b""
        request.setResponseCode(404)
        return b"not found"


@pytest_twisted.async_yield_fixture
async def app() -> AsyncIterator[App]:
    resource = App()
    port = reactor.listenTCP(0, server.Site(resource), interface="127.0.0.1")
    resource.port = port.getHost().port
    yield resource
    for pending in resource.pending:
        if not pending.finished and not pending._disconnected:
            pending.loseConnection()
    await port.stopListening()
    await deferLater(reactor, 0.05, lambda: None)
    leaked = [c for c in reactor.getDelayedCalls() if "expire" in repr(c.func)]
    assert leaked == [], f"fetch timers left behind: {leaked}"


def fetcher(timeout: float = 5.0) -> Fetcher:
    return Fetcher(reactor=reactor, auth_token=TOKEN, timeout=timeout)


PARAMS = {
    "CallUUID": "c0ffee",
    "From": "+15551230000",
    "To": "sip:alice@example.com",
    "Direction": "inbound",
    "CallStatus": "ringing",
    "CallerName": "Alice & Bob",
}


def base(app: App) -> str:
    return f"http://127.0.0.1:{app.port}"


@pytest_twisted.ensureDeferred
async def test_post_sends_form_parameters_signed_as_plivo_signs(app: App) -> None:
    doc = await fetcher().fetch(base(app) + "/answer?app=7", Method.POST, PARAMS)
    assert doc.verbs == (Speak("hello"),)
    (seen,) = app.seen
    assert seen.method == "POST"
    assert seen.content_type == "application/x-www-form-urlencoded"
    assert seen.form == PARAMS
    assert seen.query == {"app": "7"}
    assert seen.nonce.isdigit()
    assert seen.signed_ok()
    assert seen.plivo_sdk_ok()


@pytest_twisted.ensureDeferred
async def test_get_sends_query_parameters_signed(app: App) -> None:
    await fetcher().fetch(base(app) + "/answer", Method.GET, PARAMS)
    (seen,) = app.seen
    assert seen.method == "GET"
    assert seen.form == {}
    assert seen.query == PARAMS
    assert seen.signed_ok()
    assert seen.plivo_sdk_ok()


@pytest_twisted.ensureDeferred
async def test_a_wrong_token_does_not_verify(app: App) -> None:
    await fetcher().fetch(base(app) + "/answer", Method.POST, PARAMS)
    (seen,) = app.seen
    assert not verify("other", seen.method, seen.url, seen.form, seen.nonce, seen.signature)
    assert not verify(
        TOKEN, seen.method, seen.url, {**seen.form, "Digits": "1"}, seen.nonce, seen.signature
    )


@pytest_twisted.ensureDeferred
async def test_timeout_is_a_fetch_error(app: App) -> None:
    with pytest.raises(FetchError, match=r"timed out after 0.3 s"):
        await fetcher(timeout=0.3).fetch(base(app) + "/slow", Method.POST, PARAMS)


async def _until_seen(app: App, count: int) -> None:
    """Wait (on the real reactor, at most 5 s) until the app has seen ``count`` requests."""
    for _ in range(500):
        if len(app.seen) >= count:
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"the app saw {len(app.seen)} request(s), not {count}")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("when", ["connecting", "awaiting the response", "reading the body"])
async def test_a_cancelled_fetch_fails_with_cancelled_error(app: App, when: str) -> None:
    """Cancelling a fetch (the far end hung up, or a transfer) is no dead URL: it fails
    with CancelledError at every stage, however twisted.web wraps the abort."""
    path = "/stalled" if when == "reading the body" else "/slow"
    d = fetcher().fetch(base(app) + path, Method.POST, PARAMS)
    if when != "connecting":
        await _until_seen(app, 1)
    if when == "reading the body":
        await deferLater(reactor, 0.1, lambda: None)  # the head reaches the client
    d.cancel()
    with pytest.raises(CancelledError):
        await d


@pytest_twisted.ensureDeferred
async def test_a_fetch_cancelled_while_draining_a_redirect_follows_it_no_further(
    app: App,
) -> None:
    d = fetcher().fetch(base(app) + "/moved-stalled", Method.POST, PARAMS)
    await _until_seen(app, 1)
    await deferLater(reactor, 0.1, lambda: None)  # the 302's head reaches the client
    d.cancel()
    with pytest.raises(CancelledError):
        await d
    await deferLater(reactor, 0.1, lambda: None)
    assert [s.path for s in app.seen] == ["/moved-stalled"]


@pytest_twisted.ensureDeferred
async def test_a_cancelled_fetch_answer_tries_no_fallback(app: App) -> None:
    d = fetcher().fetch_answer(
        UrlSpec(base(app) + "/slow"), UrlSpec(base(app) + "/fallback"), PARAMS
    )
    await _until_seen(app, 1)
    d.cancel()
    with pytest.raises(CancelledError):
        await d
    await deferLater(reactor, 0.05, lambda: None)
    assert [s.path for s in app.seen] == ["/slow"]


@pytest_twisted.ensureDeferred
async def test_non_2xx_is_a_fetch_error_with_status(app: App) -> None:
    with pytest.raises(FetchError) as info:
        await fetcher().fetch(base(app) + "/error500", Method.POST, PARAMS)
    assert info.value.status == 500


@pytest_twisted.ensureDeferred
async def test_connection_refused_is_a_fetch_error(app: App) -> None:
    port = reactor.listenTCP(0, server.Site(Resource()), interface="127.0.0.1")
    dead = port.getHost().port
    await port.stopListening()
    with pytest.raises(FetchError, match="connection failed"):
        await fetcher().fetch(f"http://127.0.0.1:{dead}/answer", Method.POST, PARAMS)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
async def test_ten_megabyte_body_is_refused_without_reading_it_all(app: App, path: str) -> None:
    with pytest.raises(FetchError, match="larger than 102400 bytes"):
        await fetcher().fetch(base(app) + path, Method.POST, PARAMS)


@pytest_twisted.ensureDeferred
async def test_html_error_page_and_entities_are_xml_errors(app: App) -> None:
    with pytest.raises(XMLError, match="not well-formed XML"):
        await fetcher().fetch(base(app) + "/html", Method.POST, PARAMS)
    with pytest.raises(XMLError, match="DOCTYPE"):
        await fetcher().fetch(base(app) + "/entities", Method.POST, PARAMS)


@pytest_twisted.ensureDeferred
async def test_redirects_are_followed_and_bounded(app: App) -> None:
    doc = await fetcher().fetch(base(app) + "/moved", Method.POST, PARAMS)
    assert doc.verbs == (Speak("hello"),)
    assert [s.path for s in app.seen] == ["/moved", "/answer"]
    assert all(s.signed_ok() for s in app.seen)
    app.seen.clear()
    with pytest.raises(FetchError, match="more than 5 HTTP redirects"):
        await fetcher().fetch(base(app) + "/loop", Method.POST, PARAMS)
    assert len(app.seen) == 6


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("broken", ["/error500", "/html", "/slow", "/huge", "/entities"])
async def test_fallback_answer_url_when_the_answer_url_fails(app: App, broken: str) -> None:
    doc = await fetcher(timeout=0.3).fetch_answer(
        UrlSpec(base(app) + broken), UrlSpec(base(app) + "/fallback", Method.GET), PARAMS
    )
    assert doc.verbs == (Speak("fallback"),)
    assert [s.path for s in app.seen] == [broken, "/fallback"]
    assert app.seen[1].method == "GET"
    assert app.seen[1].query == PARAMS


@pytest_twisted.ensureDeferred
async def test_without_fallback_the_answer_failure_is_raised(app: App) -> None:
    with pytest.raises(FetchError):
        await fetcher().fetch_answer(UrlSpec(base(app) + "/error500"), None, PARAMS)


@pytest_twisted.ensureDeferred
async def test_notify_logs_failures_and_never_raises(app: App) -> None:
    f = fetcher(timeout=0.3)
    assert await f.notify(base(app) + "/answer", Method.POST, PARAMS) is None
    assert await f.notify(base(app) + "/error500", Method.GET, PARAMS) is None
    assert await f.notify(base(app) + "/slow", Method.POST, PARAMS) is None
    assert await f.notify("http://127.0.0.1:1/nothing", Method.POST, PARAMS) is None
    assert [s.path for s in app.seen] == ["/answer", "/error500", "/slow"]


def test_nonces_are_twenty_random_digits() -> None:
    from xml_dsl.signature import NONCE_DIGITS, make_nonce

    nonces = {make_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(len(n) == NONCE_DIGITS and n.isdigit() for n in nonces)
    # Leading zeros are kept: every position takes every digit.
    assert {n[0] for n in nonces} == set("0123456789")  # 200 draws: all ten, surely


def test_application_endpoints_connect_to_addresses_without_resolving() -> None:
    from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
    from twisted.web.client import URI

    from xml_dsl.fetcher import _ApplicationEndpoints

    endpoints = _ApplicationEndpoints(reactor)
    v4 = endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8080/a"))
    assert isinstance(v4, TCP4ClientEndpoint)
    assert (v4._host, v4._port) == ("127.0.0.1", 8080)
    v6 = endpoints.endpointForURI(URI.fromBytes(b"http://[::1]:8081/a"))
    assert isinstance(v6, TCP6ClientEndpoint)
    assert (v6._host, v6._port) == ("::1", 8081)
    named = endpoints.endpointForURI(URI.fromBytes(b"http://apps.example.com/a"))
    assert isinstance(named, HostnameEndpoint)
    tls = endpoints.endpointForURI(URI.fromBytes(b"https://127.0.0.1/a"))
    assert type(tls).__name__ == "_WrapperEndpoint"  # TLS around the direct connection
    assert isinstance(tls._wrappedEndpoint, TCP4ClientEndpoint)


@pytest_twisted.ensureDeferred
async def test_fetch_by_address_uses_no_resolver(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default agent connects to an IP address without a name lookup."""

    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError("an IP address was resolved")

    monkeypatch.setattr(reactor.nameResolver, "resolveHostName", no_lookup)
    doc = await fetcher().fetch(base(app) + "/answer", Method.POST, PARAMS)
    assert doc.verbs == (Speak("hello"),)


class _Closer(Protocol):
    """Reads whole requests; :class:`_ClosingServer` decides whether to answer."""

    def __init__(self, server: _ClosingServer, number: int) -> None:
        self.server = server
        self.number = number
        self.buffer = b""
        self.requests = 0

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            fields = (line.partition(b":") for line in head.split(b"\r\n")[1:])
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            length = int(headers.get(b"content-length", b"0"))
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.requests += 1
            nonce = headers.get(NONCE_HEADER.lower().encode(), b"")
            self.server.seen.append((self.number, self.requests, nonce))
            if self.server.answer(self.number, self.requests):
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD)
                )
            else:
                self.transport.loseConnection()
                return


class _ClosingServer(Factory):
    """An application server that closes some connections without answering.

    ``answer(connection, request)`` says whether the *request*-th request on the
    *connection*-th connection (both from 1) gets a kept-alive 200.
    """

    def __init__(self, answer: Callable[[int, int], bool]) -> None:
        self.answer = answer
        self.seen: list[tuple[int, int, bytes]] = []
        self.connections: list[_Closer] = []

    def buildProtocol(self, addr: object) -> _Closer:
        protocol = _Closer(self, len(self.connections) + 1)
        self.connections.append(protocol)
        return protocol


def _serve_closing(answer: Callable[[int, int], bool]) -> tuple[_ClosingServer, Any]:
    factory = _ClosingServer(answer)
    return factory, reactor.listenTCP(0, factory, interface="127.0.0.1")


async def _stop_closing(factory: _ClosingServer, port: Any) -> None:
    for protocol in factory.connections:
        if protocol.transport is not None and protocol.transport.connected:
            protocol.transport.loseConnection()
    await port.stopListening()
    await deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_closed_by_the_app_is_retried_once() -> None:
    """The app's server closes a kept-alive connection as the next POST arrives on it
    (an idle timeout racing the reuse): the POST is sent again on a new connection,
    with a new nonce, and the fetch succeeds."""
    factory, port = _serve_closing(lambda connection, request: request == 1)
    pool = HTTPConnectionPool(reactor, persistent=True)  # as the call service's
    f = Fetcher(reactor=reactor, auth_token=TOKEN, agent=application_agent(reactor, pool))
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/answer"
        first = await f.fetch(url, Method.POST, PARAMS)
        second = await f.fetch(url, Method.POST, PARAMS)
    finally:
        await pool.closeCachedConnections()
        await _stop_closing(factory, port)
    assert first.verbs == second.verbs == (Speak("hello"),)
    assert [(c, r) for c, r, _ in factory.seen] == [(1, 1), (1, 2), (2, 1)]
    nonces = [n for _, _, n in factory.seen]
    assert len(set(nonces)) == 3
    assert all(n.isdigit() for n in nonces)


@pytest_twisted.ensureDeferred
async def test_a_server_that_always_closes_is_tried_twice_then_fails() -> None:
    factory, port = _serve_closing(lambda connection, request: False)
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/answer"
        with pytest.raises(FetchError, match="connection failed"):
            await fetcher().fetch(url, Method.POST, PARAMS)
    finally:
        await _stop_closing(factory, port)
    assert [(c, r) for c, r, _ in factory.seen] == [(1, 1), (2, 1)]
