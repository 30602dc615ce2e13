"""A small JSON-over-HTTP toolkit on ``twisted.web``: routes, parameters, errors.

Handlers are coroutines that take an :class:`ApiRequest` and return a
:class:`Reply`; raising a :class:`~telephony.directory.DirectoryError` (or an
:class:`HTTPError`) becomes Plivo's error shape, ``{"api_id": …, "error": …}``,
with the matching status code.  Anything else is logged and answered 500
without a traceback.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from telephony.directory import ConflictError, FieldError, NotFoundError

__all__ = (
    "MAX_BODY_BYTES",
    "ApiRequest",
    "BoundedRequest",
    "HTTPError",
    "JSONRouter",
    "Reply",
    "Route",
    "new_api_id",
)

log = Logger()

#: Largest request body read, in bytes; a larger one is answered 413 unread.
MAX_BODY_BYTES = 1 << 20


class HTTPError(Exception):
    """An error answered with *status* and a JSON ``error`` message."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@attrs.frozen
class Reply:
    """A status code and a JSON body (None for no body, as with 204)."""

    status: int
    body: Mapping[str, Any] | None


@attrs.frozen
class ApiRequest:
    """What a handler sees of a request.

    :ivar params: query parameters (GET) or the JSON / form body (POST, DELETE);
        form and query values are strings, JSON values keep their JSON types.
    :ivar path_args: the named groups of the matched route.
    :ivar base_uri: ``/v1/Account/{auth_id}`` for resource URIs in responses.
    """

    method: str
    params: Mapping[str, object]
    path_args: Mapping[str, str]
    base_uri: str

    def allow(self, names: Iterable[str]) -> None:
        """Refuse any parameter not in *names* (a typo must not be silently ignored).

        A parameter that repeats a path argument (the SDK sends ``endpoint_id`` both
        in the path and in the query) is allowed when it agrees with the path.
        """
        for name, value in self.path_args.items():
            if name in self.params and str(self.params[name]) != value:
                raise FieldError(name, "differs from the one in the path")
        unknown = sorted(set(self.params) - set(names) - set(self.path_args))
        if unknown:
            raise FieldError(unknown[0], "unknown parameter")

    def require(self, name: str) -> object:
        """The value of a mandatory parameter."""
        if name not in self.params or self.params[name] is None:
            raise FieldError(name, "is required")
        return self.params[name]


Handler = Callable[[ApiRequest], Awaitable[Reply]]


@attrs.frozen
class Route:
    """A method and a path pattern (named groups become ``path_args``)."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


class BoundedRequest(server.Request):
    """A request that stops buffering its body past :data:`MAX_BODY_BYTES`, and
    refuses a request target that is not ASCII, or a Content-Type Twisted cannot
    parse, with 400 before any resource sees it.

    Twisted's own error pages decode the target as ASCII: a POST with a raw byte
    like 0xa2 in its path to a page without POST raised, logged a traceback and
    answered 500 (found by ``tools/fuzz.py rest``).  RFC 3986 URIs are ASCII.
    """

    body_too_large = False
    _body_bytes = 0

    _processing = False

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Twisted parses a form POST's Content-Type with the email package, which
        raises ValueError for a control character in it (a form feed, say): the error
        left the HTTP parser, was logged as unhandled and the connection dropped
        (found by ``tools/fuzz.py rest``).  Such a request gets 400."""
        try:
            super().requestReceived(command, path, version)
        except ValueError:
            if self._processing or self.finished:
                raise
            self._refuse("Content-Type: not a media type")

    def process(self) -> None:
        self._processing = True
        if not self.uri.isascii():
            self._refuse("request target: not ASCII (RFC 3986)")
            return
        super().process()

    def _refuse(self, error: str) -> None:
        self.setResponseCode(400)
        self.setHeader(b"content-type", b"application/json")
        self.write(json.dumps({"api_id": new_api_id(), "error": error}).encode())
        self.finish()

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > MAX_BODY_BYTES:
            self.body_too_large = True
            return
        super().handleContentChunk(data)


def new_api_id() -> str:
    """A fresh ``api_id``: every response carries one, as Plivo's do."""
    return str(uuid.uuid4())


def _check_unicode(body: dict[str, object]) -> None:
    """Refuse lone surrogates (``"\\ud800"`` is valid JSON but no character): they
    cannot be encoded, so they must not reach the database, SIP or a subprocess."""
    for name, value in body.items():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError("body", "a parameter name is not valid Unicode") from None
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError(name, "not valid Unicode (a lone surrogate)") from None


