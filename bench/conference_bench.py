"""Conference mixing: how many rooms of how many members one core mixes on time.

For each ``ROOMSxMEMBERS`` configuration a **server** process, pinned to one CPU
(``--server-cpu``), runs the real media engine (``MediaEngine``, ``RTPSession``,
the shared 20 ms tick, the RTP ports) with one real ``Mixer`` per room and one
session per member, on loopback.  A **peers** process, pinned to the other CPUs
(``--peers-cpu``), plays the members' phones: one UDP socket per member sends a
20 ms PCMU frame of its own tone every 20 ms (every member talks at once, so no
one is gated out: the mixer's worst case) and records, with the kernel's arrival
timestamp (``SO_TIMESTAMPNS``), every mixed frame it gets back.

A frame is **late** if it arrives more than 20 ms (one frame) after its slot: for
each member the slot of frame ``k`` is ``t0 + k * 20 ms`` (``k`` from the RTP
timestamp), with ``t0`` the earliest (arrival - k * 20 ms) seen in the window, so a
frame held back by the server, the kernel or a busy peer counts.  A frame that
never arrives (a gap in a member's RTP timestamps) is **lost** and counts as late
too; a step of more than a second in a member's timestamps (which should never
happen) is counted as a ``jump`` and starts a new slot grid.  Printed per configuration:
members, mixed frames expected and received, late and lost %, lateness
percentiles, the server's CPU (all threads) and RSS, the mixers' own count of
ticks run more than a frame late, the tick's late wake-ups, the collector's runs,
and how much of the server's CPU other processes used meanwhile (``/proc/stat``:
the machine is shared) and the hypervisor stole.  Nothing is
asserted.  From the repository root::

    python bench/conference_bench.py --configs 50x5,100x5,150x5 --seconds 10

The server applies the collector settings ``twistd telephony`` applies
(``telephony.runtime.GCTuning``).

Every loop is bounded in count and time; only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LATE = 0.020  # seconds: one frame
FRAME = 0.020
_RTP = struct.Struct("!BBHII")
#: Most members one run takes (two UDP ports each on the server, one on the peers).
MAX_MEMBERS = 4000
#: Longest measured window, in seconds.
MAX_SECONDS = 120.0
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")


# -- the peers ----------------------------------------------------------------------------


def run_peers(members: int, warmup: float, seconds: float) -> None:
    """Phones: send a tone, stamp what comes back; JSON results on stdout."""
    import numpy as np

    from media.g711 import Codec

    socks = []
    for _ in range(members):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        socks.append(s)
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    servers = json.loads(sys.stdin.readline())
    t = np.arange(160 * 50) / 8000
    payloads = []
    for m in range(members):
        hz = 300 + 37 * (m % 80)
        encoded = Codec.PCMU.encode(np.round(3000 * np.sin(2 * np.pi * hz * t)).astype(np.int16))
        payloads.append([encoded[i * 160 : (i + 1) * 160] for i in range(50)])
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    arrivals: list[list[tuple[int, float]]] = [[] for _ in range(members)]
    space = socket.CMSG_SPACE(_TIMESPEC.size)
    start = time.time() + 0.2
    window = (start + warmup, start + warmup + seconds)
    end = window[1] + 0.5
    next_send, k, sent = start, 0, 0
    while True:
        now = time.time()
        if now >= end:
            break
        if now >= next_send:
            if now - next_send > 0.1:  # stalled: do not burst what is stale
                next_send = now
            for i, s in enumerate(socks):
                header = _RTP.pack(0x80, 0, k & 0xFFFF, (160 * k) & 0xFFFFFFFF, 0x1000 + i)
                try:
                    s.sendto(header + payloads[i][k % 50], ("127.0.0.1", servers[i]))
                    sent += 1
                except OSError:
                    pass
            k += 1
            next_send += FRAME
        for fd, _ in poller.poll(max(0.0, min(next_send, end) - time.time())):
            i = by_fd[fd]
            s = socks[i]
            for _ in range(64):  # drain, bounded
                try:
                    data, anc, _, _ = s.recvmsg(512, space)
                except BlockingIOError:
                    break
                if len(data) < 12:
                    continue
                at = time.time()
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack_from(raw)
                        at = sec + nsec / 1e9
                ts = _RTP.unpack_from(data)[3]
                arrivals[i].append((ts, at))
    lateness: list[float] = []
    lost = received = jumps = 0
    expected = round(seconds / FRAME)
    for got in arrivals:
        inside = [(ts, at) for ts, at in got if window[0] <= at < window[1]]
        received += len(inside)
        if not inside:
            lost += expected
            continue
        # Each packet's frame number, unwrapped from its predecessor's; a step of more
        # than a second either way (a new timeline) starts a new segment, counted, so a
        # stray packet cannot make a whole stream look late.
        segments: list[list[tuple[int, float]]] = [[(0, inside[0][1])]]
        for (prev, _), (ts, at) in itertools.pairwise(inside):
            step = (((ts - prev + 0x80000000) & 0xFFFFFFFF) - 0x80000000) // 160
            if abs(step) > 50:
                jumps += 1
                segments.append([(0, at)])
            else:
                segments[-1].append((segments[-1][-1][0] + step, at))
        for segment in segments:
            frames = [k for k, _ in segment]
            # Frames missing inside the segment (the window's edges cut each stream at a
            # random phase: counting against `expected` would add a frame per member).
            lost += max(0, max(frames) - min(frames) + 1 - len(set(frames)))
            offsets = [at - k * FRAME for k, at in segment]
            base = min(offsets)
            lateness.extend(o - base for o in offsets)
    lateness.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "expected": expected * members, "received": received, "lost": lost, "sent": sent,
        "jumps": jumps,
        "late": sum(1 for v in lateness if v > LATE),
        "p50_ms": _pct(lateness, 50), "p99_ms": _pct(lateness, 99),
        "p999_ms": _pct(lateness, 99.9),
        "max_ms": round(1000 * lateness[-1], 2) if lateness else None,
        "peers_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }), flush=True)  # fmt: skip


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return round(1000 * values[min(len(values) - 1, int(p / 100 * len(values)))], 2)


# -- the server ------------------------------------------------------------------------------


def run_server(args: argparse.Namespace) -> None:
    """The engine with ROOMS mixers of MEMBERS sessions; prints one JSON line of figures."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from media.config import MediaConfig, PortRange
    from media.engine import MediaEngine
    from media.g711 import Codec
    from media.sdp import Direction, Negotiated
    from telephony.runtime import GCTuning

    rooms, members = args.rooms, args.members
    total = rooms * members
    config = MediaConfig(
        rtp_ports=PortRange(args.base_port, args.base_port + 2 * total + 1),
        data_dir=Path("/tmp/telephony-bench"),  # noqa: S108 -- scratch, never written here
        rtcp=False,
    )
    engine = MediaEngine(reactor=reactor, config=config)
    sessions = [engine.create_session(call_uuid=f"m{i}") for i in range(total)]
    peers = subprocess.Popen(
        [sys.executable, __file__, "--role", "peers", "--members", str(total),
         "--warmup", str(args.warmup), "--seconds", str(args.seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert peers.stdin is not None
    assert peers.stdout is not None
    if args.peers_cpu:
        os.sched_setaffinity(peers.pid, set(map(int, args.peers_cpu.split(","))))
    peer_ports = json.loads(peers.stdout.readline())
    mixers = [engine.create_mixer(name=f"room{r}") for r in range(rooms)]
    for i, session in enumerate(sessions):
        session.configure(
            Negotiated(Codec.PCMU, 0, 101, "127.0.0.1", peer_ports[i], Direction.SENDRECV)
        )
        mixers[i // members].add(session)
    peers.stdin.write(json.dumps([s.local_address[1] for s in sessions]) + "\n")
    peers.stdin.flush()
    figures: dict[str, Any] = {}

    def begin() -> None:
        figures["stat0"] = _cpu_stat(args.server_cpu)
        figures["cpu0"] = resource.getrusage(resource.RUSAGE_SELF)
        figures["wall0"] = time.monotonic()
        figures["late0"] = sum(m.late for m in mixers)
        figures["frames0"] = sum(m.frames for m in mixers)
        figures["wakeups0"] = engine.ticker.late_wakeups
        engine.ticker.max_lateness = 0.0

    def finish() -> None:
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = figures["cpu0"]
        wall = time.monotonic() - figures["wall0"]
        used = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        busy, steal = (
            b - a for a, b in zip(figures["stat0"], _cpu_stat(args.server_cpu), strict=True)
        )
        figures.update(
            server_cpu_pct=round(100 * used / wall, 1),
            mixer_ticks=sum(m.frames for m in mixers) - figures["frames0"],
            mixer_late_ticks=sum(m.late for m in mixers) - figures["late0"],
            tick_late_wakeups=engine.ticker.late_wakeups - figures["wakeups0"],
            tick_max_late_ms=round(1000 * engine.ticker.max_lateness, 2),
            rss_mb=round(_rss_mb(), 1),
            others_on_cpu_pct=round(100 * max(0.0, busy - used) / wall, 1),
            steal_pct=round(100 * steal / wall, 1),
            gc_runs=len(pauses),
            gc_max_ms=round(1000 * max(pauses, default=0.0), 2),
        )
        reactor.stop()

    GCTuning().startService()  # as the server runs (telephony.runtime)
    pauses: list[float] = []
    gc_started = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif figures.get("cpu0") is not None:
            pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(gc_timer)
    reactor.callLater(0.2 + args.warmup, begin)
    reactor.callLater(0.2 + args.warmup + args.seconds, finish)
    reactor.run()
    for mixer in mixers:
        mixer.close()
    engine.close_all()
    result = json.loads(peers.stdout.readline() or "{}")
    peers.wait(timeout=30)
    out = {k: v for k, v in figures.items() if not k.endswith("0")}
    print(json.dumps({"rooms": rooms, "members": members, **out, **result}), flush=True)


def _cpu_stat(cpu: int) -> tuple[float, float]:
    """Seconds CPU ``cpu`` has been busy (anyone's work) and stolen by the hypervisor."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            ticks = [int(x) for x in fields[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            busy = sum(ticks[:3]) + sum(ticks[5:7])  # user nice system irq softirq
            return busy / hz, (ticks[7] if len(ticks) > 7 else 0) / hz
    return 0.0, 0.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- driver --------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    print(f"# python {sys.version.split()[0]}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    started = time.monotonic()
    for config in args.configs.split(","):
        if time.monotonic() - started > args.budget:
            print(f"# time budget of {args.budget} s used up; skipping {config} and after")
            break
        rooms, members = (int(x) for x in config.lower().split("x"))
        if not 1 <= rooms * members <= MAX_MEMBERS:
            raise SystemExit(f"--configs: {config}: 1 to {MAX_MEMBERS} members in all")
        command = [sys.executable, __file__, "--role", "server", "--rooms", str(rooms),
                   "--members", str(members), "--warmup", str(args.warmup),
                   "--seconds", str(args.seconds), "--base-port", str(args.base_port),
                   "--peers-cpu", args.peers_cpu]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.seconds + args.warmup + 120,
            preexec_fn=lambda: os.sched_setaffinity(0, {args.server_cpu}),
        )  # fmt: skip
        line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if done.returncode or not line:
            print(f"# {config} failed ({done.returncode}): {done.stderr[-2000:]}")
            continue
        r = json.loads(line)
        r["late_or_lost_pct"] = round(100 * (r["late"] + r["lost"]) / max(1, r["expected"]), 3)
        print(" ".join(f"{k}={v}" for k, v in r.items()), flush=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="50x5", help="ROOMSxMEMBERS, comma-separated")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--peers-cpu", default="0", help="CPUs of the peers, comma-separated")
    p.add_argument("--base-port", type=int, default=20000)
    p.add_argument("--budget", type=float, default=600.0, help="stop starting configs after")
    p.add_argument("--role", choices=("driver", "server", "peers"), default="driver")
    p.add_argument("--rooms", type=int, default=1)
    p.add_argument("--members", type=int, default=1)
    args = p.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds: more than 0, at most {MAX_SECONDS}")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.role == "peers":
        run_peers(arguments.members, arguments.warmup, arguments.seconds)
    elif arguments.role == "server":
        run_server(arguments)
    else:
        main(arguments)
