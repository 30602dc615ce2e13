"""The B2BUA's switchboard: new INVITEs to routes, in-dialog requests to their legs.

It is the SIP core's handler for INVITE, BYE, CANCEL, UPDATE, INFO and ACK; it keeps
the live calls and legs (by our dialog tag, which is unique), places B legs for
dials, and hands finished calls to their records.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from media import MediaEngine, PortsExhaustedError
from telephony.calls.call import Call
from telephony.calls.call_services import CallServices
from telephony.calls.causes import Cause
from telephony.calls.cdr import CdrStore
from telephony.calls.conference import Conferences
from telephony.calls.dial import PlaceLeg
from telephony.calls.journal import CallJournal
from telephony.calls.leg import Leg, LegEnd, LegState, SipContext
from telephony.calls.leg_uac import OutgoingLeg
from telephony.calls.leg_uas import IncomingLeg
from telephony.calls.originate import Originator
from telephony.calls.recordings import CallRecordings
from telephony.calls.routing import APP_PREFIX, Route, RouteKind, Router, normalize_number
from telephony.location import LocationService
from telephony.randompool import uuid4
from telephony.sip.errors import SipError
from telephony.sip.headers import Headers
from telephony.sip.message import Request
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle
from telephony.sip.transaction import server_key
from telephony.sip.uri import NameAddr, SipURI, parse_name_addr, parse_uri
from telephony.trunks.gateway import Gateway
from telephony.trunks.hops import HopPlan, SipCredentials
from telephony.trunks.plan import GatewayPlan, Locator, UriPlan
from xml_dsl import DialSpec, IFetcher
from xml_dsl.verbs import Number, User

__all__ = ("CallManager", "Destination")

log = Logger()


@attrs.frozen
class Destination:
    """Where an outgoing leg goes.

    :ivar request_uri, peer: the first (or only) hop, naming the call until it is sent.
    :ivar called: Plivo's ``To`` for the leg.
    :ivar to: the To header (None: the Request-URI).
    :ivar plan: the hops to try in turn; None: *peer* alone.
    """

    request_uri: SipURI
    peer: Peer
    called: str
    to: NameAddr | None = None
    credentials: SipCredentials | None = None
    plan: HopPlan | None = None


#: The only body we read and write in INVITEs and their answers.
SDP = "application/sdp"
_ACCEPTING_SDP = frozenset((SDP, "application/*", "*/*"))


def _unacceptable_content(invite: Request) -> tuple[int, str, Headers] | None:
    """415 for a body that is not SDP (RFC 3261 §8.2.3: with an Accept naming what we
    read), 406 when the caller's Accept excludes SDP, which our answer carries (§21.4.7;
    RFC 4475 §3.3.6 invut and §3.3.15 sdp01); None when the INVITE can be answered."""
    accept = Headers([("Accept", SDP)])
    if invite.body:
        content_type = invite.headers.get("Content-Type") or ""
        if content_type.split(";")[0].strip().lower() != SDP:
            return 415, "Unsupported Media Type", accept
    if "Accept" in invite.headers:
        types = {v.split(";")[0].strip().lower() for v in invite.headers.values("Accept")}
        if not types & _ACCEPTING_SDP:
            return 406, "Not Acceptable", accept
    return None


def _credentials(target: Number | User) -> SipCredentials | None:
    """The target's own digest credentials (``sipAuthUsername``/``sipAuthPassword``)."""
    if target.sip_auth_username is None or target.sip_auth_password is None:
        return None
    return SipCredentials(target.sip_auth_username, target.sip_auth_password)


