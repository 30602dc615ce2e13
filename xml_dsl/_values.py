"""Attribute value grammar: Plivo's rules for booleans, methods, numbers, URLs and keys.

Each converter takes the attribute's text and returns a typed value, or raises
:class:`RuleError` with the rule in words; the parser adds the line, element and attribute.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = [
    "DTMF_KEYS",
    "MAX_TONE_MS",
    "MAX_URL_LENGTH",
    "MIN_TONE_MS",
    "RESERVED_HEADER_NAMES",
    "RESERVED_HEADER_PREFIXES",
    "Converter",
    "Method",
    "RuleError",
    "is_reserved_header",
]

#: Longest URL we accept in a document, in characters [ours; browsers and most
#: servers accept about 2,000].
MAX_URL_LENGTH = 2048

#: The keys a caller can press (RFC 4733 events 0-11; A-D are not in Plivo's grammar).
DTMF_KEYS = frozenset("0123456789*#")

_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")


class RuleError(ValueError):
    """A value broke a rule; the message is the rule, e.g. ``must be true or false``."""


class Method(Enum):
    """HTTP method for an application URL: GET sends a query, POST a form."""

    GET = "GET"
    POST = "POST"


def boolean(name: str, raw: str) -> bool:
    """Plivo's booleans: ``true`` or ``false`` (any letter case)."""
    low = raw.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise RuleError(f"{name} must be true or false")


def method(name: str, raw: str) -> Method:
    """``GET`` or ``POST`` (any letter case)."""
    try:
        return Method(raw.strip().upper())
    except ValueError:
        raise RuleError(f"{name} must be GET or POST") from None


_INT = re.compile(r"\A\+?[0-9]{1,9}\Z")


def integer(name: str, raw: str, *, low: int, high: int | None = None) -> int:
    """A decimal integer in ``[low, high]``; the message says the range in words."""
    text = raw.strip()
    if _INT.match(text) is not None:
        value = int(text)
        if value >= low and (high is None or value <= high):
            return value
    if high is not None:
        raise RuleError(f"{name} must be an integer from {low} to {high}")
    if low == 1:
        raise RuleError(f"{name} must be a positive integer")
    raise RuleError(f"{name} must be an integer >= {low}")


