"""Conference rooms: Plivo's ``<Conference>`` rules over the media mixer.

:class:`Conferences` (one per call manager) keeps the live rooms by name.  A room
is made when its first member enters and is gone when its last member leaves or
it ends; a later ``<Conference>`` with the same name makes a new room (a new
``ConferenceUUID``).  Each member is one call whose document runs ``<Conference>``;
the executor waits on the Deferred :meth:`Conferences.join` returns, which fires
once the member has left (kicked, ``hangupOnStar``, the room ended) and is
cancelled when the call ends.

The rules, as Plivo documents them (details [ours] where it is silent):

* ``maxMembers`` (of the member entering): a full room refuses the member, whose
  document goes on with its next verb (no callbacks, no action).
* ``startConferenceOnEnter``: the room starts when a member with it enters; until
  then every member is held (neither heard nor hearing) and hears ``waitSound``,
  which also plays to a member alone in a started room.  Once started, a room
  stays started.
* ``endConferenceOnExit``: the room ends when that member leaves; ``stayAlone``
  false: the room ends when it is down to one member (after a member with it has
  entered).  Everyone left then leaves with ``ConferenceExit.ENDED``.
* ``timeLimit`` (seconds): the room ends that long after the member entered; with
  several members the earliest deadline wins.
* ``enterSound``/``exitSound``: played to the whole room.  ``muted``: not heard.
* ``hangupOnStar``: ``*`` makes the member leave; ``digitsMatch``: each key goes
  to the executor, which matches the patterns; ``relayDTMF``: RFC 4733 keys are
  sent to every other member (in-band keys are in the mixed audio anyway).
* ``record``: the room's mix is recorded from then until the room ends (WAV;
  ``recordWhenAlone`` keeps the stretches with one member); the members who asked
  get the ``record`` event when it is done.
* ``floorEvent``: a ``floor`` event when the member takes the floor (the mixer's
  energy detection decides), or holds it on entering.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from media import MediaArgumentError, Mixer, MixMember, MixRecording, RecordEnd, RecordingResult
from media.encoder import AudioFileFormat
from media.sources import ClipSource, FrameSource
from telephony.calls.conference_sounds import render
from telephony.calls.control import DigitTap
from telephony.calls.recordings import CallInfo, CallRecordings
from telephony.randompool import uuid4
from xml_dsl import (
    Beep,
    ConferenceEvent,
    ConferenceEventKind,
    ConferenceExit,
    ConferenceResult,
    ConferenceSpec,
    RecordResult,
)
from xml_dsl.verbs import Prompt

if TYPE_CHECKING:
    from telephony.calls.call import Call

__all__ = ("MAX_ROOMS", "Conferences", "Member", "Room", "RoomRecording")

#: Most live rooms on one server [ours]: each mixes on the shared tick, and
#: docs/benchmarks.md finds the ceiling of one core well above typical use.
MAX_ROOMS = 1000

log = Logger()
Int16Array = npt.NDArray[np.int16]
EventSink = Callable[[ConferenceEvent], None]


class MixerFactory(Protocol):
    """What the rooms need from the media engine."""

    def create_mixer(self, *, name: str = "") -> Mixer: ...


@attrs.define(eq=False)
class Member:
    """One call in a room.

    :ivar joined_at: clock seconds.
    :ivar done: fires with the :class:`ConferenceResult` when the member leaves.
    """

    member_id: str
    call: Call
    spec: ConferenceSpec
    on_event: EventSink
    mix: MixMember
    joined_at: float
    done: Deferred[ConferenceResult]
    tap: DigitTap | None = None
    recording: RoomRecording | None = None
    renders: list[Deferred[Any]] = attrs.Factory(list)
    gone: bool = False

    def event(self, kind: ConferenceEventKind, room: Room, **kw: Any) -> None:
        """Tell the member's document (its callbackUrl) what happened."""
        self.on_event(ConferenceEvent(kind, room.uuid, self.member_id, **kw))


@attrs.define(eq=False)
class RoomRecording:
    """A recording of a room's mix, in progress or done.

    :ivar started: clock seconds.
    :ivar result: fires with the finished :class:`RecordResult`.
    """

    recording_id: str
    path: Path
    url: str
    started: float
    result: Deferred[RecordResult] = attrs.Factory(Deferred)

    def reference(self) -> RecordResult:
        """Its URL and ID, for a member's action while it may still run."""
        return RecordResult(url=self.url, recording_id=self.recording_id)


