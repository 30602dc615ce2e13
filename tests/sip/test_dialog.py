"""Dialogs and session timers: in-dialog requests, CSeq order, RFC 4028 negotiation."""

from __future__ import annotations

import pytest

from telephony.sip.dialog import Dialog
from telephony.sip.errors import SipProtocolError
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.session_timer import (
    TooSmallError,
    negotiate_as_uas,
    offer_as_uac,
    result_as_uac,
)
from tests.sip.helpers import request_bytes


def _invite(extra: str = "") -> Request:
    message = parse_datagram(
        request_bytes(
            "INVITE",
            uri="sip:bob@example.test",
            extra="Contact: <sip:alice@10.0.0.1:5060>\r\n"
            "Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n" + extra,
        )
    )
    assert isinstance(message, Request)
    return message


def test_uas_dialog_builds_bye_with_route_set_and_tags() -> None:
    invite = _invite()
    dialog = Dialog.as_uas(invite, "ourtag", "<sip:srv@127.0.0.1:5060>", "127.0.0.1:5060")
    bye = dialog.request("BYE")
    assert str(bye.uri) == "sip:alice@10.0.0.1:5060"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert bye.from_.tag == "ourtag"
    assert bye.to.tag == "fromtag"
    assert bye.call_id == invite.call_id
    second = dialog.request("BYE")
    assert second.cseq.number == bye.cseq.number + 1
    assert bye.top_via.branch != second.top_via.branch


def test_uac_dialog_reverses_record_route_and_acks_with_invite_cseq() -> None:
    invite = _invite()
    response = Response.for_request(invite, 200, to_tag="far")
    response.headers.add("Contact", "<sip:bob@10.0.0.2:5070>")
    response.headers.add("Record-Route", "<sip:p2.example;lr>, <sip:p1.example;lr>")
    dialog = Dialog.as_uac(invite, response, "127.0.0.1:5060")
    ack = dialog.ack(invite.cseq.number)
    assert str(ack.cseq) == f"{invite.cseq.number} ACK"
    assert str(ack.uri) == "sip:bob@10.0.0.2:5070"
    assert ack.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert ack.to.tag == "far"
    with pytest.raises(SipProtocolError):
        dialog.request("ACK")


def test_remote_cseq_order_and_target_refresh() -> None:
    invite = _invite()
    dialog = Dialog.as_uas(invite, "t", "<sip:srv@127.0.0.1>", "127.0.0.1:5060")
    reinvite = parse_datagram(
        request_bytes("INVITE", "z9hG4bKre", cseq=2, extra="Contact: <sip:alice@10.9.9.9:6000>\r\n")
    )
    assert isinstance(reinvite, Request)
    dialog.check_remote_request(reinvite)
    assert str(dialog.remote_target) == "sip:alice@10.9.9.9:6000"
    stale = parse_datagram(request_bytes("BYE", "z9hG4bKold", cseq=2))
    assert isinstance(stale, Request)
    with pytest.raises(SipProtocolError) as excinfo:
        dialog.check_remote_request(stale)
    assert excinfo.value.status_hint == 500


def test_session_timer_as_uas() -> None:
    timer, headers = negotiate_as_uas(
        _invite("Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n")
    )
    assert (timer.interval, timer.refresher, timer.we_refresh) == (600, "uac", False)
    assert headers.get("Require") == "timer"
    assert timer.expire_after == 600 - 32
    with pytest.raises(TooSmallError) as excinfo:
        negotiate_as_uas(_invite("Supported: timer\r\nSession-Expires: 30\r\n"))
    assert (excinfo.value.status_hint, excinfo.value.min_se) == (422, 90)
    raised, _ = negotiate_as_uas(_invite("Session-Expires: 30\r\n"))
    assert (raised.interval, raised.we_refresh) == (90, True)
    default, headers = negotiate_as_uas(_invite())
    assert (default.interval, default.refresher, default.refresh_after) == (1800, "uas", 900)
    assert "Require" not in headers


def test_session_timer_as_uac() -> None:
    assert offer_as_uac().get("Session-Expires") == "1800"
    invite = _invite()
    response = Response.for_request(invite, 200)
    response.headers.add("Session-Expires", "120;refresher=uas")
    timer = result_as_uac(response)
    assert (timer.interval, timer.we_refresh, timer.expire_after) == (120, False, 88)
    assert result_as_uac(Response.for_request(invite, 200)).we_refresh
