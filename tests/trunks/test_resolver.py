"""SipResolver against a real DNS server on loopback: Twisted's own
``DNSServerFactory`` with an in-memory zone, in the test's reactor.

Each test reads what the server was asked (``server.asked``), so caching and
coalescing are checked at the wire.  Fixtures fail a test that leaves a DNS query in
flight (a pending ``_clearFailed`` call of Twisted's DNS protocol).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock, deferLater
from twisted.names import authority, client, common, dns, server
from twisted.python.failure import Failure

from telephony.sip.peer import Peer
from telephony.trunks import resolver as resolver_module
from telephony.trunks.resolver import (
    CACHE_TTL_CAP,
    CACHE_TTL_FLOOR,
    LOCATE_TIMEOUT,
    NEGATIVE_TTL,
    LocateError,
    LocateFailure,
    SipResolver,
)


def lowest(low: int, high: int) -> int:
    """An RFC 2782 draw that always takes the first record of the arranged list."""
    return low


def highest(low: int, high: int) -> int:
    """An RFC 2782 draw that always takes the last record of the arranged list."""
    return high


SOA = dns.Record_SOA(mname="ns.test", rname="root.test", serial=1, minimum=60, expire=60, ttl=60)


def zone() -> dict[bytes, list[Any]]:
    """The records every test starts from (addresses are data only: never contacted)."""
    a, b, c = (f"{n}.carrier.test" for n in "abc")
    return {
        b"test": [SOA],
        b"_sip._udp.carrier.test": [
            dns.Record_SRV(10, 60, 5070, a, ttl=300),
            dns.Record_SRV(10, 20, 5071, b, ttl=300),
            dns.Record_SRV(20, 0, 5072, c, ttl=300),
        ],
        b"_sip._tcp.carrier.test": [dns.Record_SRV(10, 0, 5080, a, ttl=300)],
        b"a.carrier.test": [dns.Record_A("127.0.0.11", ttl=60)],
        b"b.carrier.test": [dns.Record_A("127.0.0.12", ttl=300)],
        b"c.carrier.test": [dns.Record_A("127.0.0.13", ttl=300)],
        b"plain.test": [dns.Record_A("127.0.0.21", ttl=300), dns.Record_AAAA("::1", ttl=300)],
        b"v6only.test": [dns.Record_AAAA("::1", ttl=300)],
        b"alias.test": [dns.Record_CNAME("a.carrier.test", ttl=300)],
        b"_sip._udp.closed.test": [dns.Record_SRV(0, 0, 0, b"", ttl=300)],
        b"closed.test": [dns.Record_A("127.0.0.31", ttl=300)],
        b"_sip._udp.half.test": [
            dns.Record_SRV(10, 0, 5070, "missing.test", ttl=300),
            dns.Record_SRV(20, 0, 5071, "b.carrier.test", ttl=300),
        ],
        b"_sip._udp.broken.test": [dns.Record_SRV(10, 0, 5070, "missing.test", ttl=300)],
        b"_sip._udp.mixed.test": [
            dns.Record_SRV(10, 0, 5070, "missing.test", ttl=300),
            dns.Record_SRV(20, 0, 5071, "servfail.test", ttl=300),
        ],
        b"_sip._udp.twice.test": [
            dns.Record_SRV(10, 0, 5070, "a.carrier.test", ttl=300),
            dns.Record_SRV(20, 0, 5070, "alias.test", ttl=300),
        ],
    }


class Zone(authority.FileAuthority):
    """An in-memory zone for ``test`` (how Twisted's own tests build one), which can
    also put SRV targets' addresses in the additional section, as BIND does."""

    def __init__(self, records: dict[bytes, list[Any]]) -> None:
        common.ResolverBase.__init__(self)
        self.soa = (b"test", SOA)
        self.records = records
        self.srv_additional = False

    def _additionalRecords(self, answer: Any, authority: Any, ttl: int) -> Iterator[Any]:
        yield from super()._additionalRecords(answer, authority, ttl)
        for record in answer if self.srv_additional else ():
            if record.type == dns.SRV:
                name = record.payload.target.name
                for rec in self.records.get(name.lower(), ()):
                    if rec.TYPE in self._ADDRESS_TYPES:
                        yield dns.RRHeader(name, rec.TYPE, dns.IN, rec.ttl, rec, auth=True)


class CountingServerFactory(server.DNSServerFactory):
    """Twisted's DNS server, recording each question it is asked; it answers SERVFAIL
    for names that start with ``servfail``."""

    def __init__(self, zone: Zone) -> None:
        super().__init__(authorities=[zone])
        self.asked: list[tuple[str, str]] = []

    def messageReceived(self, message: dns.Message, proto: Any, address: Any = None) -> None:
        for query in message.queries:
            self.asked.append((dns.QUERY_TYPES[query.type], query.name.name.decode()))
        if message.queries and message.queries[0].name.name.startswith(b"servfail"):
            reply = self._responseFromMessage(message=message, rCode=dns.ESERVER)
            self.sendReply(proto, reply, address)
            return
        super().messageReceived(message, proto, address)


@attrs.define
class DnsServer:
    address: tuple[str, int]
    zone: Zone
    factory: CountingServerFactory

    @property
    def asked(self) -> list[tuple[str, str]]:
        return self.factory.asked


def no_query_in_flight() -> None:
    pending = [c for c in reactor.getDelayedCalls() if "_clearFailed" in repr(c.func)]
    assert pending == [], f"DNS queries left in flight: {pending}"


@pytest_twisted.async_yield_fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    the_zone = Zone(zone())
    factory = CountingServerFactory(the_zone)
    for _ in range(20):  # a port free for both UDP and TCP (a truncated answer goes TCP)
        tcp = reactor.listenTCP(0, factory, interface="127.0.0.1")
        port = tcp.getHost().port
        try:
            udp = reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        except CannotListenError:
            await tcp.stopListening()
            continue
        break
    else:
        raise RuntimeError("no port free for UDP and TCP")
    yield DnsServer(("127.0.0.1", port), the_zone, factory)
    for connection in factory.connections[:]:
        connection.transport.loseConnection()
    await udp.stopListening()
    await tcp.stopListening()
    no_query_in_flight()


class Silent(DatagramProtocol):
    """A DNS server that never answers: it only counts what it is sent."""

    def __init__(self) -> None:
        self.received = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received += 1


@pytest_twisted.async_yield_fixture
async def silent() -> AsyncIterator[tuple[tuple[str, int], Silent]]:
    protocol = Silent()
    port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
    yield ("127.0.0.1", port.getHost().port), protocol
    await port.stopListening()
    no_query_in_flight()


def sip_resolver(server: tuple[str, int], **kwargs: Any) -> SipResolver:
    kwargs.setdefault("clock", reactor)
    kwargs.setdefault("family", socket.AF_INET)
    kwargs.setdefault("randint", lowest)
    return SipResolver(servers=[server], reactor=reactor, **kwargs)


async def failure_of(d: Deferred[Any]) -> Failure:
    try:
        result = await d
    except Exception:
        return Failure()
    raise AssertionError(f"expected a failure, got {result!r}")


# --- what is looked up, and the order ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_srv_with_two_priorities_in_rfc2782_order(dns_server: DnsServer) -> None:
    peers = await sip_resolver(dns_server.address).locate("carrier.test", None, None)
    assert peers == (
        Peer("udp", "127.0.0.11", 5070),
        Peer("udp", "127.0.0.12", 5071),
        Peer("udp", "127.0.0.13", 5072),
    )
    assert dns_server.asked[0] == ("SRV", "_sip._udp.carrier.test")
    assert sorted(dns_server.asked[1:]) == [
        ("A", "a.carrier.test"),
        ("A", "b.carrier.test"),
        ("A", "c.carrier.test"),
    ]


@pytest_twisted.ensureDeferred
async def test_srv_weights_decide_within_a_priority(dns_server: DnsServer) -> None:
    """Drawing the highest number takes the last of a (60) and b (20): b goes first;
    priority 20 still comes after both."""
    resolver = sip_resolver(dns_server.address, randint=highest)
    peers = await resolver.locate("carrier.test", None, None)
    assert [p.port for p in peers] == [5071, 5070, 5072]


@pytest_twisted.ensureDeferred
async def test_tcp_asks_the_sip_tcp_service(dns_server: DnsServer) -> None:
    peers = await sip_resolver(dns_server.address).locate("carrier.test", None, "TCP")
    assert peers == (Peer("tcp", "127.0.0.11", 5080),)
    assert dns_server.asked[0] == ("SRV", "_sip._tcp.carrier.test")


@pytest_twisted.ensureDeferred
async def test_no_srv_records_fall_back_to_a_at_5060(dns_server: DnsServer) -> None:
    peers = await sip_resolver(dns_server.address).locate("plain.test", None, None)
    assert peers == (Peer("udp", "127.0.0.21", 5060),)
    assert dns_server.asked == [("SRV", "_sip._udp.plain.test"), ("A", "plain.test")]


@pytest_twisted.ensureDeferred
async def test_explicit_port_skips_srv(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address)
    peers = await resolver.locate("B.Carrier.Test.", 5090, "tcp")
    assert peers == (Peer("tcp", "127.0.0.12", 5090),)
    assert dns_server.asked == [("A", "b.carrier.test")]


@pytest_twisted.ensureDeferred
async def test_ip_literal_needs_no_dns(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address, family=socket.AF_UNSPEC)
    assert await resolver.locate("127.0.0.5", None, None) == (Peer("udp", "127.0.0.5", 5060),)
    assert await resolver.locate("[::1]", 5070, "tcp") == (Peer("tcp", "::1", 5070),)
    assert dns_server.asked == []


@pytest_twisted.ensureDeferred
async def test_cname_is_followed(dns_server: DnsServer) -> None:
    peers = await sip_resolver(dns_server.address).locate("alias.test", 5060, None)
    assert peers == (Peer("udp", "127.0.0.11", 5060),)


@pytest_twisted.ensureDeferred
async def test_srv_targets_addresses_come_from_the_additional_section(
    dns_server: DnsServer,
) -> None:
    dns_server.zone.srv_additional = True
    peers = await sip_resolver(dns_server.address).locate("carrier.test", None, None)
    assert [p.host for p in peers] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert dns_server.asked == [("SRV", "_sip._udp.carrier.test")]


@pytest_twisted.ensureDeferred
async def test_a_target_without_address_is_skipped(dns_server: DnsServer) -> None:
    peers = await sip_resolver(dns_server.address).locate("half.test", None, None)
    assert peers == (Peer("udp", "127.0.0.12", 5071),)


@pytest_twisted.ensureDeferred
async def test_an_address_reached_through_two_targets_is_tried_once(
    dns_server: DnsServer,
) -> None:
    peers = await sip_resolver(dns_server.address).locate("twice.test", None, None)
    assert peers == (Peer("udp", "127.0.0.11", 5070),)


# --- failures ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_nxdomain_names_the_host(dns_server: DnsServer) -> None:
    failure = await failure_of(sip_resolver(dns_server.address).locate("missing.test", None, None))
    error = failure.value
    assert isinstance(error, LocateError)
    assert error.kind is LocateFailure.NXDOMAIN
    assert str(error) == (
        "cannot locate SIP server missing.test: A missing.test: no such domain (NXDOMAIN)"
    )
    # The SRV name did not exist either: that is "no SRV records", so A was asked.
    assert dns_server.asked == [("SRV", "_sip._udp.missing.test"), ("A", "missing.test")]


@pytest_twisted.ensureDeferred
async def test_srv_targets_that_all_fail_say_so(dns_server: DnsServer) -> None:
    failure = await failure_of(sip_resolver(dns_server.address).locate("broken.test", None, None))
    assert failure.value.kind is LocateFailure.NXDOMAIN
    assert str(failure.value) == (
        "cannot locate SIP server broken.test: A missing.test: no such domain (NXDOMAIN)"
    )


@pytest_twisted.ensureDeferred
async def test_the_failure_most_worth_retrying_gives_the_kind(dns_server: DnsServer) -> None:
    """One target does not exist, the other's server failed: SERVER_FAILURE, which may
    pass, is the kind; the message says both."""
    failure = await failure_of(sip_resolver(dns_server.address).locate("mixed.test", None, None))
    assert failure.value.kind is LocateFailure.SERVER_FAILURE
    assert str(failure.value) == (
        "cannot locate SIP server mixed.test: A missing.test: no such domain (NXDOMAIN); "
        "A servfail.test: SERVFAIL"
    )


@pytest_twisted.ensureDeferred
async def test_a_lone_dot_srv_target_means_not_available(dns_server: DnsServer) -> None:
    failure = await failure_of(sip_resolver(dns_server.address).locate("closed.test", None, None))
    assert failure.value.kind is LocateFailure.NOT_AVAILABLE
    assert "closed.test" in str(failure.value)
    assert dns_server.asked == [("SRV", "_sip._udp.closed.test")]  # no A fallback


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_answers_times_out_with_the_typed_error(
    silent: tuple[tuple[str, int], Silent],
) -> None:
    address, protocol = silent
    resolver = sip_resolver(address, query_timeouts=(0.2, 0.3))
    started = time.monotonic()
    failure = await failure_of(resolver.locate("carrier.test", None, None))
    elapsed = time.monotonic() - started
    assert failure.value.kind is LocateFailure.TIMEOUT
    assert str(failure.value) == (
        "cannot locate SIP server carrier.test: SRV _sip._udp.carrier.test: "
        "no answer in 0.5 s from each DNS server (timeout)"
    )
    assert 0.4 < elapsed < 2.0
    assert protocol.received == 2  # the query and its one retry
    # A timeout is not cached: the next call asks again.
    await failure_of(resolver.locate("carrier.test", None, None))
    assert protocol.received == 4


@pytest_twisted.ensureDeferred
async def test_the_whole_location_is_bounded_on_the_clock(
    silent: tuple[tuple[str, int], Silent], clock: Clock
) -> None:
    address, _protocol = silent
    resolver = sip_resolver(address, clock=clock, query_timeouts=(0.3,))
    located = resolver.locate("carrier.test", None, None)
    clock.advance(LOCATE_TIMEOUT - 0.001)
    assert not located.called
    clock.advance(0.001)
    failure = await failure_of(located)
    assert failure.value.kind is LocateFailure.TIMEOUT
    assert str(failure.value) == (
        f"cannot locate SIP server carrier.test: DNS gave no answer in {LOCATE_TIMEOUT:g} s "
        "(timeout)"
    )
    await deferLater(reactor, 0.4, lambda: None)  # the query's own 0.3 s timeout ends it


# --- the address family filter -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_ipv4_server_gets_only_ipv4_and_asks_no_aaaa(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address, family=socket.AF_INET)
    assert await resolver.locate("plain.test", 5060, None) == (Peer("udp", "127.0.0.21", 5060),)
    assert dns_server.asked == [("A", "plain.test")]


@pytest_twisted.ensureDeferred
async def test_ipv6_server_gets_only_ipv6(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address, family=socket.AF_INET6)
    assert await resolver.locate("plain.test", 5060, None) == (Peer("udp", "::1", 5060),)
    assert dns_server.asked == [("AAAA", "plain.test")]


@pytest_twisted.ensureDeferred
async def test_both_families_ipv4_first(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address, family=socket.AF_UNSPEC)
    assert await resolver.locate("plain.test", 5060, None) == (
        Peer("udp", "127.0.0.21", 5060),
        Peer("udp", "::1", 5060),
    )


@pytest_twisted.ensureDeferred
async def test_no_address_of_our_family(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address, family=socket.AF_INET)
    failure = await failure_of(resolver.locate("v6only.test", 5060, None))
    assert failure.value.kind is LocateFailure.NO_ADDRESS
    assert str(failure.value) == (
        "cannot locate SIP server v6only.test: v6only.test: no IPv4 address (A records)"
    )
    failure = await failure_of(resolver.locate("[::1]", None, None))
    assert failure.value.kind is LocateFailure.NO_ADDRESS
    assert str(failure.value) == (
        "cannot locate SIP server [::1]: ::1 is an IPv6 address; we use IPv4 only"
    )


# --- cache, coalescing, cancellation ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_answers_are_kept_for_their_ttl_on_the_clock(
    dns_server: DnsServer, clock: Clock
) -> None:
    resolver = sip_resolver(dns_server.address, clock=clock)
    first = await resolver.locate("a.carrier.test", 5060, None)  # A ttl=60
    dns_server.zone.records[b"a.carrier.test"] = [dns.Record_A("127.0.0.99", ttl=60)]
    clock.advance(59.9)
    assert await resolver.locate("a.carrier.test", 5060, None) == first
    assert len(dns_server.asked) == 1
    clock.advance(0.1)
    assert await resolver.locate("a.carrier.test", 5060, None) == (Peer("udp", "127.0.0.99", 5060),)
    assert len(dns_server.asked) == 2


