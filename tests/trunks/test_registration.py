"""Trunk registration on a ``task.Clock``: digest, refresh, 423, failures and back-off.

The SIP stack is real (transactions and their timers); the provider is this test,
answering the REGISTERs the recording transport saw, with our own digest verifier.
"""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from telephony.sip.digest import DigestAlgorithm, DigestAuthenticator, Verdict, compute_ha1
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import SipStack
from telephony.trunks.gateway import parse_gateways
from telephony.trunks.registration import (
    RETRY_BASE,
    RegistrationState,
    TrunkRegistration,
    refresh_delay,
    retry_delay,
)
from tests.sip.helpers import RecordingTransport, make_stack

P1 = Peer("udp", "192.0.2.10", 5060)
P2 = Peer("udp", "192.0.2.11", 5060)
REALM = "carrier.test"


@attrs.define
class Locator:
    peers: tuple[Peer, ...]
    asked: int = 0

    def locate(
        self, host: str, port: int | None, transport: str | None
    ) -> Deferred[tuple[Peer, ...]]:
        self.asked += 1
        return succeed(self.peers)


@attrs.define
class Provider:
    """The far end: reads our REGISTERs, answers them."""

    clock: Clock
    stack: SipStack
    transport: RecordingTransport
    registration: TrunkRegistration
    auth: DigestAuthenticator = attrs.Factory(
        lambda: DigestAuthenticator(realm=REALM, algorithms=(DigestAlgorithm.MD5,))
    )
    seen: int = 0

    def requests(self) -> list[tuple[float, Request, Peer]]:
        out = []
        for t, data, peer in self.transport.sent:
            message = parse_datagram(data)
            if isinstance(message, Request):
                out.append((round(t, 6), message, peer))
        return out

    def next(self) -> tuple[Request, Peer]:
        """The first REGISTER not yet answered."""
        _, request, peer = self.requests()[self.seen]
        self.seen += 1
        return request, peer

    def answer(self, status: int, *, challenge: bool = False, **headers: str) -> Request:
        request, peer = self.next()
        response = Response.for_request(request, status, to_tag="prov")
        if challenge:
            for value in self.auth.challenges(self.clock.seconds()):
                response.headers.add("WWW-Authenticate", value)
        for name, value in headers.items():
            response.headers.add(name.replace("_", "-"), value)
        self.stack.datagram_received(response.to_bytes(), peer)
        return request

    def register_ok(self, expires: int) -> Request:
        """Challenge, check the credentials, then 200 with *expires* on our contact."""
        self.answer(401, challenge=True)
        request, peer = self.next()
        ha1 = {DigestAlgorithm.MD5: compute_ha1(DigestAlgorithm.MD5, "acme", REALM, "s3cret")}
        verdict = self.auth.verify(
            "REGISTER", request.headers.get("Authorization"), ha1, self.clock.seconds()
        )
        assert verdict.verdict is Verdict.OK
        response = Response.for_request(request, 200, to_tag="prov")
        response.headers.add("Contact", f"{request.headers.get('Contact')};expires={expires}")
        self.stack.datagram_received(response.to_bytes(), peer)
        return request


def _provider(clock: Clock, gateway: str, peers: tuple[Peer, ...] = (P1,)) -> Provider:
    clock.advance(1_800_000_000)
    stack, transport, _ = make_stack(clock)
    [gw] = parse_gateways(gateway)
    registration = TrunkRegistration(
        gateway=gw,
        stack=stack,
        clock=clock,
        locator=Locator(peers),
        contact_host="127.0.0.1:5060",
    )
    return Provider(clock, stack, transport, registration)


def _finish(p: Provider) -> None:
    p.registration.stop()
    p.clock.advance(60)
    p.stack.stop()


