"""SIP REGISTER benchmark: authenticated registrations per second, latency, memory.

Two phases, each against its own ``twistd -n telephony`` on loopback:

1. **Rate.**  N endpoints are created through the REST API; then sipp runs the
   ``register_auth.xml`` scenario (REGISTER, 401 with a digest challenge, REGISTER
   with credentials, 200) at each rate asked for, for a fixed duration.  Above
   ``--per-sipp`` calls/s the load is split over several sipp processes, each with
   its own share of the endpoints (one sipp saturates near 1,000 calls/s).  For
   each rate: calls attempted and achieved per second, failed calls, sipp's
   retransmissions, percentiles of the whole login's time (first REGISTER to the
   200, sipp's ``-trace_rtt``, 1 ms resolution), the server's CPU (user + system,
   all threads) and resident memory.
2. **Memory.**  ``--bindings`` endpoints are written straight into a fresh SQLite
   database (rows as the REST API would write them, HA1s from
   ``telephony.sip.digest.compute_ha1``: creating 100,000 endpoints over REST takes
   too long), the server is started on it, and every endpoint registers once.
   Reported: RSS before, after, and after a restart that loads the bindings from
   the database (the bindings alone, without the credential and nonce caches that
   registering fills).

With ``--kamailio``, the rate phase also runs Kamailio (``bench/kamailio_registrar.py``,
one UDP worker, SQLite subscriber table, Debian's ``kamailio`` and
``kamailio-sqlite-modules``) with the same users, pinned to the same CPU, at each
rate right after our server, and prints the ratios: of the highest rates each held
with no failed call, and of the CPU each spent per registration at the same rate.

Nothing is asserted: figures are printed (and written as JSON with ``--json``).
Every loop is bounded in count and time.  Run from the repository root::

    python bench/register_bench.py                      # both phases, defaults
    python bench/register_bench.py --rates 500,1000 --bindings 0
    python bench/register_bench.py --rates 2000,3000,4000 --bindings 0 --kamailio
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The server subprocess runs this tree's code too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.kamailio_registrar import Kamailio, have_kamailio  # noqa: E402
from bench.placement import (  # noqa: E402
    add_peers_sched_option,
    apply_peers_sched,
    normal_policy,
    pin,
)
from telephony.directory.database import open_sqlite  # noqa: E402
from telephony.sip.digest import DigestAlgorithm, compute_ha1  # noqa: E402
from tests.restapi import Endpoint, RestClient  # noqa: E402
from tests.serverproc import Server, start_server  # noqa: E402
from tests.sipp import (  # noqa: E402
    SCENARIOS,
    SippResult,
    authentication,
    free_udp_port,
    sendable_password,
    start_sipp,
    write_injection,
)

SERVER_ARGS: tuple[str, ...] = ()  # the embedded defaults (MD5 challenges only)
REALM = "127.0.0.1"  # the server's default domain
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the server process, seen through /proc -------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of *pid*, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of *pid*, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status_figure(server: Server, row: str) -> int:
    """A figure of the status page's SIP table (e.g. "REGISTER accepted")."""
    import re

    with urllib.request.urlopen(f"{server.base_url}/", timeout=10) as response:  # noqa: S310
        page = response.read().decode()
    match = re.search(rf"<th>{re.escape(row)}</th><td>(\d+)</td>", page)
    return int(match.group(1)) if match else -1


def start(data_dir: Path, args: argparse.Namespace) -> Server:
    """Start the server (on its CPU); retried when its port was taken meanwhile."""
    for attempt in range(3):
        try:
            server = start_server(data_dir, [*SERVER_ARGS, *args.server_arg])
            pin(server.process.pid, args.server_cpus)
            normal_policy(server.process.pid)
            return server
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def stop(server: Server) -> None:
    code = server.stop()
    log = server.log()
    if "Traceback" in log or "Unhandled" in log:
        print(f"  !! the server log has a traceback: {server.log_path}")
    if code not in (0, -15):
        print(f"  !! the server exited with {code}: {server.log_path}")


# -- phase 1: rates -----------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


