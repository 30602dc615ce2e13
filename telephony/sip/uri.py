"""SIP, SIPS and tel URIs, and the name-addr form of From, To and Contact.

``sip:user:password@host:port;uri-parameters?headers`` (RFC 3261 §19.1, §25.1),
``tel:+1-800-555-0100;ext=12`` (RFC 3966), and ``"Display" <uri>;params``
(§20.10, §25.1 ``name-addr`` / ``addr-spec``).  Values are frozen; they print back
in the form they were parsed from, and compare by the rules of §19.1.4.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote as percent_decode
from urllib.parse import unquote_to_bytes

import attrs

from telephony.sip._grammar import HOST, PARAM, QUOTED, unquote
from telephony.sip.errors import SipParseError

__all__ = (
    "URI",
    "AbsoluteURI",
    "NameAddr",
    "Params",
    "SipURI",
    "TelURI",
    "format_params",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
)

#: Parameters in order, as (name, value or None for a flag).  Names keep their case.
Params = tuple[tuple[str, str | None], ...]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_TOKEN_DISPLAY = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]+")
_USER_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
_PASSWORD_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_TEL_NUMBER = re.compile(r"\+?[0-9A-Fa-f*#().\-]+")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
#: §25.1 unreserved = alphanum / mark: the characters whose escapes equal themselves.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")


def _canonical_escapes(text: str) -> str:
    """*text* with escaped unreserved characters decoded and other escapes upper-cased.

    §19.1.4: "Characters other than those in the reserved set are equivalent to their
    encoding", so ``%61lice`` is ``alice``, while ``%3B`` stays apart from ``;``.
    """
    if "%" not in text:
        return text
    return _ESCAPE.sub(_canonical_escape, text)


def _canonical_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def parse_params(text: str, *, where: str) -> Params:
    """``;a=b;c`` → ``(("a", "b"), ("c", None))``; quoted values keep their quotes."""
    params: list[tuple[str, str | None]] = []
    text = text.lstrip()
    if not text:
        return ()
    if not text.startswith(";"):
        raise SipParseError(f"Bad {where}: expected ';' before parameters")
    for chunk in text[1:].split(";") if '"' not in text else _split_semicolons(text[1:]):
        match = PARAM.fullmatch(chunk)
        if not match:
            raise SipParseError(f"Bad {where} parameter {chunk.strip()[:40]!r}")
        params.append((match.group(1), match.group(2)))
    return tuple(params)


def _split_semicolons(text: str) -> list[str]:
    parts, start, quoted, i = [], 0, False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            i += 1
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def format_params(params: Params) -> str:
    """The ``;name=value`` form of *params*."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: Params, name: str) -> str | None:
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return value if value is not None else ""
    return None


