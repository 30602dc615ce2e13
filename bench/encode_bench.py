"""CPU cost of writing recordings: seconds of CPU per recorded minute, by format.

Runs the real :class:`media.encoder.FileSink` (1 s jobs, as during a call) in this
thread on a minute of speech-like audio (a 140 Hz voice with harmonics and noise)
and prints the process CPU time per recorded minute, and the file size.  It does
not assert speed.

    python bench/encode_bench.py --minutes 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from twisted.internet.defer import maybeDeferred

from media.encoder import AudioFileFormat, FileSink


def voice(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    x = sum(3000 / k * np.sin(2 * np.pi * 140 * k * t + rng.uniform(0, 6)) for k in range(1, 25))
    return (x + rng.normal(0, 300, len(t))).clip(-32768, 32767).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    left, right = voice(60, rng), voice(60, rng)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in AudioFileFormat:
            for channels in (1, 2):
                path = Path(tmp) / f"bench-{channels}.{fmt.value}"
                sink = FileSink(path, fmt, channels, run_blocking=maybeDeferred)
                started = time.process_time()
                for _ in range(args.minutes):
                    minute = left if channels == 1 else np.stack([left, right], axis=1)
                    for i in range(0, 60 * 8000, 160):  # 20 ms at a time, as the tick does
                        sink.write(minute[i : i + 160])
                sink.close()
                cpu = (time.process_time() - started) / args.minutes
                size = path.stat().st_size / args.minutes / 1024
                print(f"{fmt.value} {channels} ch: {cpu:.3f} s CPU and {size:.0f} KiB per minute")


if __name__ == "__main__":
    main()
