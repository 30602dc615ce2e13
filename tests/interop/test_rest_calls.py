"""REST call control with the real ``plivo`` SDK against a real ``twistd -n telephony``.

The far end is ``sipp`` acting as the SIP gateway on 127.0.0.2 (it logs the
Request-URI and From user of each INVITE, and the BYE or CANCEL it gets).  Its media
is not sipp's: ``gateway_answer_rtp.xml`` answers with an SDP naming the test's own
UDP socket (:class:`~tests.interop.restcalls_helpers.RtpPeer`, via sipp's ``-inf`` CSV
fields), so the test decodes exactly what the server sent the far end: a played
tone's frequency, speech energy, and RFC 4733 events with their timing.  That socket
sends a 440 Hz tone back, which is what a recording must contain.

One server serves the whole module (a start costs about a second); every test
creates its own calls and checks only those.
"""

from __future__ import annotations

import base64
import io
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import plivo
import plivo.exceptions
import plivo.rest.client
import pytest

from tests.interop.restcalls_helpers import (
    FAR_END_HOST,
    AnswerServer,
    cdr,
    dominant_frequency,
    far_end,
    rms,
    wait_until,
)
from tests.interop.rtppeer import RtpPeer, tone
from tests.serverproc import Server, plivo_client, running_server
from tests.sipp import free_udp_port

pytestmark = pytest.mark.interop

CALLER = "18004321321"
CALLEE = "18001231234"
WAIT = '<Response><Wait length="30"/></Response>'


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_udp_port(FAR_END_HOST)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[Server]:
    # sipp offers only MD5 digests (it never challenges us here, but the option is
    # the one a sipp setup needs).
    args = ["--gateway", f"sip:{FAR_END_HOST}:{gateway_port}", "--digest-algorithms", "MD5,SHA-256"]
    with running_server(tmp_path_factory.mktemp("restcalls") / "var", args) as s:
        yield s


@pytest.fixture(scope="module")
def answers() -> Iterator[AnswerServer]:
    http = AnswerServer()
    yield http
    http.close()


