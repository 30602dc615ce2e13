"""The switchboard on a real SIP stack with a recording transport, a fake router,
location service, fetcher and media: new INVITEs to routes (and refusals), CANCEL
and in-dialog requests to their legs, where Dial targets resolve, and the books
kept on live calls."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock

from telephony.calls.causes import Cause
from telephony.calls.leg import LegState, SipContext
from telephony.calls.manager import CallManager, Destination
from telephony.calls.routing import Route, RouteKind
from telephony.directory import Application
from telephony.directory.models import ApplicationFields
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle
from telephony.sip.uri import SipURI, parse_uri
from telephony.trunks.hops import SipCredentials
from telephony.trunks.plan import UriPlan
from tests.calls.fakes import FakeCdrs, FakeFetcher, FakeMediaEngine, sdp_offer
from tests.sip.helpers import make_stack, request_bytes
from xml_dsl.verbs import Number, User

PHONE = Peer("udp", "10.0.0.1", 5060)
OURS = Peer("udp", "127.0.0.1", 5060)
ANSWER_URL = "http://app.test/answer"
SDP_HEADERS = "Contact: <sip:alice@10.0.0.1:5060>\r\nContent-Type: application/sdp\r\n"


@attrs.define
class FakeRouter:
    """Routes every INVITE the same way (or fails, if ``route_to`` is an exception)."""

    route_to: Route | Exception
    trusted: list[tuple[Peer, str]] = attrs.Factory(list)

    def trust_internal(self, own_address: Peer, token: str) -> None:
        self.trusted.append((own_address, token))

    def challenges_at_once(self, invite: Request, peer: Peer) -> bool:
        return False

    async def route(self, invite: Request, txn: ServerTransactionHandle) -> Route | None:
        if isinstance(self.route_to, Exception):
            raise self.route_to
        return self.route_to


@attrs.frozen
class FakeBinding:
    contact: str
    transport: str = "udp"
    source_host: str = "10.0.0.7"
    source_port: int = 5070


@attrs.define
class FakeLocation:
    bindings: dict[str, FakeBinding] = attrs.Factory(dict)

    def latest(self, username: str) -> FakeBinding | None:
        return self.bindings.get(username)


APP = Application("app-1", ApplicationFields(app_name="a", answer_url=ANSWER_URL), None, "")
TO_APP = Route(RouteKind.APPLICATION, caller="alice", called="1800", application=APP)


class Switchboard:
    """A CallManager behind a SIP stack; what it sent is in ``transport.sent``."""

    def __init__(self, clock: Clock, tmp_path: Path, route: Route | Exception = TO_APP) -> None:
        self.clock = clock
        self.stack, self.transport, handler = make_stack(clock, self._handle)
        handler.on_ack = lambda request: self.manager.handle_ack(request, PHONE)
        self.router = FakeRouter(route)
        self.location = FakeLocation()
        self.fetcher = FakeFetcher()
        self.cdrs = FakeCdrs()
        self.engine = FakeMediaEngine()
        ctx = SipContext(
            self.stack, "127.0.0.1:5060", "sip:telephony@127.0.0.1:5060", "example.test"
        )
        self.manager = CallManager(
            ctx=ctx,
            media=self.engine,  # type: ignore[arg-type]
            clock=clock,
            router=self.router,  # type: ignore[arg-type]
            location=self.location,  # type: ignore[arg-type]
            fetcher=self.fetcher,
            cdrs=self.cdrs,  # type: ignore[arg-type]
            gateways=(),
            locator=object(),  # type: ignore[arg-type]
            recordings_dir=tmp_path,
            site_url=lambda: "http://127.0.0.1:8080",
            own_address=OURS,
            ring_timeout=30,
        )

    def _handle(self, request: Request, txn: ServerTransactionHandle) -> None:
        self.manager.handle(request, txn)

    def receive(self, data: bytes, peer: Peer = PHONE) -> None:
        self.stack.datagram_received(data, peer)

    def invite(self, extra: str = SDP_HEADERS, body: bytes | None = None) -> None:
        self.receive(
            request_bytes(
                "INVITE",
                "z9hG4bKinv1",
                uri="sip:1800@example.test",
                body=sdp_offer() if body is None else body,
                extra=extra,
            )
        )

    def responses(self) -> list[tuple[int, Response]]:
        found = []
        for _, data, _ in self.transport.sent:
            message = parse_datagram(data)
            if isinstance(message, Response):
                found.append((message.status, message))
        return found

    def statuses(self) -> list[int]:
        return [status for status, _ in self.responses()]

    def requests_to(self, peer: Peer) -> list[Request]:
        return [
            m
            for _, data, to in self.transport.sent
            if isinstance(m := parse_datagram(data), Request) and to == peer
        ]

    def finish(self) -> None:
        for call in list(self.manager.calls.values()):
            call.leg.hangup()
        self.clock.advance(64.0)
        self.clock.advance(64.0)
        self.stack.stop()


def test_our_own_invites_are_trusted_by_a_token(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    token = sb.manager.internal_token
    assert sb.router.trusted == [(OURS, token)]
    assert len(token) == 32
    assert int(token, 16) >= 0
    sb.finish()


def test_an_invite_to_an_application_is_tried_and_its_document_fetched(
    clock: Clock, tmp_path: Path
) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite()
    assert sb.statuses() == [100]
    [call] = sb.manager.calls.values()
    assert (call.direction, call.caller, call.called, call.application) == (
        "inbound",
        "alice",
        "1800",
        APP,
    )
    assert sb.manager.legs == {call.leg.local_tag: call.leg}
    assert sb.manager.counters == {"inbound": 1, "outbound": 0, "rejected": 0}
    [(url, _, params)] = sb.fetcher.fetched
    assert (url, params["CallUUID"], params["CallStatus"]) == (ANSWER_URL, call.uuid, "ringing")
    sb.finish()
    assert sb.manager.calls == {}
    assert sb.manager.legs == {}


def test_a_refused_route_is_answered_with_its_status(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path, Route(RouteKind.REJECT, status=403, reason="Not Yours"))
    sb.invite()
    [(_, trying), (status, refusal)] = sb.responses()
    assert (trying.status, status, refusal.reason) == (100, 403, "Not Yours")
    assert sb.manager.calls == {}
    assert sb.manager.counters["rejected"] == 1
    sb.finish()


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("Content-Type: text/plain\r\n", 415),
        ("Content-Type: application/sdp\r\nAccept: text/html\r\n", 406),
    ],
)
def test_an_invite_we_cannot_answer_in_sdp_is_refused(
    clock: Clock, tmp_path: Path, extra: str, status: int
) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite("Contact: <sip:alice@10.0.0.1:5060>\r\n" + extra)
    [(_, _), (got, refusal)] = sb.responses()
    assert got == status
    assert refusal.headers.get("Accept") == "application/sdp"
    assert sb.manager.calls == {}
    assert sb.manager.counters["rejected"] == 1
    sb.finish()


def test_bad_sdp_is_refused_by_the_leg(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite(body=b"v=0\r\nnonsense\r\n")
    assert sb.statuses()[-1] in (400, 488)
    assert sb.manager.calls == {}
    assert sb.manager.legs == {}, "no leg kept for a refused INVITE"
    sb.finish()


def test_a_crashing_router_gets_a_500(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path, RuntimeError("the store is gone"))
    sb.invite()
    assert sb.statuses() == [100, 500]
    assert sb.manager.calls == {}
    sb.finish()


def test_cancel_reaches_the_pending_invite_and_ends_the_call(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite()
    [call] = sb.manager.calls.values()
    sb.receive(request_bytes("CANCEL", "z9hG4bKinv1", uri="sip:1800@example.test"))
    assert sb.statuses() == [100, 200, 487]
    assert call.leg.state is LegState.ENDED
    assert sb.manager.calls == {}
    [record] = sb.cdrs.written
    assert (record.call_status, record.hangup_source) == ("cancel", "Caller")
    assert sb.fetcher.cancelled == [ANSWER_URL], "the document's fetch is cancelled"
    sb.finish()


def test_cancel_for_no_invite_is_481(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.receive(request_bytes("CANCEL", "z9hG4bKnone", uri="sip:1800@example.test"))
    assert sb.statuses() == [481]
    sb.finish()


def test_an_answered_call_is_no_longer_cancellable(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite()
    [call] = sb.manager.calls.values()
    call.leg.answer()
    sb.receive(request_bytes("CANCEL", "z9hG4bKinv1", uri="sip:1800@example.test"))
    assert sb.statuses()[-1] == 481, "the INVITE is settled: nothing to cancel"
    assert call.leg.state is LegState.ANSWERED
    sb.finish()


def test_in_dialog_requests_go_to_their_leg(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.receive(request_bytes("BYE", "z9hG4bKbye0", uri="sip:telephony@127.0.0.1", to_tag="nobody"))
    assert sb.statuses() == [481]
    sb.invite()
    [call] = sb.manager.calls.values()
    call.leg.answer()
    tag = call.leg.local_tag
    sb.receive(request_bytes("ACK", "z9hG4bKack", uri="sip:telephony@127.0.0.1", to_tag=tag))
    clock.advance(10.0)
    oks = [s for s in sb.statuses() if s == 200]
    assert len(oks) == 1, "the ACK reached the leg: no retransmission of the 200"
    sb.receive(
        request_bytes("BYE", "z9hG4bKbye1", uri="sip:telephony@127.0.0.1", cseq=2, to_tag=tag)
    )
    assert sb.statuses()[-1] == 200
    assert call.leg.state is LegState.ENDED
    assert sb.manager.calls == {}
    assert sb.manager.legs == {}
    [record] = sb.cdrs.written
    assert (record.call_status, record.hangup_source, record.bill_duration) == (
        "completed",
        "Caller",
        10,
    )
    sb.finish()


def test_an_endpoint_route_rings_its_latest_device(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path, Route(RouteKind.ENDPOINT, "alice", "bob", endpoint="bob"))
    sb.location.bindings["bob"] = FakeBinding("<sip:bob@192.168.1.5:5060>")
    sb.invite()
    device = Peer("udp", "10.0.0.7", 5070)
    [invite] = sb.requests_to(device)
    assert str(invite.uri) == "sip:bob@192.168.1.5:5060"
    assert str(invite.to.uri) == "sip:bob@example.test"
    assert sb.manager.counters == {"inbound": 1, "outbound": 1, "rejected": 0}
    assert len(sb.manager.calls) == 2, "the caller's call and the B leg's"
    assert sb.fetcher.fetched == [], "no application"
    clock.advance(30.0)  # the ring timeout: no provisional came, so the CANCEL waits
    assert sb.statuses()[-1] == 480, "the caller is told: no answer"
    sb.finish()


def test_an_unregistered_endpoint_fails_the_call(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path, Route(RouteKind.ENDPOINT, "alice", "bob", endpoint="bob"))
    sb.invite()
    assert sb.statuses()[-1] == 503, "Call Failed: nobody to ring"
    assert sb.manager.calls == {}
    sb.finish()


# -- where targets go --------------------------------------------------------------------


def test_a_number_without_gateways_fails(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    assert sb.manager.resolve(Number("1800")) is Cause.FAILED
    sb.finish()


@pytest.mark.parametrize("uri", ["not a uri", "sip:example.test", "tel:+18001231234"])
def test_a_uri_without_a_user_is_not_found(clock: Clock, tmp_path: Path, uri: str) -> None:
    sb = Switchboard(clock, tmp_path)
    assert sb.manager.resolve(User(uri=uri)) is Cause.NOT_FOUND
    sb.finish()


def test_our_application_uri_goes_to_ourselves(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    where = sb.manager.resolve(User(uri="sip:app-1234@EXAMPLE.test"))
    assert isinstance(where, Destination)
    assert (where.peer, where.plan) == (OURS, None)
    assert sb.manager.is_own_application(parse_uri("sip:app-1234@example.test"))  # type: ignore[arg-type]
    assert not sb.manager.is_own_application(SipURI("sip", "app-1234", "other.test"))
    assert not sb.manager.is_own_application(SipURI("sip", "bob", "example.test"))
    sb.finish()


def test_an_endpoint_resolves_to_its_latest_binding(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    assert sb.manager.resolve(User(uri="sip:bob@example.test")) is Cause.NO_ANSWER
    sb.location.bindings["bob"] = FakeBinding("<sip:bob@192.168.1.5:5062;transport=tcp>", "tcp")
    target = User(uri="sip:bob@example.test", sip_auth_username="u", sip_auth_password="p")
    where = sb.manager.resolve(target)
    assert isinstance(where, Destination)
    assert where.peer == Peer("tcp", "10.0.0.7", 5070)
    assert str(where.request_uri) == "sip:bob@192.168.1.5:5062;transport=tcp"
    assert (where.called, where.credentials) == ("sip:bob@example.test", SipCredentials("u", "p"))
    sb.finish()


def test_a_foreign_uri_goes_to_its_host(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    where = sb.manager.resolve(User(uri="sip:carol@127.0.0.2:5080;transport=tcp"))
    assert isinstance(where, Destination)
    assert where.peer == Peer("tcp", "127.0.0.2", 5080)
    assert isinstance(where.plan, UriPlan)
    assert sb.manager.resolve(User(uri="sip:carol@[::1]")) is Cause.FAILED, "not our family"
    sb.finish()


def test_live_calls_for_the_status_page(clock: Clock, tmp_path: Path) -> None:
    sb = Switchboard(clock, tmp_path)
    sb.invite()
    clock.advance(4.0)
    [live] = sb.manager.live()
    assert (live["state"], live["duration"], live["From"], live["Direction"]) == (
        "new",
        4,
        "alice",
        "inbound",
    )
    sb.finish()
