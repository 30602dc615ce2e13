"""Routing of new INVITEs, on a real directory: gateways, endpoints, app URIs, refusals."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from telephony.auth import CredentialCache, RequestAuthenticator
from telephony.calls.routing import Route, RouteKind, Router, normalize_number
from telephony.directory import Directory
from telephony.directory.models import ApplicationFields
from telephony.sip.digest import DigestAuthenticator
from telephony.sip.guard import SourceGuard
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.trunks.gateway import parse_gateways
from telephony.trunks.trust import TrustedGateways
from tests.sip.helpers import make_stack, request_bytes
from tests.sip.test_registrar import digest_response

ensure = pytest_twisted.ensureDeferred
GATEWAY = Peer("udp", "127.0.0.2", 5070)
PHONE = Peer("udp", "127.0.0.1", 40000)


def _app(name: str, **kw: object) -> ApplicationFields:
    return ApplicationFields(app_name=name, answer_url=f"http://127.0.0.1:9/{name}", **kw)  # type: ignore[arg-type]


def _router(directory: Directory, clock: Clock) -> Router:
    auth = RequestAuthenticator(
        CredentialCache(directory, clock),
        DigestAuthenticator(realm="example.test"),
        SourceGuard(),
        clock,
    )
    return Router(
        directory=directory,
        auth=auth,
        gateways=TrustedGateways(parse_gateways("sip:127.0.0.2:5070")),
        domain="example.test",
    )


@pytest.fixture
def router(directory: Directory, clock: Clock) -> Router:
    return _router(directory, clock)


class _Routing:
    """A stack whose new requests go to the router; their routes are collected."""

    def __init__(self, router: Router, clock: Clock) -> None:
        self.router = router
        self.routes: list[Route | None] = []
        self._waiting: list[Deferred[Any]] = []
        self.stack, self.transport, _ = make_stack(clock, self._respond)

    def _respond(self, request: Request, txn: Any) -> None:
        routed = Deferred.fromCoroutine(self.router.route(request, txn))
        self._waiting.append(routed.addCallback(self.routes.append))

    async def deliver(self, data: bytes, peer: Peer) -> None:
        """Hand *data* to the stack and wait until the router has decided."""
        self.stack.datagram_received(data, peer)
        while self._waiting:
            await self._waiting.pop(0)

    def responses(self) -> list[Response]:
        """Every response sent so far."""
        sent = (parse_datagram(x) for _, x, _ in self.transport.sent)
        return [m for m in sent if isinstance(m, Response)]


async def _route(
    router: Router, data: bytes, peer: Peer, clock: Clock
) -> tuple[Route | None, list[Response]]:
    routing = _Routing(router, clock)
    await routing.deliver(data, peer)
    routing.stack.stop()
    return routing.routes[0], routing.responses()


def _invite(to: str, from_user: str = "18005550000", auth: str | None = None) -> bytes:
    data = request_bytes(
        "INVITE",
        "z9hG4bKr1",
        uri=f"sip:{to}@example.test",
        extra=(f"Proxy-Authorization: {auth}\r\n" if auth else "")
        + "Contact: <sip:x@127.0.0.1>\r\n",
    )
    return data.replace(
        b"From: <sip:alice@example.test>", f"From: <sip:{from_user}@example.test>".encode()
    )


def test_normalize_number() -> None:
    assert normalize_number("+1 (800) 123-1234") == "18001231234"


@ensure
async def test_gateway_to_our_number_runs_its_application(
    directory: Directory, router: Router, clock: Clock
) -> None:
    app = await directory.create_application(_app("ivr"))
    await directory.add_numbers(["18001231234"], "trunk", "US", app_id=app.app_id)
    route, replies = await _route(router, _invite("+1-800-123-1234"), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.application, route.called, route.caller, route.source) == (
        RouteKind.APPLICATION,
        app,
        "18001231234",
        "18005550000",
        "gateway",
    )
    assert replies == []


@ensure
async def test_gateway_to_unknown_number_and_other_sources(
    directory: Directory, router: Router, clock: Clock
) -> None:
    route, _ = await _route(router, _invite("18009999999"), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.status) == (RouteKind.REJECT, 404)
    # The same INVITE from anywhere else must authenticate first.
    route, replies = await _route(router, _invite("18009999999"), PHONE, clock)
    assert route is None
    assert [r.status for r in replies] == [407]
    assert replies[0].headers.get_all("Proxy-Authenticate")


@ensure
async def test_an_invite_without_credentials_is_challenged_statelessly(
    router: Router, clock: Clock
) -> None:
    """One 407, never retransmitted, no transaction left; the ACK is ignored, and the
    INVITE sent again is challenged again with the same To tag (RFC 3261 §8.2.7)."""
    routing = _Routing(router, clock)
    invite = _invite("18009999999")
    await routing.deliver(invite, PHONE)
    assert routing.stack.transaction_count == 0
    (first,) = routing.responses()
    assert first.status == 407
    ack = invite.replace(b"INVITE sip:", b"ACK sip:").replace(b"1 INVITE", b"1 ACK")
    await routing.deliver(ack, PHONE)
    clock.advance(32)
    assert len(routing.transport.sent) == 1, "no Timer G retransmission, nothing for the ACK"
    await routing.deliver(invite, PHONE)
    again = routing.responses()[-1]
    assert (again.status, again.to.tag) == (407, first.to.tag)
    routing.stack.stop()


@ensure
async def test_endpoint_runs_its_app_or_rings_another_endpoint(
    directory: Directory, router: Router, clock: Clock
) -> None:
    app = await directory.create_application(_app("mine"))
    alice = await directory.create_endpoint("alice", "pw", "Alice", app.app_id)
    bob = await directory.create_endpoint("bob", "pw", "Bob")
    _, replies = await _route(router, _invite("18001231234", alice.username), PHONE, clock)
    challenge = replies[0].headers.get_all("Proxy-Authenticate")[0]
    digest_response_header = digest_response(
        challenge, alice.username, "pw", method="INVITE", uri="sip:18001231234@example.test"
    )
    route, _ = await _route(
        router, _invite("18001231234", alice.username, digest_response_header), PHONE, clock
    )
    assert route is not None
    assert (route.kind, route.application, route.caller, route.called) == (
        RouteKind.APPLICATION,
        app,
        alice.username,
        "18001231234",
    )
    # Bob has no application: he may still call alice's SIP URI, which rings directly.
    _, replies = await _route(router, _invite(alice.username, bob.username), PHONE, clock)
    challenge = replies[0].headers.get_all("Proxy-Authenticate")[0]
    header = digest_response(
        challenge, bob.username, "pw", method="INVITE", uri=f"sip:{alice.username}@example.test"
    )
    route, _ = await _route(router, _invite(alice.username, bob.username, header), PHONE, clock)
    assert route is not None
    assert (route.kind, route.endpoint, route.called) == (
        RouteKind.ENDPOINT,
        alice.username,
        f"sip:{alice.username}@example.test",
    )
    # ...but not a number.
    header = digest_response(
        challenge, bob.username, "pw", method="INVITE", uri="sip:18001231234@example.test", nc=2
    )
    route, _ = await _route(router, _invite("18001231234", bob.username, header), PHONE, clock)
    assert route is not None
    assert (route.kind, route.status, route.reason) == (
        RouteKind.REJECT,
        403,
        "Forbidden (no application for this endpoint)",
    )


@ensure
async def test_app_uri_and_spoofed_from(directory: Directory, router: Router, clock: Clock) -> None:
    app = await directory.create_application(_app("target"))
    alice = await directory.create_endpoint("alice", "pw", "Alice")
    route, _ = await _route(router, _invite(f"app-{app.app_id}"), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.application) == (RouteKind.APPLICATION, app)
    route, _ = await _route(router, _invite("app-404"), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.status) == (RouteKind.REJECT, 404)
    _, replies = await _route(router, _invite("1800", "mallory"), PHONE, clock)
    challenge = replies[0].headers.get_all("Proxy-Authenticate")[0]
    header = digest_response(
        challenge, alice.username, "pw", method="INVITE", uri="sip:1800@example.test"
    )
    route, _ = await _route(router, _invite("1800", "mallory", header), PHONE, clock)
    assert route is not None
    assert (route.kind, route.status) == (RouteKind.REJECT, 403), (
        "From must be the authenticated endpoint"
    )


@ensure
async def test_called_user_lookups_go_through_the_credentials_cache(
    directory: Directory, router: Router, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls from a gateway to a name that is neither a number nor (yet) an endpoint:
    the miss is cached (one database read for three calls); endpoints are still found."""
    reads: list[str] = []
    real = Directory.find_endpoint

    def counting(self: Directory, username: str) -> Any:
        reads.append(username)
        return real(self, username)

    monkeypatch.setattr(Directory, "find_endpoint", counting)
    for _ in range(3):
        route, _ = await _route(router, _invite("bob"), GATEWAY, clock)
        assert route is not None
        assert route.status == 404
    assert reads == ["bob"]
    bob = await directory.create_endpoint("bob", "pw", "Bob")
    route, _ = await _route(router, _invite(bob.username), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.endpoint) == (RouteKind.ENDPOINT, bob.username)


