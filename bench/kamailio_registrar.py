"""Kamailio as the reference registrar for ``bench/register_bench.py --kamailio``.

The setup issue 14 compared against: Kamailio 5.6 (Debian ``kamailio`` and
``kamailio-sqlite-modules``) with ``bench/kamailio/registrar.cfg``: one UDP worker,
digest against a SQLite ``subscriber`` table (auth_db, plain passwords, HA1
computed per check), bindings in memory (usrloc ``db_mode`` 0) or, *durable*,
written through to SQLite (``db_mode`` 1: what our server does, a commit per
binding), stateless replies.
It listens on 127.0.0.1 only and gets the same users as our server, so that the
same sipp scenario and injection files drive both.

Kamailio is several processes (main, the UDP worker, timers); its CPU is the sum
of all of them, and all are pinned where the benchmark pins the server.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from bench.placement import normal_policy, pin

__all__ = ("KAMAILIO_CONFIG", "Kamailio", "have_kamailio")

KAMAILIO_CONFIG = Path(__file__).resolve().parent / "kamailio" / "registrar.cfg"
#: Kamailio's own SQL for the tables (Debian's kamailio-sqlite-modules).
SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
#: Seconds Kamailio may take to answer its first request.
START_TIMEOUT = 15.0
#: Shared and private memory, MiB: room for 100,000 bindings and more.
SHM_MB = 512
PKG_MB = 32


def have_kamailio() -> bool:
    """Whether the kamailio binary and its SQLite schema are installed."""
    return shutil.which("kamailio") is not None and (SCHEMA_DIR / "auth_db-create.sql").exists()


def _children(pid: int) -> list[int]:
    """*pid* and every process below it."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.extend(_children(int(stat.parent.name)))
    return found


def _cpu_seconds(pid: int, ticks: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    return 0.0


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Kamailio:
    """A running Kamailio registrar on 127.0.0.1:*port* with *users* provisioned."""

    def __init__(
        self,
        workdir: Path,
        users: Iterable[tuple[str, str]],
        port: int,
        domain: str = "127.0.0.1",
        cpus: set[int] | None = None,
        durable: bool = False,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = port
        self.database = workdir / "kamailio.sqlite3"
        self.database.unlink(missing_ok=True)
        connection = sqlite3.connect(self.database)
        with connection:
            connection.executescript((SCHEMA_DIR / "standard-create.sql").read_text())
            connection.executescript((SCHEMA_DIR / "auth_db-create.sql").read_text())
            connection.executescript((SCHEMA_DIR / "usrloc-create.sql").read_text())
            connection.executemany(
                "INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                [(user, domain, password) for user, password in users],
            )
        connection.close()
        self.log_path = workdir / "kamailio.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                "kamailio",
                "-DD",
                "-E",
                "-f",
                str(KAMAILIO_CONFIG),
                "-l",
                f"udp:127.0.0.1:{port}",
                "-m",
                str(SHM_MB),
                "-M",
                str(PKG_MB),
                "-A",
                f'DBURL="sqlite://{self.database}"',
                *(["-A", "USRLOC_DB"] if durable else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        log.close()
        self._wait_listening()
        for pid in self.pids():
            pin(pid, cpus)
            normal_policy(pid)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.process.returncode}:\n{self.log()}")
            if "Listening on" in self.log() and len(self.pids()) > 2:
                time.sleep(0.5)  # its workers finish their start-up
                return
            time.sleep(0.1)
        raise RuntimeError(f"kamailio did not start in {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The main process and its children."""
        return _children(self.process.pid)

    def cpu_seconds(self, ticks: int) -> float:
        """User + system CPU of every Kamailio process, in seconds."""
        return sum(_cpu_seconds(pid, ticks) for pid in self.pids())

    def rss_mb(self) -> float:
        """Resident memory of every Kamailio process, MiB (shared memory counted once
        per process that touched it: an upper bound)."""
        return sum(_rss_mb(pid) for pid in self.pids())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
