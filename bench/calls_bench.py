"""Calls benchmark: call setups per second, and bridged calls with RTP one core holds.

Each phase runs its own ``twistd -n telephony`` on loopback, pinned to one CPU
(``--server-cpu``); sipp, the answer_url server and this process (the RTP peers)
share the others.  The call is issue 6's first scenario: a phone (an endpoint)
dials ``18001231234``; its application (``bench/answer_app.py``, a twisted.web app
in its own process) returns ``<Dial callerId="18004321321"><Number>…``; the B leg
goes to a sipp gateway on 127.0.0.2 that answers at once; the phone hangs up.

1. **Setup rate.**  For each rate, sipp plays the phone (``bench/scenarios/
   calls_phone.xml``: INVITE, 407, INVITE with credentials, 200, ACK, BYE at once)
   at ``-r RATE`` for ``--seconds``; the gateway is ``calls_gateway.xml``.  Printed:
   calls attempted, completed, failed, sipp retransmissions, answer_url and
   hangup_url requests the app got, the time the run took (a rate is kept up when
   it took about ``--seconds``), setup time (first INVITE to the 200: sipp's
   response time 1), the server's CPU (all threads) and RSS.
2. **Bridged calls with RTP.**  For each N, N calls are set up at
   ``--setup-rate`` and held.  This process plays the phones' media with N UDP
   sockets (127.0.0.1): the phone scenario advertises one socket per call
   ([field3]) and logs the server's RTP port, and each socket then sends 20 ms
   PCMA packets to it (50/s, the sockets spread over the 20 ms, the send time in
   the payload) and counts what arrives.  The gateway's side is sipp's
   ``-rtp_echo`` (``--far-end echo``, the default): every packet crosses the
   server's bridge to the gateway, is echoed, and crosses back, so the server
   relays 2·N streams each way as in N calls with audio both ways, while the
   peers' CPU stays low enough for a 2-vCPU machine.  ``--far-end sockets`` plays
   the gateway's side with N more sockets instead (127.0.0.2).  ``--peer-wait spin``
   makes this process poll its sockets without sleeping: on this VM a datagram
   sent to a socket whose reader sleeps costs the *sender* about 12 µs more (the
   wake-up, an inter-processor interrupt through the hypervisor: 16 µs per
   ``sendto`` against 4 µs to a reader that is running, measured), a cost of
   loopback peers that a server sending to phones over a NIC does not pay.
   sipp's echo has a sleeping thread per call, so ``spin`` goes with
   ``--far-end sockets``.  Once every call is
   up and after ``--warmup``, a ``--seconds`` window counts packets sent and
   received: **loss** = 1 - received/sent, counted once the window is over plus
   0.5 s (a packet later than that is lost for a voice call), so it counts every
   packet the server dropped or fell behind on (its RTP sequence numbers are its
   own, so a receiver could not see drops in them); **delay** is the one-way
   (sockets) or round-trip (echo) time of every 10th packet.  Also printed: the
   server's CPU and RSS in the window, the peers' CPU, and the server's media
   counters at close (from its log).

Nothing is asserted; figures are printed (``--json`` writes them too).  Every loop
is bounded in count and time.  From the repository root::

    python bench/calls_bench.py --rates 50,100,150,200 --calls 250,350,500
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The server subprocess runs this tree's code too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.placement import (  # noqa: E402
    add_peers_sched_option,
    apply_peers_sched,
    normal_policy,
    pin,
)
from tests.interop.callpeers import Api, auth, sipp_binary  # noqa: E402
from tests.serverproc import Server, start_server  # noqa: E402
from tests.sipp import free_media_ports, free_udp_port  # noqa: E402

SCENARIOS = ROOT / "bench" / "scenarios"
NUMBER = "18001231234"
CALLER_ID = "18004321321"
PASSWORD = "bench-pw-1"  # noqa: S105 (a throwaway endpoint on loopback)
GATEWAY_IP = "127.0.0.2"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of *pid*, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


CpuSample = dict[int, tuple[float, float]]


def cpu_busy(cpus: set[int]) -> CpuSample:
    """Per CPU: (busy, total) jiffies from /proc/stat, for the peers' CPU use."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [float(v) for v in fields]
            idle = values[3] + values[4]
            out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out


