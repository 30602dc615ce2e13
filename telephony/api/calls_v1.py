"""REST v1 for calls, with Plivo's paths, fields and JSON.

``/Call/`` makes calls (201 with ``request_uuid``) and lists finished calls (CDRs) or,
with ``status=live``, the live ones; ``/Call/{uuid}/`` gets a CDR (or a live call's
details with ``status=live``), transfers a live call (POST) or hangs it up (DELETE);
``/Call/{uuid}/Play/``, ``/Speak/``, ``/DTMF/`` and ``/Record/`` act on a live call;
``/Request/{request_uuid}/`` cancels a call that still rings.  A call that is not live
answers 404, never 500.

Limits: at most 10 destinations per request, 10 SIP headers, 64 DTMF keys, 5 URLs
per Play.  As on Plivo, ``hangup_url`` (and ``hangup_method``) default to the
``answer_url`` (and ``answer_method``); ``send_digits`` may end with ``@<ms>``, the
length of every tone; SIP header names Plivo reserves are dropped.  Not supported (a
400 says so): machine detection, transcription, sub-accounts, cursors.
``mix`` is accepted, but what is played replaces the leg's audio while it plays rather
than being mixed into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from media import IMediaSession, RecordingResult
from telephony.api._http import ApiRequest, HTTPError, Reply, Route, new_api_id
from telephony.calls.call import Call
from telephony.calls.causes import Cause
from telephony.calls.cdr import CallRecord, CdrStore, plivo_time
from telephony.calls.manager import CallManager
from telephony.calls.originate import OriginateRequest, split_destinations
from telephony.calls.recordings import PARTIAL
from telephony.directory import FieldError, rules
from telephony.directory.models import ApplicationFields
from xml_dsl import Method, RecordResult, is_reserved_header
from xml_dsl.params import record_params
from xml_dsl.verbs import Number, User

__all__ = ("CallsAPI",)

log = Logger()

MAX_DESTINATIONS = 10
MAX_SIP_HEADERS = 10
_CALLER = re.compile(r"\+?[A-Za-z0-9]{1,64}")
_DIGITS = re.compile(r"[0-9*#A-DwW]{1,64}")
#: ``send_digits`` of a new call: keys, then optionally ``@`` and the tone length in ms.
_SEND_DIGITS = re.compile(r"([0-9*#A-DwW]{1,64})(?:@([0-9]{1,9}))?")
#: Tone lengths ``send_digits`` may ask for, in ms: FreeSWITCH's limits, which Plivo
#: (on FreeSWITCH) documents no other (the same as ``<Number sendDigits>``).
MIN_TONE_MS = 50
MAX_TONE_MS = 24000
_SEND_DIGITS_RULE = (
    "1 to 64 of 0-9 * # A-D, with w (0.5 s) and W (1 s) pauses, "
    f"optionally followed by @ and a tone length of {MIN_TONE_MS} to {MAX_TONE_MS} ms"
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,128}")
_SDK_CALLBACK = ("callback_url", "callback_method")
_LIST_FILTERS = (
    "call_direction",
    "from_number",
    "to_number",
    "bill_duration",
    "end_time",
    "parent_call_uuid",
    "hangup_cause_code",
    "hangup_source",
)
_BOUNDS = ("", "__gt", "__gte", "__lt", "__lte")


def _choice(field: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise FieldError(field, f"must be one of {', '.join(choices)}")
    return text


def _refuse(req: ApiRequest, names: tuple[str, ...], why: str) -> None:
    for name in names:
        value = req.params.get(name)
        if value not in (None, "", False, "false", "False"):
            raise FieldError(name, why)


@attrs.define
class CallsAPI:
    """Handlers for calls; :meth:`routes` lists them."""

    manager: CallManager
    cdrs: CdrStore

    def routes(self) -> list[Route]:
        """Every route of this API."""
        uuid_ = r"(?P<call_uuid>[^/]+)"
        table: tuple[tuple[str, str, Callable[[ApiRequest], Any]], ...] = (
            ("POST", r"/Call/", self.create),
            ("GET", r"/Call/", self.list_calls),
            ("GET", rf"/Call/{uuid_}/", self.get),
            ("POST", rf"/Call/{uuid_}/", self.transfer),
            ("DELETE", rf"/Call/{uuid_}/", self.hangup),
            ("POST", rf"/Call/{uuid_}/Play/", self.play),
            ("DELETE", rf"/Call/{uuid_}/Play/", self.stop_play),
            ("POST", rf"/Call/{uuid_}/Speak/", self.speak),
            ("DELETE", rf"/Call/{uuid_}/Speak/", self.stop_play),
            ("POST", rf"/Call/{uuid_}/DTMF/", self.dtmf),
            ("POST", rf"/Call/{uuid_}/Record/", self.record),
            ("DELETE", rf"/Call/{uuid_}/Record/", self.stop_record),
            ("DELETE", r"/Request/(?P<request_uuid>[^/]+)/", self.cancel),
        )
        return [Route(method, re.compile(pattern), handler) for method, pattern, handler in table]

    # -- making calls ----------------------------------------------------------------------

    async def create(self, req: ApiRequest) -> Reply:
        """POST /Call/: one call per destination in ``to`` (``a<b<c``)."""
        req.allow(
            (
                "from", "to", "answer_url", "answer_method", "ring_url", "ring_method",
                "hangup_url", "hangup_method", "fallback_url", "fallback_method", "caller_name",
                "send_digits", "send_on_preanswer", "time_limit", "hangup_on_ring",
                "sip_headers", "ring_timeout", "machine_detection", "machine_detection_time",
                "machine_detection_url", "machine_detection_method", "parent_call_uuid",
                "error_if_parent_not_found", *_SDK_CALLBACK,
            )
        )  # fmt: skip
        _refuse(
            req,
            ("machine_detection", "machine_detection_url", "parent_call_uuid"),
            "not supported by this server",
        )
        caller = str(req.require("from")).strip()
        if not _CALLER.fullmatch(caller):
            raise FieldError(
                "from", "a caller ID of 1 to 64 letters or digits, optionally after '+'"
            )
        destinations = split_destinations(str(req.require("to")))
        if not 1 <= len(destinations) <= MAX_DESTINATIONS:
            raise FieldError("to", f"1 to {MAX_DESTINATIONS} destinations separated by '<'")
        if caller in destinations:
            raise FieldError("to", "must differ from 'from'")
        answer_url = rules.parse_url("answer_url", req.require("answer_url"))
        answer_method = rules.parse_method("answer_method", req.params.get("answer_method", "POST"))
        fields = ApplicationFields(
            app_name="api-call",
            answer_url=answer_url,
            answer_method=answer_method,
            # Plivo: without a hangup_url, the hangup is told to the answer_url.
            hangup_url=rules.parse_optional_url("hangup_url", req.params.get("hangup_url"))
            or answer_url,
            hangup_method=rules.parse_method(
                "hangup_method", req.params.get("hangup_method", answer_method)
            ),
            fallback_answer_url=rules.parse_optional_url(
                "fallback_url", req.params.get("fallback_url")
            ),
            fallback_method=rules.parse_method(
                "fallback_method", req.params.get("fallback_method", "POST")
            ),
        )
        digits = _send_digits(req.params.get("send_digits"))
        caller_name = req.params.get("caller_name")
        if caller_name is not None and not re.fullmatch(
            r"[^\x00-\x1f\x7f\"<>]{0,50}", str(caller_name)
        ):
            raise FieldError("caller_name", "at most 50 printable characters, no quotes or <>")
        base = OriginateRequest(
            from_=caller,
            to="",
            application=fields,
            ring_url=rules.parse_optional_url("ring_url", req.params.get("ring_url")),
            ring_method=rules.parse_method("ring_method", req.params.get("ring_method", "POST")),
            caller_name=str(caller_name) if caller_name else None,
            send_digits=digits,
            send_on_preanswer=rules.parse_bool(
                "send_on_preanswer", req.params.get("send_on_preanswer", False)
            ),
            time_limit=rules.parse_int("time_limit", req.params.get("time_limit", 0), 0, 86400),
            hangup_on_ring=rules.parse_int(
                "hangup_on_ring", req.params.get("hangup_on_ring", 0), 0, 86400
            ),
            sip_headers=_sip_headers(req.params.get("sip_headers")),
            ring_timeout=rules.parse_int(
                "ring_timeout", req.params.get("ring_timeout", 120), 1, 3600
            ),
        )
        for destination in destinations:
            self._check_destination(destination)
        request_uuids = []
        for destination in destinations:
            placed = self.manager.originator.originate(attrs.evolve(base, to=destination))
            if isinstance(placed, Cause):
                raise FieldError("to", f"{destination}: cannot be called ({placed.cause_name})")
            request_uuids.append(placed)
        if len(request_uuids) == 1:
            body: dict[str, Any] = {"message": "call fired", "request_uuid": request_uuids[0]}
        else:
            body = {"message": "calls fired", "request_uuid": request_uuids}
        return Reply(201, {"api_id": new_api_id(), **body})

    def _check_destination(self, destination: str) -> None:
        if destination.startswith(("sip:", "sips:")):
            target: Number | User = User(uri=destination)
        else:
            rules.parse_number("to", destination.replace("-", "").replace(" ", ""))
            target = Number(destination)
        where = self.manager.resolve(target)
        if isinstance(where, Cause):
            reason = "not registered" if where is Cause.NO_ANSWER else where.cause_name
            raise FieldError("to", f"{destination}: cannot be called ({reason})")

    async def cancel(self, req: ApiRequest) -> Reply:
        """DELETE /Request/{request_uuid}/: stop a call that still rings."""
        req.allow(_SDK_CALLBACK)
        if not self.manager.originator.cancel(req.path_args["request_uuid"]):
            raise HTTPError(404, "no ringing call with this request_uuid")
        return Reply(204, None)

    # -- finished and live calls ---------------------------------------------------------------

    async def list_calls(self, req: ApiRequest) -> Reply:
        """GET /Call/: CDRs with Plivo's filters, or live call UUIDs (``status=live``)."""
        allowed = ["limit", "offset", "status", "subaccount", "cursor", *_SDK_CALLBACK]
        allowed += [f + b for f in _LIST_FILTERS for b in _BOUNDS]
        req.allow(allowed)
        _refuse(req, ("subaccount", "cursor"), "not supported by this server")
        status = req.params.get("status")
        if status is not None and _choice("status", status, ("live", "queued")) != "live":
            return Reply(200, {"api_id": new_api_id(), "calls": []})
        if status is not None:
            calls = list(self.manager.calls.values())
            direction = req.params.get("call_direction")
            if direction is not None:
                wanted = _choice("call_direction", direction, ("inbound", "outbound"))
                calls = [c for c in calls if c.direction == wanted]
            return Reply(200, {"api_id": new_api_id(), "calls": [c.uuid for c in calls]})
        limit = rules.parse_limit(req.params.get("limit", 20))
        offset = rules.parse_offset(req.params.get("offset", 0))
        filters: dict[str, Any] = {}
        columns = {
            "call_direction": "direction",
            "end_time": "end_time",
            "bill_duration": "bill_duration",
            "from_number": "from_number",
            "to_number": "to_number",
            "parent_call_uuid": "parent_call_uuid",
            "hangup_cause_code": "hangup_cause_code",
            "hangup_source": "hangup_source",
        }
        for name, value in req.params.items():
            base, _, bound = name.partition("__")
            if base in columns:
                if base in ("bill_duration", "hangup_cause_code"):
                    value = rules.parse_int(name, value, 0, 2**31 - 1)
                filters[columns[base] + (f"__{bound}" if bound else "")] = value
        page = await self.cdrs.list(limit, offset, filters)
        following = offset + limit
        base_uri = f"{req.base_uri}/Call/"
        meta = {
            "limit": limit,
            "offset": offset,
            "total_count": page.total_count,
            "next": f"{base_uri}?limit={limit}&offset={following}"
            if following < page.total_count
            else None,
            "previous": f"{base_uri}?limit={limit}&offset={max(0, offset - limit)}"
            if offset
            else None,
        }
        objects = [_cdr_json(req, r) for r in page.items]
        return Reply(200, {"api_id": new_api_id(), "meta": meta, "objects": objects})

    async def get(self, req: ApiRequest) -> Reply:
        """GET /Call/{uuid}/: the CDR, or a live call's details with ``status=live``."""
        req.allow(("status", *_SDK_CALLBACK))
        call_uuid = req.path_args["call_uuid"]
        if req.params.get("status") is not None:
            _choice("status", req.params["status"], ("live",))
            call = self._live(call_uuid)
            return Reply(200, {"api_id": new_api_id(), **_live_json(call)})
        record = await self.cdrs.get(call_uuid)
        if record is None:
            raise HTTPError(404, f"call {call_uuid} not found")
        return Reply(200, {"api_id": new_api_id(), **_cdr_json(req, record)})

    def _live(self, call_uuid: str) -> Call:
        call = self.manager.calls.get(call_uuid)
        if call is None or call.leg.state.value == "ended":
            raise HTTPError(404, f"call {call_uuid} is not live")
        return call

    def _legs(self, call: Call, legs: str) -> list[Call]:
        """The live calls ``legs`` names: the call itself (aleg), its bridged B leg, or both."""
        chosen: list[Call] = []
        if legs in ("aleg", "both"):
            chosen.append(call)
        if legs in ("bleg", "both"):
            winners = [d.winner for d in call.dials if d.winner is not None]
            chosen += [self.manager.calls[w.uuid] for w in winners if w.uuid in self.manager.calls]
            if not winners and call.parent is not None:
                chosen.append(call.parent)
        if not chosen:
            raise HTTPError(404, f"call {call.uuid} has no live {legs}")
        return chosen

    async def hangup(self, req: ApiRequest) -> Reply:
        """DELETE /Call/{uuid}/: hang up a live call."""
        req.allow(_SDK_CALLBACK)
        self._live(req.path_args["call_uuid"]).leg.hangup(Cause.API_HANGUP, "API")
        return Reply(204, None)

    async def transfer(self, req: ApiRequest) -> Reply:
        """POST /Call/{uuid}/: run a new document on the live leg(s)."""
        req.allow(("legs", "aleg_url", "aleg_method", "bleg_url", "bleg_method", *_SDK_CALLBACK))
        call = self._live(req.path_args["call_uuid"])
        legs = _choice("legs", req.params.get("legs", "aleg"), ("aleg", "bleg", "both"))
        plan: list[tuple[Call, str, Method]] = []
        if legs in ("aleg", "both"):
            url = rules.parse_url("aleg_url", req.require("aleg_url"))
            method = Method(
                rules.parse_method("aleg_method", req.params.get("aleg_method", "POST"))
            )
            plan.append((call, url, method))
        if legs in ("bleg", "both"):
            url = rules.parse_url("bleg_url", req.require("bleg_url"))
            method = Method(
                rules.parse_method("bleg_method", req.params.get("bleg_method", "POST"))
            )
            plan += [(b, url, method) for b in self._legs(call, "bleg")]
        for target, url, method in plan:
            target.transfer(url, method)
        return Reply(202, {"api_id": new_api_id(), "message": "call transferred"})

    # -- media on a live call ------------------------------------------------------------------

    def _sessions(
        self, req: ApiRequest, default: str = "aleg", name: str = "legs"
    ) -> list[IMediaSession]:
        call = self._live(req.path_args["call_uuid"])
        legs = _choice(name, req.params.get(name, default), ("aleg", "bleg", "both"))
        sessions = [c.leg.media for c in self._legs(call, legs) if c.leg.media is not None]
        if not sessions:
            raise HTTPError(404, f"call {call.uuid} has no media yet")
        return sessions

    async def play(self, req: ApiRequest) -> Reply:
        """POST /Call/{uuid}/Play/: ``urls`` (comma-separated), ``loop``, ``length``, ``legs``."""
        req.allow(("urls", "length", "legs", "loop", "mix", *_SDK_CALLBACK))
        raw = req.require("urls")
        items = raw if isinstance(raw, list) else str(raw).split(",")
        urls = [rules.parse_url("urls", u) for u in items if str(u).strip()]
        if not 1 <= len(urls) <= 5:
            raise FieldError("urls", "1 to 5 URLs separated by commas")
        loop = rules.parse_bool("loop", req.params.get("loop", False))
        length = rules.parse_int("length", req.params.get("length", 0), 0, 86400)
        for media in self._sessions(req):
            self._start(media, media.play(urls, loop=0 if loop else 1), length)
        return Reply(202, {"api_id": new_api_id(), "message": "play started"})

    async def speak(self, req: ApiRequest) -> Reply:
        """POST /Call/{uuid}/Speak/: ``text``, ``voice``, ``language``, ``loop``, ``legs``."""
        req.allow(("text", "voice", "language", "legs", "loop", "mix", "type", *_SDK_CALLBACK))
        text = rules.parse_text("text", req.require("text"), 3000)
        voice = _choice("voice", req.params.get("voice", "WOMAN"), ("woman", "man")).upper()
        language = str(req.params.get("language", "en-US"))
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z]{2,4})?", language):
            raise FieldError("language", "a language tag such as en-US")
        loop = rules.parse_bool("loop", req.params.get("loop", False))
        for media in self._sessions(req):
            self._start(
                media, media.speak(text, voice=voice, language=language, loop=0 if loop else 1), 0
            )
        return Reply(202, {"api_id": new_api_id(), "message": "speak started"})

    def _start(self, media: IMediaSession, d: Deferred[Any], length: int) -> None:
        d.addErrback(lambda f: log.info("REST play/speak ended: {e}", e=f.getErrorMessage()))
        if length > 0:
            timer = self.manager.clock.callLater(length, media.stop_output)

            def over(result: object) -> object:
                if timer.active():
                    timer.cancel()
                return result

            d.addBoth(over)

    async def stop_play(self, req: ApiRequest) -> Reply:
        """DELETE /Call/{uuid}/Play/ or /Speak/: stop what plays."""
        req.allow(_SDK_CALLBACK)
        for media in self._sessions(req, "both"):
            media.stop_output()
        return Reply(204, None)

    async def dtmf(self, req: ApiRequest) -> Reply:
        """POST /Call/{uuid}/DTMF/: ``digits`` (``w``/``W`` pause), ``leg``."""
        req.allow(("digits", "leg", *_SDK_CALLBACK))
        digits = str(req.require("digits"))
        if not _DIGITS.fullmatch(digits):
            raise FieldError("digits", "1 to 64 of 0-9 * # A-D, with w (0.5 s) and W (1 s) pauses")
        leg = _choice("leg", req.params.get("leg", "aleg"), ("aleg", "bleg"))
        for media in self._sessions(req, leg, name="leg"):
            media.send_digits(digits).addErrback(
                lambda f: log.info("REST DTMF: {e}", e=f.getErrorMessage())
            )
        return Reply(202, {"api_id": new_api_id(), "message": "digits sent"})

    async def record(self, req: ApiRequest) -> Reply:
        """POST /Call/{uuid}/Record/: record both directions of the call in the
        background (``file_format`` mp3 or wav, ``record_channel_type`` stereo or
        mono, ``time_limit`` seconds); answers the recording's URL and ID at once."""
        req.allow(
            (
                "time_limit", "file_format", "transcription_type", "transcription_url",
                "transcription_method", "transcription_report_type", "record_channel_type",
                *_SDK_CALLBACK,
            )
        )  # fmt: skip
        _refuse(req, ("transcription_type", "transcription_url"), "transcription is not supported")
        file_format = _choice("file_format", req.params.get("file_format", "mp3"), ("wav", "mp3"))
        channels = _choice(
            "record_channel_type", req.params.get("record_channel_type", "stereo"),
            ("stereo", "mono"),
        )  # fmt: skip
        time_limit = rules.parse_int("time_limit", req.params.get("time_limit", 60), 1, 14400)
        callback = rules.parse_optional_url("callback_url", req.params.get("callback_url"))
        callback_method = rules.parse_method(
            "callback_method", req.params.get("callback_method", "POST")
        )
        call = self._live(req.path_args["call_uuid"])
        media = self._sessions(req)[0]
        recordings = self.manager.recordings
        pending = recordings.begin(file_format)
        d = media.record_call(
            path=pending.partial,
            file_format=file_format,
            stereo=channels == "stereo",
            max_length=float(time_limit),
        )
        info = call.recording_info()

        def done(result: RecordingResult) -> Deferred[None]:
            def tell(report: RecordResult) -> None:
                if callback:
                    params = {"CallUUID": info.call_uuid, **record_params(report)}
                    self.manager.fetcher.notify(callback, Method(callback_method), params)

            return recordings.file(info, pending, result).addCallback(tell)

        d.addCallback(done).addErrback(
            lambda f: log.info("REST record ended: {e}", e=f.getErrorMessage())
        )
        return Reply(
            202,
            {
                "api_id": new_api_id(),
                "message": "call recording started",
                "recording_id": pending.recording_id,
                "url": pending.url,
            },
        )

    async def stop_record(self, req: ApiRequest) -> Reply:
        """DELETE /Call/{uuid}/Record/: stop recording (all, or the one at ``URL``),
        keeping what was recorded."""
        req.allow(("URL", *_SDK_CALLBACK))
        url = req.params.get("URL")
        path = None
        if url not in (None, ""):
            name = str(url).rstrip("/").rpartition("/")[2]
            path = self.manager.recordings.directory / PARTIAL / name
        for media in self._sessions(req, "both"):
            media.stop_recording(path)
        return Reply(204, None)


