"""The SSML that Plivo allows inside ``<Speak>``, validated and kept for eSpeak NG.

eSpeak NG reads SSML (``espeak-ng -m``): we keep the markup as a ``<speak>`` document
rebuilt from the validated elements only, and a plain-text rendering for logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

from xml_dsl import _values as v
from xml_dsl._reader import XML_LANG, AttrReader, Ignored, fail, local_tag

__all__ = ["MAX_SPEAK_CHARS", "MAX_SSML_DEPTH", "SSML_TAGS", "speak_content"]

#: Longest text one ``<Speak>`` may hold, in characters [ours: Plivo's engines stop
#: near 3,000; a longer announcement belongs in several Speak verbs or a Play].
MAX_SPEAK_CHARS = 3000

#: Deepest nesting of SSML elements inside ``<Speak>`` [ours].
MAX_SSML_DEPTH = 8

_INLINE = ("break", "emphasis", "lang", "phoneme", "prosody", "say-as", "sub", "w")
_ALL = (*_INLINE, "p", "s")

#: Children each SSML container may hold (after Plivo's XML builder, ``plivo.xml``).
_CHILDREN: dict[str, frozenset[str]] = {
    "Speak": frozenset(_ALL),
    "break": frozenset(),
    "emphasis": frozenset(_INLINE),
    "lang": frozenset(_ALL),
    "p": frozenset((*_INLINE, "s")),
    "phoneme": frozenset(),
    "prosody": frozenset(_ALL),
    "s": frozenset(_INLINE),
    "say-as": frozenset(),
    "sub": frozenset(),
    "w": frozenset(("break", "emphasis", "phoneme", "prosody", "say-as", "sub")),
}

#: Every SSML tag accepted inside ``<Speak>``.
SSML_TAGS = frozenset(_ALL)

_STRENGTH = frozenset(("none", "x-weak", "weak", "medium", "strong", "x-strong"))
_BREAK_TIME = re.compile(r"\A([0-9]{1,5})(ms|s)\Z")
_LEVEL = frozenset(("strong", "moderate", "reduced"))
_ALPHABET = frozenset(("ipa", "x-sampa"))
_VOLUME = frozenset(("default", "silent", "x-soft", "soft", "medium", "loud", "x-loud"))
_VOLUME_DB = re.compile(r"\A[+-][0-9]{1,2}(\.[0-9]+)?dB\Z")
_RATE = frozenset(("x-slow", "slow", "medium", "fast", "x-fast"))
_PITCH = frozenset(("default", "x-low", "low", "medium", "high", "x-high"))
_PERCENT = re.compile(r"\A[+-]?[0-9]{1,3}%\Z")
_INTERPRET = frozenset(
    (
        "characters",
        "spell-out",
        "cardinal",
        "number",
        "ordinal",
        "digits",
        "fraction",
        "unit",
        "date",
        "time",
        "address",
        "expletive",
        "telephone",
    )
)
_DATE_FORMAT = frozenset(("mdy", "dmy", "ymd", "md", "dm", "ym", "my", "d", "m", "y", "yyyymmdd"))
_ROLE = frozenset(
    ("amazon:VB", "amazon:VBD", "amazon:NN", "amazon:SENSE_1", "amazon:DT", "amazon:IN")
)


def _one_of(allowed: frozenset[str]) -> Callable[[str, str], str]:
    def convert(name: str, raw: str) -> str:
        if raw not in allowed:
            raise v.RuleError(f"{name} must be one of: {', '.join(sorted(allowed))}")
        return raw

    return convert


def _break_time(name: str, raw: str) -> str:
    m = _BREAK_TIME.match(raw.strip())
    if m is None:
        raise v.RuleError(f"{name} must be a duration such as 500ms or 2s")
    ms = int(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    if ms > 10_000:
        raise v.RuleError(f"{name} must be at most 10s")
    return raw.strip()


def _pattern_or(
    allowed: frozenset[str], pattern: re.Pattern[str], what: str
) -> Callable[[str, str], str]:
    def convert(name: str, raw: str) -> str:
        if raw in allowed or pattern.match(raw) is not None:
            return raw
        raise v.RuleError(f"{name} must be one of: {', '.join(sorted(allowed))}, or {what}")

    return convert


def _text(name: str, raw: str) -> str:
    return v.bounded_text(name, raw, most=MAX_SPEAK_CHARS)


def _required_text(name: str, raw: str) -> str:
    if not raw.strip():
        raise v.RuleError(f"{name} must not be empty")
    return _text(name, raw)


def _read_attributes(el: etree._Element, tag: str, ignored: Ignored) -> dict[str, str]:
    """Validate one SSML element's attributes; return them (only the known ones)."""
    r = AttrReader(el, ignored)
    out: dict[str, str | None] = {}
    if tag == "break":
        out["strength"] = r.get("strength", _one_of(_STRENGTH), None)
        out["time"] = r.get("time", _break_time, None)
    elif tag == "emphasis":
        out["level"] = r.get("level", _one_of(_LEVEL), None)
    elif tag == "lang":
        out[XML_LANG] = r.require(XML_LANG, v.language)
    elif tag == "phoneme":
        out["alphabet"] = r.get("alphabet", _one_of(_ALPHABET), None)
        out["ph"] = r.require("ph", _required_text)
    elif tag == "prosody":
        out["volume"] = r.get("volume", _pattern_or(_VOLUME, _VOLUME_DB, "+/-n dB"), None)
        out["rate"] = r.get("rate", _pattern_or(_RATE, _PERCENT, "n%"), None)
        out["pitch"] = r.get("pitch", _pattern_or(_PITCH, _PERCENT, "+/-n%"), None)
    elif tag == "say-as":
        out["interpret-as"] = r.require("interpret-as", _one_of(_INTERPRET))
        out["format"] = r.get("format", _one_of(_DATE_FORMAT), None)
    elif tag == "sub":
        out["alias"] = r.require("alias", _required_text)
    elif tag == "w":
        out["role"] = r.get("role", _one_of(_ROLE), None)
    r.finish()
    return {k: val for k, val in out.items() if val is not None}


