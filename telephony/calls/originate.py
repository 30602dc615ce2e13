"""Outbound calls started over REST (``POST …/Call/``), as Plivo makes them.

Each destination becomes one outgoing leg and one :class:`~telephony.calls.call.Call`
with a request UUID.  While it rings, ``ring_url`` is told (once); ``ring_timeout``
gives up on it and ``hangup_on_ring`` hangs it up that many seconds after it started
ringing.  When the callee answers, ``send_digits`` go out (or on early media with
``send_on_preanswer``), ``time_limit`` starts, and the ``answer_url`` document runs on
the leg, exactly as an application runs on an inbound call.

A destination may be a number (through the gateway), an endpoint's SIP URI (its
latest device), any other SIP URI, or **an application's own SIP URI**: that INVITE
is sent to ourselves, marked with a per-process token so that our router trusts it,
and the application answers it like any inbound call — two documents, one on each
side, connected by audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from telephony.calls.call import Call
from telephony.calls.call_services import CallServices
from telephony.calls.causes import Cause
from telephony.calls.leg import Leg, LegState
from telephony.directory import Application
from telephony.directory.models import ApplicationFields
from telephony.randompool import uuid4
from telephony.sip.headers import Headers
from telephony.sip.uri import SipURI
from xml_dsl import Method
from xml_dsl.verbs import Number, User

if TYPE_CHECKING:
    from telephony.calls.manager import Destination

__all__ = ("INTERNAL_HEADER", "LegPlacer", "OriginateRequest", "Originator")

log = Logger()

#: Marks an INVITE we send to our own application URI; its value is a per-process token.
INTERNAL_HEADER = "X-Telephony-Internal"


@attrs.frozen
class OriginateRequest:
    """One validated ``POST …/Call/`` (for one destination).

    :ivar ring_timeout: seconds to ring before giving up.
    :ivar time_limit: seconds the answered call may last (0: no limit).
    :ivar hangup_on_ring: seconds after ringing starts to hang up (0: never).
    """

    from_: str
    to: str
    application: ApplicationFields
    ring_url: str | None = None
    ring_method: str = "POST"
    caller_name: str | None = None
    send_digits: str | None = None
    send_on_preanswer: bool = False
    time_limit: int = 0
    hangup_on_ring: int = 0
    sip_headers: tuple[tuple[str, str], ...] = ()
    ring_timeout: int = 120


class LegPlacer(Protocol):
    """What the originator needs from the switchboard (the manager): where a
    destination is, a leg to it, and a place among the live calls."""

    def resolve(
        self, target: Number | User, caller_id: str = "", caller_name: str | None = None
    ) -> Destination | Cause:
        """Where *target* goes, or why it cannot be called."""

    def is_own_application(self, uri: SipURI) -> bool:
        """Whether *uri* is one of our applications' SIP URIs."""

    def place_leg(
        self,
        where: Destination,
        caller_id: str,
        caller_name: str | None,
        extra: Headers | None = None,
    ) -> Leg:
        """A new outgoing leg to *where*, not yet started."""

    def add_call(self, call: Call) -> None:
        """Keep *call* among the live calls until it ends."""


