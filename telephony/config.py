"""The server's configuration: one frozen value, validated field by field.

Values come from three places, later ones winning: the embedded defaults below, a
TOML file named by ``--config``, and the command line.  Every parser here raises
:class:`ConfigError` with a message that names the option and the rule, so that
``twistd`` can stop start-up with one clear line.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from media import MediaArgumentError, PortRange
from telephony.sip.guard import Network, parse_networks
from telephony.trunks.gateway import Gateway, GatewayError, parse_gateways

__all__ = (
    "DEFAULTS",
    "Config",
    "ConfigError",
    "HostPort",
    "build_config",
    "load_toml",
    "parse_auth_id",
    "parse_auth_token",
    "parse_domain",
    "parse_host_port",
    "parse_regex",
    "parse_strports",
)


class ConfigError(ValueError):
    """A configuration value broke a rule; the message names the option and the rule."""


@attrs.frozen
class HostPort:
    """A listening address: an IPv4/IPv6 literal or a host name, and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
#: Plivo's shapes; the SDK refuses any other auth ID (``plivo.utils.validators``).
_AUTH_ID = re.compile(r"^MA[A-Z0-9]{18}$")
_AUTH_TOKEN = re.compile(r"^[A-Za-z0-9]{20,64}$")


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(_HOSTNAME.match(value))
    return True


def parse_host_port(option: str, value: str) -> HostPort:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6).

    :raises ConfigError: naming *option* when the value is not of that shape.
    """
    rule = f"{option}: expected HOST:PORT (IPv6 as [ADDR]:PORT, port 1-65535), got {value!r}"
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", value.strip())
    if not match:
        raise ConfigError(rule)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535 or not _is_host(host):
        raise ConfigError(rule)
    return HostPort(host, port)


def parse_domain(option: str, value: str) -> str:
    """A SIP domain (and digest realm): a host name or an IP literal, lower-cased."""
    value = value.strip().lower()
    if not value or not _is_host(value.strip("[]")):
        raise ConfigError(f"{option}: must be a host name or an IP address, got {value!r}")
    return value


def parse_strports(option: str, value: str) -> str:
    """A Twisted server endpoint description, checked by the real parser.

    Only the syntax is checked here (no socket is opened): an unknown endpoint type
    or a malformed string stops start-up rather than failing later.
    """
    from twisted.internet import endpoints, reactor

    try:
        endpoints.serverFromString(reactor, value)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{option}: not a Twisted endpoint description "
            f"(e.g. tcp:8088:interface=127.0.0.1): {exc}"
        ) from None
    return value


def parse_regex(option: str, value: str) -> str:
    """A regular expression, compiled once here so a typo stops start-up."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{option}: not a valid regular expression: {exc}") from None
    return value


def parse_auth_id(option: str, value: str) -> str:
    """A REST auth ID in Plivo's shape: ``MA`` and 18 upper-case letters or digits."""
    if not _AUTH_ID.match(value):
        raise ConfigError(f"{option}: must be MA followed by 18 upper-case letters or digits")
    return value


def parse_auth_token(option: str, value: str) -> str:
    """A REST auth token: 20 to 64 ASCII letters and digits."""
    if not _AUTH_TOKEN.match(value):
        raise ConfigError(f"{option}: must be 20 to 64 ASCII letters and digits")
    return value


def _parse_int(option: str, value: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,10}", text) or not low <= int(text) <= high:
        raise ConfigError(f"{option}: must be a whole number from {low} to {high}")
    return int(text)


def _parse_seconds(option: str, value: str, low: float, high: float) -> float:
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = float("nan")
    if not low <= seconds <= high:
        raise ConfigError(f"{option}: must be a number of seconds from {low:g} to {high:g}")
    return seconds