@attrs.frozen(eq=False)
class SipURI:
    """A ``sip:`` or ``sips:`` URI.

    :ivar user: the user part as written (percent-escapes kept); None when absent.
    :ivar host: host name, IPv4 address or bracketed IPv6 reference, as written.
    :ivar port: None when absent (5060, or 5061 for sips, by default).
    """

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    password: str | None = None
    params: Params = ()
    headers: str = ""

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"

    def param(self, name: str) -> str | None:
        """A URI parameter's value ("" for a flag), or None when absent."""
        return _param(self.params, name)

    @property
    def user_unescaped(self) -> str | None:
        """The user part with every %-escape decoded (invalid UTF-8 becomes U+FFFD)."""
        return None if self.user is None else percent_decode(self.user)

    @property
    def host_unbracketed(self) -> str:
        """The host without IPv6 brackets, lower-cased: what a socket address uses."""
        return self.host.strip("[]").lower()

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower-cased; "udp" when absent (tls for sips)."""
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def aor(self) -> str:
        """The address-of-record form: scheme, unescaped user and lower-cased host only.

        §10.3 step 5 drops the parameters and decodes the escapes.  A user whose escapes
        do not decode to UTF-8 keeps them (upper-cased), so that two such users stay two
        AoRs instead of both becoming U+FFFD.
        """
        user = self.user
        if user and "%" in user:
            try:
                user = unquote_to_bytes(user).decode("utf-8")
            except UnicodeDecodeError:
                user = _canonical_escapes(user)
        host = self.host.lower()
        return f"{self.scheme}:{user}@{host}" if user else f"{self.scheme}:{host}"

    def equivalent(self, other: object) -> bool:
        """URI equality of RFC 3261 §19.1.4 (used to match registered contacts).

        Scheme and host compare case-insensitively, userinfo case-sensitively, escapes of
        unreserved characters equal the characters; a component with a default value
        (port, transport...) never matches its absence; ``user``, ``ttl``, ``method``,
        ``maddr`` and ``transport`` must agree when either URI has one, other parameters
        only when both have them; URI headers must all be present in both and agree,
        in any order.
        """
        if not isinstance(other, SipURI):
            return False
        if self.scheme.lower() != other.scheme.lower() or self.port != other.port:
            return False
        if self.host.lower() != other.host.lower():
            return False
        if _canonical_userinfo(self) != _canonical_userinfo(other):
            return False
        mine, theirs = _canonical_params(self.params), _canonical_params(other.params)
        for key in ("user", "ttl", "method", "maddr", "transport"):
            if mine.get(key) != theirs.get(key):
                return False
        for key in mine.keys() & theirs.keys():
            if mine[key] != theirs[key]:
                return False
        return _canonical_headers(self.headers) == _canonical_headers(other.headers)

    def __eq__(self, other: object) -> bool:
        return other is self or self.equivalent(other)

    def __hash__(self) -> int:
        return hash((self.scheme.lower(), self.user_unescaped, self.host.lower(), self.port))


@attrs.frozen
class TelURI:
    """A ``tel:`` URI (RFC 3966): a global (``+``) or local number and parameters."""

    number: str
    params: Params = ()
    scheme: str = "tel"

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        """A parameter's value ("" for a flag), or None when absent."""
        return _param(self.params, name)


