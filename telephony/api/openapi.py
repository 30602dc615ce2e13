"""The OpenAPI 3.1 document of REST v1, built from the routes the server really has.

Every :class:`~telephony.api._http.Route` is looked up in :data:`OPERATIONS` by method
and path template (``/Call/(?P<call_uuid>[^/]+)/`` → ``/Call/{call_uuid}/``); each entry
names the operation's fields (from the shared :data:`FIELDS` table, or its own), its
success status and body, and the errors it answers.  A route with no entry is still
listed, marked undocumented; :func:`undocumented` names such routes and a test keeps
that list empty, and another checks each entry's fields against the names the
handler itself accepts (its ``req.allow(...)``), so the document cannot drift.

Parameters travel as Plivo's SDK sends them: GET in the query string; POST in a JSON
or form-encoded body (JSON keeps its types, form values are strings); DELETE in the
query string (or a JSON body).  Errors are ``{"api_id", "error"}`` with the field and
the rule for a 400.  Every operation needs HTTP Basic auth with the auth ID and token.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from telephony._version import __version__
from telephony.api._http import Route
from telephony.api._openapi_schemas import ERROR_STATUSES, SCHEMAS, ref

__all__ = (
    "FIELDS",
    "OPERATIONS",
    "PREFIX",
    "Field",
    "Operation",
    "build_document",
    "path_template",
    "undocumented",
)

Schema = dict[str, Any]

_PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_URL_TEXT = rf"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]{{1,63}}(:{_PORT})?(/[!-+\--~]{{0,200}})?"
_URL: Schema = {
    "type": "string",
    "maxLength": 2048,
    "pattern": f"^{_URL_TEXT}$",
    "description": "An http or https URL with a host, at most 2,048 characters.",
}
#: A SIP header for sip_headers: name=value (no commas: they separate pairs).
_HEADER = r"[A-Za-z0-9-]{1,32}=[\x21-\x2b\x2d-\x7e]{1,128}"
_COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_METHOD: Schema = {"type": "string", "enum": ["GET", "POST"], "default": "POST"}
_BOOL: Schema = {"type": "boolean"}
_INT: Schema = {"type": "integer"}
_TEXT: Schema = {"type": "string"}
_EMPTY: Schema = {"type": "string", "maxLength": 0}
_LEGS: Schema = {"type": "string", "enum": ["aleg", "bleg", "both"], "default": "aleg"}
_DIGITS: Schema = {"type": "string", "pattern": "^[0-9*#A-DwW]{1,64}$"}
_E164_ITEM = r"\+?[1-9][0-9]{1,14}"
_PRINTABLE = r"[^\x00-\x1f\x7f]"


def _printable(n: int) -> Schema:
    """At most *n* printable characters, not all blank (values are stripped)."""
    return {
        "type": "string",
        "maxLength": n,
        "pattern": f"^{_PRINTABLE}*[^\\s\\x00-\\x1f\\x7f]{_PRINTABLE}*$",
    }


@attrs.frozen
class Field:
    """One request parameter.

    :ivar json_items: in a JSON body the value may also be an array of these.
    """

    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False
    json_items: Mapping[str, Any] | None = None

    def required_(self) -> Field:
        """The same field, mandatory."""
        return attrs.evolve(self, required=True)


def _f(name: str, schema: Mapping[str, Any], description: str, **kw: Any) -> Field:
    return Field(name, schema, description, **kw)


#: Fields shared by several operations, by name.
FIELDS: Mapping[str, Field] = {
    f.name: f
    for f in (
        _f("callback_url", _TEXT, "Accepted and ignored (the SDK sends it; we answer at once)."),
        _f("callback_method", _TEXT, "Accepted and ignored."),
        _f("limit", {"type": "integer", "minimum": 1, "maximum": 20, "default": 20}, "Page size."),
        _f(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": 9_999_999_999, "default": 0},
            "Items to skip.",
        ),
        _f("subaccount", _EMPTY, "Sub-accounts are not supported: must be empty."),
        _f(
            "app_id",
            {"type": "string", "pattern": "^([0-9]{1,32})?$"},
            "The ID of an existing application; '' for none.",
        ),
        _f("app_name", {"type": "string", "pattern": "^[A-Za-z0-9 _-]{1,100}$"}, "Its name."),
        _f("answer_url", _URL, "Where the call's Plivo XML document is fetched."),
        _f("answer_method", _METHOD, "HTTP method for answer_url."),
        _f("hangup_url", {**_URL, "pattern": f"^$|{_URL['pattern']}"}, "Told when a call ends."),
        _f("hangup_method", _METHOD, "HTTP method for hangup_url."),
        _f("fallback_method", _METHOD, "HTTP method for the fallback URL."),
        _f("legs", _LEGS, "Which leg: the call itself, its bridged leg, or both."),
        _f("loop", {**_BOOL, "default": False}, "Repeat until stopped."),
        _f("mix", {**_BOOL, "default": True}, "Accepted; the audio replaces the leg's audio."),
    )
}

_CALLBACK = ("callback_url", "callback_method")
_SHARED_APP = ("app_name", "answer_url", "answer_method", "hangup_url", "hangup_method")
_APP_EXTRA = (
    _f(
        "fallback_answer_url",
        FIELDS["hangup_url"].schema,
        "Fetched when answer_url fails.",
    ),
    FIELDS["fallback_method"],
    _f("message_url", FIELDS["hangup_url"].schema, "Accepted and stored (no messaging)."),
    _f("message_method", _METHOD, "HTTP method for message_url."),
    _f("default_endpoint_app", _BOOL, "Runs for endpoints without an application."),
    _f("default_number_app", _BOOL, "Runs for numbers without an application."),
    _f("log_incoming_messages", _BOOL, "Accepted and stored."),
    _f("public_uri", _BOOL, "Accepted and stored."),
)


def _shared(*names: str) -> tuple[Field, ...]:
    return tuple(FIELDS[n] for n in names)


def _cdr_filters() -> tuple[Field, ...]:
    filters = (
        ("call_direction", _TEXT, "Direction: inbound or outbound."),
        ("from_number", _TEXT, "The caller (From)."),
        ("to_number", _TEXT, "The called (To)."),
        ("bill_duration", _COUNT, "Billed seconds."),
        ("end_time", _TEXT, "When the call ended, YYYY-MM-DD HH:MM:SS UTC."),
        ("parent_call_uuid", _TEXT, "The A leg of a dialed leg."),
        ("hangup_cause_code", _COUNT, "Plivo's hangup cause code."),
        ("hangup_source", _TEXT, "Who hung up: Caller, Callee, API, Plivo, Error."),
    )
    fields = []
    for name, schema, description in filters:
        for bound, words in (
            ("", "equal to"),
            ("__gt", "greater than"),
            ("__gte", "at least"),
            ("__lt", "less than"),
            ("__lte", "at most"),
        ):
            fields.append(_f(name + bound, schema, f"{description} Records {words} this."))
    return tuple(fields)


@attrs.frozen
class Operation:
    """What the document says about one route.

    :ivar path: the template under ``/v1/Account/{auth_id}``, e.g. ``/Call/{call_uuid}/``.
    :ivar response: the schema of the success body, None when it has none (204).
    :ivar errors: statuses besides 401 and 413 that it may answer.
    """

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    fields: tuple[Field, ...]
    status: int
    response: Mapping[str, Any] | None
    errors: tuple[int, ...] = (400,)
    description: str = ""


def _op(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    fields: Iterable[Field],
    status: int,
    response: str | Mapping[str, Any] | None,
    errors: tuple[int, ...] = (400,),
    description: str = "",
) -> Operation:
    tag = path.strip("/").split("/")[0]
    body = ref(response) if isinstance(response, str) else response
    return Operation(
        method, path, operation_id, tag, summary, tuple(fields), status, body, errors, description
    )


_ENDPOINT_FIELDS = (
    _f("username", {"type": "string", "pattern": "^[A-Za-z0-9]{1,25}$"}, "12 digits are added."),
    _f("password", {"type": "string", "pattern": "^[ -~]{1,32}$"}, "Printable ASCII."),
    _f("alias", {"type": "string", "pattern": "^[A-Za-z0-9]{1,50}$"}, "A display name."),
)
_NUMBER_ALIAS = _f("alias", {"type": "string", "pattern": f"^{_PRINTABLE}{{0,100}}$"}, "Free text.")
_E164 = {"type": "string", "pattern": r"^\+?[1-9][0-9]{1,14}$"}

_DIRECTORY = (
    _op("POST", "/Endpoint/", "createEndpoint", "Create an endpoint (a SIP user)",
        (*(f.required_() for f in _ENDPOINT_FIELDS), FIELDS["app_id"], *_shared(*_CALLBACK)),
        201, "EndpointCreated", (400, 409)),
    _op("GET", "/Endpoint/", "listEndpoints", "List endpoints",
        _shared("limit", "offset", *_CALLBACK), 200, "EndpointList"),
    _op("GET", "/Endpoint/{endpoint_id}/", "getEndpoint", "Get an endpoint",
        _shared(*_CALLBACK), 200, "EndpointDetail", (400, 404)),
    _op("POST", "/Endpoint/{endpoint_id}/", "updateEndpoint", "Update an endpoint",
        (*_ENDPOINT_FIELDS[1:], FIELDS["app_id"], *_shared(*_CALLBACK)),
        202, "Changed", (400, 404)),
    _op("DELETE", "/Endpoint/{endpoint_id}/", "deleteEndpoint", "Delete an endpoint",
        _shared(*_CALLBACK), 204, None, (400, 404)),
    _op("POST", "/Application/", "createApplication", "Create an application",
        (FIELDS["app_name"].required_(), FIELDS["answer_url"].required_(),
         *_shared(*_SHARED_APP[2:]), *_APP_EXTRA, *_shared("subaccount", *_CALLBACK)),
        201, "ApplicationCreated", (400, 409)),
    _op("GET", "/Application/", "listApplications", "List applications",
        _shared("limit", "offset", "app_name", "subaccount", *_CALLBACK), 200, "ApplicationList"),
    _op("GET", "/Application/{app_id}/", "getApplication", "Get an application",
        _shared(*_CALLBACK), 200, "ApplicationDetail", (400, 404)),
    _op("POST", "/Application/{app_id}/", "updateApplication", "Update an application",
        (*_shared(*_SHARED_APP), *_APP_EXTRA, *_shared("subaccount", *_CALLBACK)),
        202, "Changed", (400, 404)),
    _op("DELETE", "/Application/{app_id}/", "deleteApplication", "Delete an application",
        (_f("cascade", {**_BOOL, "default": True},
            "true: its endpoints are deleted with it; false: they move to "
            "new_endpoint_application, or keep no application.  Its numbers keep none."),
         _f("new_endpoint_application", FIELDS["app_id"].schema,
            "With cascade false only: the application its endpoints move to."),
         *_shared(*_CALLBACK)),
        204, None, (400, 404)),
    _op("POST", "/Number/", "addNumbers", "Add numbers from your own carrier",
        (_f("numbers",
            {"type": "string", "maxLength": 2000,
             "pattern": f"^{_E164_ITEM}(,{_E164_ITEM}){{0,99}}$"},
            "1 to 100 E.164 numbers separated by commas (in JSON, or an array).",
            required=True, json_items={"type": "string", "pattern": f"^{_E164_ITEM}$"}),
         _f("carrier", _printable(100), "Its carrier.", required=True),
         _f("region", _printable(100), "Its region.", required=True),
         _f("number_type",
            {"type": "string", "enum": ["local", "national", "mobile", "tollfree", "fixed"],
             "default": "local"}, "Its type."),
         FIELDS["app_id"], FIELDS["subaccount"]),
        201, "NumbersAdded", (400, 409)),
    _op("GET", "/Number/", "listNumbers", "List numbers",
        (*_shared("limit", "offset"),
         _f("number_startswith", {"type": "string", "pattern": "^[0-9]{1,15}$"}, "Prefix."),
         _NUMBER_ALIAS,
         _f("type", _printable(20), "number_type."),
         _f("services", _TEXT, "Accepted and ignored: every number is a voice number.")),
        200, "NumberList"),
    _op("GET", "/Number/{number}/", "getNumber", "Get a number", (), 200, "NumberDetail",
        (400, 404)),
    _op("POST", "/Number/{number}/", "updateNumber", "Attach a number or change its alias",
        (FIELDS["app_id"], _NUMBER_ALIAS, FIELDS["subaccount"]), 202, "Changed", (400, 404)),
    _op("DELETE", "/Number/{number}/", "deleteNumber", "Remove a number", (), 204, None,
        (400, 404)),
)  # fmt: skip

_NOT_SUPPORTED = "Not supported by this server: must be empty or false."
_IGNORED = "Accepted and ignored."
_LIVE_404 = "404 when the call is not live."

_CALLS = (
    _op("POST", "/Call/", "makeCall", "Make one call per destination",
        (_f("from", {"type": "string", "pattern": "^[+]?[A-Za-z0-9]{1,64}$"}, "Caller ID.",
            required=True),
         _f("to", {"type": "string", "minLength": 1, "maxLength": 2048},
            "A number (via the gateway), a SIP URI (an endpoint's, an application's, any), "
            "or up to 10 of them separated by '<'.", required=True),
         FIELDS["answer_url"].required_(), FIELDS["answer_method"],
         _f("ring_url", FIELDS["hangup_url"].schema, "Told once when the call rings."),
         _f("ring_method", _METHOD, "HTTP method for ring_url."),
         _f("hangup_url", FIELDS["hangup_url"].schema,
            "Told when the call ends; defaults to answer_url, as on Plivo."),
         _f("hangup_method", _METHOD, "HTTP method for hangup_url; defaults to answer_method."),
         _f("fallback_url", FIELDS["hangup_url"].schema, "Fetched when answer_url fails."),
         FIELDS["fallback_method"],
         _f("caller_name", {"type": "string", "pattern": '^[^\\x00-\\x1f\\x7f"<>]{0,50}$'},
            "Display name."),
         _f("send_digits", {**_DIGITS, "pattern": "^([0-9*#A-DwW]{1,64}(@[0-9]{1,9})?)?$"},
            "DTMF sent on answer; w waits 0.5 s, W 1 s; a final @ms sets every tone's "
            "length, 50 to 24000 ms (123@1000)."),
         _f("send_on_preanswer", _BOOL, "Send the digits on early media instead."),
         _f("time_limit", {"type": "integer", "minimum": 0, "maximum": 86400, "default": 0},
            "Seconds the answered call may last (0: no limit)."),
         _f("hangup_on_ring", {"type": "integer", "minimum": 0, "maximum": 86400,
                                "default": 0}, "Hang up this many seconds into ringing."),
         _f("sip_headers", {"type": "string", "pattern": f"^$|^{_HEADER}(,{_HEADER}){{0,9}}$"},
            "name=value pairs separated by commas, sent as X-PH-name headers (at most 10); "
            "names Plivo reserves (PH-, Plivo, FS-, SipAuth, ZT-, Twilio prefixes, "
            "ClientRegion) are dropped."),
         _f("ring_timeout", {"type": "integer", "minimum": 1, "maximum": 3600, "default": 120},
            "Seconds to ring before giving up."),
         _f("machine_detection", {"enum": ["", "false", False]}, _NOT_SUPPORTED),
         _f("machine_detection_time", _INT, _IGNORED),
         _f("machine_detection_url", _EMPTY, _NOT_SUPPORTED),
         _f("machine_detection_method", _METHOD, _IGNORED),
         _f("parent_call_uuid", _EMPTY, _NOT_SUPPORTED),
         _f("error_if_parent_not_found", _BOOL, _IGNORED),
         *_shared(*_CALLBACK)),
        201, "CallCreated"),
    _op("GET", "/Call/", "listCalls", "List finished calls (CDRs), or live calls",
        (*_shared("limit", "offset"),
         _f("status", {"type": "string", "enum": ["live", "queued"]},
            "live: the UUIDs of live calls (call_direction filters them); queued: none."),
         FIELDS["subaccount"], _f("cursor", _EMPTY, _NOT_SUPPORTED),
         *_shared(*_CALLBACK), *_cdr_filters()),
        200, {"anyOf": [ref("CallList"), ref("LiveCallIds")]}),
    _op("GET", "/Call/{call_uuid}/", "getCall", "Get a finished call, or a live one",
        (_f("status", {"type": "string", "enum": ["live"]}, "live: the live call's details."),
         *_shared(*_CALLBACK)),
        200, {"anyOf": [ref("CallDetail"), ref("LiveCallDetail")]}, (400, 404)),
    _op("POST", "/Call/{call_uuid}/", "transferCall", "Transfer a live call to a new document",
        (FIELDS["legs"],
         _f("aleg_url", _URL, "The A leg's new document (required for aleg and both)."),
         _f("aleg_method", _METHOD, "HTTP method for aleg_url."),
         _f("bleg_url", _URL, "The B leg's new document (required for bleg and both)."),
         _f("bleg_method", _METHOD, "HTTP method for bleg_url."), *_shared(*_CALLBACK)),
        202, "Message", (400, 404), _LIVE_404),
    _op("DELETE", "/Call/{call_uuid}/", "hangupCall", "Hang up a live call",
        _shared(*_CALLBACK), 204, None, (400, 404), _LIVE_404),
    _op("POST", "/Call/{call_uuid}/Play/", "playAudio", "Play audio files on a live call",
        (_f("urls",
            {"type": "string", "pattern": f"^{_URL_TEXT}(,{_URL_TEXT}){{0,4}}$"},
            "1 to 5 WAV or MP3 URLs separated by commas (in JSON, or an array).",
            required=True, json_items=_URL),
         _f("length", {"type": "integer", "minimum": 0, "maximum": 86400, "default": 0},
            "Stop after this many seconds (0: when done)."),
         *_shared("legs", "loop", "mix", *_CALLBACK)),
        202, "Message", (400, 404), _LIVE_404),
    _op("DELETE", "/Call/{call_uuid}/Play/", "stopAudio", "Stop playing",
        _shared(*_CALLBACK), 204, None, (400, 404), _LIVE_404),
    _op("POST", "/Call/{call_uuid}/Speak/", "speakText", "Speak text on a live call",
        (_f("text", _printable(3000), "What to say.", required=True),
         _f("voice", {"type": "string", "enum": ["WOMAN", "MAN"], "default": "WOMAN"}, "Voice."),
         _f("language", {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z]{2,4})?$",
                         "default": "en-US"}, "A language tag."),
         _f("type", _TEXT, _IGNORED), *_shared("legs", "loop", "mix", *_CALLBACK)),
        202, "Message", (400, 404), _LIVE_404),
    _op("DELETE", "/Call/{call_uuid}/Speak/", "stopSpeaking", "Stop speaking",
        _shared(*_CALLBACK), 204, None, (400, 404), _LIVE_404),
    _op("POST", "/Call/{call_uuid}/DTMF/", "sendDigits", "Send DTMF (RFC 4733) on a live call",
        (_f("digits", _DIGITS, "0-9 * # A-D; w waits 0.5 s, W 1 s.", required=True),
         _f("leg", {"type": "string", "enum": ["aleg", "bleg"], "default": "aleg"}, "Which leg."),
         *_shared(*_CALLBACK)),
        202, "Message", (400, 404), _LIVE_404),
    _op("POST", "/Call/{call_uuid}/Record/", "recordCall", "Record both directions of a live call",
        (_f("time_limit", {"type": "integer", "minimum": 1, "maximum": 14400, "default": 60},
            "Longest recording, in seconds."),
         _f("file_format", {"type": "string", "enum": ["mp3", "wav"], "default": "mp3"},
            "The file's format."),
         _f("transcription_type", _EMPTY, _NOT_SUPPORTED),
         _f("transcription_url", _EMPTY, _NOT_SUPPORTED),
         _f("transcription_method", _METHOD, _IGNORED),
         _f("transcription_report_type", _TEXT, _IGNORED),
         _f("record_channel_type", {"type": "string", "enum": ["stereo", "mono"],
                                    "default": "stereo"},
            "Stereo: the call's party left, what it hears right; mono: both mixed."),
         _f("callback_url", FIELDS["hangup_url"].schema,
            "Told when the recording is there."),
         _f("callback_method", _METHOD, "HTTP method for callback_url.")),
        202, "RecordingStarted", (400, 404),
        "The URL is answered at once; the file is there when the recording ends "
        "(time_limit, DELETE, or the call's end). callback_url is told (CallUUID, "
        "RecordUrl, RecordingID, RecordingDuration, RecordingDurationMs, RecordingStartMs, "
        "RecordingEndMs) when it is." + " " + _LIVE_404),
    _op("DELETE", "/Call/{call_uuid}/Record/", "stopRecording", "Stop recording",
        (_f("URL", _TEXT, "Stop only the recording at this URL."), *_shared(*_CALLBACK)),
        204, None, (400, 404), _LIVE_404),
    _op("DELETE", "/Request/{request_uuid}/", "cancelCall", "Cancel a call that still rings",
        _shared(*_CALLBACK), 204, None, (400, 404),
        "404 when no call with this request_uuid rings (answered, over, or unknown)."),
)  # fmt: skip

_ROOM = "/Conference/{conference_name}"
_MEMBER = _ROOM + "/Member/{member_id}"
_ROOM_404 = "404 when no live conference has this name."
_MEMBER_404 = "404 when the conference is not live or holds none of these members."


def _member_op(method: str, what: str, op_id: str, summary: str, fields: tuple[Field, ...] = (),
               message: bool = True) -> Operation:  # fmt: skip
    status, body = (202, "MemberAction") if message else (204, None)
    return _op(method, f"{_MEMBER}/{what}", op_id, summary, (*fields, *_shared(*_CALLBACK)),
               status, body, (400, 404), _MEMBER_404)  # fmt: skip


_CONFERENCES = (
    _op("GET", "/Conference/", "listConferences", "List the live conferences by name",
        _shared(*_CALLBACK), 200, "ConferenceList"),
    _op("DELETE", "/Conference/", "hangupAllConferences",
        "Hang up every member of every conference", _shared(*_CALLBACK), 204, None),
    _op("GET", f"{_ROOM}/", "getConference", "Get a live conference and its members",
        _shared(*_CALLBACK), 200, "ConferenceDetail", (400, 404), _ROOM_404),
    _op("DELETE", f"{_ROOM}/", "hangupConference", "Hang up every member of a conference",
        _shared(*_CALLBACK), 204, None, (400, 404), _ROOM_404),
    _op("DELETE", f"{_MEMBER}/", "hangupMember", "Hang up members' calls",
        _shared(*_CALLBACK), 204, None, (400, 404), _MEMBER_404),
    _member_op("POST", "Kick/", "kickMember", "Take members out (their documents go on)"),
    _member_op("POST", "Mute/", "muteMember", "Mute members"),
    _member_op("DELETE", "Mute/", "unmuteMember", "Unmute members", message=False),
    _member_op("POST", "Deaf/", "deafMember", "Make members deaf to the room"),
    _member_op("DELETE", "Deaf/", "undeafMember", "Let members hear the room", message=False),
    _member_op("POST", "Play/", "playToMember", "Play audio to members alone",
               (_f("url", {"type": "string", "pattern": f"^{_URL_TEXT}(,{_URL_TEXT}){{0,4}}$"},
                   "1 to 5 WAV URLs separated by commas (in JSON, or an array).",
                   required=True, json_items=_URL),)),
    _member_op("DELETE", "Play/", "stopPlayToMember", "Stop playing to members", message=False),
    _member_op("POST", "Speak/", "speakToMember", "Speak text to members alone",
               (_f("text", _printable(3000), "What to say.", required=True),
                _f("voice", {"type": "string", "enum": ["WOMAN", "MAN"], "default": "WOMAN"},
                   "Voice."),
                _f("language", {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z]{2,4})?$",
                                "default": "en-US"}, "A language tag."))),
    _member_op("DELETE", "Speak/", "stopSpeakToMember", "Stop speaking to members",
               message=False),
    _op("POST", f"{_ROOM}/Record/", "recordConference", "Record a conference's mix",
        (_f("file_format", {"type": "string", "enum": ["mp3", "wav"], "default": "mp3"},
            "mp3 (32 kbit/s) or wav (16-bit), mono."),
         _f("transcription_type", _EMPTY, _NOT_SUPPORTED),
         _f("transcription_url", _EMPTY, _NOT_SUPPORTED),
         _f("transcription_method", _METHOD, _IGNORED),
         _f("callback_url", FIELDS["hangup_url"].schema, "Told when the recording is there."),
         _f("callback_method", _METHOD, "HTTP method for callback_url.")),
        202, "RecordingStarted", (400, 404, 409),
        "The URL is answered at once; the file is there when the recording ends (DELETE, "
        "or the conference ends). callback_url is told (ConferenceName, ConferenceUUID, "
        "RecordUrl, RecordingID, RecordingDuration, RecordingDurationMs, RecordingStartMs, "
        "RecordingEndMs) when it is, and it is listed under /Recording/ (recording_type "
        "conference).  409 while a recording runs. " + _ROOM_404),
    _op("DELETE", f"{_ROOM}/Record/", "stopRecordingConference", "Stop recording a conference",
        _shared(*_CALLBACK), 204, None, (400, 404), _ROOM_404),
)  # fmt: skip

_ADD_TIME = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}"
              r"(:[0-9]{2}(\.[0-9]{1,6})?)?$"}  # fmt: skip
_RECORDING_FILTERS = (
    *(
        _f(name, _printable(128), f"Only recordings with this {name}.")
        for name in ("call_uuid", "from_number", "to_number", "conference_name", "conference_uuid")
    ),
    *(
        _f(f"add_time{b}", _ADD_TIME, "When it was filed, UTC, YYYY-MM-DD HH:MM[:ss[.uuuuuu]].")
        for b in ("", "__gt", "__gte", "__lt", "__lte")
    ),
    *(
        _f(
            f"recording_storage_duration{b}",
            {"type": "integer", "minimum": 0, "maximum": 100000},
            "Days stored (1 in the first 24 hours).",
        )
        for b in ("", "__gt", "__gte", "__lt", "__lte")
    ),
    _f("mpc_name", _EMPTY, _NOT_SUPPORTED),
    _f("mpc_uuid", _EMPTY, _NOT_SUPPORTED),
)
_RECORDINGS = (
    _op("GET", "/Recording/", "listRecordings", "List recordings, newest first",
        (*_shared("limit", "offset", "subaccount", *_CALLBACK), *_RECORDING_FILTERS),
        200, "RecordingList", (400,),
        "Every recording matches without filters (no seven-day window). recording_url "
        "is served with the same Basic credentials as the API."),
    _op("GET", "/Recording/{recording_id}/", "getRecording", "Get a recording",
        _shared(*_CALLBACK), 200, "RecordingDetail", (400, 404)),
    _op("DELETE", "/Recording/{recording_id}/", "deleteRecording",
        "Delete a recording: its row and its file, together",
        _shared(*_CALLBACK), 204, None, (400, 404)),
)  # fmt: skip

#: Every documented operation, by (method, path template).
OPERATIONS: Mapping[tuple[str, str], Operation] = {
    (op.method, op.path): op for op in (*_DIRECTORY, *_CALLS, *_CONFERENCES, *_RECORDINGS)
}

_PATH_PARAMS: Mapping[str, tuple[Schema, str]] = {
    "auth_id": ({"type": "string", "pattern": "^[A-Z0-9]{1,40}$"}, "Your auth ID."),
    "endpoint_id": ({"type": "string"}, "The endpoint's ID."),
    "app_id": ({"type": "string"}, "The application's ID."),
    "number": (_E164, "The number, E.164."),
    "call_uuid": ({"type": "string"}, "The call's UUID."),
    "request_uuid": ({"type": "string"}, "The request_uuid that POST /Call/ answered."),
    "conference_name": ({"type": "string", "maxLength": 64}, "The conference's name."),
    "member_id": (
        {"type": "string", "pattern": "^(all|[0-9]{1,12}(,[0-9]{1,12}){0,99})$"},
        "A member ID, IDs separated by commas, or all.",
    ),
    "recording_id": ({"type": "string"}, "The recording's ID."),
}

PREFIX = "/v1/Account/{auth_id}"

DESCRIPTION = (
    "Plivo's REST API for the directory (endpoints, applications, numbers), for "
    "calls and for conferences, with Plivo's paths, fields and JSON.  Every operation "
    "needs HTTP Basic auth: "
    "your auth ID and auth token.  GET takes its parameters in the query string; POST "
    "in a JSON or form-encoded body; DELETE in the query string or a JSON body.  A "
    "parameter the server does not know, or one Plivo defines that this server does "
    "not implement, is refused with a 400 that names it; every error is "
    '{"api_id", "error"}.'
)


def path_template(route: Route) -> str:
    """``/Call/(?P<call_uuid>[^/]+)/`` → ``/Call/{call_uuid}/``."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route.pattern.pattern)


