"""The parser: Plivo's rules, clear errors, and hostile or broken documents."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xml_dsl import XMLError, parse
from xml_dsl.parser import MAX_DOCUMENT_BYTES, MAX_ELEMENTS
from xml_dsl.verbs import (
    DTMF,
    Dial,
    GetDigits,
    GetInput,
    InputType,
    Method,
    Number,
    Play,
    PreAnswer,
    Redirect,
    Speak,
    User,
    Wait,
)


def one(xml: str) -> object:
    (verb,) = parse(xml.encode()).verbs
    return verb


def refused(xml: str | bytes) -> str:
    data = xml.encode() if isinstance(xml, str) else xml
    with pytest.raises(XMLError) as info:
        parse(data)
    return str(info.value)


def test_error_names_line_element_attribute_and_rule() -> None:
    xml = (
        '<?xml version="1.0"?>\n<Response>\n'
        '<Dial timeout="abc"><Number>1</Number></Dial>\n</Response>'
    )
    assert refused(xml) == 'line 3: <Dial timeout="abc">: timeout must be a positive integer'


def test_a_full_document() -> None:
    doc = parse(b"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <!-- comments are fine -->
  <PreAnswer><Play loop="2">http://127.0.0.1/ring.wav</Play></PreAnswer>
  <Speak voice="woman" language="fr-FR" loop="0">Bonjour</Speak>
  <GetDigits action="http://127.0.0.1/a" finishOnKey="" validDigits="12"><Wait length="2"/>
  </GetDigits>
  <DTMF async="FALSE">1w2</DTMF>
  <Dial><Number>+15550001111</Number><User>sip:bob@example.com</User></Dial>
  <Redirect method="get">http://127.0.0.1/next</Redirect>
  <Hangup reason="Rejected"/>
</Response>""")
    pre, speak, digits, dtmf, dial, redirect, hangup = doc.verbs
    assert pre == PreAnswer((Play("http://127.0.0.1/ring.wav", 2),))
    assert speak == Speak("Bonjour", None, "WOMAN", "fr-FR", 0)
    assert isinstance(digits, GetDigits)
    assert digits.finish_on_key is None
    assert digits.valid_digits == frozenset("12")
    assert digits.prompts == (Wait(2),)
    assert dtmf == DTMF("1w2", async_=False)
    assert dial == Dial((Number("+15550001111"), User("sip:bob@example.com")))
    assert redirect == Redirect("http://127.0.0.1/next", Method.GET)
    assert hangup.reason.value == "rejected"
    assert hangup.line == 11