@pytest.mark.parametrize(("ttl", "kept"), [(0, CACHE_TTL_FLOOR), (86400, CACHE_TTL_CAP)])
@pytest_twisted.ensureDeferred
async def test_ttl_floor_and_cap(
    dns_server: DnsServer, clock: Clock, ttl: int, kept: float
) -> None:
    dns_server.zone.records[b"a.carrier.test"] = [dns.Record_A("127.0.0.11", ttl=ttl)]
    resolver = sip_resolver(dns_server.address, clock=clock)
    await resolver.locate("a.carrier.test", 5060, None)
    clock.advance(kept - 0.01)
    await resolver.locate("a.carrier.test", 5060, None)
    assert len(dns_server.asked) == 1
    clock.advance(0.01)
    await resolver.locate("a.carrier.test", 5060, None)
    assert len(dns_server.asked) == 2


@pytest_twisted.ensureDeferred
async def test_negative_answers_are_kept_briefly(dns_server: DnsServer, clock: Clock) -> None:
    resolver = sip_resolver(dns_server.address, clock=clock)
    await failure_of(resolver.locate("missing.test", 5060, None))
    clock.advance(NEGATIVE_TTL - 0.01)
    await failure_of(resolver.locate("missing.test", 5060, None))
    assert dns_server.asked == [("A", "missing.test")]
    dns_server.zone.records[b"missing.test"] = [dns.Record_A("127.0.0.41", ttl=60)]
    clock.advance(0.01)
    assert await resolver.locate("missing.test", 5060, None) == (Peer("udp", "127.0.0.41", 5060),)
    assert dns_server.asked == [("A", "missing.test")] * 2