def undocumented(routes: Iterable[Route]) -> list[str]:
    """``METHOD /path/`` of each route :data:`OPERATIONS` does not describe."""
    return [
        f"{r.method} {path_template(r)}"
        for r in routes
        if (r.method, path_template(r)) not in OPERATIONS
    ]


def _body_schema(fields: Iterable[Field], for_json: bool) -> Schema:
    properties: dict[str, Any] = {}
    for field in fields:
        schema: Schema = {**copy.deepcopy(dict(field.schema)), "description": field.description}
        if for_json and field.json_items is not None:
            whole = {k: v for k, v in schema.items() if k != "description"}
            items = {k: v for k, v in field.json_items.items() if k != "description"}
            schema = {
                "description": field.description,
                "anyOf": [whole, {"type": "array", "items": items, "minItems": 1}],
            }
        properties[field.name] = schema
    required = [f.name for f in fields if f.required]
    body: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        body["required"] = required
    return body


def _parameters(op: Operation) -> list[Schema]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_PARAMS.get(name, ({"type": "string"}, ""))[0],
            "description": _PATH_PARAMS.get(name, ({}, name))[1],
        }
        for name in re.findall(r"{(\w+)}", PREFIX + op.path)
    ]
    if op.method in ("GET", "DELETE"):
        params += [
            {
                "name": f.name,
                "in": "query",
                "required": f.required,
                "schema": dict(f.schema),
                "description": f.description,
            }
            for f in op.fields
        ]
    return params


