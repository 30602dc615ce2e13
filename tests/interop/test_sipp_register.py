"""Phones register with the real server: sipp (and a raw socket where bytes matter).

Every test drives ``twistd -n telephony`` over loopback and checks the outcome
through the REST API, the way an operator would see it.  The servers run with the
embedded defaults (no ``--digest-algorithms``): sipp 3.6.1 answers only MD5 challenges
and reads only the first ``WWW-Authenticate``, so these tests also prove that a stock
phone registers against a stock server (issue 11).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests import rawsip
from tests.restapi import Endpoint, RestClient
from tests.serverproc import Server, running_server
from tests.sipp import (
    SCENARIOS,
    SippResult,
    authentication,
    free_udp_port,
    received_messages,
    run_sipp,
    sendable_password,
    write_injection,
)

pytestmark = pytest.mark.interop

USER_AGENT = "sipp-interop/3.6"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("register") / "var") as s:
        yield s


@pytest.fixture(scope="module")
def rest(server: Server) -> RestClient:
    return RestClient(server)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def _endpoint(rest: RestClient, name: str = "phone") -> Endpoint:
    return rest.create_endpoint(name, sendable_password())


def _injection(
    path: Path,
    endpoints: list[Endpoint],
    expires: int = 300,
    user_agent: str = USER_AGENT,
    password: str | None = None,
) -> Path:
    rows = [
        (e.username, authentication(e.username, password or e.password), user_agent, expires)
        for e in endpoints
    ]
    return write_injection(path, rows)


def _sipp(
    server: Server,
    scenario: str,
    injection: Path,
    workdir: Path,
    *,
    calls: int = 1,
    port: int | None = None,
    **kwargs: Any,
) -> SippResult:
    return run_sipp(
        SCENARIOS / scenario,
        ("127.0.0.1", server.sip_port),
        workdir=workdir,
        injection=injection,
        calls=calls,
        local_port=port,
        **kwargs,
    )


def _register(
    server: Server, endpoint: Endpoint, workdir: Path, port: int, expires: int = 300, **kw: Any
) -> SippResult:
    inf = _injection(workdir / f"{endpoint.username}-{port}.csv", [endpoint], expires)
    result = _sipp(server, "register_auth.xml", inf, workdir, port=port, **kw)
    assert result.returncode == 0, result.describe()
    return result


def _expires(shown: dict[str, Any]) -> datetime:
    return datetime.strptime(shown["sip_expires"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _udp_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_udp_port())
    return sorted(ports)


# -- (a) many endpoints ----------------------------------------------------------------


def test_fifty_endpoints_register_with_digest(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    endpoints = [_endpoint(rest, f"bulk{i}") for i in range(50)]
    inf = _injection(workdir / "fifty.csv", endpoints, expires=600)
    (port,) = _udp_ports(1)

    result = _sipp(server, "register_auth.xml", inf, workdir, calls=50, rate=100, port=port)

    assert result.returncode == 0, result.describe()
    assert (result.successful, result.failed) == (50, 0), result.describe()
    for e in endpoints:
        shown = rest.endpoint(e.endpoint_id)
        assert shown["sip_registered"] == "true", shown
        assert shown["sip_contact"] == f"sip:{e.username}@127.0.0.1:{port}"
        assert shown["sip_user_agent"] == USER_AGENT
        remaining = (_expires(shown) - datetime.now(UTC)).total_seconds()
        assert 540 < remaining <= 601, shown


def test_endpoints_register_over_tcp(server: Server, rest: RestClient, workdir: Path) -> None:
    endpoints = [_endpoint(rest, f"tcp{i}") for i in range(5)]
    inf = _injection(workdir / "tcp.csv", endpoints)

    result = _sipp(server, "register_auth.xml", inf, workdir, calls=5, rate=50, transport="t1")

    assert result.returncode == 0, result.describe()
    assert (result.successful, result.failed) == (5, 0), result.describe()
    for e in endpoints:
        assert rest.endpoint(e.endpoint_id)["sip_registered"] == "true"


# -- (b) wrong password, unknown user --------------------------------------------------


def test_wrong_password_is_challenged_again(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    endpoint = _endpoint(rest)
    inf = _injection(workdir / "wrong.csv", [endpoint], password="not-the-password")

    result = _sipp(server, "register_wrong_password.xml", inf, workdir)

    assert result.returncode == 0, result.describe()
    assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"


def _normalized(response: rawsip.RawResponse, username: str) -> list[tuple[str, str]]:
    """Headers with what differs between any two 401s blanked: values copied from the
    request (tags, Call-ID, branch, the username) and the nonce."""
    out = []
    for name, value in response.headers:
        value = value.replace(username, "USER")
        value = re.sub(r"branch=[^;,\s]+", "branch=B", value)
        value = re.sub(r"tag=[^;,\s]+", "tag=T", value)
        value = re.sub(r'nonce="[^"]*"', 'nonce="N"', value)
        if name.lower() == "call-id":
            value = "CALL-ID"
        out.append((name, value))
    return out


def _failed_login(
    client: rawsip.UDPClient, server: Server, username: str, password: str
) -> tuple[rawsip.RawResponse, rawsip.RawResponse]:
    """REGISTER, then REGISTER with credentials for *username*: both 401s."""
    uri = f"sip:127.0.0.1:{server.sip_port}"
    call_id = secrets.token_hex(8)
    contact = f"Contact: <sip:{username}@{client.local[0]}:{client.local[1]}>"
    first = client.exchange(
        rawsip.request(
            "REGISTER", uri, local=client.local, user=username, call_id=call_id, extra=[contact]
        )
    )
    assert first is not None
    assert first.status == 401, first.raw
    authorization = rawsip.digest_authorization(
        first.challenge("MD5"), username=username, password=password, method="REGISTER", uri=uri
    )
    second = client.exchange(
        rawsip.request(
            "REGISTER",
            uri,
            local=client.local,
            user=username,
            call_id=call_id,
            cseq=2,
            extra=[contact, f"Authorization: {authorization}"],
        )
    )
    assert second is not None
    return first, second


def test_unknown_user_gets_the_same_401_as_a_wrong_password(
    server: Server, rest: RestClient
) -> None:
    known = _endpoint(rest)
    unknown = "ghost" + "".join(secrets.choice("0123456789") for _ in range(12))
    with rawsip.UDPClient(("127.0.0.1", server.sip_port)) as client:
        wrong = _failed_login(client, server, known.username, "not-the-password")
        ghost = _failed_login(client, server, unknown, "whatever")

    for mine, theirs in zip(wrong, ghost, strict=True):
        assert mine.status_line == theirs.status_line == "SIP/2.0 401 Unauthorized"
        assert _normalized(mine, known.username) == _normalized(theirs, unknown)
        assert len(mine.raw) - len(known.username) * 2 == len(theirs.raw) - len(unknown) * 2
    challenges = wrong[1].values("WWW-Authenticate")
    # The default challenge: MD5 alone, which every phone answers.
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["MD5"]
    assert rest.endpoint(known.endpoint_id)["sip_registered"] == "false"


# -- (c) blocked user agents -----------------------------------------------------------


def test_blocked_user_agent_gets_403_before_any_challenge(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    endpoint = _endpoint(rest)
    rows = [(endpoint.username, authentication(endpoint.username, endpoint.password),
             "VaxSIPUserAgent/3.1", 300)]  # fmt: skip
    inf = write_injection(workdir / "vax.csv", rows)

    result = _sipp(server, "register_blocked_user_agent.xml", inf, workdir)

    assert result.returncode == 0, result.describe()
    assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"
    # Any method, any match of the pattern: OPTIONS from "Ozeki" too.
    with rawsip.UDPClient(("127.0.0.1", server.sip_port)) as client:
        answer = client.exchange(
            rawsip.request(
                "OPTIONS",
                f"sip:127.0.0.1:{server.sip_port}",
                local=client.local,
                extra=["User-Agent: Ozeki VoIP SIP SDK"],
            )
        )
    assert answer is not None
    assert answer.status == 403


# -- (d) refresh -------------------------------------------------------------------------


def test_refresh_keeps_the_registration_and_moves_its_expiry(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    endpoint = _endpoint(rest)
    (port,) = _udp_ports(1)
    call_id = ["-cid_str", f"refresh-{secrets.token_hex(6)}-%u"]
    _register(server, endpoint, workdir, port, expires=60, extra_args=call_id)
    before = rest.endpoint(endpoint.endpoint_id)
    assert before["sip_registered"] == "true"

    # Same Call-ID, higher CSeq: a refresh of the same binding (RFC 3261 §10.2.4).
    _register(
        server, endpoint, workdir, port, expires=3600, extra_args=[*call_id, "-base_cseq", "10"]
    )
    after = rest.endpoint(endpoint.endpoint_id)

    assert after["sip_registered"] == "true"
    assert after["sip_contact"] == before["sip_contact"]
    moved = (_expires(after) - _expires(before)).total_seconds()
    assert 3500 <= moved <= 3600, (before["sip_expires"], after["sip_expires"])


def test_replayed_cseq_of_the_same_call_id_is_refused(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    """A REGISTER not newer (CSeq) than the stored binding of its Call-ID fails (§10.3 7)."""
    endpoint = _endpoint(rest)
    (port,) = _udp_ports(1)
    call_id = ["-cid_str", f"stale-{secrets.token_hex(6)}-%u", "-base_cseq", "10"]
    _register(server, endpoint, workdir, port, expires=600, extra_args=call_id)
    first = rest.endpoint(endpoint.endpoint_id)

    inf = _injection(workdir / "again.csv", [endpoint], expires=3600)
    again = _sipp(server, "register_auth.xml", inf, workdir, port=port, extra_args=call_id[:2])

    assert again.returncode != 0
    assert again.failed == 1
    assert " 500 " in again.errors, again.describe()
    assert rest.endpoint(endpoint.endpoint_id)["sip_expires"] == first["sip_expires"]


# -- (e), (f) several devices, unregistering ------------------------------------------


def test_two_devices_the_later_login_wins(server: Server, rest: RestClient, workdir: Path) -> None:
    endpoint = _endpoint(rest)
    desk, mobile = _udp_ports(2)

    _register(server, endpoint, workdir, desk)
    assert rest.endpoint(endpoint.endpoint_id)["sip_contact"].endswith(f":{desk}")

    second = _register(server, endpoint, workdir, mobile, trace_msg=True)
    shown = rest.endpoint(endpoint.endpoint_id)
    assert shown["sip_contact"] == f"sip:{endpoint.username}@127.0.0.1:{mobile}"
    final = received_messages(second.messages)[-1]
    assert final.startswith("SIP/2.0 200 OK")
    contacts = re.findall(r"(?im)^contact:\s*(.*)$", final)
    assert len(contacts) == 2, final
    ports = {m.group(1) for c in contacts if (m := re.search(r":(\d+)>", c))}
    assert ports == {str(desk), str(mobile)}
    assert all(re.search(r";expires=\d+", c) for c in contacts), contacts

    # The desk phone logs in again (a new Call-ID): it is the latest now.
    _register(server, endpoint, workdir, desk)
    assert rest.endpoint(endpoint.endpoint_id)["sip_contact"].endswith(f":{desk}")


def test_unregister_with_expires_zero(server: Server, rest: RestClient, workdir: Path) -> None:
    endpoint = _endpoint(rest)
    desk, mobile = _udp_ports(2)
    _register(server, endpoint, workdir, desk)
    _register(server, endpoint, workdir, mobile)
    inf = _injection(workdir / "unregister.csv", [endpoint])

    result = _sipp(server, "unregister.xml", inf, workdir, port=mobile)
    assert result.returncode == 0, result.describe()
    shown = rest.endpoint(endpoint.endpoint_id)
    assert shown["sip_registered"] == "true"
    assert shown["sip_contact"].endswith(f":{desk}"), "the other device takes over"

    result = _sipp(server, "unregister.xml", inf, workdir, port=desk)
    assert result.returncode == 0, result.describe()
    shown = rest.endpoint(endpoint.endpoint_id)
    assert shown["sip_registered"] == "false"
    assert "sip_contact" not in shown


def test_contact_star_removes_every_device(server: Server, rest: RestClient, workdir: Path) -> None:
    endpoint = _endpoint(rest)
    desk, mobile, admin = _udp_ports(3)
    _register(server, endpoint, workdir, desk)
    _register(server, endpoint, workdir, mobile)
    inf = _injection(workdir / "star.csv", [endpoint])

    result = _sipp(server, "unregister_all.xml", inf, workdir, port=admin, trace_msg=True)

    assert result.returncode == 0, result.describe()
    final = received_messages(result.messages)[-1]
    assert final.startswith("SIP/2.0 200 OK")
    assert not re.search(r"(?im)^contact:", final), final
    assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"


# -- (g) 423 -----------------------------------------------------------------------------


def test_too_brief_an_expiry_gets_423_with_min_expires(
    server: Server, rest: RestClient, workdir: Path
) -> None:
    endpoint = _endpoint(rest)
    inf = _injection(workdir / "brief.csv", [endpoint], expires=30)

    result = _sipp(server, "register_interval_too_brief.xml", inf, workdir)

    assert result.returncode == 0, result.describe()
    assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"


# -- (h) restart -------------------------------------------------------------------------


def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    (port,) = _udp_ports(1)
    with running_server(data_dir) as first:
        rest = RestClient(first)
        endpoints = [_endpoint(rest, f"keep{i}") for i in range(3)]
        inf = _injection(tmp_path / "keep.csv", endpoints, expires=900)
        result = _sipp(first, "register_auth.xml", inf, tmp_path, calls=3, rate=50, port=port)
        assert result.returncode == 0, result.describe()
        before = {e.endpoint_id: rest.endpoint(e.endpoint_id) for e in endpoints}

    with running_server(data_dir) as second:
        rest = RestClient(second)
        for endpoint_id, shown in before.items():
            again = rest.endpoint(endpoint_id)
            assert again["sip_registered"] == "true"
            for field in ("sip_contact", "sip_expires", "sip_user_agent"):
                assert again[field] == shown[field]
        assert "Loaded 3 registrations" in second.log()


# -- (i) bans ----------------------------------------------------------------------------


def test_repeated_wrong_passwords_ban_the_source_alone(tmp_path: Path) -> None:
    """Ten wrong passwords from 127.0.0.2: it is then ignored, even with the right
    password, while 127.0.0.3 is served as before."""
    # No network is exempt here, so loopback sources are counted like any other.
    with running_server(tmp_path / "var", ["--throttle-exempt", ""]) as server:
        rest = RestClient(server)
        endpoint = _endpoint(rest)
        target = ("127.0.0.1", server.sip_port)
        uri = f"sip:127.0.0.1:{server.sip_port}"
        with rawsip.UDPClient(target, host="127.0.0.2") as attacker:
            for attempt in range(1, 11):
                _, answer = _failed_login(attacker, server, endpoint.username, f"guess{attempt}")
                assert answer.status == 401, f"attempt {attempt}: {answer.raw!r}"

            # The right password, on the nonce of the last challenge: silence.
            authorization = rawsip.digest_authorization(
                answer.challenge("MD5"),
                username=endpoint.username,
                password=endpoint.password,
                method="REGISTER",
                uri=uri,
            )
            right = rawsip.request(
                "REGISTER",
                uri,
                local=attacker.local,
                user=endpoint.username,
                extra=[f"Authorization: {authorization}"],
            )
            started = time.monotonic()
            assert attacker.exchange(right, timeout=1.0) is None
            assert time.monotonic() - started >= 0.9
            options = rawsip.request("OPTIONS", uri, local=attacker.local)
            assert attacker.exchange(options, timeout=0.5) is None
        assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"

        with rawsip.UDPClient(target, host="127.0.0.3") as bystander:
            answer = bystander.exchange(rawsip.request("OPTIONS", uri, local=bystander.local))
            assert answer is not None
            assert answer.status == 200
        inf = _injection(tmp_path / "bystander.csv", [endpoint])
        result = run_sipp(
            SCENARIOS / "register_auth.xml",
            target,
            workdir=tmp_path,
            injection=inf,
            local_ip="127.0.0.3",
        )
        assert result.returncode == 0, result.describe()
        shown = rest.endpoint(endpoint.endpoint_id)
        assert shown["sip_contact"].startswith(f"sip:{endpoint.username}@127.0.0.3:")
        bans = re.findall(r"Banned (\S+) after repeated authentication failures", server.log())
        assert bans == ["127.0.0.2"]
