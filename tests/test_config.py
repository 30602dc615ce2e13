"""Configuration: defaults, TOML, command line precedence, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.config import Config, ConfigError, HostPort, build_config, load_toml, parse_host_port


def test_defaults_are_local_and_safe() -> None:
    config = build_config()
    assert config == Config()
    assert config.sip_listen == HostPort("127.0.0.1", 5060)
    assert config.http == "tcp:8088:interface=127.0.0.1"
    assert config.manhole is None
    assert config.data_dir == Path("var")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5060", HostPort("127.0.0.1", 5060)),
        ("[::1]:5070", HostPort("::1", 5070)),
        ("sip.example.com:5060", HostPort("sip.example.com", 5060)),
    ],
)
def test_host_port(value: str, expected: HostPort) -> None:
    assert parse_host_port("sip-listen", value) == expected


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:5060", "bad host:1", ""]
)
def test_host_port_errors_name_the_option(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^sip-listen: expected HOST:PORT"):
        parse_host_port("sip-listen", value)


def test_toml_then_command_line(tmp_path: Path) -> None:
    path = tmp_path / "telephony.toml"
    path.write_text('domain = "sip.example.com"\nsip_listen = "127.0.0.1:5070"\n')
    config = build_config(load_toml(path), {"domain": "override.example.com", "http": None})
    assert config.domain == "override.example.com"
    assert config.sip_listen == HostPort("127.0.0.1", 5070)
    assert config.http == Config().http


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("domian = 'x'", "config: unknown key 'domian'"),
        ("domain = 5", "domain: must be a string"),
        ("domain = [", "is not valid TOML"),
    ],
)
def test_toml_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(path)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"http": "nonsense:1"}, "^http: not a Twisted endpoint description"),
        ({"domain": "bad domain"}, "^domain: must be a host name or an IP address"),
        ({"auth-id": "SA123"}, "^auth-id: must be MA followed by 18"),
        ({"auth-token": "short"}, "^auth-token: must be 20 to 64"),
        (
            {"blocked-user-agents": "(unclosed"},
            "^blocked-user-agents: not a valid regular expression",
        ),
        ({"manhole": "tcp:2222:interface=127.0.0.1"}, "^manhole: needs --manhole-keys"),
        (
            {"manhole-keys": "/etc/hostname"},
            "^manhole-keys/manhole-passwd: given without --manhole",
        ),
    ],
)
def test_bad_values_name_option_and_rule(layer: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(layer)


@pytest.mark.parametrize(
    "endpoint", ["tcp:2222", "tcp:2222:interface=0.0.0.0", "tcp:2222:interface=10.0.0.1"]
)
def test_manhole_must_be_loopback(tmp_path: Path, endpoint: str) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    with pytest.raises(ConfigError, match=r"^manhole: must"):
        build_config({"manhole": endpoint, "manhole-keys": str(keys)})


def test_manhole_on_ipv6_loopback(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    config = build_config({"manhole": r"tcp6:2222:interface=\:\:1", "manhole-keys": str(keys)})
    assert config.manhole_keys == keys
