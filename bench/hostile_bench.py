"""Slow and hostile peers at scale against the real server (issue 16; the suite's short
version is ``tests/interop/test_hostile_peers.py``).  Loopback is not exempt from
throttling here (``--throttle-exempt ::1/128``) except where a phase says so.

1. **Slow TCP**: ``--slow`` connections from 8 loopback addresses each send a 15 KB
   head that never ends, ``--huge`` more send 64 KB of head (past the 16 KiB limit).
   Printed: connections held and refused, the server's RSS before, with them, and
   after the read timeout (20 s) closed them, and the OPTIONS probe's answer times.
2. **Flood**: ``--flood`` REGISTERs without credentials from one address, as fast as
   one socket sends.  Printed: answered before the ban, dropped, live transactions,
   RSS, probe answer times, and whether a user on another address registers meanwhile.
3. **Binding storm**: from one *exempt* address, ``--endpoints`` endpoints register
   10 devices each (10,000 bindings by default; 10 is the per-endpoint limit).
   Printed: bindings acknowledged, seconds, RSS before and after, probe answer times.
4. **Hostile answer_urls**: ``--calls`` calls to an answer_url that never answers and
   as many to one that sends 10 MB, at once.  Printed: calls ended and how, seconds,
   bytes of the 10 MB the server read at most, RSS, probe answer times.

Nothing is asserted.  From the repository root, in the project's virtualenv::

    nice -n 19 python bench/hostile_bench.py --slow 2000 --huge 200 --flood 100000 \\
        --endpoints 1000 --calls 50
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.register_bench import machine, seed_endpoints, status_figure  # noqa: E402
from tests.hostile import HostileApp, Probe, rss_kib, slow_connections  # noqa: E402
from tests.interop.callpeers import Api, auth, start_sipp  # noqa: E402
from tests.rawsip import UDPClient, request  # noqa: E402
from tests.serverproc import Server, start_server  # noqa: E402
from tests.storm import Login, register_storm  # noqa: E402

#: Loopback is not exempt from throttling, but for 127.0.3.0/24: the honest phones
#: of the answer_url phase (50 calls at once from one address would be a flood).
HOSTILE = ("--throttle-exempt", "::1/128, 127.0.3.0/24", "--digest-algorithms", "MD5")
PHONES = "127.0.3.1"
PASSWORD = "hostile-bench-1"  # noqa: S105 - throw-away endpoints of the bench
#: MESSAGE_READ_TIMEOUT of telephony.sip.transport, plus a margin, seconds.
READ_TIMEOUT_WAIT = 23.0


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def slow_tcp(options: argparse.Namespace, server: Server) -> dict[str, Any]:
    target = ("127.0.0.1", server.sip_port)
    before = rss_kib(server.process.pid)
    probe = Probe(target, host="127.0.0.9")
    held: list[socket.socket] = []
    refused = 0
    started = time.monotonic()
    per_host = options.slow // 8
    peak_open, with_them = 0, before
    for k in range(8):
        opened, lost = slow_connections(target, per_host, 15_000, host=f"127.0.1.{k + 1}")
        held += opened
        refused += lost
        open_now = status_figure(server, "TCP connections")
        if open_now > peak_open:
            peak_open, with_them = open_now, rss_kib(server.process.pid)
    huge, huge_refused = slow_connections(target, options.huge, 64_000, host="127.0.2.1")
    opening = time.monotonic() - started
    time.sleep(READ_TIMEOUT_WAIT)  # after the last one opened
    timeouts = status_figure(server, "TCP read timeouts")
    left = status_figure(server, "TCP connections")
    after = rss_kib(server.process.pid)
    for sock in held + huge:
        sock.close()
    figures = probe.stop()
    return {
        "slow connections asked": per_host * 8,
        "held": len(held),
        "refused": refused,
        "huge heads asked": options.huge,
        "huge heads still open after sending": len(huge),
        "huge refused or closed": huge_refused,
        "most open at once (status page)": peak_open,
        "seconds to open them": round(opening, 1),
        "rss MiB before / with the most open / after the read timeout": [
            _mib(before),
            _mib(with_them),
            _mib(after),
        ],
        "KiB per open connection": round((with_them - before) / max(1, peak_open), 1),
        "closed by the read timeout": timeouts,
        "left open after it": left,
        "probe": attrs.asdict(figures),
    }


def flood(options: argparse.Namespace, server: Server, bob: Login) -> dict[str, Any]:
    target = ("127.0.0.1", server.sip_port)
    before = rss_kib(server.process.pid)
    probe = Probe(target, host="127.0.0.9")
    started = time.monotonic()
    with UDPClient(target, host="127.0.0.5") as flooder:
        flooder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        for i in range(options.flood):
            user = f"storm{i}"
            flooder.send(
                request(
                    "REGISTER",
                    f"sip:127.0.0.1:{server.sip_port}",
                    local=flooder.local,
                    user=user,
                    extra=[f"Contact: <sip:{user}@127.0.0.5:{5060 + i % 1000}>"],
                )
            )
            if i % 1000 == 999:
                time.sleep(0.005)
        sent_in = time.monotonic() - started
        answered = len(list(iter(lambda: flooder.receive(0.3), None)))
    storm = register_storm(target, [bob], rate=10, deadline=10)
    time.sleep(1)
    figures = probe.stop()
    return {
        "sent": options.flood,
        "seconds to send": round(sent_in, 2),
        "answered": answered,
        "dropped (status page)": status_figure(server, "Dropped requests (banned sources)"),
        "live transactions": status_figure(server, "Live transactions"),
        "rss MiB before / after": [_mib(before), _mib(rss_kib(server.process.pid))],
        "user on another address registered": bool(storm.acknowledged),
        "probe": attrs.asdict(figures),
    }


def binding_storm(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = work / "storm" / "var"
    data.mkdir(parents=True)
    endpoints = seed_endpoints(data / "telephony.sqlite3", options.endpoints)
    logins = [Login(e.username, e.password) for e in endpoints for _ in range(10)]
    server = start_server(data)  # loopback exempt: the default
    try:
        target = ("127.0.0.1", server.sip_port)
        before = rss_kib(server.process.pid)
        probe = Probe(target, host="127.0.0.9")
        result = register_storm(target, logins, rate=options.storm_rate, window=300, deadline=300)
        time.sleep(1)
        figures = probe.stop()
        return {
            "bindings asked": len(logins),
            "acknowledged": result.confirmed,
            "failed": len(result.failed),
            "seconds": round(result.seconds, 1),
            "registrations on the status page": status_figure(server, "Registrations (devices)"),
            "live transactions": status_figure(server, "Live transactions"),
            "rss MiB before / after": [_mib(before), _mib(rss_kib(server.process.pid))],
            "probe": attrs.asdict(figures),
        }
    finally:
        server.stop()


def hostile_apps(options: argparse.Namespace, server: Server, work: Path) -> dict[str, Any]:
    api = Api(server)
    hostile = HostileApp()
    probe = Probe(("127.0.0.1", server.sip_port), host="127.0.0.9")
    before = rss_kib(server.process.pid)
    peers = []
    try:
        started = time.monotonic()
        for name in ("hang", "huge"):
            app_id = api.application(name, hostile.url(f"/{name}"))
            user = api.endpoint(name, PASSWORD, app_id)
            peers.append(
                start_sipp(
                    work,
                    name,
                    "phone_refused",
                    remote=("127.0.0.1", server.sip_port),
                    local_ip=PHONES,
                    rows=[(user, "1000", auth(user, PASSWORD))] * options.calls,
                    keys={"rtp_port": 9, "header1": "X-A: 1", "header2": "X-B: 2"},
                    calls=options.calls,
                    timeout=120,
                    extra=["-r", "50", "-l", str(options.calls)],
                )
            )
        peak = before
        while any(p.process.poll() is None for p in peers) and time.monotonic() - started < 150:
            peak = max(peak, rss_kib(server.process.pid))
            time.sleep(0.2)
        codes = [p.wait(10) for p in peers]
        seconds = round(time.monotonic() - started, 1)
    finally:
        for p in peers:
            p.stop()
        hostile.close()
        figures = probe.stop()
    return {
        "calls to each": options.calls,
        "sipp exit codes (0: every call ended as scenario expects)": codes,
        "seconds for all": seconds,
        "most bytes of one 10 MB answer written before the server hung up": hostile.huge_bytes_sent,
        "answer_url requests": hostile.requests,
        "rss MiB before / peak / after": [
            _mib(before),
            _mib(peak),
            _mib(rss_kib(server.process.pid)),
        ],
        "probe": attrs.asdict(figures),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=2000)
    parser.add_argument("--huge", type=int, default=200)
    parser.add_argument("--flood", type=int, default=100_000)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--storm-rate", type=float, default=1000.0)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument(
        "--skip", action="append", default=[], choices=("tcp", "flood", "storm", "apps")
    )
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    figures: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp:
        work = Path(tmp)
        server = start_server(work / "var", HOSTILE)
        try:
            rest = Api(server)
            bob = Login(rest.endpoint("bob", PASSWORD), PASSWORD)
            phases = (
                ("tcp", lambda: slow_tcp(options, server)),
                ("flood", lambda: flood(options, server, bob)),
                ("apps", lambda: hostile_apps(options, server, work)),
            )
            for name, run in phases:
                if name not in options.skip:
                    figures[name] = run()
                    print(name, json.dumps(figures[name], indent=2), flush=True)
        finally:
            server.stop()
        if "storm" not in options.skip:
            figures["storm"] = binding_storm(options, work)
            print("storm", json.dumps(figures["storm"], indent=2), flush=True)
    figures["machine"]["load_average_after"] = os.getloadavg()
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
