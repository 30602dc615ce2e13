"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state): sans-IO.

Four state machines, each a table ``(state, event) → handler`` after the RFC's
Figures 5 to 8.  A machine never touches a socket or a clock: every input returns
a list of actions (send this, start that timer, pass this up to the TU) and the
layer in :mod:`telephony.sip.stack` carries them out.  An input the table has no
entry for raises :class:`~telephony.sip.errors.SipStateError`.

Reliable transports (TCP) skip retransmissions and use zero for timers D, I, J, K.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from telephony.sip.errors import SipStateError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response

__all__ = (
    "MAGIC_COOKIE",
    "Action",
    "CancelTimer",
    "ClientInvite",
    "ClientNonInvite",
    "Deliver",
    "Send",
    "ServerInvite",
    "ServerNonInvite",
    "StartTimer",
    "State",
    "Terminated",
    "TimedOut",
    "TimerValues",
    "Transaction",
    "client_key",
    "server_key",
)

#: Branch prefix of RFC 3261-compliant transaction IDs (§8.1.1.7).
MAGIC_COOKIE = "z9hG4bK"


@attrs.frozen
class TimerValues:
    """T1, T2, T4 in seconds (§17.1.1.1, Table 4); the rest derive from them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64·T1: timers B, F, H, J (and RFC 6026's L and M)."""
        return 64 * self.t1


class State(enum.Enum):
    """Transaction states, named as in RFC 3261 §17 and RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


# -- actions -----------------------------------------------------------------


@attrs.frozen
class Send:
    """Send this message to the transaction's peer."""

    message: Request | Response


@attrs.frozen
class StartTimer:
    """Start (or restart) the named timer; it fires once after *delay* seconds."""

    name: str
    delay: float


@attrs.frozen
class CancelTimer:
    """Stop the named timer if it runs."""

    name: str


@attrs.frozen
class Deliver:
    """Pass a message up to the transaction user (a response, or an ACK)."""

    message: Request | Response


@attrs.frozen
class TimedOut:
    """The transaction gave up (Timer B, F or H): the TU treats it as a 408."""

    timer: str


@attrs.frozen
class Terminated:
    """The transaction is over: forget it."""


Action = Send | StartTimer | CancelTimer | Deliver | TimedOut | Terminated


# -- keys --------------------------------------------------------------------


