"""REST v1 for conferences, with Plivo's paths, fields and JSON.

``/Conference/`` lists the live rooms by name (GET) or hangs up every member of
every room (DELETE); ``/Conference/{name}/`` shows a room and its members or hangs
them all up.  ``/Conference/{name}/Member/{member_id}/`` acts on members:
``member_id`` is one ID, IDs separated by commas, or ``all``; DELETE hangs their
calls up, ``Kick/`` takes them out (their documents go on, with the action),
``Mute/``, ``Deaf/`` (POST on, DELETE off), ``Play/`` and ``Speak/`` (POST starts,
DELETE stops; heard by those members only, mixed over the room).
``/Conference/{name}/Record/`` starts (POST) and stops (DELETE) a recording of the
room's mix.  A room that is not live, or members that are not in it, answer 404.

Limits [ours]: 5 URLs per Play, 3,000 characters per Speak.  Recordings are MP3 or
WAV, filed as ``conference`` recordings (``/Recording/``); transcription is not
available.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from media import MediaArgumentError, MediaError
from telephony.api._http import ApiRequest, HTTPError, Reply, Route, new_api_id
from telephony.calls.causes import Cause
from telephony.calls.conference import Conferences, Member, Room
from telephony.calls.control import espeak_voice
from telephony.directory import FieldError, rules
from xml_dsl import ConferenceExit, Method, RecordResult
from xml_dsl.params import record_params

__all__ = ("MAX_PLAY_URLS", "ConferenceAPI")

log = Logger()

#: Most URLs one member Play takes (as for a call's Play).
MAX_PLAY_URLS = 5
#: Longest Speak text, in characters (as for a call's Speak).
MAX_SPEAK_CHARS = 3000
_CALLBACK = ("callback_url", "callback_method")
_MEMBER_IDS = re.compile(r"all|[0-9]{1,12}(,[0-9]{1,12}){0,99}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?")


def _member_message(message: str, members: list[Member]) -> Reply:
    """Plivo's answer to a member action: the message and the members it reached."""
    return Reply(
        202,
        {
            "api_id": new_api_id(),
            "message": message,
            "member_id": [m.member_id for m in members],
        },
    )


