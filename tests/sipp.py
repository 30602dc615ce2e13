"""Run ``sipp`` (Debian's ``sip-tester``) against a server and read back what it saw.

One run gets its own directory, where sipp writes its files under names we choose
(statistics CSV, error log, message log) or that we find by suffix (response times).
:func:`run_sipp` waits for the run; :func:`start_sipp` returns at once so that several
sipp processes can load a server together (one sipp saturates near 1,000 calls/s).

The options every run gets, whatever the caller asks (PROTOCOL-NOTES §7): loopback
addresses for signalling and media (``-i``/``-mi``), ``-nostdin``, a global timeout
that counts as a failure, and ``-trace_err``.  sipp's exit codes: 0 every call
succeeded, 1 at least one failed, 97 timeout or internal exit, 99 no call, 254 bind
error, 255 fatal.
"""

from __future__ import annotations

import csv
import itertools
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = (
    "SCENARIOS",
    "SippProcess",
    "SippResult",
    "authentication",
    "free_udp_port",
    "have_sipp",
    "received_messages",
    "run_sipp",
    "sendable_password",
    "start_sipp",
    "write_injection",
)

#: The scenario files of the interop tests.
SCENARIOS = Path(__file__).parent / "interop" / "scenarios"

_runs = itertools.count(1)