def _copy(src: etree._Element, dst: etree._Element, depth: int, ignored: Ignored) -> bool:
    """Validate ``src``'s children into ``dst``; True if any SSML element was seen."""
    parent = "Speak" if depth == 0 else local_tag(src)
    allowed = _CHILDREN[parent]
    found = False
    for child in src:
        tag = local_tag(child)
        if tag not in SSML_TAGS:
            raise fail(child, f"<{tag}> is not allowed inside <{parent}>")
        if tag not in allowed:
            raise fail(child, f"<{tag}> may not be nested in <{parent}>")
        if depth + 1 > MAX_SSML_DEPTH:
            raise fail(child, f"SSML nests deeper than {MAX_SSML_DEPTH} levels")
        if not _CHILDREN[tag] and len(child):
            raise fail(child, f"<{tag}> may not contain elements")
        if tag == "break" and (child.text or "").strip():
            raise fail(child, "<break> may not contain text")
        found = True
        copy = etree.SubElement(dst, tag, _read_attributes(child, tag, ignored))
        copy.text = child.text
        copy.tail = child.tail
        _copy(child, copy, depth + 1, ignored)
    return found


def speak_content(el: etree._Element, language: str, ignored: Ignored) -> tuple[str, str | None]:
    """Validate a ``<Speak>`` element's content; SSML attributes it does not know are
    appended to ``ignored`` (and left out of the SSML).

    :returns: ``(text, ssml)``: the plain text, and a ``<speak xml:lang=…>`` document
        when the content used SSML tags (``None`` otherwise).
    :raises XMLError: on a tag or attribute Plivo does not allow, empty or too long text.
    """
    root = etree.Element("speak", {XML_LANG: language})
    root.text = el.text
    has_ssml = _copy(el, root, 0, ignored)
    text = " ".join("".join(str(t) for t in root.itertext()).split())
    if not text and not has_ssml:
        raise fail(el, "Speak must contain text")
    if len(text) > MAX_SPEAK_CHARS:
        raise fail(el, f"Speak text must be at most {MAX_SPEAK_CHARS} characters")
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in text):
        raise fail(el, "Speak text must not contain control characters")
    if not has_ssml:
        return text, None
    return text, etree.tostring(root, encoding="unicode")