class Originator:
    """Places REST-originated calls and remembers them by request UUID while they ring.

    :param placer: resolves destinations, places legs and keeps the calls.
    :param services: what each call works with (its clock times the ringing).
    :param internal_token: marks the INVITEs we send to our own applications.
    :param new_uuid: makes request UUIDs.
    """

    def __init__(
        self,
        *,
        placer: LegPlacer,
        services: CallServices,
        internal_token: str,
        new_uuid: Callable[[], str] = uuid4,
    ) -> None:
        self.placer = placer
        self.services = services
        self.internal_token = internal_token
        self.new_uuid = new_uuid
        self.requests: dict[str, Call] = {}

    def originate(self, request: OriginateRequest) -> str | Cause:
        """Place the call; its request UUID, or why it could not be placed."""
        placer = self.placer
        target: Number | User = (
            User(uri=request.to) if request.to.startswith(("sip:", "sips:")) else Number(request.to)
        )
        where = placer.resolve(target, request.from_, request.caller_name)
        if isinstance(where, Cause):
            return where
        called = where.called
        extra = Headers()
        for name, value in request.sip_headers:
            extra.add(f"X-PH-{name}", value)
        if placer.is_own_application(where.request_uri):
            extra.add(INTERNAL_HEADER, self.internal_token)
        leg = placer.place_leg(where, request.from_, request.caller_name, extra)
        request_uuid = self.new_uuid()
        app = Application("", request.application, None, "")
        call = Call(
            services=self.services,
            leg=leg,
            direction="outbound",
            caller=request.from_,
            called=called,
            caller_name=request.caller_name or "",
            application=app,
            request_uuid=request_uuid,
        )
        placer.add_call(call)
        self.requests[request_uuid] = call
        _Watch(self, call, request).start()
        leg.start()
        log.info(
            "call {call_uuid}: outbound {caller} -> {called} (request {request_uuid})",
            call_uuid=call.uuid,
            caller=request.from_,
            called=called,
            request_uuid=request_uuid,
        )
        return request_uuid

    def cancel(self, request_uuid: str) -> bool:
        """Stop a call that still rings; False if there is none (answered, over, unknown)."""
        call = self.requests.get(request_uuid)
        if call is None or call.leg.answered or call.leg.state is LegState.ENDED:
            return False
        call.leg.hangup(Cause.ORIGINATOR_CANCEL, "API")
        return True


@attrs.define
class _Watch:
    """Follows one outbound leg: ring_url, timers, send_digits, then the document."""

    originator: Originator
    call: Call
    request: OriginateRequest
    _timers: list[IDelayedCall] = attrs.Factory(list)
    _rang: bool = False
    _digits_sent: bool = False

    def start(self) -> None:
        clock = self.originator.services.clock
        self.call.leg.listeners.append(self._state)
        self._timers.append(clock.callLater(self.request.ring_timeout, self._ring_timeout))

    def _later(self, seconds: float, cause: Cause) -> None:
        timer = self.originator.services.clock.callLater(
            seconds, self.call.leg.hangup, cause, "Plivo"
        )
        self._timers.append(timer)

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def _ring_timeout(self) -> None:
        if not self.call.leg.answered:
            self.call.leg.hangup(Cause.NO_ANSWER, "Plivo")

    def _state(self, leg: Leg, state: LegState) -> None:
        request = self.request
        if state in (LegState.RINGING, LegState.EARLY) and not self._rang:
            self._rang = True
            if request.ring_url:
                params = {**self.call.params(), "CallStatus": "ringing"}
                self.originator.services.fetcher.notify(
                    request.ring_url, Method(request.ring_method), params
                )
            if request.hangup_on_ring > 0:
                self._later(request.hangup_on_ring, Cause.NORMAL)
        if state is LegState.EARLY and request.send_on_preanswer:
            self._send_digits(leg)
        if state is LegState.ANSWERED:
            self._cancel_timers()
            self.originator.requests.pop(self.call.request_uuid or "", None)
            if request.time_limit > 0:
                self._later(request.time_limit, Cause.TIME_LIMIT)
            if not request.send_on_preanswer:
                self._send_digits(leg)
            self.call.run_application()
        elif state is LegState.ENDED:
            self._cancel_timers()
            self.originator.requests.pop(self.call.request_uuid or "", None)

    def _send_digits(self, leg: Leg) -> None:
        if self._digits_sent or not self.request.send_digits or leg.media is None:
            return
        self._digits_sent = True
        leg.media.send_digits(self.request.send_digits).addErrback(
            lambda f: log.info("send_digits on {uuid}: {e}", uuid=leg.uuid, e=f.getErrorMessage())
        )


def split_destinations(to: str) -> Sequence[str]:
    """``a<b<c`` → three destinations (Plivo's bulk call syntax)."""
    return [part.strip() for part in to.split("<") if part.strip()]
