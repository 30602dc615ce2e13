"""The tools attackers run against SIP servers, run against ours: SIPVicious.

``svwar`` enumerates accounts by comparing the answers to a known-bad name and to each
candidate; ``svcrack`` guesses passwords.  Against the real ``twistd -n telephony``
(loopback not exempt from throttling here, since the attacker is on 127.0.0.1):

* ``svwar`` finds nothing, with each of its methods, although the dictionary holds a
  real endpoint: an unknown user and a real one get the same answer;
* ``svcrack`` finds a password that comes early in its dictionary (the control: the
  tool works against this server), but not one that comes after the ban threshold.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.restapi import RestClient
from tests.serverproc import Server, running_server
from tests.sipp import free_udp_port, sendable_password

pytestmark = pytest.mark.interop

#: Every run is bounded; svcrack stops 10 s after its last answer.
TOOL_TIMEOUT = 90.0


def _tool(name: str, server: Server, *args: str) -> str:
    """Run ``sipvicious_<name>`` against *server*; its whole output."""
    program = Path(sys.executable).parent / f"sipvicious_{name}"
    done = subprocess.run(
        [str(program), "-p", str(server.sip_port), "-P", str(free_udp_port()), *args, "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ("--throttle-exempt", "::1/128", "--digest-algorithms", "MD5,SHA-256")
    with running_server(tmp_path_factory.mktemp("sipvicious") / "var", args) as s:
        yield s


def test_svwar_cannot_tell_a_real_endpoint_from_unknown_names(
    server: Server, tmp_path: Path
) -> None:
    real = RestClient(server).create_endpoint("alice", sendable_password()).username
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["100", "admin", real, "bob", "ghost000000000001"]) + "\n")
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        report = _tool("svwar", server, "--force", "-v", "-m", method, "-d", str(names))
        assert "Ok SIP device found" in report, report  # it was answered
        assert "found nothing" in report, report
        assert "| Extension" not in report, report


def test_svcrack_is_banned_before_it_reaches_the_password(server: Server, tmp_path: Path) -> None:
    rest = RestClient(server)
    # The control: with the password third in the dictionary, svcrack finds it.
    bob = rest.create_endpoint("bob", "hunter2x")
    early = tmp_path / "early.txt"
    early.write_text("one\ntwo\nhunter2x\nfour\n")
    report = _tool("svcrack", server, "-u", bob.username, "-d", str(early))
    assert f"| {bob.username} | hunter2x |" in report, report
    # The attack: 40 wrong guesses first.  The source is banned long before.
    carol = rest.create_endpoint("carol", "Tr0ub4dor")
    late = tmp_path / "late.txt"
    late.write_text("".join(f"guess{i}\n" for i in range(40)) + "Tr0ub4dor\n")
    report = _tool("svcrack", server, "-u", carol.username, "-d", str(late))
    assert "Tr0ub4dor" not in report, report
    assert "found nothing" in report, report
    assert "Banned 127.0.0.1" in server.log()
    assert rest.endpoint(carol.endpoint_id)["sip_registered"] == "false"