def url(name: str, raw: str) -> str:
    """A fully qualified ``http`` or ``https`` URL, at most :data:`MAX_URL_LENGTH` long."""
    text = raw.strip()
    if len(text) > MAX_URL_LENGTH:
        raise RuleError(f"{name} must be a URL of at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in text):
        raise RuleError(f"{name} must be a fully qualified http(s) URL without spaces")
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise RuleError(f"{name} must be a fully qualified http(s) URL")
    return text


def optional_url(name: str, raw: str) -> str | None:
    """A URL, or ``None`` for an empty value (Plivo writes ``""`` for "none")."""
    if raw.strip() == "":
        return None
    return url(name, raw)


def choice(name: str, raw: str, enum: type[_E], *, fold: Callable[[str], str] = str) -> _E:
    """One of an enum's values (after ``fold``), the message listing them all."""
    try:
        return enum(fold(raw.strip()))
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise RuleError(f"{name} must be one of: {allowed}") from None


def key(name: str, raw: str) -> str:
    """Exactly one DTMF key: 0-9, ``*`` or ``#``."""
    text = raw.strip()
    if len(text) != 1 or text not in DTMF_KEYS:
        raise RuleError(f"{name} must be one key: 0-9, * or #")
    return text


def finish_key(name: str, raw: str) -> str | None:
    """One DTMF key, or ``None`` for ``""`` / ``none`` (no finishing key)."""
    text = raw.strip()
    if text == "" or text.lower() == "none":
        return None
    if len(text) != 1 or text not in DTMF_KEYS:
        raise RuleError(f"{name} must be one key (0-9, * or #), empty or none")
    return text


def key_set(name: str, raw: str, *, allow_none: bool = False) -> frozenset[str]:
    """A set of DTMF keys written as one string, e.g. ``1234567890*#``.

    With ``allow_none``, ``""`` and ``none`` give the empty set.
    """
    text = raw.strip()
    if allow_none and (text == "" or text.lower() == "none"):
        return frozenset()
    if not text or any(c not in DTMF_KEYS for c in text):
        extra = ", empty or none" if allow_none else ""
        raise RuleError(f"{name} must be keys from 0-9, * and #{extra}")
    return frozenset(text)


_DIGITS_TO_SEND = re.compile(r"\A[0-9*#wW]{1,128}\Z")


def digits_to_send(name: str, raw: str) -> str:
    """Keys to send: 0-9, ``*``, ``#``, ``w`` (0.5 s pause) and ``W`` (1 s), at most 128."""
    text = raw.strip()
    if _DIGITS_TO_SEND.match(text) is None:
        raise RuleError(f"{name} must be 1 to 128 of 0-9, *, #, w (0.5 s pause), W (1 s pause)")
    return text


#: Shortest and longest tone in ``sendDigits="123@<ms>"``, in ms.  Plivo documents the
#: syntax (``123@1000``) but no range; these are the limits of FreeSWITCH, on which
#: Plivo runs (``switch_core_min_dtmf_duration`` 400 and ``..._max_...`` 192,000
#: samples at 8 kHz).  FreeSWITCH quietly clamps; we refuse, naming the range.
MIN_TONE_MS = 50
MAX_TONE_MS = 24000

_TONE_DIGITS = re.compile(r"\A([0-9*#wW]{1,128})(?:@([0-9]{1,9}))?\Z")


def digits_with_tone(name: str, raw: str) -> str:
    """``sendDigits`` of ``<Number>`` and ``<User>``: keys and pauses as
    :func:`digits_to_send`, optionally ending with ``@<ms>``, the length of every tone
    (``123@1000``: each key sounds for one second)."""
    text = raw.strip()
    match = _TONE_DIGITS.match(text)
    if match is None:
        raise RuleError(
            f"{name} must be 1 to 128 of 0-9, *, #, w (0.5 s pause), W (1 s pause), "
            "optionally followed by @ and the tone length in ms"
        )
    if match.group(2) is not None and not MIN_TONE_MS <= int(match.group(2)) <= MAX_TONE_MS:
        raise RuleError(
            f"{name}: the tone length after @ must be {MIN_TONE_MS} to {MAX_TONE_MS} ms"
        )
    return text


_PATTERN = re.compile(r"\A[0-9*#]{1,32}\Z")

#: Most comma-separated digit patterns in one ``digitsMatch`` [ours].
MAX_DIGIT_PATTERNS = 20


def digit_patterns(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated key sequences, e.g. ``123,*9``; empty gives ``()``."""
    text = raw.strip()
    if not text:
        return ()
    items = tuple(p.strip() for p in text.split(","))
    if len(items) > MAX_DIGIT_PATTERNS or any(_PATTERN.match(p) is None for p in items):
        raise RuleError(
            f"{name} must be up to {MAX_DIGIT_PATTERNS} comma-separated patterns "
            "of 1 to 32 keys (0-9, *, #)"
        )
    return items


_HEADER_TOKEN = re.compile(r"\A[A-Za-z0-9]{1,64}\Z")

#: Most custom SIP headers in one ``sipHeaders`` attribute [ours].
MAX_SIP_HEADERS = 20


def sip_headers(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2``: names and values of letters and digits only, as Plivo requires.

    The call layer sends each as ``X-PH-<name>: <value>``.
    """
    text = raw.strip()
    if not text:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        k, sep, v = item.strip().partition("=")
        if not sep or _HEADER_TOKEN.match(k) is None or _HEADER_TOKEN.match(v) is None:
            raise RuleError(
                f"{name} must be name=value pairs of letters and digits, comma-separated"
            )
        pairs.append((k, v))
    if len(pairs) > MAX_SIP_HEADERS:
        raise RuleError(f"{name} may carry at most {MAX_SIP_HEADERS} headers")
    return tuple(pairs)


#: Header names Plivo silently drops from customer ``sipHeaders``: these prefixes, in
#: any letter case, are its own and its carriers' (Plivo's Dial docs, "Reserved
#: sipHeaders prefixes").
RESERVED_HEADER_PREFIXES = ("ph-", "plivo", "fs-", "sipauth", "zt-", "twilio")
#: Whole header names reserved the same way (compared in any letter case).
RESERVED_HEADER_NAMES = frozenset({"clientregion"})


def is_reserved_header(header: str) -> bool:
    """Whether a customer SIP header name is Plivo's own, to be dropped silently."""
    low = header.strip().lower()
    return low in RESERVED_HEADER_NAMES or low.startswith(RESERVED_HEADER_PREFIXES)


_AUTH_USERNAME = re.compile(r"\A[\x21-\x7e]{1,128}\Z")

#: Length of a ``sipAuthPassword``, in characters (Plivo's Dial docs: 8-128).
SIP_AUTH_PASSWORD_CHARS = (8, 128)


def sip_auth_username(name: str, raw: str) -> str:
    """A SIP digest user name: 1 to 128 visible ASCII characters [ours]."""
    text = raw.strip()
    if _AUTH_USERNAME.match(text) is None:
        raise RuleError(f"{name} must be 1 to 128 visible ASCII characters, without spaces")
    return text


def sip_auth_password(name: str, raw: str) -> str:
    """A SIP digest password, 8 to 128 characters as Plivo requires.

    The message names the rule only: a password is never repeated in an error.
    """
    low, high = SIP_AUTH_PASSWORD_CHARS
    if not low <= len(raw) <= high or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise RuleError(f"{name} must be {low} to {high} characters, without control characters")
    return raw


def bounded_text(name: str, raw: str, *, most: int) -> str:
    """Free text of at most ``most`` characters, without control characters."""
    if len(raw) > most:
        raise RuleError(f"{name} must be at most {most} characters")
    if any(ord(c) < 0x20 and c not in "\t" for c in raw):
        raise RuleError(f"{name} must not contain control characters")
    return raw


_CALLER_ID = re.compile(r"\A\+?[A-Za-z0-9._-]{1,64}\Z")


def caller_id(name: str, raw: str) -> str:
    """A caller ID: a phone number (``+`` and digits) or a SIP user part, at most 64."""
    text = raw.strip()
    if _CALLER_ID.match(text) is None:
        raise RuleError(f"{name} must be a phone number or user name (letters, digits, . _ -)")
    return text


_LANGUAGE = re.compile(r"\A[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}\Z")


def language(name: str, raw: str) -> str:
    """A language tag such as ``en-US`` (BCP 47 shape)."""
    text = raw.strip()
    if _LANGUAGE.match(text) is None:
        raise RuleError(f"{name} must be a language tag such as en-US")
    return text


# ---------------------------------------------------------------- converter builders

#: A converter: ``(attribute name as written, raw text) -> value``, raising
#: :class:`RuleError` with the rule in words.
Converter = Callable[[str, str], _T]


def positive(name: str, raw: str) -> int:
    """An integer of at least 1."""
    return integer(name, raw, low=1)


def int_range(low: int, high: int | None = None) -> Converter[int]:
    """A converter to an integer in ``[low, high]`` (see :func:`integer`)."""

    def convert(name: str, raw: str) -> int:
        return integer(name, raw, low=low, high=high)

    return convert


def one_of(enum: type[_E], *, fold: Callable[[str], str] = str) -> Converter[_E]:
    """A converter to one of ``enum``'s values, after ``fold`` (see :func:`choice`)."""

    def convert(name: str, raw: str) -> _E:
        return choice(name, raw, enum, fold=fold)

    return convert


def blank_or(convert: Converter[_T]) -> Converter[_T | None]:
    """``convert``, except that a blank value means ``None`` (Plivo's "none")."""

    def maybe(name: str, raw: str) -> _T | None:
        if not raw.strip():
            return None
        return convert(name, raw)

    return maybe


def text_of_most(most: int) -> Converter[str]:
    """A converter to free text of at most ``most`` characters (see :func:`bounded_text`)."""

    def convert(name: str, raw: str) -> str:
        return bounded_text(name, raw, most=most)

    return convert


# ---------------------------------------------------------------- values of one verb's attributes

#: Most phrases in ``<GetInput hints>``, and longest phrase in characters [ours].
MAX_HINTS = 500
MAX_HINT_CHARS = 100


def voice(name: str, raw: str) -> str:
    """``<Speak voice>``: ``WOMAN``, ``MAN`` (any case) or an Amazon Polly voice name."""
    text = raw.strip()
    if text.upper() in ("WOMAN", "MAN"):
        return text.upper()
    if text.startswith("Polly.") and 6 < len(text) <= 64 and text[6:].replace("-", "").isalnum():
        return text
    raise RuleError(f"{name} must be WOMAN, MAN or an Amazon Polly voice such as Polly.Joanna")


def auto_or(low: int, high: int) -> Converter[int | None]:
    """A converter to ``None`` for ``auto``, else an integer in ``[low, high]``."""

    def convert(name: str, raw: str) -> int | None:
        if raw.strip().lower() == "auto":
            return None
        try:
            return integer(name, raw, low=low, high=high)
        except RuleError:
            raise RuleError(f"{name} must be auto or an integer from {low} to {high}") from None

    return convert


def hints(name: str, raw: str) -> tuple[str, ...]:
    """``<GetInput hints>``: comma-separated phrases, within :data:`MAX_HINTS` and
    :data:`MAX_HINT_CHARS`."""
    items = tuple(h.strip() for h in raw.split(",") if h.strip())
    if len(items) > MAX_HINTS or any(len(h) > MAX_HINT_CHARS for h in items):
        raise RuleError(
            f"{name} must be at most {MAX_HINTS} comma-separated phrases "
            f"of at most {MAX_HINT_CHARS} characters"
        )
    return items


def report_type(name: str, raw: str) -> str | None:
    """``transcriptionReportType``: a short word, or ``None`` when blank."""
    text = raw.strip()
    if not text:
        return None
    if not text.replace("_", "").isalnum() or len(text) > 32:
        raise RuleError(f"{name} must be a word of at most 32 letters, digits or _")
    return text


def sound(name: str, raw: str) -> str:
    """A conference sound: ``""`` (none), ``beep:1``, ``beep:2`` or a URL."""
    text = raw.strip()
    if text in ("", "beep:1", "beep:2"):
        return text
    try:
        return url(name, text)
    except RuleError:
        raise RuleError(f'{name} must be "", beep:1, beep:2 or a URL') from None