@attrs.define
class ConferenceAPI:
    """Handlers for conferences; :meth:`routes` lists them.

    :param conferences: the live rooms.
    :param notify: sends a recording's callback (the fetcher's ``notify``).
    """

    conferences: Conferences
    notify: Callable[[str, Method, dict[str, str]], object]

    def routes(self) -> list[Route]:
        """Every route of this API."""
        room = r"/Conference/(?P<conference_name>[^/]+)"
        member = rf"{room}/Member/(?P<member_id>[^/]+)"
        table: tuple[tuple[str, str, Callable[[ApiRequest], Any]], ...] = (
            ("GET", r"/Conference/", self.list_rooms),
            ("DELETE", r"/Conference/", self.hangup_all),
            ("GET", rf"{room}/", self.get),
            ("DELETE", rf"{room}/", self.hangup),
            ("DELETE", rf"{member}/", self.member_hangup),
            ("POST", rf"{member}/Kick/", self.kick),
            ("POST", rf"{member}/Mute/", self.mute),
            ("DELETE", rf"{member}/Mute/", self.unmute),
            ("POST", rf"{member}/Deaf/", self.deaf),
            ("DELETE", rf"{member}/Deaf/", self.undeaf),
            ("POST", rf"{member}/Play/", self.play),
            ("DELETE", rf"{member}/Play/", self.stop_play),
            ("POST", rf"{member}/Speak/", self.speak),
            ("DELETE", rf"{member}/Speak/", self.stop_speak),
            ("POST", rf"{room}/Record/", self.record),
            ("DELETE", rf"{room}/Record/", self.stop_record),
        )
        return [Route(method, re.compile(pattern), handler) for method, pattern, handler in table]

    # -- lookups --------------------------------------------------------------------------

    def _room(self, req: ApiRequest) -> Room:
        name = req.path_args["conference_name"]
        room = self.conferences.rooms.get(name)
        if room is None:
            raise HTTPError(404, f"conference {name} not found")
        return room

    def _members(self, req: ApiRequest) -> tuple[Room, list[Member]]:
        ids = req.path_args["member_id"]
        if not _MEMBER_IDS.fullmatch(ids):
            raise FieldError("member_id", "all, or 1 to 100 member IDs separated by commas")
        room = self._room(req)
        members = room.select(ids)
        if not members:
            raise HTTPError(404, f"conference {room.name} has no member {ids}")
        return room, members

    # -- rooms ----------------------------------------------------------------------------

    async def list_rooms(self, req: ApiRequest) -> Reply:
        """GET /Conference/: the names of the live rooms."""
        req.allow(_CALLBACK)
        return Reply(200, {"api_id": new_api_id(), "conferences": list(self.conferences.rooms)})

    async def hangup_all(self, req: ApiRequest) -> Reply:
        """DELETE /Conference/: hang up every member of every room."""
        req.allow(_CALLBACK)
        for room in list(self.conferences.rooms.values()):
            _hang_up(room, list(room.members.values()))
        return Reply(204, None)

    async def get(self, req: ApiRequest) -> Reply:
        """GET /Conference/{name}/: the room and its members."""
        req.allow(_CALLBACK)
        return Reply(200, {"api_id": new_api_id(), **self._room(req).describe()})

    async def hangup(self, req: ApiRequest) -> Reply:
        """DELETE /Conference/{name}/: hang up every member (the room then closes)."""
        req.allow(_CALLBACK)
        room = self._room(req)
        _hang_up(room, list(room.members.values()))
        return Reply(204, None)

    # -- members --------------------------------------------------------------------------

    async def member_hangup(self, req: ApiRequest) -> Reply:
        """DELETE /Conference/{name}/Member/{ids}/: hang up those members' calls."""
        req.allow(_CALLBACK)
        room, members = self._members(req)
        _hang_up(room, members)
        return Reply(204, None)

    async def kick(self, req: ApiRequest) -> Reply:
        """POST …/Kick/: take the members out; their documents go on."""
        req.allow(_CALLBACK)
        room, members = self._members(req)
        for member in members:
            room.leave(member, ConferenceExit.KICKED)
        return _member_message("kicked", members)

    def _apply(
        self, req: ApiRequest, change: Callable[[Member], None], message: str | None
    ) -> Reply:
        """Change each member named; 202 with ``message`` and the IDs, or 204 without."""
        req.allow(_CALLBACK)
        _, members = self._members(req)
        for member in members:
            change(member)
        return _member_message(message, members) if message else Reply(204, None)

    async def mute(self, req: ApiRequest) -> Reply:
        """POST …/Mute/: the room no longer hears them."""
        return self._apply(req, _set_muted(True), "muted")

    async def unmute(self, req: ApiRequest) -> Reply:
        """DELETE …/Mute/."""
        return self._apply(req, _set_muted(False), None)

    async def deaf(self, req: ApiRequest) -> Reply:
        """POST …/Deaf/: they no longer hear the room."""
        return self._apply(req, _set_deaf(True), "deaf")

    async def undeaf(self, req: ApiRequest) -> Reply:
        """DELETE …/Deaf/."""
        return self._apply(req, _set_deaf(False), None)

    async def play(self, req: ApiRequest) -> Reply:
        """POST …/Play/: ``url`` (1 to 5, comma-separated) to those members alone."""
        req.allow(("url", *_CALLBACK))
        raw = req.require("url")
        items = raw if isinstance(raw, list) else str(raw).split(",")
        urls = [rules.parse_url("url", u) for u in items if str(u).strip()]
        if not 1 <= len(urls) <= MAX_PLAY_URLS:
            raise FieldError("url", f"1 to {MAX_PLAY_URLS} URLs separated by commas")
        room, members = self._members(req)
        room.play(members, "play", room.mixer.load(urls))
        return _member_message("play queued into conference", members)

    async def stop_play(self, req: ApiRequest) -> Reply:
        """DELETE …/Play/."""
        return self._apply(req, _stop("play"), None)

    async def speak(self, req: ApiRequest) -> Reply:
        """POST …/Speak/: ``text``, ``voice`` (WOMAN, MAN), ``language``."""
        req.allow(("text", "voice", "language", *_CALLBACK))
        text = rules.parse_text("text", req.require("text"), MAX_SPEAK_CHARS)
        voice = str(req.params.get("voice", "WOMAN")).strip().upper()
        if voice not in ("WOMAN", "MAN"):
            raise FieldError("voice", "must be one of woman, man")
        language = str(req.params.get("language", "en-US"))
        if not _LANGUAGE.fullmatch(language):
            raise FieldError("language", "a language tag such as en-US")
        room, members = self._members(req)
        try:
            speech = room.mixer.synthesize(text, voice=espeak_voice(voice), language=language)
        except MediaArgumentError as exc:
            raise FieldError("language", str(exc)) from None
        room.play(members, "speak", speech)
        return _member_message("speak queued into conference", members)

    async def stop_speak(self, req: ApiRequest) -> Reply:
        """DELETE …/Speak/."""
        return self._apply(req, _stop("speak"), None)

    # -- recording ------------------------------------------------------------------------

    async def record(self, req: ApiRequest) -> Reply:
        """POST /Conference/{name}/Record/: record the room's mix (``file_format`` mp3,
        the default, or wav); its URL now, the file and its ``/Recording/`` row once it
        ends."""
        req.allow(
            (
                "file_format", "transcription_type", "transcription_url",
                "transcription_method", *_CALLBACK,
            )
        )  # fmt: skip
        for name in ("transcription_type", "transcription_url"):
            if req.params.get(name) not in (None, ""):
                raise FieldError(name, "transcription is not supported")
        file_format = str(req.params.get("file_format", "mp3")).strip().lower()
        if file_format not in ("mp3", "wav"):
            raise FieldError("file_format", "must be one of mp3, wav")
        callback = rules.parse_optional_url("callback_url", req.params.get("callback_url"))
        method = Method(
            rules.parse_method("callback_method", req.params.get("callback_method", "POST"))
        )
        room = self._room(req)
        try:
            recording = room.start_recording(file_format=file_format, when_alone=True)
        except MediaError:
            raise HTTPError(409, f"conference {room.name} is already being recorded") from None

        def done(result: RecordResult) -> RecordResult:
            if callback:
                self.notify(callback, method, _record_callback(room, result))
            return result

        recording.result.addCallback(done)
        body = {
            "api_id": new_api_id(),
            "message": "conference recording started",
            "recording_id": recording.recording_id,
            "url": recording.url,
        }
        return Reply(202, body)

    async def stop_record(self, req: ApiRequest) -> Reply:
        """DELETE /Conference/{name}/Record/: stop recording, keeping what was recorded."""
        req.allow(_CALLBACK)
        self._room(req).stop_recording()
        return Reply(204, None)


def _hang_up(room: Room, members: list[Member]) -> None:
    for member in members:
        log.info(
            "conference {room}: REST hangs up member {member_id} (call {call_uuid})",
            room=room.name,
            member_id=member.member_id,
            call_uuid=member.call.uuid,
        )
        member.call.leg.hangup(Cause.API_HANGUP, "API")


def _record_callback(room: Room, result: RecordResult) -> dict[str, str]:
    """What a REST recording's callback_url is told [ours: Plivo's record parameters,
    with the room's name and UUID]."""
    return {"ConferenceName": room.name, "ConferenceUUID": room.uuid, **record_params(result)}


def _set_muted(value: bool) -> Callable[[Member], None]:
    def change(member: Member) -> None:
        member.mix.muted = value

    return change


def _set_deaf(value: bool) -> Callable[[Member], None]:
    def change(member: Member) -> None:
        member.mix.deaf = value

    return change


def _stop(kind: str) -> Callable[[Member], None]:
    def change(member: Member) -> None:
        member.mix.stop(kind)

    return change
