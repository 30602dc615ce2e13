"""A carrier trunk as its operator describes it, and the two ways to write one.

On the command line a gateway is a SIP URI whose user part holds the credentials and
whose parameters hold the rest::

    --gateway "sip:acme:s3cret@sip.carrier.example;transport=tcp;register;prefix=00"

In the TOML file the same fields are a table per gateway, tried in the order given::

    [[gateway]]
    host = "sip.carrier.example"
    username = "acme"
    password = "s3cret"
    register = true
    prefix = "00"

Both spellings go through one table of fields (:data:`GATEWAY_FIELDS`), so a field
means the same everywhere and every bad value is refused with the field's name and
rule.  Pure: nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import attrs

from telephony.sip.errors import SipParseError
from telephony.sip.uri import SipURI, parse_uri

__all__ = (
    "DEFAULT_RESPONSE_TIMEOUT",
    "GATEWAY_FIELDS",
    "Gateway",
    "GatewayError",
    "gateway_from_table",
    "gateway_from_uri",
    "parse_gateways",
)

#: Seconds we wait for any response (a 100 Trying will do) to an INVITE before
#: trying the next gateway [ours]: 8·T1, long enough for a loaded carrier on
#: another continent, short enough that a caller is not left in silence.  Timer B
#: (32 s) still bounds a gateway that answered 100 and then nothing.
DEFAULT_RESPONSE_TIMEOUT = 4.0
#: Longest registration we ask a provider for, and the default, in seconds.
DEFAULT_REGISTER_EXPIRES = 3600
MAX_REGISTER_EXPIRES = 86400
#: Shortest registration we ask for: below this, refreshes would be a flood.
MIN_REGISTER_EXPIRES = 60
#: Longest credential field accepted, in characters (Plivo allows 128 for passwords).
MAX_CREDENTIAL_LENGTH = 128

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_DIGITS = re.compile(r"[0-9+*#]{0,20}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class GatewayError(ValueError):
    """A gateway description broke a rule; the message names the field and the rule."""


@attrs.frozen
class Gateway:
    """A SIP trunk: calls to numbers go there (the first that takes them), INVITEs from
    its addresses are trusted, and, when asked, we keep registered with it.

    :ivar host: an IP literal, or a host name located as RFC 3263 says (SRV, then A).
    :ivar port: None: SRV records or 5060 decide; a port given skips SRV (§4.2).
        A request from the gateway matches whatever its source port unless a port is
        given here.
    :ivar transport: "udp" or "tcp".
    :ivar username: digest user name for challenges (401/407) and registration.
    :ivar password: its password; never logged.
    :ivar realm: answer only challenges of this realm (None: any realm the gateway names).
    :ivar domain: the provider's SIP domain: the host of the registration's address of
        record and of the From of INVITEs sent with credentials (None: the host).
    :ivar prefix: prepended to the dialed digits, after ``strip`` leading ones are removed.
    :ivar caller_id: replaces the caller ID of every call through this gateway (a
        trunk that accepts only your own DIDs); "" keeps the call's caller ID.
    :ivar caller_id_prefix: prepended to the caller ID, after ``caller_id_strip``.
    :ivar register: keep a registration with the gateway (providers that route
        inbound calls to the registered contact).
    :ivar register_expires: seconds asked for each registration.
    :ivar response_timeout: seconds without any response before the next gateway is tried.
    """

    host: str
    port: int | None = None
    transport: str = "udp"
    name: str = ""
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    realm: str | None = None
    domain: str | None = None
    prefix: str = ""
    strip: int = 0
    caller_id: str = ""
    caller_id_prefix: str = ""
    caller_id_strip: int = 0
    register: bool = False
    register_expires: int = DEFAULT_REGISTER_EXPIRES
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT

    def __attrs_post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise GatewayError(f"gateway {self.label}: username and password go together")
        if self.register and self.username is None:
            raise GatewayError(f"gateway {self.label}: register needs a username and password")

    @property
    def label(self) -> str:
        """How logs and the status page name it: its name, else host[:port]."""
        if self.name:
            return self.name
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def is_ip(self) -> bool:
        """Whether :attr:`host` is an IP literal (no DNS needed)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def sip_domain(self) -> str:
        """The provider's domain (:attr:`domain`, else :attr:`host`)."""
        return self.domain or self.host

    def dialed(self, digits: str) -> str:
        """The Request-URI user for dialed *digits*: ``strip`` removed, ``prefix`` added."""
        return self.prefix + digits[self.strip :]

    def caller(self, caller_id: str) -> str:
        """The From user for *caller_id* through this gateway."""
        base = self.caller_id or caller_id
        return self.caller_id_prefix + base[self.caller_id_strip :]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"sip:{host}{port};transport={self.transport}"


# -- fields ------------------------------------------------------------------------


