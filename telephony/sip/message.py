"""SIP requests and responses: parsing and serializing (RFC 3261 §7, §18.3, §20).

:func:`parse_datagram` reads one message from a UDP datagram; :class:`StreamParser`
frames messages on a stream by Content-Length, fed in chunks of any size.  Bodies
stay bytes.  Malformed input raises :class:`~telephony.sip.errors.SipParseError`;
when the request line and enough headers were readable the error carries them, so
the transport can still answer 400 (§8.2.2.3, §21.4.1).
"""

from __future__ import annotations

import re

import attrs

from telephony.sip._grammar import LOOSE_REQUEST_LINE, REQUEST_LINE, STATUS_LINE
from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, Headers, Via, parse_cseq, parse_via
from telephony.sip.uri import URI, AbsoluteURI, NameAddr, SipURI, parse_name_addr, parse_uri

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
#: Headers every request must carry (§8.1.1) and every response copies (§8.2.6.2).
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
#: Headers that may appear only once (§7.3.1: only comma-list headers may repeat).
#: A second one makes the message ambiguous (RFC 4475 §3.3.8 multi01, §3.3.9 mcl01).
_SINGLE = frozenset(("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"))
_COUNTED = _SINGLE | {"Via"}
_UNPARSED = AbsoluteURI("invalid", "unparsed")
_WHITESPACE = re.compile(r"\s")
#: Content-Length = 1*DIGIT (§20.14); nine digits are plenty under MAX_MESSAGE_BYTES.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,9}")

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
    """What requests and responses share: headers, body, and parsed header views.

    The views are parsed once and kept.  :attr:`from_` and :attr:`to` remember the text
    they were read from and follow any change to it; after changing Via or CSeq in
    place, call :meth:`invalidate`.
    """

    __slots__ = ("_cseq", "_from", "_to", "_vias", "body", "headers", "version")

    def __init__(self, headers: Headers, body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.headers = headers
        self.body = body
        self.version = version
        self._vias: list[Via] | None = None
        self._cseq: CSeq | None = None
        self._from: tuple[str, NameAddr] | None = None
        self._to: tuple[str, NameAddr] | None = None

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
        raw = self.headers.get("From") or ""
        if self._from is None or self._from[0] != raw:
            self._from = (raw, parse_name_addr(raw))
        return self._from[1]

    @property
    def to(self) -> NameAddr:
        """The parsed To header."""
        raw = self.headers.get("To") or ""
        if self._to is None or self._to[0] != raw:
            self._to = (raw, parse_name_addr(raw))
        return self._to[1]

    def _serialize(self, start_line: str) -> bytes:
        headers = self.headers
        length = str(len(self.body))
        if "Content-Length" in headers:
            headers.set("Content-Length", length)
        else:  # most messages we make: appended, no search-and-replace
            headers.add("Content-Length", length)
        head = f"{start_line}\r\n{headers.serialize()}\r\n"
        return head.encode("utf-8") + self.body

    def restamp_top_via(self, via: Via) -> None:
        """Record that the top Via header now says *via* (the other Vias are unchanged),
        so the parsed views stay valid without parsing every Via again."""
        vias = self.vias
        vias[0] = via

    def invalidate(self) -> None:
        """Forget the Via and CSeq views after those headers were changed in place.

        (From and To need no call: they are re-read when their text changes.  So the
        transport's Via stamping, which calls this, does not cost the TU a re-parse.)
        """
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
        tagged = to_tag is not None and status > 100 and not _has_to_tag(request)
        headers = request.headers.subset(_MANDATORY, To=f";tag={to_tag}" if tagged else "")
        if status == 100 and "Timestamp" in request.headers:
            headers.add("Timestamp", request.headers.get("Timestamp") or "")
        response = cls(status, reason or reason_phrase(status), headers)
        # The copied lines are the request's text, so its parsed views hold for them:
        # routing the response (by its top Via) needs no parse.
        if request._vias is not None:
            response._vias = list(request._vias)
        response._cseq = request._cseq
        response._from = request._from
        if not tagged:
            response._to = request._to
        return response


_TAG_PARAM = re.compile(r";\s*tag\s*=", re.IGNORECASE)


def _has_to_tag(request: Request) -> bool:
    try:
        return request.to.tag is not None
    except SipParseError:  # a 400 to a request whose To is unreadable: look at the text
        return _TAG_PARAM.search(request.headers.get("To") or "") is not None


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
    return _Head(lines[0].rstrip(), Headers.from_lines(lines[1:]))


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        # RFC 4475 §3.3.9 mcl01: no way to know which one frames the body.
        raise SipParseError("More than one Content-Length header")
    value = values[0].strip()
    if value == "0":
        return 0
    if not _CONTENT_LENGTH.fullmatch(value):
        raise SipParseError("Bad Content-Length header")
    return int(value)


def _check_headers(headers: Headers) -> None:
    """Every mandatory header present, no single-valued header twice.  One pass."""
    seen: dict[str, int] = {}
    for name, _ in headers:
        if name in _COUNTED:
            seen[name] = seen.get(name, 0) + 1
    for name in _MANDATORY:
        if name not in seen:
            raise SipParseError(f"Missing {name} header")
    for name, count in seen.items():
        if count > 1 and name in _SINGLE:
            raise SipParseError(f"More than one {name} header")


def _build(head: _Head, body: bytes) -> Request | Response:
    match = REQUEST_LINE.fullmatch(head.start)
    if match:
        method, uri_text, version = match.groups()
        return _build_request(method, uri_text, version, head.headers, body, loose=False)
    match = STATUS_LINE.fullmatch(head.start)
    if match:
        version, status, reason = match.groups()
        response = Response(int(status), reason or "", head.headers, body, version.upper())
        if not 100 <= response.status <= 699:
            raise SipParseError("Bad status code")
        _check_headers(head.headers)
        response.cseq  # noqa: B018 - each view parsed now: a message that parses is whole
        response.top_via  # noqa: B018
        response.from_  # noqa: B018
        response.to  # noqa: B018
        return response
    match = LOOSE_REQUEST_LINE.fullmatch(head.start)
    if match:
        method, uri_text, version = match.groups()
        return _build_request(method, uri_text, version, head.headers, body, loose=True)
    raise SipParseError("Bad start line")


def _build_request(
    method: str, uri_text: str, version: str, headers: Headers, body: bytes, *, loose: bool
) -> Request:
    """A request, every view checked.  Errors carry the request once its Via is readable.

    With a readable top Via a response can be routed (§18.2.2), so the error carries the
    request for the transport's 400; without one there is nowhere to answer.
    """
    request = Request(method, _UNPARSED, headers, body, version.upper())
    request.top_via  # noqa: B018 - raises, with no request attached, when unreadable
    try:
        _check_headers(headers)
        if request.cseq.method != method:
            raise SipParseError("CSeq method does not match the request method")
        request.from_  # noqa: B018
        request.to  # noqa: B018
        if loose and _WHITESPACE.search(uri_text):
            # RFC 4475 §3.1.2.8 lwsruri.  Runs of SP *between* the parts (lwsstart) are
            # accepted: unambiguous, and to_bytes() writes single SPs.
            raise SipParseError("Bad Request-URI: whitespace inside it")
        uri = parse_uri(uri_text)
        if isinstance(uri, SipURI) and uri.headers:
            # §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
            raise SipParseError("Bad Request-URI: it carries URI headers")
        request.uri = uri
    except SipParseError as exc:
        exc.request = request  # enough to answer with a 400
        raise
    return request


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
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line are ignored
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):  # bare-LF head (§7.5 leniency)
        head, body = data[:lf], data[lf + 2 :]
    elif crlf >= 0:
        head, body = data[:crlf], data[crlf + 4 :]
    else:
        head, body = data, b""
    parsed = _split_head(head)
    try:
        length = _content_length(parsed.headers)
    except SipParseError as exc:
        raise _with_request(exc, parsed) from None
    if length is None or len(body) >= length:
        return _build(parsed, body if length is None else body[:length])
    # RFC 4475 §3.1.2.2 clerr: a UDP body shorter than its Content-Length gets 400, but
    # an error in the head itself (multi01's duplicate headers) is the one to report.
    message = _build(parsed, body)
    short = SipParseError("Body shorter than Content-Length")
    short.request = message if isinstance(message, Request) else None
    raise short


