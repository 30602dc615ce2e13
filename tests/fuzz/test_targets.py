"""A short fuzzing run of every target (issue 16); the long runs are ``tools/fuzz.py``.

Each target first takes its own seeds in this process (they must pass: a target that
fails on its seeds is broken, not fuzzed), then atheris (coverage-guided, libFuzzer)
runs it for :data:`SUITE_RUNS` inputs in a child process with a fixed seed, so the
suite sees the same inputs every time.  A crash fails the test with the traceback and
the input's file (replay it with ``python tools/fuzz.py TARGET --replay FILE``).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
#: Inputs per target in the suite: a few seconds each (1,000,000 in the long run).
SUITE_RUNS = 3000
#: Seconds one target's run may take in the suite, at most.
SUITE_SECONDS = 60


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_pass(name: str) -> None:
    target = TARGETS[name]
    assert target.seeds
    for seed in target.seeds:
        target.run(seed)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_coverage_guided_run_finds_nothing(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "fuzz.py"),
            name,
            "--runs",
            str(SUITE_RUNS),
            "--max-time",
            str(SUITE_SECONDS),
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--corpus",
            str(tmp_path / "corpus"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SUITE_SECONDS + 60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output)
    assert runs, output[-3000:]
    assert int(runs[-1]) >= SUITE_RUNS, "the run stopped early"
