"""An operator logs into the manhole with OpenSSH and evaluates an expression."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.cred import credentials, error

from telephony.manhole import PasswordFileChecker, hash_password
from tests.serverproc import free_port, running_server

pytestmark = pytest.mark.interop


def _keypair(directory: Path, name: str) -> tuple[Path, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = directory / name
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + f" {name}\n"


def _ssh(port: int, key: Path) -> list[str]:
    return [
        "ssh",
        "-tt",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
        "operator@127.0.0.1",
    ]


def _read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> bytes:
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    return seen


def test_ssh_login_evaluates_over_the_live_directory(tmp_path: Path) -> None:
    key, public = _keypair(tmp_path, "operator_key")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(public)
    port = free_port()
    args = ["--manhole", f"tcp:{port}:interface=127.0.0.1", "--manhole-keys", str(authorized)]
    with running_server(tmp_path / "var", args) as server:
        auth_id, token = server.credentials()
        request = urllib.request.Request(
            f"{server.base_url}/v1/Account/{auth_id}/Endpoint/",
            data=json.dumps({"username": "ops", "password": "pw", "alias": "Ops"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        pw = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        pw.add_password(None, server.base_url, auth_id, token)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(pw))
        with opener.open(request, timeout=10) as response:
            assert response.status == 201

        with subprocess.Popen(
            _ssh(port, key), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc:
            assert proc.stdin is not None
            try:
                assert b">>> " in _read_until(proc, b">>> ", 20)
                proc.stdin.write(
                    b"directory.counts().addCallback(lambda c: c['endpoints'] * 7 + 4200)\r"
                )
                proc.stdin.flush()
                # The manhole prints a Deferred's result when it fires: 1 endpoint → 4207.
                output = _read_until(proc, b"called back: 4207", 20)
                assert b"called back: 4207" in output, output
                proc.stdin.write(b"\x04")
                proc.stdin.flush()
                proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    _, public = _keypair(tmp_path, "good_key")
    stranger, _ = _keypair(tmp_path, "stranger_key")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(public)
    port = free_port()
    args = ["--manhole", f"tcp:{port}:interface=127.0.0.1", "--manhole-keys", str(authorized)]
    with running_server(tmp_path / "var", args):
        result = subprocess.run(
            [*_ssh(port, stranger), "true"], capture_output=True, timeout=30, check=False
        )
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr


@pytest_twisted.ensureDeferred
async def test_password_file_checker(tmp_path: Path) -> None:
    path = tmp_path / "manhole.passwd"
    path.write_text(f"# operators\nalice:{hash_password('s3cret', iterations=1000)}\n")
    checker = PasswordFileChecker(path)
    assert (
        await checker.requestAvatarId(credentials.UsernamePassword(b"alice", b"s3cret")) == b"alice"
    )
    for user, password in ((b"alice", b"wrong"), (b"mallory", b"s3cret")):
        with pytest.raises(error.UnauthorizedLogin):
            await checker.requestAvatarId(credentials.UsernamePassword(user, password))
