"""An outgoing leg's INVITE, from the first hop to an answer or a final failure.

:class:`OutgoingInvite` sends the INVITE to the hops of a plan in turn and keeps to
itself what a caller should not see:

* a **401/407** from a hop with credentials is answered (:mod:`telephony.sip.digest_client`)
  and the INVITE sent again to the same hop: same Call-ID and From tag, the next CSeq,
  a new branch (RFC 3261 §22.2).  Refused credentials end the leg with Plivo's
  ``sip_auth_failed``; an authenticated INVITE that gets no answer, ``sip_auth_timeout``;
* **failover**: a 408, any 5xx, or no response at all within the hop's
  ``response_timeout`` (the INVITE is then abandoned) moves on to the next hop, with
  the same Call-ID and tag and the next CSeq (RFC 3263 §4.3 for 503 and timeouts; we
  also fail over on the other 5xx and 408, as carriers' dispatchers do);
* everything else, provisional responses, 2xx and the other final failures (486 busy,
  404, 6xx…) goes to the leg, which answers, rings or ends as before.

When the plan runs out, the leg is told the last failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony.calls.causes import Cause, cause_for_status
from telephony.calls.hops import Hop, HopPlan, SipCredentials
from telephony.sip.digest_client import AuthRefused, DigestClient, RefusalReason
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.session_timer import offer_as_uac
from telephony.sip.transport import Peer, SipStack, new_branch

__all__ = (
    "AUTH_HEADERS",
    "InviteTemplate",
    "OutgoingInvite",
    "UacFailure",
    "build_invite",
    "send_authenticated",
)

log = Logger()

#: The credential headers a request carries; an ACK for a 2xx repeats its INVITE's
#: (RFC 3261 §13.2.2.4).
AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


@attrs.frozen
class InviteTemplate:
    """What stays the same in every INVITE of one outgoing leg.

    :ivar extra: headers of the application's (X-PH-…, our internal marker).
    """

    call_id: str
    from_tag: str
    via_host: str
    contact: str
    session_expires: int
    min_se: int
    body: bytes = b""
    extra: Headers = attrs.field(factory=Headers)


def build_invite(template: InviteTemplate, hop: Hop, cseq: int, auth: Headers) -> Request:
    """The INVITE for *hop*: a new branch, the template's dialog identifiers, *cseq*."""
    peer = hop.peer
    headers = Headers()
    headers.add(
        "Via", f"SIP/2.0/{peer.transport.upper()} {template.via_host};branch={new_branch()};rport"
    )
    headers.add("Max-Forwards", "70")
    headers.add("From", str(hop.from_.with_param("tag", template.from_tag)))
    headers.add("To", str(hop.to))
    headers.add("Call-ID", template.call_id)
    headers.add("CSeq", f"{cseq} INVITE")
    transport = ";transport=tcp" if peer.transport == "tcp" else ""
    headers.add("Contact", f"<{template.contact}{transport}>")
    headers.add("Allow", ALLOW)
    for name, value in offer_as_uac(interval=template.session_expires, min_se=template.min_se):
        headers.add(name, value)
    for name, value in template.extra:
        headers.add(name, value)
    for name, value in auth:
        headers.add(name, value)
    if template.body:
        headers.add("Content-Type", "application/sdp")
    return Request("INVITE", hop.request_uri, headers, template.body)


@attrs.frozen
class UacFailure:
    """How an outgoing INVITE failed for good: the SIP status the leg reports, the
    cause (None: the one the status implies) and a reason for logs."""

    status: int
    cause: Cause | None = None
    reason: str = ""

    @property
    def effective_cause(self) -> Cause:
        return self.cause or cause_for_status(self.status)


def _digest_client(credentials: SipCredentials | None) -> DigestClient:
    """A client answering challenges with *credentials* (refusing all without)."""
    if credentials is None:
        return DigestClient(None, None)
    return DigestClient(credentials.username, credentials.password, realm=credentials.realm)


