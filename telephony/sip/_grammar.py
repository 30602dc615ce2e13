"""The pieces of RFC 3261 §25's grammar the parser needs, as compiled regexes.

Each pattern cites the ABNF rule it stands for.  They match ``str`` that was
decoded from the wire as UTF-8 (headers may carry UTF-8 in quoted strings and
display names, §25.1 ``UTF8-NONASCII``).
"""

from __future__ import annotations

import re

__all__ = (
    "HOST",
    "LOOSE_REQUEST_LINE",
    "METHOD",
    "PARAM",
    "QUOTED",
    "REQUEST_LINE",
    "STATUS_LINE",
    "TOKEN",
    "split_commas",
    "unquote",
)

#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
#: Method = INVITEm / ACKm / ... / extension-method (a token).
METHOD = TOKEN
#: Request-Line = Method SP Request-URI SP SIP-Version CRLF (§25.1).  The version is
#: matched case-insensitively (§7.1: "SIP/2.0" compares so).
REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) (\S+) ([Ss][Ii][Pp]/[0-9]+\.[0-9]+)")
#: A request line with runs of SP between its parts (RFC 4475 §3.1.2.9 lwsstart, which a
#: liberal element may accept) or LWS inside its Request-URI (§3.1.2.8 lwsruri, which
#: gets a 400): the caller checks the URI group for whitespace.
LOOSE_REQUEST_LINE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+) +(\S(?:.*\S)?) +([Ss][Ii][Pp]/[0-9]+\.[0-9]+)"
)
#: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF; the phrase may be empty.
STATUS_LINE = re.compile(r"([Ss][Ii][Pp]/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?")
#: host = hostname / IPv4address / IPv6reference, then an optional ":" port.  Digits are
#: ASCII only: ``\d`` takes any Unicode decimal, which ``int()`` would then read.
HOST = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?)(?::([0-9]{1,5}))?"
)
#: quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
#: generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string.
#: Unquoted values are read leniently (any run without LWS, ";", "," or DQUOTE).  The
#: quantifiers are possessive: with plain ``\s*`` on both sides of the optional value, a
#: failing match tried every split of a run of spaces (8,000 spaces took 0.2 s).
PARAM = re.compile(r"\s*+([^\s=;,]++)\s*+(?:=\s*+(\"(?:[^\"\\]|\\.)*+\"|[^\s;,\"]*+))?\s*+")


_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def unquote(value: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved (``\\"`` → ``"``)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner
    return value


def split_commas(value: str) -> list[str]:
    """Split a header value at the commas that separate its values (§7.3.1).

    Commas inside quoted strings and ``<...>`` brackets are not separators.
    """
    if "," not in value:
        return [value.strip()] if value.strip() else []
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]
