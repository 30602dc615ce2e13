"""``POST …/Call/`` as Plivo behaves, through the real server and real peers:

* without ``hangup_url``, the end of the call is told to the ``answer_url``, with the
  ``answer_method`` (Plivo's defaults);
* ``send_digits="12@1000"`` sends each key as a one-second RFC 4733 event.

The far end is sipp as the gateway (``far_answers``) whose SDP names a Python UDP
socket (:class:`~tests.interop.rtppeer.RtpPeer`): it sees the events on the wire, with
their kernel arrival times.  The answer_url is a real HTTP server
(:mod:`tests.appserver`) that records every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appserver import AppServer, app_server
from tests.serverproc import Server, running_server
from tests.sipp import free_udp_port

from .callpeers import GATEWAY_IP, Api, start_sipp
from .rtppeer import RtpPeer

pytestmark = pytest.mark.interop

NUMBER = "18001231234"
CALLER_ID = "18004321321"


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_udp_port(GATEWAY_IP)


@pytest.fixture(scope="module")
def apps() -> Iterator[AppServer]:
    with app_server() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("restdefaults") / "var"
    with running_server(data, ["--gateway", f"sip:{GATEWAY_IP}:{gateway_port}"]) as s:
        yield s


def test_hangup_goes_to_answer_url_and_tones_last_as_asked(
    server: Server, apps: AppServer, gateway_port: int, tmp_path: Path
) -> None:
    apps.reply("/defaults/answer", '<Response><Wait length="3"/></Response>')
    media = RtpPeer(GATEWAY_IP)
    try:
        gateway = start_sipp(
            tmp_path,
            "gateway",
            "far_answers",
            local_ip=GATEWAY_IP,
            port=gateway_port,
            keys={"rtp_port": media.port, "codec": 8},
        )
        try:
            created = Api(server).call(
                "POST",
                "/Call/",
                {
                    "from": CALLER_ID,
                    "to": NUMBER,
                    "answer_url": apps.url("/defaults/answer"),
                    "answer_method": "GET",
                    "send_digits": "12@1000",
                },
            )
            assert created["message"] == "call fired"
            gateway.ok()  # answered, then the document's end hung it up
        finally:
            gateway.stop()
    finally:
        media.close()
    answer, hangup = apps.wait_for("/defaults/answer", count=2)
    assert answer.params["CallStatus"] == "in-progress"
    assert hangup.method == "GET", "answer_method is the hangup's method too"
    assert hangup.params["CallUUID"] == answer.params["CallUUID"]
    assert hangup.params["CallStatus"] == "completed"
    assert hangup.params["HangupCause"] == "End Of XML Instructions"
    digits = media.digits()
    assert [d.digit for d in digits] == ["1", "2"]
    assert all(d.ended for d in digits)
    assert [d.duration for d in digits] == [8000, 8000], "1000 ms = 8000 timestamp units"
    # The second key starts a 1 s tone and a 100 ms gap after the first.
    assert digits[1].first_at - digits[0].first_at == pytest.approx(1.1, abs=0.06)
    assert (digits[1].timestamp - digits[0].timestamp) & 0xFFFFFFFF == 8800
