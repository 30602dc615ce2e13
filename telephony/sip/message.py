"""SIP requests and responses: parsing and serializing (RFC 3261 §7, §18.3, §20).

:func:`parse_datagram` reads one message from a UDP datagram; :class:`StreamParser`
frames messages on a stream by Content-Length, fed in chunks of any size.  Bodies
stay bytes.  Malformed input raises :class:`~telephony.sip.errors.SipParseError`;
when the request line and enough headers were readable the error carries them, so
the transport can still answer 400 (§8.2.2.3, §21.4.1).
"""

from __future__ import annotations

import attrs

from telephony.sip._grammar import REQUEST_LINE, STATUS_LINE
from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, Headers, Via, parse_cseq, parse_via
from telephony.sip.uri import URI, AbsoluteURI, NameAddr, parse_name_addr, parse_uri

__all__ = (
    "MAX_MESSAGE_BYTES",
    "Message",
    "Request",
    "Response",
    "StreamParser",
    "parse_datagram",
    "reason_phrase",
)

#: Largest message we accept, headers and body, in bytes (a UDP datagram's limit).
MAX_MESSAGE_BYTES = 65_535
#: Largest header section on a stream before its blank line is seen, in bytes.
MAX_HEAD_BYTES = 16_384
#: Headers every request must carry (§8.1.1); a request without one gets 400.
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_UNPARSED = AbsoluteURI("invalid", "unparsed")

_REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    """The RFC's reason phrase for *status* (or a generic one for its class)."""
    return _REASONS.get(status) or _REASONS.get(status - status % 100, "Unknown")


class Message:
    """What requests and responses share: headers, body, and parsed header views."""

    __slots__ = ("_cseq", "_vias", "body", "headers", "version")

    def __init__(self, headers: Headers, body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.headers = headers
        self.body = body
        self.version = version
        self._vias: list[Via] | None = None
        self._cseq: CSeq | None = None

    # Views parsed on first use; a malformed header raises SipParseError there.

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        if self._cseq is None:
            self._cseq = parse_cseq(self.headers.get("CSeq") or "")
        return self._cseq

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first."""
        if self._vias is None:
            self._vias = [parse_via(v) for v in self.headers.values("Via")]
        return self._vias

    @property
    def top_via(self) -> Via:
        """The topmost Via.  :raises SipParseError: there is none."""
        vias = self.vias
        if not vias:
            raise SipParseError("Missing Via header")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        """The parsed From header."""
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        """The parsed To header."""
        return parse_name_addr(self.headers.get("To") or "")

    def _serialize(self, start_line: str) -> bytes:
        self.headers.set("Content-Length", str(len(self.body)))
        head = f"{start_line}\r\n{self.headers.serialize()}\r\n"
        return head.encode("utf-8") + self.body

    def invalidate(self) -> None:
        """Forget parsed views after the headers were changed in place."""
        self._vias = None
        self._cseq = None


class Request(Message):
    """A SIP request.  ``uri`` is parsed; an unknown scheme is an AbsoluteURI (→ 416)."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: URI,
        headers: Headers,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        self.method = method
        self.uri = uri

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} Call-ID={self.call_id!r}>"

    def to_bytes(self) -> bytes:
        """The wire form, with a correct Content-Length."""
        return self._serialize(f"{self.method} {self.uri} {self.version}")


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} Call-ID={self.call_id!r}>"

    def to_bytes(self) -> bytes:
        """The wire form, with a correct Content-Length."""
        return self._serialize(f"{self.version} {self.status} {self.reason}")

    @classmethod
    def for_request(
        cls, request: Request, status: int, reason: str | None = None, to_tag: str | None = None
    ) -> Response:
        """A response to *request*: its Via, From, To, Call-ID and CSeq copied (§8.2.6.2).

        *to_tag* is added to To unless the request's To already has a tag.
        """
        headers = Headers()
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in request.headers.get_all(name):
                headers.add(name, value)
        if status == 100 and "Timestamp" in request.headers:
            headers.add("Timestamp", request.headers.get("Timestamp") or "")
        if to_tag is not None and status > 100:
            to = request.headers.get("To") or ""
            if ";tag=" not in to.replace(" ", "").lower():
                headers.set("To", f"{to};tag={to_tag}")
        return cls(status, reason or reason_phrase(status), headers)


@attrs.frozen
class _Head:
    start: str
    headers: Headers


