"""Locating SIP servers (RFC 3263 §4), sans-IO: what to look up, and in what order.

Given a next hop's host, optional port and optional transport (a gateway's
``sip:user@sip.carrier.example:5080;transport=tcp``), :func:`plan` decides, after
RFC 3263 §4.1 and §4.2, whether DNS is needed at all and which query to make:

- an IP literal is used as it is, at the port given or 5060;
- a host name with an explicit port gets an A (and AAAA) lookup, at that port;
- a host name without a port gets an SRV lookup, ``_sip._udp.<host>`` (or
  ``_sip._tcp.<host>``), falling back to the host's A/AAAA records at 5060 when
  there are no SRV records.

:func:`srv_targets` then orders SRV records as RFC 2782 says (lowest priority first;
within a priority, a weighted random choice, the random source injected so tests are
exact), and turns them into :class:`Target` s whose host names still need addresses.
The DNS itself is done by ``telephony.trunks.resolver``, on Twisted's names.

Limits: there is no NAPTR step (§4.1): with no transport given we use UDP, and only
``_sip._udp`` is asked.  TLS (``sips:``, ``_sips._tcp``, port 5061) is not supported.
"""

from __future__ import annotations

import enum
import ipaddress
import random
import re
import socket
from collections.abc import Callable, Iterable

import attrs

__all__ = (
    "DEFAULT_PORT",
    "SERVICES",
    "AddressLookup",
    "Literal",
    "LocateError",
    "LocateFailure",
    "Plan",
    "ServiceLookup",
    "SrvRecord",
    "Target",
    "ip_family",
    "normalize_host",
    "order_srv",
    "plan",
    "srv_targets",
)

#: The port for SIP over UDP and TCP when neither the URI nor SRV gives one (RFC 3261
#: §19.1.2, RFC 3263 §4.2).
DEFAULT_PORT = 5060
#: The SRV service and protocol labels per transport we support (RFC 3263 §4.1).
SERVICES: dict[str, str] = {"udp": "_sip._udp", "tcp": "_sip._tcp"}
#: The longest host name DNS can carry, in characters (RFC 1035 §2.3.4, 255 octets on
#: the wire minus the length octets).
_MAX_HOST_LENGTH = 253
#: hostname = *( domainlabel "." ) toplabel [ "." ] (RFC 3261 §25.1); a label is at
#: most 63 characters (RFC 1035 §2.3.4).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
#: The SRV target that means "no such service here" (RFC 2782, "Target"): the root
#: name, written "." and decoded from the wire as "".
_NO_SERVICE_TARGETS = frozenset({".", ""})

#: Draws an integer from a closed range, as :meth:`random.Random.randint` does.
RandInt = Callable[[int, int], int]


class LocateFailure(enum.Enum):
    """What went wrong while locating a server, for callers that fail over on it."""

    #: The name does not exist (DNS NXDOMAIN).
    NXDOMAIN = "nxdomain"
    #: The name exists but has no address we can use (no A/AAAA of our family).
    NO_ADDRESS = "no address"
    #: No DNS server answered in time.
    TIMEOUT = "timeout"
    #: A DNS server answered with an error (SERVFAIL, REFUSED, ...).
    SERVER_FAILURE = "server failure"
    #: SRV says the service is decidedly not available at this domain (target ".").
    NOT_AVAILABLE = "not available"


class LocateError(Exception):
    """A SIP server could not be located.

    :ivar host: the host that was to be located, as given.
    :ivar reason: what failed, for people (names the query and the DNS outcome).
    :ivar kind: what failed, for code.
    """

    def __init__(
        self, host: str, reason: str, kind: LocateFailure = LocateFailure.SERVER_FAILURE
    ) -> None:
        super().__init__(f"cannot locate SIP server {host}: {reason}")
        self.host = host
        self.reason = reason
        self.kind = kind


def _check_transport(_instance: object, _attribute: object, value: str) -> None:
    if value not in SERVICES:
        raise ValueError(f"transport: one of {sorted(SERVICES)}, not {value!r}")


def _check_port(_instance: object, _attribute: object, value: int) -> None:
    if not 0 < value < 65536:
        raise ValueError(f"port: 1 to 65535, not {value!r}")


@attrs.frozen
class Target:
    """A place to send SIP to: a transport, a host (name or IP literal) and a port.

    :ivar transport: ``"udp"`` or ``"tcp"`` (as :class:`telephony.sip.peer.Peer`).
    :ivar host: a host name (lower case, no trailing dot) or an IP literal (no brackets).
    :ivar port: the UDP or TCP port.
    """

    transport: str = attrs.field(validator=_check_transport)
    host: str
    port: int = attrs.field(validator=_check_port)


@attrs.frozen
class SrvRecord:
    """The fields of one SRV record that ordering needs (RFC 2782).

    :ivar priority: lower is tried first (0 to 65535).
    :ivar weight: relative share among records of the same priority; 0 means "almost
        never, when others have weight".
    :ivar port: the port the service listens on there.
    :ivar target: the host name of the server, or ``"."`` for "not here".
    """

    priority: int
    weight: int
    port: int
    target: str


@attrs.frozen
class Literal:
    """The host is an IP literal: no DNS (RFC 3263 §4.2, first case)."""

    target: Target


@attrs.frozen
class AddressLookup:
    """Look up the A/AAAA records of ``target.host`` and use each at ``target.port``."""

    target: Target


