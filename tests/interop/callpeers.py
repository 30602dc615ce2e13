"""Peers for the calls interop tests: sipp processes, RTP endpoints, the REST API.

**Signalling** is sipp's (:class:`Sipp`): one process per peer and run, foreground,
bounded by ``-timeout`` and ``-m``, its ``<log>`` lines, errors and messages in files
of the test's directory.

**Media** is ours (:class:`RtpPeer`, ``tests/interop/rtppeer.py``), because sipp can
play a pcap but cannot count or timestamp what it receives. The scenarios advertise
a Python UDP socket's port in their SDP (``-key rtp_port N``, used as ``m=audio
[rtp_port]``) and log the server's RTP port from its SDP; the test then sends paced
RTP from that socket to the server (symmetric RTP: the server latches to our source)
and records every datagram that arrives, with its arrival time. Counting at both
ends of a call shows audio crossing the bridge each way; the arrival times and
payloads are the wire view the RFC 4733 check needs.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tests.serverproc import Server
from tests.sipp import free_media_ports, free_udp_port

SCENARIOS = Path(__file__).parent / "scenarios"

#: The gateway's own loopback address, never confused with the phones' 127.0.0.1.
GATEWAY_IP = "127.0.0.2"

#: A sipp run never outlives this many seconds (its own -timeout ends it first).
SIPP_TIMEOUT = 30


def sipp_binary() -> str:
    path = shutil.which("sipp")
    assert path is not None, "sipp is required for the interop tests (Debian: sip-tester)"
    return path


# -- sipp ---------------------------------------------------------------------------


@attrs.define
class Sipp:
    """A running sipp; :meth:`wait` for its exit code, then read its files."""

    name: str
    process: subprocess.Popen[bytes]
    directory: Path
    port: int
    started: float

    def _file(self, kind: str) -> Path:
        return self.directory / f"{self.name}.{kind}"

    def logs(self) -> str:
        """Its ``<log>`` lines so far."""
        path = self._file("log")
        return path.read_text(errors="replace") if path.exists() else ""

    def report(self) -> str:
        """Everything it wrote, for assertion messages."""
        parts = [f"== sipp {self.name} (port {self.port}) rc={self.process.returncode}"]
        for kind in ("out", "err", "log", "msg"):
            path = self._file(kind)
            if path.exists():
                parts.append(f"-- {kind}:\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def value(self, key: str) -> str | None:
        """The last value it logged as ``KEY value`` (a ``<log>`` line), if any."""
        found = re.findall(rf"^{re.escape(key)} (.*)$", self.logs(), re.MULTILINE)
        return found[-1].strip() if found else None

    def wait_value(self, key: str, timeout: float = 10.0) -> str:
        """Wait until it logs ``KEY value``; returns the value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.value(key)
            if got is not None:
                return got
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"sipp {self.name} never logged {key}\n{self.report()}")

    def wait(self, timeout: float = SIPP_TIMEOUT) -> int:
        """Its exit code (0: every call passed); killed if it overstays."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"sipp {self.name} did not finish\n{self.report()}") from None

    def ok(self, timeout: float = SIPP_TIMEOUT) -> None:
        """Assert that it exits 0."""
        code = self.wait(timeout)
        assert code == 0, self.report()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_sipp(
    directory: Path,
    name: str,
    scenario: str,
    *,
    remote: tuple[str, int] | None = None,
    local_ip: str = "127.0.0.1",
    port: int | None = None,
    rows: Sequence[Sequence[str]] = (),
    keys: Mapping[str, object] | None = None,
    calls: int = 1,
    timeout: int = 20,
    extra: Iterable[str] = (),
) -> Sipp:
    """Start sipp with ``scenarios/<scenario>.xml`` (as UAC toward *remote*, else as UAS).

    :param rows: the injection file's rows, one per call (``SEQUENTIAL``).
    :param keys: ``-key NAME VALUE`` pairs, i.e. ``[NAME]`` in the scenario.
    :param timeout: sipp's global timeout, seconds; reaching it is a failure.
    """
    port = port or free_udp_port(local_ip)
    args = [sipp_binary()]
    if remote is not None:
        args.append(f"{remote[0]}:{remote[1]}")
    args += ["-sf", str(SCENARIOS / f"{scenario}.xml")]
    args += ["-i", local_ip, "-mi", local_ip, "-bind_local", "-p", str(port)]
    args += ["-mp", str(free_media_ports(local_ip, avoid=port))]
    args += ["-m", str(calls), "-nostdin", "-timeout", f"{timeout}s", "-timeout_error"]
    args += ["-trace_err", "-error_file", str(directory / f"{name}.err")]
    args += ["-trace_logs", "-log_file", str(directory / f"{name}.log")]
    args += ["-trace_msg", "-message_file", str(directory / f"{name}.msg")]
    if rows:
        csv = directory / f"{name}.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
        args += ["-inf", str(csv)]
    for key, value in (keys or {}).items():
        args += ["-key", key, str(value)]
    args += list(extra)
    out = (directory / f"{name}.out").open("wb")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=directory)
    out.close()
    return Sipp(name, process, directory, port, time.time())


def auth(user: str, password: str) -> str:
    """The injection field sipp turns into an ``Authorization``/``Proxy-Authorization``."""
    return f"[authentication username={user} password={password}]"


def register(
    directory: Path, name: str, server: Server, user: str, password: str, port: int
) -> None:
    """Register *user* from 127.0.0.1:*port* (sipp, with digest) and wait for the 200."""
    sipp = start_sipp(
        directory,
        name,
        "register_auth",
        remote=("127.0.0.1", server.sip_port),
        port=port,
        rows=[(user, auth(user, password), "sipp-device", "300")],
        timeout=10,
    )
    sipp.ok()


# -- REST ----------------------------------------------------------------------------


class Api:
    """The server's REST API, with its credentials (JSON in, JSON out)."""

    def __init__(self, server: Server) -> None:
        auth_id, token = server.credentials()
        self.base = f"{server.base_url}/v1/Account/{auth_id}"
        basic = base64.b64encode(f"{auth_id}:{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None
        return json.loads(raw) if raw else None

    def application(self, name: str, answer_url: str, **fields: str) -> str:
        """Create an application; its app_id."""
        body = {"app_name": name, "answer_url": answer_url, **fields}
        return str(self.call("POST", "/Application/", body)["app_id"])

    def endpoint(self, username: str, password: str, app_id: str | None = None) -> str:
        """Create an endpoint; its (generated, unique) username."""
        body = {"username": username, "password": password, "alias": username}
        if app_id is not None:
            body["app_id"] = app_id
        return str(self.call("POST", "/Endpoint/", body)["username"])

    def number(self, number: str, app_id: str) -> None:
        """Add a number of ours, steered by *app_id*."""
        body = {"numbers": number, "carrier": "test", "region": "test", "app_id": app_id}
        self.call("POST", "/Number/", body)
