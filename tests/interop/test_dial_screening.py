"""Call screening end to end: ``<Dial confirmSound confirmKey confirmTimeout>`` through
the real server, with real peers on loopback.

* The server is ``twistd -n telephony`` with ``--gateway sip:127.0.0.2:PORT``.
* The application is a real HTTP server (:mod:`tests.appserver`): the answer_url
  returns the Dial, the confirmSound URL a ``<Play>`` of a 1 kHz WAV it also serves,
  the Dial action URL a short document.
* The caller is a registered endpoint's sipp phone (``phone_waits``); the called
  party is sipp as the gateway (``far_answers``), whose SDP names a Python UDP socket
  (:class:`~tests.interop.rtppeer.RtpPeer`).  That socket hears what the server sends
  the called party (the prompt) and, like a phone's keypad, sends the confirm key as
  RFC 4733 events (built here, independently of our media code) from the address the
  SDP gave, which is where the server latches.

The key is sent only once the called party has heard the prompt; the caller must not
be answered before it (the phone logs the wall-clock time of its 200), and must be
once it is, with audio crossing.  A wrong key and silence until ``confirmTimeout``
each hang the called party up, and the Dial action hears why.
"""

from __future__ import annotations

import itertools
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.appserver import app_server
from tests.serverproc import running_server
from tests.sipp import free_udp_port

from .callpeers import GATEWAY_IP, Api, Sipp, auth, register
from .restcalls_helpers import dominant_frequency, rms, wait_until, wav_bytes
from .rtppeer import RtpPeer, tone
from .test_calls import Env  # the same module environment: server, apps, API, sipps

pytestmark = pytest.mark.interop

NUMBER = "18001231234"
CALLER_ID = "18004321321"
PASSWORD = "s3cret-pw"
#: The confirm prompt: this tone, for this long (seconds).
PROMPT_HZ = 1000
PROMPT_SECONDS = 1.0
#: 20 ms packets each side sends once bridged.
PACKETS = 50
#: RFC 4733 payload type both SDPs use (the scenarios' ``a=rtpmap:101``).
EVENT_PT = 101

_names = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("screening")
    gateway_port = free_udp_port(GATEWAY_IP)
    args = ["--gateway", f"sip:{GATEWAY_IP}:{gateway_port}", "--digest-algorithms", "MD5"]
    with app_server() as apps, running_server(root / "var", args) as server:
        yield Env(server, apps, Api(server), gateway_port, root)


@pytest.fixture(autouse=True)
def _stop_peers(env: Env) -> Iterator[None]:
    yield
    while env.running:
        env.running.pop().stop()


def send_key(peer: RtpPeer, dest: tuple[str, int], key: str) -> float:
    """Press *key* on the called party's keypad: one 100 ms RFC 4733 event from *peer*'s
    socket (marker first, duration +160 every 20 ms, three end packets), as a phone
    sends it.  Returns the wall-clock time of the first packet."""
    event = "0123456789*#".index(key)
    ssrc, seq, ts = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
    first = time.time()
    durations = [160, 320, 480, 640, 800, 800, 800]
    for i, duration in enumerate(durations):
        end = i >= 4
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if i == 0 else 0) | EVENT_PT, (seq + i) & 0xFFFF, ts, ssrc
        )
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        peer.sock.sendto(header + payload, dest)
        time.sleep(0.02)
    return first


def sipp_time(sipp: Sipp, key: str) -> float:
    return float(sipp.wait_value(f"{key}_S")) + float(sipp.wait_value(f"{key}_US")) / 1e6


def prompt_frames(peer: RtpPeer) -> int:
    """Loud 20 ms frames of the prompt's tone the called party has heard."""
    return sum(
        1
        for _, samples in peer.audio_frames()
        if rms(samples) > 1000 and abs(dominant_frequency(samples) - PROMPT_HZ) <= 50
    )


