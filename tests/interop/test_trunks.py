"""Carrier trunks through the real server (issue 11): sipp plays the carriers.

Calls are placed with Plivo's own SDK (``POST /Call/`` to a number); the server
sends them to its gateways, each a sipp on its own loopback address:

* a carrier that challenges (401, sipp checks our digest itself) and answers, or
  refuses wrong credentials: the CDR and the hangup_url say ``sip_auth_failed``;
* failover, from the TOML ``[[gateway]]`` tables: a first gateway that answers 503,
  or one that never answers (its ``response_timeout``), then the second one, with
  its own prefix and caller ID;
* a gateway given by host name, located through a real DNS server on loopback
  (Twisted's own ``twistd dns``, SRV records with two targets);
* trunk registration: a sipp registrar that challenges and grants 4 s, so that we
  see the refresh, and then calls the contact we registered, naming our DID in To.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dnsserver import SRV, A, dns_server
from tests.interop.callpeers import Sipp, start_sipp
from tests.interop.restcalls_helpers import AnswerServer, cdr
from tests.serverproc import Server, plivo_client, running_server
from tests.sipp import free_udp_port

pytestmark = pytest.mark.interop

CALLER = "18004321321"
CALLEE = "18001231234"
#: The B leg's document once the carrier answers: a second of silence, then the end.
SHORT_CALL = '<Response><Wait length="1"/></Response>'
PASSWORD = "s3cret-trunk"


@pytest.fixture(scope="module")
def answers() -> Iterator[AnswerServer]:
    http = AnswerServer()
    yield http
    http.close()


def _client(server: Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    return plivo_client(server, monkeypatch)


def _carrier(work: Path, name: str, scenario: str, ip: str, port: int, **keys: object) -> Sipp:
    return start_sipp(
        work, name, scenario, local_ip=ip, port=port, keys={"rtp_port": 9, **keys}, timeout=20
    )


# -- a carrier that authenticates --------------------------------------------------------

AUTH_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def auth_port() -> int:
    return free_udp_port(AUTH_IP)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, auth_port: int) -> Iterator[Server]:
    gateway = f"sip:acme:{PASSWORD}@{AUTH_IP}:{auth_port}"
    with running_server(tmp_path_factory.mktemp("trunk-auth") / "var", ["--gateway", gateway]) as s:
        yield s


def test_a_challenging_carrier_gets_our_credentials(
    auth_server: Server,
    auth_port: int,
    answers: AnswerServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    carrier = _carrier(
        tmp_path, "carrier", "carrier_auth", AUTH_IP, auth_port, username="acme", password=PASSWORD
    )
    answer_url = answers.xml("/auth-ok/answer", SHORT_CALL)
    with _client(auth_server, monkeypatch) as client:
        created = client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        carrier.ok()
        [answered] = [
            f
            for f in answers.wait_fetched("/auth-ok/answer")
            if f.params.get("RequestUUID") == created.request_uuid and "HangupCause" not in f.params
        ]
        record = cdr(client, answered.params["CallUUID"])
    assert carrier.value("VERDICT") == "good", carrier.report()
    assert carrier.value("CALLED") == CALLEE
    auth = carrier.value("AUTH") or ""
    assert 'username="acme"' in auth, auth
    assert 'realm="carrier.test"' in auth, auth
    assert carrier.value("ACK_AUTH") == auth, "the ACK repeats the INVITE's credentials"
    assert PASSWORD not in auth_server.log()
    assert (record.call_status, record.hangup_cause_name) == (
        "completed",
        "End Of XML Instructions",
    )


def test_refused_credentials_end_the_call_with_a_record_saying_why(
    auth_server: Server,
    auth_port: int,
    answers: AnswerServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    carrier = _carrier(
        tmp_path, "carrier", "carrier_auth", AUTH_IP, auth_port, username="acme", password="other"
    )
    answer_url = answers.xml("/auth-bad/answer", SHORT_CALL)
    with _client(auth_server, monkeypatch) as client:
        created = client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        carrier.ok()
        # Never answered: the answer_url only hears the hangup (hangup_url defaults to it).
        [hangup] = answers.wait_fetched("/auth-bad/answer")
        assert hangup.params["RequestUUID"] == created.request_uuid
        record = cdr(client, hangup.params["CallUUID"])
    assert carrier.value("VERDICT") == "bad"
    assert hangup.params["HangupCause"] == "sip_auth_failed"
    assert record.call_status == "failed"
    assert (record.hangup_cause_name, record.hangup_cause_code) == ("sip_auth_failed", 4240)
    log = auth_server.log()
    assert "credentials refused (realm 'carrier.test')" in log
    assert PASSWORD not in log


# -- failover ------------------------------------------------------------------------------

FIRST_IP, SECOND_IP = "127.0.0.3", "127.0.0.4"


@pytest.fixture(scope="module")
def failover_ports() -> tuple[int, int]:
    return free_udp_port(FIRST_IP), free_udp_port(SECOND_IP)


@pytest.fixture(scope="module")
def failover_server(
    tmp_path_factory: pytest.TempPathFactory, failover_ports: tuple[int, int]
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("trunk-failover")
    first, second = failover_ports
    config = root / "telephony.toml"
    config.write_text(
        "[[gateway]]\n"
        f'name = "first"\nhost = "{FIRST_IP}"\nport = {first}\nresponse_timeout = 1\n'
        "[[gateway]]\n"
        f'name = "second"\nhost = "{SECOND_IP}"\nport = {second}\nprefix = "9"\n'
        'caller_id = "14155550100"\n'
    )
    with running_server(root / "var", ["--config", str(config)]) as s:
        yield s


@pytest.mark.parametrize("first_gateway", ["unavailable", "silent"])
def test_the_next_gateway_takes_the_call(
    failover_server: Server,
    failover_ports: tuple[int, int],
    answers: AnswerServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    first_gateway: str,
) -> None:
    first_port, second_port = failover_ports
    first = None
    if first_gateway == "unavailable":
        first = _carrier(tmp_path, "first", "carrier_unavailable", FIRST_IP, first_port)
    second = _carrier(tmp_path, "second", "carrier_answers", SECOND_IP, second_port)
    path = f"/failover-{first_gateway}/answer"
    answer_url = answers.xml(path, SHORT_CALL)
    with _client(failover_server, monkeypatch) as client:
        posted = time.time()
        client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        second.ok()
        if first is not None:
            first.ok()
        [answered] = [f for f in answers.wait_fetched(path) if "HangupCause" not in f.params]
        record = cdr(client, answered.params["CallUUID"])
    assert second.value("CALLED") == "9" + CALLEE, "the second gateway's prefix"
    assert second.value("CALLER") == "14155550100", "and its caller ID"
    invited = float(second.wait_value("INVITED_S")) + float(second.wait_value("INVITED_US")) / 1e6
    if first is None:
        # Nobody at the first gateway: it is given up after its response_timeout (1 s).
        assert 1.0 <= invited - posted < 3.0, invited - posted
    else:
        assert first.value("CALLED") == CALLEE
        assert invited - posted < 1.0
    assert record.call_status == "completed"


# -- a gateway over TCP -------------------------------------------------------------------------

TCP_IP = "127.0.0.8"


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_a_tcp_gateway_gets_a_connection_we_open(
    tmp_path: Path, answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_tcp_port(TCP_IP)
    carrier = start_sipp(
        tmp_path,
        "carrier-tcp",
        "carrier_answers",
        local_ip=TCP_IP,
        port=port,
        keys={"rtp_port": 9},
        extra=["-t", "t1"],
        timeout=20,
    )
    answer_url = answers.xml("/tcp/answer", SHORT_CALL)
    gateway = f"sip:{TCP_IP}:{port};transport=tcp"
    with (
        running_server(tmp_path / "var", ["--gateway", gateway]) as server,
        _client(server, monkeypatch) as client,
    ):
        client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        carrier.ok()  # INVITE, 200, ACK, BYE and its 200: all on our connection
        fetched = answers.wait_fetched("/tcp/answer")
        [answered] = [f for f in fetched if "HangupCause" not in f.params]
        record = cdr(client, answered.params["CallUUID"])
    assert carrier.value("CALLED") == CALLEE
    assert record.call_status == "completed"


# -- a gateway given by name, located through DNS --------------------------------------------

SRV_FIRST_IP, SRV_SECOND_IP = "127.0.0.6", "127.0.0.7"


def test_a_gateway_given_by_name_is_located_by_srv_and_fails_over(
    tmp_path: Path, answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_port, second_port = free_udp_port(SRV_FIRST_IP), free_udp_port(SRV_SECOND_IP)
    records = [
        SRV("_sip._udp.carrier.test", 10, 0, first_port, "edge1.carrier.test", ttl=300),
        SRV("_sip._udp.carrier.test", 20, 0, second_port, "edge2.carrier.test", ttl=300),
        A("edge1.carrier.test", SRV_FIRST_IP, ttl=300),
        A("edge2.carrier.test", SRV_SECOND_IP, ttl=300),
    ]
    first = _carrier(tmp_path, "edge1", "carrier_unavailable", SRV_FIRST_IP, first_port)
    second = _carrier(tmp_path, "edge2", "carrier_answers", SRV_SECOND_IP, second_port)
    answer_url = answers.xml("/srv/answer", SHORT_CALL)
    with (
        dns_server(records, tmp_path) as (dns_host, dns_port),
        running_server(
            tmp_path / "var",
            ["--gateway", "sip:carrier.test", "--dns-servers", f"{dns_host}:{dns_port}"],
        ) as server,
        _client(server, monkeypatch) as client,
    ):
        client.calls.create(from_=CALLER, to_=CALLEE, answer_url=answer_url)
        first.ok()
        second.ok()
        [answered] = [
            f for f in answers.wait_fetched("/srv/answer") if "HangupCause" not in f.params
        ]
        record = cdr(client, answered.params["CallUUID"])
        # The addresses DNS gave are trusted: an INVITE from the second edge is the
        # carrier's, not a stranger to challenge.
        status = _status(server)
    assert first.value("CALLED") == CALLEE
    assert second.value("CALLED") == CALLEE
    assert record.call_status == "completed"
    # Requests from the addresses DNS gave are trusted as the carrier's, from any
    # port (the gateway named none).
    assert f"at {SRV_FIRST_IP}, {SRV_SECOND_IP}" in status, status


# -- registration ---------------------------------------------------------------------------

REGISTRAR_IP = "127.0.0.5"
DID = "14155550123"


@pytest.fixture(scope="module")
def registrar_port() -> int:
    return free_udp_port(REGISTRAR_IP)


def test_registration_is_kept_and_the_provider_calls_our_did(
    tmp_path: Path, registrar_port: int, answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registrar = _carrier(
        tmp_path,
        "registrar",
        "carrier_registrar",
        REGISTRAR_IP,
        registrar_port,
        username="acme",
        password=PASSWORD,
        granted=4,
    )
    gateway = f"sip:acme:{PASSWORD}@{REGISTRAR_IP}:{registrar_port};register;register_expires=300"
    with running_server(tmp_path / "var", ["--gateway", gateway]) as server:
        registrar.ok()
        registered = [float(x) for x in _all(registrar, "REGISTERED_S")]
        assert len(registered) == 2
        # Granted 4 s, refreshed at half of it (whole seconds in the log).
        assert 1.0 <= registered[1] - registered[0] <= 3.0, registered
        contact = registrar.value("CONTACT")
        assert contact == f"sip:acme@127.0.0.1:{server.sip_port}"
        assert registrar.value("EXPIRES") == "300"
        assert registrar.value("AOR") == f"acme@{REGISTRAR_IP}"
        status = _status(server)
        assert "registration registered" in status, status

        answer_url = answers.xml("/did/answer", "<Response><Speak>Welcome</Speak></Response>")
        with _client(server, monkeypatch) as client:
            app = client.applications.create(app_name="did", answer_url=answer_url)
            client.numbers.create(numbers=DID, carrier="acme", region="test", app_id=app.app_id)
            caller = start_sipp(
                tmp_path,
                "provider-calls",
                "provider_calls",
                remote=("127.0.0.1", server.sip_port),
                local_ip=REGISTRAR_IP,
                port=registrar_port,  # the gateway's port: trusted by address and port
                rows=[("acme", "18005550199", DID)],
                keys={"rtp_port": 9},
                extra=["-set", "hold", "500"],
                timeout=15,
            )
            caller.ok()
            [fetch] = answers.wait_fetched("/did/answer")
    assert (fetch.params["To"], fetch.params["From"]) == (DID, "18005550199")
    assert fetch.params["Direction"] == "inbound"


def _all(sipp: Sipp, key: str) -> list[str]:
    return [
        line.split(" ", 1)[1] for line in sipp.logs().splitlines() if line.startswith(key + " ")
    ]


def _status(server: Server) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{server.base_url}/", timeout=5) as response:
        return str(response.read().decode())
