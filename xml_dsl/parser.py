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
    positive,
    text_only,
)
from xml_dsl.errors import XMLError
from xml_dsl.ssml import speak_content
from xml_dsl.verbs import (
    DEFAULT_VALID_DIGITS,
    DTMF,
    ChannelType,
    Conference,
    Dial,
    FileFormat,
    GetDigits,
    GetInput,
    Hangup,
    HangupReason,
    InputType,
    Method,
    Number,
    Play,
    PreAnswer,
    Prompt,
    Record,
    Redirect,
    Response,
    Speak,
    SpeechModel,
    TranscriptionType,
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

#: Most phrases in ``<GetInput hints>``, and longest phrase in characters [ours].
MAX_HINTS = 500
MAX_HINT_CHARS = 100

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


def _speak(el: etree._Element, ignored: Ignored) -> Speak:
    r = AttrReader(el, ignored)
    voice = r.get("voice", _voice, "WOMAN")
    language = r.get("language", v.language, "en-US")
    loop = r.get("loop", lambda n, s: v.integer(n, s, low=0), 1)
    r.finish()
    text, ssml = speak_content(el, language, ignored)
    return Speak(text, ssml, voice, language, loop, line=line_of(el))


def _voice(name: str, raw: str) -> str:
    text = raw.strip()
    if text.upper() in ("WOMAN", "MAN"):
        return text.upper()
    if text.startswith("Polly.") and 6 < len(text) <= 64 and text[6:].replace("-", "").isalnum():
        return text
    raise v.RuleError(f"{name} must be WOMAN, MAN or an Amazon Polly voice such as Polly.Joanna")


def _play(el: etree._Element, ignored: Ignored) -> Play:
    r = AttrReader(el, ignored)
    loop = r.get("loop", lambda n, s: v.integer(n, s, low=0), 1)
    r.finish()
    raw = text_only(el, "the URL of an audio file")
    try:
        url = v.url("Play", raw)
    except v.RuleError as exc:
        raise fail(el, str(exc)) from None
    return Play(url, loop, line=line_of(el))


def _wait(el: etree._Element, ignored: Ignored) -> Wait:
    r = AttrReader(el, ignored)
    wait = Wait(
        length=r.get("length", lambda n, s: v.integer(n, s, low=1), 1),
        silence=r.get("silence", v.boolean, False),
        min_silence_ms=r.get("minSilence", lambda n, s: v.integer(n, s, low=1), 2000),
        beep=r.get("beep", v.boolean, False),
        line=line_of(el),
    )
    r.finish()
    no_text(el)
    if len(el):
        raise fail(el[0], f"<{local_tag(el[0])}> may not be nested in <Wait>")
    return wait


def _dtmf(el: etree._Element, ignored: Ignored) -> DTMF:
    r = AttrReader(el, ignored)
    async_ = r.get("async", v.boolean, True)
    r.finish()
    raw = text_only(el, "the keys to send")
    try:
        digits = v.digits_to_send("DTMF", raw)
    except v.RuleError as exc:
        raise fail(el, str(exc)) from None
    return DTMF(digits, async_, line=line_of(el))


def _redirect(el: etree._Element, ignored: Ignored) -> Redirect:
    r = AttrReader(el, ignored)
    method = r.get("method", v.method, Method.POST)
    r.finish()
    raw = text_only(el, "a URL")
    try:
        url = v.url("Redirect", raw)
    except v.RuleError as exc:
        raise fail(el, str(exc)) from None
    return Redirect(url, method, line=line_of(el))


def _hangup(el: etree._Element, ignored: Ignored) -> Hangup:
    r = AttrReader(el, ignored)
    hangup = Hangup(
        reason=r.get("reason", lambda n, s: v.choice(n, s, HangupReason, fold=str.lower), None),
        schedule=r.get("schedule", lambda n, s: v.integer(n, s, low=1), None),
        line=line_of(el),
    )
    r.finish()
    no_text(el)
    if len(el):
        raise fail(el[0], f"<{local_tag(el[0])}> may not be nested in <Hangup>")
    return hangup


def _prompts(el: etree._Element, ignored: Ignored) -> tuple[Prompt, ...]:
    return tuple(_children(el, _PROMPTS, ignored))


def _get_digits(el: etree._Element, ignored: Ignored) -> GetDigits:
    r = AttrReader(el, ignored)
    verb = GetDigits(
        action=r.get("action", v.optional_url, None),
        method=r.get("method", v.method, Method.POST),
        timeout=r.get("timeout", positive, 5),
        digit_timeout=r.get("digitTimeout", positive, 2),
        finish_on_key=r.get("finishOnKey", v.finish_key, "#"),
        num_digits=r.get("numDigits", positive, 99),
        retries=r.get("retries", positive, 1),
        redirect=r.get("redirect", v.boolean, True),
        play_beep=r.get("playBeep", v.boolean, False),
        valid_digits=r.get("validDigits", v.key_set, DEFAULT_VALID_DIGITS),
        invalid_digits_sound=r.get("invalidDigitsSound", v.optional_url, None),
        log=r.get("log", v.boolean, True),
        prompts=_prompts(el, ignored),
        line=line_of(el),
    )
    r.finish()
    return verb


def _auto_or(low: int, high: int) -> Callable[[str, str], int | None]:
    def convert(name: str, raw: str) -> int | None:
        if raw.strip().lower() == "auto":
            return None
        try:
            return v.integer(name, raw, low=low, high=high)
        except v.RuleError:
            raise v.RuleError(f"{name} must be auto or an integer from {low} to {high}") from None

    return convert


def _input_types(name: str, raw: str) -> frozenset[InputType]:
    words = raw.split()
    try:
        kinds = frozenset(InputType(w.lower()) for w in words)
    except ValueError:
        kinds = frozenset()
    if not kinds or len(kinds) != len(words):
        raise v.RuleError(f"{name} must be dtmf, speech or dtmf speech")
    return kinds


def _hints(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(h.strip() for h in raw.split(",") if h.strip())
    if len(items) > MAX_HINTS or any(len(h) > MAX_HINT_CHARS for h in items):
        raise v.RuleError(
            f"{name} must be at most {MAX_HINTS} comma-separated phrases "
            f"of at most {MAX_HINT_CHARS} characters"
        )
    return items


def _get_input(el: etree._Element, ignored: Ignored) -> GetInput:
    r = AttrReader(el, ignored)
    action = r.require("action", v.url)
    kinds = r.require("inputType", _input_types)
    language = r.get("language", v.language, "en-US")
    if InputType.SPEECH in kinds and language not in SPEECH_LANGUAGES:
        raise fail(
            el,
            f"speech recognition is available for {', '.join(sorted(SPEECH_LANGUAGES))} only "
            "(the recognizer model shipped in the pocketsphinx package); "
            "nothing is downloaded at run time",
            attribute="language",
            value=language,
        )
    verb = GetInput(
        action=action,
        input_types=kinds,
        method=r.get("method", v.method, Method.POST),
        execution_timeout=r.get(
            "executionTimeout", lambda n, s: v.integer(n, s, low=5, high=60), 15
        ),
        digit_end_timeout=r.get("digitEndTimeout", _auto_or(2, 10), None),
        speech_end_timeout=r.get("speechEndTimeout", _auto_or(2, 10), None),
        finish_on_key=r.get("finishOnKey", v.finish_key, "#"),
        num_digits=r.get("numDigits", lambda n, s: v.integer(n, s, low=1, high=32), 32),
        speech_model=r.get("speechModel", lambda n, s: v.choice(n, s, SpeechModel), None)
        or SpeechModel.DEFAULT,
        hints=r.get("hints", _hints, ()),
        language=language,
        interim_speech_results_callback=r.get("interimSpeechResultsCallback", v.optional_url, None),
        interim_speech_results_callback_method=r.get(
            "interimSpeechResultsCallbackMethod", v.method, Method.POST
        ),
        log=r.get("log", v.boolean, True),
        redirect=r.get("redirect", v.boolean, True),
        profanity_filter=r.get("profanityFilter", v.boolean, False),
        prompts=_prompts(el, ignored),
        line=line_of(el),
    )
    r.finish()
    return verb


def _transcription(name: str, raw: str) -> TranscriptionType | None:
    if not raw.strip():
        return None
    return v.choice(name, raw, TranscriptionType, fold=str.lower)


def _report_type(name: str, raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not text.replace("_", "").isalnum() or len(text) > 32:
        raise v.RuleError(f"{name} must be a word of at most 32 letters, digits or _")
    return text


def _record(el: etree._Element, ignored: Ignored) -> Record:
    r = AttrReader(el, ignored)
    verb = Record(
        action=r.get("action", v.optional_url, None),
        method=r.get("method", v.method, Method.POST),
        file_format=r.get(
            "fileFormat", lambda n, s: v.choice(n, s, FileFormat, fold=str.lower), FileFormat.MP3
        ),
        redirect=r.get("redirect", v.boolean, True),
        timeout=r.get("timeout", positive, 15),
        max_length=r.get("maxLength", lambda n, s: v.integer(n, s, low=2), 60),
        play_beep=r.get("playBeep", v.boolean, True),
        finish_on_key=r.get(
            "finishOnKey", lambda n, s: v.key_set(n, s, allow_none=True), frozenset("#")
        ),
        record_session=r.get("recordSession", v.boolean, False),
        start_on_dial_answer=r.get("startOnDialAnswer", v.boolean, False),
        transcription_type=r.get("transcriptionType", _transcription, None),
        transcription_url=r.get("transcriptionUrl", v.optional_url, None),
        transcription_method=r.get("transcriptionMethod", v.method, Method.POST),
        transcription_report_type=r.get("transcriptionReportType", _report_type, None),
        callback_url=r.get("callbackUrl", v.optional_url, None),
        callback_method=r.get("callbackMethod", v.method, Method.POST),
        record_channel_type=r.get(
            "recordChannelType",
            lambda n, s: v.choice(n, s, ChannelType, fold=str.lower),
            ChannelType.STEREO,
        ),
        line=line_of(el),
    )
    r.finish()
    no_text(el)
    if len(el):
        raise fail(el[0], f"<{local_tag(el[0])}> may not be nested in <Record>")
    return verb


def _sound(name: str, raw: str) -> str:
    text = raw.strip()
    if text in ("", "beep:1", "beep:2"):
        return text
    try:
        return v.url(name, text)
    except v.RuleError:
        raise v.RuleError(f'{name} must be "", beep:1, beep:2 or a URL') from None


def _conference(el: etree._Element, ignored: Ignored) -> Conference:
    r = AttrReader(el, ignored)
    room = text_only(el, "the conference room name")
    if len(room) > MAX_ROOM_CHARS:
        raise fail(el, f"the room name must be at most {MAX_ROOM_CHARS} characters")
    fmt = r.get(
        "recordFileFormat", lambda n, s: v.choice(n, s, FileFormat, fold=str.lower), FileFormat.MP3
    )
    verb = Conference(
        room=room,
        muted=r.get("muted", v.boolean, False),
        enter_sound=r.get("enterSound", _sound, ""),
        exit_sound=r.get("exitSound", _sound, ""),
        start_conference_on_enter=r.get("startConferenceOnEnter", v.boolean, True),
        end_conference_on_exit=r.get("endConferenceOnExit", v.boolean, False),
        stay_alone=r.get("stayAlone", v.boolean, True),
        wait_sound=r.get("waitSound", v.optional_url, None),
        max_members=r.get("maxMembers", lambda n, s: v.integer(n, s, low=1, high=20), 20),
        record=r.get("record", v.boolean, False),
        record_file_format=fmt,
        time_limit=r.get("timeLimit", positive, 86400),
        hangup_on_star=r.get("hangupOnStar", v.boolean, False),
        action=r.get("action", v.optional_url, None),
        method=r.get("method", v.method, Method.POST),
        callback_url=r.get("callbackUrl", v.optional_url, None),
        callback_method=r.get("callbackMethod", v.method, Method.POST),
        digits_match=r.get("digitsMatch", v.digit_patterns, ()),
        floor_event=r.get("floorEvent", v.boolean, False),
        redirect=r.get("redirect", v.boolean, True),
        relay_dtmf=r.get("relayDTMF", v.boolean, True),
        send_digits=r.get("sendDigits", v.digits_to_send, None),
        record_when_alone=r.get("recordWhenAlone", v.boolean, False),
        transcription_type=r.get("transcriptionType", _transcription, None),
        transcription_url=r.get("transcriptionUrl", v.optional_url, None),
        transcription_method=r.get("transcriptionMethod", v.method, Method.POST),
        line=line_of(el),
    )
    r.finish()
    return verb


# ---------------------------------------------------------------- dial


def _pre_answer(el: etree._Element, ignored: Ignored) -> PreAnswer:
    AttrReader(el, ignored).finish()
    return PreAnswer(verbs=tuple(_children(el, _PRE_ANSWER, ignored)), line=line_of(el))


#: The parser for each element: an explicit registry, never a name built at run time.
_PARSERS: dict[str, Callable[[etree._Element, Ignored], Any]] = {
    "Speak": _speak,
    "Play": _play,
    "Wait": _wait,
    "DTMF": _dtmf,
    "Redirect": _redirect,
    "Hangup": _hangup,
    "GetDigits": _get_digits,
    "GetInput": _get_input,
    "Record": _record,
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