class CallManager:
    """Live calls and their legs; the SIP core's handler for dialog methods."""

    def __init__(
        self,
        *,
        ctx: SipContext,
        media: MediaEngine,
        clock: IReactorTime,
        router: Router,
        location: LocationService,
        fetcher: IFetcher,
        cdrs: CdrStore,
        gateways: Sequence[Gateway],
        locator: Locator,
        recordings_dir: Path,
        site_url: Callable[[], str | None],
        own_address: Peer,
        ring_timeout: int = 60,
        journal: CallJournal | None = None,
    ) -> None:
        self.ctx = ctx
        self.media = media
        self.clock = clock
        self.router = router
        self.location = location
        self.fetcher = fetcher
        self.cdrs = cdrs
        self.gateways = tuple(gateways)
        self.locator = locator
        self.recordings_dir = recordings_dir
        self.site_url = site_url
        #: Names and files recordings; the calls service gives it the store.
        self.recordings = CallRecordings(
            directory=recordings_dir,
            url_for=lambda name: f"{self.site_url() or ''}/recordings/{name}",
            store=None,
            run_blocking=media.run_blocking,
            clock=clock,
        )
        self.ring_timeout = ring_timeout
        #: Where calls are journaled while they are up (None: not journaled).
        self.journal = journal
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}
        self._pending: dict[tuple[str, ...], Leg] = {}
        self.counters = {"inbound": 0, "outbound": 0, "rejected": 0}
        #: Our own SIP address: INVITEs to an application's URI are sent there.
        self.own_address = own_address
        #: Marks INVITEs we send to ourselves (see telephony.calls.originate).
        self.internal_token = secrets.token_hex(16)
        router.trust_internal(own_address, self.internal_token)
        #: The live conference rooms (``<Conference>``, REST ``/Conference/``).
        self.conferences = Conferences(media=media, clock=clock, recordings=self.recordings)
        #: What every call works with.
        self.services = CallServices(
            clock=clock,
            fetcher=fetcher,
            cdrs=cdrs,
            switchboard=self,
            recordings=self.recordings,
            conferences=self.conferences,
            domain=ctx.domain,
            ring_timeout=ring_timeout,
            journal=journal,
        )
        self.originator = Originator(
            placer=self, services=self.services, internal_token=self.internal_token
        )

    # -- SIP core hooks ----------------------------------------------------------------

    def handle(self, request: Request, txn: ServerTransactionHandle) -> None:
        """INVITE, BYE, CANCEL, UPDATE, INFO from the SIP core."""
        if request.method == "CANCEL":
            self._cancel(request, txn)
            return
        tag = request.to.tag
        if request.method == "INVITE" and not tag:
            d = Deferred.fromCoroutine(self._new_invite(request, txn))
            d.addErrback(self._invite_crashed, request, txn)
            return
        leg = self.legs.get(tag or "")
        if leg is None:
            txn.respond(481)
            return
        leg.handle_request(request, txn)

    def handle_ack(self, request: Request, peer: Peer) -> None:
        """An ACK for a 2xx (no transaction): the leg it confirms."""
        leg = self.legs.get(request.to.tag or "")
        if leg is not None:
            leg.handle_ack(request)

    def _cancel(self, cancel: Request, txn: ServerTransactionHandle) -> None:
        key = (*server_key(cancel)[:-1], "INVITE")
        leg = self._pending.get(key)
        if leg is None:
            txn.respond(481)
            return
        leg.cancelled(txn)

    def _invite_crashed(self, failure: Any, invite: Request, txn: ServerTransactionHandle) -> None:
        log.failure("INVITE {call_id} failed", failure, call_id=invite.call_id)
        with contextlib.suppress(SipError):
            txn.respond(500)

    # -- new calls -----------------------------------------------------------------------

    async def _new_invite(self, invite: Request, txn: ServerTransactionHandle) -> None:
        # The application's answer may take longer than 200 ms: 100 Trying (§17.2.1).
        # Not before a stateless challenge: a phone that got a 100 stops resending its
        # INVITE (§17.1.1.2), and a lost 407, which nothing resends, hung the call until
        # the phone's Timer B (found through a lossy network, issue 16).
        if not self.router.challenges_at_once(invite, txn.peer):
            txn.respond(100)
        route = await self.router.route(invite, txn)
        if route is None:
            return  # challenged
        if route.kind is RouteKind.REJECT:
            self.counters["rejected"] += 1
            txn.respond(route.status, route.reason)
            return
        refusal = _unacceptable_content(invite)
        if refusal is not None:
            self.counters["rejected"] += 1
            txn.respond(*refusal)
            return
        call_uuid = uuid4()
        try:
            leg = IncomingLeg(
                invite, txn, uuid=call_uuid, ctx=self.ctx, media=self.media, clock=self.clock
            )
        except SipError as exc:
            txn.respond(exc.status_hint, exc.reason)
            return
        self._track(leg, server_key(invite))
        call = self._new_call(leg, route)
        log.info(
            "call {call_uuid}: {caller} -> {called} ({kind}, Call-ID {call_id})",
            call_uuid=call_uuid,
            caller=route.caller,
            called=route.called,
            kind=route.kind.value,
            call_id=invite.call_id,
        )
        try:
            if route.kind is RouteKind.ENDPOINT and route.endpoint is not None:
                call.ring_endpoint(route.endpoint)
            else:
                call.run_application()
        except PortsExhaustedError:
            leg.reject(503, "Service Unavailable (no media ports)")

    def _new_call(self, leg: Leg, route: Route) -> Call:
        self.counters["inbound"] += 1
        call = Call(
            services=self.services,
            leg=leg,
            direction="inbound",
            caller=route.caller,
            called=route.called,
            caller_name=route.caller_name,
            application=route.application,
        )
        self.add_call(call)
        return call

    def _track(self, leg: Leg, invite_key: tuple[str, ...] | None = None) -> None:
        self.legs[leg.local_tag] = leg
        if invite_key is not None:
            self._pending[invite_key] = leg

            def settled(_: Leg, state: LegState) -> None:
                if state in (LegState.ANSWERED, LegState.ENDED):
                    self._pending.pop(invite_key, None)

            leg.listeners.append(settled)

    def add_call(self, call: Call) -> None:
        """Keep *call* among the live calls (by its CallUUID) until it ends."""
        self.calls[call.uuid] = call

    def call_ended(self, call: Call, end: LegEnd) -> None:
        """A call's leg ended: forget it."""
        self.calls.pop(call.uuid, None)
        self.legs.pop(call.leg.local_tag, None)
        media = call.leg.media
        log.info(
            "call {call_uuid} ended: {cause} ({source}); media {media}",
            call_uuid=call.uuid,
            cause=end.cause.cause_name,
            source=end.source,
            media=media.summary() if media is not None else "none",
        )

    # -- B legs -----------------------------------------------------------------------

    def placer(self, call: Call) -> PlaceLeg:
        """Places the B legs of *call*'s dials."""

        def place(target: Number | User, position: int, spec: DialSpec) -> Leg | Cause:
            caller_id = call.caller_id_for(spec)
            where = self.resolve(target, caller_id, spec.caller_name)
            if isinstance(where, Cause):
                return where
            extra = Headers()
            for name, value in (*spec.sip_headers, *target.sip_headers):
                extra.add(f"X-PH-{name}", value)
            try:
                leg = self.place_leg(where, caller_id, spec.caller_name, extra)
            except PortsExhaustedError:
                return Cause.FAILED
            b_call = Call(
                services=self.services,
                leg=leg,
                direction="outbound",
                caller=caller_id,
                called=where.called,
                caller_name=spec.caller_name or "",
                parent=call,
            )
            self.add_call(b_call)
            leg.start()
            return leg

        return place

    def place_leg(
        self,
        where: Destination,
        caller_id: str,
        caller_name: str | None,
        extra: Headers | None = None,
    ) -> Leg:
        """A new outgoing leg to *where* (not yet started), tracked by its dialog tag."""
        self.counters["outbound"] += 1
        from_uri = SipURI("sip", caller_id or "anonymous", self.ctx.domain)
        leg = OutgoingLeg(
            uuid=uuid4(),
            ctx=self.ctx,
            media=self.media,
            clock=self.clock,
            peer=where.peer,
            request_uri=where.request_uri,
            from_=NameAddr(from_uri, caller_name or None),
            to=where.to or NameAddr(where.request_uri),
            extra_headers=extra,
            credentials=where.credentials,
            plan=where.plan,
        )
        self._track(leg)
        return leg

    def resolve(
        self, target: Number | User, caller_id: str = "", caller_name: str | None = None
    ) -> Destination | Cause:
        """Where a Dial (or API) target goes: a number through the gateways, an
        endpoint at its latest registered device, any other SIP URI at its host."""
        credentials = _credentials(target)
        if isinstance(target, Number):
            digits = normalize_number(target.number)
            if not self.gateways:
                log.warn("Dial to {number}: no --gateway configured", number=digits)
                return Cause.FAILED
            plan = GatewayPlan(
                gateways=self.gateways,
                locator=self.locator,
                digits=digits,
                caller_id=caller_id,
                caller_name=caller_name,
                our_domain=self.ctx.domain,
                credentials=credentials,
            )
            first = self.gateways[0]
            peer = Peer(first.transport, first.host, first.port or 5060)
            return Destination(plan.first_request_uri(), peer, digits, plan=plan)
        try:
            parsed = parse_uri(target.uri.strip())
        except SipError:
            return Cause.NOT_FOUND
        if not isinstance(parsed, SipURI) or not parsed.user:
            return Cause.NOT_FOUND
        uri = parsed
        if self.is_own_application(uri):
            return Destination(uri, self.own_address, str(uri), to=NameAddr(uri))
        if uri.host_unbracketed in (self.ctx.domain.strip("[]").lower(),):
            binding = self.location.latest(uri.user_unescaped or "")
            if binding is None:
                return Cause.NO_ANSWER  # not registered: nobody to ring
            contact = parse_name_addr(binding.contact).uri
            if not isinstance(contact, SipURI):
                return Cause.NOT_FOUND
            peer = Peer(binding.transport, binding.source_host, binding.source_port)
            return Destination(contact, peer, str(uri), to=NameAddr(uri), credentials=credentials)
        if not self._reachable(uri.host_unbracketed):
            log.warn(
                "Call to {uri}: {host} is an IP address our SIP socket's family cannot reach",
                uri=str(uri),
                host=uri.host_unbracketed,
            )
            return Cause.FAILED
        transport = uri.transport if uri.transport in ("udp", "tcp") else "udp"
        peer = Peer(transport, uri.host_unbracketed, uri.port or 5060)
        from_uri = SipURI("sip", caller_id or "anonymous", self.ctx.domain)
        uri_plan = UriPlan(
            uri=uri,
            locator=self.locator,
            from_=NameAddr(from_uri, caller_name or None),
            to=NameAddr(uri),
            credentials=credentials,
        )
        return Destination(uri, peer, str(uri), to=NameAddr(uri), plan=uri_plan)

    def _reachable(self, host: str) -> bool:
        """False for an IP literal of the other family than our SIP socket's (a host
        name is located later, in our family)."""
        try:
            address = ipaddress.ip_address(host)
            own = ipaddress.ip_address(self.own_address.host)
        except ValueError:
            return True
        return address.version == own.version

    def is_own_application(self, uri: SipURI) -> bool:
        """Whether *uri* is one of our applications' SIP URIs (``app-ID@our domain``)."""
        user = uri.user_unescaped or ""
        return user.startswith(APP_PREFIX) and uri.host_unbracketed == self.ctx.domain.lower()

    def recording_url(self, path: Path) -> str:
        """The URL our HTTP site serves a recording at."""
        base = self.site_url() or ""
        return f"{base}/recordings/{path.name}"

    # -- inspection -------------------------------------------------------------------------

    def live(self) -> list[dict[str, Any]]:
        """The live calls, for the status page and the manhole."""
        return [
            {**call.params(), "state": call.leg.state.value, "duration": call.leg.duration()}
            for call in self.calls.values()
        ]
