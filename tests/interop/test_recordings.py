"""Recordings of real calls, checked by what is in them, through the real ``plivo`` SDK.

The server is the real ``twistd -n telephony``; the far ends are ``sipp`` as the
gateway (``gateway_answer_rtp.xml``) with the test's own RTP sockets
(:class:`~tests.interop.rtppeer.RtpPeer`), each answering with its own tone.  The
prompts are real MP3 files made here with soundfile (LAME).  Recorded files are
fetched with the REST credentials and decoded: each channel must hold the right
tone, for the right time.
"""

from __future__ import annotations

import base64
import io
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import plivo
import plivo.exceptions
import pytest
import soundfile

from tests.interop.restcalls_helpers import (
    FAR_END_HOST,
    AnswerServer,
    Sipp,
    dominant_frequency,
    rms,
    wait_until,
)
from tests.interop.rtppeer import RtpPeer
from tests.serverproc import Server, plivo_client, running_server
from tests.sipp import free_udp_port

pytestmark = pytest.mark.interop

CALLER = "18004321321"
CALLEE = "18001231234"
OTHER = "18005550199"


def mp3_tone(hz: float, seconds: float) -> bytes:
    """A 44.1 kHz stereo MP3 of a tone, as prompts usually come."""
    t = np.arange(int(seconds * 44100)) / 44100
    mono = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    out = io.BytesIO()
    soundfile.write(out, np.stack([mono, mono], axis=1), 44100, format="MP3")
    return out.getvalue()


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_udp_port(FAR_END_HOST)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[Server]:
    args = ["--gateway", f"sip:{FAR_END_HOST}:{gateway_port}"]
    with running_server(tmp_path_factory.mktemp("recordings") / "var", args) as s:
        yield s


@pytest.fixture(scope="module")
def answers() -> Iterator[AnswerServer]:
    http = AnswerServer()
    yield http
    http.close()