class Room:
    """One live conference: its members, mixer, start/end rules and recording.

    Made by :class:`Conferences`; its public methods are what the REST API does.
    """

    def __init__(self, owner: Conferences, name: str) -> None:
        self.owner = owner
        self.name = name
        self.uuid = uuid4()
        self.clock = owner.clock
        self.created = self.clock.seconds()
        self.mixer = owner.media.create_mixer(name=name)
        self.mixer.on_floor = self._floor
        self.members: dict[str, Member] = {}
        self.started = False
        self.end_when_alone = False
        self.ended = False
        self.recording: RoomRecording | None = None
        self._deadline: IDelayedCall | None = None
        log.info("conference {room} ({uuid}) opened", room=name, uuid=self.uuid)

    @property
    def run_time(self) -> int:
        """Whole seconds since the room was made."""
        return int(self.clock.seconds() - self.created)

    # entering ----------------------------------------------------------------------

    def enter(
        self, call: Call, spec: ConferenceSpec, on_event: EventSink
    ) -> Deferred[ConferenceResult]:
        """Put ``call`` in the room; the Deferred fires when it leaves."""
        if len(self.members) >= spec.max_members:
            return succeed(ConferenceResult(self.uuid, "", exit=ConferenceExit.FULL))
        media = call.leg.media
        if media is None:  # the executor answers the call first; it has media then
            raise RuntimeError("a call without media cannot enter a conference")
        member_id = self.owner.next_member_id()

        def cancelled(_: Deferred[ConferenceResult]) -> None:
            self.leave(member, ConferenceExit.HANGUP)

        member = Member(
            member_id=member_id,
            call=call,
            spec=spec,
            on_event=on_event,
            mix=self.mixer.add(media, muted=spec.muted),
            joined_at=self.clock.seconds(),
            done=Deferred(cancelled),
        )
        self.members[member_id] = member
        log.info(
            "call {call_uuid} entered conference {room} as member {member_id}",
            call_uuid=call.uuid,
            room=self.name,
            member_id=member_id,
        )
        if not spec.stay_alone:
            self.end_when_alone = True
        if spec.hangup_on_star or spec.report_digits or spec.relay_dtmf:
            member.tap = DigitTap(lambda key: self._digit(member, key))
            media.add_listener(member.tap)
        member.event(ConferenceEventKind.ENTER, self)
        if spec.report_floor and self.mixer.floor is member.mix:
            member.event(ConferenceEventKind.FLOOR, self)
        if spec.start_on_enter:
            self.started = True
        self._play_to_room(spec.enter_sound, "enterSound")
        if spec.record:
            member.recording = self.recording or self.start_recording(
                file_format=spec.record.file_format.value,
                when_alone=spec.record_when_alone,
                call=call,
            )
            member.recording.result.addCallback(self._recorded, member)
        self._limit(spec.time_limit)
        if spec.send_digits:
            media.send_digits(spec.send_digits).addErrback(lambda _: None)
        self._settle_holds()
        return member.done

    def _limit(self, seconds: int) -> None:
        """The room ends ``seconds`` from now, unless an earlier deadline stands."""
        deadline = self.clock.seconds() + seconds
        current = self._deadline
        if current is not None and current.active() and current.getTime() <= deadline:
            return
        if current is not None and current.active():
            current.cancel()
        self._deadline = self.clock.callLater(seconds, self.end, ConferenceExit.TIME_LIMIT)

    # leaving ------------------------------------------------------------------------

    def leave(self, member: Member, exit: ConferenceExit) -> None:
        """Take ``member`` out; then apply the room's end rules."""
        if member.gone:
            return
        member.gone = True
        del self.members[member.member_id]
        for render_ in list(member.renders):
            render_.cancel()
        media = member.call.leg.media
        if member.tap is not None and media is not None:
            media.remove_listener(member.tap)
        self.mixer.remove(member.mix)
        log.info(
            "call {call_uuid} left conference {room} (member {member_id}): {exit}",
            call_uuid=member.call.uuid,
            room=self.name,
            member_id=member.member_id,
            exit=exit.value,
        )
        member.event(ConferenceEventKind.EXIT, self)
        if exit is not ConferenceExit.HANGUP and not member.done.called:
            recording = member.recording.reference() if member.recording else None
            member.done.callback(ConferenceResult(self.uuid, member.member_id, recording, exit))
        if self.ended:
            return
        if not self.members:
            self.close()
        elif member.spec.end_on_exit or (len(self.members) == 1 and self.end_when_alone):
            self.end(ConferenceExit.ENDED)
        else:
            self._play_to_room(member.spec.exit_sound, "exitSound")
            self._settle_holds()

    def end(self, exit: ConferenceExit = ConferenceExit.ENDED) -> None:
        """End the room: every member leaves with ``exit``, then it closes."""
        if self.ended:
            return
        self.ended = True
        log.info("conference {room} ({uuid}) ends: {exit}", room=self.name, uuid=self.uuid,
                 exit=exit.value)  # fmt: skip
        for member in list(self.members.values()):
            self.leave(member, exit)
        self.close()

    def close(self) -> None:
        """Release everything: the deadline, the recording, the mixer; forget the room."""
        self.ended = True
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self.mixer.close()  # finishes the recording, whose result then fires
        self.owner.forget(self)

    # holds and wait music --------------------------------------------------------------

    def _settle_holds(self) -> None:
        """Hold everyone until the room starts; wait music while held or alone."""
        alone = len(self.members) == 1
        for member in self.members.values():
            member.mix.held = not self.started
            wants_music = bool(member.spec.wait_prompts) and (member.mix.held or alone)
            playing = "wait" in member.mix.outputs or any(not d.called for d in member.renders)
            if wants_music and not playing:
                self._wait_music(member)
            elif not wants_music:
                for pending in list(member.renders):
                    pending.cancel()
                member.mix.stop("wait")

    def _wait_music(self, member: Member) -> None:
        loading = render(self.mixer, member.spec.wait_prompts, "waitSound")
        member.renders.append(loading)

        def loaded(samples: Int16Array) -> None:
            if len(samples) and not member.gone:
                member.mix.play("wait", ClipSource(samples, loops=0)).addErrback(_quiet)

        def settled(result: object) -> object:
            if loading in member.renders:
                member.renders.remove(loading)
            return result

        loading.addBoth(settled).addCallbacks(loaded, _quiet)

    def _play_to_room(self, sound: Beep | tuple[Prompt, ...] | None, what: str) -> None:
        if not sound or not self.members:
            return

        def loaded(samples: Int16Array) -> None:
            if len(samples) and not self.ended:
                self.mixer.play_room(samples).addErrback(_quiet)

        render(self.mixer, sound, what).addCallbacks(loaded, _quiet)

    # keys and floor -------------------------------------------------------------------

    def _digit(self, member: Member, key: str) -> None:
        spec = member.spec
        if spec.hangup_on_star and key == "*":
            self.leave(member, ConferenceExit.HANGUP_ON_STAR)
            return
        if spec.report_digits:
            member.event(ConferenceEventKind.DIGITS, self, digits=key)
        media = member.call.leg.media
        events = (
            media is not None
            and media.negotiated is not None
            and (media.negotiated.telephone_event is not None)
        )
        if spec.relay_dtmf and events:
            for other in self.members.values():
                other_media = other.call.leg.media
                if other is not member and other_media is not None:
                    other_media.send_digits(key).addErrback(_quiet)

    def _floor(self, mix: MixMember) -> None:
        for member in self.members.values():
            if member.mix is mix and member.spec.report_floor:
                member.event(ConferenceEventKind.FLOOR, self)

    # recording --------------------------------------------------------------------------

    def start_recording(
        self, *, file_format: str = "mp3", when_alone: bool = False, call: Call | None = None
    ) -> RoomRecording:
        """Record the room's mix (mono, MP3 or WAV) until :meth:`stop_recording` or the
        room ends; it is then filed as a ``conference`` recording (``/Recording/``).

        :param call: the call whose document asked for it (for the recording's row).
        :raises media.MediaArgumentError: if a recording runs already, or for a format
            other than ``mp3`` and ``wav``.
        """
        fmt = AudioFileFormat.parse(file_format)
        if self.recording is not None:
            raise MediaArgumentError("record: this conference is already being recorded")
        files = self.owner.recordings
        pending = files.begin(fmt.value)
        mixed = self.mixer.start_recording(pending.partial, file_format=fmt, when_alone=when_alone)
        recording = RoomRecording(
            pending.recording_id, pending.final, pending.url, self.clock.seconds()
        )
        self.recording = recording
        info = call.recording_info() if call is not None else CallInfo("", "", "")
        log.info(
            "conference {room}: recording {recording_id} ({file_format})",
            room=self.name,
            recording_id=pending.recording_id,
            file_format=fmt.value,
        )

        def over() -> None:
            if self.recording is recording:
                self.recording = None

        def lost(failure: Failure) -> None:
            over()
            log.failure("conference {room}: recording {recording_id} lost", failure,
                        room=self.name, recording_id=pending.recording_id)  # fmt: skip

        def finished(result: MixRecording) -> None:
            over()
            done = RecordingResult(
                result.path, result.duration, RecordEnd.STOPPED, started_at=result.started
            )
            filed = files.file(info, pending, done, conference=(self.name, self.uuid))
            filed.addCallbacks(recording.result.callback, lost)

        mixed.addCallbacks(finished, lost)
        return recording

    def stop_recording(self) -> bool:
        """Finish the running recording; whether there was one."""
        if self.recording is None:
            return False
        self.mixer.stop_recording()
        return True

    def _recorded(self, result: RecordResult, member: Member) -> RecordResult:
        member.event(ConferenceEventKind.RECORD, self, recording=result)
        return result

    # REST -----------------------------------------------------------------------------

    def select(self, member_ids: str) -> list[Member]:
        """The members ``all`` or a comma-separated list of IDs names (unknown ones skipped)."""
        if member_ids.strip() == "all":
            return list(self.members.values())
        wanted = [m.strip() for m in member_ids.split(",")]
        return [self.members[m] for m in wanted if m in self.members]

    def play(self, members: Iterable[Member], kind: str, clip: Deferred[Int16Array]) -> None:
        """Play a clip (a loading file or speech) to each of ``members`` alone."""
        targets = list(members)
        children: list[Deferred[FrameSource]] = [Deferred() for _ in targets]

        def loaded(samples: Int16Array) -> None:
            for child in children:
                if not child.called:
                    child.callback(ClipSource(samples))

        def failed(failure: Failure) -> None:
            log.warn("conference {room}: {kind} failed: {error}", room=self.name, kind=kind,
                     error=failure.getErrorMessage())  # fmt: skip
            for child in children:
                if not child.called:
                    child.errback(failure)

        clip.addCallbacks(loaded, failed)
        for member, child in zip(targets, children, strict=True):
            member.mix.play(kind, loading=child).addErrback(_quiet)

    def describe(self) -> dict[str, Any]:
        """The room as Plivo's ``GET /Conference/{name}/`` shows it (less ``api_id``)."""
        now = self.clock.seconds()
        return {
            "conference_name": self.name,
            "conference_run_time": str(self.run_time),
            "conference_member_count": str(len(self.members)),
            "members": [
                {
                    "muted": m.mix.muted,
                    "member_id": m.member_id,
                    "deaf": m.mix.deaf,
                    "from": m.call.caller,
                    "to": m.call.called,
                    "caller_name": m.call.caller_name,
                    "direction": m.call.direction,
                    "call_uuid": m.call.uuid,
                    "join_time": str(int(now - m.joined_at)),
                }
                for m in self.members.values()
            ],
        }