def _send_digits(value: object) -> str | None:
    """``send_digits``: keys and pauses, optionally ``@<ms>`` (Plivo's ``123@1000``)."""
    if value in (None, ""):
        return None
    text = str(value)
    match = _SEND_DIGITS.fullmatch(text)
    if match is None or (
        match.group(2) is not None and not MIN_TONE_MS <= int(match.group(2)) <= MAX_TONE_MS
    ):
        raise FieldError("send_digits", _SEND_DIGITS_RULE)
    return text


def _sip_headers(value: object) -> tuple[tuple[str, str], ...]:
    """``name=value`` pairs; names Plivo reserves are dropped, as Plivo drops them."""
    if value in (None, ""):
        return ()
    pairs = []
    for item in str(value).split(","):
        name, sep, val = item.partition("=")
        if (
            not sep
            or not _HEADER_NAME.fullmatch(name.strip())
            or not _HEADER_VALUE.fullmatch(val.strip())
        ):
            raise FieldError(
                "sip_headers", "name=value pairs separated by commas (names: letters, digits, -)"
            )
        pairs.append((name.strip(), val.strip()))
    if len(pairs) > MAX_SIP_HEADERS:
        raise FieldError("sip_headers", f"at most {MAX_SIP_HEADERS} headers")
    for name, _ in pairs:
        if is_reserved_header(name):
            log.debug("make call: sip_headers {header} is a reserved name; dropped", header=name)
    return tuple((name, val) for name, val in pairs if not is_reserved_header(name))


