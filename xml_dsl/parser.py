"""Secure parsing of Plivo XML into verb objects.

lxml is hardened: no DTD is loaded, no entity is expanded, nothing is fetched from the
network, and any DOCTYPE or entity declaration is refused outright. The size limit is
checked before lxml sees a byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from xml_dsl import _values as v
from xml_dsl._parse_dial import MAX_DIAL_TARGETS, parse_dial
from xml_dsl._reader import (
    AttrReader,
    Ignored,
    fail,
    line_of,
    local_tag,
    no_text,
    read_attributes,
    text_only,
)
from xml_dsl._values import MAX_HINTS
from xml_dsl.errors import XMLError
from xml_dsl.ssml import speak_content
from xml_dsl.verbs import (
    DTMF,
    Conference,
    Dial,
    GetDigits,
    GetInput,
    Hangup,
    InputType,
    Number,
    Play,
    PreAnswer,
    Prompt,
    Record,
    Redirect,
    Response,
    Speak,
    User,
    Verb,
    Wait,
)

__all__ = [
    "MAX_DIAL_TARGETS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ELEMENTS",
    "MAX_HINTS",
    "NOT_SUPPORTED_YET",
    "SPEECH_LANGUAGES",
    "VERB_CLASSES",
    "parse",
]

#: Largest document accepted, in bytes: Plivo's own limit on the XML an application
#: returns ("100 Kb", Plivo XML request docs), read as 100 KiB.
MAX_DOCUMENT_BYTES = 100 * 1024

#: Most elements (verbs, nouns, SSML tags) in one document [ours].
MAX_ELEMENTS = 1000

#: Longest conference room name, in characters [ours].
MAX_ROOM_CHARS = 64

#: Languages ``<GetInput inputType="speech">`` may use: the recognizer model shipped
#: inside the ``pocketsphinx`` wheel on PyPI (5.1.1) is US English only, and nothing
#: may be downloaded at run time.
SPEECH_LANGUAGES = frozenset({"en-US"})

#: Elements of Plivo XML that later issues will implement, with the reason given.
NOT_SUPPORTED_YET: dict[str, str] = {
    "Stream": "<Stream> (audio streaming over WebSocket) is not supported yet",
    "MultiPartyCall": "<MultiPartyCall> is not supported yet",
    "Message": "<Message> (SMS) is not supported yet",
}

#: Parses one element into its verb; skipped attributes go to the list.
_Parser = Callable[[etree._Element, Ignored], Any]
#: Checks an element's text: ``(element name, text) -> value``.
_Rule = Callable[[str, str], str]

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
    "collect_ids": False,
    "strip_cdata": True,
}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


def parse(data: bytes) -> Response:
    """Parse and validate one Plivo XML document.

    :param data: the raw body, at most :data:`MAX_DOCUMENT_BYTES` bytes.
    :returns: the document's verbs, and in :attr:`Response.ignored` the attributes
        Plivo XML does not define, skipped as Plivo skips them.
    :raises XMLError: for anything we refuse: too large, not XML, a DOCTYPE, an unknown
        element, a value out of Plivo's range. The message names the line, element,
        attribute and rule.
    :raises TypeError: if ``data`` is not bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse() takes bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise XMLError(f"document is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    for marker in (b"<!DOCTYPE", b"<!ENTITY"):
        at = data.find(marker)
        if at >= 0:
            raise XMLError(
                "DOCTYPE and entity declarations are not allowed",
                line=data.count(b"\n", 0, at) + 1,
            )
    if not data.strip():
        raise XMLError("document is empty")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        raise XMLError(f"not well-formed XML: {exc.msg}", line=line) from None
    except (etree.LxmlError, ValueError) as exc:
        raise XMLError(f"not parseable as XML: {exc}") from None
    if root is None:
        raise XMLError("document is empty")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XMLError("DOCTYPE and entity declarations are not allowed", line=1)
    count = sum(1 for _ in root.iter())
    if count > MAX_ELEMENTS:
        raise XMLError(f"document has {count} elements; the limit is {MAX_ELEMENTS}")
    tag = local_tag(root)
    if tag != "Response":
        raise fail(root, f"the root element must be <Response>, not <{tag}>")
    ignored: Ignored = []
    AttrReader(root, ignored).finish()
    verbs = tuple(_children(root, _TOP_LEVEL, ignored))
    return Response(verbs=verbs, ignored=tuple(ignored))


# ---------------------------------------------------------------- structure


def _children(el: etree._Element, allowed: frozenset[str], ignored: Ignored) -> list[Any]:
    """Parse ``el``'s child elements, each of which must be in ``allowed``."""
    no_text(el)
    out: list[Any] = []
    parent = local_tag(el)
    for child in el:
        tag = local_tag(child)
        if tag in NOT_SUPPORTED_YET:
            raise fail(child, NOT_SUPPORTED_YET[tag])
        if tag not in VERB_CLASSES:
            raise fail(child, f"unknown element <{tag}>")
        if tag not in allowed:
            raise fail(child, f"<{tag}> may not be nested in <{parent}>")
        out.append(_PARSERS[tag](child, ignored))
    return out


# ---------------------------------------------------------------- verbs
#
# Each verb's attributes are described once, on its class (xml_dsl.verbs); these
# functions add what metadata cannot say: the element's text or children, rules
# across attributes, and the order of checks Plivo users see.


def _attributes_only(cls: type[Wait] | type[Hangup] | type[Record]) -> _Parser:
    """A parser for an element with attributes and nothing inside."""

    def parse(el: etree._Element, ignored: Ignored) -> Any:
        r = AttrReader(el, ignored)
        verb = cls(**read_attributes(cls, r), line=line_of(el))
        r.finish()
        no_text(el)
        if len(el):
            raise fail(el[0], f"<{local_tag(el[0])}> may not be nested in <{local_tag(el)}>")
        return verb

    return parse


def _text_verb(cls: type[Play] | type[DTMF] | type[Redirect], what: str, rule: _Rule) -> _Parser:
    """A parser for an element whose text is its one value (a URL, the keys)."""

    def parse(el: etree._Element, ignored: Ignored) -> Any:
        r = AttrReader(el, ignored)
        values = read_attributes(cls, r)
        r.finish()
        raw = text_only(el, what)
        try:
            text = rule(local_tag(el), raw)
        except v.RuleError as exc:
            raise fail(el, str(exc)) from None
        return cls(text, **values, line=line_of(el))

    return parse


def _speak(el: etree._Element, ignored: Ignored) -> Speak:
    r = AttrReader(el, ignored)
    values = read_attributes(Speak, r)
    r.finish()
    text, ssml = speak_content(el, values["language"], ignored)
    return Speak(text, ssml, **values, line=line_of(el))


def _prompts(el: etree._Element, ignored: Ignored) -> tuple[Prompt, ...]:
    return tuple(_children(el, _PROMPTS, ignored))


def _get_digits(el: etree._Element, ignored: Ignored) -> GetDigits:
    r = AttrReader(el, ignored)
    values = read_attributes(GetDigits, r)
    verb = GetDigits(**values, prompts=_prompts(el, ignored), line=line_of(el))
    r.finish()
    return verb


def _get_input(el: etree._Element, ignored: Ignored) -> GetInput:
    r = AttrReader(el, ignored)
    # The speech language is checked before the other attributes are read.
    head = read_attributes(GetInput, r, only=("action", "input_types", "language"))
    language = head["language"]
    if InputType.SPEECH in head["input_types"] and language not in SPEECH_LANGUAGES:
        raise fail(
            el,
            f"speech recognition is available for {', '.join(sorted(SPEECH_LANGUAGES))} only "
            "(the recognizer model shipped in the pocketsphinx package); "
            "nothing is downloaded at run time",
            attribute="language",
            value=language,
        )
    rest = read_attributes(GetInput, r, skip=head)
    verb = GetInput(**head, **rest, prompts=_prompts(el, ignored), line=line_of(el))
    r.finish()
    return verb


def _conference(el: etree._Element, ignored: Ignored) -> Conference:
    r = AttrReader(el, ignored)
    room = text_only(el, "the conference room name")
    if len(room) > MAX_ROOM_CHARS:
        raise fail(el, f"the room name must be at most {MAX_ROOM_CHARS} characters")
    # recordFileFormat is checked first, as it always was.
    values = read_attributes(Conference, r, only=("record_file_format",))
    values.update(read_attributes(Conference, r, skip=values))
    verb = Conference(room, **values, line=line_of(el))
    r.finish()
    return verb


def _pre_answer(el: etree._Element, ignored: Ignored) -> PreAnswer:
    AttrReader(el, ignored).finish()
    return PreAnswer(verbs=tuple(_children(el, _PRE_ANSWER, ignored)), line=line_of(el))


#: The parser for each element: an explicit registry, never a name built at run time.
_PARSERS: dict[str, _Parser] = {
    "Speak": _speak,
    "Play": _text_verb(Play, "the URL of an audio file", v.url),
    "Wait": _attributes_only(Wait),
    "DTMF": _text_verb(DTMF, "the keys to send", v.digits_to_send),
    "Redirect": _text_verb(Redirect, "a URL", v.url),
    "Hangup": _attributes_only(Hangup),
    "GetDigits": _get_digits,
    "GetInput": _get_input,
    "Record": _attributes_only(Record),
    "Conference": _conference,
    "Dial": parse_dial,
    "PreAnswer": _pre_answer,
}

#: The verb class each element becomes.
VERB_CLASSES: dict[str, type[Verb] | type[Number] | type[User]] = {
    "Speak": Speak,
    "Play": Play,
    "Wait": Wait,
    "DTMF": DTMF,
    "Redirect": Redirect,
    "Hangup": Hangup,
    "GetDigits": GetDigits,
    "GetInput": GetInput,
    "Record": Record,
    "Conference": Conference,
    "Dial": Dial,
    "Number": Number,
    "User": User,
    "PreAnswer": PreAnswer,
}

_TOP_LEVEL = frozenset(
    (
        "Speak",
        "Play",
        "Wait",
        "DTMF",
        "Redirect",
        "Hangup",
        "GetDigits",
        "GetInput",
        "Record",
        "Conference",
        "Dial",
        "PreAnswer",
    )
)
_PROMPTS = frozenset(("Speak", "Play", "Wait"))
_PRE_ANSWER = frozenset(("Speak", "Play", "Wait", "GetDigits", "Redirect", "DTMF"))
