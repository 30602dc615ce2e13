"""``twistd telephony``: plugin discovery, options, and the service tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from twisted.application.service import IService, IServiceMaker, MultiService
from twisted.plugin import getPlugins

from telephony import tap
from telephony.credentials import CREDENTIALS_FILE
from tests.serverproc import twistd


def test_plugin_is_discoverable() -> None:
    import twisted.plugins

    names = {p.tapname for p in getPlugins(IServiceMaker, twisted.plugins)}
    assert "telephony" in names


def test_options_build_a_config(tmp_path: Path) -> None:
    options = tap.Options()
    options.parseOptions(
        ["--data-dir", str(tmp_path), "--domain", "Example.COM", "--sip-listen", "127.0.0.1:5070"]
    )
    assert options.config.domain == "example.com"
    assert options.config.data_dir == tmp_path
    assert options.config.sip_listen.port == 5070


def test_bad_option_exits_with_one_line() -> None:
    options = tap.Options()
    with pytest.raises(SystemExit) as excinfo:
        options.parseOptions(["--sip-listen", "nope"])
    message = str(excinfo.value.code)
    assert message.startswith("twistd telephony: sip-listen: expected HOST:PORT")
    assert "\n" not in message


def test_twistd_help_lists_the_options() -> None:
    result = subprocess.run(
        [twistd(), "telephony", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in (
        "--data-dir",
        "--sip-listen",
        "--domain",
        "--http",
        "--manhole",
        "--manhole-keys",
        "--manhole-passwd",
        "--auth-id",
        "--auth-token",
        "--config",
        "--blocked-user-agents",
    ):
        assert option in result.stdout


def test_twistd_bad_value_stops_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            twistd(),
            "-n",
            "--pidfile=",
            "telephony",
            "--data-dir",
            str(tmp_path),
            "--http",
            "bogus:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "exactly one line"
    assert result.stderr.startswith("twistd telephony: http: not a Twisted endpoint description")


def test_make_service_tree(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    options = tap.Options()
    options.parseOptions(
        [
            "--data-dir",
            str(tmp_path / "var"),
            "--http",
            "tcp:0:interface=127.0.0.1",
            "--manhole",
            "tcp:0:interface=127.0.0.1",
            "--manhole-keys",
            str(keys),
        ]
    )
    root = tap.makeService(options)
    # makeService set a level filter up for twistd's logging, which this test never starts.
    from twisted.logger import globalLogBeginner

    assert vars(globalLogBeginner).pop("beginLoggingTo", None) is not None
    assert isinstance(root, MultiService)
    assert [s.name for s in root] == ["store", "sip", "trunks", "calls", "http", "manhole", "gc"]
    assert all(IService.providedBy(s) for s in root)
    stored = tmp_path / "var" / CREDENTIALS_FILE
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
    # Nothing listens until the service starts; stop the pool the tree created.
    root.getServiceNamed("store").database.close()  # type: ignore[attr-defined]


def test_generated_credentials_have_plivo_shapes_and_persist(tmp_path: Path) -> None:
    from telephony.credentials import load_or_create_credentials

    first, created = load_or_create_credentials(tmp_path, None, None)
    assert created
    assert first.auth_id.startswith("MA")
    assert len(first.auth_id) == 20
    assert first.auth_id[2:].isalnum()
    assert first.auth_id[2:] == first.auth_id[2:].upper()
    assert len(first.auth_token) == 40
    again, created_again = load_or_create_credentials(tmp_path, None, None)
    assert (again, created_again) == (first, False)
    given, _ = load_or_create_credentials(tmp_path, "MA" + "B" * 18, None)
    assert (given.auth_id, given.auth_token) == ("MA" + "B" * 18, first.auth_token)
    assert "auth_token=<hidden>" in repr(first)
    assert first.check(first.auth_id, first.auth_token)
    other_last = "y" if first.auth_token.endswith("x") else "x"
    assert not first.check(first.auth_id, first.auth_token[:-1] + other_last)


def test_plugin_module_has_no_side_effects() -> None:
    code = (
        "import sys, importlib.util, pathlib;"
        "spec = importlib.util.spec_from_file_location('p', 'twisted/plugins/telephony_plugin.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('telephony.tap' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "False"


def test_filter_log_level_wraps_the_next_begin_only() -> None:
    """The observers twistd starts logging to see ``info`` and above, not ``debug``."""
    import io
    import types
    import warnings

    from twisted.logger import Logger, LogPublisher
    from twisted.logger._global import LogBeginner

    from telephony.runtime import filter_log_level

    publisher = LogPublisher()
    stdio = types.SimpleNamespace(stdout=io.StringIO(), stderr=io.StringIO())
    beginner = LogBeginner(publisher, io.StringIO(), stdio, warnings)
    filter_log_level("info", beginner)
    seen: list[str] = []
    beginner.beginLoggingTo([lambda e: seen.append(e["log_format"])], redirectStandardIO=False)
    assert "beginLoggingTo" not in vars(beginner)  # one call only
    log = Logger(observer=publisher)
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    assert seen == ["i", "w", "e"]

    debug_beginner = LogBeginner(LogPublisher(), io.StringIO(), stdio, warnings)
    filter_log_level("debug", debug_beginner)
    assert "beginLoggingTo" not in vars(debug_beginner)  # nothing to filter


@pytest.mark.parametrize(("level", "written"), [(None, False), ("debug", True)])
def test_twistd_writes_debug_events_only_when_asked(
    tmp_path: Path, level: str | None, written: bool
) -> None:
    """A stray SIP response is a debug event: absent from the log by default."""
    from tests.rawsip import UDPClient, request
    from tests.serverproc import running_server

    args = ["--log-level", level] if level else []
    with running_server(tmp_path / "var", args) as server:
        with UDPClient(("127.0.0.1", server.sip_port)) as client:
            stray = b"SIP/2.0 200 OK" + request("OPTIONS", "sip:x", local=client.local)[21:]
            client.send(stray)
            answer = client.exchange(request("OPTIONS", "sip:127.0.0.1", local=client.local))
            assert answer is not None
            assert answer.status == 200
        log = server.log()
    assert ("Stray response" in log) is written
    assert "SIP on 127.0.0.1" in log  # info events are always written