@ensure
async def test_a_registered_trunk_names_the_did_in_to(
    directory: Directory, router: Router, clock: Clock
) -> None:
    """A provider we register with sends the call to our registered contact
    (``sip:ACCOUNT@us``) and names the dialed DID in To."""
    app = await directory.create_application(_app("did"))
    await directory.add_numbers(["14155550100"], "trunk", "US", app_id=app.app_id)
    data = _invite("acme").replace(b"To: <sip:alice@example.test>", b"To: <sip:+14155550100@x>")
    route, _ = await _route(router, data, GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.application, route.called) == (
        RouteKind.APPLICATION,
        app,
        "14155550100",
    )
    # The To fallback is for gateways only: a phone still authenticates first.
    route, replies = await _route(router, data, PHONE, clock)
    assert route is None
    assert [r.status for r in replies] == [407]


@ensure
async def test_a_gateway_given_by_name_is_trusted_where_it_was_located(
    directory: Directory, clock: Clock
) -> None:
    app = await directory.create_application(_app("named"))
    await directory.add_numbers(["18001230000"], "trunk", "US", app_id=app.app_id)
    [named] = parse_gateways("sip:sip.carrier.test")
    trusted = TrustedGateways([named])
    router = _router(directory, clock)
    router.gateways = trusted
    route, replies = await _route(router, _invite("18001230000"), GATEWAY, clock)
    assert route is None, "not located yet: an unknown source must authenticate"
    assert [r.status for r in replies] == [407]
    trusted.located(named, [Peer("udp", "127.0.0.2", 5060), Peer("udp", "127.0.0.3", 5060)])
    route, _ = await _route(router, _invite("18001230000"), GATEWAY, clock)
    assert route is not None
    assert (route.kind, route.application) == (RouteKind.APPLICATION, app)
