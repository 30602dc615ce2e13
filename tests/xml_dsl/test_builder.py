"""Documents made by Plivo's own XML builder (``plivo.xml``, the SDK's ``plivoxml``)
parse to the same verbs and attributes.

The builder classes are introspected: every constructor parameter of every element
must have a sample below, so an attribute added to the SDK fails this test until it
is handled here (and in the parser).
"""

from __future__ import annotations

import inspect
from typing import Any

import plivo.xml as plivoxml
import pytest
from lxml import etree

from xml_dsl import XMLError, parse
from xml_dsl.parser import NOT_SUPPORTED_YET
from xml_dsl.ssml import SSML_TAGS
from xml_dsl.verbs import (
    ChannelType,
    DialMusic,
    FileFormat,
    HangupReason,
    InputType,
    Method,
    SendDigitsMode,
    SpeechModel,
    TranscriptionType,
)

URL = "https://app.example.com/hook?x=1"
URL2 = "http://127.0.0.1:8080/other"

# element -> builder parameter -> (value given to the builder, verb field, expected value)
SAMPLES: dict[str, dict[str, tuple[Any, str, Any]]] = {
    "Speak": {
        "content": ("Hello there", "text", "Hello there"),
        "voice": ("MAN", "voice", "MAN"),
        "language": ("en-GB", "language", "en-GB"),
        "loop": (3, "loop", 3),
    },
    "Play": {
        "content": (URL, "url", URL),
        "loop": (0, "loop", 0),
    },
    "Wait": {
        "length": (7, "length", 7),
        "silence": (True, "silence", True),
        "min_silence": (1500, "min_silence_ms", 1500),
        "beep": (True, "beep", True),
    },
    "DTMF": {
        "content": ("12w3W#", "digits", "12w3W#"),
        "async_": (False, "async_", False),
    },
    "Redirect": {
        "content": (URL, "url", URL),
        "method": ("GET", "method", Method.GET),
    },
    "Hangup": {
        "reason": ("busy", "reason", HangupReason.BUSY),
        "schedule": (30, "schedule", 30),
    },
    "GetDigits": {
        "action": (URL, "action", URL),
        "method": ("GET", "method", Method.GET),
        "timeout": (9, "timeout", 9),
        "digit_timeout": (4, "digit_timeout", 4),
        "finish_on_key": ("*", "finish_on_key", "*"),
        "num_digits": (4, "num_digits", 4),
        "retries": (3, "retries", 3),
        "redirect": (False, "redirect", False),
        "play_beep": (True, "play_beep", True),
        "valid_digits": ("123", "valid_digits", frozenset("123")),
        "invalid_digits_sound": (URL2, "invalid_digits_sound", URL2),
        "log": (False, "log", False),
    },
    "GetInput": {
        "action": (URL, "action", URL),
        "method": ("GET", "method", Method.GET),
        "input_type": ("dtmf speech", "input_types", frozenset({InputType.DTMF, InputType.SPEECH})),
        "execution_timeout": (20, "execution_timeout", 20),
        "digit_end_timeout": ("3", "digit_end_timeout", 3),
        "speech_end_timeout": (4, "speech_end_timeout", 4),
        "finish_on_key": ("none", "finish_on_key", None),
        "num_digits": (6, "num_digits", 6),
        "speech_model": ("phone_call", "speech_model", SpeechModel.PHONE_CALL),
        "hints": ("sales, support", "hints", ("sales", "support")),
        "language": ("en-US", "language", "en-US"),
        "interim_speech_results_callback": (URL2, "interim_speech_results_callback", URL2),
        "interim_speech_results_callback_method": (
            "GET",
            "interim_speech_results_callback_method",
            Method.GET,
        ),
        "log": (False, "log", False),
        "redirect": (False, "redirect", False),
        "profanity_filter": (True, "profanity_filter", True),
    },
    "Record": {
        "action": (URL, "action", URL),
        "method": ("GET", "method", Method.GET),
        "file_format": ("wav", "file_format", FileFormat.WAV),
        "redirect": (False, "redirect", False),
        "timeout": (5, "timeout", 5),
        "max_length": (120, "max_length", 120),
        "play_beep": (False, "play_beep", False),
        "finish_on_key": ("*#", "finish_on_key", frozenset("*#")),
        "record_session": (True, "record_session", True),
        "start_on_dial_answer": (True, "start_on_dial_answer", True),
        "transcription_type": ("auto", "transcription_type", TranscriptionType.AUTO),
        "transcription_url": (URL2, "transcription_url", URL2),
        "transcription_method": ("GET", "transcription_method", Method.GET),
        "transcription_report_type": ("sentences", "transcription_report_type", "sentences"),
        "callback_url": (URL2, "callback_url", URL2),
        "callback_method": ("GET", "callback_method", Method.GET),
        "record_channel_type": ("mono", "record_channel_type", ChannelType.MONO),
    },
    "Conference": {
        "content": ("Room 42", "room", "Room 42"),
        "muted": (True, "muted", True),
        "enter_sound": ("beep:1", "enter_sound", "beep:1"),
        "exit_sound": (URL2, "exit_sound", URL2),
        "start_conference_on_enter": (False, "start_conference_on_enter", False),
        "end_conference_on_exit": (True, "end_conference_on_exit", True),
        "stay_alone": (False, "stay_alone", False),
        "wait_sound": (URL, "wait_sound", URL),
        "max_members": (5, "max_members", 5),
        "record": (True, "record", True),
        "record_file_format": ("wav", "record_file_format", FileFormat.WAV),
        "time_limit": (600, "time_limit", 600),
        "hangup_on_star": (True, "hangup_on_star", True),
        "action": (URL, "action", URL),
        "method": ("GET", "method", Method.GET),
        "callback_url": (URL2, "callback_url", URL2),
        "callback_method": ("GET", "callback_method", Method.GET),
        "digits_match": ("123,*9", "digits_match", ("123", "*9")),
        "floor_event": (True, "floor_event", True),
        "redirect": (False, "redirect", False),
        "relay_dtmf": (False, "relay_dtmf", False),
        "send_digits": ("1w2", "send_digits", "1w2"),
        "record_when_alone": (True, "record_when_alone", True),
        "transcription_type": ("hybrid", "transcription_type", TranscriptionType.HYBRID),
        "transcription_url": (URL2, "transcription_url", URL2),
        "transcription_method": ("GET", "transcription_method", Method.GET),
    },
    "Dial": {
        "action": (URL, "action", URL),
        "method": ("GET", "method", Method.GET),
        "hangup_on_star": (True, "hangup_on_star", True),
        "time_limit": (3600, "time_limit", 3600),
        "timeout": (25, "timeout", 25),
        "caller_id": ("+15550001111", "caller_id", "+15550001111"),
        "caller_name": ("Front desk", "caller_name", "Front desk"),
        "confirm_sound": (URL2, "confirm_sound", URL2),
        "confirm_timeout": ("30", "confirm_timeout", 30),
        "confirm_key": ("5", "confirm_key", "5"),
        "dial_music": ("real", "dial_music", DialMusic.REAL),
        "callback_url": (URL2, "callback_url", URL2),
        "callback_method": ("GET", "callback_method", Method.GET),
        "redirect": (False, "redirect", False),
        "digits_match": ("99", "digits_match", ("99",)),
        "digits_match_b_leg": ("*1,#2", "digits_match_b_leg", ("*1", "#2")),
        "sip_headers": ("Team=blue,Tier=2", "sip_headers", (("Team", "blue"), ("Tier", "2"))),
    },
    "Number": {
        "content": ("+15551234567", "number", "+15551234567"),
        "send_digits": ("ww1234", "send_digits", "ww1234"),
        "send_on_preanswer": (True, "send_on_preanswer", True),
        "send_digits_mode": ("inband", "send_digits_mode", SendDigitsMode.INBAND),
    },
    "User": {
        "content": ("sip:alice@example.com", "uri", "sip:alice@example.com"),
        "send_digits": ("1W2", "send_digits", "1W2"),
        "send_on_preanswer": (True, "send_on_preanswer", True),
        "sip_headers": ("A=1", "sip_headers", (("A", "1"),)),
    },
    "PreAnswer": {},
}

