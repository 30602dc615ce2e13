"""Gateways as operators write them: the URI form, TOML tables, rewrites, trust."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.config import ConfigError, build_config, load_toml
from telephony.sip.guard import SourceGuard
from telephony.sip.peer import Peer
from telephony.trunks.gateway import Gateway, GatewayError, parse_gateways
from telephony.trunks.trust import TrustedGateways


def test_the_uri_form_carries_credentials_and_fields() -> None:
    [gateway, plain] = parse_gateways(
        "sip:acme:s3cr%40t%2Cx@SIP.Carrier.example;transport=tcp;register;prefix=00;strip=1,"
        " sip:127.0.0.2:5070"
    )
    assert (gateway.host, gateway.port, gateway.transport) == ("sip.carrier.example", None, "tcp")
    assert (gateway.username, gateway.password) == ("acme", "s3cr@t,x")
    assert (gateway.register, gateway.prefix, gateway.strip) == (True, "00", 1)
    assert gateway.dialed("18001231234") == "008001231234"
    assert not gateway.is_ip
    assert plain == Gateway("127.0.0.2", 5070)
    assert plain.is_ip
    assert "s3cr" not in repr(gateway), "the password never shows"


def test_caller_id_rewrites() -> None:
    [fixed, prefixed] = parse_gateways(
        "sip:10.0.0.1;name=fixed;caller_id=14155550100, "
        "sip:10.0.0.2;name=e164;caller_id_strip=1;caller_id_prefix=+44"
    )
    assert fixed.caller("18004321321") == "14155550100"
    assert prefixed.caller("02079460000") == "+442079460000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sip:acme@gw.example", "username without a password"),
        ("sip:gw.example;register", "register needs a username and password"),
        ("sip:gw.example;transport=sctp", "transport: must be udp or tcp"),
        ("sip:gw.example;colour=blue", "unknown field 'colour'"),
        ("sip:gw.example;prefix=9x", "prefix: at most 20 of the characters"),
        ("sip:gw.example;response_timeout=100", "response_timeout: must be a number of seconds"),
        ("sip:gw.example;register_expires=10", "register_expires: must be a whole number from 60"),
        ("sip:a:b@bad_host!", "not a SIP URI: 'sip:***@bad_host!'"),
        ("sips:gw.example", "expected sip:"),
        ("sip:gw.example, sip:gw.example", "two gateways are named 'gw.example'"),
    ],
)
def test_bad_gateways_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(GatewayError, match="gateway") as caught:
        parse_gateways(text)
    assert message in str(caught.value)
    assert "b@" not in str(caught.value) or "***" in str(caught.value)


def test_a_bad_password_is_not_echoed() -> None:
    with pytest.raises(GatewayError) as caught:
        parse_gateways([{"host": "gw.example", "username": "u", "password": "zq\tzq"}])
    assert "zq" not in str(caught.value)
    assert "password: 1 to 128 printable characters" in str(caught.value)


def test_toml_tables_in_order(tmp_path: Path) -> None:
    path = tmp_path / "telephony.toml"
    path.write_text(
        'domain = "sip.example.com"\n'
        "[[gateway]]\n"
        'name = "primary"\nhost = "sip.carrier.example"\nusername = "acme"\n'
        'password = "pw"\nregister = true\nregister_expires = 600\nprefix = "1"\n'
        "[[gateway]]\n"
        'name = "backup"\nhost = "10.0.0.9"\nport = 5080\nresponse_timeout = 2.5\n'
    )
    config = build_config(load_toml(path))
    primary, backup = config.gateways
    assert (primary.name, primary.register, primary.register_expires, primary.prefix) == (
        "primary",
        True,
        600,
        "1",
    )
    assert (backup.label, backup.port, backup.response_timeout) == ("backup", 5080, 2.5)
    # The command line wins over the file, as for every option.
    assert build_config(load_toml(path), {"gateway": "sip:10.0.0.7"}).gateways == (
        Gateway("10.0.0.7"),
    )


def test_toml_gateway_errors_name_the_option(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[gateway]]\nhost = "gw.example"\nprefix = 12.5\n')
    with pytest.raises(ConfigError, match=r"^gateway prefix: must be a string"):
        build_config(load_toml(path))


def test_dns_servers_option() -> None:
    config = build_config({"dns-servers": "127.0.0.1:5353, ::1"})
    assert [(s.host, s.port) for s in config.dns_servers] == [("127.0.0.1", 5353), ("::1", 53)]
    with pytest.raises(ConfigError, match="dns-servers"):
        build_config({"dns-servers": "dns.example.com"})


def test_trust_by_address_and_port() -> None:
    by_port, any_port, named = parse_gateways(
        "sip:127.0.0.2:5070, sip:10.0.0.1, sip:sip.carrier.example"
    )
    trusted = TrustedGateways([by_port, any_port, named])
    assert trusted.match(Peer("udp", "127.0.0.2", 5070)) == by_port
    assert trusted.match(Peer("udp", "127.0.0.2", 5071)) is None
    assert trusted.match(Peer("udp", "10.0.0.1", 9)) == any_port
    assert trusted.match(Peer("udp", "192.0.2.7", 5060)) is None
    trusted.located(named, [Peer("udp", "192.0.2.7", 5062)])
    assert trusted.match(Peer("udp", "192.0.2.7", 40000)) == named  # no port was given
    trusted.located(named, [])
    assert trusted.match(Peer("udp", "192.0.2.7", 5062)) is None


def test_gateway_addresses_are_never_banned_for_flooding() -> None:
    guard = SourceGuard(exempt=())
    now = 1000.0
    assert all(guard.allow("192.0.2.7", now) for _ in range(guard.flood_limit))
    assert not guard.allow("192.0.2.7", now), "a flood from an unknown source is banned"
    guard.trust("carrier", ["192.0.2.7"])
    assert all(guard.allow("192.0.2.7", now) for _ in range(5 * guard.flood_limit))
    guard.trust("carrier", [])
    assert all(guard.allow("192.0.2.7", now + 10) for _ in range(guard.flood_limit))
    assert not guard.allow("192.0.2.7", now + 10)