def _parse_networks(option: str, value: str) -> tuple[Network, ...]:
    try:
        return parse_networks(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def _parse_algorithms(option: str, value: str) -> tuple[str, ...]:
    names = tuple(a.strip().upper() for a in str(value).split(",") if a.strip())
    if not names or len(set(names)) != len(names) or not set(names) <= {"MD5", "SHA-256"}:
        raise ConfigError(f"{option}: a comma-separated list of MD5 and SHA-256, each once")
    return names


#: Log levels an operator may choose, least to most severe.
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def _parse_log_level(option: str, value: str) -> str:
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{option}: one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _parse_rtp_ports(option: str, value: str) -> PortRange:
    try:
        return PortRange.parse(value)
    except MediaArgumentError as exc:
        raise ConfigError(str(exc).replace("rtp-ports", option, 1)) from None


def _parse_gateways(option: str, value: str | list[dict[str, Any]]) -> tuple[Gateway, ...]:
    try:
        return parse_gateways(value)
    except GatewayError as exc:
        raise ConfigError(str(exc).replace("gateway", option, 1)) from None


def _parse_dns_servers(option: str, value: str) -> tuple[HostPort, ...]:
    """``ADDRESS[:PORT], ...``: IP addresses (IPv6 as ``[ADDR]:PORT``), port 53 when
    not given; "" for the system's servers."""
    servers = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            servers.append(HostPort(str(ipaddress.ip_address(item.strip("[]"))), 53))
            continue
        except ValueError:
            pass
        server = parse_host_port(option, item)
        try:
            ipaddress.ip_address(server.host)
        except ValueError:
            raise ConfigError(f"{option}: DNS servers must be IP addresses, got {item!r}") from None
        servers.append(server)
    return tuple(servers)


def _parse_media_address(option: str, value: str) -> str:
    if value and not _is_host(value):
        raise ConfigError(f"{option}: must be an IP address or a host name, got {value!r}")
    return value


def _parse_path(option: str, value: str) -> Path:
    if not value.strip():
        raise ConfigError(f"{option}: must not be empty")
    return Path(value).expanduser()


def _parse_optional_path(option: str, value: str | None) -> Path | None:
    if value is None or value == "":
        return None
    return _parse_path(option, value)


def _parse_optional_strports(option: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return parse_strports(option, value)


def _parse_optional_auth_id(option: str, value: str | None) -> str | None:
    return None if value is None else parse_auth_id(option, value)


def _parse_optional_auth_token(option: str, value: str | None) -> str | None:
    return None if value is None else parse_auth_token(option, value)


#: The defaults of options whose values are parsed into objects, as written.
_THROTTLE_EXEMPT = "127.0.0.0/8, ::1"
_RTP_PORTS = "16384-32767"
_DEFAULT_EXEMPT = parse_networks(_THROTTLE_EXEMPT)
_DEFAULT_PORTS = PortRange.parse(_RTP_PORTS)


@attrs.frozen
class Config:
    """Everything the server needs to start, already validated.

    :ivar data_dir: the SQLite database, recordings, caches, credentials, host key.
    :ivar sip_listen: UDP and TCP address of the SIP stack.
    :ivar domain: SIP domain and digest realm of endpoints' URIs.  Digest HA1
        hashes are computed over it, so changing it later invalidates stored passwords.
    :ivar http: strports description of the REST API and status page.
    :ivar manhole: strports description of the SSH manhole, or None when off.
    :ivar manhole_keys: an ``authorized_keys`` file for manhole logins.
    :ivar manhole_passwd: a file of ``user:pbkdf2_sha256$...`` lines.
    :ivar auth_id: REST auth ID, or None to generate (once) and store one.
    :ivar auth_token: REST auth token, or None to generate (once) and store one.
    :ivar blocked_user_agents: regular expression; matching SIP requests get 403.
    :ivar min_expires: shortest registration accepted, seconds (shorter: 423).
    :ivar max_expires: longest registration granted, seconds (longer is shortened).
    :ivar t1, t2, t4: SIP timers, seconds (RFC 3261 §17).
    :ivar throttle_exempt: networks never throttled or banned.
    :ivar rtp_ports: UDP ports for RTP (even) and RTCP (odd).
    :ivar gateways: the carrier trunks, in the order calls to numbers try them; INVITEs
        from any of their addresses are trusted (by source IP, and port if given).
    :ivar dns_servers: DNS servers for gateway host names; empty: the system's
        (``/etc/resolv.conf``).
    :ivar min_se: shortest session-timer interval accepted, seconds (RFC 4028 says 90).
    :ivar media_address: the address put in SDP when it differs from the SIP address.
    :ivar digest_algorithms: digest challenges offered, in order.  MD5 only by default,
        as Kamailio, Asterisk and FreeSWITCH challenge: baresip 1.0 gives up on a 401
        holding any SHA-256 challenge, and sipp 3.6 answers only the first, in MD5.
        SHA-256 (RFC 8760) is opt-in, for fleets of phones known to support it.
    :ivar log_level: the least severe log events written (``debug`` adds a line per
        media session, verb and callback).
    """

    data_dir: Path = Path("var")
    sip_listen: HostPort = HostPort("127.0.0.1", 5060)
    domain: str = "127.0.0.1"
    http: str = "tcp:8088:interface=127.0.0.1"
    manhole: str | None = None
    manhole_keys: Path | None = None
    manhole_passwd: Path | None = None
    auth_id: str | None = None
    auth_token: str | None = None
    blocked_user_agents: str = "(VaxSIPUserAgent|Ozeki)"
    min_expires: int = 60
    max_expires: int = 3600
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    throttle_exempt: tuple[Network, ...] = _DEFAULT_EXEMPT
    digest_algorithms: tuple[str, ...] = ("MD5",)
    rtp_ports: PortRange = _DEFAULT_PORTS
    gateways: tuple[Gateway, ...] = ()
    dns_servers: tuple[HostPort, ...] = ()
    min_se: int = 90
    media_address: str = ""
    log_level: str = "info"


#: The embedded defaults, by option name as it appears on the command line and in TOML.
_DEFAULT = Config()
DEFAULTS: Mapping[str, Any] = {
    "data-dir": str(_DEFAULT.data_dir),
    "sip-listen": str(_DEFAULT.sip_listen),
    "domain": _DEFAULT.domain,
    "http": _DEFAULT.http,
    "manhole": None,
    "manhole-keys": None,
    "manhole-passwd": None,
    "auth-id": None,
    "auth-token": None,
    "blocked-user-agents": _DEFAULT.blocked_user_agents,
    "min-expires": str(_DEFAULT.min_expires),
    "max-expires": str(_DEFAULT.max_expires),
    "t1": str(_DEFAULT.t1),
    "t2": str(_DEFAULT.t2),
    "t4": str(_DEFAULT.t4),
    "throttle-exempt": _THROTTLE_EXEMPT,
    "digest-algorithms": ",".join(_DEFAULT.digest_algorithms),
    "rtp-ports": _RTP_PORTS,
    "gateway": "",
    "dns-servers": "",
    "min-se": str(_DEFAULT.min_se),
    "media-address": _DEFAULT.media_address,
    "log-level": _DEFAULT.log_level,
}

_Parser = Callable[[str, Any], Any]

#: option name → (Config field, parser).  One table for the CLI and the TOML file.
_FIELDS: Mapping[str, tuple[str, _Parser]] = {
    "data-dir": ("data_dir", _parse_path),
    "sip-listen": ("sip_listen", parse_host_port),
    "domain": ("domain", parse_domain),
    "http": ("http", parse_strports),
    "manhole": ("manhole", _parse_optional_strports),
    "manhole-keys": ("manhole_keys", _parse_optional_path),
    "manhole-passwd": ("manhole_passwd", _parse_optional_path),
    "auth-id": ("auth_id", _parse_optional_auth_id),
    "auth-token": ("auth_token", _parse_optional_auth_token),
    "blocked-user-agents": ("blocked_user_agents", parse_regex),
    "min-expires": ("min_expires", lambda o, v: _parse_int(o, v, 1, 86400)),
    "max-expires": ("max_expires", lambda o, v: _parse_int(o, v, 1, 2**31 - 1)),
    "t1": ("t1", lambda o, v: _parse_seconds(o, v, 0.01, 60)),
    "t2": ("t2", lambda o, v: _parse_seconds(o, v, 0.01, 600)),
    "t4": ("t4", lambda o, v: _parse_seconds(o, v, 0.01, 600)),
    "throttle-exempt": ("throttle_exempt", lambda o, v: _parse_networks(o, v)),
    "digest-algorithms": ("digest_algorithms", lambda o, v: _parse_algorithms(o, v)),
    "rtp-ports": ("rtp_ports", lambda o, v: _parse_rtp_ports(o, v)),
    "gateway": ("gateways", lambda o, v: _parse_gateways(o, v)),
    "dns-servers": ("dns_servers", lambda o, v: _parse_dns_servers(o, v)),
    "min-se": ("min_se", lambda o, v: _parse_int(o, v, 2, 86400)),
    "media-address": ("media_address", lambda o, v: _parse_media_address(o, v)),
    "log-level": ("log_level", _parse_log_level),
}


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file whose keys are the long option names.

    Keys may use ``-`` or ``_``.  Unknown keys and non-string values are refused, so a
    typo in the file is reported instead of silently ignored; the one exception is
    ``gateway``, which may also be an array of tables (``[[gateway]]``).

    :raises ConfigError: the file is unreadable, not TOML, or has an unknown key.
    """
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("_", "-")
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"config: unknown key {key!r} in {path} (known: {known})")
        if name == "gateway" and isinstance(value, list):
            values[name] = value  # [[gateway]] tables, checked by the gateway parser
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{name}: must be a string in {path}, got {type(value).__name__}")
        values[name] = value
    return values


def build_config(*layers: Mapping[str, Any]) -> Config:
    """Merge option layers (later wins; ``None`` means "not given") into a Config.

    :raises ConfigError: a value breaks its option's rule, or options conflict.
    """
    merged: dict[str, Any] = dict(DEFAULTS)
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None and k in _FIELDS})
    kwargs = {field: parse(name, merged[name]) for name, (field, parse) in _FIELDS.items()}
    config = Config(**kwargs)
    _check_manhole(config)
    if config.min_expires > config.max_expires:
        raise ConfigError("min-expires: must not exceed max-expires")
    if not config.t1 <= config.t2:
        raise ConfigError("t2: must not be below t1")
    return config


def _check_manhole(config: Config) -> None:
    """The manhole is an interpreter: it must be local and must require credentials."""
    if config.manhole is None:
        if config.manhole_keys or config.manhole_passwd:
            raise ConfigError("manhole-keys/manhole-passwd: given without --manhole")
        return
    if not (config.manhole_keys or config.manhole_passwd):
        raise ConfigError("manhole: needs --manhole-keys FILE or --manhole-passwd FILE")
    interface = _strports_interface(config.manhole)
    if interface is None:
        raise ConfigError("manhole: must bind to localhost: add interface=127.0.0.1 (or ::1)")
    try:
        loopback = ipaddress.ip_address(interface).is_loopback
    except ValueError:
        loopback = interface == "localhost"
    if not loopback or not config.manhole.startswith(("tcp:", "tcp6:")):
        raise ConfigError(
            f"manhole: must be a tcp endpoint bound to a loopback address, got {config.manhole!r}"
        )
    for option, path in (
        ("manhole-keys", config.manhole_keys),
        ("manhole-passwd", config.manhole_passwd),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option}: no such file: {path}")


def _strports_interface(description: str) -> str | None:
    for part in re.split(r"(?<!\\):", description)[1:]:
        if part.startswith("interface="):
            return part.split("=", 1)[1].replace("\\:", ":")
    return None
