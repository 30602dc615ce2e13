"""The parameters sent to application URLs, with Plivo's names.

Every request carries the call's own parameters (:meth:`ICallControl.params`:
``CallUUID``, ``From``, ``To``, ``Direction``, ``CallStatus``, ``CallerName``, …);
these functions add what each callback reports. Names follow Plivo's documentation;
where Plivo's reference did not show a name we chose one in its style, marked [ours].
"""

from __future__ import annotations

from collections.abc import Mapping

from xml_dsl.control import (
    ConferenceEvent,
    ConferenceResult,
    DialEvent,
    DialEventKind,
    DialResult,
    RecordResult,
    SpeechResult,
)

__all__ = [
    "conference_action_params",
    "conference_callback_params",
    "dial_action_params",
    "dial_callback_params",
    "dial_digits_params",
    "digits_params",
    "hangup_params",
    "record_params",
    "speech_params",
]

_EVENT_NAMES = {
    DialEventKind.ANSWER: "DialAnswer",
    DialEventKind.CONNECTED: "DialConnected",
    DialEventKind.HANGUP: "DialHangup",
    DialEventKind.DIGITS: "DialDigitsMatch",
}


def digits_params(digits: str) -> dict[str, str]:
    """``<GetDigits>`` action: ``Digits`` (without the finish key)."""
    return {"Digits": digits}


def speech_params(result: SpeechResult) -> dict[str, str]:
    """``<GetInput>`` action after speech: ``InputType``, ``Speech``, ``SpeechConfidenceScore``."""
    return {
        "InputType": "speech",
        "Speech": result.text,
        "SpeechConfidenceScore": f"{result.confidence:.2f}",
    }


def record_params(result: RecordResult) -> dict[str, str]:
    """``<Record>`` action and callbackUrl: ``RecordUrl``, ``RecordingID``,
    ``RecordingDuration`` (s), ``RecordingDurationMs``, ``RecordingStartMs``,
    ``RecordingEndMs`` (epoch ms); ``Digits`` when a key ended it."""
    params = {
        "RecordUrl": result.url,
        "RecordingID": result.recording_id,
        "RecordingDuration": str(round(result.duration_ms / 1000)),
        "RecordingDurationMs": str(result.duration_ms),
        "RecordingStartMs": str(result.start_ms),
        "RecordingEndMs": str(result.end_ms),
    }
    if result.digits:
        params["Digits"] = result.digits
    return params


def dial_action_params(a_leg_uuid: str, result: DialResult) -> dict[str, str]:
    """``<Dial>`` action: ``DialStatus``, ``DialRingStatus``, ``DialHangupCause``,
    ``DialALegUUID``, ``DialBLegUUID`` (empty if nobody answered)."""
    return {
        "DialStatus": result.status.value,
        "DialRingStatus": "true" if result.rang else "false",
        "DialHangupCause": result.hangup_cause,
        "DialALegUUID": a_leg_uuid,
        "DialBLegUUID": result.b_leg_uuid or "",
    }


def dial_callback_params(a_leg_uuid: str, event: DialEvent) -> dict[str, str]:
    """``<Dial callbackUrl>``: ``Event``, ``DialAction``, ``DialALegUUID``,
    ``DialBLegUUID``, ``DialBLegStatus``, ``DialBLegFrom``, ``DialBLegTo``,
    ``DialBLegPosition``; on hangup ``DialBLegHangupCause``, ``DialBLegDuration``,
    ``DialBLegBillDuration`` [ours: the last two]."""
    params = {
        "Event": _EVENT_NAMES[event.kind],
        "DialAction": event.kind.value,
        "DialALegUUID": a_leg_uuid,
        "DialBLegUUID": event.b_leg_uuid,
        "DialBLegStatus": event.kind.value,
        "DialBLegFrom": event.b_leg_from,
        "DialBLegTo": event.b_leg_to,
        "DialBLegPosition": str(event.position),
    }
    if event.kind is DialEventKind.HANGUP:
        params["DialBLegHangupCause"] = event.hangup_cause
        params["DialBLegDuration"] = str(event.duration)
        params["DialBLegBillDuration"] = str(event.bill_duration)
    return params


def dial_digits_params(a_leg_uuid: str, pattern: str, leg: str) -> dict[str, str]:
    """``<Dial callbackUrl>`` when ``digitsMatch``/``digitsMatchBLeg`` matched:
    ``DialDigitsMatch`` and ``DialDigitsPressedBy`` (``ALeg`` or ``BLeg`` [ours])."""
    return {
        "Event": "DialDigitsMatch",
        "DialAction": "digits",
        "DialALegUUID": a_leg_uuid,
        "DialDigitsMatch": pattern,
        "DialDigitsPressedBy": leg,
    }


def conference_callback_params(room: str, event: ConferenceEvent) -> dict[str, str]:
    """``<Conference callbackUrl>``: ``ConferenceAction``, ``ConferenceName``,
    ``ConferenceUUID``, ``ConferenceMemberID``; ``ConferenceDigitsMatch`` for digits;
    the recording's parameters for ``record``."""
    params = {
        "ConferenceAction": event.kind.value,
        "ConferenceName": room,
        "ConferenceUUID": event.conference_uuid,
        "ConferenceMemberID": event.member_id,
    }
    if event.digits:
        params["ConferenceDigitsMatch"] = event.digits
    if event.recording is not None:
        params.update(record_params(event.recording))
    return params


def conference_action_params(room: str, result: ConferenceResult) -> dict[str, str]:
    """``<Conference>`` action, after the member left: ``ConferenceName``,
    ``ConferenceUUID``, ``ConferenceMemberID``, and with ``record`` the room
    recording's ``RecordUrl`` and ``RecordingID`` (Plivo's list: the recording may
    still run, its length goes to callbackUrl's ``record`` event)."""
    params = {
        "ConferenceName": room,
        "ConferenceUUID": result.conference_uuid,
        "ConferenceMemberID": result.member_id,
    }
    if result.recording is not None:
        params["RecordUrl"] = result.recording.url
        params["RecordingID"] = result.recording.recording_id
    return params


def hangup_params(
    call_params: Mapping[str, str],
    *,
    cause: str,
    cause_code: int | None,
    source: str,
    duration: int,
    bill_duration: int,
    start_time: str = "",
    answer_time: str = "",
    end_time: str = "",
) -> dict[str, str]:
    """For the call layer's ``hangup_url``: the call's parameters with
    ``CallStatus=completed``, ``HangupCause``, ``HangupCauseName``, ``HangupCauseCode``,
    ``HangupSource``, ``Duration``, ``BillDuration`` (s) and the times
    (``yyyy-MM-dd HH:mm:ss``, as Plivo writes them)."""
    params = dict(call_params)
    params.update(
        {
            "CallStatus": "completed",
            "HangupCause": cause,
            "HangupCauseName": cause,
            "HangupSource": source,
            "Duration": str(duration),
            "BillDuration": str(bill_duration),
            "StartTime": start_time,
            "AnswerTime": answer_time,
            "EndTime": end_time,
        }
    )
    if cause_code is not None:
        params["HangupCauseCode"] = str(cause_code)
    return params
