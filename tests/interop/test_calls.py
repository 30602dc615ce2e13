"""Calls through the real server (issue 6): sipp phones, devices and gateway, a real
answer_url server, Python sockets for the media.

One ``twistd -n telephony`` serves the whole module (starting it takes a second or
two): ``--gateway sip:127.0.0.2:PORT`` so that the gateway has its own loopback
address, ``--digest-algorithms MD5`` because sipp only answers MD5 challenges,
``--min-se 4`` so that a session can expire within the test.  Each test creates
its own applications and endpoints (usernames are unique) and its answer_url paths
are its own.  The gateway's SIP port is shared, so the tests run one after another;
inside a test, independent peers run at once.

See :mod:`tests.interop.callpeers` for why media is played by Python sockets.
"""

from __future__ import annotations

import itertools
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.appserver import AppServer, app_server
from tests.serverproc import Server, running_server
from tests.sipp import free_udp_port

from .callpeers import GATEWAY_IP, Api, Sipp, auth, register, start_sipp
from .rtppeer import PCMA_SILENCE, PCMU_SILENCE, RtpPeer, digits_on_wire

pytestmark = pytest.mark.interop

NUMBER = "18001231234"
CALLER_ID = "18004321321"
PASSWORD = "s3cret-pw"
#: 20 ms packets of audio each side sends during a call (2 s).
PACKETS = 100

_names = itertools.count(1)


@attrs.define
class Env:
    """The module's server, its answer_url server, REST client and gateway port."""

    server: Server
    apps: AppServer
    api: Api
    gateway_port: int
    root: Path
    running: list[Sipp] = attrs.Factory(list)

    def sipp(self, work: Path, name: str, scenario: str, **kwargs: Any) -> Sipp:
        """:func:`start_sipp`, remembered so that a failed test leaves none running."""
        sipp = start_sipp(work, name, scenario, **kwargs)
        self.running.append(sipp)
        return sipp

    def workdir(self, name: str) -> Path:
        path = self.root / f"{next(_names):02d}-{name}"
        path.mkdir()
        return path

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.sip_port)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("calls")
    gateway_port = free_udp_port(GATEWAY_IP)
    args = [
        "--gateway", f"sip:{GATEWAY_IP}:{gateway_port}",
        "--digest-algorithms", "MD5",
        "--min-se", "4",
    ]  # fmt: skip
    with app_server() as apps, running_server(root / "var", args) as server:
        yield Env(server, apps, Api(server), gateway_port, root)


@pytest.fixture(autouse=True)
def _stop_peers(env: Env) -> Iterator[None]:
    yield
    while env.running:
        env.running.pop().stop()


def dial_number_xml(number: str = NUMBER, caller_id: str = CALLER_ID, **attributes: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attributes.items())
    return (
        f'<Response><Dial callerId="{caller_id}"{extra}><Number>{number}</Number></Dial></Response>'
    )


@attrs.define
class Phone:
    """An endpoint and the sipp port its phone registered from."""

    username: str
    port: int

    def call(
        self,
        env: Env,
        work: Path,
        scenario: str,
        called: str,
        *,
        rtp_port: int = 9,
        headers: tuple[str, ...] = (),
        hold: int | None = None,
        name: str = "phone",
    ) -> Sipp:
        """Its sipp calls *called* with ``scenarios/<scenario>.xml``.

        :param headers: up to two extra header lines for the INVITEs (sipp keys, as
            an injection file's fields cannot hold a ``;``).
        :param hold: milliseconds, for the scenarios that hang up or wait (``hold``).
        """
        extra = (*headers, "X-Test: 1", "X-Test: 2")[:2]
        return env.sipp(
            work,
            name,
            scenario,
            remote=env.sip,
            port=self.port,
            rows=[(self.username, called, auth(self.username, PASSWORD))],
            keys={"rtp_port": rtp_port, "header1": extra[0], "header2": extra[1]},
            extra=["-set", "hold", str(hold)] if hold is not None else [],
        )