class Registrar:
    """What a rate step measures: our server, or Kamailio."""

    def __init__(self, name: str, sip_port: int, server: Server | None = None) -> None:
        self.name = name
        self.sip_port = sip_port
        self.server = server
        self.kamailio: Kamailio | None = None

    def cpu(self) -> float:
        if self.kamailio is not None:
            return self.kamailio.cpu_seconds(CLOCK_TICKS)
        assert self.server is not None
        return cpu_seconds(self.server.process.pid)

    def rss(self) -> float:
        if self.kamailio is not None:
            return self.kamailio.rss_mb()
        assert self.server is not None
        return rss_mb(self.server.process.pid)

    def figure(self, row: str) -> int:
        """A figure of our status page; -1 for Kamailio (it has none)."""
        return status_figure(self.server, row) if self.server is not None else -1


def run_rate(
    target: Registrar,
    endpoints: list[Endpoint],
    rate: int,
    duration: float,
    per_sipp: int,
    ports: list[int],
    workdir: Path,
    sipp_cpus: set[int] | None,
) -> dict[str, Any]:
    """Register at *rate* calls/s for *duration* seconds; return the figures.

    The i-th sipp always uses ``ports[i]``: a phone re-registering from the same
    address refreshes its binding instead of adding one per step.
    """
    n = max(1, min(len(ports), math.ceil(rate / per_sipp)))
    calls = max(n, int(rate * duration))
    step_dir = workdir / f"rate-{rate}-{target.name}"
    step_dir.mkdir(parents=True, exist_ok=True)
    accepted0 = target.figure("REGISTER accepted")
    cpu0, wall0 = target.cpu(), time.monotonic()
    runs = []
    for i in range(n):
        share = endpoints[i::n]
        inf = write_injection(
            step_dir / f"users-{i}.csv",
            [(e.username, authentication(e.username, e.password), "bench", 3600) for e in share],
        )
        runs.append(
            start_sipp(
                SCENARIOS / "register_auth.xml",
                ("127.0.0.1", target.sip_port),
                workdir=step_dir,
                injection=inf,
                local_port=ports[i],
                calls=calls // n,
                rate=rate / n,
                timeout=duration * 3 + 30,
                trace_rtt=True,
                rtt_freq=500,
                stat_period=max(1.0, duration / 4),
            )
        )
        pin(runs[-1].process.pid, sipp_cpus)
    results: list[SippResult] = [run.wait() for run in runs]
    cpu1, wall1 = target.cpu(), time.monotonic()
    accepted1 = target.figure("REGISTER accepted")
    transactions = target.figure("Live transactions")
    times = [ms for rtd, ms in (t for r in results for t in r.response_times) if rtd == 1]
    elapsed = max(r.elapsed for r in results) or (wall1 - wall0)
    successful = sum(r.successful for r in results)
    return {
        "registrar": target.name,
        "rate": rate,
        "sipp_processes": n,
        "calls": sum(c // n for c in [calls] * n),
        "successful": successful,
        "failed": sum(r.failed for r in results),
        "retransmissions": sum(r.retransmissions for r in results),
        "achieved_per_s": successful / elapsed if elapsed else 0.0,
        "server_accepted_per_s": (
            (accepted1 - accepted0) / (wall1 - wall0) if target.server is not None else None
        ),
        "p50_ms": percentile(times, 50),
        "p90_ms": percentile(times, 90),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times) if times else float("nan"),
        "server_cpu_percent": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "cpu_ms_per_registration": 1000 * (cpu1 - cpu0) / max(1, successful),
        "server_rss_mb": target.rss(),
        "live_transactions": transactions,
        "wall_s": wall1 - wall0,
        "sipp_exit_codes": [r.returncode for r in results],
    }


def _print_row(row: dict[str, Any]) -> None:
    server_rate = row["server_accepted_per_s"]
    accepted = f"{server_rate:>7.0f}" if server_rate is not None else f"{'-':>7}"
    transactions = row["live_transactions"] if row["live_transactions"] >= 0 else "-"
    print(
        f"{row['registrar']:>9} {row['rate']:>7} {row['sipp_processes']:>4} {row['calls']:>7} "
        f"{row['achieved_per_s']:>7.0f} {accepted} "
        f"{row['failed']:>6} {row['retransmissions']:>7} {row['p50_ms']:>6.0f} "
        f"{row['p90_ms']:>6.0f} {row['p99_ms']:>6.0f} {row['max_ms']:>6.0f} "
        f"{row['server_cpu_percent']:>5.0f} {row['cpu_ms_per_registration']:>6.3f} "
        f"{row['server_rss_mb']:>7.1f} {transactions:>6}",
        flush=True,
    )