class StreamParser:
    """Frames messages on a TCP stream by Content-Length (§18.3); any chunking works.

    :meth:`feed` returns every message completed by the new bytes, and in their place
    a :class:`SipParseError` for each framed message that was malformed (the stream
    goes on).  A framing error (no or bad Content-Length, oversize) cannot be
    re-synchronised: it is the last item, and the caller should close the connection.

    Each byte is searched once for the blank line and each head parsed once, however
    the stream is cut: a peer sending one byte per segment costs no more than one
    sending whole messages.  The limits do not depend on the chunking either: a head
    (with its blank line) over :data:`MAX_HEAD_BYTES`, or a message over
    :data:`MAX_MESSAGE_BYTES`, fails the stream with 513.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False
        #: How much of the buffer has been searched for the blank line, in bytes.
        self._scanned = 0
        #: The parsed head of the message whose body is arriving, and its total size.
        self._pending: tuple[_Head, int, int] | None = None

    @property
    def failed(self) -> bool:
        """True after a framing error: nothing more can be read from this stream."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Bytes of a message not yet complete (0 between messages), for read timeouts."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response | SipParseError]:
        """Add bytes; return the messages (or per-message errors) they complete."""
        if self._failed:
            return []
        self._buffer += data
        out: list[Request | Response | SipParseError] = []
        while True:
            if self._pending is None:
                error = self._read_head()
                if error is not None:
                    self._failed = True
                    out.append(error)
                    return out
                if self._pending is None:
                    return out
            head, body_start, total = self._pending
            if len(self._buffer) < total:
                return out
            body = bytes(self._buffer[body_start:total])
            del self._buffer[:total]
            self._pending = None
            self._scanned = 0
            try:
                out.append(_build(head, body))
            except SipParseError as exc:
                out.append(exc)

    def _read_head(self) -> SipParseError | None:
        """Find and parse the next head into ``_pending``; a framing error is returned."""
        buffer = self._buffer
        # Keep-alive CRLFs between messages (RFC 5626 §4.4.1) are skipped.
        skip = 0
        while buffer[skip : skip + 2] == b"\r\n" or buffer[skip : skip + 1] == b"\n":
            skip += 2 if buffer[skip] == 13 else 1
        if skip:
            del buffer[:skip]
            self._scanned = 0
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) >= MAX_HEAD_BYTES:
                return SipParseError("Header section too large", 513)
            return None
        if end + 4 > MAX_HEAD_BYTES:
            return SipParseError("Header section too large", 513)
        try:
            head = _split_head(bytes(buffer[:end]))
        except SipParseError as exc:
            return exc
        try:
            length = _content_length(head.headers)
            if length is None:
                raise SipParseError("Missing Content-Length on a stream transport")
        except SipParseError as exc:
            return _with_request(exc, head)
        total = end + 4 + length
        if total > MAX_MESSAGE_BYTES:
            return _with_request(SipParseError("Message Too Large", 513), head)
        self._pending = (head, end + 4, total)
        return None
