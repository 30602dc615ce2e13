"""Conferences through the real server (issue 12): three sipp phones in one room.

Each phone is a sipp UAC (``phone_waits``) whose SDP names a Python RTP socket
(:class:`~tests.interop.rtppeer.RtpPeer`); once the server's audio reaches it, the
socket answers with a steady tone of its own frequency.  What each socket receives
is checked with Goertzel (:mod:`tests.tones`): every phone hears the other two and
never itself, and the real ``plivo`` SDK's ``conferences.*`` calls change that
(mute, deaf, kick) and end it (hangup).  The answer_url server is real and records
the callbackUrl events and the action; the room's recording is fetched from the
server's own site.

A second room checks the moderated case end to end: a member waits, held, hearing
a ``waitSound`` document's WAV (both fetched over HTTP) until the host enters, and
the host's hangup ends the room (``endConferenceOnExit``) and the member's call.

One ``twistd -n telephony`` serves the module; the phones share one endpoint and
dial different numbers, which the members' ``to`` tells apart.
"""

from __future__ import annotations

import io
import time
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import plivo
import plivo.exceptions
import pytest

from tests.appserver import AppServer, app_server
from tests.interop.restcalls_helpers import wav_bytes
from tests.serverproc import Server, plivo_client, running_server
from tests.tones import tone, tones_heard

from .callpeers import Api, Sipp, auth, start_sipp
from .rtppeer import RtpPeer

pytestmark = pytest.mark.interop

PASSWORD = "s3cret-pw"
#: Each phone's tone, by the number it dials.
TONES = {"1001": 500.0, "1002": 800.0, "1003": 1300.0}
FREQS = list(TONES.values())
#: Seconds of audio each check listens to.
WINDOW = 0.8
#: The tone a REST Play sends to one member.
PLAYED_HZ = 2200.0
#: The wait music's tone.
MUSIC_HZ = 300.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, AppServer, Path]]:
    root = tmp_path_factory.mktemp("conference")
    args = ["--digest-algorithms", "MD5"]
    with app_server() as apps, running_server(root / "var", args) as server:
        yield server, apps, root


