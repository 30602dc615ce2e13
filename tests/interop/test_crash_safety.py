"""``kill -9`` the real server mid-work, start it again on the same data directory:
nothing it acknowledged may be lost (issue 16).

* **Registration storm**: a few hundred endpoints log in at once from a raw UDP
  client that knows exactly which REGISTERs got a 200 (``tests/storm.py``); the server
  is killed from inside the storm.  Every acknowledged binding must be in the SQLite
  file, and served again after the restart; every endpoint the REST API created too.
* **Live calls**: calls that finished before the kill keep their CDRs; calls that were
  up (a phone, the B2BUA, a gateway: two legs each) are reported at the restart as
  ended with the cause ``Server Restart``, in their CDRs and to their hangup_url.

The long runs (10,000 registrations, 100 live calls) are ``bench/crash_bench.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appserver import app_server
from tests.restapi import RestClient
from tests.serverproc import Server, database_rows, running_server, start_server
from tests.sipp import free_udp_port
from tests.storm import Login, register_storm

from .callpeers import GATEWAY_IP, Api, Sipp, auth, start_sipp

pytestmark = pytest.mark.interop

PASSWORD = "crash-pw-1"
#: Endpoints in the suite's storm, and how many 200s come before the kill.
STORM_ENDPOINTS = 300
KILL_AFTER = 100
#: Calls that finish before the kill, and calls up when it comes (two legs each).
FINISHED_CALLS = 2
LIVE_CALLS = 3
NUMBER = "18001231234"
#: Seconds any wait for the server or a peer may take.
WAIT = 20.0


def _wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _all_pages(rest: RestClient, path: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    while True:
        page = rest.call("GET", f"{path}?limit=20&offset={len(objects)}")
        objects += page["objects"]
        if len(objects) >= page["meta"]["total_count"] or not page["objects"]:
            return objects


def test_kill_9_in_a_registration_storm_loses_no_acknowledged_binding(tmp_path: Path) -> None:
    data = tmp_path / "var"
    server = start_server(data)
    try:
        rest = RestClient(server)
        logins = [
            Login(rest.create_endpoint(f"storm{i}", PASSWORD).username, PASSWORD)
            for i in range(STORM_ENDPOINTS)
        ]

        def kill_mid_storm(acknowledged: int) -> None:
            if acknowledged == KILL_AFTER:
                server.process.kill()

        result = register_storm(
            ("127.0.0.1", server.sip_port), logins, rate=1000, on_acknowledged=kill_mid_storm
        )
    finally:
        server.kill()
    assert KILL_AFTER <= len(result.acknowledged) < STORM_ENDPOINTS, "killed mid-storm"
    assert result.failed == {}
    stored = set(database_rows(data, "SELECT username, contact_uri FROM bindings"))
    lost = [u for u, contact in result.acknowledged.items() if (u, contact) not in stored]
    assert lost == [], f"{len(lost)} acknowledged bindings lost"

    with running_server(data) as again:
        endpoints = _all_pages(RestClient(again), "/Endpoint/")
        assert len(endpoints) == STORM_ENDPOINTS
        registered = {e["username"] for e in endpoints if e["sip_registered"] == "true"}
        assert set(result.acknowledged) <= registered


@pytest.fixture
def peers() -> Iterator[list[Sipp]]:
    running: list[Sipp] = []
    yield running
    for sipp in running:
        sipp.stop()


def _call_peers(
    work: Path, name: str, server: Server, gateway_port: int, phone: str, scenario: str, calls: int
) -> tuple[Sipp, Sipp]:
    """A gateway that answers *calls* INVITEs, and a phone that makes them."""
    gateway = start_sipp(
        work,
        f"{name}-gateway",
        "far_answers",
        local_ip=GATEWAY_IP,
        port=gateway_port,
        keys={"rtp_port": 9, "codec": 8},
        calls=calls,
        timeout=60,
    )
    caller = start_sipp(
        work,
        f"{name}-phone",
        scenario,
        remote=("127.0.0.1", server.sip_port),
        rows=[(phone, NUMBER, auth(phone, PASSWORD))] * calls,
        keys={"rtp_port": 9, "header1": "X-Test: 1", "header2": "X-Test: 2"},
        calls=calls,
        timeout=60,
        extra=["-set", "hold", "300"] if scenario == "phone_hangs_up" else [],
    )
    return gateway, caller


def test_kill_9_with_live_calls_reports_them_ended(tmp_path: Path, peers: list[Sipp]) -> None:
    data = tmp_path / "var"
    gateway_port = free_udp_port(GATEWAY_IP)
    args = ["--gateway", f"sip:{GATEWAY_IP}:{gateway_port}", "--digest-algorithms", "MD5"]
    with app_server() as apps:
        apps.reply(
            "/answer",
            f'<Response><Dial callerId="18004321321"><Number>{NUMBER}</Number></Dial></Response>',
        )
        server = start_server(data, args)
        try:
            api = Api(server)
            app_id = api.application("crash", apps.url("/answer"), hangup_url=apps.url("/hangup"))
            phone = api.endpoint("crasher", PASSWORD, app_id)
            # Calls that finish: their CDRs are written before the kill.
            gateway, caller = _call_peers(
                tmp_path, "done", server, gateway_port, phone, "phone_hangs_up", FINISHED_CALLS
            )
            peers += [gateway, caller]
            caller.ok(WAIT)
            gateway.ok(WAIT)
            finished = [r.params["CallUUID"] for r in apps.wait_for("/hangup", FINISHED_CALLS)]
            _wait_until(
                lambda: len(database_rows(data, "SELECT 1 FROM cdrs")) == 2 * FINISHED_CALLS,
                "the finished calls' CDRs",
            )
            # Calls that are up when the server dies: both legs answered and journaled.
            gateway, caller = _call_peers(
                tmp_path, "live", server, gateway_port, phone, "phone_waits", LIVE_CALLS
            )
            peers += [gateway, caller]
            answered = "SELECT 1 FROM live_calls WHERE answered_at IS NOT NULL"
            _wait_until(
                lambda: len(database_rows(data, answered)) == 2 * LIVE_CALLS,
                "every live leg answered and journaled",
            )
            live = [row[0] for row in database_rows(data, "SELECT call_uuid FROM live_calls")]
            time.sleep(HEARTBEAT_WAIT)  # a heartbeat past the answers: durations > 0
            server.kill()
        finally:
            server.kill()
        for sipp in peers:
            sipp.stop()

        with running_server(data, args) as again:
            rest = RestClient(again)
            cdrs = {c["call_uuid"]: c for c in _all_pages(rest, "/Call/")}
            assert sorted(cdrs) == sorted([*live, *_legs_of(cdrs, finished)])
            for uuid in live:
                record = cdrs[uuid]
                assert record["hangup_cause_name"] == "Server Restart", record
                assert record["hangup_source"] == "Error"
                assert record["call_status"] == "completed"
                assert int(record["bill_duration"]) >= 1
            for uuid in _legs_of(cdrs, finished):
                assert cdrs[uuid]["hangup_cause_name"] != "Server Restart", cdrs[uuid]
            # The A legs' application hears it, as for any hangup.
            told = apps.wait_for("/hangup", FINISHED_CALLS + LIVE_CALLS)[FINISHED_CALLS:]
            assert {r.params["HangupCauseName"] for r in told} == {"Server Restart"}
            assert {r.params["CallUUID"] for r in told} <= set(live)
            assert database_rows(data, "SELECT 1 FROM live_calls") == []
            assert f"{LIVE_CALLS * 2} call(s) were live" in again.log()


#: Seconds to wait after the calls are up, so that a heartbeat follows their answer.
HEARTBEAT_WAIT = 6.0


def _legs_of(cdrs: dict[str, dict[str, Any]], a_legs: list[str]) -> list[str]:
    """The A legs given and the B legs dialed from them."""
    return [u for u, c in cdrs.items() if u in a_legs or c.get("parent_call_uuid") in a_legs]
