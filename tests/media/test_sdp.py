"""SDP parsing and offer/answer (RFC 4566, RFC 3264)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.errors import SDPError
from media.g711 import Codec
from media.sdp import (
    Direction,
    Origin,
    RtpMap,
    accept_answer,
    answer_offer,
    make_offer,
    parse_sdp,
)

OURS = Origin("telephony", 42, 1, "127.0.0.1")

SOFTPHONE_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 8 0 96 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:30\r\n"
    b"a=sendrecv\r\n"
)


def offer(formats: str, *extra: str, c: str = "c=IN IP4 192.0.2.10") -> bytes:
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.10",
        "s=-",
        c,
        "t=0 0",
        f"m=audio 5004 RTP/AVP {formats}",
    ]
    return ("\r\n".join([*lines, *extra]) + "\r\n").encode()


def test_parse_softphone_offer() -> None:
    sd = parse_sdp(SOFTPHONE_OFFER)
    assert sd.origin == Origin("alice", 2890844526, 2890844526, "192.0.2.10")
    assert sd.connection == "192.0.2.10"
    (m,) = sd.media
    assert (m.media, m.port, m.proto, m.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ("8", "0", "96", "101"),
    )
    assert m.rtpmap(96) == RtpMap(96, "opus", 48000, 2)
    assert m.fmtps == ((101, "0-16"),)
    assert m.ptime == 30
    assert m.direction is Direction.SENDRECV


def test_answer_uses_first_supported_codec_of_the_offer_and_its_event_pt() -> None:
    answer, neg = answer_offer(parse_sdp(SOFTPHONE_OFFER), OURS, address="127.0.0.1", port=20000)
    assert neg.codec is Codec.PCMA
    assert neg.payload_type == 8
    assert neg.telephone_event == 101
    assert (neg.remote_host, neg.remote_port) == ("192.0.2.10", 49170)
    assert neg.direction is Direction.SENDRECV
    assert neg.remote_ptime == 30
    text = answer.to_bytes().decode()
    assert "m=audio 20000 RTP/AVP 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\n" in text
    assert "a=ptime:20\r\n" in text
    assert "c=IN IP4 127.0.0.1\r\n" in text
    assert parse_sdp(answer.to_bytes()) == answer


def test_static_payload_types_need_no_rtpmap_and_dynamic_pcmu_is_recognised() -> None:
    _, neg = answer_offer(parse_sdp(offer("0")), OURS, address="127.0.0.1", port=1)
    assert (neg.codec, neg.payload_type, neg.telephone_event) == (Codec.PCMU, 0, None)
    _, neg = answer_offer(
        parse_sdp(offer("97 8", "a=rtpmap:97 pcmu/8000")), OURS, address="127.0.0.1", port=1
    )
    assert (neg.codec, neg.payload_type) == (Codec.PCMU, 97)


def test_telephone_event_pt_is_taken_from_the_offer() -> None:
    sd = parse_sdp(offer("0 126", "a=rtpmap:126 telephone-event/8000"))
    answer, neg = answer_offer(sd, OURS, address="127.0.0.1", port=2)
    assert neg.telephone_event == 126
    assert answer.media[0].formats == ("0", "126")
    # An rtpmap for a format not in the m-line does not count.
    sd = parse_sdp(offer("0", "a=rtpmap:126 telephone-event/8000"))
    assert answer_offer(sd, OURS, address="127.0.0.1", port=2)[1].telephone_event is None


def test_our_offer_uses_101() -> None:
    sd = make_offer(OURS, address="127.0.0.1", port=16384)
    text = sd.to_bytes().decode()
    assert "m=audio 16384 RTP/AVP 0 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\n" in text
    assert "a=sendrecv\r\n" in text
    assert parse_sdp(sd.to_bytes()) == sd


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_answer_mirrors_direction(theirs: str, ours: Direction) -> None:
    _, neg = answer_offer(parse_sdp(offer("0", f"a={theirs}")), OURS, address="h", port=1)
    assert neg.direction is ours
    assert neg.on_hold is not ours.sends


def test_session_level_direction_and_old_style_hold() -> None:
    body = offer("0").replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    assert (
        answer_offer(parse_sdp(body), OURS, address="h", port=1)[1].direction is Direction.RECVONLY
    )
    held = parse_sdp(offer("0", c="c=IN IP4 0.0.0.0"))
    assert answer_offer(held, OURS, address="h", port=1)[1].direction is Direction.RECVONLY


def test_we_hold_with_sendonly_wish() -> None:
    _, neg = answer_offer(
        parse_sdp(offer("0")), OURS, address="h", port=1, wanted=Direction.SENDONLY
    )
    assert neg.direction is Direction.SENDONLY


def test_other_streams_are_refused_with_port_zero_in_order() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=video 6000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        b"m=audio 0 RTP/AVP 0\r\n"
        b"m=audio 5000 RTP/SAVP 0\r\n"
        b"m=audio 5002 RTP/AVP 18 8\r\n"
        b"m=audio 5004 RTP/AVP 0\r\n"
    )
    answer, neg = answer_offer(parse_sdp(body), OURS, address="127.0.0.1", port=3000)
    assert [(m.media, m.port) for m in answer.media] == [
        ("video", 0),
        ("audio", 0),
        ("audio", 0),
        ("audio", 3000),
        ("audio", 0),
    ]
    assert answer.media[0].formats == ("96",)
    assert (neg.remote_port, neg.codec) == (5002, Codec.PCMA)


def test_no_supported_codec_is_488() -> None:
    with pytest.raises(SDPError, match="no RTP/AVP audio stream offers PCMU") as info:
        answer_offer(
            parse_sdp(offer("18 96", "a=rtpmap:96 opus/48000/2")), OURS, address="h", port=1
        )
    assert info.value.status_hint == 488
    # PCMU at the wrong clock rate is not PCMU.
    with pytest.raises(SDPError):
        answer_offer(parse_sdp(offer("96", "a=rtpmap:96 PCMU/16000")), OURS, address="h", port=1)


def test_missing_connection_address() -> None:
    body = offer("0", c="b=AS:64")
    with pytest.raises(SDPError, match="c=: no connection address for m=audio"):
        answer_offer(parse_sdp(body), OURS, address="h", port=1)


def test_ipv6_connection() -> None:
    _, neg = answer_offer(parse_sdp(offer("0", c="c=IN IP6 ::1")), OURS, address="::1", port=1)
    assert neg.remote_host == "::1"
    assert b"c=IN IP6 ::1" in make_offer(OURS, address="::1", port=2).to_bytes()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "v=: the description must start with 'v=0'"),
        (b"v=1\r\n", "v=: the description must start with 'v=0'"),
        (b"v=0\r\ns=-\r\n", "o=: the origin line is required"),
        (b"v=0\r\no=- 1 1 IN IP4\r\n", "o=: needs 6 fields"),
        (b"v=0\r\no=- x 1 IN IP4 h\r\n", "o=: session id must be a number"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nbogus\r\n", "line 3: must be '<type>=<value>'"),
        (
            b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n",
            "m=audio: port must be 0-65535, got 70000",
        ),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 5000\r\n", "m=: needs '<media> <port> <proto> <fmt>"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n", "m=audio: port must be a number"),
        (
            b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 example.com\r\n",
            "c=: address must be an IP literal",
        ),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP6 10.0.0.1\r\n", "does not match address type IP6"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN\r\n", "c=: must be 'IN IP4|IP6 <address>'"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0\r\n", "a=rtpmap: must be"),
        (
            b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:300 X/8000\r\n",
            "a=rtpmap: payload type must be 0-127",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=ptime:0\r\n",
            "m=audio: a=ptime must be 1-1000",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=fmtp:x 0-15\r\n",
            "a=fmtp: payload type",
        ),
        (b"v=0\r\n\xff\xfe", "body: must be UTF-8"),
        (b"v=0\r\n" + b"a=x\r\n" * 20000, "body: at most 65536 bytes"),
    ],
)
def test_malformed_sdp_names_line_and_rule(body: bytes, message: str) -> None:
    with pytest.raises(SDPError, match=message) as info:
        parse_sdp(body)
    assert info.value.status_hint == 400


@given(st.text(max_size=300))
def test_parser_raises_only_sdperror(text: str) -> None:
    with contextlib.suppress(SDPError):
        parse_sdp("v=0\no=- 1 1 IN IP4 h\n" + text)


def test_accept_answer() -> None:
    ours = make_offer(OURS, address="127.0.0.1", port=16384)
    answer = parse_sdp(offer("8 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"))
    neg = accept_answer(ours, answer)
    assert (neg.codec, neg.payload_type, neg.telephone_event) == (Codec.PCMA, 8, 101)
    assert neg.direction is Direction.SENDRECV


def test_accept_answer_to_our_hold() -> None:
    ours = make_offer(OURS, address="127.0.0.1", port=16384, direction=Direction.SENDONLY)
    neg = accept_answer(ours, parse_sdp(offer("0", "a=recvonly")))
    assert neg.direction is Direction.SENDONLY


def test_accept_answer_rejections() -> None:
    ours = make_offer(OURS, address="127.0.0.1", port=16384, codecs=[Codec.PCMU])
    with pytest.raises(SDPError, match="picked no codec from our offer"):
        accept_answer(ours, parse_sdp(offer("8")))
    refused = parse_sdp(offer("0").replace(b"m=audio 5004", b"m=audio 0"))
    with pytest.raises(SDPError, match=r"refused the audio stream \(port 0\)"):
        accept_answer(ours, refused)
    two = parse_sdp(offer("0") + b"m=video 0 RTP/AVP 96\r\n")
    with pytest.raises(SDPError, match="answer has 2 media lines, offer had 1"):
        accept_answer(ours, two)


def test_unknown_attributes_are_kept() -> None:
    sd = parse_sdp(offer("0", "a=rtcp:5005", "a=ice-lite"))
    assert sd.media[0].attributes == (("rtcp", "5005"), ("ice-lite", None))
    assert parse_sdp(sd.to_bytes()) == sd


def test_attributes_of_a_video_stream_are_kept_unchecked() -> None:
    """RFC 4475's valid INVITEs (esc01, sdp01...) offer video with ``a=rtpmap:31 LPC``
    (no clock rate): refusing the whole description answered them 400."""
    body = (
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\n"
        b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
    )
    sd = parse_sdp(body)
    assert sd.media[1].attributes == (("rtpmap", "31 LPC"),)
    assert parse_sdp(sd.to_bytes()) == sd
    answer, negotiated = answer_offer(sd, OURS, address="127.0.0.1", port=4000)
    assert negotiated.payload_type == 0
    assert [m.port for m in answer.media] == [4000, 0]  # video refused, audio taken