def new_phone(env: Env, work: Path, name: str, app_id: str | None) -> Phone:
    """An endpoint (with *app_id*) whose sipp phone has registered."""
    username = env.api.endpoint(name, PASSWORD, app_id)
    port = free_udp_port()
    register(work, f"register-{name}", env.server, username, PASSWORD, port)
    return Phone(username, port)


def new_app(env: Env, name: str, document: str, **fields: str) -> tuple[str, str]:
    """An application whose answer_url (``/<name>/answer``) returns *document*;
    its hangup_url is ``/<name>/hangup``.  Returns (app_id, path prefix)."""
    prefix = f"/{name}-{next(_names)}"
    env.apps.reply(f"{prefix}/answer", document)
    app_id = env.api.application(
        name,
        env.apps.url(f"{prefix}/answer"),
        hangup_url=env.apps.url(f"{prefix}/hangup"),
        **fields,
    )
    return app_id, prefix


def rtp_both_ways(a: Sipp, a_media: RtpPeer, b: Sipp, b_media: RtpPeer) -> None:
    """Once both peers logged the server's RTP ports, send PACKETS each way."""
    a_port = int(a.wait_value("SERVER_RTP_PORT"))
    b_port = int(b.wait_value("SERVER_RTP_PORT"))
    a_media.send_audio(("127.0.0.1", a_port), PACKETS)
    b_media.send_audio(("127.0.0.1", b_port), PACKETS)


def assert_audio_crossed(a_media: RtpPeer, b_media: RtpPeer) -> None:
    """Each side got (nearly) every packet the other sent; loopback loses none, the
    bridge may drop the first one or two sent before it latched."""
    assert a_media.sent == PACKETS
    assert b_media.sent == PACKETS
    got_a = len(a_media.audio())
    got_b = len(b_media.audio())
    assert got_a >= PACKETS - 3, f"phone side got {got_a} of {PACKETS}"
    assert got_b >= PACKETS - 3, f"gateway side got {got_b} of {PACKETS}"


def sipp_time(sipp: Sipp, key: str) -> float:
    return float(sipp.wait_value(f"{key}_S")) + float(sipp.wait_value(f"{key}_US")) / 1e6


# -- 1. endpoint dials a number ------------------------------------------------------


