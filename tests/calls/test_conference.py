"""Conference rooms on a Clock: Plivo's start, end, wait, limit, key and record rules.

The members' media are real RTP sessions on a fake transport and the mixer is the
real one, so what a member hears is checked on the packets it was sent (see
:mod:`tests.calls.conferences`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from twisted.internet.defer import CancelledError

from media.g711 import Codec
from telephony.calls import conference as conference_module
from telephony.calls.conference_sounds import BEEP_HZ, BEEP_OFF_MS, BEEP_ON_MS, beeps
from tests.calls.conferences import MUSIC, MUSIC_HZ, MUSIC_URL, FakeCall, World, world
from tests.media.helpers import advance_to
from tests.tones import tones_heard
from xml_dsl import (
    Beep,
    ConferenceEventKind,
    ConferenceExit,
    RecordMode,
    RecordSpec,
)
from xml_dsl.verbs import Play, Speak, Wait

__all__ = ("world",)


def kinds(call: FakeCall) -> list[str]:
    return [e.kind.value for e in call.events]


def test_members_enter_hear_each_other_and_the_room_describes_them(world: World) -> None:
    a, b = world.call(500.0), world.call(800.0)
    da, db = world.join(a), world.join(b)
    room = world.room()
    assert [m.member_id for m in room.members.values()] == ["1", "2"]
    assert kinds(a) == ["enter"]
    assert a.events[0].conference_uuid == room.uuid
    assert a.events[0].member_id == "1"
    world.talk(0.1, a, b)
    since = world.clock.seconds()
    world.talk(0.5, a, b)
    assert tones_heard(a.audio(since), [500.0, 800.0]) == {800.0}
    assert tones_heard(b.audio(since), [500.0, 800.0]) == {500.0}
    described = room.describe()
    assert described["conference_name"] == "r1"
    assert described["conference_member_count"] == "2"
    assert described["conference_run_time"] == "0"
    assert [m["call_uuid"] for m in described["members"]] == ["call-1", "call-2"]
    assert described["members"][0] == {
        "muted": False, "member_id": "1", "deaf": False, "from": "1001", "to": "conf",
        "caller_name": "", "direction": "inbound", "call_uuid": "call-1", "join_time": "0",
    }  # fmt: skip
    assert not da.called
    assert not db.called


def test_a_full_room_refuses_without_events(world: World) -> None:
    a, b, c = world.call(), world.call(), world.call()
    world.join(a, max_members=2)
    world.join(b, max_members=2)
    refused = world.join(c, max_members=2)
    result = refused.result  # type: ignore[attr-defined]
    assert result.exit is ConferenceExit.FULL
    assert c.events == []
    assert len(world.room().members) == 2
    assert not c.media.counters.dropped_relay  # never mixed


def test_members_wait_held_with_looping_music_until_the_moderator_enters(world: World) -> None:
    a, b, mod = world.call(500.0), world.call(800.0), world.call(1300.0)
    wait = (Play(MUSIC_URL, loop=1),)
    world.join(a, start_on_enter=False, wait_prompts=wait)
    world.join(b, start_on_enter=False, wait_prompts=wait)
    room = world.room()
    assert not room.started
    assert all(m.mix.held for m in room.members.values())
    world.talk(1.0, a, b)
    # a hears neither b nor a room, only the music from the first tick on, looped
    # sample for sample.
    heard = a.audio(0.0)
    assert tones_heard(heard, [500.0, 800.0, MUSIC_HZ]) == {MUSIC_HZ}
    clip = Codec.PCMU.decode(Codec.PCMU.encode(MUSIC))
    assert len(heard) == 51 * 160  # 0 to 1.0 s, both ends
    assert np.array_equal(heard[: 5 * len(clip)], np.tile(clip, 5))
    world.join(mod, start_on_enter=True)
    assert room.started
    assert not any(m.mix.held for m in room.members.values())
    assert "wait" not in room.members["1"].mix.outputs
    world.talk(0.1, a, b, mod)
    since = world.clock.seconds()
    world.talk(0.5, a, b, mod)
    assert tones_heard(a.audio(since), [500.0, 800.0, 1300.0, MUSIC_HZ]) == {800.0, 1300.0}
    assert world.engine.loader.loads == [MUSIC_URL, MUSIC_URL]


def test_wait_music_plays_to_a_member_alone_and_stops_when_someone_enters(world: World) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a, wait_prompts=(Wait(length=1), Play(MUSIC_URL)))
    world.talk(1.4, a)
    heard = a.audio(0.0)
    assert set(heard[:8000]) == {0}  # the Wait: a second of silence, then the Play
    clip = Codec.PCMU.decode(Codec.PCMU.encode(MUSIC))
    assert np.array_equal(heard[8000 : 8000 + len(clip)], clip)
    world.join(b)
    assert "wait" not in world.room().members["1"].mix.outputs
    since = world.clock.seconds()
    world.talk(0.5, a, b)
    assert tones_heard(a.audio(since), [800.0, MUSIC_HZ]) == {800.0}


def test_end_conference_on_exit_ends_it_for_everyone(world: World) -> None:
    host, a, b = world.call(), world.call(), world.call()
    d_host = world.join(host, end_on_exit=True)
    da, db = world.join(a), world.join(b)
    room = world.room()
    d_host.cancel()  # the host hangs up
    failures: list[Any] = []
    d_host.addErrback(failures.append)
    assert failures[0].check(CancelledError)
    for d in (da, db):
        result = d.result  # type: ignore[attr-defined]
        assert result.exit is ConferenceExit.ENDED
        assert result.conference_uuid == room.uuid
    assert kinds(host) == ["enter", "exit"]
    assert kinds(a) == ["enter", "exit"]
    assert world.conferences.rooms == {}
    assert not a.media._relaying  # back to its own frames: the document goes on


def test_stay_alone_false_ends_the_room_when_one_is_left(world: World) -> None:
    a, b, c = world.call(), world.call(), world.call()
    da = world.join(a, stay_alone=False)
    db, dc = world.join(b), world.join(c)
    db.cancel()
    db.addErrback(lambda _: None)
    assert "r1" in world.conferences.rooms  # two are left
    dc.cancel()
    dc.addErrback(lambda _: None)
    assert da.result.exit is ConferenceExit.ENDED  # type: ignore[attr-defined]
    assert world.conferences.rooms == {}


def test_a_member_alone_stays_by_default(world: World) -> None:
    a, b = world.call(), world.call()
    da = world.join(a)
    db = world.join(b)
    db.cancel()
    db.addErrback(lambda _: None)
    assert not da.called
    assert list(world.room().members) == ["1"]


def test_time_limit_ends_the_room_exactly_and_the_earliest_deadline_wins(world: World) -> None:
    clock = world.clock
    a, b = world.call(), world.call()
    da = world.join(a, time_limit=30)
    advance_to(clock, 10.0, step=1.0)
    db = world.join(b, time_limit=5)  # ends at 15 s, before a's 30 s
    advance_to(clock, 14.99, step=1.0)
    assert not da.called
    advance_to(clock, 15.0, step=1.0)
    assert da.result.exit is ConferenceExit.TIME_LIMIT  # type: ignore[attr-defined]
    assert db.result.exit is ConferenceExit.TIME_LIMIT  # type: ignore[attr-defined]
    c = world.call()
    dc = world.join(c, time_limit=100)  # a later, longer limit does not move an earlier one
    room = world.room()
    d = world.call()
    world.join(d, time_limit=200)
    advance_to(clock, 114.99, step=1.0)
    assert not dc.called
    advance_to(clock, 115.0, step=1.0)
    assert dc.result.exit is ConferenceExit.TIME_LIMIT  # type: ignore[attr-defined]
    assert room.ended


def test_hangup_on_star_digits_and_relayed_dtmf(world: World) -> None:
    a, b = world.call(), world.call()
    da = world.join(a, hangup_on_star=True, report_digits=True)
    world.join(b)
    member = world.room().members["1"]
    assert member.tap is not None
    member.tap.digit_received(a.media, "5")
    assert kinds(a) == ["enter", "digits"]
    assert a.events[1].digits == "5"
    b_events = len(b.transport.packets(101))
    advance_to(world.clock, world.clock.seconds() + 0.3)
    assert len(b.transport.packets(101)) > b_events  # relayed to b as RFC 4733
    member.tap.digit_received(a.media, "*")
    assert da.result.exit is ConferenceExit.HANGUP_ON_STAR  # type: ignore[attr-defined]
    assert kinds(a) == ["enter", "digits", "exit"]


def test_no_relay_without_relay_dtmf(world: World) -> None:
    a, b = world.call(), world.call()
    world.join(a, relay_dtmf=False, report_digits=True)
    world.join(b)
    before = len(b.transport.packets(101))
    world.room().members["1"].tap.digit_received(a.media, "5")  # type: ignore[union-attr]
    advance_to(world.clock, world.clock.seconds() + 0.3)
    assert len(b.transport.packets(101)) == before


def test_enter_and_exit_beeps_play_to_the_room(world: World) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a, exit_sound=Beep.TWO)
    since = world.clock.seconds()
    world.join(b, enter_sound=Beep.ONE)
    world.talk(BEEP_ON_MS / 1000)
    heard = a.audio(since + 0.001)
    assert tones_heard(heard, [BEEP_HZ]) == {BEEP_HZ}
    clip = Codec.PCMU.decode(Codec.PCMU.encode(beeps(1)))
    assert np.array_equal(heard[:160], clip[:160])  # the beep starts with the next tick
    assert len(beeps(2)) == 2 * (BEEP_ON_MS + BEEP_OFF_MS) * 8
    world.talk(0.5)
    db_events = len(b.events)
    room = world.room()
    room.leave(room.members["1"], ConferenceExit.KICKED)
    assert len(b.events) == db_events  # b's document hears nothing of a's exit
    since = world.clock.seconds()
    world.talk(1.0)
    assert tones_heard(b.audio(since + 0.001), [BEEP_HZ]) == {BEEP_HZ}


def test_a_spoken_enter_sound_is_rendered_and_played(world: World) -> None:
    a, b = world.call(), world.call()
    world.join(a)
    since = world.clock.seconds()
    world.join(b, enter_sound=(Speak("welcome"),))
    world.talk(0.2)
    assert tones_heard(a.audio(since + 0.001), [2000.0]) == {2000.0}


def test_recording_runs_until_the_room_ends_and_reports(world: World, tmp_path: Path) -> None:
    a, b = world.call(500.0), world.call(800.0)
    da = world.join(a)
    db = world.join(b)
    room = world.room()
    assert room.recording is None
    c = world.call(1300.0)
    dc = world.join(c, record=RecordSpec(RecordMode.SESSION))
    recording = room.recording
    assert recording is not None
    world.talk(0.1, a, b, c)
    world.talk(1.0, a, b, c)
    db.cancel()
    db.addErrback(lambda _: None)
    room.leave(room.members["3"], ConferenceExit.KICKED)
    left = dc.result  # type: ignore[attr-defined]
    assert left.recording.url == recording.url  # the action gets its URL at once
    assert left.recording.recording_id == recording.recording_id
    room.end()
    assert da.result.exit is ConferenceExit.ENDED  # type: ignore[attr-defined]
    (record_event,) = [e for e in c.events if e.kind is ConferenceEventKind.RECORD]
    result = record_event.recording
    assert result is not None
    assert result.url.endswith(f"/recordings/{recording.recording_id}.mp3")  # Plivo's default
    assert result.duration_ms == pytest.approx(1100 + 20, abs=60)
    assert recording.path == tmp_path / "recordings" / f"{recording.recording_id}.mp3"
    samples, rate = soundfile.read(str(recording.path), dtype="int16")
    assert rate == 8000
    assert tones_heard(samples[4000:], [500.0, 800.0, 1300.0]) == {500.0, 800.0, 1300.0}
    assert [e for e in a.events if e.kind is ConferenceEventKind.RECORD] == []


def test_floor_events_go_to_members_who_asked(world: World) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a, report_floor=True)
    assert kinds(a) == ["enter", "floor"]  # the first in holds the floor
    world.join(b, report_floor=True)
    assert kinds(b) == ["enter"]
    world.talk(0.5, b)  # a says nothing: b takes the floor
    assert kinds(b) == ["enter", "floor"]
    assert world.room().mixer.floor is world.room().members["2"].mix


def test_kick_mute_deaf_select_and_play_for_the_rest_api(world: World) -> None:
    a, b, c = world.call(500.0), world.call(800.0), world.call(1300.0)
    da = world.join(a)
    world.join(b)
    world.join(c)
    room = world.room()
    assert [m.member_id for m in room.select("all")] == ["1", "2", "3"]
    assert [m.member_id for m in room.select("3, 1,99")] == ["3", "1"]
    room.members["2"].mix.muted = True
    room.play(room.select("1"), "speak", room.mixer.synthesize("hi", voice="MAN", language="en"))
    world.talk(0.1, a, b, c)
    since = world.clock.seconds()
    world.talk(0.1, a, b, c)
    assert tones_heard(a.audio(since), [800.0, 1300.0, 2000.0]) == {1300.0, 2000.0}
    assert tones_heard(c.audio(since), [800.0, 2000.0]) == set()
    room.leave(room.members["1"], ConferenceExit.KICKED)
    assert da.result.exit is ConferenceExit.KICKED  # type: ignore[attr-defined]


def test_a_hung_up_member_leaves_with_an_exit_event_and_no_result(world: World) -> None:
    a, b = world.call(), world.call()
    da = world.join(a)
    world.join(b)
    da.cancel()
    failures: list[Any] = []
    da.addErrback(failures.append)
    assert failures[0].check(CancelledError)
    assert kinds(a) == ["enter", "exit"]
    assert list(world.room().members) == ["2"]


def test_a_server_holds_at_most_max_rooms(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conference_module, "MAX_ROOMS", 2)
    for name in ("one", "two"):
        world.join(world.call(), room=name)
    refused = world.join(world.call(), room="three")
    assert refused.result.exit is ConferenceExit.FULL  # type: ignore[attr-defined]
    assert sorted(world.conferences.rooms) == ["one", "two"]
    rows = world.conferences.live()
    assert [r["room"] for r in rows] == ["one", "two"]
    assert rows[0]["floor"] is True


def test_a_document_that_goes_straight_back_in_gets_a_new_room(world: World) -> None:
    host, guest = world.call(), world.call()
    world.join(host, end_on_exit=True)
    old = world.room()
    rejoined: list[Any] = []

    def back_in(result: Any) -> None:  # the guest's next verb: the same room, at once
        rejoined.append(world.join(guest))

    world.join(guest).addCallback(back_in)
    world.room().leave(old.members["1"], ConferenceExit.KICKED)  # the host leaves: it ends
    assert old.ended
    new = world.room()
    assert new is not old
    assert new.uuid != old.uuid
    assert list(new.members) == ["3"]
    assert not rejoined[0].called
    assert new.members["3"].mix in new.mixer.members
