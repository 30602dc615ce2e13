"""Plivo XML as Plivo reads it: unknown attributes skipped (and logged against the
call), ``<Number>``/``<User>`` SIP headers and digest credentials, ``<Dial callType>``
and ``sendDigits="123@<ms>"``."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests.xml_dsl.fakes import FakeCall, FakeFetcher
from xml_dsl import XMLError, execute, parse
from xml_dsl._values import MAX_TONE_MS, MIN_TONE_MS, is_reserved_header
from xml_dsl.verbs import CallType, Dial, IgnoredAttribute, Number, Speak, User


def refused(xml: str) -> XMLError:
    with pytest.raises(XMLError) as info:
        parse(xml.encode())
    return info.value


def dial(xml: str) -> Dial:
    (verb,) = parse(f"<Response>{xml}</Response>".encode()).verbs
    assert isinstance(verb, Dial)
    return verb


# ---------------------------------------------------------------- unknown attributes


def test_unknown_attributes_are_skipped_and_listed() -> None:
    doc = parse(
        b"<Response bad='1'>\n<Speak colour='red' voice='MAN'>x</Speak>\n"
        b"<Dial future='yes'><Number ringTone='uk'>123</Number></Dial></Response>"
    )
    speak, dial_ = doc.verbs
    assert speak == Speak("x", voice="MAN")
    assert isinstance(dial_, Dial)
    assert dial_.targets == (Number("123"),)
    assert doc.ignored == (
        IgnoredAttribute(1, "Response", "bad", "1"),
        IgnoredAttribute(2, "Speak", "colour", "red"),
        IgnoredAttribute(3, "Number", "ringTone", "uk"),  # nouns are read before their Dial
        IgnoredAttribute(3, "Dial", "future", "yes"),
    )


def test_unknown_ssml_attributes_are_skipped_and_left_out_of_the_ssml() -> None:
    doc = parse(b"<Response><Speak>a<break time='1s' style='x'/></Speak></Response>")
    (speak,) = doc.verbs
    assert isinstance(speak, Speak)
    assert speak.ssml is not None
    assert "style" not in speak.ssml
    assert [(i.element, i.attribute) for i in doc.ignored] == [("break", "style")]


def test_ignored_values_are_cut_and_secrets_hidden() -> None:
    long_value = "v" * 500
    doc = parse(
        f"<Response><Wait note='{long_value}' sipAuthPasswd='hunter22' apiToken='t'/>"
        "</Response>".encode()
    )
    values = {i.attribute: i.value for i in doc.ignored}
    assert values["note"] == "v" * 57 + "..."
    assert values["sipAuthPasswd"] == "(hidden)"
    assert values["apiToken"] == "(hidden)"


def test_known_attributes_with_bad_values_still_fail() -> None:
    error = refused("<Response><Speak loop='x' colour='red'>hi</Speak></Response>")
    assert error.attribute == "loop"
    assert "loop must be an integer >= 0" in str(error)


def test_unknown_elements_still_fail() -> None:
    assert "unknown element <Foo>" in str(refused("<Response><Foo/></Response>"))


def test_ignored_attributes_are_logged_once_each_against_the_call(clock: Clock) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        call = FakeCall(clock)
        document = parse(b"<Response>\n<Wait length='1' colour='red'/></Response>")
        execute(call, FakeFetcher(), document, clock=clock)
        clock.advance(1)
    finally:
        globalLogPublisher.removeObserver(events.append)
    mine = [e for e in events if e.get("attribute") == "colour"]
    assert len(mine) == 1
    (event,) = mine
    assert event["log_level"] is LogLevel.warn
    assert (event["call_uuid"], event["line"], event["element"], event["value"]) == (
        call.call_uuid,
        2,
        "Wait",
        "red",
    )


def test_ignored_attributes_of_later_documents_are_logged_too(clock: Clock) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        call = FakeCall(clock)
        fetcher = FakeFetcher(
            {"http://127.0.0.1:9/next": b"<Response><Hangup why='x'/></Response>"}
        )
        execute(
            call,
            fetcher,
            parse(b"<Response><Redirect>http://127.0.0.1:9/next</Redirect></Response>"),
            clock=clock,
        )
        clock.advance(1)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert [e["element"] for e in events if e.get("attribute") == "why"] == ["Hangup"]


# ---------------------------------------------------------------- SIP headers and credentials


def test_number_takes_sip_headers_like_user() -> None:
    verb = dial("<Dial><Number sipHeaders='Team=blue,Tier=2'>123</Number></Dial>")
    assert verb.targets == (Number("123", sip_headers=(("Team", "blue"), ("Tier", "2"))),)
    assert "sipHeaders must be name=value pairs" in str(
        refused("<Response><Dial><Number sipHeaders='a=b c'>1</Number></Dial></Response>")
    )


@pytest.mark.parametrize("where", ["Dial", "Number", "User"])
def test_reserved_header_names_are_dropped_silently(where: str) -> None:
    headers = "plivoX=1,PHfoo=2,sipauthuser=3,Twiliox=4,clientregion=5,ClientRegionX=6,Ok=7"
    dial_attr = f" sipHeaders='{headers}'" if where == "Dial" else ""
    noun = "Number" if where != "User" else "User"
    text = "123" if noun == "Number" else "sip:a@b"
    noun_attr = f" sipHeaders='{headers}'" if where != "Dial" else ""
    verb = dial(f"<Dial{dial_attr}><{noun}{noun_attr}>{text}</{noun}></Dial>")
    got = verb.sip_headers if where == "Dial" else verb.targets[0].sip_headers
    assert got == (("PHfoo", "2"), ("ClientRegionX", "6"), ("Ok", "7"))


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("PH-Foo", True),
        ("ph-foo", True),
        ("PlivoTrace", True),
        ("FS-x", True),
        ("SipAuthUser", True),
        ("zt-a", True),
        ("TWILIO", True),
        ("ClientRegion", True),
        ("clientREGION", True),
        ("ClientRegion2", False),
        ("PHone", False),
        ("Team", False),
    ],
)
def test_reserved_header_rule(name: str, reserved: bool) -> None:
    assert is_reserved_header(name) is reserved


@pytest.mark.parametrize("noun", ["<Number {a}>123</Number>", "<User {a}>sip:a@b</User>"])
def test_sip_credentials_on_number_and_user(noun: str) -> None:
    verb = dial(
        "<Dial>" + noun.format(a="sipAuthUsername='agent7' sipAuthPassword='s3cret-pw'") + "</Dial>"
    )
    (target,) = verb.targets
    assert (target.sip_auth_username, target.sip_auth_password) == ("agent7", "s3cret-pw")
    assert "s3cret-pw" not in repr(target)
    assert "s3cret-pw" not in repr(verb)


@pytest.mark.parametrize(
    ("attrs", "rule"),
    [
        ("sipAuthUsername='agent7'", "sipAuthPassword is missing"),
        ("sipAuthPassword='s3cret-pw'", "sipAuthUsername is missing"),
        ("sipAuthUsername='agent7' sipAuthPassword='short'", "8 to 128 characters"),
        ("sipAuthUsername='agent7' sipAuthPassword='" + "p" * 129 + "'", "8 to 128 characters"),
        ("sipAuthUsername='a b' sipAuthPassword='s3cret-pw'", "sipAuthUsername must be"),
    ],
)
def test_bad_credentials_name_the_attribute_and_rule_never_the_password(
    attrs: str, rule: str
) -> None:
    error = refused(f"<Response><Dial><User {attrs}>sip:a@b</User></Dial></Response>")
    message = str(error)
    assert rule in message
    for secret in ("short", "s3cret-pw", "p" * 129):
        assert secret not in message
        assert secret != error.value


def test_credentials_go_together_in_the_value_class_too() -> None:
    with pytest.raises(ValueError, match="go together"):
        User("sip:a@b", sip_auth_username="u")
    with pytest.raises(ValueError, match="go together"):
        Number("1", sip_auth_password="12345678")


# ---------------------------------------------------------------- callType


@pytest.mark.parametrize(
    ("value", "expected"),
    [("voice", CallType.VOICE), ("VOICE", CallType.VOICE), ("WhatsApp", CallType.WHATSAPP)],
)
def test_call_type_either_spelling(value: str, expected: CallType) -> None:
    assert dial(f"<Dial callType='{value}'><Number>1</Number></Dial>").call_type is expected


def test_call_type_and_credentials_reach_the_call_layer(clock: Clock) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        call = FakeCall(clock)
        document = parse(
            b"<Response><Dial callType='WhatsApp' timeout='5'>"
            b"<User sipAuthUsername='agent7' sipAuthPassword='s3cret-pw' sipHeaders='A=1'>"
            b"sip:a@b</User></Dial></Response>"
        )
        execute(call, FakeFetcher(), document, clock=clock)
        clock.advance(5)  # the ring timeout ends the fake attempt; the document goes on
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert events, "the run was logged"
    assert not any("s3cret-pw" in (formatEvent(e) or "") + repr(e) for e in events)
    (attempt,) = call.dials
    assert attempt.spec.call_type is CallType.WHATSAPP
    (target,) = attempt.spec.targets
    assert (target.sip_auth_username, target.sip_auth_password) == ("agent7", "s3cret-pw")
    assert target.sip_headers == (("A", "1"),)


def test_call_type_defaults_to_voice_and_refuses_others() -> None:
    assert dial("<Dial><Number>1</Number></Dial>").call_type is CallType.VOICE
    message = str(refused("<Response><Dial callType='fax'><Number>1</Number></Dial></Response>"))
    assert "callType must be one of: voice, whatsapp" in message


# ---------------------------------------------------------------- sendDigits tone length


@pytest.mark.parametrize("noun", ["Number", "User"])
@pytest.mark.parametrize("digits", ["123@1000", "1w2W#@50", f"9@{MAX_TONE_MS}", "12"])
def test_send_digits_take_a_tone_length(noun: str, digits: str) -> None:
    text = "1" if noun == "Number" else "sip:a@b"
    verb = dial(f"<Dial><{noun} sendDigits='{digits}'>{text}</{noun}></Dial>")
    assert verb.targets[0].send_digits == digits


@pytest.mark.parametrize(
    ("digits", "rule"),
    [
        (f"1@{MIN_TONE_MS - 1}", f"tone length after @ must be {MIN_TONE_MS} to {MAX_TONE_MS} ms"),
        (f"1@{MAX_TONE_MS + 1}", f"tone length after @ must be {MIN_TONE_MS} to {MAX_TONE_MS} ms"),
        ("1@", "optionally followed by @ and the tone length in ms"),
        ("@100", "must be 1 to 128 of 0-9"),
        ("1@1@2", "must be 1 to 128 of 0-9"),
        ("1@1.5", "must be 1 to 128 of 0-9"),
    ],
)
def test_bad_tone_lengths_are_refused(digits: str, rule: str) -> None:
    error = refused(f"<Response><Dial><Number sendDigits='{digits}'>1</Number></Dial></Response>")
    assert error.attribute == "sendDigits"
    assert rule in str(error)


def test_dtmf_verb_keeps_its_own_grammar() -> None:
    assert "DTMF must be 1 to 128" in str(refused("<Response><DTMF>1@100</DTMF></Response>"))


def test_tone_limits_fit_what_the_media_layer_sends() -> None:
    from media.dtmf import MAX_DIGIT_MS, MIN_DIGIT_MS

    assert MIN_DIGIT_MS <= MIN_TONE_MS
    assert MAX_TONE_MS <= MAX_DIGIT_MS