def server_key(request: Request) -> tuple[str, ...]:
    """The key that matches a request to a server transaction (§17.2.3).

    With a magic-cookie branch: branch, sent-by and method (ACK matches INVITE).
    Otherwise the RFC 2543 rule: Request-URI, From tag, Call-ID, CSeq and top Via.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), str(via.port or ""), method)
    return (
        "2543",
        str(request.uri),
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.number),
        method,
        str(via),
    )


def client_key(message: Request | Response) -> tuple[str, str]:
    """The key that matches a response to a client transaction (§17.1.3)."""
    return (message.top_via.branch or "", message.cseq.method)


# -- the machines -------------------------------------------------------------

_Handler = Callable[[Any, object], list[Action]]


class Transaction:
    """What the four machines share: state, timers, the request, the last response.

    :param reliable: whether the transport is reliable (no retransmissions, zero
        absorb timers).
    """

    kind: ClassVar[str]
    _table: ClassVar[dict[tuple[State, str], _Handler]]

    def __init__(self, request: Request, *, reliable: bool, timers: TimerValues) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = State.TERMINATED
        self.last_response: Response | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value}>"

    def _dispatch(self, event: str, payload: object = None) -> list[Action]:
        handler = self._table.get((self.state, event))
        if handler is None:
            raise SipStateError(
                f"{type(self).__name__}: no transition for {event} in {self.state.value}"
            )
        return handler(self, payload)

    def timer_fired(self, name: str) -> list[Action]:
        """Feed a timer expiry."""
        return self._dispatch(f"timer_{name}")

    def _absorb(self, _: object) -> list[Action]:
        return []

    def _terminate(self, _: object = None) -> list[Action]:
        self.state = State.TERMINATED
        return [Terminated()]

    def _absorb_timer(self, name: str, value: float) -> list[Action]:
        """Start an absorb timer, or end at once on a reliable transport."""
        if self.reliable:
            return self._terminate()
        return [StartTimer(name, value)]


def _response(payload: object) -> Response:
    if not isinstance(payload, Response):
        raise SipStateError(f"expected a response, got {payload!r}")
    return payload


def _status_event(status: int) -> str:
    if status < 200:
        return "1xx"
    return "2xx" if status < 300 else "final"


class ServerNonInvite(Transaction):
    """Figure 8: Trying → Proceeding → Completed → Terminated (Timer J)."""

    kind = "server"

    def __init__(self, request: Request, *, reliable: bool, timers: TimerValues) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = State.TRYING

    def receive_request(self, request: Request) -> list[Action]:
        """A retransmission of the request arrived."""
        return self._dispatch("request", request)

    def respond(self, response: Response) -> list[Action]:
        """The TU sends a response."""
        return self._dispatch(_status_event(response.status), response)

    def _provisional(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.PROCEEDING
        return [Send(response)]

    def _final(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.COMPLETED
        return [Send(response), *self._absorb_timer("J", self.timers.timeout)]

    def _resend(self, _: object) -> list[Action]:
        return [Send(_response(self.last_response))]

    _table: ClassVar[dict[tuple[State, str], _Handler]] = {
        (State.TRYING, "request"): Transaction._absorb,
        (State.TRYING, "1xx"): _provisional,
        (State.TRYING, "2xx"): _final,
        (State.TRYING, "final"): _final,
        (State.PROCEEDING, "request"): _resend,
        (State.PROCEEDING, "1xx"): _provisional,
        (State.PROCEEDING, "2xx"): _final,
        (State.PROCEEDING, "final"): _final,
        (State.COMPLETED, "request"): _resend,
        (State.COMPLETED, "timer_J"): Transaction._terminate,
    }


class ServerInvite(Transaction):
    """Figure 7 with RFC 6026: Proceeding → Accepted (2xx) or Completed → Confirmed.

    A 2xx moves to Accepted for 64·T1 (Timer L): INVITE retransmissions are absorbed,
    since the TU itself retransmits its 2xx until the ACK (§13.3.1.4).
    """

    kind = "server"

    def __init__(self, request: Request, *, reliable: bool, timers: TimerValues) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = State.PROCEEDING
        self._g = timers.t1

    def receive_request(self, request: Request) -> list[Action]:
        """A retransmitted INVITE, or an ACK for a non-2xx final response."""
        return self._dispatch("ack" if request.method == "ACK" else "request", request)

    def respond(self, response: Response) -> list[Action]:
        """The TU sends a response."""
        return self._dispatch(_status_event(response.status), response)

    def _provisional(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        return [Send(response)]

    def _resend(self, _: object) -> list[Action]:
        return [Send(self.last_response)] if self.last_response is not None else []

    def _accepted(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.ACCEPTED
        return [Send(response), StartTimer("L", self.timers.timeout)]

    def _retransmit_2xx(self, payload: object) -> list[Action]:

        response = _response(payload)
        return [Send(response)]

    def _completed(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.COMPLETED
        actions: list[Action] = [Send(response), StartTimer("H", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("G", self._g))
        return actions

    def _timer_g(self, _: object) -> list[Action]:
        self._g = min(2 * self._g, self.timers.t2)
        return [Send(_response(self.last_response)), StartTimer("G", self._g)]

    def _timer_h(self, _: object) -> list[Action]:
        self.state = State.TERMINATED
        return [CancelTimer("G"), TimedOut("H"), Terminated()]

    def _confirmed(self, ack: object) -> list[Action]:
        self.state = State.CONFIRMED
        actions: list[Action] = [CancelTimer("G"), CancelTimer("H")]
        return actions + self._absorb_timer("I", self.timers.t4)

    _table: ClassVar[dict[tuple[State, str], _Handler]] = {
        (State.PROCEEDING, "request"): _resend,
        (State.PROCEEDING, "1xx"): _provisional,
        (State.PROCEEDING, "2xx"): _accepted,
        (State.PROCEEDING, "final"): _completed,
        (State.ACCEPTED, "request"): Transaction._absorb,
        (State.ACCEPTED, "ack"): Transaction._absorb,
        (State.ACCEPTED, "2xx"): _retransmit_2xx,
        (State.ACCEPTED, "timer_L"): Transaction._terminate,
        (State.COMPLETED, "request"): _resend,
        (State.COMPLETED, "ack"): _confirmed,
        (State.COMPLETED, "timer_G"): _timer_g,
        (State.COMPLETED, "timer_H"): _timer_h,
        (State.CONFIRMED, "request"): Transaction._absorb,
        (State.CONFIRMED, "ack"): Transaction._absorb,
        (State.CONFIRMED, "timer_I"): Transaction._terminate,
    }


class ClientNonInvite(Transaction):
    """Figure 6: Trying → Proceeding → Completed → Terminated (Timer K); F times out."""

    kind = "client"

    def __init__(self, request: Request, *, reliable: bool, timers: TimerValues) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = State.TRYING
        self._e = timers.t1

    def start(self) -> list[Action]:
        """Send the request and start timers E (unreliable only) and F."""
        actions: list[Action] = [Send(self.request), StartTimer("F", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("E", self._e))
        return actions

    def receive_response(self, response: Response) -> list[Action]:
        """A response matched this transaction."""
        return self._dispatch(_status_event(response.status), response)

    def _timer_e(self, _: object) -> list[Action]:
        # Trying doubles up to T2; Proceeding retransmits every T2 (§17.1.2.2).
        self._e = (
            self.timers.t2 if self.state is State.PROCEEDING else min(2 * self._e, self.timers.t2)
        )
        return [Send(self.request), StartTimer("E", self._e)]

    def _timer_f(self, _: object) -> list[Action]:
        self.state = State.TERMINATED
        return [CancelTimer("E"), TimedOut("F"), Terminated()]

    def _provisional(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.state = State.PROCEEDING
        return [Deliver(response)]

    def _final(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.COMPLETED
        actions: list[Action] = [CancelTimer("E"), CancelTimer("F"), Deliver(response)]
        return actions + self._absorb_timer("K", self.timers.t4)

    _table: ClassVar[dict[tuple[State, str], _Handler]] = {
        (State.TRYING, "1xx"): _provisional,
        (State.TRYING, "2xx"): _final,
        (State.TRYING, "final"): _final,
        (State.TRYING, "timer_E"): _timer_e,
        (State.TRYING, "timer_F"): _timer_f,
        (State.PROCEEDING, "1xx"): _provisional,
        (State.PROCEEDING, "2xx"): _final,
        (State.PROCEEDING, "final"): _final,
        (State.PROCEEDING, "timer_E"): _timer_e,
        (State.PROCEEDING, "timer_F"): _timer_f,
        (State.COMPLETED, "1xx"): Transaction._absorb,
        (State.COMPLETED, "2xx"): Transaction._absorb,
        (State.COMPLETED, "final"): Transaction._absorb,
        (State.COMPLETED, "timer_K"): Transaction._terminate,
    }


class ClientInvite(Transaction):
    """Figure 5 with RFC 6026: Calling → Proceeding → Accepted or Completed.

    For a 300-699 response the transaction builds and sends the ACK itself (§17.1.1.3);
    2xx responses (and their retransmissions, for 64·T1 in Accepted) go to the TU,
    which sends the ACK for them.
    """

    kind = "client"

    def __init__(self, request: Request, *, reliable: bool, timers: TimerValues) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = State.CALLING
        self._a = timers.t1
        self._ack: Request | None = None

    def start(self) -> list[Action]:
        """Send the INVITE and start timers A (unreliable only) and B."""
        actions: list[Action] = [Send(self.request), StartTimer("B", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("A", self._a))
        return actions

    def receive_response(self, response: Response) -> list[Action]:
        """A response matched this transaction."""
        return self._dispatch(_status_event(response.status), response)

    def _timer_a(self, _: object) -> list[Action]:
        self._a *= 2
        return [Send(self.request), StartTimer("A", self._a)]

    def _timer_b(self, _: object) -> list[Action]:
        self.state = State.TERMINATED
        return [CancelTimer("A"), TimedOut("B"), Terminated()]

    def _provisional(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.state = State.PROCEEDING
        return [CancelTimer("A"), Deliver(response)]

    def _accepted(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.state = State.ACCEPTED
        return [
            CancelTimer("A"),
            CancelTimer("B"),
            Deliver(response),
            StartTimer("M", self.timers.timeout),
        ]

    def _completed(self, payload: object) -> list[Action]:

        response = _response(payload)
        self.last_response = response
        self.state = State.COMPLETED
        self._ack = self.build_ack(response)
        actions: list[Action] = [
            CancelTimer("A"),
            CancelTimer("B"),
            Send(self._ack),
            Deliver(response),
        ]
        return actions + self._absorb_timer("D", max(32.0, self.timers.timeout))

    def _resend_ack(self, _: object) -> list[Action]:
        if self._ack is None:
            raise SipStateError("ClientInvite: no ACK to resend")
        return [Send(self._ack)]

    def _deliver(self, payload: object) -> list[Action]:

        response = _response(payload)
        return [Deliver(response)]

    def build_ack(self, response: Response) -> Request:
        """The ACK for a non-2xx final response (§17.1.1.3): same branch, To from it."""
        request = self.request
        headers = Headers()
        headers.add("Via", request.headers.values("Via")[0])
        for route in request.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", request.call_id)
        headers.add("CSeq", f"{request.cseq.number} ACK")
        return Request("ACK", request.uri, headers)

    _table: ClassVar[dict[tuple[State, str], _Handler]] = {
        (State.CALLING, "1xx"): _provisional,
        (State.CALLING, "2xx"): _accepted,
        (State.CALLING, "final"): _completed,
        (State.CALLING, "timer_A"): _timer_a,
        (State.CALLING, "timer_B"): _timer_b,
        (State.PROCEEDING, "1xx"): _deliver,
        (State.PROCEEDING, "2xx"): _accepted,
        (State.PROCEEDING, "final"): _completed,
        (State.PROCEEDING, "timer_B"): _timer_b,
        (State.ACCEPTED, "1xx"): Transaction._absorb,
        (State.ACCEPTED, "2xx"): _deliver,
        (State.ACCEPTED, "final"): Transaction._absorb,
        (State.ACCEPTED, "timer_M"): Transaction._terminate,
        (State.COMPLETED, "1xx"): Transaction._absorb,
        (State.COMPLETED, "2xx"): Transaction._absorb,
        (State.COMPLETED, "final"): _resend_ack,
        (State.COMPLETED, "timer_D"): Transaction._terminate,
    }
