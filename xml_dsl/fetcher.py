"""Fetching documents from applications, and telling them of events (treq).

Every request is signed the way Plivo signs it (``X-Plivo-Signature-V3`` with its
nonce), carries Plivo's parameter names, is bounded in time (the whole request, body
included), in size and in the redirects it follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from attrs import frozen
from treq.client import HTTPClient
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IAgentEndpointFactory, IResponse
from zope.interface import implementer

from xml_dsl._values import Method
from xml_dsl.errors import FetchError, XMLError
from xml_dsl.interfaces import IFetcher
from xml_dsl.parser import MAX_DOCUMENT_BYTES, parse
from xml_dsl.signature import NONCE_HEADER, SIGNATURE_HEADER, make_nonce, sign
from xml_dsl.verbs import Response

__all__ = [
    "DEFAULT_FETCH_TIMEOUT",
    "MAX_HTTP_REDIRECTS",
    "Fetcher",
    "UrlSpec",
    "application_agent",
]

#: Seconds a whole request may take, connection to last byte [ours; Plivo's
#: callbacks time out in seconds too, and a caller is waiting in silence].
DEFAULT_FETCH_TIMEOUT = 10.0

#: HTTP redirects (301, 302, 303, 307, 308) followed for one request [ours].
MAX_HTTP_REDIRECTS = 5

#: Sent with every request.
USER_AGENT = b"telephony-xml-dsl (Plivo-compatible)"

_REDIRECTS = frozenset((301, 302, 303, 307, 308))

log = Logger(namespace="xml_dsl.fetcher")

#: Seconds to establish a TCP connection to an application.
CONNECT_TIMEOUT = 10.0

#: Times a request is sent again, at once, when its connection was closed before any
#: byte of a response arrived [ours].  A kept-alive connection that the application's
#: server closes (its idle timeout, or an HTTP/1.0 server that did not say
#: ``Connection: close``) can be taken from the pool just before the close is seen;
#: Twisted retries such requests only for idempotent methods, and Plivo's are POSTs.
#: The retry is signed with a fresh nonce and stays within the request's timeout.
CLOSED_CONNECTION_RETRIES = 1


def _closed_before_response(exc: Exception) -> bool:
    """True if *exc* says the connection closed before a response began."""
    return isinstance(exc, (ResponseNeverReceived, RequestTransmissionFailed)) and all(
        reason.check(ConnectionDone, ConnectionLost) for reason in exc.reasons
    )


@implementer(IAgentEndpointFactory)
class _ApplicationEndpoints:
    """Endpoints for application URLs: an IP address is connected to directly.

    Twisted's default (:class:`~twisted.internet.endpoints.HostnameEndpoint`)
    resolves every host, IP literals included, with ``getaddrinfo`` in the
    reactor's thread pool: a thread hand-off per request, a few percent of a
    call's CPU when applications are addressed by IP.  Host names are resolved
    as before; ``https`` gets the browser-like TLS policy, as with a plain Agent.
    """

    def __init__(self, reactor: Any, timeout: float = CONNECT_TIMEOUT) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii").strip("[]")
        endpoint: IStreamClientEndpoint
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        else:
            endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port, self._timeout)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


def application_agent(reactor: Any, pool: HTTPConnectionPool | None = None) -> IAgent:
    """An :class:`~twisted.web.client.Agent` for application URLs (see
    :class:`_ApplicationEndpoints`), with connections from ``pool``."""
    return Agent.usingEndpointFactory(reactor, _ApplicationEndpoints(reactor), pool=pool)


@frozen
class UrlSpec:
    """An application URL and the method to request it with."""

    url: str
    method: Method = Method.POST


class _TooLargeError(Exception):
    pass


_DONE = Failure(ResponseDone())


class _LimitedBody(Protocol):
    """Collects a response body, refusing more than ``limit`` bytes."""

    def __init__(self, limit: int, finished: Deferred[bytes]) -> None:
        self._limit = limit
        self._size = 0
        self._parts: list[bytes] = []
        self._finished = finished

    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]
            self._finished.errback(_TooLargeError())
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self._finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)


class _Abort(Protocol):
    """Drops a response body unread (the connection is closed)."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