def have_sipp() -> bool:
    """Whether the ``sipp`` binary is on PATH."""
    return shutil.which("sipp") is not None


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on *host* (and free for TCP too, as sipp opens both for SIP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def free_media_ports(host: str, avoid: int) -> int:
    """A base for sipp's ``-mp``: sipp binds audio RTP/RTCP at base, base + 1 and
    video at base + 2, base + 3; all four free on *host* and none of them *avoid*
    (the scenario's SIP port: a random base two below it made sipp fail to bind)."""
    for _ in range(50):
        base = free_udp_port(host)
        if avoid in range(base, base + 4) or base + 3 > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base + 1, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError("no four free ports in a row")


def sendable_password() -> str:
    """A random password that sipp can send (see `authentication`).

    ``secrets.token_urlsafe`` alone starts with ``0x`` about once in 2,000 draws,
    which made a 50-endpoint test fail now and then; a letter first rules that out.
    """
    return "p" + secrets.token_urlsafe(12)


def authentication(username: str, password: str) -> str:
    """The ``[authentication ...]`` keyword for an injection field.

    sipp reads a password that starts with ``0x`` as a hex (AKA) key, and ends the
    keyword's values at spaces and ``]``: such passwords cannot be passed this way.
    """
    if password.lower().startswith("0x") or any(c in password for c in " ]"):
        raise ValueError(f"sipp cannot send the password {password!r}")
    return f"[authentication username={username} password={password}]"


def write_injection(
    path: Path, rows: Iterable[Sequence[object]], order: str = "SEQUENTIAL"
) -> Path:
    """Write a sipp injection file (``-inf``): *order* line, then ``;``-separated rows."""
    lines = [order, *(";".join(str(field) for field in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@attrs.frozen
class SippResult:
    """What one sipp run reported.

    :ivar returncode: sipp's exit code (0: every call succeeded).
    :ivar stats: the last row of the ``-trace_stat`` CSV, by column name
        (``SuccessfulCall(C)``, ``FailedCall(C)``, ``Retransmissions(C)``...).
    :ivar errors: the ``-trace_err`` log (unexpected messages, timeouts).
    :ivar messages: the ``-trace_msg`` log, when asked for.
    :ivar response_times: ``(rtd number, milliseconds)`` of every call, when
        ``trace_rtt`` was asked for (scenarios mark them with ``start_rtd``/``rtd``).
    :ivar elapsed: seconds from sipp's start to its last statistics row.
    """

    returncode: int
    stats: Mapping[str, str]
    errors: str
    messages: str
    stdout: str
    response_times: Sequence[tuple[int, float]]
    workdir: Path

    def count(self, column: str) -> int:
        """A cumulative counter, e.g. ``count("SuccessfulCall")``; 0 when absent."""
        value = self.stats.get(f"{column}(C)", "0").strip()
        return int(value) if value.isdigit() else 0

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.count("Retransmissions")

    @property
    def elapsed(self) -> float:
        """Seconds between sipp's start and its last statistics dump."""
        try:
            start = float(self.stats["StartTime"].split("\t")[-1])
            current = float(self.stats["CurrentTime"].split("\t")[-1])
        except (KeyError, ValueError):
            return 0.0
        return current - start

    def describe(self) -> str:
        """A failure message: exit code, counters, the error log and sipp's screen."""
        return (
            f"sipp exited {self.returncode}: {self.successful} successful, {self.failed} "
            f"failed, {self.retransmissions} retransmissions (files in {self.workdir})\n"
            f"--- errors ---\n{self.errors[-4000:]}\n--- screen ---\n{self.stdout[-3000:]}"
        )


@attrs.define
class SippProcess:
    """A sipp run in progress; :meth:`wait` collects its :class:`SippResult`."""

    process: subprocess.Popen[str]
    workdir: Path
    timeout: float

    def wait(self) -> SippResult:
        """Wait for sipp to exit (killed after its timeout plus a margin) and read its files."""
        try:
            stdout, _ = self.process.communicate(timeout=self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, _ = self.process.communicate()
        return SippResult(
            returncode=self.process.returncode,
            stats=_last_stats(self.workdir / "stats.csv"),
            errors=_read(self.workdir / "errors.log"),
            messages=_read(self.workdir / "messages.log"),
            stdout=stdout or "",
            response_times=_response_times(self.workdir),
            workdir=self.workdir,
        )


def start_sipp(
    scenario: Path | str,
    remote: tuple[str, int],
    *,
    workdir: Path,
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    transport: str = "u1",
    injection: Path | None = None,
    calls: int = 1,
    rate: float | None = None,
    limit: int | None = None,
    timeout: float = 20.0,
    keys: Mapping[str, str] | None = None,
    trace_msg: bool = False,
    trace_rtt: bool = False,
    rtt_freq: int = 1,
    stat_period: float = 1.0,
    extra_args: Sequence[str] = (),
) -> SippProcess:
    """Start sipp as a UAC running *scenario* (a path, or a built-in name like ``uac``).

    :param remote: the server's (host, port).
    :param workdir: a directory under which this run gets its own folder.
    :param local_port: sipp's ``-p`` (a fresh free UDP port when None).
    :param calls: ``-m``, calls to place before exiting.
    :param rate: ``-r`` in calls per second (sipp's default, 10, when None).
    :param limit: ``-l``, most calls open at once.
    :param timeout: the global timeout, seconds; reaching it makes the run fail.
    :param keys: ``-key NAME VALUE`` pairs, used as ``[NAME]`` in the scenario.
    :param trace_rtt: record every call's response times (``-trace_rtt``), written out
        every *rtt_freq* calls (and at the end).
    :param stat_period: seconds between rows of the statistics CSV.
    """
    local_port = local_port or free_udp_port(local_ip)
    run_dir = workdir / f"sipp-{next(_runs)}-{local_port}"
    run_dir.mkdir(parents=True)
    scenario_args = (
        ["-sf", str(Path(scenario).resolve())]
        if Path(scenario).suffix == ".xml"
        else ["-sn", str(scenario)]
    )
    args = [
        "sipp",
        f"{remote[0]}:{remote[1]}",
        *scenario_args,
        "-i",
        local_ip,
        "-mi",
        local_ip,
        "-p",
        str(local_port),
        "-t",
        transport,
        "-m",
        str(calls),
        "-nostdin",
        "-timeout",
        f"{timeout:g}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        "errors.log",
        "-trace_stat",
        "-stf",
        "stats.csv",
        "-fd",
        f"{max(1, round(stat_period * 1000))}ms",
    ]
    if injection is not None:
        args += ["-inf", str(injection.resolve())]
    if rate is not None:
        args += ["-r", f"{rate:g}"]
    if limit is not None:
        args += ["-l", str(limit)]
    if trace_msg:
        args += ["-trace_msg", "-message_file", "messages.log"]
    if trace_rtt:
        args += ["-trace_rtt", "-rtt_freq", str(rtt_freq)]
    for name, value in (keys or {}).items():
        args += ["-key", name, value]
    args += list(extra_args)
    (run_dir / "command").write_text(" ".join(args) + "\n")
    process = subprocess.Popen(
        args,
        cwd=run_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    return SippProcess(process, run_dir, timeout)


def run_sipp(scenario: Path | str, remote: tuple[str, int], **kwargs: object) -> SippResult:
    """:func:`start_sipp`, then wait for the result."""
    return start_sipp(scenario, remote, **kwargs).wait()  # type: ignore[arg-type]


# -- reading sipp's files ----------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _last_stats(path: Path) -> dict[str, str]:
    text = _read(path)
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _response_times(run_dir: Path) -> list[tuple[int, float]]:
    """Rows ``date_ms;response_time_ms;rtd_no`` of sipp's ``*_rtt.csv``."""
    times: list[tuple[int, float]] = []
    for path in sorted(run_dir.glob("*_rtt.csv")):
        for row in csv.reader(_read(path).splitlines(), delimiter=";"):
            if len(row) < 3:
                continue
            try:
                times.append((int(row[2].strip()), float(row[1])))
            except ValueError:
                continue  # the header line
    return times


_MESSAGE_START = re.compile(r"^-{20,} .*$", re.M)


def received_messages(log: str) -> list[str]:
    """The SIP messages a ``-trace_msg`` log shows as received, in order."""
    messages = []
    for block in _MESSAGE_START.split(log):
        head, _, body = block.strip("\n").partition("\n")
        if "message received" in head:
            messages.append(body.strip("\n"))
    return messages