def _decode_params(request: server.Request) -> dict[str, object]:
    """Query parameters for GET; the JSON or form body otherwise."""
    if getattr(request, "body_too_large", False):
        raise HTTPError(413, f"body: larger than {MAX_BODY_BYTES} bytes")
    # As bytes: a header that is not UTF-8 (any byte may come) must not raise here.
    raw_type = request.getHeader(b"content-type") or b""
    content_type = raw_type.decode("latin-1").split(";")[0].strip().lower()
    method = request.method.decode("ascii", "replace")
    if method != "GET" and content_type == "application/json":
        raw = request.content.read() if request.content is not None else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise FieldError("body", "must be a JSON object")
            _check_unicode(body)  # re-encodes: as deep as the parse
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FieldError("body", f"not valid JSON ({exc})") from None
        except RecursionError:
            raise FieldError("body", "nested too deeply") from None
        return body
    params: dict[str, object] = {}
    args: dict[bytes, list[bytes]] = request.args or {}
    for key, values in args.items():
        try:
            name = key.decode("utf-8")
            decoded = [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise FieldError("body", "parameters must be UTF-8") from None
        if len(decoded) != 1:
            raise FieldError(name, "given more than once")
        params[name] = decoded[0]
    return params


class JSONRouter(Resource):
    """Dispatches ``/v1/Account/{auth_id}/…`` to handlers, after Basic auth.

    :param check_auth: ``(user, password) -> bool``, constant-time.
    :param auth_id: the account ID the path must carry.
    """

    isLeaf = True

    def __init__(
        self,
        routes: Iterable[Route],
        check_auth: Callable[[str, str], bool],
        prefix: str,
    ) -> None:
        super().__init__()
        self._routes = tuple(routes)
        self._check_auth = check_auth
        self._prefix = prefix

    def render(self, request: server.Request) -> int:
        d = Deferred.fromCoroutine(self._handle(request))
        d.addErrback(self._unexpected, request)
        d.addCallback(self._write, request)
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return server.NOT_DONE_YET

    async def _handle(self, request: server.Request) -> tuple[Reply, dict[str, str]]:
        try:
            path = request.path.decode("utf-8")
        except UnicodeDecodeError:
            return Reply(404, {"api_id": new_api_id(), "error": "not found"}), {}
        try:
            if not self._authenticated(request):
                raise HTTPError(
                    401,
                    "authentication failed: use HTTP Basic auth with your auth ID and token",
                    {"WWW-Authenticate": 'Basic realm="telephony"'},
                )
            if not path.endswith("/"):
                path += "/"
            if not path.startswith(self._prefix):
                raise HTTPError(401, "authentication failed: the path names another account")
            route, args = self._match(request.method.decode("ascii", "replace"), path)
            api = ApiRequest(
                request.method.decode("ascii"), _decode_params(request), args, self._prefix[:-1]
            )
            return await route.handler(api), {}
        except HTTPError as exc:
            body = {"api_id": new_api_id(), "error": exc.message}
            return Reply(exc.status, body), exc.headers
        except FieldError as exc:
            return Reply(400, {"api_id": new_api_id(), "error": str(exc)}), {}
        except NotFoundError as exc:
            return Reply(404, {"api_id": new_api_id(), "error": str(exc)}), {}
        except ConflictError as exc:
            return Reply(409, {"api_id": new_api_id(), "error": str(exc)}), {}

    def _authenticated(self, request: server.Request) -> bool:
        user = request.getUser().decode("utf-8", "replace")
        password = request.getPassword().decode("utf-8", "replace")
        return self._check_auth(user, password)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route in self._routes:
            match = route.pattern.fullmatch(path[len(self._prefix) - 1 :])
            if match:
                if route.method == method:
                    # The path is matched as sent; its arguments are what it encodes
                    # (``/Number/%2B14155550100/`` names +14155550100).
                    return route, {k: unquote(v) for k, v in match.groupdict().items()}
                allowed.append(route.method)
        if allowed:
            raise HTTPError(
                405, f"method {method} not allowed here (allowed: {', '.join(allowed)})"
            )
        raise HTTPError(404, f"no resource at {path}")

    def _unexpected(
        self, failure: Failure, request: server.Request
    ) -> tuple[Reply, dict[str, str]]:
        api_id = new_api_id()
        log.failure(
            "Unexpected error in {method} {path} (api_id {api_id})",
            failure,
            method=request.method,
            path=request.path,
            api_id=api_id,
        )
        return Reply(500, {"api_id": api_id, "error": "internal server error"}), {}

    def _write(self, result: tuple[Reply, dict[str, str]], request: server.Request) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        reply, headers = result
        request.setResponseCode(reply.status)
        for name, value in headers.items():
            request.setHeader(name, value)
        if reply.body is not None:
            request.setHeader("content-type", "application/json")
            request.write(json.dumps(reply.body).encode("utf-8"))
        request.finish()
