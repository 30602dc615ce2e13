"""Locating SIP servers over DNS (RFC 3263 §4): the Twisted glue around
:mod:`telephony.sip.locate`.

:class:`SipResolver` turns a gateway's host, port and transport into the addresses to
try, as :class:`~telephony.sip.peer.Peer` s, through Twisted's names, never
blocking the reactor.  The rules (what to ask, in what order to try SRV targets) are
in the sans-IO :mod:`telephony.sip.locate`; this module asks the questions, caches the
answers and bounds the waiting:

- answers are kept for their TTL, between :data:`CACHE_TTL_FLOOR` and
  :data:`CACHE_TTL_CAP`; "no such name" and "no such record" for
  :data:`NEGATIVE_TTL`; failures (timeouts, SERVFAIL) are not kept;
- concurrent lookups of one name and type share one DNS query;
- each query is retried after :data:`QUERY_TIMEOUTS` and a whole location fails after
  :data:`LOCATE_TIMEOUT`, seconds fit for call setup rather than Twisted's 60;
- with a ``family``, a server listening on IPv4 only is never handed an IPv6 address
  (and AAAA is not even asked).

Cancelling :meth:`SipResolver.locate`'s Deferred stops the waiting at once.  The DNS
query it started is not withdrawn (Twisted's client cannot withdraw one): it ends by
its own timeouts, and its answer is cached for the next caller.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar, cast

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    TimeoutError,
    fail,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTCP, IReactorTime, IReactorUDP, IResolver
from twisted.names import client, dns, error
from twisted.python.failure import Failure

from telephony.sip.locate import (
    AddressLookup,
    Literal,
    LocateError,
    LocateFailure,
    RandInt,
    ServiceLookup,
    SrvRecord,
    Target,
    ip_family,
    plan,
    srv_targets,
)
from telephony.sip.peer import Peer

__all__ = (
    "CACHE_MAX_ENTRIES",
    "CACHE_TTL_CAP",
    "CACHE_TTL_FLOOR",
    "LOCATE_TIMEOUT",
    "NEGATIVE_TTL",
    "QUERY_TIMEOUTS",
    "LocateError",
    "LocateFailure",
    "SipResolver",
)

#: Seconds to wait for each try of one DNS query: the first server gets 1 s, then each
#: server 2 s more (Twisted's client tries every server per step): 3 s in all with one
#: server.  Twisted's default, (1, 3, 11, 45), waits a minute, longer than a caller
#: listens to silence.
QUERY_TIMEOUTS: tuple[int, ...] = (1, 2)
#: Seconds one :meth:`SipResolver.locate` may take in all (SRV, then the targets'
#: addresses), whatever the servers do; then it fails as a timeout.
LOCATE_TIMEOUT = 5.0
#: Shortest time an answer is kept, in seconds, whatever its TTL: a TTL of 0 would
#: otherwise cost a query per call.
CACHE_TTL_FLOOR = 5.0
#: Longest time an answer is kept, in seconds, whatever its TTL, so that a carrier
#: moving its servers is followed within the hour.
CACHE_TTL_CAP = 3600.0
#: Seconds "no such name" (NXDOMAIN) and "no such record" (NODATA) are kept: long
#: enough to spare the DNS a query per call to a broken gateway, short enough that a
#: fixed zone is seen soon (RFC 2308 lets the zone say; we do not read its SOA).
NEGATIVE_TTL = 30.0
#: Names and types cached at most; the oldest entry goes first beyond.  Gateways are
#: few, but SIP URIs from applications may name any host.
CACHE_MAX_ENTRIES = 1024

#: The address record types asked for each address family we may use.
_ADDRESS_TYPES: dict[socket.AddressFamily, tuple[int, ...]] = {
    socket.AF_UNSPEC: (dns.A, dns.AAAA),
    socket.AF_INET: (dns.A,),
    socket.AF_INET6: (dns.AAAA,),
}
#: Names of DNS failures for messages (RFC 1035 §4.1.1 RCODEs).
_RCODE_NAMES: dict[type[Exception], str] = {
    error.DNSFormatError: "FORMERR",
    error.DNSServerError: "SERVFAIL",
    error.DNSNotImplementedError: "NOTIMP",
    error.DNSQueryRefusedError: "REFUSED",
}

_Key = tuple[str, int]
_T = TypeVar("_T")


@attrs.frozen
class _Answer:
    """What the DNS said to one question: the answer and additional sections, or that
    the name does not exist."""

    answers: tuple[dns.RRHeader, ...] = ()
    additional: tuple[dns.RRHeader, ...] = ()
    nxdomain: bool = False


class _DnsError(Exception):
    """A question the DNS did not answer (timeout) or answered with an error."""

    def __init__(self, kind: LocateFailure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _Waiters:
    """The callers waiting for one query in flight; each may give up alone."""

    def __init__(self) -> None:
        self._waiting: list[Deferred[_Answer]] = []

    def wait(self) -> Deferred[_Answer]:
        """A Deferred for the answer.  Cancelling it fails only this caller; the answer
        that comes later is dropped for it (``Deferred.cancel`` makes the later
        callback a no-op)."""
        d: Deferred[_Answer] = Deferred()
        self._waiting.append(d)
        return d

    def fire(self, result: _Answer | _DnsError) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, _Answer):
                d.callback(result)
            else:
                d.errback(Failure(result))


def _type_name(qtype: int) -> str:
    return dns.QUERY_TYPES.get(qtype, str(qtype))


def _text(name: dns.Name) -> str:
    """A DNS name as we compare names: lower case, no trailing dot."""
    return name.name.decode("ascii", "replace").lower().rstrip(".")


def _addresses_in(records: Sequence[dns.RRHeader], name: str, qtype: int) -> list[str]:
    """The addresses of type *qtype* for *name* among *records*, following CNAMEs
    within them (a recursive server answering for an alias sends the chain)."""
    aliases: dict[str, str] = {}
    addresses: list[tuple[str, str]] = []
    for record in records:
        payload = record.payload
        if isinstance(payload, dns.Record_CNAME):
            aliases[_text(record.name)] = _text(payload.name)
        elif record.type == qtype and isinstance(payload, dns.Record_A | dns.Record_AAAA):
            addresses.append((_text(record.name), str(ipaddress.ip_address(payload.address))))
    names = {name}
    while name in aliases and aliases[name] not in names:  # stops at a loop
        name = aliases[name]
        names.add(name)
    return [address for owner, address in addresses if owner in names]


def _srv_records(answer: _Answer, name: str) -> list[SrvRecord]:
    records: list[SrvRecord] = []
    for record in answer.answers:
        payload = record.payload
        if isinstance(payload, dns.Record_SRV) and _text(record.name) == name:
            records.append(
                SrvRecord(payload.priority, payload.weight, payload.port, _text(payload.target))
            )
    return records


class SipResolver:
    """Finds the addresses of SIP servers as RFC 3263 §4 says (without NAPTR).

    :param clock: the time for cache expiry and the :data:`LOCATE_TIMEOUT` deadline;
        the reactor in production, a ``task.Clock`` in tests.
    :param resolver: the DNS client to ask (any ``IResolver``); or None to build one
        from *servers*.
    :param servers: DNS servers as ``(IP address, port)`` pairs, asked in turn; empty:
        the system's (``/etc/resolv.conf`` and ``/etc/hosts``, through
        ``twisted.names.client.createResolver``).  Only without *resolver*.
    :param reactor: what the client built from *servers* sends with (``IReactorUDP``
        and ``IReactorTCP``); default *clock*, which then must be a reactor.
    :param family: ``AF_INET`` or ``AF_INET6`` to get only addresses of that family (a
        server listening on IPv4 only cannot reach IPv6 ones); ``AF_UNSPEC`` for both,
        IPv4 first within each target.
    :param query_timeouts: seconds for each try of one DNS query (see
        :data:`QUERY_TIMEOUTS`).
    :param locate_timeout: seconds one location may take in all.
    :param randint: the random source for SRV weights (tests script it).
    :raises TypeError: both *resolver* and *servers*, or *servers* with no reactor.
    :raises ValueError: an unknown *family* or a timeout that is not positive.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        resolver: IResolver | None = None,
        servers: Sequence[tuple[str, int]] = (),
        reactor: object | None = None,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        query_timeouts: Sequence[float] = QUERY_TIMEOUTS,
        locate_timeout: float = LOCATE_TIMEOUT,
        randint: RandInt = random.randint,
    ) -> None:
        if family not in _ADDRESS_TYPES:
            raise ValueError(f"family: AF_INET, AF_INET6 or AF_UNSPEC, not {family!r}")
        if not query_timeouts or min(query_timeouts) <= 0 or locate_timeout <= 0:
            raise ValueError("query_timeouts, locate_timeout: positive seconds")
        if resolver is not None and servers:
            raise TypeError("give resolver or servers, not both")
        if resolver is None:
            resolver = self._client(servers, clock if reactor is None else reactor)
        self._clock = clock
        self._resolver = resolver
        self._family = family
        self._timeouts = tuple(query_timeouts)
        self._locate_timeout = locate_timeout
        self._randint = randint
        self._cache: OrderedDict[_Key, tuple[float, _Answer]] = OrderedDict()
        self._pending: dict[_Key, _Waiters] = {}

    @staticmethod
    def _client(servers: Sequence[tuple[str, int]], reactor: object) -> IResolver:
        if not servers:
            resolver: IResolver = client.createResolver()
            return resolver
        if not (IReactorUDP.providedBy(reactor) and IReactorTCP.providedBy(reactor)):
            raise TypeError("servers need a reactor (IReactorUDP, IReactorTCP) to send with")
        return cast(IResolver, client.Resolver(servers=list(servers), reactor=reactor))

    def locate(
        self, host: str, port: int | None, transport: str | None
    ) -> Deferred[tuple[Peer, ...]]:
        """The addresses of the SIP server for *host*, in the order to try them.

        :param host: a host name or IP literal (an IPv6 one with or without brackets).
        :param port: the URI's port, or None (then SRV decides, else 5060).
        :param transport: ``"udp"`` or ``"tcp"``, or None for UDP.
        :returns: a Deferred that fires with at least one :class:`Peer` (IP literal
            hosts, SRV order, addresses of a target in DNS order, IPv4 first), or
            fails with :class:`LocateError`; cancelling it stops the waiting.
        :raises ValueError: a malformed host, port or transport (before any lookup).
        """
        step = plan(host, port, transport)
        if isinstance(step, Literal):
            return self._literal(host, step.target)
        located = Deferred.fromCoroutine(self._locate(host, step))
        return located.addTimeout(
            self._locate_timeout,
            self._clock,
            onTimeoutCancel=lambda _result, timeout: _timed_out(host, timeout),
        )

    def _literal(self, host: str, target: Target) -> Deferred[tuple[Peer, ...]]:
        wrong = self._wrong_family(target.host)
        if wrong is not None:
            return fail(LocateError(host, wrong, LocateFailure.NO_ADDRESS))
        return succeed((Peer(target.transport, target.host, target.port),))

    def _wrong_family(self, address: str) -> str | None:
        """Why we cannot use the IP literal *address*, or None when we can."""
        family = ip_family(address)
        if self._family in (socket.AF_UNSPEC, family):
            return None
        ours = _family_name(self._family)
        return f"{address} is an {_family_name(family)} address; we use {ours} only"

    async def _locate(self, host: str, step: AddressLookup | ServiceLookup) -> tuple[Peer, ...]:
        additional: tuple[dns.RRHeader, ...] = ()
        if isinstance(step, ServiceLookup):
            try:
                answer = await self._query(step.name, dns.SRV)
            except _DnsError as e:
                raise LocateError(host, e.reason, e.kind) from None
            found = srv_targets(step, _srv_records(answer, step.name), self._randint)
            if isinstance(found, AddressLookup):
                targets: tuple[Target, ...] = (found.target,)
            else:
                targets, additional = found, answer.additional
        else:
            targets = (step.target,)
        results = await _all(
            [Deferred.fromCoroutine(self._addresses(t, additional)) for t in targets]
        )
        peers: list[Peer] = []
        misses: list[_DnsError] = []
        for result in results:
            if isinstance(result, _DnsError):
                misses.append(result)
            else:
                peers.extend(p for p in result if p not in peers)
        if peers:
            return tuple(peers)
        kind = min((m.kind for m in misses), key=_FAILURE_RANK.index)
        raise LocateError(host, "; ".join(m.reason for m in misses), kind)

    async def _addresses(
        self, target: Target, additional: tuple[dns.RRHeader, ...]
    ) -> tuple[Peer, ...] | _DnsError:
        """*target*'s addresses of our family as peers, taken from *additional* where
        the SRV answer carried them, else asked; or why there are none."""
        if ip_family(target.host) is not None:  # an SRV target written as an address
            wrong = self._wrong_family(target.host)
            if wrong is not None:
                return _DnsError(LocateFailure.NO_ADDRESS, wrong)
            return (Peer(target.transport, target.host, target.port),)
        types = _ADDRESS_TYPES[self._family]
        outcomes = await _all(
            [Deferred.fromCoroutine(self._ask(target.host, t, additional)) for t in types]
        )
        peers = tuple(
            Peer(target.transport, address, target.port)
            for outcome in outcomes
            if not isinstance(outcome, _DnsError)
            for address in outcome
        )
        if peers:
            return peers
        failures = [o for o in outcomes if isinstance(o, _DnsError)]
        if failures:
            return min(failures, key=lambda f: _FAILURE_RANK.index(f.kind))
        wanted = " or ".join(_type_name(t) for t in types)
        return _DnsError(
            LocateFailure.NO_ADDRESS,
            f"{target.host}: no {_family_name(self._family)} address ({wanted} records)",
        )

    async def _ask(
        self, name: str, qtype: int, additional: tuple[dns.RRHeader, ...]
    ) -> list[str] | _DnsError:
        """The *qtype* addresses of *name* (maybe none), or why the DNS gave none;
        from *additional* (an SRV answer's additional section) when it has them."""
        given = _addresses_in(additional, name, qtype)
        if given:
            return given
        try:
            answer = await self._query(name, qtype)
        except _DnsError as e:
            return e
        if answer.nxdomain:
            asked = f"{_type_name(qtype)} {name}"
            return _DnsError(LocateFailure.NXDOMAIN, f"{asked}: no such domain (NXDOMAIN)")
        return _addresses_in(answer.answers, name, qtype)

    def _query(self, name: str, qtype: int) -> Deferred[_Answer]:
        """The DNS's answer to (*name*, *qtype*): from the cache, from the query already
        in flight, or from a new query; fails with :class:`_DnsError`."""
        key = (name, qtype)
        cached = self._cache.get(key)
        if cached is not None:
            expires, answer = cached
            if self._clock.seconds() < expires:
                return succeed(answer)
            del self._cache[key]
        waiters = self._pending.get(key)
        if waiters is not None:
            return waiters.wait()
        waiters = self._pending[key] = _Waiters()
        # Wait first: the resolver may answer synchronously (from its own cache).
        waiting = waiters.wait()
        query = dns.Query(name, qtype, dns.IN)
        # IResolver types timeouts as ints; Twisted's client takes any seconds.
        timeouts = cast(Sequence[int], self._timeouts)
        maybeDeferred(self._resolver.query, query, timeouts).addBoth(self._settle, key, waiters)
        return waiting

    def _settle(self, result: object, key: _Key, waiters: _Waiters) -> None:
        del self._pending[key]
        outcome = self._outcome(result, key)
        if isinstance(outcome, _Answer):
            self._remember(key, outcome)
        waiters.fire(outcome)

    def _outcome(self, result: object, key: _Key) -> _Answer | _DnsError:
        name, qtype = key
        asked = f"{_type_name(qtype)} {name}"
        if not isinstance(result, Failure):
            answers, _authority, additional = cast(tuple[Any, Any, Any], result)
            return _Answer(tuple(answers), tuple(additional))
        e = result.value
        if isinstance(e, error.DNSNameError | error.AuthoritativeDomainError) or (
            type(e) is error.DomainError
        ):
            return _Answer(nxdomain=True)
        if isinstance(e, TimeoutError):
            # Twisted's client tries each server once per step of the timeouts.
            waited = f"{sum(self._timeouts):g} s"
            reason = f"{asked}: no answer in {waited} from each DNS server (timeout)"
            return _DnsError(LocateFailure.TIMEOUT, reason)
        rcode = next((n for t, n in _RCODE_NAMES.items() if isinstance(e, t)), None)
        return _DnsError(LocateFailure.SERVER_FAILURE, f"{asked}: {rcode or repr(e)}")

    def _remember(self, key: _Key, answer: _Answer) -> None:
        records = answer.answers + answer.additional
        if answer.nxdomain or not any(r.type == key[1] for r in answer.answers):
            ttl = NEGATIVE_TTL
        else:
            ttl = min(max(min(r.ttl for r in records), CACHE_TTL_FLOOR), CACHE_TTL_CAP)
        while len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.popitem(last=False)
        self._cache[key] = (self._clock.seconds() + ttl, answer)


#: Failure kinds from the one most worth reporting (and retrying) to the least.
_FAILURE_RANK = (
    LocateFailure.TIMEOUT,
    LocateFailure.SERVER_FAILURE,
    LocateFailure.NO_ADDRESS,
    LocateFailure.NXDOMAIN,
    LocateFailure.NOT_AVAILABLE,
)


def _family_name(family: socket.AddressFamily | None) -> str:
    return "IPv4" if family == socket.AF_INET else "IPv6" if family == socket.AF_INET6 else "IP"


async def _all(deferreds: Sequence[Deferred[_T]]) -> list[_T]:
    """The results of *deferreds*, which run in parallel; cancelling cancels them all
    (``gatherResults`` would turn that CancelledError into a FirstError)."""
    results = await DeferredList(deferreds, consumeErrors=True)
    for ok, value in results:
        if not ok:
            cast(Failure, value).raiseException()
    return [value for _ok, value in results]


def _timed_out(host: str, timeout: float) -> NoReturn:
    raise LocateError(host, f"DNS gave no answer in {timeout:g} s (timeout)", LocateFailure.TIMEOUT)
