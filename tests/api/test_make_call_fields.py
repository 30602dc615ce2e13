"""``POST …/Call/`` field rules, through the REST handler with a recording call manager:
Plivo's defaults (``hangup_url`` is the ``answer_url``), ``send_digits`` with a tone
length, and the SIP header names Plivo reserves."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from telephony.api._http import ApiRequest, Reply
from telephony.api.calls_v1 import MAX_TONE_MS, MIN_TONE_MS, CallsAPI
from telephony.calls.originate import OriginateRequest
from telephony.directory import FieldError

ANSWER = "http://127.0.0.1:9/answer"


class RecordingOriginator:
    def __init__(self) -> None:
        self.requests: list[OriginateRequest] = []

    def originate(self, request: OriginateRequest) -> str:
        self.requests.append(request)
        return f"request-{len(self.requests)}"


class RecordingManager:
    """What the handler needs of the call manager: where a target is, and placing it."""

    def __init__(self) -> None:
        self.originator = RecordingOriginator()

    def resolve(self, target: Any, *args: Any) -> object:
        return object()  # anything but a Cause: the destination can be called


def create(**params: object) -> OriginateRequest:
    manager = RecordingManager()
    api = CallsAPI(manager=manager, cdrs=None)  # type: ignore[arg-type]
    body = {"from": "18004321321", "to": "18001231234", "answer_url": ANSWER, **params}
    d = Deferred.fromCoroutine(api.create(ApiRequest("POST", body, {}, "/v1/Account/MA1")))
    results: list[Reply] = []
    failures: list[Any] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results[0].status == 201
    (request,) = manager.originator.requests
    return request


def refused(**params: object) -> FieldError:
    with pytest.raises(FieldError) as info:
        create(**params)
    return info.value


def test_hangup_url_and_method_default_to_the_answer_ones() -> None:
    app = create().application
    assert (app.hangup_url, app.hangup_method) == (ANSWER, "POST")
    app = create(answer_method="GET").application
    assert (app.hangup_url, app.hangup_method) == (ANSWER, "GET")
    app = create(hangup_url="", answer_method="get").application
    assert (app.hangup_url, app.hangup_method) == (ANSWER, "GET")


def test_a_given_hangup_url_and_method_win() -> None:
    app = create(hangup_url="http://127.0.0.1:9/bye", hangup_method="GET").application
    assert (app.answer_method, app.hangup_url, app.hangup_method) == (
        "POST",
        "http://127.0.0.1:9/bye",
        "GET",
    )


@pytest.mark.parametrize(
    "digits", ["12w3", "123@1000", f"1W#@{MIN_TONE_MS}", f"9@{MAX_TONE_MS}", "ABCD@60"]
)
def test_send_digits_take_a_tone_length(digits: str) -> None:
    assert create(send_digits=digits).send_digits == digits


@pytest.mark.parametrize(
    "digits",
    [
        f"1@{MIN_TONE_MS - 1}",
        f"1@{MAX_TONE_MS + 1}",
        "1@",
        "@1000",
        "1@10@20",
        "12x",
        "1@1e3",
    ],
)
def test_bad_send_digits_name_the_field_and_the_rule(digits: str) -> None:
    error = refused(send_digits=digits)
    assert error.field == "send_digits"
    assert f"@ and a tone length of {MIN_TONE_MS} to {MAX_TONE_MS} ms" in error.rule


def test_reserved_sip_header_names_are_dropped() -> None:
    request = create(
        sip_headers="PH-Route=1,plivo-x=2,FS-A=3,SipAuthX=4,ZT-b=5,twilioSid=6,ClientRegion=7,"
        "Team=blue"
    )
    assert request.sip_headers == (("Team", "blue"),)
