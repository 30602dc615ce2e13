"""Where a benchmark's processes run: their CPUs and their scheduling policy.

The server gets one CPU and the normal policy; the peers (sipp, the benchmark's
own sockets) get the other CPUs and, with ``--peers-sched batch``, SCHED_BATCH:
such threads do not preempt on wake-up, so the server's sends to them need no
rescheduling interrupt (on the benchmark's VM a send to a sleeping reader costs
the sender about 16 µs against 4 µs to a running one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

__all__ = ("add_peers_sched_option", "apply_peers_sched", "normal_policy", "pin")


def pin(pid: int, cpus: set[int] | None) -> None:
    """Move every thread of *pid* to *cpus* (None: leave it where it is)."""
    if not cpus:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(task.name), cpus)


def normal_policy(pid: int) -> None:
    """Every thread of *pid* under SCHED_OTHER (the peers may run under SCHED_BATCH)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setscheduler(int(task.name), os.SCHED_OTHER, os.sched_param(0))


def add_peers_sched_option(parser: argparse.ArgumentParser) -> None:
    """``--peers-sched normal|batch``."""
    parser.add_argument(
        "--peers-sched",
        choices=("normal", "batch"),
        default="normal",
        help="scheduling policy of the peers (sipp and this process): SCHED_BATCH threads do not"
        " preempt on wake-up, so the server's sends to them need no rescheduling interrupt"
        " (on this VM a send to a sleeping reader costs the sender 16 us against 4 us);"
        " the server always runs under the normal policy",
    )


def apply_peers_sched(args: argparse.Namespace) -> None:
    """Put this process (and so the sipp processes it starts) under the chosen policy;
    the server is set back with :func:`normal_policy` once started."""
    if args.peers_sched == "batch":
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