def _read_body(response: IResponse, limit: int) -> Deferred[bytes]:
    length = response.length
    if length is not UNKNOWN_LENGTH and isinstance(length, int) and length > limit:
        response.deliverBody(_Abort())
        return fail(_TooLargeError())
    holder: list[_LimitedBody] = []

    def cancel(d: Deferred[bytes]) -> None:
        if holder and holder[0].transport is not None:
            holder[0].transport.stopProducing()  # type: ignore[attr-defined]

    finished: Deferred[bytes] = Deferred(cancel)
    proto = _LimitedBody(limit, finished)
    holder.append(proto)
    response.deliverBody(proto)
    return finished


def _with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    extra = urlencode(list(params.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _safe(url: str) -> str:
    """The URL without its query, for logs and errors (queries may carry secrets)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@implementer(IFetcher)
class Fetcher:
    """Requests application URLs for one account.

    :param reactor: provides time (for the timeout) and, unless ``agent`` is given,
        TCP connections.
    :param auth_token: the account's auth token; requests are signed with it.
    :param timeout: seconds for a whole request, body included.
    :param agent: the HTTP agent (tests may pass their own).
    :param max_body: largest response body read, in bytes.
    :param max_redirects: HTTP redirects followed per request.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        auth_token: str | None,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
        agent: IAgent | None = None,
        max_body: int = MAX_DOCUMENT_BYTES,
        max_redirects: int = MAX_HTTP_REDIRECTS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._clock: IReactorTime = reactor
        self._auth_token = auth_token
        self._timeout = timeout
        self._max_body = max_body
        self._max_redirects = max_redirects
        self._client = HTTPClient(agent if agent is not None else application_agent(reactor))

    # ---------------------------------------------------------------- public

    def fetch(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[Response]:
        """Request ``url`` and parse the document it returns.

        :raises FetchError: connection error, timeout, non-2xx status, body too large,
            too many redirects.
        :raises XMLError: the body is not a valid document.
        :raises CancelledError: the returned Deferred was cancelled, at any stage.
        """
        return self._bounded(self._fetch(url, method, dict(params)), url)

    def fetch_answer(
        self, answer: UrlSpec, fallback: UrlSpec | None, params: Mapping[str, str]
    ) -> Deferred[Response]:
        """The call's first document: ``answer``, or ``fallback`` if that fails in any
        way (connection error, timeout, non-2xx, invalid XML).  Cancelled, it fails
        with :class:`CancelledError` and fetches no fallback."""
        return Deferred.fromCoroutine(self._fetch_answer(answer, fallback, dict(params)))

    def notify(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[None]:
        """Fire-and-forget: request ``url``, ignore the reply, log any failure."""
        params = dict(params)
        d = self._bounded(self._exchange(url, method, params), url)

        def done(_: object) -> None:
            log.debug("callback {url} delivered", url=_safe(url), call_uuid=params.get("CallUUID"))

        def failed(f: Failure) -> None:
            log.warn(
                "callback {url} failed: {reason}",
                url=_safe(url),
                reason=f.getErrorMessage(),
                call_uuid=params.get("CallUUID", ""),
            )

        d.addCallbacks(done, failed)
        return d

    # ---------------------------------------------------------------- internals

    async def _fetch_answer(
        self, answer: UrlSpec, fallback: UrlSpec | None, params: dict[str, str]
    ) -> Response:
        try:
            return await self.fetch(answer.url, answer.method, params)
        except (FetchError, XMLError) as exc:
            if fallback is None:
                raise
            log.warn(
                "answer_url {url} failed ({reason}); trying fallback_answer_url {fallback}",
                url=_safe(answer.url),
                reason=str(exc),
                fallback=_safe(fallback.url),
                call_uuid=params.get("CallUUID", ""),
            )
        return await self.fetch(fallback.url, fallback.method, params)

    async def _fetch(self, url: str, method: Method, params: dict[str, str]) -> Response:
        body = await self._exchange(url, method, params)
        return parse(body)

    def _bounded(self, coro: Any, url: str) -> Deferred[Any]:
        """Run ``coro`` within the timeout, and say why it stopped if it was stopped.

        Stopped by the timer, it fails with a :class:`FetchError` ("timed out").
        Cancelled by the caller (the far end hung up, a transfer), it fails with
        :class:`CancelledError`, whatever the request's own failure: twisted.web
        reports the abort as ``ConnectingCancelledError`` or as a
        ``ResponseNeverReceived`` wrapping the cancellation, which :meth:`_send`
        would report as a dead URL, and callers must not take a cancellation for one.
        """
        request: Deferred[Any] = Deferred.fromCoroutine(coro)
        stopped_by: list[str] = []

        def cancel(_: Deferred[Any]) -> None:
            stopped_by.append("caller")
            request.cancel()

        def expire() -> None:
            stopped_by.append("timer")
            request.cancel()

        d: Deferred[Any] = Deferred(cancel)
        timer = self._clock.callLater(self._timeout, expire)

        def settle(result: object) -> None:
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure) and stopped_by:
                if stopped_by[0] == "caller":
                    result = Failure(CancelledError())
                else:
                    result = Failure(FetchError(_safe(url), f"timed out after {self._timeout:g} s"))
            if d.called:  # cancelled, and the request ended only later: d has its result
                return
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

        request.addBoth(settle)
        return d

    async def _exchange(self, url: str, method: Method, params: dict[str, str]) -> bytes:
        current, verb = url, method
        for _ in range(self._max_redirects + 1):
            response = await self._send(current, verb, params)
            code = response.code
            if code in _REDIRECTS:
                location = response.headers.getRawHeaders(b"location", [b""])[0]
                await self._drain(response, current, params.get("CallUUID", ""))
                if not location:
                    raise FetchError(_safe(current), f"HTTP {code} without Location", status=code)
                current = urljoin(current, location.decode("latin-1"))
                if urlsplit(current).scheme not in ("http", "https"):
                    raise FetchError(_safe(url), "redirected to a non-HTTP URL", status=code)
                if code == 303:
                    verb = Method.GET
                continue
            try:
                body = await _read_body(response, self._max_body)
            except _TooLargeError:
                raise FetchError(
                    _safe(current), f"response larger than {self._max_body} bytes"
                ) from None
            if not 200 <= code < 300:
                raise FetchError(_safe(current), f"HTTP status {code}", status=code)
            return body
        raise FetchError(_safe(url), f"more than {self._max_redirects} HTTP redirects")

    async def _drain(self, response: IResponse, url: str, call_uuid: str) -> None:
        """Read the body of ``url``'s redirect response (of no interest) so that its
        connection can be reused.  A body that fails does not stop the redirect; a
        cancellation while reading it stops the fetch, the redirect unfollowed."""
        try:
            await _read_body(response, self._max_body)
        except CancelledError:
            raise
        except Exception as exc:
            log.debug(
                "{url}: redirect body unread: {error}",
                url=_safe(url),
                error=str(exc),
                call_uuid=call_uuid,
            )

    async def _send(self, url: str, method: Method, params: dict[str, str]) -> IResponse:
        retries = CLOSED_CONNECTION_RETRIES
        while True:
            try:
                return await self._send_once(url, method, params)
            except CancelledError:
                raise
            except Exception as exc:
                if retries > 0 and _closed_before_response(exc):
                    retries -= 1
                    log.info(
                        "{url}: connection closed before a response; sending again",
                        url=_safe(url),
                        call_uuid=params.get("CallUUID", ""),
                    )
                    continue
                raise FetchError(_safe(url), f"connection failed: {exc}") from exc

    async def _send_once(self, url: str, method: Method, params: dict[str, str]) -> IResponse:
        """One signed request (a new nonce each time)."""
        nonce = make_nonce()
        headers: dict[bytes | str, list[bytes | str]] = {
            b"User-Agent": [USER_AGENT],
            b"Accept": [b"application/xml, text/xml"],
            NONCE_HEADER.encode(): [nonce.encode()],
        }
        if self._auth_token is not None:
            signature = sign(self._auth_token, method.value, url, params, nonce)
            headers[SIGNATURE_HEADER.encode()] = [signature.encode()]
        if method is Method.GET:
            target = _with_query(url, params)
            return await self._client.request("GET", target, headers=headers, allow_redirects=False)
        headers[b"Content-Type"] = [b"application/x-www-form-urlencoded"]
        return await self._client.request(
            "POST",
            url,
            data=urlencode(list(params.items())).encode(),
            headers=headers,
            allow_redirects=False,
        )
