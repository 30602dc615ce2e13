"""The JSON Schemas of REST v1's response bodies (``components/schemas``).

Each object is closed (``additionalProperties: false``) and lists what is always
present as ``required``, so a response with a field too many, too few or of another
type is a schema violation.  The shapes are those of
:mod:`telephony.api.directory_v1`, :mod:`telephony.api.calls_v1` and
:mod:`telephony.api.conference_v1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ("ERROR_STATUSES", "SCHEMAS", "nullable", "ref")

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
NULL: Schema = {"type": "null"}
TIME: Schema = {
    "type": "string",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
    "description": "YYYY-MM-DD HH:MM:SS, UTC.",
}


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/{name}``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """*schema* or null."""
    return {"anyOf": [schema, NULL]}


def _object(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def _detail(fields: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    return _object({"api_id": STRING, **fields}, optional)


def _list(item: str) -> Schema:
    return _detail({"meta": ref("Meta"), "objects": {"type": "array", "items": ref(item)}})


_ENDPOINT: Mapping[str, Schema] = {
    "alias": STRING,
    "application": nullable(STRING),
    "app_id": nullable(STRING),
    "endpoint_id": STRING,
    "resource_uri": STRING,
    "sip_registered": {"type": "string", "enum": ["true", "false"]},
    "sip_uri": STRING,
    "sub_account": NULL,
    "username": STRING,
}
_REGISTRATION: Mapping[str, Schema] = {
    "sip_contact": STRING,
    "sip_expires": TIME,
    "sip_user_agent": STRING,
}
_APPLICATION: Mapping[str, Schema] = {
    "app_name": STRING,
    "answer_url": STRING,
    "answer_method": STRING,
    "hangup_url": STRING,
    "hangup_method": STRING,
    "fallback_answer_url": STRING,
    "fallback_method": STRING,
    "message_url": STRING,
    "message_method": STRING,
    "default_endpoint_app": BOOLEAN,
    "default_number_app": BOOLEAN,
    "log_incoming_messages": BOOLEAN,
    "public_uri": BOOLEAN,
    "app_id": STRING,
    "default_app": BOOLEAN,
    "enabled": BOOLEAN,
    "resource_uri": STRING,
    "sip_uri": STRING,
    "sub_account": NULL,
    "builtin": nullable(STRING),
}
_NUMBER: Mapping[str, Schema] = {
    "added_on": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    "alias": STRING,
    "application": nullable(STRING),
    "app_id": nullable(STRING),
    "carrier": STRING,
    "number": STRING,
    "number_type": STRING,
    "region": STRING,
    "resource_uri": STRING,
    "sms_enabled": BOOLEAN,
    "voice_enabled": BOOLEAN,
    "sub_account": NULL,
}
_CALL_RECORD: Mapping[str, Schema] = {
    "answer_time": nullable(TIME),
    "bill_duration": INTEGER,
    "billed_duration": INTEGER,
    "call_direction": {"type": "string", "enum": ["inbound", "outbound"]},
    "call_duration": INTEGER,
    "call_status": {
        "type": "string",
        "enum": ["completed", "busy", "failed", "no-answer", "cancel"],
    },
    "call_uuid": STRING,
    "end_time": TIME,
    "from_number": STRING,
    "hangup_cause_code": nullable(INTEGER),
    "hangup_cause_name": STRING,
    "hangup_source": STRING,
    "initiation_time": TIME,
    "parent_call_uuid": nullable(STRING),
    "request_uuid": nullable(STRING),
    "resource_uri": STRING,
    "to_number": STRING,
    "total_amount": STRING,
    "total_rate": STRING,
}
_LIVE_CALL: Mapping[str, Schema] = {
    "call_uuid": STRING,
    "call_status": {"type": "string", "enum": ["ringing", "in-progress", "completed"]},
    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
    "from": STRING,
    "to": STRING,
    "caller_name": STRING,
    "request_uuid": nullable(STRING),
    "session_start": TIME,
    "answer_time": nullable(TIME),
    "parent_call_uuid": nullable(STRING),
    "call_duration": INTEGER,
}
_MEMBER: Mapping[str, Schema] = {
    "muted": BOOLEAN,
    "member_id": STRING,
    "deaf": BOOLEAN,
    "from": STRING,
    "to": STRING,
    "caller_name": STRING,
    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
    "call_uuid": STRING,
    "join_time": {"type": "string", "pattern": "^[0-9]+$", "description": "Seconds in the room."},
}
_COUNT_TEXT: Schema = {"type": "string", "pattern": "^[0-9]+$"}

#: ``components/schemas``: every response body.
_DECIMAL: Schema = {"type": "string", "pattern": "^[0-9]+\\.00000$"}
_RECORDING: Mapping[str, Schema] = {
    "add_time": {"type": "string", "description": "YYYY-MM-DD HH:MM:SS.ffffff+00:00"},
    "call_uuid": STRING,
    "conference_name": nullable(STRING),
    "conference_uuid": nullable(STRING),
    "from_number": STRING,
    "to_number": STRING,
    "monthly_recording_storage_amount": STRING,
    "recording_duration_ms": _DECIMAL,
    "recording_end_ms": _DECIMAL,
    "recording_format": {"type": "string", "enum": ["mp3", "wav"]},
    "recording_id": STRING,
    "recording_start_ms": _DECIMAL,
    "recording_storage_duration": {"type": "integer", "minimum": 1},
    "recording_storage_rate": STRING,
    "recording_type": {"type": "string", "enum": ["normal", "conference"]},
    "recording_url": STRING,
    "resource_uri": STRING,
    "rounded_recording_duration": {"type": "integer", "minimum": 60},
}

SCHEMAS: Mapping[str, Schema] = {
    "Error": {
        **_object({"api_id": STRING, "error": STRING}),
        "description": "Every error; for a 400, error is 'field: rule'.",
    },
    "Meta": _object(
        {
            "limit": INTEGER,
            "offset": INTEGER,
            "total_count": INTEGER,
            "next": nullable(STRING),
            "previous": nullable(STRING),
        }
    ),
    "Message": _detail({"message": STRING}),
    "Changed": _detail({"message": {"type": "string", "enum": ["changed"]}}),
    "Endpoint": _object(_ENDPOINT, _REGISTRATION),
    "EndpointDetail": _detail(_ENDPOINT, _REGISTRATION),
    "EndpointList": _list("Endpoint"),
    "EndpointCreated": _detail(
        {"alias": STRING, "endpoint_id": STRING, "message": STRING, "username": STRING}
    ),
    "Application": _object(_APPLICATION),
    "ApplicationDetail": _detail(_APPLICATION),
    "ApplicationList": _list("Application"),
    "ApplicationCreated": _detail({"app_id": STRING, "message": STRING}),
    "Number": _object(_NUMBER),
    "NumberDetail": _detail(_NUMBER),
    "NumberList": _list("Number"),
    "NumbersAdded": _detail({"message": STRING, "numbers": {"type": "array", "items": STRING}}),
    "CallCreated": _detail(
        {
            "message": {"type": "string", "enum": ["call fired", "calls fired"]},
            "request_uuid": {
                "anyOf": [STRING, {"type": "array", "items": STRING, "minItems": 2}],
                "description": "One UUID per destination: a list for several.",
            },
        }
    ),
    "CallRecord": _object(_CALL_RECORD),
    "CallDetail": _detail(_CALL_RECORD),
    "CallList": _list("CallRecord"),
    "LiveCallIds": _detail({"calls": {"type": "array", "items": STRING}}),
    "LiveCallDetail": _detail(_LIVE_CALL),
    "RecordingStarted": _detail(
        {"message": STRING, "recording_id": STRING, "url": {"type": "string"}}
    ),
    "ConferenceList": _detail({"conferences": {"type": "array", "items": STRING}}),
    "ConferenceMember": _object(_MEMBER),
    "ConferenceDetail": _detail(
        {
            "conference_name": STRING,
            "conference_run_time": {**_COUNT_TEXT, "description": "Seconds since it began."},
            "conference_member_count": _COUNT_TEXT,
            "members": {"type": "array", "items": ref("ConferenceMember")},
        }
    ),
    "MemberAction": _detail(
        {"message": STRING, "member_id": {"type": "array", "items": STRING, "minItems": 1}}
    ),
    "Recording": _object(_RECORDING),
    "RecordingDetail": _detail(_RECORDING),
    "RecordingList": _list("Recording"),
}

#: The error statuses REST v1 answers, and when.
ERROR_STATUSES: Mapping[int, str] = {
    400: "A parameter broke a rule (the error names it), or is unknown.",
    401: "No or wrong Basic credentials, or another account's path.",
    404: "No such resource (or the call is not live).",
    405: "The path exists but not with this method.",
    409: "It clashes with what exists (a number already added, a recording running).",
    413: "The body is larger than 1 MiB.",
}