def busy_pct(before: CpuSample, after: CpuSample) -> float:
    """Busy % of the CPUs in *before* between the two samples (all of them together)."""
    busy = sum(after[c][0] - before[c][0] for c in before)
    total = sum(after[c][1] - before[c][1] for c in before)
    return round(100 * busy / total, 1) if total else 0.0


class AnswerApp:
    """``bench/answer_app.py`` in its own process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "answer_app.py"), "--port", "0",
             "--number", NUMBER, "--caller-id", CALLER_ID],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"answer app did not start: {line!r}")
        self.port = int(line.split()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url("/stats"), timeout=5) as response:  # noqa: S310
            return dict(json.loads(response.read()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@contextlib.contextmanager
def bench_server(work: Path, gateway_port: int, cpu: int) -> Iterator[Server]:
    args = [
        "--gateway", f"sip:{GATEWAY_IP}:{gateway_port}",
        "--digest-algorithms", "MD5",
        "--rtp-ports", "16384-32767",
    ]  # fmt: skip
    server = start_server(work / "var", args)
    pin(server.process.pid, {cpu})
    normal_policy(server.process.pid)
    try:
        yield server
    finally:
        server.stop()


def provision(server: Server, app: AnswerApp) -> str:
    """An application that dials NUMBER and an endpoint using it; the username."""
    api = Api(server)
    app_id = api.application(
        "bench", app.url("/answer"), hangup_url=app.url("/hangup"), hangup_method="POST"
    )
    return api.endpoint("bench", PASSWORD, app_id)


def sipp(
    work: Path,
    name: str,
    scenario: str,
    rows: Sequence[Sequence[str]],
    *,
    remote: tuple[str, int] | None = None,
    local_ip: str = "127.0.0.1",
    port: int | None = None,
    extra: Sequence[str] = (),
    logs: bool = False,
    media_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start one sipp (UAC toward *remote*, else UAS) with an injection file of *rows*."""
    csv_path = work / f"{name}.csv"
    csv_path.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
    args = [sipp_binary()]
    if remote is not None:
        args.append(f"{remote[0]}:{remote[1]}")
    args += ["-sf", str(SCENARIOS / f"{scenario}.xml"), "-inf", str(csv_path)]
    args += ["-i", local_ip, "-mi", local_ip, "-bind_local", "-p", str(port or 0)]
    args += ["-mp", str(media_port or free_media_ports(local_ip, avoid=port or 0))]
    args += ["-nostdin", "-recv_timeout", "15000"]
    args += ["-trace_err", "-error_file", str(work / f"{name}.err")]
    args += ["-trace_stat", "-stf", str(work / f"{name}.stat.csv"), "-fd", "1"]
    if logs:
        args += ["-trace_logs", "-log_file", str(work / f"{name}.log")]
    args += list(extra)
    out = (work / f"{name}.out").open("wb")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    out.close()
    return process