@pytest.fixture
def client(env: tuple[Server, AppServer, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    sdk = plivo_client(env[0], monkeypatch)
    yield sdk
    sdk.__exit__(None, None, None)


def heard(
    peer: RtpPeer, since: float, until: float, frequencies: list[float] = FREQS
) -> set[float]:
    """The tones in what ``peer`` received between two wall-clock times."""
    frames = [samples for at, samples in peer.audio_frames(since) if at < until]
    assert len(frames) >= int(0.9 * (until - since) / 0.020), "audio stopped"
    return tones_heard(np.concatenate(frames), frequencies)


def records(apps: AppServer, path: str) -> list[dict[str, str]]:
    """The ``record`` events the callbackUrl got."""
    return [r.params for r in apps.seen(path) if r.params.get("ConferenceAction") == "record"]


def listen(peers: dict[str, RtpPeer], settle: float = 0.3) -> dict[str, set[float]]:
    """Let a change settle, listen for WINDOW seconds, then say who heard what."""
    start = time.time() + settle
    time.sleep(settle + WINDOW + 0.1)
    return {dialed: heard(peer, start, start + WINDOW) for dialed, peer in peers.items()}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_three_phones_hear_each_other_and_the_sdk_controls_the_room(
    env: tuple[Server, AppServer, Path], client: Any
) -> None:
    server, apps, root = env
    api = Api(server)
    room = "standup 7"
    cb, action = "/conf/events", "/conf/left"
    document = (
        f'<Response><Conference callbackUrl="{apps.url(cb)}" action="{apps.url(action)}" '
        f'record="true" recordFileFormat="wav">{room}</Conference></Response>'
    )
    apps.reply("/conf/answer", document)
    app_id = api.application("conference", apps.url("/conf/answer"))
    username = api.endpoint("confer", PASSWORD, app_id)
    assert client.conferences.list().conferences == []
    peers = {dialed: RtpPeer(reply_hz=hz) for dialed, hz in TONES.items()}
    phones: dict[str, Sipp] = {}
    try:
        for dialed, peer in peers.items():
            phones[dialed] = start_sipp(
                root, f"phone-{dialed}", "phone_waits", remote=("127.0.0.1", server.sip_port),
                rows=[(username, dialed, auth(username, PASSWORD))],
                keys={"rtp_port": peer.port, "header1": "X-Test: 1", "header2": "X-Test: 2"},
            )  # fmt: skip
        for sipp in phones.values():
            sipp.wait_value("SERVER_RTP_PORT")
        wait_for(lambda: len(client.conferences.get(room).members) == 3, 10, "three members")
        conference = client.conferences.get(room)
        assert conference.conference_name == room
        assert conference.conference_member_count == "3"
        members = {m["to"]: m for m in conference.members}
        assert set(members) == set(TONES)
        assert {m["from"] for m in members.values()} == {username}
        ids = {dialed: members[dialed]["member_id"] for dialed in TONES}
        with urllib.request.urlopen(server.base_url + "/", timeout=5) as response:
            page = response.read().decode()
        assert "<h2>Live conferences (1 room, 3 members)</h2>" in page
        assert page.count(f"<td>{room}</td>") == 3

        # Everyone hears the other two and never itself.
        got = listen(peers)
        assert got == {d: {h for o, h in TONES.items() if o != d} for d in TONES}, got

        # Mute 1002: the others no longer hear it; it still hears them.
        client.conferences.member_mute(room, ids["1002"])
        muted = {m["to"]: m["muted"] for m in client.conferences.get(room).members}
        assert muted == {"1001": False, "1002": True, "1003": False}
        got = listen(peers)
        assert got == {"1001": {1300.0}, "1002": {500.0, 1300.0}, "1003": {500.0}}, got

        # Deaf 1003: it hears nothing; it is still heard.
        client.conferences.member_deaf(room, ids["1003"])
        got = listen(peers)
        assert got == {"1001": {1300.0}, "1002": {500.0, 1300.0}, "1003": set()}, got
        client.conferences.member_mute_stop(room, ids["1002"])
        client.conferences.member_deaf_stop(room, ids["1003"])

        # Stop the recording the XML started (each member's record event follows) and
        # start another over REST.
        client.conferences.record_stop(room)
        wait_for(lambda: len(records(apps, cb)) == 3, 5, "three record events")
        started = client.conferences.record(room)  # MP3, Plivo's default
        assert started.message == "conference recording started"
        assert started.url.endswith(f"/recordings/{started.recording_id}.mp3")

        # Play a tone to 1002 alone, over what it hears of the room; speak to 1003.
        apps.reply("/conf/tone.wav", wav_bytes(tone(PLAYED_HZ, 40000)))
        played = client.conferences.member_play(room, ids["1002"], apps.url("/conf/tone.wav"))
        assert played.message == "play queued into conference"
        spoken = client.conferences.member_speak(room, ids["1003"], "welcome", voice="MAN")
        assert spoken.message == "speak queued into conference"
        begin = time.time() + 0.4
        time.sleep(0.4 + WINDOW + 0.1)
        got = {d: heard(p, begin, begin + WINDOW, [*FREQS, PLAYED_HZ]) for d, p in peers.items()}
        assert got["1001"] == {800.0, 1300.0}, got
        assert got["1002"] == {500.0, 1300.0, PLAYED_HZ}, got
        client.conferences.member_play_stop(room, ids["1002"])
        client.conferences.member_speak_stop(room, ids["1003"])

        # Kick 1001: its document goes on (the action, then the end of the XML).
        client.conferences.member_kick(room, ids["1001"])
        phones["1001"].ok()
        (left,) = apps.wait_for(action)
        assert left.params["ConferenceName"] == room
        assert left.params["ConferenceMemberID"] == ids["1001"]
        assert left.params["RecordUrl"].endswith(".wav")
        assert client.conferences.get(room).conference_member_count == "2"

        # Hang the room up: the other two phones get their BYEs.
        client.conferences.hangup(room)
        phones["1002"].ok()
        phones["1003"].ok()
        wait_for(lambda: client.conferences.list().conferences == [], 5, "the room to close")
        with pytest.raises(plivo.exceptions.ResourceNotFoundError):
            client.conferences.get(room)
    finally:
        for sipp in phones.values():
            sipp.stop()
        for peer in peers.values():
            peer.close()

    events = apps.wait_for(cb, count=9)
    actions = sorted(e.params["ConferenceAction"] for e in events)
    assert actions == ["enter"] * 3 + ["exit"] * 3 + ["record"] * 3
    for dialed, member_id in ids.items():
        mine = [e.params["ConferenceAction"] for e in events
                if e.params["ConferenceMemberID"] == member_id]  # fmt: skip
        assert sorted(mine) == ["enter", "exit", "record"], dialed
    assert len({e.params["ConferenceUUID"] for e in events}) == 1
    (recording,) = {r["RecordUrl"]: r for r in records(apps, cb)}.values()
    assert recording["RecordUrl"] == left.params["RecordUrl"]
    assert int(recording["RecordingDurationMs"]) > 2000
    fetch = urllib.request.Request(recording["RecordUrl"], headers=api.headers)  # Basic auth
    with urllib.request.urlopen(fetch, timeout=5) as response:
        recorded = response.read()
    with wave.open(io.BytesIO(recorded)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert tones_heard(samples, FREQS) == set(FREQS)
    # Both recordings are filed as the room's (the REST one, MP3 by default, ended with it).
    filed = client.recordings.list(conference_name=room)
    assert sorted(r.recording_format for r in filed) == ["mp3", "wav"]
    assert {r.recording_type for r in filed} == {"conference"}
    assert {r.conference_uuid for r in filed} == {recording["ConferenceUUID"]}
    assert started.recording_id in {r.recording_id for r in filed}


def test_sdk_errors_name_the_field_or_the_missing_room(
    env: tuple[Server, AppServer, Path], client: Any
) -> None:
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.conferences.get("nobody-here")
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.conferences.member_mute("nobody-here", "1")
    with pytest.raises(plivo.exceptions.ValidationError) as caught:
        client.conferences.member_mute("nobody-here", "one")
    assert str(caught.value).startswith("member_id: ")
    with pytest.raises(plivo.exceptions.ValidationError) as caught:
        client.conferences.record("nobody-here", file_format="ogg")
    assert str(caught.value).startswith("file_format: ")
    client.conferences.hangup_all()  # nothing to hang up: still fine


def test_a_member_waits_with_music_until_the_host_who_ends_the_room_on_leaving(
    env: tuple[Server, AppServer, Path], client: Any
) -> None:
    """startConferenceOnEnter, a waitSound document fetched over HTTP and looped,
    endConferenceOnExit: the waiting member's call ends with the room."""
    server, apps, root = env
    api = Api(server)
    room = "moderated"
    apps.reply("/mod/music.wav", wav_bytes(tone(MUSIC_HZ, 4000)))
    apps.reply("/mod/wait", f"<Response><Play>{apps.url('/mod/music.wav')}</Play></Response>")
    documents = {
        "2001": f'<Conference startConferenceOnEnter="false" waitSound="{apps.url("/mod/wait")}" '
        f'callbackUrl="{apps.url("/mod/events")}">{room}</Conference>',
        "2002": f'<Conference endConferenceOnExit="true">{room}</Conference>',
    }
    apps.reply("/mod/answer", lambda r: f"<Response>{documents[r.params['To']]}</Response>")
    username = api.endpoint("host", PASSWORD, api.application("mod", apps.url("/mod/answer")))
    waiter, host = RtpPeer(reply_hz=500.0), RtpPeer(reply_hz=800.0)
    phones: list[Sipp] = []
    try:
        phones.append(start_sipp(
            root, "waiter", "phone_waits", remote=("127.0.0.1", server.sip_port),
            rows=[(username, "2001", auth(username, PASSWORD))],
            keys={"rtp_port": waiter.port, "header1": "X-Test: 1", "header2": "X-Test: 2"},
        ))  # fmt: skip
        apps.wait_for("/mod/events")  # entered, held, the music loading
        got = listen({"2001": waiter}, settle=0.5)
        assert got == {"2001": set()}  # nobody to hear...
        frames = [s for _, s in waiter.audio_frames(time.time() - WINDOW)]
        assert tones_heard(np.concatenate(frames), [MUSIC_HZ]) == {MUSIC_HZ}  # ...but music
        phones.append(start_sipp(
            root, "host", "phone_hangs_up", remote=("127.0.0.1", server.sip_port),
            rows=[(username, "2002", auth(username, PASSWORD))],
            keys={"rtp_port": host.port, "header1": "X-Test: 1", "header2": "X-Test: 2"},
            extra=["-set", "hold", "2500"],
        ))  # fmt: skip
        phones[1].wait_value("SERVER_RTP_PORT")
        begin = time.time() + 0.4
        time.sleep(0.4 + WINDOW + 0.1)
        assert heard(waiter, begin, begin + WINDOW, [*FREQS, MUSIC_HZ]) == {800.0}
        phones[1].ok()  # the host hangs up...
        phones[0].ok()  # ...which ends the room, and the waiter's document with it
    finally:
        for sipp in phones:
            sipp.stop()
        waiter.close()
        host.close()
    actions = [e.params["ConferenceAction"] for e in apps.wait_for("/mod/events", count=2)]
    assert actions == ["enter", "exit"]
    assert client.conferences.list().conferences == []