def _live_json(call: Call) -> dict[str, Any]:
    params = call.params()
    return {
        "call_uuid": call.uuid,
        "call_status": params["CallStatus"],
        "direction": call.direction,
        "from": call.caller,
        "to": call.called,
        "caller_name": call.caller_name,
        "request_uuid": call.request_uuid,
        "session_start": plivo_time(call.leg.started_at),
        "answer_time": plivo_time(call.leg.answered_at) or None,
        "parent_call_uuid": call.parent.uuid if call.parent else None,
        "call_duration": call.leg.duration(),
    }


def _cdr_json(req: ApiRequest, record: CallRecord) -> dict[str, Any]:
    return {
        "answer_time": record.answer_time,
        "bill_duration": record.bill_duration,
        "billed_duration": record.bill_duration,
        "call_direction": record.direction,
        "call_duration": record.duration,
        "call_status": record.call_status,
        "call_uuid": record.call_uuid,
        "end_time": record.end_time,
        "from_number": record.from_number,
        "hangup_cause_code": record.hangup_cause_code,
        "hangup_cause_name": record.hangup_cause_name,
        "hangup_source": record.hangup_source,
        "initiation_time": record.start_time,
        "parent_call_uuid": record.parent_call_uuid,
        "request_uuid": record.request_uuid,
        "resource_uri": f"{req.base_uri}/Call/{record.call_uuid}/",
        "to_number": record.to_number,
        "total_amount": "0.00000",
        "total_rate": "0.00000",
    }