@pytest.fixture
def client(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[plivo.RestClient]:
    sdk: plivo.RestClient = plivo_client(server, monkeypatch)
    with sdk:  # closes its HTTP sessions
        yield sdk


def live_ids(client: plivo.RestClient) -> list[str]:
    return list(client.live_calls.list_ids().calls)


def call_uuid_of(answers: AnswerServer, path: str, request_uuid: str) -> str:
    """The CallUUID the answer_url fetch at *path* for *request_uuid* carried."""
    fetch = next(f for f in answers.wait_fetched(path) if f.params["RequestUUID"] == request_uuid)
    return fetch.params["CallUUID"]


def tone_frames(peer: RtpPeer, since: float, hz: float) -> int:
    """20 ms packets since *since* whose strongest frequency is *hz* (loud ones)."""
    return sum(
        1
        for _, samples in peer.audio_frames(since)
        if rms(samples) > 1000 and abs(dominant_frequency(samples) - hz) <= 50
    )


def test_create_live_media_hangup_and_cdr(
    client: plivo.RestClient, answers: AnswerServer, gateway_port: int, tmp_path: Path
) -> None:
    answer_url = answers.xml("/main/answer", WAIT)
    hangup_url = answers.url("/main/hangup")
    tone_url = answers.wav("/main/tone.wav", tone(1000, 1.0))
    with far_end("gateway_answer_rtp", port=gateway_port, workdir=tmp_path) as (sipp, peer):
        assert peer is not None
        created = client.calls.create(
            from_=CALLER, to_=CALLEE, answer_url=answer_url, hangup_url=hangup_url
        )
        assert created.message == "call fired"
        request_uuid = created.request_uuid
        assert isinstance(request_uuid, str)

        # The INVITE reached the gateway for the number, from the caller ID.
        call_uuid = call_uuid_of(answers, "/main/answer", request_uuid)
        assert sipp.called() == [(CALLEE, CALLER)]
        fetch = answers.fetched("/main/answer")[0]
        assert fetch.method == "POST"
        assert fetch.params["From"] == CALLER
        assert fetch.params["To"] == CALLEE
        assert fetch.params["Direction"] == "outbound"
        assert fetch.params["CallStatus"] == "in-progress"

        # Live calls.
        assert call_uuid in live_ids(client)
        live = client.live_calls.get(call_uuid)
        assert live.call_uuid == call_uuid
        assert live.call_status == "in-progress"
        assert live.direction == "outbound"
        assert (live.__dict__["from"], live.to) == (CALLER, CALLEE)
        assert live.request_uuid == request_uuid
        assert live.answer_time

        wait_until(lambda: peer.remote is not None, 5, "RTP from the server")

        # Play: the far end hears the 1 kHz tone, about a second of it.
        started = time.time()
        played = client.calls.play(call_uuid, urls=tone_url)
        assert played.message == "play started"
        wait_until(lambda: tone_frames(peer, started, 1000) >= 40, 5, "the played tone")
        wait_until(
            lambda: all(rms(s) < 100 for _, s in peer.audio_frames(time.time() - 0.2)),
            5,
            "the end of the tone",
        )
        assert tone_frames(peer, started, 1000) <= 55

        # Speak: speech (loud, not a 1 kHz tone) reaches the far end.
        started = time.time()
        spoken = client.calls.speak(call_uuid, text="Hello from the REST API")
        assert spoken.message == "speak started"

        def speech() -> int:
            frames = peer.audio_frames(started)
            return sum(1 for _, s in frames if rms(s) > 300)

        wait_until(lambda: speech() >= 25, 10, "speech at the far end")
        assert tone_frames(peer, started, 1000) < 5
        client.calls.speak_stop(call_uuid)

        # DTMF as RFC 4733 events: 1, 2, then 3 half a second (w) later.
        started = time.time()
        sent = client.calls.send_digits(call_uuid, digits="12w3")
        assert sent.message == "digits sent"
        wait_until(lambda: sum(d.ended for d in peer.digits(started)) >= 3, 5, "three DTMF events")
        time.sleep(0.1)  # the end packets' two repeats
        digits = peer.digits(started)
        assert [d.digit for d in digits] == ["1", "2", "3"], digits
        assert all(d.ended and d.duration >= 800 for d in digits), digits
        one, two, three = digits
        # Each digit 100 ms plus a 100 ms gap; ``w`` adds 0.5 s (RTP timestamps, 8 kHz).
        assert (two.timestamp - one.timestamp) / 8000 == pytest.approx(0.2, abs=0.021)
        assert (three.timestamp - two.timestamp) / 8000 == pytest.approx(0.7, abs=0.021)
        # Arrival times agree, roughly (a busy machine delays packets, not timestamps).
        assert three.first_at - two.first_at == pytest.approx(0.7, abs=0.25)

        # Record what the far end sends (its 440 Hz tone), stop early, fetch the WAV.
        recording = client.calls.record(
            call_uuid, time_limit=10, file_format="wav", record_channel_type="mono"
        )
        assert recording.message == "call recording started"
        assert recording.url.endswith(f"/recordings/{recording.recording_id}.wav")
        time.sleep(1.5)
        client.calls.record_stop(call_uuid)
        wav = fetch_when_ready(recording.url, client)
        with wave.open(io.BytesIO(wav)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 8000)
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            seconds = w.getnframes() / w.getframerate()
        assert 1.0 <= seconds <= 3.0
        middle = samples[len(samples) // 4 : len(samples) // 4 + 4000]
        assert dominant_frequency(middle) == pytest.approx(440, abs=10)

        # Hang up: the far end gets the BYE.
        client.calls.delete(call_uuid)  # 204, no body
        sipp.wait_logged("BYE CALL-ID")
        assert sipp.finish() == 0, sipp.report()

    # No longer live.
    assert call_uuid not in live_ids(client)
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.live_calls.get(call_uuid)

    # The CDR, by UUID and in lists.
    record = cdr(client, call_uuid)
    assert record.call_uuid == call_uuid
    assert record.request_uuid == request_uuid
    assert record.call_direction == "outbound"
    assert (record.from_number, record.to_number) == (CALLER, CALLEE)
    assert record.call_status == "completed"
    assert record.hangup_source == "API"
    assert record.hangup_cause_name == "API Request"
    assert record.answer_time
    assert record.end_time
    assert record.initiation_time
    assert record.bill_duration >= 4
    assert record.call_duration >= record.bill_duration
    assert record.resource_uri.endswith(f"/Call/{call_uuid}/")

    listed = client.calls.list(call_direction="outbound", from_number=CALLER, limit=20)
    assert call_uuid in [c.call_uuid for c in listed]
    assert listed.meta.total_count >= 1
    assert client.calls.list(to_number="19999999999").meta.total_count == 0

    hangup = answers.wait_fetched("/main/hangup")[0]
    assert hangup.params["CallUUID"] == call_uuid
    assert hangup.params["HangupCause"] == "API Request"


def fetch_when_ready(url: str, client: plivo.RestClient, timeout: float = 10.0) -> bytes:
    """GET a recording, with the REST credentials, once it is there (it is moved into
    place when it stops)."""
    body: list[bytes] = []
    request = urllib.request.Request(url)
    auth = f"{client.session.auth[0]}:{client.session.auth[1]}"
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())

    def ready() -> bool:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                assert response.headers["Content-Type"] in ("audio/wav", "audio/x-wav")
                body.append(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    wait_until(ready, timeout, f"the recording at {url}")
    assert body[-1][:4] == b"RIFF"
    assert body[-1][8:12] == b"WAVE"
    return body[-1]


def test_transfer_fetches_and_runs_the_new_document(
    client: plivo.RestClient, answers: AnswerServer, gateway_port: int, tmp_path: Path
) -> None:
    answer_url = answers.xml("/transfer/answer", WAIT)
    new_url = answers.xml(
        "/transfer/next", "<Response><Speak>You were transferred</Speak><Hangup/></Response>"
    )
    with far_end("gateway_answer_rtp", port=gateway_port, workdir=tmp_path) as (sipp, peer):
        assert peer is not None
        created = client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        call_uuid = call_uuid_of(answers, "/transfer/answer", created.request_uuid)
        wait_until(lambda: peer.remote is not None, 5, "RTP from the server")
        time.sleep(0.3)
        assert not [s for _, s in peer.audio_frames() if rms(s) > 300], "silence before"

        started = time.time()
        moved = client.calls.transfer(call_uuid, legs="aleg", aleg_url=new_url, aleg_method="GET")
        assert moved.message == "call transferred"

        fetch = answers.wait_fetched("/transfer/next")[0]
        assert fetch.method == "GET"
        assert fetch.params["CallUUID"] == call_uuid
        # The new document speaks, then hangs up: speech, then the BYE.
        sipp.wait_logged("BYE CALL-ID", timeout=15)
        assert sipp.finish() == 0, sipp.report()
        assert sum(1 for _, s in peer.audio_frames(started) if rms(s) > 300) >= 20

    record = cdr(client, call_uuid)
    assert record.call_status == "completed"
    assert record.hangup_source == "Plivo"


def test_cancel_a_ringing_call(
    client: plivo.RestClient, answers: AnswerServer, gateway_port: int, tmp_path: Path
) -> None:
    answer_url = answers.xml("/cancel/answer", WAIT)
    with far_end("gateway_ring_cancel", port=gateway_port, workdir=tmp_path, media=False) as (
        sipp,
        _,
    ):
        created = client.calls.create(
            from_=CALLER, to_=CALLEE, answer_url=answer_url, ring_url=answers.url("/cancel/ring")
        )
        request_uuid = created.request_uuid
        sipp.wait_logged("CALLED")
        assert sipp.called() == [(CALLEE, CALLER)]

        # Ringing calls are live, with status ringing.
        def ringing() -> list[Any]:
            calls = [client.live_calls.get(u) for u in live_ids(client)]
            return [c for c in calls if c.request_uuid == request_uuid]

        wait_until(lambda: [c.call_status for c in ringing()] == ["ringing"], 5, "ringing")
        call_uuid = ringing()[0].call_uuid
        rang = answers.wait_fetched("/cancel/ring")
        assert [(f.params["CallUUID"], f.params["CallStatus"]) for f in rang] == [
            (call_uuid, "ringing")
        ]

        client.calls.cancel(request_uuid)
        sipp.wait_logged("CANCEL CALL-ID")
        assert sipp.finish() == 0, sipp.report()

    record = cdr(client, call_uuid)
    assert record.call_status == "cancel"
    assert record.hangup_cause_name == "Cancelled"
    assert record.hangup_source == "API"
    assert record.answer_time is None
    assert record.bill_duration == 0
    # The answer_url never ran: it got only the hangup notification, as hangup_url
    # defaults to answer_url (Plivo's behaviour).
    fetched = answers.wait_fetched("/cancel/answer")  # the notification is sent after the CDR
    assert [f.params.get("HangupCause") for f in fetched] == ["Cancelled"]
    # Over: cancelling again finds nothing.
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.calls.cancel(request_uuid)


def test_call_to_an_application_sip_uri_runs_both_documents(
    client: plivo.RestClient, answers: AnswerServer
) -> None:
    app_url = answers.xml(
        "/app/answer",
        '<Response><Speak>This is the application</Speak><Wait length="10"/></Response>',
    )
    caller_url = answers.xml("/app/caller", '<Response><Wait length="2"/><Hangup/></Response>')
    app = client.applications.create(app_name="sip_uri_app", answer_url=app_url)
    sip_uri = client.applications.get(app.app_id).sip_uri
    assert sip_uri.startswith(f"sip:app-{app.app_id}@")

    created = client.calls.create(from_=CALLER, to_=sip_uri, answer_url=caller_url)
    outbound_uuid = call_uuid_of(answers, "/app/caller", created.request_uuid)
    inbound = answers.wait_fetched("/app/answer")[0]
    assert inbound.params["Direction"] == "inbound"
    assert inbound.params["From"] == CALLER
    assert inbound.params["To"] == sip_uri
    inbound_uuid = inbound.params["CallUUID"]
    assert inbound_uuid != outbound_uuid
    assert {outbound_uuid, inbound_uuid} <= set(live_ids(client))

    # The caller's document hangs up after 2 s; both sides end.
    wait_until(
        lambda: not {outbound_uuid, inbound_uuid} & set(live_ids(client)), 10, "both calls to end"
    )
    out_record = cdr(client, outbound_uuid)
    assert out_record.call_direction == "outbound"
    assert out_record.to_number == sip_uri
    assert out_record.call_status == "completed"
    in_record = cdr(client, inbound_uuid)
    assert in_record.call_direction == "inbound"
    assert in_record.to_number == sip_uri
    client.applications.delete(app.app_id)


def test_bulk_destinations_make_one_call_each(
    client: plivo.RestClient, answers: AnswerServer, gateway_port: int, tmp_path: Path
) -> None:
    answer_url = answers.xml("/bulk/answer", '<Response><Wait length="1"/><Hangup/></Response>')
    numbers = ["18001230001", "18001230002", "18001230003"]
    with far_end("gateway_answer_rtp", port=gateway_port, workdir=tmp_path, calls=3) as (sipp, _):
        created = client.calls.create(from_=CALLER, to_="<".join(numbers), answer_url=answer_url)
        assert created.message == "calls fired"
        request_uuids = created.request_uuid
        assert isinstance(request_uuids, list)
        assert len(set(request_uuids)) == 3
        assert sipp.finish() == 0, sipp.report()
        assert sorted(sipp.called()) == [(n, CALLER) for n in numbers]
        assert sipp.log().count("BYE CALL-ID") == 3
    fetched = {f.params["RequestUUID"]: f.params["To"] for f in answers.fetched("/bulk/answer")}
    assert fetched == dict(zip(request_uuids, numbers, strict=True))


#: Every action on a call, each on a call UUID nothing has.
NOT_LIVE: dict[str, Callable[[plivo.RestClient, str], object]] = {
    "live-get": lambda c, u: c.live_calls.get(u),
    "cdr-get": lambda c, u: c.calls.get(u),
    "hangup": lambda c, u: c.calls.delete(u),
    "transfer": lambda c, u: c.calls.transfer(u, legs="aleg", aleg_url="http://127.0.0.1:9/x"),
    "play": lambda c, u: c.calls.play(u, urls="http://127.0.0.1:9/a.wav"),
    "play-stop": lambda c, u: c.calls.play_stop(u),
    "speak": lambda c, u: c.calls.speak(u, text="hello"),
    "speak-stop": lambda c, u: c.calls.speak_stop(u),
    "dtmf": lambda c, u: c.calls.send_digits(u, digits="123"),
    "record": lambda c, u: c.calls.record(u),
    "record-stop": lambda c, u: c.calls.record_stop(u),
    "cancel": lambda c, u: c.calls.cancel(u),
}


@pytest.mark.parametrize("act", list(NOT_LIVE.values()), ids=list(NOT_LIVE))
def test_a_call_that_is_not_live_is_404(client: plivo.RestClient, act: Any) -> None:
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        act(client, "6e9bbd5c-5c9e-4c3c-9bd8-1d0b5f0f7a11")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to_": "not a number!"}, "to"),
        ({"to_": "<".join(f"1800123{i:04}" for i in range(11))}, "to"),
        ({"answer_method": "FETCH"}, "answer_method"),
        ({"send_digits": "12x"}, "send_digits"),
        ({"time_limit": -1}, "time_limit"),
        ({"ring_timeout": 0}, "ring_timeout"),
        ({"sip_headers": "no-equals-sign"}, "sip_headers"),
        ({"caller_name": "<evil>"}, "caller_name"),
        ({"machine_detection": "true"}, "machine_detection"),
        ({"to_": "sip:nobody@127.0.0.1"}, "to"),
        # Our SIP socket is IPv4: an IPv6 literal cannot be reached (this was a 500).
        # Host names are located (RFC 3263), tested in test_trunks with our own DNS.
        ({"to_": "sip:someone@[::1]:5060"}, "to"),
    ],
)
def test_bad_call_fields_answer_400_naming_the_field(
    client: plivo.RestClient, answers: AnswerServer, kwargs: dict[str, Any], field: str
) -> None:
    params = {"from_": CALLER, "to_": CALLEE, "answer_url": answers.url("/never"), **kwargs}
    with pytest.raises(plivo.exceptions.ValidationError) as excinfo:
        client.calls.create(**params)
    assert str(excinfo.value).startswith(f"{field}: "), str(excinfo.value)
    assert answers.fetched("/never") == []


@pytest.mark.parametrize(
    ("act", "field"),
    [
        (lambda c, u: c.calls.send_digits(u, digits="12x"), "digits"),
        (lambda c, u: c.calls.speak(u, text="hi", voice="ROBOT"), "voice"),
        (lambda c, u: c.calls.play(u, urls="ftp://example.test/a.wav"), "urls"),
        (lambda c, u: c.calls.record(u, file_format="ogg"), "file_format"),
    ],
)
def test_bad_action_fields_answer_400_naming_the_field(
    client: plivo.RestClient, act: Any, field: str
) -> None:
    with pytest.raises(plivo.exceptions.ValidationError) as excinfo:
        act(client, "6e9bbd5c-5c9e-4c3c-9bd8-1d0b5f0f7a11")
    assert str(excinfo.value).startswith(f"{field}: "), str(excinfo.value)
