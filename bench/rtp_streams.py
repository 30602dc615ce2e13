"""How many simultaneous 20 ms RTP streams one core sends and receives.

One process, pinned to one CPU, runs ``N`` media sessions of the real engine
on loopback, paired with each other, so the process both sends and receives
``N`` streams (50 packets/s each way per stream), exactly the load of ``N``
call legs of a server.  Every frame carries the time it was due on the shared
20 ms tick; the receiving session's listener computes how late it arrived.

A packet is *late* if it arrives more than 20 ms (one frame) after it was due,
or never.  Printed per N: packets/s, late and lost %, lateness percentiles,
CPU use, tick statistics and resident memory.  Nothing is asserted.

Example::

    python bench/rtp_streams.py --streams 250 500 1000 1500 --seconds 10 --cpu 1
"""

from __future__ import annotations

import argparse
import array
import gc
import os
import resource
import struct
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402
from zope.interface import implementer  # noqa: E402

from media.config import MediaConfig, PortRange  # noqa: E402
from media.engine import MediaEngine  # noqa: E402
from media.g711 import Codec  # noqa: E402
from media.interfaces import AudioFrame, EventFrame, IMediaListener, IMediaSession  # noqa: E402
from media.sdp import Direction, Negotiated  # noqa: E402
from media.sources import FrameSource  # noqa: E402
from media.ticker import SharedTicker  # noqa: E402

_STAMP = struct.Struct("!d")
LATE = 0.020  # seconds: one frame


class StampedSource(FrameSource):
    """Frames that carry the time they were due (looping forever)."""

    def __init__(self, ticker: SharedTicker) -> None:
        self.ticker = ticker
        self.pad = bytes(152)

    def next_payload(self, codec: Codec) -> bytes | None:
        return _STAMP.pack(self.ticker.current_due) + self.pad


@implementer(IMediaListener)
class Lateness:
    """Collects arrival lateness of every frame, in seconds."""

    def __init__(self) -> None:
        self.samples = array.array("d")
        self.recording = False

    def audio_received(self, session: IMediaSession, frame: AudioFrame) -> None:
        if self.recording:
            self.samples.append(reactor.seconds() - _STAMP.unpack_from(frame.payload)[0])

    def event_received(self, session: IMediaSession, frame: EventFrame) -> None:
        pass

    def digit_received(self, session: IMediaSession, digit: str) -> None:
        pass


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def run(
    streams: int, seconds: float, warmup: float, base_port: int, phases: int
) -> dict[str, Any]:
    config = MediaConfig(
        tick_phases=phases,
        rtp_ports=PortRange(base_port, base_port + 2 * streams + 1),
        data_dir=Path("/tmp/telephony-bench"),  # noqa: S108 -- scratch, never written here
        rtcp=False,
    )
    engine = MediaEngine(reactor=reactor, config=config)
    sessions = [engine.create_session(call_uuid=f"bench-{i}") for i in range(streams)]
    lateness = Lateness()
    for i in range(0, streams, 2):
        a, b = sessions[i], sessions[i + 1]
        for me, peer in ((a, b), (b, a)):
            me.configure(
                Negotiated(
                    Codec.PCMU, 0, 101, "127.0.0.1", peer.local_address[1], Direction.SENDRECV
                )
            )
            me.add_listener(lateness)
    for s in sessions:
        # Closing the sessions at the end fails these Deferreds: expected.
        s.play_source(StampedSource(engine.ticker)).addErrback(lambda _: None)
    await deferLater(reactor, warmup, lambda: None)
    ticker = engine.ticker
    sent0 = sum(s.counters.sent for s in sessions)
    recv0 = sum(s.counters.received for s in sessions)
    skipped0, late_wakeups0, frames0 = ticker.skipped, ticker.late_wakeups, ticker.frames
    ticker.max_lateness = 0.0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    lateness.recording = True
    await deferLater(reactor, seconds, lambda: None)
    lateness.recording = False
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    sent = sum(s.counters.sent for s in sessions) - sent0
    received = sum(s.counters.received for s in sessions) - recv0
    memory = rss_mb()
    for s in sessions:
        s.close()
    values = sorted(lateness.samples)
    expected = streams * seconds / 0.020
    late = sum(1 for v in values if v > LATE)
    # Lost: sent in the window but not received (edge effects are < 1 frame per stream).
    lost = max(0, sent - received)
    result = {
        "streams": streams,
        "phases": phases,
        "seconds": round(wall, 2),
        "sent_pps": round(sent / wall),
        "received_pps": round(received / wall),
        "expected_frames": int(expected),
        "measured_frames": len(values),
        "late_pct": round(100 * late / max(1, len(values)), 3),
        "lost_pct": round(100 * lost / max(1, sent), 3),
        "late_or_lost_pct": round(100 * (late + lost) / max(1, len(values) + lost), 3),
        "p50_ms": round(1000 * percentile(values, 50), 2),
        "p90_ms": round(1000 * percentile(values, 90), 2),
        "p99_ms": round(1000 * percentile(values, 99), 2),
        "p999_ms": round(1000 * percentile(values, 99.9), 2),
        "max_ms": round(1000 * (values[-1] if values else float("nan")), 2),
        "cpu_pct": round(
            100 * ((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)) / wall, 1
        ),
        "tick_frames": ticker.frames - frames0,
        "tick_skipped": ticker.skipped - skipped0,
        "tick_late_wakeups": ticker.late_wakeups - late_wakeups0,
        "tick_max_late_ms": round(1000 * ticker.max_lateness, 2),
        "rss_mb": round(memory, 1),
    }
    await deferLater(reactor, 0.5, lambda: None)  # let ports close
    gc.collect()
    return result


async def main(args: argparse.Namespace) -> None:
    print(f"# python {sys.version.split()[0]}, reactor {type(reactor).__name__}, "
          f"cpu affinity {sorted(os.sched_getaffinity(0))}, {os.cpu_count()} CPUs")  # fmt: skip
    started = time.monotonic()
    for n in args.streams:
        if time.monotonic() - started > args.budget:
            print(f"# time budget of {args.budget} s used up; skipping N={n} and above")
            break
        if n % 2:
            n += 1
        result = await run(n, args.seconds, args.warmup, args.base_port, args.phases)
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, nargs="+", default=[250, 500, 1000])
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per N")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU (one core)")
    p.add_argument("--base-port", type=int, default=20000)
    p.add_argument("--phases", type=int, default=4, help="tick phases (MediaConfig.tick_phases)")
    p.add_argument("--budget", type=float, default=300.0, help="stop starting new N after this")
    args = p.parse_args()
    if max(args.streams) > 8000:
        p.error("--streams: at most 8000 (16000 UDP ports)")
    if args.seconds > 120:
        p.error("--seconds: at most 120")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.cpu is not None:
        os.sched_setaffinity(0, {arguments.cpu})
    from twisted.internet.defer import Deferred

    def done(_: object) -> None:
        reactor.stop()

    Deferred.fromCoroutine(main(arguments)).addBoth(done)
    reactor.run()