def test_empty_response_is_a_document_with_no_verbs() -> None:
    assert parse(b"<Response/>").verbs == ()


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<Response><Foo/></Response>", "unknown element <Foo>"),
        ("<Response>hello</Response>", "<Response> may not contain text"),
        ("<Response><Number>1</Number></Response>", "<Number> may not be nested in <Response>"),
        (
            "<Response><GetDigits><Dial><Number>1</Number></Dial></GetDigits></Response>",
            "<Dial> may not be nested in <GetDigits>",
        ),
        ("<Response><Dial/></Response>", "at least one <Number> or <User>"),
        ("<Response><Dial><Speak>x</Speak></Dial></Response>", "only <Number> and <User>"),
        (
            "<Response><Dial>" + "<Number>1</Number>" * 11 + "</Dial></Response>",
            "at most 10 numbers",
        ),
        ("<Response><Speak/></Response>", "Speak must contain text"),
        ("<Response><Speak loop='-1'>x</Speak></Response>", "loop must be an integer >= 0"),
        ("<Response><Speak voice='ROBOT'>x</Speak></Response>", "voice must be WOMAN, MAN"),
        ("<Response><Play>ftp://x/y.wav</Play></Response>", "fully qualified http(s) URL"),
        ("<Response><Play/></Response>", "must contain the URL"),
        ("<Response><Wait length='0'/></Response>", "length must be a positive integer"),
        ("<Response><Wait silence='yes'/></Response>", "silence must be true or false"),
        (
            "<Response><Redirect method='PUT'>http://h/x</Redirect></Response>",
            "method must be GET or POST",
        ),
        ("<Response><Hangup reason='angry'/></Response>", "reason must be one of: rejected, busy"),
        ("<Response><Hangup schedule='0'/></Response>", "schedule must be a positive integer"),
        ("<Response><DTMF>12x</DTMF></Response>", "DTMF must be 1 to 128 of 0-9"),
        ("<Response><GetDigits finishOnKey='##'/></Response>", "finishOnKey must be one key"),
        ("<Response><GetDigits validDigits='1a'/></Response>", "validDigits must be keys"),
        ("<Response><GetInput inputType='dtmf'/></Response>", "attribute action is required"),
        (
            "<Response><GetInput action='http://h/a' inputType='voice'/></Response>",
            "inputType must be dtmf, speech or dtmf speech",
        ),
        (
            "<Response><GetInput action='http://h/a' inputType='dtmf' executionTimeout='61'/>"
            "</Response>",
            "executionTimeout must be an integer from 5 to 60",
        ),
        (
            "<Response><GetInput action='http://h/a' inputType='dtmf' digitEndTimeout='1'/>"
            "</Response>",
            "digitEndTimeout must be auto or an integer from 2 to 10",
        ),
        ("<Response><Record fileFormat='ogg'/></Response>", "fileFormat must be one of: mp3, wav"),
        ("<Response><Record maxLength='1'/></Response>", "maxLength must be an integer >= 2"),
        ("<Response><Conference/></Response>", "must contain the conference room name"),
        (
            "<Response><Conference maxMembers='21'>r</Conference></Response>",
            "maxMembers must be an integer from 1 to 20",
        ),
        (
            "<Response><Conference enterSound='beep:3'>r</Conference></Response>",
            'enterSound must be "", beep:1, beep:2 or a URL',
        ),
        (
            "<Response><Dial callerName='" + "x" * 51 + "'><Number>1</Number></Dial></Response>",
            "callerName must be at most 50 characters",
        ),
        ("<Response><Dial><User>alice</User></Dial></Response>", "must be a SIP URI"),
        ("<Response><Dial><Number>12-34</Number></Dial></Response>", "must be a phone number"),
        (
            "<Response><Dial><User sipHeaders='X-A=b c'>sip:a@b</User></Dial></Response>",
            "sipHeaders must be name=value pairs",
        ),
        (
            "<Response><Dial dialMusic='jazz'><Number>1</Number></Dial></Response>",
            "dialMusic must be real or a URL",
        ),
        ("<Response><Speak>Hi <foo/></Speak></Response>", "<foo> is not allowed inside <Speak>"),
        ("<Response><Speak><s><p>x</p></s></Speak></Response>", "<p> may not be nested in <s>"),
        ("<Response><Speak>a<break time='20s'/></Speak></Response>", "time must be at most 10s"),
        (
            "<Response><Speak><say-as>1</say-as></Speak></Response>",
            "attribute interpret-as is required",
        ),
        ("<Response><Speak><lang>x</lang></Speak></Response>", "attribute xml:lang is required"),
        ("<Response><Speak>" + "a" * 3001 + "</Speak></Response>", "at most 3000 characters"),
    ],
)
def test_refused_with_a_clear_rule(xml: str, message: str) -> None:
    assert message in refused(xml)


def test_speech_is_accepted_only_where_a_shipped_model_exists() -> None:
    verb = one("<Response><GetInput action='http://h/a' inputType='speech'/></Response>")
    assert isinstance(verb, GetInput)
    assert verb.input_types == frozenset({InputType.SPEECH})
    message = refused(
        "<Response><GetInput action='http://h/a' inputType='dtmf speech' "
        "language='de-DE'/></Response>"
    )
    assert "speech recognition is available for en-US only" in message
    assert "pocketsphinx" in message
    dtmf = one(
        "<Response><GetInput action='http://h/a' inputType='dtmf' language='de-DE'/></Response>"
    )
    assert isinstance(dtmf, GetInput)