def final_stats(path: Path) -> dict[str, str]:
    """The last row of a sipp ``-trace_stat`` file."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return rows[-1] if rows else {}


def stat_int(stats: dict[str, str], name: str) -> int:
    value = stats.get(name, "0") or "0"
    return int(float(value))


def stat_ms(stats: dict[str, str], name: str) -> float | None:
    """A sipp time column (``HH:MM:SS:mmmuuu``) in milliseconds."""
    value = stats.get(name)
    if not value:
        return None
    h, m, s, frac = value.split(":")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac) / 1000


def wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


# -- phase 1: setup rate ----------------------------------------------------------------


def rate_phase(work: Path, rates: Sequence[int], seconds: float, cpu: int) -> list[dict[str, Any]]:
    results = []
    gateway_port = free_udp_port(GATEWAY_IP)
    app = AnswerApp()
    try:
        with bench_server(work, gateway_port, cpu) as server:
            username = provision(server, app)
            for rate in rates:
                results.append(one_rate(work, server, app, username, gateway_port, rate, seconds))
                time.sleep(2)  # let the last calls' records and callbacks finish
    finally:
        app.stop()
    return results


def one_rate(
    work: Path, server: Server, app: AnswerApp, username: str, gateway_port: int, rate: int,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    calls = int(rate * seconds)
    before = app.stats()
    gateway = sipp(
        work, f"gw-{rate}", "calls_gateway", [("9",)],
        local_ip=GATEWAY_IP, port=gateway_port, extra=["-m", str(calls)],
    )  # fmt: skip
    time.sleep(0.3)
    pid = server.process.pid
    peer_cpus = os.sched_getaffinity(0)
    cpu0, t0, peers0 = cpu_seconds(pid), time.monotonic(), cpu_busy(peer_cpus)
    phone = sipp(
        work, f"phone-{rate}", "calls_phone",
        [(username, NUMBER, auth(username, PASSWORD), "9")],
        remote=("127.0.0.1", server.sip_port),
        extra=["-r", str(rate), "-m", str(calls), "-l", str(max(50, rate * 5)),
               "-set", "hold", "0", "-timeout", f"{int(seconds) + 60}s"],
    )  # fmt: skip
    phone_code = wait(phone, seconds + 90)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    peers_busy = busy_pct(peers0, cpu_busy(peer_cpus))
    gateway_code = wait(gateway, 20)
    time.sleep(1)
    after = app.stats()
    stats = final_stats(work / f"phone-{rate}.stat.csv")
    result = {
        "rate": rate,
        "calls": calls,
        "completed": stat_int(stats, "SuccessfulCall(C)"),
        "failed": stat_int(stats, "FailedCall(C)"),
        "retransmissions": stat_int(stats, "Retransmissions(C)"),
        "answer_fetches": after.get("/answer", 0) - before.get("/answer", 0),
        "hangup_callbacks": after.get("/hangup", 0) - before.get("/hangup", 0),
        "seconds": round(elapsed, 2),
        "achieved_per_s": round(stat_int(stats, "SuccessfulCall(C)") / elapsed, 1),
        "setup_ms_avg": stat_ms(stats, "ResponseTime1(C)"),
        "server_cpu_pct": round(100 * cpu / elapsed, 1),
        "server_rss_mb": round(rss_mb(pid), 1),
        "peer_cpus_busy_pct": peers_busy,
        "sipp_exit": (phone_code, gateway_code),
    }
    print(
        f"rate {rate:4d}/s: {result['completed']}/{calls} completed, {result['failed']} failed,"
        f" {result['retransmissions']} retrans, answer {result['answer_fetches']}"
        f" hangup {result['hangup_callbacks']}, {elapsed:.1f} s"
        f" ({result['achieved_per_s']}/s), setup {result['setup_ms_avg']} ms avg,"
        f" server CPU {result['server_cpu_pct']} %, RSS {result['server_rss_mb']} MB,"
        f" peers' CPU {peers_busy} %, sipp exit {phone_code}/{gateway_code}",
        flush=True,
    )
    return result


# -- phase 2: bridged calls with RTP --------------------------------------------------------

_RTP = struct.Struct("!BBHII")
_STAMP = struct.Struct("!d")
SLOTS = 20  # 1 ms slots in the 20 ms cycle


class MediaPeers:
    """UDP sockets playing one or both ends of N calls; paced sends, counted receives.

    :param hosts: one address per side played: the phones' (127.0.0.1), then the
        gateway's (127.0.0.2) unless sipp echoes for the gateway.
    """

    def __init__(self, calls: int, hosts: Sequence[str], spin: bool = False) -> None:
        self.spin = spin  # poll without sleeping (see --peer-wait)
        self.sockets: list[socket.socket] = []
        self.by_port: dict[tuple[str, int], int] = {}
        for host in hosts:
            for _ in range(calls):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
                s.bind((host, 0))
                s.setblocking(False)
                self.by_port[(host, s.getsockname()[1])] = len(self.sockets)
                self.sockets.append(s)
        n = len(self.sockets)
        self.calls = calls
        self.active = [False] * n
        self.sent = [0] * n
        self.received = [0] * n
        self.seq = [0] * n
        self.fd_index = {s.fileno(): i for i, s in enumerate(self.sockets)}
        self.slots: list[list[int]] = [[] for _ in range(SLOTS)]
        self.epoll = select.epoll()
        for s in self.sockets:
            self.epoll.register(s.fileno(), select.EPOLLIN)
        self.header = bytearray(20)  # RTP header + the send time, first 8 payload bytes
        self.payload = b"\xd5" * 152
        self.late_cycles = 0
        self.delays: list[float] = []  # one-way delay of every 10th packet received, seconds
        self.sampling = False

    def port(self, side: int, i: int) -> int:
        return int(self.sockets[side * self.calls + i].getsockname()[1])

    def activate(self, host: str, port: int, server_port: int) -> None:
        i = self.by_port.get((host, port))
        if i is None or self.active[i]:
            return
        self.sockets[i].connect(("127.0.0.1", server_port))
        self.active[i] = True
        self.slots[i % SLOTS].append(i)

    def run_until(self, deadline: float, on_idle: Any = None, sending: bool = True) -> None:
        """Send on schedule and count arrivals until *deadline* (monotonic)."""
        header, payload, pack, stamp = self.header, self.payload, _RTP.pack_into, _STAMP.pack_into
        delays, unstamp = self.delays, _STAMP.unpack_from
        sockets, sent, received, seq = self.sockets, self.sent, self.received, self.seq
        fd_index, poll = self.fd_index, self.epoll.poll
        slot = 0
        next_at = time.monotonic()
        next_idle = next_at
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if sending and now >= next_at:
                if now - next_at > 0.020:
                    self.late_cycles += 1
                    next_at = now  # fell a cycle behind: do not burst to catch up
                stamp(header, 12, now)
                for i in self.slots[slot]:
                    n = seq[i]
                    pack(header, 0, 0x80, 8, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, i + 1)
                    try:
                        sockets[i].send(bytes(header) + payload)
                    except OSError:
                        continue
                    seq[i] = n + 1
                    sent[i] += 1
                slot = (slot + 1) % SLOTS
                next_at += 0.020 / SLOTS
                continue
            if on_idle is not None and now >= next_idle:
                on_idle()
                next_idle = now + 0.05
            timeout = min(next_at if sending else deadline, deadline) - now
            events = poll(0.0 if self.spin else max(0.0, timeout))
            arrived = time.monotonic()
            for fd, _ in events:
                i = fd_index[fd]
                try:
                    data = sockets[i].recv(2048)
                except OSError:
                    continue
                received[i] += 1
                if self.sampling and received[i] % 10 == 0 and len(data) >= 20:
                    delays.append(arrived - unstamp(data, 12)[0])

    def totals(self) -> tuple[int, int, int, int]:
        """(sent by phones, received by gateways, sent by gateways, received by phones);
        with the phones' side only, the middle two are 0."""
        c = self.calls
        return (
            sum(self.sent[:c]),
            sum(self.received[c:]),
            sum(self.sent[c:]),
            sum(self.received[:c]),
        )

    def close(self) -> None:
        self.epoll.close()
        for s in self.sockets:
            s.close()


