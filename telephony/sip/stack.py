"""The transaction layer: requests matched to transactions, timers, and the TU's handles.

Bytes from a transport are parsed (sans-IO), matched to a server or client
transaction (the machines of :mod:`telephony.sip.transaction`), or handed to the
transaction user (:class:`IRequestHandler`) with a :class:`ServerTransactionHandle`
to answer through.  What the machines ask for is carried out here: sends through the
transports (:class:`~telephony.sip.peer.ITransport`), and timers, kept in two sans-IO
tables (:mod:`~telephony.sip.timerqueue`, :mod:`~telephony.sip.answered`) that say
when they next need the time; this module keeps one delayed call on the injected
clock for both.  Responses are routed by :mod:`telephony.sip.received`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface

from telephony.sip.answered import AnsweredRequests
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.headers import Headers
from telephony.sip.ids import new_tag, stateless_tag
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import ITransport, Peer
from telephony.sip.received import response_destination, stamp_via
from telephony.sip.timerqueue import TimerHandle, TimerQueue
from telephony.sip.transaction import (
    MAGIC_COOKIE,
    Action,
    CancelTimer,
    ClientInvite,
    ClientNonInvite,
    Deliver,
    Send,
    ServerInvite,
    ServerNonInvite,
    StartTimer,
    State,
    Terminated,
    TimedOut,
    TimerValues,
    Transaction,
    client_key,
    server_key,
)

__all__ = ("Clock", "IRequestHandler", "ServerTransactionHandle", "SipStack")

log = Logger()


class Clock(Protocol):
    """The part of ``IReactorTime`` the stack uses (``task.Clock`` in tests)."""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any) -> Any: ...


class IRequestHandler(Interface):
    """The transaction user: decides what to answer to requests."""

    def handle_request(request: Request, txn: ServerTransactionHandle) -> None:  # noqa: N805
        """A new request (not a retransmission) arrived; answer through *txn*."""

    def handle_ack(request: Request, peer: Peer) -> None:  # noqa: N805
        """An ACK that matched no transaction (the ACK of a 2xx, §17.2.1)."""


class ServerTransactionHandle:
    """The TU's grip on one server transaction: the request, where and when it came,
    respond().

    The transaction itself is made only when the TU answers statefully, or returns
    without answering (it will answer later): a request answered statelessly (the
    challenge of every login, §8.2.7) never has one.
    """

    __slots__ = ("_finished", "_key", "_stack", "_tag", "_txn", "now", "peer", "request")

    def __init__(
        self,
        request: Request,
        peer: Peer,
        stack: SipStack,
        key: tuple[str, ...],
        now: float,
    ) -> None:
        self.request = request
        self.peer = peer
        #: When the request arrived (the stack's clock): the TU's "now" for it.
        self.now = now
        self._stack = stack
        self._key = key
        self._txn: Transaction | None = None
        self._tag: str | None = None
        #: Answered statelessly, or dropped: the stack holds nothing for it.
        self._finished = False

    def __repr__(self) -> str:
        return f"<ServerTransactionHandle {self.request!r} from {self.peer}>"

    @property
    def to_tag(self) -> str:
        """The To tag of our answers (made on first use: a stateless answer has its own)."""
        if self._tag is None:
            self._tag = new_tag()
        return self._tag

    def respond(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> Response:
        """Build a response to the request (To tag added) and send it."""
        response = Response.for_request(self.request, status, reason, to_tag=self.to_tag)
        if headers:
            response.headers.extend(headers)
        response.body = body
        self.send(response)
        return response

    def respond_statelessly(
        self, status: int, reason: str | None = None, headers: Headers | None = None
    ) -> Response:
        """Answer as a stateless UAS does (RFC 3261 §8.2.7); for challenging a request
        that carried no credentials.

        The To tag comes from the request, and no transaction is kept: nothing for
        Timer J, and an INVITE's challenge is not retransmitted (Timer G) nor its ACK
        awaited (Timer H); the ACK is then ignored.  A request that arrives again is
        simply challenged again.  A flood of unauthenticated requests leaves no state
        behind and is not answered several times over (a stateful 407 to a spoofed
        INVITE went out up to 11 times), and a registration keeps one transaction for
        32 s instead of two.
        """
        response = Response.for_request(
            self.request, status, reason, to_tag=stateless_tag(self.request)
        )
        if headers:
            response.headers.extend(headers)
        self._stack._respond_statelessly(self, response)
        return response

    def send(self, response: Response) -> None:
        """Send a response built by the TU through the transaction."""
        self._stack._respond(self, response)

    def drop(self) -> None:
        """Forget the request without answering it (a source the guard dropped).

        A server transaction waits for its TU's answer with no timer (RFC 3261
        Figures 7 and 8), so one the TU never answers would stay for good: a flood
        from a banned address grew the stack by one transaction per request.  A
        retransmission of the request is then a new request (and dropped again).
        """
        self._stack._finish(self)


#: A response as sent: the message, its bytes, where they went.
_Sent = tuple[Response, bytes, Peer]


@attrs.define
class _Entry:
    txn: Transaction
    peer: Peer
    key: tuple[str, ...]
    timers: dict[str, TimerHandle] = attrs.Factory(dict)
    #: The expiry of the timer being handled, so that a restart is based on it.
    firing: tuple[str, float] | None = None
    on_response: Callable[[Response], None] | None = None
    on_timeout: Callable[[], None] | None = None


class SipStack:
    """Transactions, timers and transports, in front of one :class:`IRequestHandler`.

    :param clock: drives every timer (``task.Clock`` in tests).
    :param timers: T1, T2, T4.
    """

    def __init__(
        self, handler: IRequestHandler, *, clock: Clock, timers: TimerValues | None = None
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.timers = timers or TimerValues()
        self._queue = TimerQueue()
        self._server: dict[tuple[str, ...], _Entry] = {}
        #: Completed non-INVITE server transactions on UDP: only their final
        #: response's bytes and destination remain, for Timer J.
        self._answered: AnsweredRequests[Peer] = AnsweredRequests(self.timers.timeout)
        #: The one delayed call: at the earliest deadline of the two tables.
        self._alarm = _Alarm(clock, self._wake)
        self._client: dict[tuple[str, ...], _Entry] = {}
        self.transports: dict[str, ITransport] = {}
        self.counters = {"received": 0, "malformed": 0, "sent": 0, "retransmissions": 0}

    # -- inbound -----------------------------------------------------------

    def datagram_received(self, data: bytes, peer: Peer) -> None:
        """Bytes of one UDP datagram from *peer*.  Never raises."""
        self.counters["received"] += 1
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive (RFC 5626 §4.4.1 sends CRLF; some phones send NUL)
        try:
            message = parse_datagram(data)
        except SipParseError as exc:
            try:
                self._malformed(exc, peer)
            except Exception:
                log.failure("Unexpected error refusing a message from {peer}", peer=peer)
            return
        self.message_received(message, peer)

    def message_received(self, message: Request | Response, peer: Peer) -> None:
        """A parsed message from *peer* (also used by stream transports).  Never raises."""
        try:
            if isinstance(message, Request):
                self._request_received(message, peer)
            else:
                self._response_received(message)
        except SipError as exc:
            if isinstance(message, Request) and message.method != "ACK":
                self._stateless_error(message, exc, peer)
            else:
                log.warn(
                    "Dropped {message!r} from {peer}: {reason}",
                    message=message,
                    peer=peer,
                    reason=exc.reason,
                )
        except Exception:
            log.failure(
                "Unexpected error handling {message!r} from {peer}", message=message, peer=peer
            )

    def _malformed(self, exc: SipParseError, peer: Peer) -> None:
        self.counters["malformed"] += 1
        request = exc.request
        if isinstance(request, Request) and request.method != "ACK":
            self._stateless_error(request, exc, peer)
        else:
            log.info(
                "Dropped an unreadable message from {host}:{port}: {reason}",
                host=peer.host,
                port=peer.port,
                reason=exc.reason,
            )

    def _stateless_error(self, request: Request, exc: SipError, peer: Peer) -> None:
        log.info(
            "{status} to {method} from {host}:{port}: {reason}",
            status=exc.status_hint,
            method=request.method,
            host=peer.host,
            port=peer.port,
            reason=exc.reason,
        )
        try:
            stamp_via(request, peer)
            response = Response.for_request(request, exc.status_hint, exc.reason, to_tag=new_tag())
            self._send(response, response_destination(response, peer))
        except SipError:
            pass

    def _request_received(self, request: Request, peer: Peer) -> None:
        stamp_via(request, peer)
        key = server_key(request)
        entry = self._server.get(key)
        if entry is not None:
            self.counters["retransmissions"] += 1
            self._run(entry, entry.txn.receive_request(request))  # type: ignore[attr-defined]
            return
        answered = self._answered.get(key)
        if answered is not None:
            self.counters["retransmissions"] += 1
            self._send_bytes(*answered)
            return
        if request.method == "ACK":
            self.handler.handle_ack(request, peer)
            return
        handle = ServerTransactionHandle(request, peer, self, key, self.clock.seconds())
        self.handler.handle_request(request, handle)
        if handle._txn is None and not handle._finished:
            self._entry(handle)  # the TU answers later: absorb retransmissions meanwhile

    def _entry(self, handle: ServerTransactionHandle) -> _Entry:
        """The server transaction of *handle*, made and kept in the table now."""
        request = handle.request
        cls = ServerInvite if request.method == "INVITE" else ServerNonInvite
        txn = handle._txn = cls(request, reliable=handle.peer.reliable, timers=self.timers)
        entry = self._server[handle._key] = _Entry(txn, handle.peer, handle._key)
        return entry

    def _response_received(self, response: Response) -> None:
        entry = self._client.get(client_key(response))
        if entry is None:
            log.debug("Stray response {response!r}", response=response)
            return
        self._run(entry, entry.txn.receive_response(response))  # type: ignore[attr-defined]

    # -- outbound ----------------------------------------------------------

    def _respond(self, handle: ServerTransactionHandle, response: Response) -> None:
        """Send *response* in *handle*'s transaction (made now if the TU answers at once)."""
        if handle._finished:
            self._dropped(response)
            return
        if handle._txn is None:
            entry = self._entry(handle)
        else:
            found = self._live_entry(handle)
            if found is None:
                self._dropped(response)
                return
            entry = found
        txn = entry.txn
        actions = txn.respond(response)  # type: ignore[attr-defined]
        if isinstance(txn, ServerNonInvite) and txn.state is State.COMPLETED:
            rest = [a for a in actions if not (isinstance(a, StartTimer) and a.name == "J")]
            if len(rest) < len(actions):  # Timer J, so UDP: keep the answer, not the txn
                sent = self._run(entry, rest)
                self._forget(entry)
                if sent is not None and sent[0] is response:  # no second serialisation
                    data, peer = sent[1], sent[2]
                else:
                    data = response.to_bytes()
                    peer = response_destination(response, entry.peer)
                now = self.clock.seconds()
                self._alarm.arm(self._answered.add(entry.key, data, peer, now))
                return
        self._run(entry, actions)

    def _respond_statelessly(self, handle: ServerTransactionHandle, response: Response) -> None:
        """Send a final *response* outside any transaction, and end *handle*'s (§8.2.7)."""
        if handle._finished:
            self._dropped(response)
            return
        self._finish(handle)
        self._send(response, response_destination(response, handle.peer))

    def _finish(self, handle: ServerTransactionHandle) -> None:
        """Forget *handle*'s transaction (if it has one) without answering any more."""
        handle._finished = True
        entry = self._live_entry(handle)
        if entry is not None:
            self._forget(entry)

    def _live_entry(self, handle: ServerTransactionHandle) -> _Entry | None:
        """The table's entry for *handle*'s transaction, while that transaction runs."""
        entry = self._server.get(handle._key)
        return entry if entry is not None and entry.txn is handle._txn else None

    @staticmethod
    def _dropped(response: Response) -> None:
        log.warn("Response {response!r} for a finished transaction dropped", response=response)

    def send_request(
        self,
        request: Request,
        peer: Peer,
        on_response: Callable[[Response], None] | None = None,
    ) -> Deferred[Response]:
        """Send *request* in a new client transaction; the Deferred fires with the final
        response (a synthesized 408 on timeout).  Provisional responses, and 2xx
        retransmissions to an INVITE, go to *on_response*.

        Cancelling the Deferred abandons the transaction: no more retransmissions, and
        later responses to it are strays (a gateway that never answered, left for the
        next one)."""
        top = request.top_via
        if not (top.branch or "").startswith(MAGIC_COOKIE):
            raise SipError("send_request: the top Via needs a magic-cookie branch")
        cls = ClientInvite if request.method == "INVITE" else ClientNonInvite
        txn = cls(request, reliable=peer.reliable, timers=self.timers)
        key = client_key(request)
        entry = _Entry(txn, peer, key)
        d: Deferred[Response] = Deferred(lambda _: self._forget(entry))

        def got(response: Response) -> None:
            if response.status >= 200 and not d.called:
                d.callback(response)
            elif on_response is not None:
                on_response(response)

        def timed_out() -> None:
            if not d.called:
                d.callback(Response.for_request(request, 408, "Request Timeout"))

        entry.on_response = got
        entry.on_timeout = timed_out
        self._client[key] = entry
        self._run(entry, txn.start())
        return d

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send outside any transaction (an ACK for a 2xx, a 2xx retransmission)."""
        self._send(message, peer)

    # -- actions -----------------------------------------------------------

    def _run(self, entry: _Entry, actions: list[Action]) -> _Sent | None:
        """Carry out *actions*; returns the last response sent, with its bytes and peer."""
        sent: _Sent | None = None
        for action in actions:
            if isinstance(action, Send):
                message = action.message
                if isinstance(message, Response):
                    peer = response_destination(message, entry.peer)
                    data = self._send(message, peer)
                    if data is not None:
                        sent = (message, data, peer)
                else:
                    self._send(message, entry.peer)
            elif isinstance(action, StartTimer):
                old = entry.timers.pop(action.name, None)
                if old is not None:
                    old.cancel()
                base = entry.firing[1] if entry.firing and entry.firing[0] == action.name else None
                started = entry.timers[action.name] = self._queue.start(
                    action.delay,
                    functools.partial(self._timer_fired, entry, action.name),
                    self.clock.seconds(),
                    base=base,
                )
                self._alarm.arm(started.deadline)
            elif isinstance(action, CancelTimer):
                handle = entry.timers.pop(action.name, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, Deliver):
                if entry.on_response is not None and isinstance(action.message, Response):
                    entry.on_response(action.message)
            elif isinstance(action, TimedOut):
                if entry.on_timeout is not None:
                    entry.on_timeout()
            elif isinstance(action, Terminated):
                self._forget(entry)
        return sent

    def _timer_fired(self, entry: _Entry, name: str) -> None:
        handle = entry.timers.pop(name, None)
        entry.firing = (name, handle.deadline) if handle is not None else None
        try:
            self._run(entry, entry.txn.timer_fired(name))
        except SipError:
            log.failure("Timer {name} in {txn!r}", name=name, txn=entry.txn)
        finally:
            entry.firing = None

    def _forget(self, entry: _Entry) -> None:
        for handle in entry.timers.values():
            handle.cancel()
        entry.timers.clear()
        table = self._server if entry.txn.kind == "server" else self._client
        if table.get(entry.key) is entry:
            del table[entry.key]

    def _send(self, message: Request | Response, peer: Peer) -> bytes | None:
        """Serialise and send *message*; returns the bytes (None: no such transport)."""
        transport = self.transports.get(peer.transport)
        if transport is None:
            log.warn(
                "No {transport} transport to send {message!r}",
                transport=peer.transport,
                message=message,
            )
            return None
        data = message.to_bytes()
        self.counters["sent"] += 1
        transport.send(data, peer)
        return data

    def _send_bytes(self, data: bytes, peer: Peer) -> None:
        transport = self.transports.get(peer.transport)
        if transport is None:
            return
        self.counters["sent"] += 1
        transport.send(data, peer)

    # -- inspection and shutdown --------------------------------------------

    @property
    def transaction_count(self) -> int:
        """Live transactions (server and client)."""
        return len(self._server) + len(self._client) + len(self._answered)

    def _wake(self) -> None:
        """The alarm rang: forget expired answers, run every due timer, set it again."""
        now = self.clock.seconds()
        self._answered.expire(now)
        while (due := self._queue.pop_due(now)) is not None:
            due.callback()
        deadlines = [
            d
            for d in (self._answered.next_deadline(), self._queue.next_deadline())
            if d is not None
        ]
        if deadlines:
            self._alarm.arm(min(deadlines))

    def stop(self) -> None:
        """Cancel every timer and forget every transaction."""
        self._alarm.cancel()
        self._queue.clear()
        self._answered.clear()
        self._server.clear()
        self._client.clear()


class _Alarm:
    """One delayed call on the clock, at the earliest deadline it was asked for."""

    def __init__(self, clock: Clock, ring: Callable[[], None]) -> None:
        self._clock = clock
        self._ring = ring
        self._call: Any = None
        self._at: float | None = None

    def arm(self, deadline: float) -> None:
        """Ring at *deadline* at the latest (an alarm set for earlier stays)."""
        if self._at is not None and self._at <= deadline:
            return
        self.cancel()
        self._at = deadline
        self._call = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), self._rang)

    def _rang(self) -> None:
        self._call = None
        self._at = None
        self._ring()

    def cancel(self) -> None:
        """Ring no more (until armed again)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._at = None