def _quiet(failure: Failure) -> None:
    """An output or render that ended early (cancelled, session closed): nothing to do."""
    if not failure.check(CancelledError):
        log.debug("conference sound: {error}", error=failure.getErrorMessage())


class Conferences:
    """The live rooms of one server, by name.

    :param media: makes a mixer per room (the media engine).
    :param clock: the reactor's time.
    :param recordings: names room recordings and files them when they are done.
    """

    def __init__(
        self, *, media: MixerFactory, clock: IReactorTime, recordings: CallRecordings
    ) -> None:
        self.media = media
        self.clock = clock
        self.recordings = recordings
        self.rooms: dict[str, Room] = {}
        self._member_ids = itertools.count(1)

    def next_member_id(self) -> str:
        """A member ID unique on this server (Plivo's are numbers, as strings)."""
        return str(next(self._member_ids))

    def join(
        self, call: Call, spec: ConferenceSpec, on_event: EventSink
    ) -> Deferred[ConferenceResult]:
        """Put ``call`` in the room ``spec.room``, making the room if need be.

        A server already holding :data:`MAX_ROOMS` rooms refuses a new one as full.
        """
        room = self.rooms.get(spec.room)
        # An ending room is still listed while its members leave; a member whose
        # document goes on at once into the same name gets a new room.
        if room is None or room.ended:
            if len(self.rooms) >= MAX_ROOMS:
                log.warn("conference {room}: {limit} rooms are live already; refused",
                         room=spec.room, limit=MAX_ROOMS)  # fmt: skip
                return succeed(ConferenceResult("", "", exit=ConferenceExit.FULL))
            room = self.rooms[spec.room] = Room(self, spec.room)
        try:
            return room.enter(call, spec, on_event)
        finally:
            if not room.members and not room.ended:
                room.close()  # nobody got in: no empty room is left behind

    def forget(self, room: Room) -> None:
        """A room closed."""
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]

    def close_all(self) -> None:
        """End every room (server shutdown)."""
        for room in list(self.rooms.values()):
            room.end(ConferenceExit.ENDED)

    def live(self) -> list[dict[str, Any]]:
        """Every member of every room, for the status page and the manhole."""
        rows = []
        for room in self.rooms.values():
            for member in room.members.values():
                rows.append(
                    {
                        "room": room.name,
                        "member_id": member.member_id,
                        "call_uuid": member.call.uuid,
                        "from": member.call.caller,
                        "muted": member.mix.muted,
                        "deaf": member.mix.deaf,
                        "held": member.mix.held,
                        "talking": member.mix.talking,
                        "floor": room.mixer.floor is member.mix,
                        "joined": int(self.clock.seconds() - member.joined_at),
                        "recording": room.recording is not None,
                    }
                )
        return rows