class CountingResolver:
    """An IResolver that counts the questions SipResolver puts to Twisted's client."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.questions: list[tuple[str, int]] = []

    def query(self, query: dns.Query, timeout: Sequence[int]) -> Deferred[Any]:
        self.questions.append((query.name.name.decode(), query.type))
        return self.inner.query(query, timeout)


@pytest_twisted.ensureDeferred
async def test_concurrent_lookups_of_one_name_share_one_query(dns_server: DnsServer) -> None:
    counting = CountingResolver(client.Resolver(servers=[dns_server.address], reactor=reactor))
    resolver = SipResolver(clock=reactor, resolver=counting, family=socket.AF_INET, randint=lowest)
    located = [resolver.locate("carrier.test", None, None) for _ in range(3)]
    results = [await d for d in located]
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 3
    # One question per name and type, at our client and at the server.
    assert sorted(counting.questions) == sorted(set(counting.questions))
    assert len(counting.questions) == 4
    assert sorted(dns_server.asked) == sorted(set(dns_server.asked))
    assert len(dns_server.asked) == 4


@pytest_twisted.ensureDeferred
async def test_cancel_stops_one_caller_and_not_the_others(dns_server: DnsServer) -> None:
    resolver = sip_resolver(dns_server.address)
    cancelled = resolver.locate("carrier.test", None, None)
    kept = resolver.locate("carrier.test", None, None)
    cancelled.cancel()
    failure = await failure_of(cancelled)
    assert failure.check(CancelledError)
    assert len(await kept) == 3
    assert len(dns_server.asked) == 4


@pytest_twisted.ensureDeferred
async def test_cancel_while_the_server_is_silent(
    silent: tuple[tuple[str, int], Silent], clock: Clock
) -> None:
    address, _protocol = silent
    resolver = sip_resolver(address, clock=clock, family=socket.AF_UNSPEC, query_timeouts=(0.3,))
    for located in [
        resolver.locate("carrier.test", None, None),  # waiting for SRV
        resolver.locate("plain.test", 5060, None),  # waiting for A and AAAA together
    ]:
        located.cancel()
        assert (await failure_of(located)).check(CancelledError)
    assert clock.getDelayedCalls() == []  # the deadlines went with them
    await deferLater(reactor, 0.4, lambda: None)  # the query ends by its own timeout


# --- construction ---------------------------------------------------------------------------


def test_no_servers_means_the_systems_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    def create_resolver(servers: object = None) -> object:
        made.append(servers)
        return object()

    monkeypatch.setattr(resolver_module.client, "createResolver", create_resolver)
    SipResolver(clock=Clock())
    assert made == [None]


def test_construction_errors() -> None:
    with pytest.raises(TypeError, match="not both"):
        SipResolver(
            clock=reactor,
            resolver=client.Resolver(servers=[("127.0.0.1", 53)]),
            servers=[("127.0.0.1", 53)],
        )
    with pytest.raises(TypeError, match="reactor"):
        SipResolver(clock=Clock(), servers=[("127.0.0.1", 53)])
    with pytest.raises(ValueError, match="family"):
        SipResolver(clock=reactor, servers=[("127.0.0.1", 53)], family=socket.AF_UNIX)
    with pytest.raises(ValueError, match="timeout"):
        SipResolver(clock=reactor, servers=[("127.0.0.1", 53)], query_timeouts=())


def test_bad_input_is_refused_before_any_lookup() -> None:
    resolver = SipResolver(clock=reactor, servers=[("127.0.0.1", 9)])
    with pytest.raises(ValueError, match=r"^host: "):
        resolver.locate("bad host", None, None)
    with pytest.raises(ValueError, match=r"^transport: "):
        resolver.locate("carrier.test", None, "tls")