class LogTail:
    """New ``<log>`` lines of a sipp log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind("\n") + 1
        self.offset += end
        return data[:end].splitlines()


_MEDIA_CLOSED = re.compile(
    r"media sent (\d+), received (\d+), lost (\d+), malformed (\d+), foreign (\d+)"
)


def media_phase(
    work: Path, counts: Sequence[int], seconds: float, warmup: float, setup_rate: int, cpu: int,
    echo: bool, spin: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    results = []
    for calls in counts:
        app = AnswerApp()
        gateway_port = free_udp_port(GATEWAY_IP)
        run_dir = work / f"media-{calls}"
        run_dir.mkdir()
        try:
            with bench_server(run_dir, gateway_port, cpu) as server:
                username = provision(server, app)
                result = one_media_run(
                    run_dir, server, username, gateway_port, calls, seconds, warmup, setup_rate,
                    echo, spin,
                )  # fmt: skip
            closed = [tuple(map(int, m)) for m in _MEDIA_CLOSED.findall(server.log())]
            result["server_sessions_closed"] = len(closed)
            result["server_sent"] = sum(c[0] for c in closed)
            result["server_received"] = sum(c[1] for c in closed)
            result["server_seq_gaps"] = sum(c[2] for c in closed)
            print(
                f"  server media counters over the whole run ({len(closed)} sessions):"
                f" sent {result['server_sent']}, received {result['server_received']},"
                f" sequence gaps {result['server_seq_gaps']}",
                flush=True,
            )
            results.append(result)
        finally:
            app.stop()
    return results


def one_media_run(
    work: Path, server: Server, username: str, gateway_port: int, calls: int, seconds: float,
    warmup: float, setup_rate: int, echo: bool, spin: bool = False,
) -> dict[str, Any]:  # fmt: skip
    peers = MediaPeers(calls, ("127.0.0.1",) if echo else ("127.0.0.1", GATEWAY_IP), spin)
    ramp = calls / setup_rate
    hold_ms = int((ramp + 30 + warmup + seconds + 5) * 1000)
    echo_port = free_media_ports(GATEWAY_IP, avoid=gateway_port)  # sipp binds 4 from it
    try:
        if echo:  # every call's gateway side is sipp's echo port
            rows = [(str(echo_port),)] * calls
        else:
            rows = [(str(peers.port(1, i)),) for i in range(calls)]
        gateway = sipp(
            work, "gw", "calls_gateway", rows,
            local_ip=GATEWAY_IP, port=gateway_port, logs=True, media_port=echo_port,
            extra=["-m", str(calls), "-l", str(calls + 10), *(["-rtp_echo"] if echo else [])],
        )  # fmt: skip
        time.sleep(0.3)
        phone = sipp(
            work, "phone", "calls_phone",
            [(username, NUMBER, auth(username, PASSWORD), str(peers.port(0, i)))
             for i in range(calls)],
            remote=("127.0.0.1", server.sip_port), logs=True,
            extra=["-r", str(setup_rate), "-m", str(calls), "-l", str(calls + 10),
                   "-set", "hold", str(hold_ms), "-timeout", f"{int(hold_ms / 1000) + 60}s"],
        )  # fmt: skip
        tails = [(LogTail(work / "phone.log"), "127.0.0.1"), (LogTail(work / "gw.log"), GATEWAY_IP)]

        def follow() -> None:
            for tail, host in tails:
                for line in tail.lines():
                    parts = line.split()
                    if len(parts) == 3 and parts[0] in ("PHONE", "GATEWAY"):
                        peers.activate(host, int(parts[1]), int(parts[2]))

        start = time.monotonic()
        # Ramp: set the calls up (media flows on each as soon as it is bridged).
        limit = start + ramp + 30
        sides = 1 if echo else 2
        while sum(peers.active) < sides * calls and time.monotonic() < limit:
            peers.run_until(time.monotonic() + 0.2, follow)
        connected = sum(peers.active) // sides
        ramp_took = time.monotonic() - start
        peers.run_until(time.monotonic() + warmup, follow)
        pid = server.process.pid
        peer_cpus = os.sched_getaffinity(0)
        before, cpu0, t0 = peers.totals(), cpu_seconds(pid), time.monotonic()
        peers0 = cpu_busy(peer_cpus)
        mine0 = os.times()
        sipps = {"sipp phone": phone.pid, "sipp gateway": gateway.pid}
        sipp0 = {name: cpu_seconds(p) for name, p in sipps.items()}
        late0 = peers.late_cycles
        peers.sampling = True
        peers.run_until(t0 + seconds)
        peers.sampling = False
        after, cpu1, t1 = peers.totals(), cpu_seconds(pid), time.monotonic()
        peers_busy = busy_pct(peers0, cpu_busy(peer_cpus))
        mine1 = os.times()
        shares = {name: cpu_seconds(p) - sipp0[name] for name, p in sipps.items()}
        shares["RTP peers"] = mine1.user + mine1.system - mine0.user - mine0.system
        rss = rss_mb(pid)
        late = peers.late_cycles - late0
        # Stop sending; let what is in flight arrive, then count it too.
        peers.run_until(time.monotonic() + 0.5, sending=False)
        drained = peers.totals()
        phone.terminate()
        gateway.terminate()
        wait(phone, 10)
        wait(gateway, 10)
    finally:
        peers.close()
    window = t1 - t0
    if echo:  # each packet crossed the server twice: to the echo and back
        up_sent, up_recv = after[0] - before[0], drained[3] - before[3]
        down_sent, down_recv = up_sent, up_recv
        loss = 1 - up_recv / max(1, up_sent)
        relayed = 2 * up_recv / window
    else:
        up_sent, up_recv = after[0] - before[0], drained[1] - before[1]
        down_sent, down_recv = after[2] - before[2], drained[3] - before[3]
        loss = 1 - (up_recv + down_recv) / max(1, up_sent + down_sent)
        relayed = (up_recv + down_recv) / window
    delays = sorted(peers.delays)

    def pct(q: float) -> float | None:
        if not delays:
            return None
        return round(1000 * delays[min(len(delays) - 1, int(q * len(delays)))], 2)

    result = {
        "calls": calls,
        "connected": connected,
        "ramp_s": round(ramp_took, 1),
        "window_s": round(window, 2),
        "far_end": "sipp -rtp_echo" if echo else "sockets",
        "peer_wait": "spin" if spin else "sleep",
        "phone_to_gateway": {"sent": up_sent, "received": up_recv},
        "gateway_to_phone": {"sent": down_sent, "received": down_recv},
        "loss_pct": round(100 * loss, 3),
        "relayed_per_s": round(relayed),
        "delay_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
        "server_rss_mb": round(rss, 1),
        "peer_cpus_busy_pct": peers_busy,
        "peer_cpu_pct": {k: round(100 * v / window, 1) for k, v in shares.items()},
        "peer_late_cycles": late,
    }
    flows = (
        f"round trip (phone, gateway echo, phone) {up_recv}/{up_sent}"
        if echo
        else f"phone->gateway {up_recv}/{up_sent}, gateway->phone {down_recv}/{down_sent}"
    )
    print(
        f"calls {calls:4d}: {connected} bridged (ramp {ramp_took:.1f} s); in {window:.1f} s:"
        f" {flows},"
        f" loss {result['loss_pct']} %, {result['relayed_per_s']} packets/s relayed,"
        f" delay p50/p99/max {pct(0.5)}/{pct(0.99)}/{pct(1.0)} ms,"
        f" server CPU {result['server_cpu_pct']} %, RSS {result['server_rss_mb']} MB,"
        f" peers' CPU {peers_busy} % ({result['peer_cpu_pct']}; their sender fell behind"
        f" {late} times)",
        flush=True,
    )
    return result


# -- main -------------------------------------------------------------------------------


def git_head(tree: Path) -> str:
    """The tree's commit, for the record."""
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return out.stdout.strip()[:72]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,200", help="setup rates, calls/s ('' to skip)")
    parser.add_argument("--calls", default="250,500", help="bridged call counts ('' to skip)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring RTP")
    parser.add_argument("--setup-rate", type=int, default=50, help="calls/s when ramping up")
    parser.add_argument("--server-cpu", type=int, default=1, help="CPU for the server")
    parser.add_argument(
        "--far-end",
        choices=("echo", "sockets"),
        default="echo",
        help="gateway-side media: sipp -rtp_echo, or sockets of this process like the phones'",
    )
    parser.add_argument(
        "--peer-wait",
        choices=("sleep", "spin"),
        default="sleep",
        help="this process's sockets: sleep in epoll, or poll without sleeping",
    )
    add_peers_sched_option(parser)
    parser.add_argument("--json", type=Path, help="write the figures there too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="the source tree the server runs [this one]"
    )
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(args.tree.resolve())
    rates = [int(r) for r in args.rates.split(",") if r]
    counts = [int(c) for c in args.calls.split(",") if c]
    if any(r <= 0 or r > 2000 for r in rates) or any(c <= 0 or c > 3000 for c in counts):
        parser.error("rates must be 1-2000 calls/s and call counts 1-3000")
    cpus = os.sched_getaffinity(0)
    others = (cpus - {args.server_cpu}) or cpus
    os.sched_setaffinity(0, others)  # this process, sipp and the app off the server's CPU
    apply_peers_sched(args)
    work = Path(tempfile.mkdtemp(prefix="calls-bench-"))
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" server ({args.tree.resolve()}, {git_head(args.tree)}) on CPU {args.server_cpu},"
        f" peers on {sorted(others)}; load {os.getloadavg()}",
        flush=True,
    )
    figures: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        if rates:
            figures["rates"] = rate_phase(work, rates, args.seconds, args.server_cpu)
        if counts:
            figures["bridged"] = media_phase(
                work, counts, args.seconds, args.warmup, args.setup_rate, args.server_cpu,
                args.far_end == "echo", args.peer_wait == "spin",
            )  # fmt: skip
    finally:
        figures["load_after"] = os.getloadavg()
        print(f"load average after: {figures['load_after']}; work dir {work}", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