@pytest.fixture
def client(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[plivo.RestClient]:
    sdk: plivo.RestClient = plivo_client(server, monkeypatch)
    with sdk:
        yield sdk


def fetch(server: Server, url: str, auth: bool = True) -> tuple[int, bytes, str]:
    """GET a recording URL, with the REST credentials or none."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(":".join(server.credentials()).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def tone_seconds(samples: npt.NDArray[np.int16], hz: float) -> float:
    """Seconds of 20 ms frames whose loud, dominant frequency is ``hz``."""
    frames = [samples[i : i + 160] for i in range(0, len(samples) - 159, 160)]
    return 0.02 * sum(1 for f in frames if rms(f) > 1000 and abs(dominant_frequency(f) - hz) <= 50)


def decode(data: bytes) -> npt.NDArray[np.int16]:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    assert rate == 8000
    return samples


def test_record_session_mp3_both_directions_and_the_recording_api(
    server: Server, client: plivo.RestClient, answers: AnswerServer, tmp_path: Path,
    gateway_port: int,
) -> None:  # fmt: skip
    answers.documents["/s/prompt.mp3"] = ("audio/mpeg", mp3_tone(1000, 1.5))
    answer_url = answers.xml(
        "/s/answer",
        f'<Response><Record recordSession="true" fileFormat="mp3" recordChannelType="stereo"'
        f' callbackUrl="{answers.url("/s/recorded")}"/>'
        f'<Play>{answers.url("/s/prompt.mp3")}</Play><Wait length="1"/><Hangup/></Response>',
    )
    caller = RtpPeer(FAR_END_HOST, reply_hz=440.0)  # the called party talks: 440 Hz
    sipp = Sipp(
        "gateway_answer_rtp", port=gateway_port, workdir=tmp_path, csv_lines=[caller.address]
    )
    try:
        created = client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        call_uuid = answers.wait_fetched("/s/answer")[0].params["CallUUID"]
        assert created.request_uuid
        sipp.wait_logged("BYE CALL-ID", timeout=15)
        assert sipp.finish() == 0, sipp.report()
        heard = np.concatenate([s for _, s in caller.audio_frames()])
    finally:
        sipp.stop()
        caller.close()
    # The MP3 prompt played: the far end heard 1.5 s of 1 kHz.
    assert tone_seconds(heard, 1000) == pytest.approx(1.5, abs=0.1)

    (told,) = answers.wait_fetched("/s/recorded")
    params = told.params
    assert params["CallUUID"] == call_uuid
    assert params["RecordUrl"].endswith(f"/recordings/{params['RecordingID']}.mp3")
    duration_ms = int(params["RecordingDurationMs"])
    assert int(params["RecordingEndMs"]) - int(params["RecordingStartMs"]) == duration_ms
    assert duration_ms == pytest.approx(2500, abs=400)  # the prompt and the Wait
    assert params["RecordingDuration"] == str(round(duration_ms / 1000))

    status, body, content_type = fetch(server, params["RecordUrl"], auth=False)
    assert status == 401
    status, body, content_type = fetch(server, params["RecordUrl"])
    assert (status, content_type) == (200, "audio/mpeg")
    samples = decode(body)
    assert samples.shape[1] == 2
    assert len(samples) / 8000 == pytest.approx(duration_ms / 1000, abs=0.1)
    # Left: the call's party (its 440 Hz, all along); right: what it heard (the prompt).
    assert tone_seconds(samples[:, 0], 440) >= duration_ms / 1000 - 0.5
    assert tone_seconds(samples[:, 1], 1000) == pytest.approx(1.5, abs=0.15)
    assert tone_seconds(samples[:, 1], 440) == 0

    # The Recording API, through the SDK.
    listed = client.recordings.list(call_uuid=call_uuid)
    assert [r.recording_id for r in listed] == [params["RecordingID"]]
    recording = client.recordings.get(params["RecordingID"])
    assert recording.recording_format == "mp3"
    assert recording.recording_url == params["RecordUrl"]
    assert recording.recording_duration_ms == f"{duration_ms}.00000"
    assert recording.call_uuid == call_uuid
    assert client.recordings.list(add_time__gt="2000-01-01 00:00", limit=1).meta["total_count"] >= 1
    with pytest.raises(plivo.exceptions.ValidationError, match="add_time__gt: a UTC time"):
        client.recordings.list(add_time__gt="yesterday")
    client.recordings.delete(params["RecordingID"])
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.recordings.get(params["RecordingID"])
    assert fetch(server, params["RecordUrl"])[0] == 404


def test_start_on_dial_answer_records_both_parties_until_the_call_ends(
    server: Server, client: plivo.RestClient, answers: AnswerServer, tmp_path: Path,
    gateway_port: int,
) -> None:  # fmt: skip
    answer_url = answers.xml(
        "/d/answer",
        f'<Response><Record startOnDialAnswer="true" fileFormat="wav" recordChannelType="stereo"'
        f' callbackUrl="{answers.url("/d/recorded")}"/>'
        f"<Dial><Number>{OTHER}</Number></Dial></Response>",
    )
    a_party = RtpPeer(FAR_END_HOST, reply_hz=440.0)
    b_party = RtpPeer(FAR_END_HOST, reply_hz=700.0)
    sipp = Sipp(
        "gateway_answer_rtp", port=gateway_port, workdir=tmp_path, calls=2,
        csv_lines=[a_party.address, b_party.address],
    )  # fmt: skip
    try:
        client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        call_uuid = answers.wait_fetched("/d/answer")[0].params["CallUUID"]
        sipp.wait_logged(f"CALLED {OTHER}", timeout=10)
        wait_until(lambda: b_party.remote is not None, 5, "RTP to the dialed party")
        time.sleep(2.0)  # two seconds of conversation
        client.calls.delete(call_uuid)  # the caller's side ends the call
        sipp.wait_logged("BYE CALL-ID", count=2, timeout=10)
        assert sipp.finish() == 0, sipp.report()
    finally:
        sipp.stop()
        a_party.close()
        b_party.close()
    (told,) = answers.wait_fetched("/d/recorded", timeout=10)
    params = told.params
    assert params["RecordUrl"].endswith(".wav")
    status, body, content_type = fetch(server, params["RecordUrl"])
    assert (status, content_type) == (200, "audio/wav")
    samples = decode(body)
    seconds = len(samples) / 8000
    assert seconds == pytest.approx(int(params["RecordingDurationMs"]) / 1000, abs=0.05)
    assert 1.7 <= seconds <= 3.5
    # Left: the caller (440 Hz); right: the dialed party as the caller heard it (700 Hz).
    assert tone_seconds(samples[:, 0], 440) >= seconds - 0.5
    assert tone_seconds(samples[:, 1], 700) >= seconds - 0.5
    assert tone_seconds(samples[:, 0], 700) == 0
    assert client.recordings.get(params["RecordingID"]).call_uuid == call_uuid
