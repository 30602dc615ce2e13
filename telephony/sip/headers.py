"""Header fields: an ordered, case-insensitive list, and the structured ones we read.

Headers are stored as they came (after unfolding), under their full names (compact
forms such as ``v`` and ``i`` are expanded, §7.3.3).  Values are parsed only when
asked for (``Via``, ``CSeq``, ``Contact``…), so a message we only forward or answer
costs little; unknown headers pass through untouched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

import attrs

from telephony.sip._grammar import HOST, TOKEN, split_commas
from telephony.sip.errors import SipParseError
from telephony.sip.uri import NameAddr, Params, format_params, parse_name_addr, parse_params

__all__ = (
    "COMPACT_FORMS",
    "CSeq",
    "Headers",
    "Via",
    "canonical_name",
    "parse_contacts",
    "parse_cseq",
    "parse_via",
)

#: Compact forms (RFC 3261 §7.3.3 and later RFCs) → full names.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "RAck", "Server", "Session-Expires", "Subject", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)  # fmt: skip
_CANONICAL = {name.lower(): name for name in (*_KNOWN, *COMPACT_FORMS.values())} | COMPACT_FORMS
#: Names always stored in this spelling (whatever the case on the wire), so found by ``==``.
_CANONICAL_NAMES = frozenset(_CANONICAL.values())


#: Names already in their canonical spelling map to themselves: no lower() on the hot path.
_EXACT = {name: name for name in _CANONICAL_NAMES}


def canonical_name(name: str) -> str:
    """The full, conventionally capitalised name of a header (compact forms expanded)."""
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    return _CANONICAL.get(name.lower(), name)


class Headers:
    """An ordered multi-map of header fields with case-insensitive names.

    Each entry is one header line (``Via: a, b`` stays one entry); use
    :meth:`values` to get comma-separated values split out.
    """

    __slots__ = ("_first", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]
        #: The first value of each name, built on the first :meth:`get` and dropped by
        #: every change: a request's headers are read a dozen times, changed rarely.
        self._first: dict[str, str] | None = None

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Headers:
        """Headers from the lines of a message's header section (after the start line).

        Empty lines are skipped; a line starting with SP or HTAB continues the previous
        one (§7.3.1: the fold and its LWS become one SP).

        :raises SipParseError: a line without a colon or with LWS inside its name, or a
            continuation before any header.
        """
        items: list[tuple[str, str]] = []
        exact = _EXACT.get
        for line in lines:
            if not line:
                continue
            if line[0] in " \t":
                if not items:
                    raise SipParseError("Bad header folding before the first header")
                name, value = items[-1]
                folded = line.strip()
                items[-1] = (name, f"{value} {folded}" if value and folded else value or folded)
                continue
            name, sep, value = line.partition(":")
            name = name.rstrip()
            if not sep or not name or " " in name or "\t" in name:
                raise SipParseError(f"Bad header line {line[:40]!r}")
            items.append((exact(name) or canonical_name(name), value.strip()))
        headers = cls()
        headers._items = items
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        """An independent copy."""
        new = Headers()
        new._items = list(self._items)
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of *name*, or *default*."""
        name = _EXACT.get(name) or canonical_name(name)
        if name in _CANONICAL_NAMES:  # every line of it was stored under this spelling
            return self._index().get(name, default)
        lowered = name.lower()
        for key, value in self._items:
            if key.lower() == lowered:
                return value
        return default

    def _index(self) -> dict[str, str]:
        """The first value of each name (built on first use, kept through changes)."""
        first = self._first
        if first is None:
            # Reversed, so that the first line of each name is the one kept.
            first = self._first = {key: value for key, value in reversed(self._items)}
        return first

    def get_all(self, name: str) -> list[str]:
        """Every line's value for *name*, in order."""
        name = _EXACT.get(name) or canonical_name(name)
        if name in _CANONICAL_NAMES:
            if name not in self._index():  # most asked-for headers are absent: no scan
                return []
            return [value for key, value in self._items if key == name]
        lowered = name.lower()
        return [value for key, value in self._items if key.lower() == lowered]

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of *name*, across all its lines (§7.3.1)."""
        out: list[str] = []
        for line in self.get_all(name):
            out.extend(split_commas(line))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        name = canonical_name(name)
        self._items.append((name, value))
        if self._first is not None:
            self._first.setdefault(name, value)  # first of its name only if none before

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (a new top Via)."""
        self._first = None
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of *name* with one line (in the first one's place)."""
        self._first = None
        name = canonical_name(name)
        items = self._items
        if name in _CANONICAL_NAMES:  # stored in this spelling: compare with ==
            found = [i for i, (key, _) in enumerate(items) if key == name]
        else:
            lowered = name.lower()
            found = [i for i, (key, _) in enumerate(items) if key.lower() == lowered]
        if not found:
            items.append((name, value))
            return
        items[found[0]] = (name, value)
        for i in reversed(found[1:]):
            del items[i]

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first line of *name* (e.g. the top Via line), keeping the others."""
        name = canonical_name(name)
        exact = name in _CANONICAL_NAMES
        if self._first is not None:
            if exact:
                self._first[name] = value  # the line replaced (or appended) is the first
            else:
                self._first = None
        lowered = name.lower()
        for i, (key, _) in enumerate(self._items):
            if key == name if exact else key.lower() == lowered:
                self._items[i] = (key, value)
                return
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        """Drop every line of *name*."""
        self._first = None
        lowered = canonical_name(name).lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lowered]

    def serialize(self) -> str:
        """``Name: value\\r\\n`` lines."""
        return "".join([f"{k}: {v}\r\n" for k, v in self._items])

    def extend(self, other: Headers) -> None:
        """Append every line of *other*, in order."""
        self._items.extend(other._items)  # already stored under canonical names
        first = self._first
        if first is not None:
            for name, value in other._items:
                first.setdefault(name, value)

    def subset(self, names: Iterable[str], **suffixes: str) -> Headers:
        """A new Headers with every line of each of *names*, grouped in that order,
        the first line of a name given in *suffixes* with that text appended
        (``To=";tag=…"``).

        One pass over the lines (what a response copies from its request, §8.2.6.2).
        """
        wanted: dict[str, list[tuple[str, str]]] = {n: [] for n in _canonical_names(names)}
        if not wanted.keys() <= _CANONICAL_NAMES or not suffixes.keys() <= wanted.keys():
            new = Headers((n, v) for n in wanted for v in self.get_all(n))
            for name, suffix in suffixes.items():
                if suffix:
                    new.replace_first(name, f"{new.get(name) or ''}{suffix}")
            return new
        for item in self._items:
            bucket = wanted.get(item[0])
            if bucket is not None:
                extra = suffixes.get(item[0]) if not bucket else None
                bucket.append((item[0], item[1] + extra) if extra else item)
        new = Headers()
        new._items = [item for bucket in wanted.values() for item in bucket]
        return new


@functools.lru_cache(maxsize=64)
def _canonical_tuple(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(canonical_name(n) for n in names)


def _canonical_names(names: Iterable[str]) -> tuple[str, ...]:
    """*names* canonicalised; a tuple of names (what callers pass) is done once."""
    if isinstance(names, tuple):
        return _canonical_tuple(names)
    return tuple(canonical_name(n) for n in names)


@attrs.frozen
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=…;rport;received=…`` (§20.42, RFC 3581).

    :ivar version: the protocol version of ``sent-protocol`` ("2.0"); another version is
        kept so that the TU can answer 505 (RFC 4475 §3.1.2.16) to where the Via says.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    version: str = "2.0"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        sent_by = f"{self.host}{port}{format_params(self.params)}"
        return f"SIP/{self.version}/{self.transport} {sent_by}"

    def param(self, name: str) -> str | None:
        """A parameter's value ("" for a flag), or None when absent."""
        lowered = name.lower()
        for key, value in self.params:
            if key == lowered or key.lower() == lowered:
                return value if value is not None else ""
        return None

    @property
    def branch(self) -> str | None:
        """The branch parameter, or None (an RFC 2543 peer)."""
        return self.param("branch") or None

    def with_params(self, **updates: str | None) -> Via:
        """A copy with parameters set (``rport="5060"``, ``received="1.2.3.4"``)."""
        params = list(self.params)
        for name, value in updates.items():
            for i, (key, _) in enumerate(params):
                if key.lower() == name:
                    params[i] = (key, value)
                    break
            else:
                params.append((name, value))
        return Via(self.transport, self.host, self.port, tuple(params), self.version)


#: via-parm = sent-protocol LWS sent-by *( SEMI via-params ); sent-protocol =
#: "SIP" SLASH protocol-version SLASH transport, with LWS allowed around the slashes.
_VIA = re.compile(
    rf"\s*SIP\s*/\s*({TOKEN.pattern})\s*/\s*({TOKEN.pattern})\s+([^;\s]+)\s*(;.*)?",
    re.I | re.S,
)


#: The Via nearly every client sends: ``SIP/2.0/UDP host[:port]`` then ``;name[=value]``
#: parameters, no LWS, no quotes.  What it matches, :data:`_VIA` reads the same way;
#: anything else takes the general path.
_SIMPLE_VIA = re.compile(rf"SIP/2\.0/([A-Za-z]+) {HOST.pattern}((?:;[^\s=;,\"]+(?:=[^\s;,\"]*)?)*)")


def parse_via(value: str) -> Via:
    """Parse one Via value.  :raises SipParseError:"""
    simple = _SIMPLE_VIA.fullmatch(value)
    if simple is not None:
        transport, host, port_text, params_text = simple.groups()
        port = int(port_text) if port_text else None
        if port is None or 0 < port < 65536:
            pairs: Params = ()
            if params_text:
                pairs = tuple(
                    (name, text if eq else None)
                    for name, eq, text in (p.partition("=") for p in params_text[1:].split(";"))
                )
            return Via(transport.upper(), host, port, pairs, "2.0")
    match = _VIA.fullmatch(value)
    if not match:
        raise SipParseError("Bad Via header")
    version, transport, sent_by, params = match.groups()
    host = HOST.fullmatch(sent_by)
    if not host:
        raise SipParseError("Bad Via header: bad sent-by host")
    port = int(host.group(2)) if host.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError("Bad Via header: bad port")
    parsed = parse_params((params or "").strip(), where="Via")
    return Via(transport.upper(), host.group(1), port, parsed, version)


@attrs.frozen
class CSeq:
    """``CSeq: 4711 INVITE`` (§20.16): a 32-bit sequence number and a method."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


#: CSeq = 1*DIGIT LWS Method (§25.1), ASCII digits only.
_CSEQ = re.compile(rf"\s*([0-9]+)\s+({TOKEN.pattern})\s*")


def parse_cseq(value: str) -> CSeq:
    """Parse CSeq; the number must be below 2**31 as §8.1.1.5 requires.  :raises SipParseError:

    The few texts every client repeats (``1 REGISTER``, ``2 REGISTER``…) are
    remembered (CSeq is a frozen value).
    """
    if len(value) <= 32:
        return _parse_cseq_cached(value)
    return _parse_cseq(value)


def _parse_cseq(value: str) -> CSeq:
    match = _CSEQ.fullmatch(value)
    if not match:
        raise SipParseError("Bad CSeq header")
    digits, method = match.groups()
    # Checked before int(): Python refuses to convert more than 4,300 digits.
    if len(digits) > 10 or int(digits) >= 2**31:
        raise SipParseError("Bad CSeq header: number above 2**31")
    return CSeq(int(digits), method)


_parse_cseq_cached = functools.lru_cache(maxsize=1024)(_parse_cseq)


def parse_contacts(headers: Headers) -> list[NameAddr] | None:
    """The Contact values; None for the wildcard ``Contact: *`` (§10.2.2).

    :raises SipParseError: malformed, or ``*`` mixed with other contacts.
    """
    values = headers.values("Contact")
    if any(v.strip() == "*" for v in values):
        if len(values) != 1:
            raise SipParseError("Bad Contact: '*' must be the only contact")
        return None
    return [parse_name_addr(v) for v in values]