@attrs.frozen
class AbsoluteURI:
    """A URI of a scheme we do not route (``mailto:``, ``http:``…), kept as written."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


URI = SipURI | TelURI | AbsoluteURI


def _canonical_userinfo(uri: SipURI) -> tuple[str | None, str | None]:
    user = None if uri.user is None else _canonical_escapes(uri.user)
    password = None if uri.password is None else _canonical_escapes(uri.password)
    return user, password


def _canonical_params(params: Params) -> dict[str, str]:
    return {_canonical_escapes(k).lower(): _canonical_escapes(v or "").lower() for k, v in params}


def _canonical_headers(headers: str) -> list[tuple[str, str]]:
    if not headers:
        return []
    pairs = []
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        pairs.append((_canonical_escapes(name).lower(), _canonical_escapes(value)))
    return sorted(pairs)


#: URIs up to this many characters are remembered by :func:`parse_uri`.
_CACHED_URI_LENGTH = 256


def parse_uri(text: str) -> URI:
    """Parse a Request-URI or the URI of a name-addr.

    URIs are frozen values, and a registrar reads the same few per endpoint on every
    REGISTER (its Request-URI, the address-of-record in From and To, the device's
    Contact, the stored bindings' contacts), so the last 8,192 distinct short texts
    parsed are remembered: a repeat costs a dictionary lookup.  Errors are not
    remembered.

    :raises SipParseError: the text is not a URI we can read.
    """
    if len(text) <= _CACHED_URI_LENGTH:
        return _parse_uri_cached(text)
    return _parse_uri(text)


def _parse_uri(text: str) -> URI:
    match = _SCHEME.match(text)
    if not match:
        raise SipParseError(f"Bad URI {text[:60]!r}: no scheme")
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        number, sep, params = rest.partition(";")
        if not _TEL_NUMBER.fullmatch(number):
            raise SipParseError(f"Bad tel URI {text[:60]!r}")
        return TelURI(number, parse_params(sep + params, where="tel URI"))
    if not rest or any(c in rest for c in ' \t\r\n<>"'):
        raise SipParseError(f"Bad URI {text[:60]!r}")
    return AbsoluteURI(scheme, rest)


_parse_uri_cached = functools.lru_cache(maxsize=8192)(_parse_uri)


def _parse_sip(scheme: str, rest: str, text: str) -> SipURI:
    # userinfo first: a user part may hold "?" and ";" (§25.1 user-unreserved, RFC 4475
    # intmeth), and no part of a SIP URI but the userinfo's end may hold a bare "@".
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, sep, pw = userinfo.partition(":")
        if not user or not _USER_CHARS.fullmatch(user):
            raise SipParseError(f"Bad user part in URI {text[:60]!r}")
        if sep:
            if not _PASSWORD_CHARS.fullmatch(pw):
                raise SipParseError(f"Bad password in URI {text[:60]!r}")
            password = pw
    rest, _, headers = rest.partition("?")
    hostport, sep, params = rest.partition(";")
    match = HOST.fullmatch(hostport)
    if not match:
        raise SipParseError(f"Bad host in URI {text[:60]!r}")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError(f"Bad port in URI {text[:60]!r}")
    host = match.group(1)
    if host.startswith("[") and ":" not in host:
        raise SipParseError(f"Bad IPv6 reference in URI {text[:60]!r}")
    parsed = parse_params(";" + params if sep else "", where="URI")
    return SipURI(scheme, user, host, port, password, parsed, headers)


@attrs.frozen
class NameAddr:
    """``"Display" <uri>;params``: the value of From, To, Contact, Route…

    :ivar display: the display name, unquoted; None when absent.
    :ivar params: the header's parameters (``tag``, ``expires``, ``q``…), not the URI's.
    :ivar bracketed: whether the URI was written in angle brackets.
    """

    uri: URI
    display: str | None = None
    params: Params = ()
    bracketed: bool = True

    def __str__(self) -> str:
        display = ""
        if self.display is not None:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        """A header parameter's value ("" for a flag), or None when absent."""
        return _param(self.params, name)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (dialog identification, §19.3)."""
        return self.param("tag") or None

    def with_param(self, name: str, value: str | None) -> NameAddr:
        """A copy with *name* set (replacing an existing value)."""
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return attrs.evolve(self, params=(*kept, (name, value)))


def parse_name_addr(text: str) -> NameAddr:
    """Parse the name-addr or addr-spec form (§20.10).

    In the addr-spec form (no angle brackets), parameters after the URI belong to
    the header, as the RFC requires.  Like :func:`parse_uri`, short texts are
    remembered (a login's two REGISTERs carry the same From, an endpoint's every
    REGISTER the same To and Contact).

    :raises SipParseError: malformed.
    """
    if len(text) <= _CACHED_URI_LENGTH:
        return _parse_name_addr_cached(text)
    return _parse_name_addr(text)


def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        match = QUOTED.match(text)
        if not match:
            raise SipParseError("Bad display name: unterminated quoted string")
        display = unquote(match.group(0))
        text = text[match.end() :].lstrip()
        if not text.startswith("<"):
            raise SipParseError("Bad name-addr: display name without <URI>")
    if "<" in text:
        before, _, after = text.partition("<")
        if before.strip():
            if display is not None or not _TOKEN_DISPLAY.fullmatch(before):
                raise SipParseError(f"Bad display name {before.strip()[:40]!r}")
            display = " ".join(before.split())
        uri_text, sep, params = after.partition(">")
        if not sep:
            raise SipParseError("Bad name-addr: missing '>'")
        return NameAddr(
            parse_uri(uri_text.strip()), display, parse_params(params.strip(), where="header")
        )
    uri_text, sep, params = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError("Bad addr-spec: a URI with '?' or ',' needs <brackets>")
    return NameAddr(
        parse_uri(uri_text.strip()),
        None,
        parse_params(";" + params if sep else "", where="header"),
        bracketed=False,
    )


_parse_name_addr_cached = functools.lru_cache(maxsize=8192)(_parse_name_addr)
