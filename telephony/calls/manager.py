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

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from media import MediaEngine, PortsExhaustedError
from telephony.calls.call import Call
from telephony.calls.causes import Cause
from telephony.calls.cdr import CdrStore
from telephony.calls.dial import PlaceLeg
from telephony.calls.leg import Leg, LegEnd, LegState, SipContext
from telephony.calls.originate import Originator
from telephony.calls.routing import (
    APP_PREFIX,
    Gateway,
    Route,
    RouteKind,
    Router,
    normalize_number,
)
from telephony.location import LocationService
from telephony.randompool import uuid4
from telephony.sip.errors import SipError
from telephony.sip.headers import Headers
from telephony.sip.message import Request
from telephony.sip.transaction import server_key
from telephony.sip.transport import Peer, ServerTransactionHandle
from telephony.sip.uri import NameAddr, SipURI, parse_name_addr, parse_uri
from xml_dsl import DialSpec, IFetcher
from xml_dsl.verbs import Number, User

__all__ = ("CallManager",)

log = Logger()


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
        recordings_dir: Path,
        site_url: Callable[[], str | None],
        own_address: Peer,
        ring_timeout: int = 60,
    ) -> None:
        self.ctx = ctx
        self.media = media
        self.clock = clock
        self.router = router
        self.location = location
        self.fetcher = fetcher
        self.cdrs = cdrs
        self.gateways = tuple(gateways)
        self.recordings_dir = recordings_dir
        self.site_url = site_url
        self.ring_timeout = ring_timeout
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}
        self._pending: dict[tuple[str, ...], Leg] = {}
        self.counters = {"inbound": 0, "outbound": 0, "rejected": 0}
        #: Our own SIP address: INVITEs to an application's URI are sent there.
        self.own_address = own_address
        #: Marks INVITEs we send to ourselves (see telephony.calls.originate).
        self.internal_token = secrets.token_hex(16)
        router.trust_internal(own_address, self.internal_token)
        self.originator = Originator(self)

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
        txn.respond(100)  # the application's answer may take longer than 200 ms (§17.2.1)
        route = await self.router.route(invite, txn)
        if route is None:
            return  # challenged
        if route.kind is RouteKind.REJECT:
            self.counters["rejected"] += 1
            txn.respond(route.status, route.reason)
            return
        call_uuid = uuid4()
        try:
            leg = Leg.incoming(
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
            manager=self,
            leg=leg,
            direction="inbound",
            caller=route.caller,
            called=route.called,
            caller_name=route.caller_name,
            application=route.application,
        )
        self.calls[call.uuid] = call
        return call

    def _track(self, leg: Leg, invite_key: tuple[str, ...] | None = None) -> None:
        self.legs[leg.local_tag] = leg
        if invite_key is not None:
            self._pending[invite_key] = leg

            def settled(_: Leg, state: LegState) -> None:
                if state in (LegState.ANSWERED, LegState.ENDED):
                    self._pending.pop(invite_key, None)

            leg.listeners.append(settled)

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
            where = self.resolve(target)
            if isinstance(where, Cause):
                return where
            request_uri, peer, called = where
            caller_id = call.caller_id_for(spec)
            extra = Headers()
            for name, value in (*spec.sip_headers, *getattr(target, "sip_headers", ())):
                extra.add(f"X-PH-{name}", value)
            try:
                leg = self.place_leg(
                    request_uri=request_uri,
                    peer=peer,
                    caller_id=caller_id,
                    caller_name=spec.caller_name,
                    to=NameAddr(request_uri if isinstance(target, Number) else parse_uri(called)),
                    extra=extra,
                )
            except PortsExhaustedError:
                return Cause.FAILED
            b_call = Call(
                manager=self,
                leg=leg,
                direction="outbound",
                caller=caller_id,
                called=called,
                caller_name=spec.caller_name or "",
                parent=call,
            )
            self.calls[b_call.uuid] = b_call
            leg.start()
            return leg

        return place

    def place_leg(
        self,
        *,
        request_uri: SipURI,
        peer: Peer,
        caller_id: str,
        caller_name: str | None,
        to: NameAddr,
        extra: Headers | None = None,
    ) -> Leg:
        """A new outgoing leg (not yet started), tracked by its dialog tag."""
        self.counters["outbound"] += 1
        from_uri = SipURI("sip", caller_id or "anonymous", self.ctx.domain)
        leg = Leg.outgoing(
            uuid=uuid4(),
            ctx=self.ctx,
            media=self.media,
            clock=self.clock,
            peer=peer,
            request_uri=request_uri,
            from_=NameAddr(from_uri, caller_name or None),
            to=to,
            extra_headers=extra,
        )
        self._track(leg)
        return leg

    def resolve(self, target: Number | User) -> tuple[SipURI, Peer, str] | Cause:
        """Where a Dial target is: Request-URI, next hop, and Plivo's ``To`` for it."""
        if isinstance(target, Number):
            digits = normalize_number(target.number)
            if not self.gateways:
                log.warn("Dial to {number}: no --gateway configured", number=digits)
                return Cause.FAILED
            gateway = self.gateways[0]
            uri = SipURI(
                "sip",
                digits,
                gateway.host if ":" not in gateway.host else f"[{gateway.host}]",
                gateway.port,
            )
            return uri, gateway.peer, digits
        try:
            parsed = parse_uri(target.uri.strip())
        except SipError:
            return Cause.NOT_FOUND
        if not isinstance(parsed, SipURI) or not parsed.user:
            return Cause.NOT_FOUND
        uri = parsed
        if self.is_own_application(uri):
            return uri, self.own_address, str(uri)
        if uri.host_unbracketed in (self.ctx.domain.strip("[]").lower(),):
            binding = self.location.latest(uri.user_unescaped or "")
            if binding is None:
                return Cause.NO_ANSWER  # not registered: nobody to ring
            contact = parse_name_addr(binding.contact).uri
            if not isinstance(contact, SipURI):
                return Cause.NOT_FOUND
            peer = Peer(binding.transport, binding.source_host, binding.source_port)
            return contact, peer, str(uri)
        port = uri.port or 5060
        if not self._can_send_to(uri.host_unbracketed):
            log.warn(
                "Call to {uri}: {host} is not an IP address of our SIP socket's family "
                "(host names are not resolved)",
                uri=str(uri),
                host=uri.host_unbracketed,
            )
            return Cause.FAILED
        return (
            uri,
            Peer(
                uri.transport if uri.transport in ("udp", "tcp") else "udp",
                uri.host_unbracketed,
                port,
            ),
            str(uri),
        )

    def _can_send_to(self, host: str) -> bool:
        """Whether our SIP socket can send to *host*: an IP literal of its family."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        try:
            own = ipaddress.ip_address(self.own_address.host)
        except ValueError:
            return True  # we listen on a name: let the socket decide
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