def _text(field: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise GatewayError(f"gateway {field}: must be a string")
    return str(value)


def _host(field: str, value: object) -> str:
    text = _text(field, value).strip().strip("[]").lower()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.match(text):
            raise GatewayError(
                f"gateway {field}: must be an IP address or a host name, got {text!r}"
            ) from None
    return text.rstrip(".")


def _integer(low: int, high: int) -> Callable[[str, object], int]:
    def parse(field: str, value: object) -> int:
        text = _text(field, value).strip()
        if not re.fullmatch(r"[0-9]{1,10}", text) or not low <= int(text) <= high:
            raise GatewayError(f"gateway {field}: must be a whole number from {low} to {high}")
        return int(text)

    return parse


def _seconds(low: float, high: float) -> Callable[[str, object], float]:
    def parse(field: str, value: object) -> float:
        try:
            seconds = float(_text(field, value) if not isinstance(value, float) else value)
        except ValueError:
            seconds = float("nan")
        if not low <= seconds <= high:
            raise GatewayError(f"gateway {field}: must be a number of seconds from {low} to {high}")
        return seconds

    return parse


def _transport(field: str, value: object) -> str:
    text = _text(field, value).strip().lower()
    if text not in ("udp", "tcp"):
        raise GatewayError(f"gateway {field}: must be udp or tcp, got {text!r}")
    return text


def _credential(field: str, value: object) -> str:
    text = _text(field, value)
    if not 1 <= len(text) <= MAX_CREDENTIAL_LENGTH or not text.isprintable():
        # The value itself is never repeated: it may be a password.
        raise GatewayError(f"gateway {field}: 1 to {MAX_CREDENTIAL_LENGTH} printable characters")
    return text


def _digits(field: str, value: object) -> str:
    text = _text(field, value).strip()
    if not _DIGITS.fullmatch(text):
        raise GatewayError(f"gateway {field}: at most 20 of the characters 0-9 + * #")
    return text


def _flag(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(field, value).strip().lower()
    if text in ("", "true", "yes", "1", "on"):  # "" is the bare ;register URI parameter
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise GatewayError(f"gateway {field}: must be true or false, got {text!r}")


def _name(field: str, value: object) -> str:
    text = _text(field, value).strip()
    if not _NAME.fullmatch(text):
        raise GatewayError(
            f"gateway {field}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return text


_Parser = Callable[[str, object], Any]

#: Field name (TOML key and URI parameter; ``-`` and ``_`` alike) → (attribute, parser).
GATEWAY_FIELDS: Mapping[str, tuple[str, _Parser]] = {
    "host": ("host", _host),
    "port": ("port", _integer(1, 65535)),
    "transport": ("transport", _transport),
    "name": ("name", _name),
    "username": ("username", _credential),
    "password": ("password", _credential),
    "realm": ("realm", _credential),
    "domain": ("domain", _host),
    "prefix": ("prefix", _digits),
    "strip": ("strip", _integer(0, 20)),
    "caller_id": ("caller_id", _digits),
    "caller_id_prefix": ("caller_id_prefix", _digits),
    "caller_id_strip": ("caller_id_strip", _integer(0, 20)),
    "register": ("register", _flag),
    "register_expires": ("register_expires", _integer(MIN_REGISTER_EXPIRES, MAX_REGISTER_EXPIRES)),
    "response_timeout": ("response_timeout", _seconds(0.5, 32.0)),
}


def _build(values: Mapping[str, object], where: str) -> Gateway:
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_").lower()
        if name not in GATEWAY_FIELDS:
            known = ", ".join(GATEWAY_FIELDS)
            raise GatewayError(f"gateway: unknown field {key!r} in {where} (known: {known})")
        attribute, parse = GATEWAY_FIELDS[name]
        kwargs[attribute] = parse(name, value)
    if "host" not in kwargs:
        raise GatewayError(f"gateway: {where} has no host")
    return Gateway(**kwargs)


def gateway_from_table(table: Mapping[str, object]) -> Gateway:
    """A gateway from a TOML ``[[gateway]]`` table.

    :raises GatewayError: an unknown field, a missing host, or a value breaking its rule.
    """
    return _build(table, "a [[gateway]] table")


def gateway_from_uri(text: str) -> Gateway:
    """A gateway from ``sip:[user:password@]host[:port][;field=value…]``.

    The user and password may be percent-escaped (``%40`` for ``@``, ``%2C`` for a
    comma); a bare ``;register`` parameter means ``register=true``.

    :raises GatewayError: naming the bad part.
    """
    item = text.strip()
    try:
        uri = parse_uri(item)
    except SipParseError:
        raise GatewayError(f"gateway: not a SIP URI: {_redacted(item)!r}") from None
    if not isinstance(uri, SipURI) or uri.scheme != "sip":
        raise GatewayError(
            f"gateway: expected sip:[USER:PASSWORD@]HOST[:PORT], got {_redacted(item)!r}"
        )
    values: dict[str, object] = {"host": uri.host_unbracketed}
    if uri.port is not None:
        values["port"] = str(uri.port)
    if uri.user:
        values["username"] = unquote(uri.user)
        if uri.password is None:
            raise GatewayError(f"gateway {uri.host_unbracketed}: username without a password")
        values["password"] = unquote(uri.password)
    for name, value in uri.params:
        values[name] = unquote(value) if value is not None else ""
    return _build(values, f"gateway {uri.host_unbracketed}")


def _redacted(text: str) -> str:
    """*text* with any ``user:password@`` part hidden, for error messages."""
    return re.sub(r"^(sips?:)[^@;]*@", r"\1***@", text)


def parse_gateways(value: str | Sequence[Mapping[str, object]]) -> tuple[Gateway, ...]:
    """The gateways of ``--gateway`` (comma-separated URIs) or of ``[[gateway]]`` tables.

    :raises GatewayError: for the first bad entry; also when two gateways share a name.
    """
    if isinstance(value, str):
        gateways = tuple(gateway_from_uri(item) for item in value.split(",") if item.strip())
    else:
        if not all(isinstance(table, Mapping) for table in value):
            raise GatewayError("gateway: each [[gateway]] entry must be a table")
        gateways = tuple(gateway_from_table(table) for table in value)
    labels = [g.label for g in gateways]
    for label in labels:
        if labels.count(label) > 1:
            raise GatewayError(f"gateway: two gateways are named {label!r}; give each a name")
    return gateways