# SSML inside <Speak>: parameter -> value; the attribute must survive into Speak.ssml.
SSML_SAMPLES: dict[str, dict[str, Any]] = {
    "break": {"content": None, "strength": "strong", "time": "500ms"},
    "emphasis": {"content": "really", "level": "reduced"},
    "lang": {"content": "bonjour", "xmllang": "fr-FR"},
    "p": {"content": "A paragraph."},
    "phoneme": {"content": "tomato", "alphabet": "ipa", "ph": "t\u0259\u02c8me\u026ato\u028a"},
    "prosody": {"content": "slowly", "volume": "+6dB", "rate": "80%", "pitch": "x-high"},
    "s": {"content": "A sentence."},
    "say-as": {"content": "12345", "interpret_as": "digits", "format": "ymd"},
    "sub": {"content": "W3C", "alias": "World Wide Web Consortium"},
    "w": {"content": "read", "role": "amazon:VBD"},
}

#: Builder elements that never reach a document: ``cont`` is rewritten to spaces by
#: ``to_string``; ``Response`` is the root.
NOT_ELEMENTS = {"cont", "Response"}


def builder_classes() -> dict[str, type[Any]]:
    found: dict[str, type[Any]] = {}
    for name in dir(plivoxml):
        cls = getattr(plivoxml, name)
        if (
            inspect.isclass(cls)
            and issubclass(cls, plivoxml.PlivoXMLElement)
            and cls is not plivoxml.PlivoXMLElement
        ):
            found[cls._name] = cls
    return found