@attrs.define
class Screening:
    """One screened call: its application paths, phone and peers."""

    env: Env
    work: Path
    prefix: str
    phone_user: str
    phone_port: int
    phone_media: RtpPeer = attrs.field(factory=RtpPeer)
    gw_media: RtpPeer = attrs.field(factory=lambda: RtpPeer(GATEWAY_IP))

    @classmethod
    def set_up(cls, env: Env, name: str, action_document: str, **dial: str) -> Screening:
        """An application whose Dial screens ``NUMBER`` (attributes *dial*), and a
        registered phone of an endpoint steered by it."""
        work = env.workdir(name)
        prefix = f"/{name}-{next(_names)}"
        apps = env.apps
        apps.reply(f"{prefix}/prompt.wav", wav_bytes(tone(PROMPT_HZ, PROMPT_SECONDS)))
        apps.reply(
            f"{prefix}/confirm",
            f"<Response><Play>{apps.url(prefix + '/prompt.wav')}</Play></Response>",
        )
        apps.reply(f"{prefix}/action", action_document)
        attributes = "".join(f' {k}="{v}"' for k, v in dial.items())
        apps.reply(
            f"{prefix}/answer",
            f'<Response><Dial callerId="{CALLER_ID}" confirmSound="{apps.url(prefix + "/confirm")}"'
            f' action="{apps.url(prefix + "/action")}"{attributes}>'
            f"<Number>{NUMBER}</Number></Dial></Response>",
        )
        app_id = env.api.application(name, apps.url(f"{prefix}/answer"))
        user = env.api.endpoint(name.replace("-", ""), PASSWORD, app_id)
        port = free_udp_port()
        register(work, f"register-{name}", env.server, user, PASSWORD, port)
        return cls(env, work, prefix, user, port)

    def start(self) -> tuple[Sipp, Sipp]:
        """The gateway waits; the phone calls.  Returns (phone, gateway)."""
        gateway = self.env.sipp(
            self.work,
            "gateway",
            "far_answers",
            local_ip=GATEWAY_IP,
            port=self.env.gateway_port,
            keys={"rtp_port": self.gw_media.port, "codec": 8},
        )
        phone = self.env.sipp(
            self.work,
            "phone",
            "phone_waits",
            remote=("127.0.0.1", self.env.server.sip_port),
            port=self.phone_port,
            rows=[(self.phone_user, NUMBER, auth(self.phone_user, PASSWORD))],
            keys={
                "rtp_port": self.phone_media.port,
                "header1": "X-Test: 1",
                "header2": "X-Test: 2",
            },
        )
        return phone, gateway

    def heard_prompt(self, gateway: Sipp) -> tuple[str, int]:
        """Wait until the called party answered and heard the prompt; the server's RTP
        address for it."""
        server_port = int(gateway.wait_value("SERVER_RTP_PORT"))
        gateway.wait_value("ANSWERED_S")
        wait_until(lambda: prompt_frames(self.gw_media) >= 10, 10, "the confirm prompt")
        return ("127.0.0.1", server_port)

    def close(self) -> None:
        self.phone_media.close()
        self.gw_media.close()

    def action(self) -> dict[str, str]:
        (request,) = self.env.apps.wait_for(f"{self.prefix}/action", timeout=15)
        return request.params


def test_called_party_is_bridged_only_after_pressing_the_confirm_key(env: Env) -> None:
    s = Screening.set_up(
        env,
        "screen-ok",
        "<Response><Hangup/></Response>",
        confirmKey="5",
        confirmTimeout="10",
        timeLimit="3",
    )
    try:
        phone, gateway = s.start()
        b_side = s.heard_prompt(gateway)
        # Screening: the callee hears the prompt, the caller is not answered yet...
        assert phone.value("ANSWERED_S") is None, phone.report()
        assert "SIP/2.0 180" in (s.work / "phone.msg").read_text(errors="replace")
        pressed = send_key(s.gw_media, b_side, "5")
        # ...and is once the callee pressed the key.
        answered = sipp_time(phone, "ANSWERED")
        assert answered >= pressed, (answered, pressed)
        assert answered - pressed < 2.0
        a_side = ("127.0.0.1", int(phone.wait_value("SERVER_RTP_PORT")))
        s.phone_media.send_audio(a_side, PACKETS)
        s.gw_media.send_audio(b_side, PACKETS)
        phone.ok()  # timeLimit ends the bridge; the action's Hangup the caller
        gateway.ok()
    finally:
        s.close()
    got_b = len([p for p in s.gw_media.audio() if p.at > pressed])
    got_a = len(s.phone_media.audio())
    assert got_a >= PACKETS - 3, f"caller got {got_a} of {PACKETS}"
    assert got_b >= PACKETS - 3, f"callee got {got_b} of {PACKETS}"
    params = s.action()
    assert params["DialStatus"] == "completed"
    assert params["DialBLegUUID"]
    assert env.apps.seen(f"{s.prefix}/confirm"), "confirmSound was fetched"


@pytest.mark.parametrize(
    ("case", "key", "status", "cause"),
    [
        ("wrong-key", "4", "failed", "Rejected"),
        ("no-key", None, "no-answer", "No Answer"),
    ],
)
def test_unconfirmed_called_party_is_hung_up_and_the_dial_fails(
    env: Env, case: str, key: str | None, status: str, cause: str
) -> None:
    timeout = 3
    s = Screening.set_up(
        env,
        f"screen-{case}",
        '<Response><Wait length="1"/></Response>',
        confirmKey="5",
        confirmTimeout=str(timeout),
    )
    try:
        phone, gateway = s.start()
        b_side = s.heard_prompt(gateway)
        answered_b = sipp_time(gateway, "ANSWERED")
        if key is not None:
            pressed = send_key(s.gw_media, b_side, key)
        gateway.ok()  # it got a BYE
        hung_up = sipp_time(gateway, "BYE")
        phone.ok()  # answered by the action's document only, then hung up
        caller_answered = sipp_time(phone, "ANSWERED")
    finally:
        s.close()
    if key is not None:
        assert hung_up - pressed < 1.0, "a wrong key hangs the callee up at once"
    else:
        # confirmTimeout counts from the callee's answer.
        assert timeout - 0.2 <= hung_up - answered_b <= timeout + 1.0
    assert caller_answered > hung_up, "the caller was never connected to that callee"
    params = s.action()
    assert (params["DialStatus"], params["DialHangupCause"]) == (status, cause)