def _split_head(head: bytes) -> _Head:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # §7.5: ignore CRLFs before the start line
    if not lines:
        raise SipParseError("Empty message")
    start = lines[0].rstrip()
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if not items:
                raise SipParseError("Bad header folding before the first header")
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")  # §7.3.1 unfolding
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip()
        if not sep or not name or " " in name or "\t" in name:
            raise SipParseError(f"Bad header line {line[:40]!r}")
        items.append((name, value.strip()))
    return _Head(start, Headers(items))


def _content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 9:
        raise SipParseError("Bad Content-Length header")
    return int(value)


def _build(head: _Head, body: bytes) -> Request | Response:
    match = REQUEST_LINE.fullmatch(head.start)
    if match:
        method, uri_text, version = match.groups()
        request = Request(method, _UNPARSED, head.headers, body, version.upper())
        try:
            missing = [name for name in _MANDATORY if name not in head.headers]
            if missing:
                raise SipParseError(f"Missing {missing[0]} header")
            request.cseq  # noqa: B018 - parsed now: a bad CSeq makes a bad request
            request.top_via  # noqa: B018
            if request.cseq.method != method:
                raise SipParseError("CSeq method does not match the request method")
            request.uri = parse_uri(uri_text)
        except SipParseError as exc:
            if not missing and _via_readable(request):
                exc.request = request  # enough to answer with a 400 (a bad CSeq too)
            raise
        return request
    match = STATUS_LINE.fullmatch(head.start)
    if match:
        version, status, reason = match.groups()
        response = Response(int(status), reason or "", head.headers, body, version.upper())
        if not 100 <= response.status <= 699:
            raise SipParseError("Bad status code")
        response.cseq  # noqa: B018
        response.top_via  # noqa: B018
        return response
    raise SipParseError("Bad start line")


def _via_readable(request: Request) -> bool:
    """Whether the top Via parses: what a 400 needs to find its way back (§18.2.2)."""
    try:
        request.top_via  # noqa: B018
    except SipParseError:
        return False
    return True


def _with_request(exc: SipParseError, head: _Head) -> SipParseError:
    """Attach the request *head* starts, when readable, to an error about its body."""
    try:
        built = _build(head, b"")
    except SipParseError as inner:
        exc.request = inner.request
    else:
        exc.request = built if isinstance(built, Request) else None
    return exc


def parse_datagram(data: bytes) -> Request | Response:
    """Parse the one message a UDP datagram carries.

    Without Content-Length the body is the rest of the datagram; with one, extra bytes
    are dropped and a shorter body is an error (§18.3).

    :raises SipParseError: malformed; ``.request`` is set when a 400 can be sent.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("Message Too Large", 513)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    parsed = _split_head(head)
    try:
        length = _content_length(parsed.headers)
        if length is not None:
            if len(body) < length:
                raise SipParseError("Body shorter than Content-Length")
            body = body[:length]
    except SipParseError as exc:
        raise _with_request(exc, parsed) from None
    return _build(parsed, body)


class StreamParser:
    """Frames messages on a TCP stream by Content-Length (§18.3); any chunking works.

    :meth:`feed` returns every message completed by the new bytes, and in their place
    a :class:`SipParseError` for each framed message that was malformed (the stream
    goes on).  A framing error (no or bad Content-Length, oversize) cannot be
    re-synchronised: it is the last item, and the caller should close the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False

    @property
    def failed(self) -> bool:
        """True after a framing error: nothing more can be read from this stream."""
        return self._failed

    def feed(self, data: bytes) -> list[Request | Response | SipParseError]:
        """Add bytes; return the messages (or per-message errors) they complete."""
        if self._failed:
            return []
        self._buffer += data
        out: list[Request | Response | SipParseError] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 §4.4.1) are skipped.
            while self._buffer[:2] == b"\r\n" or self._buffer[:1] == b"\n":
                del self._buffer[: 2 if self._buffer[:2] == b"\r\n" else 1]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._failed = True
                    out.append(SipParseError("Header section too large", 513))
                return out
            try:
                parsed = _split_head(bytes(self._buffer[:end]))
            except SipParseError as exc:
                self._failed = True
                out.append(exc)
                return out
            try:
                length = _content_length(parsed.headers)
                if length is None:
                    raise SipParseError("Missing Content-Length on a stream transport")
            except SipParseError as exc:
                self._failed = True
                out.append(_with_request(exc, parsed))
                return out
            total = end + 4 + length
            if total > MAX_MESSAGE_BYTES:
                self._failed = True
                out.append(_with_request(SipParseError("Message Too Large", 513), parsed))
                return out
            if len(self._buffer) < total:
                return out
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            try:
                out.append(_build(parsed, body))
            except SipParseError as exc:
                out.append(exc)