def _sustained(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest rate held: every call succeeded, and sipp kept up with the rate."""
    clean = [
        r
        for r in rows
        if r["failed"] == 0
        and r["successful"] == r["calls"]
        and r["achieved_per_s"] >= 0.95 * r["rate"]
    ]
    return max(clean, key=lambda r: r["achieved_per_s"]) if clean else None


def _compare(rows: list[dict[str, Any]]) -> None:
    """Ours against Kamailio: the highest rates held, and CPU per registration."""
    ours = [r for r in rows if r["registrar"] == "telephony"]
    theirs = [r for r in rows if r["registrar"] == "kamailio"]
    best_ours, best_theirs = _sustained(ours), _sustained(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        ratio = other["cpu_ms_per_registration"] / mine["cpu_ms_per_registration"]
        print(
            f"at {mine['rate']}/s: CPU per registration {mine['cpu_ms_per_registration']:.3f} ms"
            f" (ours) against {other['cpu_ms_per_registration']:.3f} ms (Kamailio): {ratio:.2f}x"
        )
    if best_ours and best_theirs:
        ratio = best_ours["achieved_per_s"] / best_theirs["achieved_per_s"]
        note = " (Kamailio held the highest rate asked: its ceiling is above it)"
        print(
            f"highest rates held with no failed call: {best_ours['achieved_per_s']:.0f}/s (ours),"
            f" {best_theirs['achieved_per_s']:.0f}/s (Kamailio): {ratio:.2f}x"
            f"{note if best_theirs['rate'] == max(r['rate'] for r in theirs) else ''}"
        )


def rate_phase(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    data_dir = workdir / "rate" / "var"
    data_dir.parent.mkdir(parents=True)
    server = start(data_dir, args)
    kamailio: Kamailio | None = None
    try:
        rest = RestClient(server)
        started = time.monotonic()
        endpoints = [
            # "p" first: sipp reads a password starting with "0x" as a hex (AKA) key.
            rest.create_endpoint(f"b{i}", sendable_password())
            for i in range(args.endpoints)
        ]
        print(
            f"created {len(endpoints)} endpoints over REST in {time.monotonic() - started:.1f} s;"
            f" server RSS {rss_mb(server.process.pid):.1f} MiB"
        )
        targets = [Registrar("telephony", server.sip_port, server)]
        if args.kamailio:
            kamailio = Kamailio(
                workdir / "kamailio",
                [(e.username, e.password) for e in endpoints],
                free_udp_port(),
                REALM,
                args.server_cpus,
                durable=args.kamailio_durable,
            )
            kam = Registrar("kamailio", kamailio.sip_port)
            kam.kamailio = kamailio
            targets.append(kam)
            durable = (
                "bindings written through to SQLite"
                if args.kamailio_durable
                else ("bindings in memory")
            )
            print(f"Kamailio on 127.0.0.1:{kamailio.sip_port} with the same users, {durable}")
        header = (
            f"{'who':>9} {'rate/s':>7} {'sipp':>4} {'calls':>7} {'ok/s':>7} {'srv/s':>7} "
            f"{'failed':>6} {'retrans':>7} {'p50ms':>6} {'p90ms':>6} {'p99ms':>6} {'maxms':>6} "
            f"{'cpu%':>5} {'cpu/r':>6} {'rssMiB':>7} {'txns':>6}"
        )
        print(header)
        rows = []
        ports = [free_udp_port() for _ in range(args.max_sipp)]
        for rate in args.rates:
            for target in targets:
                row = run_rate(
                    target,
                    endpoints,
                    rate,
                    args.duration,
                    args.per_sipp,
                    ports,
                    workdir / "rate",
                    args.sipp_cpus,
                )
                rows.append(row)
                _print_row(row)
                time.sleep(2)  # let retransmissions and the last commits settle
        best = _sustained([r for r in rows if r["registrar"] == "telephony"])
        if best:
            print(
                f"highest sustained rate with no failed call: {best['achieved_per_s']:.0f}/s "
                f"(asked {best['rate']}/s, {best['retransmissions']} retransmissions)"
            )
        if kamailio is not None:
            _compare(rows)
        return rows
    finally:
        stop(server)
        if kamailio is not None:
            kamailio.stop()


# -- phase 2: memory per binding --------------------------------------------------------------


def seed_endpoints(db_path: Path, count: int) -> list[Endpoint]:
    """Write *count* endpoints straight into the database (migrated first)."""
    db = open_sqlite(db_path)
    try:
        db.migrate_blocking()
    finally:
        db.close()
    password = "bench-password"  # noqa: S105 - a benchmark's throw-away endpoints
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    endpoints, rows = [], []
    for i in range(count):
        username = f"mem{i:012d}"
        endpoint_id = f"{90_000_000_000_000 + i}"
        rows.append(
            (
                endpoint_id,
                username,
                "Bench",
                REALM,
                compute_ha1(DigestAlgorithm.MD5, username, REALM, password),
                compute_ha1(DigestAlgorithm.SHA256, username, REALM, password),
                None,
                now,
            )
        )
        endpoints.append(Endpoint(endpoint_id, username, password))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO endpoints (endpoint_id, username, alias, realm, ha1_md5, ha1_sha256,"
            " app_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.close()
    return endpoints


def memory_phase(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "memory" / "var"
    data_dir.mkdir(parents=True)
    started = time.monotonic()
    endpoints = seed_endpoints(data_dir / "telephony.sqlite3", args.bindings)
    print(f"wrote {len(endpoints)} endpoints into SQLite in {time.monotonic() - started:.1f} s")
    server = start(data_dir, args)
    try:
        pid = server.process.pid
        time.sleep(1)
        before = rss_mb(pid)
        n = max(1, min(args.max_sipp, math.ceil(args.memory_rate / args.per_sipp)))
        runs = []
        started = time.monotonic()
        for i in range(n):
            share = endpoints[i::n]
            inf = write_injection(
                workdir / "memory" / f"users-{i}.csv",
                [
                    (e.username, authentication(e.username, e.password), "bench", 3600)
                    for e in share
                ],
            )
            runs.append(
                start_sipp(
                    SCENARIOS / "register_auth.xml",
                    ("127.0.0.1", server.sip_port),
                    workdir=workdir / "memory",
                    injection=inf,
                    local_port=free_udp_port(),
                    calls=len(share),
                    rate=args.memory_rate / n,
                    timeout=len(share) / (args.memory_rate / n) * 3 + 60,
                    stat_period=10,
                )
            )
            pin(runs[-1].process.pid, args.sipp_cpus)
        results = [run.wait() for run in runs]
        took = time.monotonic() - started
        time.sleep(2)
        live = status_figure(server, "Registrations (devices)")
        after = rss_mb(pid)
        transactions = status_figure(server, "Live transactions")
        # Server transactions linger 64*T1 = 32 s after their answer (Timer J, RFC 3261
        # §17.2.2); measure again once they are gone.
        deadline = time.monotonic() + 45
        while status_figure(server, "Live transactions") > 0 and time.monotonic() < deadline:
            time.sleep(1)
        settled = rss_mb(pid)
        ok = sum(r.successful for r in results)
        failed = sum(r.failed for r in results)
    finally:
        stop(server)
    # The bindings alone: a fresh process loads them from the database.
    server = start(data_dir, args)
    try:
        deadline = time.monotonic() + 120
        while "Loaded" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        loaded_live = status_figure(server, "Registrations (devices)")
        loaded = rss_mb(server.process.pid)
    finally:
        stop(server)
    figures = {
        "bindings_requested": args.bindings,
        "registered_ok": ok,
        "registered_failed": failed,
        "register_wall_s": took,
        "live_bindings": live,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "live_transactions_after": transactions,
        "kib_per_binding": (after - before) * 1024 / max(1, live),
        "rss_settled_mb": settled,
        "settled_kib_per_binding": (settled - before) * 1024 / max(1, live),
        "restart_live_bindings": loaded_live,
        "restart_rss_mb": loaded,
        "restart_kib_per_binding": (loaded - before) * 1024 / max(1, loaded_live),
    }
    print(
        f"{ok} registered ({failed} failed) in {took:.1f} s; live bindings {live}\n"
        f"RSS before {before:.1f} MiB, after {after:.1f} MiB ({transactions} live "
        f"transactions): {figures['kib_per_binding']:.2f} KiB per binding\n"
        f"RSS once the transactions are gone {settled:.1f} MiB: "
        f"{figures['settled_kib_per_binding']:.2f} KiB per binding (credential and nonce "
        f"caches included)\n"
        f"after a restart, {loaded_live} bindings loaded: RSS {loaded:.1f} MiB, "
        f"{figures['restart_kib_per_binding']:.2f} KiB per binding"
    )
    return figures


# -- main ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
    version = next((w for w in sipp.stdout.split() if w.startswith("v3")), "?")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "sipp": version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=2000, help="endpoints for the rates")
    parser.add_argument(
        "--rates",
        type=lambda s: [int(r) for r in s.split(",") if r],
        default=[500, 1000, 2000, 3000, 4000],
        help="comma-separated registrations per second to try (empty: skip the phase)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--per-sipp", type=int, default=1000, help="most calls/s for one sipp")
    parser.add_argument("--max-sipp", type=int, default=2, help="most sipp processes at once")
    parser.add_argument(
        "--bindings", type=int, default=100_000, help="live bindings for memory (0: skip)"
    )
    parser.add_argument(
        "--memory-rate", type=int, default=800, help="registrations/s while filling memory"
    )
    parser.add_argument("--server-arg", action="append", default=[], help="extra twistd option")
    parser.add_argument(
        "--kamailio",
        action="store_true",
        help="run Kamailio (bench/kamailio/registrar.cfg) at each rate too, and compare",
    )
    parser.add_argument(
        "--kamailio-durable",
        action="store_true",
        help="Kamailio writes every binding through to SQLite (usrloc db_mode 1), as we commit",
    )
    parser.add_argument(
        "--server-gc",
        default="default",
        help="the server's cyclic garbage collector: default, off, or thresholds T0,T1,T2",
    )
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: temporary)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server to the last CPU and sipp to the others",
    )
    add_peers_sched_option(parser)
    args = parser.parse_args(argv)
    apply_peers_sched(args)
    cpus = sorted(os.sched_getaffinity(0))
    if args.no_pin or len(cpus) < 2:
        args.server_cpus = args.sipp_cpus = None
    else:
        args.server_cpus, args.sipp_cpus = {cpus[-1]}, set(cpus[:-1])
    if not 1 <= args.duration <= 120 or args.endpoints > 100_000 or args.bindings > 500_000:
        parser.error("bounded on purpose: duration 1-120 s, endpoints <= 1e5, bindings <= 5e5")
    if shutil.which("sipp") is None:
        parser.error("sipp not found (Debian package sip-tester)")
    if args.kamailio and not have_kamailio():
        parser.error("--kamailio: install Debian's kamailio and kamailio-sqlite-modules")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="register-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.server_gc != "default":
        # An experiment, not a setting of the server: a sitecustomize module that
        # changes the collector of the server's Python before twistd starts.
        site = workdir / "server-gc"
        site.mkdir(exist_ok=True)
        setting = (
            "gc.disable()"
            if args.server_gc == "off"
            else f"gc.set_threshold({', '.join(args.server_gc.split(','))})"
        )
        (site / "sitecustomize.py").write_text(f"import gc\n{setting}\n")
        os.environ["PYTHONPATH"] = f"{site}{os.pathsep}{os.environ['PYTHONPATH']}"
    info = machine()
    print(
        f"{info['cpus']} CPUs ({info['cpu_model']}), load {info['load_average']}, "
        f"Python {info['python']}, sipp {info['sipp']}, {info['date']}; files in {workdir}; "
        f"server GC {args.server_gc}; server on CPU {args.server_cpus or 'any'}, "
        f"sipp on CPU {args.sipp_cpus or 'any'}"
    )
    report: dict[str, Any] = {
        "machine": info,
        "command": " ".join(sys.argv),
        "server_gc": args.server_gc,
        "server_cpus": sorted(args.server_cpus or []),
        "sipp_cpus": sorted(args.sipp_cpus or []),
    }
    if args.rates:
        report["rates"] = rate_phase(args, workdir)
    if args.bindings:
        report["memory"] = memory_phase(args, workdir)
    report["load_average_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    raise SystemExit(main())