@attrs.frozen
class ServiceLookup:
    """Look up the SRV records of :attr:`name`; with none, use :attr:`fallback`.

    :ivar name: the SRV owner name, such as ``_sip._udp.sip.carrier.example``.
    :ivar host: the host the service is for.
    :ivar transport: the transport the service name asks about.
    """

    name: str
    host: str
    transport: str

    @property
    def fallback(self) -> AddressLookup:
        """What to do when there are no SRV records: the host's A/AAAA at 5060 (§4.2)."""
        return AddressLookup(Target(self.transport, self.host, DEFAULT_PORT))


#: What :func:`plan` decides.
Plan = Literal | AddressLookup | ServiceLookup


def _unbracket(host: str) -> str:
    """*host* without the brackets of an IPv6 reference (``[::1]``), else *host* itself."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def ip_family(host: str) -> socket.AddressFamily | None:
    """``AF_INET`` or ``AF_INET6`` when *host* is an IP literal (brackets allowed),
    else None."""
    try:
        address = ipaddress.ip_address(_unbracket(host))
    except ValueError:
        return None
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def normalize_host(host: str) -> str:
    """*host* as DNS and our peers compare it: IP literals in their canonical form
    without brackets, names in lower case without the trailing dot.

    :raises ValueError: *host* is neither an IP literal nor a host name.
    """
    inner = _unbracket(host)
    if inner != host or ":" in host:
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"host: a host name or IP address, not {host[:80]!r}") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if len(host) > _MAX_HOST_LENGTH or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"host: a host name or IP address, not {host[:80]!r}")
    return host.lower().rstrip(".")


def plan(host: str, port: int | None = None, transport: str | None = None) -> Plan:
    """What to look up to reach *host* (RFC 3263 §4.1 and §4.2, without NAPTR).

    :param host: the URI's host: a name, an IPv4 address or an IPv6 reference.
    :param port: the URI's port, or None when it has none.
    :param transport: ``"udp"`` or ``"tcp"`` (any case), or None for UDP (we do no
        NAPTR query, which is how §4.1 would choose).
    :raises ValueError: a malformed host, a port outside 1 to 65535 or an unsupported
        transport (before any lookup, so configuration can check gateways with it).
    """
    transport = "udp" if transport is None else transport.lower()
    name = normalize_host(host)
    if ip_family(name) is not None:
        return Literal(Target(transport, name, DEFAULT_PORT if port is None else port))
    if port is not None:
        return AddressLookup(Target(transport, name, port))
    _check_transport(None, None, transport)
    return ServiceLookup(f"{SERVICES[transport]}.{name}", name, transport)


def order_srv(records: Iterable[SrvRecord], randint: RandInt = random.randint) -> list[SrvRecord]:
    """*records* in the order to try them (RFC 2782, "Usage rules").

    Priorities ascend.  Within one priority, records are drawn one at a time, as RFC 2782
    says: zero-weight records are placed first, a number is drawn uniformly up to the sum
    of the weights (inclusive) and the first record whose running sum reaches it is next.
    A zero-weight record is drawn when the number is 0 (a small chance, 1 in sum + 1), or
    once all that are left have weight 0 (then in the order given).

    One deviation: when no zero-weight record is left, the number is drawn from 1, not
    0.  Drawn from 0 it gives the first record an extra share (weights 1 and 1 would
    split 2:1, not evenly), the flaw reported in RFC 2782's errata; from 1, each record's
    chance is exactly its weight over the sum.

    :param randint: draws from a closed range (default :func:`random.randint`); tests
        pass a scripted one.
    """
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):
        group = by_priority[priority]
        # Stable: zero weights first, the others in the order they came.
        left = [r for r in group if r.weight == 0] + [r for r in group if r.weight != 0]
        while left:
            low = 0 if left[0].weight == 0 else 1
            draw = randint(low, sum(r.weight for r in left))
            running = 0
            for index, record in enumerate(left):
                running += record.weight
                if running >= draw:
                    ordered.append(left.pop(index))
                    break
        # The loop always picks: the last running sum is the total, and draw <= total.
    return ordered


def srv_targets(
    service: ServiceLookup, records: Iterable[SrvRecord], randint: RandInt = random.randint
) -> tuple[Target, ...] | AddressLookup:
    """The targets of *service*'s SRV *records*, in the order to try them.

    :returns: the targets (host names still to be looked up), or the A/AAAA fallback
        when there are no records (RFC 3263 §4.2).
    :raises LocateError: the only record has target ``"."``: the service is decidedly
        not available at this domain (RFC 2782), so there is no fallback either.
    """
    given = list(records)
    if not given:
        return service.fallback
    usable = [r for r in given if r.target not in _NO_SERVICE_TARGETS]
    if not usable:
        raise LocateError(
            service.host,
            f"SRV {service.name} says the service is not available there (target '.')",
            LocateFailure.NOT_AVAILABLE,
        )
    targets: list[Target] = []
    for record in order_srv(usable, randint):
        try:
            target = Target(service.transport, normalize_host(record.target), record.port)
        except ValueError:
            continue  # a malformed target or port 0: this record cannot be used
        if target not in targets:
            targets.append(target)
    if not targets:
        raise LocateError(
            service.host,
            f"SRV {service.name} has no usable target (bad names or port 0)",
            LocateFailure.NO_ADDRESS,
        )
    return tuple(targets)
