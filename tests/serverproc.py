"""Run the real server, ``twistd -n telephony``, as a subprocess on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pytest

import telephony
from tests.sipp import free_udp_port

#: How long the server may take to answer /healthz after it is started, in seconds.
START_TIMEOUT = 20.0


def database_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the server's SQLite file read by a connection of our own, as a new
    process (a restarted server) would read them."""
    conn = sqlite3.connect(str(data_dir / "telephony.sqlite3"))
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the SIP listener binds both)."""
    return free_udp_port("127.0.0.1")


def twistd() -> str:
    """The ``twistd`` script next to the running interpreter."""
    candidate = Path(sys.executable).parent / "twistd"
    if not candidate.exists():
        raise RuntimeError(f"twistd not found next to {sys.executable}")
    return str(candidate)


@attrs.define
class Server:
    """A running server: its URLs, credentials, data directory and log."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    http_port: int
    sip_port: int
    log_path: Path
    log_file: BinaryIO

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def credentials(self) -> tuple[str, str]:
        stored = json.loads((self.data_dir / "credentials.json").read_text())
        return stored["auth_id"], stored["auth_token"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, as in a crash or an OOM kill."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        self.log_file.close()

    def stop(self) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


def start_server(
    data_dir: Path, extra_args: Sequence[str] = (), http_port: int | None = None
) -> Server:
    """Start ``twistd -n telephony`` and wait until ``/healthz`` answers 200."""
    http_port = http_port or free_port()
    sip_port = free_sip_port()
    log_path = data_dir.parent / f"{data_dir.name}-twistd-{http_port}.log"
    args = [
        twistd(),
        "-n",
        "--pidfile=",
        "telephony",
        "--data-dir",
        str(data_dir),
        "--http",
        f"tcp:{http_port}:interface=127.0.0.1",
        "--sip-listen",
        f"127.0.0.1:{sip_port}",
        *extra_args,
    ]
    log_file = log_path.open("ab")
    # The server runs the same ``telephony`` the tests import, whichever tree that is.
    tree = str(Path(telephony.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath}
    process = subprocess.Popen(
        args, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=data_dir.parent
    )
    server = Server(process, data_dir, http_port, sip_port, log_path, log_file)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"twistd exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become healthy in {START_TIMEOUT} s:\n{server.log()}")


@contextmanager
def running_server(data_dir: Path, extra_args: Sequence[str] = ()) -> Iterator[Server]:
    """A server for the duration of a ``with`` block; stopped (cleanly) after."""
    server = start_server(data_dir, extra_args)
    try:
        yield server
    finally:
        code = server.stop()
        # Twisted re-raises SIGTERM once it has shut down cleanly, hence -15.
        assert code in (0, -signal.SIGTERM), f"twistd exited with {code}:\n{server.log()}"
        log = server.log()
        assert "Server Shut Down." in log
        assert "Traceback" not in log, log
        assert "Unhandled" not in log, log


def plivo_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real ``plivo`` SDK's client, its API base pointed at *server*."""
    import plivo
    import plivo.rest.client

    base = f"{server.base_url}/v1/Account"
    for name in (
        "PLIVO_API_BASE_URI",
        "API_VOICE_BASE_URI",
        "API_VOICE_BASE_URI_FALLBACK_1",
        "API_VOICE_BASE_URI_FALLBACK_2",
    ):
        monkeypatch.setattr(plivo.rest.client, name, base)
    auth_id, auth_token = server.credentials()
    return plivo.RestClient(auth_id, auth_token)