@pytest.mark.parametrize("who_hangs_up", ["phone", "gateway"])
def test_endpoint_dials_number_audio_both_ways(env: Env, who_hangs_up: str) -> None:
    work = env.workdir(f"dial-number-{who_hangs_up}")
    app_id, prefix = new_app(env, "dialnumber", dial_number_xml())
    phone = new_phone(env, work, "alice", app_id)
    phone_media, gw_media = RtpPeer(), RtpPeer(GATEWAY_IP)
    hold = 3000
    try:
        gateway = env.sipp(
            work,
            "gateway",
            "far_hangs_up" if who_hangs_up == "gateway" else "far_answers",
            local_ip=GATEWAY_IP,
            port=env.gateway_port,
            keys={"rtp_port": gw_media.port, "codec": 8},
            extra=["-set", "hold", str(hold)] if who_hangs_up == "gateway" else [],
        )
        started = time.time()
        caller = phone.call(
            env,
            work,
            "phone_hangs_up" if who_hangs_up == "phone" else "phone_waits",
            NUMBER,
            rtp_port=phone_media.port,
            hold=hold if who_hangs_up == "phone" else None,
        )
        rtp_both_ways(caller, phone_media, gateway, gw_media)
        caller.ok()
        gateway.ok()
        ended = time.time()
    finally:
        phone_media.close()
        gw_media.close()
    assert gateway.value("CALLED") == NUMBER
    assert gateway.value("CALLER") == CALLER_ID
    assert_audio_crossed(phone_media, gw_media)
    (answer,) = env.apps.seen(f"{prefix}/answer")
    assert answer.params["From"] == phone.username
    assert answer.params["To"] == NUMBER
    assert answer.params["Direction"] == "inbound"
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    params = hangup.params
    assert params["CallUUID"] == answer.params["CallUUID"]
    # When the gateway hangs up, the Dial is over and so is the document: Plivo's
    # "End Of XML Instructions" ends the phone's leg.
    cause = "Normal Hangup" if who_hangs_up == "phone" else "End Of XML Instructions"
    assert params["HangupCause"] == cause
    # Duration counts from the INVITE, BillDuration from the answer: both whole
    # seconds of a call that lasted a little over `hold` ms.
    wall = ended - started
    assert int(params["Duration"]) == pytest.approx(wall, abs=1.0)
    assert int(params["Duration"]) in (hold // 1000, hold // 1000 + 1)
    assert int(params["BillDuration"]) == hold // 1000


# -- 2. a number rings an endpoint's latest device, which gets the sendDigits --------


class Silent:
    """A UDP socket where an earlier device registered: nothing must reach it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)

    def received(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(65535))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sock.close()


def test_number_rings_latest_device_and_sends_digits(env: Env) -> None:
    work = env.workdir("send-digits")
    username = env.api.endpoint("bob", PASSWORD)
    document = (
        f'<Response><Dial><User sendDigits="wwww2410">sip:{username}@127.0.0.1</User>'
        "</Dial></Response>"
    )
    app_id, prefix = new_app(env, "digits", document)
    number = "14155550100"
    env.api.number(number, app_id)
    earlier, later = free_udp_port(), free_udp_port()
    register(work, "register-earlier", env.server, username, PASSWORD, earlier)
    register(work, "register-later", env.server, username, PASSWORD, later)  # a moment later
    silent = Silent(earlier)
    device_media, gw_media = RtpPeer(), RtpPeer(GATEWAY_IP)
    try:
        device = env.sipp(
            work, "device", "far_answers", port=later,
            keys={"rtp_port": device_media.port, "codec": 0},
        )  # fmt: skip
        gateway = env.sipp(
            work, "gateway", "gateway_calls", remote=env.sip,
            local_ip=GATEWAY_IP, port=env.gateway_port,
            rows=[(number, "14155550123")], keys={"rtp_port": gw_media.port},
            extra=["-set", "hold", "3500"],
        )  # fmt: skip
        rtp_both_ways(gateway, gw_media, device, device_media)
        gateway.ok()
        device.ok()
    finally:
        device_media.close()
        gw_media.close()
        stray = silent.received()
        silent.close()
    assert stray == [], "the earlier device was rung"
    assert device.value("CALLED") == username
    assert device.value("CALLER") == "14155550123"
    (answer,) = env.apps.seen(f"{prefix}/answer")
    assert answer.params["To"] == number
    assert answer.params["From"] == "14155550123"
    assert_audio_crossed(gw_media, device_media)
    # The digits, as they arrived at the device: one RFC 4733 event per digit (the
    # payload type the device offered), the first 2.0 s (wwww) after the device's 200.
    answered = sipp_time(device, "ANSWERED")
    digits = digits_on_wire(device_media.events(101))
    assert [d for d, _ in digits] == list("2410"), digits
    starts = [at - answered for _, at in digits]
    assert starts[0] == pytest.approx(2.0, abs=0.020), starts
    # Ours: 100 ms tones, 100 ms gaps (PROTOCOL-NOTES §5).
    assert starts == pytest.approx([2.0, 2.2, 2.4, 2.6], abs=0.020), starts
    for _, event in device_media.events(101):
        assert event.event in (2, 4, 1, 0)
    ends = [e for _, e in device_media.events(101) if e.end]
    assert len(ends) == 12  # three end packets per digit
    assert {e.duration for e in ends} == {800}


# -- 3. endpoint to endpoint by SIP URI; an application's SIP URI ---------------------


@pytest.mark.parametrize("caller_app", ["none", "direct-dial"])
def test_endpoint_calls_endpoint_by_sip_uri(env: Env, caller_app: str) -> None:
    """Without an application the call rings the endpoint directly; with Direct Dial
    the application's ``<Dial><User>`` rings it."""
    work = env.workdir(f"endpoint-to-endpoint-{caller_app}")
    app_id = direct_dial_app(env) if caller_app == "direct-dial" else None
    caller = new_phone(env, work, "carol", app_id)
    callee = new_phone(env, work, "dave", None)
    caller_media, callee_media = RtpPeer(), RtpPeer()
    uri_user = callee.username
    try:
        device = env.sipp(
            work, "device", "far_answers", port=callee.port,
            keys={"rtp_port": callee_media.port, "codec": 0},
        )  # fmt: skip
        phone = caller.call(
            env, work, "phone_hangs_up", uri_user, rtp_port=caller_media.port, hold=2500
        )
        rtp_both_ways(phone, caller_media, device, callee_media)
        phone.ok()
        device.ok()
    finally:
        caller_media.close()
        callee_media.close()
    assert device.value("CALLED") == callee.username
    assert device.value("CALLER") == caller.username
    assert_audio_crossed(caller_media, callee_media)
    # The caller's PCMA reached the callee as PCMU and the callee's PCMU came back as
    # PCMA: transcoded (as the stdlib's audioop does it), not relabelled.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

        to_pcmu = audioop.lin2ulaw(audioop.alaw2lin(PCMA_SILENCE, 2), 2)
        to_pcma = audioop.lin2alaw(audioop.ulaw2lin(PCMU_SILENCE, 2), 2)
    assert {(p.pt, p.payload) for p in callee_media.audio()} == {(0, to_pcmu)}
    assert {(p.pt, p.payload) for p in caller_media.audio()} == {(8, to_pcma)}


def direct_dial_app(env: Env, caller_id: str | None = None) -> str:
    """The built-in Direct Dial application's ID (with *caller_id* set in its URL)."""
    apps = env.api.call("GET", "/Application/?limit=20")["objects"]
    (app,) = [a for a in apps if a["app_name"] == "Direct Dial"]
    if caller_id is not None:
        url = app["answer_url"].split("?")[0] + f"?callerId={caller_id}"
        env.api.call("POST", f"/Application/{app['app_id']}/", {"answer_url": url})
    return str(app["app_id"])


def test_call_to_application_sip_uri_runs_it(env: Env) -> None:
    work = env.workdir("app-sip-uri")
    app_id, prefix = new_app(
        env, "appuri", "<Response><Speak>Hello from the application.</Speak></Response>"
    )
    phone = new_phone(env, work, "frank", None)  # no application of its own
    media = RtpPeer()
    try:
        caller = phone.call(env, work, "phone_waits", f"app-{app_id}", rtp_port=media.port)
        caller.ok()
    finally:
        media.close()
    (answer,) = env.apps.seen(f"{prefix}/answer")
    assert answer.params["From"] == phone.username
    assert answer.params["To"] == f"sip:app-{app_id}@127.0.0.1"
    # The application ran: it answered, spoke (non-silent PCMA), and at the end of
    # its document hung up.
    speech = [p for p in media.audio((8,)) if set(p.payload) != {0xD5}]
    assert len(speech) > 25, f"{len(media.audio())} audio packets, {len(speech)} not silent"
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    assert hangup.params["HangupCause"] == "End Of XML Instructions"


# -- 4. cancel, no answer, busy, answer_url down, session expiry -----------------------


def test_phone_cancels_while_ringing(env: Env) -> None:
    work = env.workdir("cancel")
    app_id, prefix = new_app(env, "cancel", dial_number_xml())
    phone = new_phone(env, work, "gina", app_id)
    gateway = env.sipp(
        work, "gateway", "far_rings", local_ip=GATEWAY_IP, port=env.gateway_port,
        keys={"rtp_port": 9, "codec": 8},
    )  # fmt: skip
    caller = phone.call(env, work, "phone_cancels", NUMBER)
    caller.ok()  # its CANCEL got a 200 and its INVITE a 487
    gateway.ok()  # it got a CANCEL (answered 200, 487) and the ACK of its 487
    assert caller.value("FINAL") == "487"
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    assert hangup.params["HangupCause"] == "Cancelled"
    assert hangup.params["CallStatus"] == "completed"
    assert hangup.params["BillDuration"] == "0"


@pytest.mark.parametrize(
    ("far_end", "dial_status", "final", "cause"),
    [
        ("far_rings", "no-answer", "480", "No Answer"),
        ("far_busy", "busy", "486", "Busy Line"),
    ],
)
def test_dial_fails_and_its_action_says_why(
    env: Env, far_end: str, dial_status: str, final: str, cause: str
) -> None:
    work = env.workdir(f"dial-{dial_status}")
    name = f"dial{dial_status.replace('-', '')}"
    prefix = f"/{name}-{next(_names)}"
    env.apps.reply(
        f"{prefix}/answer",
        dial_number_xml(timeout="2", action=env.apps.url(f"{prefix}/action")),
    )
    # After a busy dial the action hangs up with that reason (486 to the phone);
    # after no answer its document is empty (end of XML: 480).
    follow_up = '<Hangup reason="busy"/>' if dial_status == "busy" else ""
    env.apps.reply(f"{prefix}/action", f"<Response>{follow_up}</Response>")
    app_id = env.api.application(
        name, env.apps.url(f"{prefix}/answer"), hangup_url=env.apps.url(f"{prefix}/hangup")
    )
    phone = new_phone(env, work, "hank", app_id)
    gateway = env.sipp(
        work, "gateway", far_end, local_ip=GATEWAY_IP, port=env.gateway_port,
        keys={"rtp_port": 9, "codec": 8},
    )  # fmt: skip
    caller = phone.call(env, work, "phone_refused", NUMBER)
    caller.ok()
    gateway.ok()
    (action,) = env.apps.seen(f"{prefix}/action")
    (answer,) = env.apps.seen(f"{prefix}/answer")
    assert action.params["DialStatus"] == dial_status
    assert action.params["DialALegUUID"] == answer.params["CallUUID"]
    assert action.params["DialHangupCause"] == cause
    if dial_status == "no-answer":
        # The gateway rang for the Dial's timeout, then was cancelled.
        rang = sipp_time(gateway, "CANCELLED") - gateway.started
        assert 2.0 <= rang < 4.0, rang
    assert caller.value("FINAL") == final
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    assert hangup.params["CallStatus"] == "completed"


@pytest.mark.parametrize("fallback", [True, False])
def test_answer_url_down(env: Env, fallback: bool) -> None:
    work = env.workdir(f"answer-url-down-{fallback}")
    down = f"http://127.0.0.1:{free_udp_port()}/nobody-listens"
    prefix = f"/down-{next(_names)}"
    fields = {"hangup_url": env.apps.url(f"{prefix}/hangup")}
    if fallback:
        env.apps.reply(f"{prefix}/fallback", '<Response><Hangup reason="busy"/></Response>')
        fields["fallback_answer_url"] = env.apps.url(f"{prefix}/fallback")
    app_id = env.api.application("down", down, **fields)
    phone = new_phone(env, work, "ivan", app_id)
    caller = phone.call(env, work, "phone_refused", NUMBER)
    caller.ok()
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    if fallback:
        # The fallback document ran: its <Hangup reason="busy"/> is what the phone got.
        (used,) = env.apps.seen(f"{prefix}/fallback")
        assert used.params["From"] == phone.username
        assert used.params["To"] == NUMBER
        assert caller.value("FINAL") == "486"
        assert caller.value("REASON_HEADER") == 'SIP;cause=486;text="Busy Line"'
        assert hangup.params["HangupCause"] == "Busy Line"
    else:
        # Without a document the call ends at once; the phone is told why.
        assert caller.value("FINAL") == "480"
        reason = 'SIP;cause=480;text="Error Reaching Application URL"'
        assert caller.value("REASON_HEADER") == reason
        assert hangup.params["HangupCause"] == "Error Reaching Application URL"
    assert hangup.params["Duration"] == "0"


def test_session_expires_unrefreshed(env: Env) -> None:
    """The phone asks for a 6 s session it will refresh (refresher=uac) and never
    does: we send BYE min(32, 6/3) = 2 s before it expires (RFC 4028 §10)."""
    work = env.workdir("session-expiry")
    app_id, prefix = new_app(env, "expiry", dial_number_xml())
    phone = new_phone(env, work, "judy", app_id)
    gateway = env.sipp(
        work, "gateway", "far_answers", local_ip=GATEWAY_IP, port=env.gateway_port,
        keys={"rtp_port": 9, "codec": 8},
    )  # fmt: skip
    caller = phone.call(
        env, work, "phone_waits", NUMBER,
        headers=("Supported: timer", "Session-Expires: 6;refresher=uac"),
    )  # fmt: skip
    caller.ok()
    gateway.ok()  # the far end was hung up too
    assert caller.value("SESSION_EXPIRES") == "6;refresher=uac"
    answered = sipp_time(caller, "ANSWERED")
    bye = sipp_time(caller, "BYE")
    assert bye - answered == pytest.approx(4.0, abs=0.5)
    (hangup,) = env.apps.wait_for(f"{prefix}/hangup")
    assert hangup.params["HangupCause"] == "Session Timeout"


def test_session_refreshed_by_update_or_by_our_reinvite(env: Env) -> None:
    """A refreshed session lives past its interval: the phone refreshes a 6 s session
    with UPDATEs; for another phone (refresher=uas) we refresh it with a re-INVITE at
    half the interval.  Both calls run at once; neither gets a BYE from us."""
    work = env.workdir("session-refresh")
    # (A first <Wait> would not answer: Plivo rings while it waits.)
    document = '<Response><Speak>Hi.</Speak><Wait length="20"/></Response>'
    app_id, prefix = new_app(env, "refresh", document)
    uac = new_phone(env, work, "lena", app_id)
    uas = new_phone(env, work, "mike", app_id)
    refreshing = uac.call(
        env, work, "phone_refreshes", "100", name="refreshing",
        headers=("Supported: timer", "Session-Expires: 6;refresher=uac"),
    )  # fmt: skip
    refreshed = uas.call(
        env, work, "phone_is_refreshed", "100", name="refreshed", hold=2000,
        headers=("Supported: timer", "Session-Expires: 6;refresher=uas"),
    )  # fmt: skip
    refreshing.ok()  # 7.5 s after the answer, its own BYE got a 200
    refreshed.ok()
    assert refreshing.value("SESSION_EXPIRES") == "6;refresher=uac"
    assert refreshing.value("REFRESHED") == "6;refresher=uac"
    assert refreshed.value("SESSION_EXPIRES") == "6;refresher=uas"
    assert refreshed.value("REINVITE_SESSION_EXPIRES") == "6;refresher=uas"
    reinvite = sipp_time(refreshed, "REINVITE") - sipp_time(refreshed, "ANSWERED")
    assert reinvite == pytest.approx(3.0, abs=0.5)
    hangups = env.apps.wait_for(f"{prefix}/hangup", count=2)
    assert {h.params["HangupCause"] for h in hangups} == {"Normal Hangup"}


# -- 5. the built-in Direct Dial application dials a number -------------------------


def test_direct_dial_app_reaches_the_gateway(env: Env) -> None:
    work = env.workdir("direct-dial-number")
    app_id = direct_dial_app(env, caller_id=CALLER_ID)
    phone = new_phone(env, work, "kim", app_id)
    endpoint = env.api.call("GET", "/Endpoint/?limit=20")["objects"]
    (mine,) = [e for e in endpoint if e["username"] == phone.username]
    assert mine["application"].endswith(f"/Application/{app_id}/")
    phone_media, gw_media = RtpPeer(), RtpPeer(GATEWAY_IP)
    try:
        gateway = env.sipp(
            work, "gateway", "far_answers", local_ip=GATEWAY_IP, port=env.gateway_port,
            keys={"rtp_port": gw_media.port, "codec": 0},
        )  # fmt: skip
        caller = phone.call(
            env, work, "phone_hangs_up", "+1-800-123-1234", rtp_port=phone_media.port, hold=2500
        )
        rtp_both_ways(caller, phone_media, gateway, gw_media)
        caller.ok()
        gateway.ok()
    finally:
        phone_media.close()
        gw_media.close()
    assert gateway.value("CALLED") == NUMBER
    assert gateway.value("CALLER") == CALLER_ID
    assert_audio_crossed(phone_media, gw_media)