def _failover(status: int) -> bool:
    """Whether a final response sends the INVITE on to the next hop."""
    return status == 408 or 500 <= status < 600


class OutgoingInvite:
    """Drives one leg's INVITE through its plan (see the module docstring).

    :param on_sent: told each INVITE sent and where (the leg's current request).
    :param on_response: responses the leg should see (provisional, 2xx, final failures
        that are not retried).
    :param on_failed: the INVITE failed for good (auth refused, every hop failed).
    """

    def __init__(
        self,
        *,
        stack: SipStack,
        clock: IReactorTime,
        plan: HopPlan,
        template: InviteTemplate,
        on_sent: Callable[[Request, Peer, Hop], None],
        on_response: Callable[[Response], None],
        on_failed: Callable[[UacFailure], None],
        uuid: str = "",
    ) -> None:
        self.stack = stack
        self.clock = clock
        self.plan = plan
        self.template = template
        self.on_sent = on_sent
        self.on_response = on_response
        self.on_failed = on_failed
        self.uuid = uuid
        self.cseq = 0
        self.hop: Hop | None = None
        self.request: Request | None = None
        self.hops_tried = 0
        self._attempt = 0
        self._client: DigestClient | None = None
        self._authenticated = False
        self._heard = False
        self._timer: IDelayedCall | None = None
        self._in_flight: Deferred[Response] | None = None
        self._finding: Deferred[Hop | None] | None = None
        self._last: UacFailure | None = None
        self._stopped = False

    # -- the leg's side -------------------------------------------------------------

    def start(self) -> None:
        """Find the first hop and send it the INVITE."""
        self._next_hop()

    def stop(self) -> None:
        """The leg is over: no more hops, no more resends.  Responses to the INVITE in
        flight still reach the leg (its CANCEL waits for a provisional)."""
        self._stopped = True
        self._cancel_timer()
        if self._finding is not None:
            finding, self._finding = self._finding, None
            finding.cancel()

    # -- hops ---------------------------------------------------------------------------

    def _next_hop(self) -> None:
        if self._stopped:
            return
        finding = self.plan.next_hop()
        self._finding = finding
        finding.addCallbacks(self._got_hop, self._plan_failed)

    def _got_hop(self, hop: Hop | None) -> None:
        self._finding = None
        if self._stopped:
            return
        if hop is None:
            self._give_up()
            return
        self.hop = hop
        self.hops_tried += 1
        self._client = _digest_client(hop.credentials)
        self._authenticated = False
        self._send(Headers())

    def _plan_failed(self, failure: Failure) -> None:
        self._finding = None
        if failure.check(CancelledError) or self._stopped:
            return
        log.failure("Outgoing leg {uuid}: finding a hop failed", failure, uuid=self.uuid)
        self._last = UacFailure(503, Cause.FAILED, "no hop could be found")
        self._give_up()

    def _give_up(self) -> None:
        failure = self._last
        if failure is None:
            why = self.plan.describe_failure() or "no destination"
            failure = UacFailure(503, Cause.FAILED, why)
        elif self.plan.describe_failure():
            failure = attrs.evolve(
                failure, reason=f"{failure.reason}; {self.plan.describe_failure()}"
            )
        self.on_failed(failure)

    # -- one INVITE ---------------------------------------------------------------------

    def _send(self, auth: Headers) -> None:
        hop = self.hop
        if hop is None:
            return
        self.cseq += 1
        self._attempt += 1
        attempt = self._attempt
        request = build_invite(self.template, hop, self.cseq, auth)
        self.request = request
        self._heard = False
        self.on_sent(request, hop.peer, hop)
        d = self.stack.send_request(
            request, hop.peer, on_response=functools.partial(self._provisional, attempt)
        )
        self._in_flight = d
        d.addCallbacks(
            functools.partial(self._final, attempt), functools.partial(self._error, attempt)
        )
        self._cancel_timer()
        if hop.response_timeout is not None and not self._stopped:
            self._timer = self.clock.callLater(hop.response_timeout, self._silent, attempt)

    def _provisional(self, attempt: int, response: Response) -> None:
        if attempt != self._attempt:
            return
        self._heard = True
        self._cancel_timer()
        self.on_response(response)

    def _final(self, attempt: int, response: Response) -> None:
        if attempt != self._attempt:
            return
        self._in_flight = None
        self._heard = True
        self._cancel_timer()
        status = response.status
        if self._stopped or status < 300:
            self.on_response(response)
        elif status in (401, 407):
            self._challenged(response)
        elif _failover(status):
            cause = Cause.SIP_AUTH_TIMEOUT if self._authenticated and status == 408 else None
            self._failed_here(UacFailure(status, cause, f"{status} {response.reason}"))
        else:
            self.on_response(response)

    def _error(self, attempt: int, failure: Failure) -> None:
        if failure.check(CancelledError) or attempt != self._attempt:
            return
        log.failure("Outgoing leg {uuid}: INVITE failed", failure, uuid=self.uuid)
        self._failed_here(UacFailure(503, Cause.FAILED, "could not send the INVITE"))

    def _silent(self, attempt: int) -> None:
        """The hop said nothing within its response timeout: abandon it, try the next."""
        self._timer = None
        if attempt != self._attempt or self._heard or self._stopped:
            return
        hop = self.hop
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.cancel()
        cause = Cause.SIP_AUTH_TIMEOUT if self._authenticated else None
        seconds = hop.response_timeout if hop is not None else 0
        self._failed_here(UacFailure(408, cause, f"no response in {seconds:g} s"))

    def _failed_here(self, failure: UacFailure) -> None:
        hop = self.hop
        log.info(
            "Outgoing leg {uuid}: {label} ({host}:{port}) failed: {reason}; trying the next",
            uuid=self.uuid,
            label=hop.label if hop else "",
            host=hop.peer.host if hop else "",
            port=hop.peer.port if hop else 0,
            reason=failure.reason,
        )
        self._last = failure
        self._next_hop()

    def _challenged(self, response: Response) -> None:
        request, client, hop = self.request, self._client, self.hop
        if request is None or client is None or hop is None:
            return
        answer = client.answer(response, method="INVITE", uri=str(request.uri), body=request.body)
        if isinstance(answer, AuthRefused):
            log.warn(
                "Outgoing leg {uuid}: {label} ({host}:{port}) answered {status}: {why}",
                uuid=self.uuid,
                label=hop.label or str(request.uri),
                host=hop.peer.host,
                port=hop.peer.port,
                status=response.status,
                why=str(answer),
            )
            self.on_failed(UacFailure(response.status, Cause.SIP_AUTH_FAILED, str(answer)))
            return
        self._authenticated = True
        self._send(answer)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def send_authenticated(
    stack: SipStack,
    peer: Peer,
    build: Callable[[Headers], Request],
    credentials: SipCredentials | None,
) -> Deferred[Response]:
    """Send an in-dialog request (BYE, re-INVITE) built by *build*, answering one
    401/407 with *credentials*: carriers may challenge these too.  Fires with the
    final response (the challenge itself when it cannot be answered)."""
    client = _digest_client(credentials)
    first = build(Headers())

    def answered(response: Response) -> Response | Deferred[Response]:
        if response.status not in (401, 407) or credentials is None:
            return response
        answer = client.answer(response, method=first.method, uri=str(first.uri), body=first.body)
        if isinstance(answer, AuthRefused):
            if answer.reason is not RefusalReason.NO_CREDENTIALS:
                log.warn("{method} refused: {why}", method=first.method, why=str(answer))
            return response
        return stack.send_request(build(answer), peer)

    return stack.send_request(first, peer).addCallback(answered)