def _operation(op: Operation) -> Schema:
    responses: dict[str, Any] = {}
    success: Schema = {"description": "Done." if op.response is not None else "Done, no body."}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": dict(op.response)}}
    responses[str(op.status)] = success
    for status in sorted({*op.errors, 401, 413}):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    doc: Schema = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.description:
        doc["description"] = op.description
    if op.method == "POST":
        doc["requestBody"] = {
            "required": any(f.required for f in op.fields),
            "content": {
                "application/json": {"schema": _body_schema(op.fields, for_json=True)},
                "application/x-www-form-urlencoded": {
                    "schema": _body_schema(op.fields, for_json=False)
                },
            },
        }
    return doc


def _undocumented_operation(route: Route) -> Schema:
    return {
        "summary": "Undocumented",
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"{(\w+)}", PREFIX + path_template(route))
        ],
        "responses": {"default": {"description": "Not documented yet."}},
    }


def build_document(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of *routes* (in route order)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        template = path_template(route)
        op = OPERATIONS.get((route.method, template))
        entry = _operation(op) if op is not None else _undocumented_operation(route)
        paths.setdefault(PREFIX + template, {})[route.method.lower()] = entry
    responses = {
        f"Error{status}": {
            "description": why,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status, why in ERROR_STATUSES.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "telephony REST API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/"}],
        "security": [{"basicAuth": []}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS.values())],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "User: your auth ID; password: your auth token.",
                }
            },
            "schemas": copy.deepcopy(dict(SCHEMAS)),
            "responses": responses,
        },
    }