def parameters(cls: type[Any]) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def test_every_builder_element_and_parameter_is_covered() -> None:
    missing = []
    for name, cls in builder_classes().items():
        if name in NOT_ELEMENTS or name in NOT_SUPPORTED_YET:
            continue
        table = SSML_SAMPLES.get(name) if name in SSML_TAGS else SAMPLES.get(name)
        if table is None:
            missing.append(f"element <{name}>")
            continue
        missing += [f"<{name}> {p}" for p in parameters(cls) if p not in table]
    assert missing == [], f"builder attributes without a parse test: {missing}"


def build(name: str, args: dict[str, Any]) -> Any:
    return builder_classes()[name](**args)


def document_for(name: str) -> tuple[bytes, Any]:
    table = SAMPLES[name]
    element = build(name, {p: value for p, (value, _, _) in table.items()})
    response = plivoxml.ResponseElement()
    if name in ("Number", "User"):
        response.add(plivoxml.DialElement().add(element))
    elif name == "PreAnswer":
        element.add(plivoxml.SpeakElement("early"))
        response.add(element)
    else:
        if name in ("GetDigits", "GetInput"):
            element.add(plivoxml.SpeakElement("prompt"))
        if name == "Dial":
            element.add(plivoxml.NumberElement("+15551234567"))
        response.add(element)
    return response.to_string().encode(), table


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_builder_documents_parse_to_the_same_attributes(name: str) -> None:
    xml, table = document_for(name)
    (verb,) = parse(xml).verbs
    if name in ("Number", "User"):
        (verb,) = verb.targets
    assert type(verb).__name__ == name
    for param, (_, field, expected) in table.items():
        assert getattr(verb, field) == expected, f"<{name}> {param}"


@pytest.mark.parametrize("name", sorted(SSML_SAMPLES))
def test_builder_ssml_is_kept_for_espeak(name: str) -> None:
    args = SSML_SAMPLES[name]
    speak = plivoxml.SpeakElement("Say ")
    speak.add(build(name, args))
    (verb,) = parse(plivoxml.ResponseElement().add(speak).to_string().encode()).verbs
    assert verb.ssml is not None
    root = etree.fromstring(verb.ssml.encode())
    (child,) = root
    assert child.tag == name
    emitted = build(name, args).to_dict()
    assert dict(child.attrib) == emitted
    if args.get("content"):
        assert args["content"] in verb.text


def test_default_builder_elements_get_plivo_defaults() -> None:
    response = plivoxml.ResponseElement()
    response.add(plivoxml.GetDigitsElement())
    response.add(plivoxml.RecordElement())
    response.add(plivoxml.WaitElement())
    digits, record, wait = parse(response.to_string().encode()).verbs
    assert (
        digits.method,
        digits.timeout,
        digits.digit_timeout,
        digits.num_digits,
        digits.finish_on_key,
        digits.retries,
        digits.redirect,
    ) == (Method.POST, 5, 2, 99, "#", 1, True)
    assert (record.file_format, record.timeout, record.max_length, record.play_beep) == (
        FileFormat.MP3,
        15,
        60,
        True,
    )
    assert (wait.length, wait.silence, wait.min_silence_ms, wait.beep) == (1, False, 2000, False)


@pytest.mark.parametrize(
    "element",
    [
        lambda: plivoxml.StreamElement("wss://stream.example.com/audio"),
        lambda: plivoxml.MultiPartyCallElement("agent", role="Agent"),
        lambda: plivoxml.MessageElement("hi", src="1", dst="2"),
    ],
)
def test_unsupported_builder_elements_are_refused_as_not_supported_yet(element: Any) -> None:
    xml = plivoxml.ResponseElement().add(element()).to_string().encode()
    with pytest.raises(XMLError, match="not supported yet"):
        parse(xml)