def test_register_answers_the_challenge_and_refreshes_before_expiry(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:s3cret@sip.carrier.test;register")
    start = clock.seconds()
    p.registration.start()
    first = p.register_ok(expires=120)
    assert str(first.uri) == "sip:sip.carrier.test"
    assert str(first.to.uri) == "sip:acme@sip.carrier.test"
    assert first.headers.get("Contact") == "<sip:acme@127.0.0.1:5060>"
    assert first.headers.get("Expires") == "3600"
    assert p.registration.state is RegistrationState.REGISTERED
    assert p.registration.status()["expires_in"] == 120
    clock.advance(refresh_delay(120) - 0.001)
    assert len(p.requests()) == 2, "not before the refresh time"
    clock.advance(0.001)
    assert [round(t - start, 3) for t, _, _ in p.requests()][2:] == [90.0]
    refresh = p.register_ok(expires=120)
    assert (refresh.call_id, refresh.from_.tag) == (first.call_id, first.from_.tag)
    assert refresh.cseq.number > first.cseq.number
    assert p.registration.state is RegistrationState.REGISTERED
    _finish(p)


def test_423_raises_the_interval_asked(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:s3cret@sip.carrier.test;register;register_expires=60")
    p.registration.start()
    p.answer(423, Min_Expires="300")
    again, _ = p.next()
    p.seen -= 1
    assert again.headers.get("Expires") == "300"
    p.register_ok(expires=300)
    assert p.registration.state is RegistrationState.REGISTERED
    _finish(p)


def test_refused_credentials_back_off(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:wrong@sip.carrier.test;register")
    start = clock.seconds()
    p.registration.start()
    p.answer(401, challenge=True)
    p.answer(401, challenge=True)
    assert p.registration.state is RegistrationState.FAILED
    assert p.registration.status()["last"] == "401: credentials refused (realm 'carrier.test')"
    clock.advance(RETRY_BASE)
    p.answer(401, challenge=True)
    p.answer(401, challenge=True)
    clock.advance(2 * RETRY_BASE)
    times = [round(t - start, 3) for t, _, _ in p.requests()]
    assert times == [0.0, 0.0, 30.0, 30.0, 90.0]
    _finish(p)


def test_a_503_moves_to_the_next_address_at_once_then_backs_off(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:s3cret@sip.carrier.test;register", peers=(P1, P2))
    start = clock.seconds()
    p.registration.start()
    p.answer(503)
    [(_, _, first), (t, _, second)] = p.requests()
    assert (first, second, t - start) == (P1, P2, 0.0)
    p.answer(503, Retry_After="120")
    assert p.registration.state is RegistrationState.FAILED
    clock.advance(119.9)
    assert len(p.requests()) == 2
    clock.advance(0.1)
    assert p.requests()[-1][2] == P1, "located again, from the first address"
    p.register_ok(expires=3600)
    assert p.registration.state is RegistrationState.REGISTERED
    _finish(p)


def test_a_silent_provider_times_out_at_timer_f(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:s3cret@sip.carrier.test;register")
    p.registration.start()
    clock.pump([0.5] * 64)
    assert p.registration.state is RegistrationState.FAILED
    assert p.registration.last_reason.startswith("408")
    _finish(p)


def test_stop_unregisters_and_does_not_wait_long(clock: Clock) -> None:
    p = _provider(clock, "sip:acme:s3cret@sip.carrier.test;register")
    p.registration.start()
    p.register_ok(expires=3600)
    stopped = p.registration.stop()
    bye, _ = p.next()
    assert bye.headers.get("Expires") == "0"
    assert not stopped.called
    clock.advance(2.0)
    assert stopped.called, "the shutdown does not wait for a silent provider"
    assert p.registration.state is RegistrationState.STOPPED
    clock.advance(60)
    p.stack.stop()


@pytest.mark.parametrize(
    ("failures", "retry_after", "delay"),
    [(1, None, 30.0), (2, None, 60.0), (5, None, 480.0), (9, None, 600.0), (1, 45.0, 45.0)],
)
def test_retry_delays(failures: int, retry_after: float | None, delay: float) -> None:
    assert retry_delay(failures, retry_after) == delay


def test_refresh_delays() -> None:
    assert [refresh_delay(g) for g in (3600, 120, 60, 4)] == [3570, 90, 30, 2]
