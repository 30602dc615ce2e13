"""Coverage-guided fuzzing of the server's input formats with atheris (libFuzzer).

One target per process (libFuzzer exits when it is done)::

    python tools/fuzz.py sip-datagram --runs 1000000 --max-time 3600
    python tools/fuzz.py --all --runs 1000000 --max-time 3600 --json fuzz.json

``--all`` runs every target in turn, each in its own process, and prints a table:
inputs tried, crashes, seconds, coverage (libFuzzer's ``cov``), the load average.
A crash writes the input to ``--artifacts`` (``crash-<sha1>``) and its traceback to
the output; replay it with ``python tools/fuzz.py TARGET --replay FILE``.  Every run
is bounded by ``--runs`` and ``--max-time``; one input may take at most
``--input-timeout`` seconds (a slower one counts as a crash: a denial of service).

The targets and seeds are in ``tests/fuzz/targets.py``.  Run from the repository
root, in the project's virtualenv, with atheris installed (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages whose code the fuzzer measures coverage in (their imports are instrumented).
INSTRUMENTED = ["telephony", "media", "xml_dsl"]
#: Highest 1-minute load average at which a run of --all starts [ours: the machine
#: is shared]; it waits (at most --wait-load seconds) for the load to drop.
MAX_LOAD = 1.5


def _fuzz_one(args: argparse.Namespace) -> None:
    """Run one target in this process (never returns: libFuzzer exits)."""
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS
    target = TARGETS[args.target]
    if args.replay:
        target.run(Path(args.replay).read_bytes())
        print(f"{args.replay}: no bug")
        return
    if args.corpus:
        corpus = Path(args.corpus)
    else:
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(target.seeds):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    flags = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-max_total_time={int(args.max_time)}",
        f"-timeout={int(args.input_timeout)}",
        f"-max_len={target.max_len}",
        f"-seed={args.seed}",
        f"-artifact_prefix={artifacts}/",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(flags, target.run)
    atheris.Fuzz()


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_COVERAGE = re.compile(r"cov: (\d+)")


def run_target(name: str, args: argparse.Namespace) -> dict[str, object]:
    """Fuzz *name* in a child process; its figures."""
    cmd = [sys.executable, __file__, name, "--runs", str(args.runs)]
    cmd += ["--max-time", str(args.max_time)]
    cmd += ["--seed", str(args.seed), "--artifacts", args.artifacts]
    cmd += ["--input-timeout", str(args.input_timeout)]
    started = time.monotonic()
    load = os.getloadavg()[0]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, check=False, timeout=args.max_time + 300
    )
    output = done.stdout + done.stderr
    executed = _EXECUTED.findall(output) or [m[0] for m in _DONE.findall(output)]
    coverage = _COVERAGE.findall(output)
    return {
        "target": name,
        "inputs": int(executed[-1]) if executed else 0,
        "crashes": 0 if done.returncode == 0 else 1,
        "returncode": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "coverage": int(coverage[-1]) if coverage else None,
        "load_at_start": round(load, 2),
        "tail": "" if done.returncode == 0 else output[-4000:],
    }


def _wait_for_quiet(limit: float) -> None:
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] > MAX_LOAD and time.monotonic() < deadline:
        time.sleep(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="a target name (see --list)")
    parser.add_argument("--all", action="store_true", help="every target, one after the other")
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--only", help="with --all: these targets, comma-separated")
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--max-time", type=float, default=600, help="seconds per target, at most")
    parser.add_argument(
        "--input-timeout", type=float, default=10, help="seconds one input may take"
    )
    parser.add_argument("--seed", type=int, default=4475, help="libFuzzer's random seed")
    parser.add_argument("--corpus", help="corpus directory (kept; default: a temporary one)")
    parser.add_argument("--artifacts", default=str(Path(tempfile.gettempdir()) / "fuzz-artifacts"))
    parser.add_argument("--replay", help="run one saved input through the target")
    parser.add_argument("--json", help="write the --all figures to this file")
    parser.add_argument(
        "--wait-load", type=float, default=600, help="seconds to wait for a quiet machine"
    )
    args = parser.parse_args()
    if args.list:
        sys.path.insert(0, str(ROOT))
        from tests.fuzz.targets import TARGETS

        for target in TARGETS.values():
            print(f"{target.name:14} {target.summary}")
        return 0
    if not args.all:
        if not args.target:
            parser.error("give a target, --all or --list")
        _fuzz_one(args)
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.fuzz.targets import TARGETS

    rows = []
    names = args.only.split(",") if args.only else list(TARGETS)
    for name in names:
        _wait_for_quiet(args.wait_load)
        row = run_target(name, args)
        rows.append(row)
        print(
            f"{name:14} {row['inputs']:>10,} inputs  {row['crashes']} crashes  "
            f"{row['seconds']:>7} s  cov {row['coverage']}  load {row['load_at_start']}",
            flush=True,
        )
        if row["tail"]:
            print(row["tail"])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if any(r["crashes"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
