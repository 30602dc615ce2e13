"""``kill -9`` the real server during a registration storm and with live calls, then
count what survived (issue 16; the suite's short version is
``tests/interop/test_crash_safety.py``).

1. **Storm.**  ``--endpoints`` endpoints are written into a fresh database, the server
   starts, and a raw UDP client (``tests/storm.py``) registers them all at ``--rate``
   logins/s, knowing exactly which REGISTERs got a 200.  After ``--kill-after`` 200s
   the server is killed (SIGKILL, from inside the storm).  Printed: logins sent and
   acknowledged, bindings found in the SQLite file, acknowledged bindings lost (must be
   0), then the restart: seconds to healthy and the registrations it serves.
2. **Calls.**  A phone (sipp) makes ``--finished`` calls that end, then ``--calls``
   calls that stay up, each through the B2BUA to a sipp gateway on 127.0.0.2 (two
   legs a call).  Once every leg is answered and journaled the server is killed.
   Printed: CDRs of the finished calls kept with their causes, live legs reported
   at the restart with Server Restart, hangup_url requests for them, journal rows left
   (must be 0), seconds to healthy.

Nothing is asserted; figures are printed (``--json`` writes them).  Every wait is
bounded.  From the repository root, in the project's virtualenv::

    nice -n 19 python bench/crash_bench.py --endpoints 10000 --rate 1000 --kill-after 5000 \\
        --calls 100 --finished 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.register_bench import machine, seed_endpoints, status_figure  # noqa: E402
from tests.appserver import app_server  # noqa: E402
from tests.interop.callpeers import GATEWAY_IP, Api, auth, start_sipp  # noqa: E402
from tests.restapi import RestClient  # noqa: E402
from tests.serverproc import Server, database_rows, start_server  # noqa: E402
from tests.sipp import free_udp_port  # noqa: E402
from tests.storm import Login, register_storm  # noqa: E402

DATABASE = "telephony.sqlite3"
NUMBER = "18001231234"
PASSWORD = "crash-bench-1"  # noqa: S105 - a throw-away endpoint of the bench
#: Most seconds any wait of the bench takes.
WAIT = 120.0


def _restart(data: Path, args: list[str]) -> tuple[Server, float]:
    started = time.monotonic()
    server = start_server(data, args)
    return server, time.monotonic() - started


def storm_phase(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / "storm" / "var"
    data.mkdir(parents=True)
    endpoints = seed_endpoints(data / DATABASE, options.endpoints)
    logins = [Login(e.username, e.password) for e in endpoints]
    server = start_server(data)
    try:

        def kill(acknowledged: int) -> None:
            if acknowledged == options.kill_after:
                server.process.kill()

        result = register_storm(
            ("127.0.0.1", server.sip_port),
            logins,
            rate=options.rate,
            window=options.window,
            deadline=WAIT,
            on_acknowledged=kill,
        )
    finally:
        server.kill()
    stored = set(database_rows(data, "SELECT username, contact_uri FROM bindings"))
    lost = [u for u, c in result.acknowledged.items() if (u, c) not in stored]
    again, seconds = _restart(data, [])
    try:
        served = status_figure(again, "Registrations (devices)")
    finally:
        again.stop()
    return {
        "endpoints": options.endpoints,
        "sent": result.sent,
        "acknowledged": len(result.acknowledged),
        "failed": len(result.failed),
        "unanswered": len(result.unanswered),
        "bindings_in_file": len(stored),
        "acknowledged_lost": len(lost),
        "restart_seconds": round(seconds, 2),
        "registrations_served_after_restart": served,
    }


def calls_phase(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / "calls" / "var"
    data.mkdir(parents=True)
    gateway_port = free_udp_port(GATEWAY_IP)
    args = ["--gateway", f"sip:{GATEWAY_IP}:{gateway_port}", "--digest-algorithms", "MD5"]
    figures: dict[str, Any] = {"finished_calls": options.finished, "live_calls": options.calls}
    with app_server() as apps:
        dial = f'<Response><Dial callerId="18004321321"><Number>{NUMBER}</Number></Dial></Response>'
        apps.reply("/answer", dial)
        server = start_server(data, args)
        peers = []
        try:
            api = Api(server)
            app_id = api.application("crash", apps.url("/answer"), hangup_url=apps.url("/hangup"))
            phone = api.endpoint("crasher", PASSWORD, app_id)
            for name, scenario, calls in (
                ("done", "phone_hangs_up", options.finished),
                ("live", "phone_waits", options.calls),
            ):
                gateway = start_sipp(
                    work, f"{name}-gateway", "far_answers", local_ip=GATEWAY_IP, port=gateway_port,
                    keys={"rtp_port": 9, "codec": 8}, calls=calls, timeout=int(WAIT),
                )  # fmt: skip
                caller = start_sipp(
                    work, f"{name}-phone", scenario, remote=("127.0.0.1", server.sip_port),
                    rows=[(phone, NUMBER, auth(phone, PASSWORD))] * calls,
                    keys={"rtp_port": 9, "header1": "X-A: 1", "header2": "X-B: 2"},
                    calls=calls, timeout=int(WAIT),
                    extra=["-r", str(options.call_rate), "-l", str(calls)]
                    + (["-set", "hold", "300"] if scenario == "phone_hangs_up" else []),
                )  # fmt: skip
                peers += [gateway, caller]
                if name == "done":
                    caller.wait(WAIT)
                    gateway.wait(WAIT)
                    apps.wait_for("/hangup", calls, timeout=WAIT)
                    time.sleep(1)
            deadline = time.monotonic() + WAIT
            query = "SELECT COUNT(*) FROM live_calls WHERE answered_at IS NOT NULL"
            while database_rows(data, query)[0][0] < 2 * options.calls:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            figures["legs_journaled_before_kill"] = database_rows(data, query)[0][0]
            figures["cdrs_before_kill"] = database_rows(data, "SELECT COUNT(*) FROM cdrs")[0][0]
            time.sleep(6)  # a heartbeat after the answers
            server.process.kill()
        finally:
            server.kill()
            for sipp in peers:
                sipp.stop()
        told_before = len(apps.seen("/hangup"))
        again, seconds = _restart(data, args)
        try:
            with contextlib.suppress(AssertionError):  # counted below, whatever came
                apps.wait_for("/hangup", told_before + options.calls, timeout=30)
            rest = RestClient(again)
            causes: dict[str, int] = {}
            offset = 0
            while True:
                page = rest.call("GET", f"/Call/?limit=20&offset={offset}")
                for cdr in page["objects"]:
                    causes[cdr["hangup_cause_name"]] = causes.get(cdr["hangup_cause_name"], 0) + 1
                offset += len(page["objects"])
                if not page["objects"] or offset >= page["meta"]["total_count"]:
                    break
            figures["recovered_on_status_page"] = status_figure(again, "Calls recovered at start")
            figures["hangup_url_failures_logged"] = again.log().count("callback")
        finally:
            again.stop()
        figures["cdrs_after_restart_by_cause"] = causes
        figures["hangup_url_told_after_restart"] = len(apps.seen("/hangup")) - told_before
    figures["journal_rows_left"] = database_rows(data, "SELECT COUNT(*) FROM live_calls")[0][0]
    figures["restart_seconds"] = round(seconds, 2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="logins started per second")
    parser.add_argument("--window", type=int, default=500, help="logins in flight at most")
    parser.add_argument("--kill-after", type=int, default=5000, help="200s before the kill")
    parser.add_argument("--calls", type=int, default=100, help="calls up when killed")
    parser.add_argument("--finished", type=int, default=20, help="calls ended before")
    parser.add_argument("--call-rate", type=int, default=20, help="calls started per second")
    parser.add_argument("--skip", choices=("storm", "calls"), action="append", default=[])
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    figures: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="crash-bench-") as tmp:
        work = Path(tmp)
        if "storm" not in options.skip:
            figures["storm"] = storm_phase(options, work)
            print(json.dumps(figures["storm"], indent=2), flush=True)
        if "calls" not in options.skip:
            figures["calls"] = calls_phase(options, work)
            print(json.dumps(figures["calls"], indent=2), flush=True)
    figures["machine"]["load_average_after"] = os.getloadavg()
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