def test_ssml_is_kept_as_a_speak_document() -> None:
    verb = one(
        '<Response><Speak language="en-GB">Call <say-as interpret-as="telephone">'
        "555</say-as><break/> now</Speak></Response>"
    )
    assert isinstance(verb, Speak)
    assert verb.text == "Call 555 now"
    assert verb.ssml == (
        '<speak xml:lang="en-GB">Call <say-as interpret-as="telephone">'
        "555</say-as><break/> now</speak>"
    )


def test_ssml_text_is_escaped_in_the_kept_document() -> None:
    verb = one("<Response><Speak>a &lt;b&gt; &amp; <emphasis>c</emphasis></Speak></Response>")
    assert isinstance(verb, Speak)
    assert verb.text == "a <b> & c"
    assert verb.ssml is not None
    assert "a &lt;b&gt; &amp; <emphasis>c</emphasis>" in verb.ssml


# ---------------------------------------------------------------- hostile documents

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Response><Speak>&lol9;</Speak></Response>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Response SYSTEM "http://127.0.0.1:1/plivo.dtd">
<Response><Speak>x</Speak></Response>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response><Speak>&xxe;</Speak></Response>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL_DTD, XXE])
def test_doctype_and_entities_are_refused_outright(doc: bytes) -> None:
    assert "DOCTYPE and entity declarations are not allowed" in refused(doc)


def test_doctype_hidden_by_utf16_is_still_refused() -> None:
    doc = XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    message = refused(doc.encode("utf-16"))
    assert "DOCTYPE" in message or "entity" in message.lower()


def test_an_undeclared_entity_is_not_expanded() -> None:
    assert "not well-formed" in refused("<Response><Speak>&lol;</Speak></Response>")


def test_ten_megabyte_body_is_refused_before_parsing() -> None:
    body = b"<Response>" + b"<Speak>x</Speak>" * (10 * 1024 * 1024 // 16) + b"</Response>"
    started = time.perf_counter()
    message = refused(body)
    assert time.perf_counter() - started < 0.5
    assert f"the limit is {MAX_DOCUMENT_BYTES}" in message


def test_too_many_elements() -> None:
    body = "<Response>" + "<Wait/>" * (MAX_ELEMENTS + 1) + "</Response>"
    assert f"the limit is {MAX_ELEMENTS}" in refused(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "document is empty"),
        (b"   \n ", "document is empty"),
        (b"not xml at all", "not well-formed XML"),
        (b'{"json": true}', "not well-formed XML"),
        (
            b"<html><head><title>500</title></head><body><h1>Error</h1></body></html>",
            "line 1: <html>: the root element must be <Response>, not <html>",
        ),
        (b"<html><body>oops</html>", "not well-formed XML"),
        (b"<Response><Speak>unterminated", "not well-formed XML"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"<Response xmlns='urn:x'/>", "root element must be <Response>"),
    ],
)
def test_broken_documents(body: bytes, message: str) -> None:
    assert message in refused(body)


def test_parse_wants_bytes() -> None:
    with pytest.raises(TypeError):
        parse("<Response/>")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_give_a_document_or_xml_error(data: bytes) -> None:
    with contextlib.suppress(XMLError):
        parse(data)


SEED = (
    b'<Response><GetDigits action="http://h/a" numDigits="2"><Speak>Hi <break/></Speak>'
    b'</GetDigits><Dial timeout="5"><Number>123</Number></Dial><Hangup/></Response>'
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED) - 1), st.integers(0, 40), st.binary(max_size=8))
def test_mutated_documents_give_a_document_or_xml_error(at: int, cut: int, junk: bytes) -> None:
    data = SEED[:at] + junk + SEED[at + cut :]
    with contextlib.suppress(XMLError):
        parse(data)
