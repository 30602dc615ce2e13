"""The conference REST handlers over real rooms: Plivo's shapes, and every refusal.

The handlers run directly (no HTTP: the interop tests drive the real server with the
real SDK); an error is what they raise, which the router turns into Plivo's JSON.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from telephony.api._http import ApiRequest, HTTPError, Reply
from telephony.api.conference_v1 import ConferenceAPI
from telephony.directory import FieldError
from tests.calls.conferences import World, world
from tests.media.helpers import advance_to
from tests.tones import tones_heard
from xml_dsl import ConferenceExit, Method

__all__ = ("world",)


class Harness:
    def __init__(self, world: World) -> None:
        self.world = world
        self.notified: list[tuple[str, Method, dict[str, str]]] = []
        self.api = ConferenceAPI(world.conferences, lambda *a: self.notified.append(a))
        self.routes = {(r.method, r.pattern.pattern): r.handler for r in self.api.routes()}

    def call(self, method: str, path: str, **params: Any) -> Reply:
        for (m, pattern), handler in self.routes.items():
            import re

            match = re.fullmatch(pattern, path)
            if m == method and match:
                coro: Coroutine[Any, Any, Reply] = handler(
                    ApiRequest(method, params, match.groupdict(), "/v1/Account/MA1")
                )
                d = Deferred.fromCoroutine(coro)
                outcome: list[Any] = []
                d.addBoth(outcome.append)
                if isinstance(outcome[0], Exception) or hasattr(outcome[0], "raiseException"):
                    outcome[0].raiseException()
                result: Reply = outcome[0]
                return result
        raise AssertionError(f"no route for {method} {path}")


@pytest.fixture
def rest(world: World) -> Harness:
    return Harness(world)


def test_list_get_and_member_fields(world: World, rest: Harness) -> None:
    assert rest.call("GET", "/Conference/").body["conferences"] == []  # type: ignore[index]
    a, b = world.call(), world.call()
    world.join(a, room="My Room")
    world.join(b, room="My Room")
    listed = rest.call("GET", "/Conference/")
    assert listed.status == 200
    assert listed.body["conferences"] == ["My Room"]  # type: ignore[index]
    got = rest.call("GET", "/Conference/My Room/")
    assert got.status == 200
    body = dict(got.body)  # type: ignore[arg-type]
    assert body.pop("api_id")
    assert body == world.room("My Room").describe()
    with pytest.raises(HTTPError, match="conference Nope not found") as caught:
        rest.call("GET", "/Conference/Nope/")
    assert caught.value.status == 404


def test_mute_unmute_deaf_undeaf_change_what_is_heard(world: World, rest: Harness) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a)
    world.join(b)
    muted = rest.call("POST", "/Conference/r1/Member/2/Mute/")
    assert muted.status == 202
    assert muted.body["message"] == "muted"  # type: ignore[index]
    assert muted.body["member_id"] == ["2"]  # type: ignore[index]
    world.talk(0.1, a, b)
    since = world.clock.seconds()
    world.talk(0.5, a, b)
    assert tones_heard(a.audio(since), [800.0]) == set()
    assert rest.call("DELETE", "/Conference/r1/Member/2/Mute/").status == 204
    deaf = rest.call("POST", "/Conference/r1/Member/all/Deaf/")
    assert deaf.body["member_id"] == ["1", "2"]  # type: ignore[index]
    since = world.clock.seconds()
    world.talk(0.5, a, b)
    assert set(a.audio(since + 0.001)) == {0}
    assert rest.call("DELETE", "/Conference/r1/Member/1,2/Deaf/").status == 204
    since = world.clock.seconds()
    world.talk(0.5, a, b)
    assert tones_heard(a.audio(since), [800.0]) == {800.0}
    assert [m["muted"] for m in world.room().describe()["members"]] == [False, False]


def test_kick_and_hangup(world: World, rest: Harness) -> None:
    a, b, c = world.call(), world.call(), world.call()
    da = world.join(a)
    world.join(b)
    world.join(c)
    kicked = rest.call("POST", "/Conference/r1/Member/1/Kick/")
    assert kicked.body == {**kicked.body, "message": "kicked", "member_id": ["1"]}  # type: ignore[dict-item]
    assert da.result.exit is ConferenceExit.KICKED  # type: ignore[attr-defined]
    assert rest.call("DELETE", "/Conference/r1/Member/3/").status == 204
    assert c.leg.hangups == [("API_HANGUP", "API")]
    assert b.leg.hangups == []
    assert rest.call("DELETE", "/Conference/r1/").status == 204
    assert b.leg.hangups == [("API_HANGUP", "API")]
    assert c.leg.hangups == [("API_HANGUP", "API")] * 2  # still in: the fake leg never ends
    assert rest.call("DELETE", "/Conference/").status == 204


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/Conference/r1/Member/x/Mute/", "member_id"),
        ("/Conference/r1/Member/1;2/Kick/", "member_id"),
        ("/Conference/r1/Member/,/Deaf/", "member_id"),
    ],
)
def test_bad_member_ids_name_the_field(world: World, rest: Harness, path: str, field: str) -> None:
    world.join(world.call())
    with pytest.raises(FieldError) as caught:
        rest.call("POST", path)
    assert str(caught.value).startswith(f"{field}: ")


def test_unknown_members_are_404(world: World, rest: Harness) -> None:
    world.join(world.call())
    with pytest.raises(HTTPError, match="has no member 7,8") as caught:
        rest.call("POST", "/Conference/r1/Member/7,8/Mute/")
    assert caught.value.status == 404


def test_play_and_speak_reach_only_the_members_named(world: World, rest: Harness) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a)
    world.join(b)
    played = rest.call("POST", "/Conference/r1/Member/1/Play/", url="http://127.0.0.1:9/m.wav")
    assert played.status == 202
    assert played.body["message"] == "play queued into conference"  # type: ignore[index]
    spoken = rest.call("POST", "/Conference/r1/Member/2/Speak/", text="hi", voice="man")
    assert spoken.body["message"] == "speak queued into conference"  # type: ignore[index]
    since = world.clock.seconds()
    world.talk(0.1)
    assert tones_heard(a.audio(since + 0.001), [300.0, 2000.0]) == {300.0}
    assert tones_heard(b.audio(since + 0.001), [300.0, 2000.0]) == {2000.0}
    assert rest.call("DELETE", "/Conference/r1/Member/1/Play/").status == 204
    assert rest.call("DELETE", "/Conference/r1/Member/2/Speak/").status == 204
    assert world.room().members["1"].mix.outputs == {}
    assert world.room().members["2"].mix.outputs == {}


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("POST", "Member/1/Play/", {}, "url"),
        ("POST", "Member/1/Play/", {"url": "ftp://x/a.wav"}, "url"),
        ("POST", "Member/1/Play/", {"url": ",".join(["http://h/a.wav"] * 6)}, "url"),
        ("POST", "Member/1/Speak/", {}, "text"),
        ("POST", "Member/1/Speak/", {"text": "x", "voice": "robot"}, "voice"),
        ("POST", "Member/1/Speak/", {"text": "x", "language": "english"}, "language"),
        ("POST", "Member/1/Mute/", {"volume": "3"}, "volume"),
        ("POST", "Record/", {"file_format": "ogg"}, "file_format"),
        ("POST", "Record/", {"transcription_type": "auto"}, "transcription_type"),
        ("POST", "Record/", {"callback_url": "nope"}, "callback_url"),
    ],
)
def test_bad_fields_name_the_field_and_change_nothing(
    world: World, rest: Harness, method: str, path: str, params: dict[str, str], field: str
) -> None:
    world.join(world.call())
    with pytest.raises(FieldError) as caught:
        rest.call(method, f"/Conference/r1/{path}", **params)
    assert str(caught.value).startswith(f"{field}: ")
    room = world.room()
    assert room.members["1"].mix.outputs == {}
    assert not room.members["1"].mix.muted
    assert room.recording is None


def test_record_start_stop_and_callback(world: World, rest: Harness, tmp_path: Path) -> None:
    a, b = world.call(500.0), world.call(800.0)
    world.join(a)
    world.join(b)
    started = rest.call(
        "POST",
        "/Conference/r1/Record/",
        file_format="wav",
        callback_url="http://127.0.0.1:9/rec",
        callback_method="GET",
    )
    assert started.status == 202
    body = started.body
    assert body["message"] == "conference recording started"  # type: ignore[index]
    assert body["url"].endswith(f"/recordings/{body['recording_id']}.wav")  # type: ignore[index]
    with pytest.raises(HTTPError, match="already being recorded") as caught:
        rest.call("POST", "/Conference/r1/Record/")
    assert caught.value.status == 409
    world.talk(1.0, a, b)
    assert rest.call("DELETE", "/Conference/r1/Record/").status == 204
    assert rest.call("DELETE", "/Conference/r1/Record/").status == 204  # idempotent
    ((url, method, params),) = rest.notified
    assert (url, method) == ("http://127.0.0.1:9/rec", Method.GET)
    assert params["RecordingID"] == body["recording_id"]  # type: ignore[index]
    assert params["ConferenceName"] == "r1"
    assert int(params["RecordingDurationMs"]) == pytest.approx(1000, abs=40)
    assert (tmp_path / "recordings" / f"{params['RecordingID']}.wav").exists()
    advance_to(world.clock, world.clock.seconds() + 0.1)
    again = rest.call("POST", "/Conference/r1/Record/")  # MP3 by default, as on Plivo
    assert again.body["url"].endswith(".mp3")  # type: ignore[index]


def test_the_status_page_lists_live_rooms_and_members(world: World) -> None:
    from telephony.api.status import StatusPage

    world.join(world.call(), room="<b>ops</b>")
    world.join(world.call(), room="<b>ops</b>", muted=True)
    world.join(world.call(), room="sales")
    page = StatusPage(
        None,  # type: ignore[arg-type]
        world.clock,
        0.0,
        live_conferences=world.conferences.live,
    )._page({"endpoints": 0, "applications": 0, "numbers": 0})
    assert "<h2>Live conferences (2 rooms, 3 members)</h2>" in page
    assert "&lt;b&gt;ops&lt;/b&gt;" in page
    assert "<b>ops</b>" not in page
    rows = page.split("Live conferences")[1].split("<tr>")[2:]
    assert len(rows) == 3
    assert "<td>call-2</td>" in rows[1]
    assert "<td>True</td><td>False</td><td>False</td>" in rows[1]  # muted, not deaf or held
