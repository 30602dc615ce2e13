"""The Twisted edge of the SIP stack: UDP and TCP transports and the transaction glue.

Bytes come in through :class:`UDPTransport` or :class:`StreamTransport`, are parsed
(sans-IO), matched to a transaction (sans-IO) or handed to the transaction user
(:class:`IRequestHandler`), and what the machines ask for — sends and timers — is
carried out here, on an injected clock.  Responses are routed by Via, with
``received`` and ``rport`` (RFC 3581) so that phones behind NAT are answered where
their packets came from; on TCP they go back on the connection the request used.

A new transport (TLS, WebSocket) only has to deliver bytes with a :class:`Peer` and
implement :class:`ITransport`; nothing above this module changes.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import os
import socket
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import endpoints, protocol
from twisted.internet.defer import Deferred
from twisted.internet.error import InvalidAddressError
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from telephony.randompool import token_hex
from telephony.sip._answered import AnsweredRequests
from telephony.sip._grammar import split_commas
from telephony.sip._timerqueue import TimerHandle, TimerQueue
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.headers import Headers, Via
from telephony.sip.message import Request, Response, StreamParser, parse_datagram
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

__all__ = (
    "IRequestHandler",
    "ITransport",
    "Peer",
    "ServerTransactionHandle",
    "SipStack",
    "StreamProtocol",
    "StreamTransportFactory",
    "UDPTransport",
    "new_branch",
    "new_tag",
)

log = Logger()


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return MAGIC_COOKIE + token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (64 random bits)."""
    return token_hex(8)


#: Keys the tags of stateless answers, so that they cannot be predicted from outside.
_STATELESS_TAG_KEY = os.urandom(16)


def stateless_tag(request: Request) -> str:
    """The To tag of a stateless answer to *request*: the same for the same request,
    as RFC 3261 §8.2.7 requires (from its Call-ID, From tag and top Via branch)."""
    seed = f"{request.headers.get('Call-ID')}\0{request.from_.tag}\0{request.top_via.branch}"
    return hashlib.blake2b(seed.encode(), digest_size=8, key=_STATELESS_TAG_KEY).hexdigest()


@attrs.frozen
class Peer:
    """Where a message came from or goes to.

    :ivar transport: "udp" or "tcp" (lower case, as in Via after ``.lower()``).
    :ivar connection: for stream transports, the connection it came on (if any).
    """

    transport: str
    host: str
    port: int
    connection: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits by itself (no SIP retransmissions)."""
        return self.transport != "udp"


class ITransport(Interface):
    """What the stack needs from a transport."""

    def send(data: bytes, peer: Peer) -> None:  # noqa: N805
        """Send bytes to *peer* (best effort; errors are logged, not raised)."""


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
        self, handler: IRequestHandler, *, clock: IReactorTime, timers: TimerValues | None = None
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.timers = timers or TimerValues()
        self._queue = TimerQueue(clock)
        self._server: dict[tuple[str, ...], _Entry] = {}
        #: Completed non-INVITE server transactions on UDP: only their final
        #: response's bytes and destination remain, for Timer J.
        self._answered: AnsweredRequests[Peer] = AnsweredRequests(clock, self.timers.timeout)
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
            _stamp_via(request, peer)
            response = Response.for_request(request, exc.status_hint, exc.reason, to_tag=new_tag())
            self._send(response, self._response_peer(response, peer))
        except SipError:
            pass

    def _request_received(self, request: Request, peer: Peer) -> None:
        _stamp_via(request, peer)
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
            log.warn("Response {response!r} for a finished transaction dropped", response=response)
            return
        txn = handle._txn
        if txn is None:
            entry = self._entry(handle)
            txn = entry.txn
        else:
            found = self._server.get(handle._key)
            if found is None or found.txn is not txn:
                log.warn(
                    "Response {response!r} for a finished transaction dropped", response=response
                )
                return
            entry = found
        actions = txn.respond(response)  # type: ignore[attr-defined]
        if isinstance(txn, ServerNonInvite) and txn.state is State.COMPLETED:
            rest = [a for a in actions if not (isinstance(a, StartTimer) and a.name == "J")]
            if len(rest) < len(actions):  # Timer J, so UDP: keep the answer, not the txn
                sent = self._run(entry, rest)
                self._forget(entry)
                if sent is not None and sent[0] is response:  # no second serialisation
                    self._answered.add(entry.key, sent[1], sent[2])
                else:
                    peer = self._response_peer(response, entry.peer)
                    self._answered.add(entry.key, response.to_bytes(), peer)
                return
        self._run(entry, actions)

    def _respond_statelessly(self, handle: ServerTransactionHandle, response: Response) -> None:
        """Send a final *response* outside any transaction, and end *handle*'s (§8.2.7)."""
        if handle._finished:
            log.warn("Response {response!r} for a finished transaction dropped", response=response)
            return
        self._finish(handle)
        self._send(response, self._response_peer(response, handle.peer))

    def _finish(self, handle: ServerTransactionHandle) -> None:
        """Forget *handle*'s transaction (if it has one) without answering any more."""
        handle._finished = True
        txn = handle._txn
        if txn is not None:
            entry = self._server.get(handle._key)
            if entry is not None and entry.txn is txn:
                self._forget(entry)

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
                    peer = self._response_peer(message, entry.peer)
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
                entry.timers[action.name] = self._queue.start(
                    action.delay,
                    functools.partial(self._timer_fired, entry, action.name),
                    base=base,
                )
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

    def _response_peer(self, response: Response, request_peer: Peer) -> Peer:
        """Where a response goes (§18.2.2, RFC 3581): the connection, else received/rport."""
        if (
            request_peer.reliable
            and request_peer.connection is not None
            and request_peer.connection.connected
        ):
            return request_peer
        via = response.top_via
        host = via.param("received") or via.host.strip("[]")
        rport = via.param("rport")
        port = int(rport) if rport and rport.isascii() and rport.isdigit() else (via.port or 5060)
        if (
            host == request_peer.host
            and port == request_peer.port
            and request_peer.connection is None
        ):
            return request_peer  # the usual answer to a UDP request: where it came from
        return Peer(request_peer.transport, host, port, None)

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

    def stop(self) -> None:
        """Cancel every timer and forget every transaction."""
        self._queue.stop()
        self._answered.stop()
        self._server.clear()
        self._client.clear()


def _stamp_via(request: Request, peer: Peer) -> None:
    """Add ``received`` (and fill ``rport``) to the top Via, as §18.2.1 and RFC 3581 say."""
    via = request.top_via
    params = via.params
    if params and params[-1] == ("rport", None):
        # What nearly every phone sends: a bare ``;rport`` last, nothing to replace.
        first = request.headers.get("Via") or ""
        if (
            first.endswith(";rport")
            and "," not in first
            and not any(k.lower() in ("rport", "received") for k, _ in params[:-1])
        ):
            port = str(peer.port)
            request.headers.replace_first("Via", f"{first}={port};received={peer.host}")
            request.restamp_top_via(
                Via(
                    via.transport,
                    via.host,
                    via.port,
                    (*params[:-1], ("rport", port), ("received", peer.host)),
                    via.version,
                )
            )
            return
    updates: dict[str, str | None] = {}
    if via.param("rport") is not None:
        updates["rport"] = str(peer.port)
        updates["received"] = peer.host
    elif _sent_by_differs(via, peer.host):
        updates["received"] = peer.host
    if not updates:
        return
    stamped = via.with_params(**updates)
    first = request.headers.get("Via") or ""
    if "," in first:  # several Via values on the top line: rewrite the first one
        values = split_commas(first)
        if not values:  # "Via: ," with the top Via on a later line (found by fuzzing)
            raise SipParseError("Bad Via header: an empty value")
        values[0] = str(stamped)
        text = ", ".join(values)
    elif _appends_only(via, first):
        # What with_params did, done to the text: it keeps the client's spelling,
        # and formatting the whole Via again was a third of the stamping's cost.
        if "rport" in updates:
            text = f"{first}={peer.port};received={peer.host}"
        else:
            text = f"{first};received={peer.host}"
    else:
        text = str(stamped)
    request.headers.replace_first("Via", text)
    request.restamp_top_via(stamped)


def _appends_only(via: Via, text: str) -> bool:
    """Whether stamping *via* (written as *text*) only appends to the text: it has no
    ``received``, and its one ``rport``, if any, is a flag and the last parameter."""
    params = via.params
    if any(key.lower() == "received" for key, _ in params):
        return False
    rports = [i for i, (key, _) in enumerate(params) if key.lower() == "rport"]
    if not rports:
        return True
    return rports == [len(params) - 1] and params[-1] == ("rport", None) and text.endswith(";rport")


def _sent_by_differs(via: Via, host: str) -> bool:
    if via.host == host:
        return False
    sent_by = via.host.strip("[]")
    try:
        return ipaddress.ip_address(sent_by) != ipaddress.ip_address(host)
    except ValueError:
        return True


# -- Twisted transports ------------------------------------------------------


#: Kernel buffer asked for the SIP UDP socket, each way, in bytes.  The default
#: (about 200 KiB, which the kernel charges at some 2 KiB per small datagram) holds
#: only about a hundred requests: a pause of a few tens of milliseconds at a few
#: thousand requests a second overflowed it, and each dropped REGISTER cost its
#: phone a 500 ms retransmission (measured: 262 drops in 20,000 logins at 2,000/s).
#: The kernel caps it at ``net.core.rmem_max`` / ``wmem_max``.
UDP_SOCKET_BUFFER = 4 * 1024 * 1024
#: Most datagrams queued before they are sent without waiting for the iteration's end.
UDP_BURST = 64
#: Most peer addresses remembered as valid (then the set starts again).
MAX_CHECKED_ADDRESSES = 65_536
#: Seconds a TCP connection we open to a peer (a gateway) may take to be made.
CONNECT_TIMEOUT = 5.0
#: Messages held for one peer while our connection to it is being made [ours]: a
#: request and its retransmissions, and a few more; past that they are dropped.
MAX_WAITING_MESSAGES = 64
#: Seconds a TCP peer has to send a whole message once its first byte arrived, and
#: to send its first message once it connected (Kamailio's ``tcp_msg_read_timeout``
#: default).  A connection that misses it is closed: a peer that trickles a message
#: (or never sends one) cannot hold a connection and its buffer for ever.
MESSAGE_READ_TIMEOUT = 20.0
#: TCP connections accepted from one IP address at once [ours]: a few hundred phones
#: behind one NAT fit; one host cannot take every connection the server accepts
#: (``StreamTransportFactory.max_connections``).
MAX_CONNECTIONS_PER_SOURCE = 256


@implementer(ITransport)
class UDPTransport(protocol.DatagramProtocol):
    """SIP over UDP: every datagram to the stack; sends go where the peer says."""

    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        #: The receive buffer the kernel granted (bytes, as it reports it), once listening.
        self.receive_buffer = 0
        self._outbox: list[tuple[bytes, Peer]] | None = None
        #: Hosts Port.write has accepted (IP addresses), sent to directly since.
        self._addresses: set[str] = set()

    def startProtocol(self) -> None:
        """Ask for :data:`UDP_SOCKET_BUFFER` each way; keep what was granted."""
        sock = getattr(self.transport, "socket", None)
        if sock is None:
            return
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER)
            except OSError as exc:
                log.warn("SIP UDP socket buffer not enlarged: {error}", error=exc)
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.stack.datagram_received(datagram, Peer("udp", addr[0], addr[1]))

    def send(self, data: bytes, peer: Peer) -> None:
        """Queue a datagram; what is queued leaves at the start of the next reactor
        iteration (or at :data:`UDP_BURST` datagrams), all together.

        Requests arrive in batches (one readiness event, many datagrams; a commit of
        many bindings) and their answers then leave back to back, so a peer process
        is woken once per burst instead of once per datagram: on the benchmark's VM
        a send to a sleeping reader costs the sender about 12 µs more.  The delay is
        at most the rest of the current iteration.
        """
        if self.transport is None:
            return
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = []
            self.stack.clock.callLater(0, self._flush)
        outbox.append((data, peer))
        if len(outbox) >= UDP_BURST:
            self._flush()

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, None
        for data, peer in outbox or ():
            self._write(data, peer)

    def _write(self, data: bytes, peer: Peer) -> None:
        transport = self.transport
        if transport is None:
            return
        host = peer.host
        sock = getattr(transport, "socket", None)
        try:
            if sock is None or host not in self._addresses:
                # Port.write checks that the host is an IP address (a name would be
                # resolved, blocking, by sendto); each host is checked once.
                transport.write(data, (host, peer.port))
                if sock is not None:
                    if len(self._addresses) >= MAX_CHECKED_ADDRESSES:
                        self._addresses.clear()
                    self._addresses.add(host)
            else:
                sock.sendto(data, (host, peer.port))
        except (OSError, InvalidAddressError) as exc:
            log.warn(
                "UDP send to {host}:{port} failed: {error}",
                host=peer.host,
                port=peer.port,
                error=exc,
            )


@implementer(IPushProducer)
class StreamProtocol(protocol.Protocol):
    """One TCP connection: frames messages by Content-Length, hands them to the stack.

    A message must arrive whole within :data:`MESSAGE_READ_TIMEOUT` of its first
    byte, and a connection a peer opened must bring its first message as fast, else
    the connection is aborted.  The protocol is its transport's producer: when the
    peer does not read our answers and they pile up past the transport's buffer, we
    stop reading its requests (so it cannot make us buffer more) until it reads.
    """

    def __init__(self, factory: StreamTransportFactory, *, accepted: bool = False) -> None:
        self.factory = factory
        self.parser = StreamParser()
        self.peer: Peer | None = None
        #: Opened by the peer (the first-message deadline applies), not by us.
        self.accepted = accepted
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        address: IAddress = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = Peer("tcp", getattr(address, "host", ""), getattr(address, "port", 0), self)
        self.factory.connection_made(self)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if self.accepted:
            self._arm()

    def dataReceived(self, data: bytes) -> None:
        if self.peer is None:
            return
        completed = False
        for item in self.parser.feed(data):
            completed = True
            if isinstance(item, SipParseError):
                self.factory.stack._malformed(item, self.peer)
            else:
                self.factory.stack.message_received(item, self.peer)
        if self.parser.failed:
            self._disarm()
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if completed:
            self._disarm()  # a message arrived in time; the next one starts now
        if self.parser.buffered and self._deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._deadline = self.factory.stack.clock.callLater(
            MESSAGE_READ_TIMEOUT, self._read_timed_out
        )

    def _disarm(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _read_timed_out(self) -> None:
        self._deadline = None
        self.factory.read_timeouts += 1
        peer = self.peer
        log.info(
            "Closed the TCP connection from {host}:{port}: no complete message in {t:g} s"
            " ({n} bytes buffered)",
            host=peer.host if peer else "?",
            port=peer.port if peer else 0,
            t=MESSAGE_READ_TIMEOUT,
            n=self.parser.buffered,
        )
        self.transport.abortConnection()  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        """Our answers fill the transport's buffer: stop reading the peer's requests
        (and give it :data:`MESSAGE_READ_TIMEOUT` to start reading again)."""
        self.transport.pauseProducing()  # type: ignore[union-attr]
        if self._deadline is None:
            self._arm()

    def resumeProducing(self) -> None:
        """The peer read our answers: read its requests again."""
        self.transport.resumeProducing()  # type: ignore[union-attr]
        if not self.parser.buffered:
            self._disarm()

    def stopProducing(self) -> None:
        """The connection is going away (``connectionLost`` follows)."""

    def connectionLost(self, reason: Any = None) -> None:
        # Twisted sets ``connected`` in makeConnection; nothing resets it on loss.
        self.connected = False
        self._disarm()
        self.factory.connection_lost(self)

    def write(self, data: bytes) -> None:
        """Write bytes on this connection."""
        self.transport.write(data)  # type: ignore[union-attr]


@implementer(ITransport)
class StreamTransportFactory(protocol.ServerFactory):
    """SIP over TCP: accepts connections and keeps them, by peer address, for reuse.

    A request to a phone registered over TCP goes back on the connection it
    registered from (found by its address, RFC 5626 style), while it stays open.
    """

    def __init__(self, stack: SipStack, max_connections: int = 10_000, reactor: Any = None) -> None:
        self.stack = stack
        self.max_connections = max_connections
        #: Makes connections to peers we have none with (a TCP gateway); None: we
        #: only answer on the connections peers open.
        self.reactor = reactor
        self.connections: dict[tuple[str, int], StreamProtocol] = {}
        #: Open connections per peer IP address (see :data:`MAX_CONNECTIONS_PER_SOURCE`).
        self.per_source: dict[str, int] = {}
        #: Connections closed for a message (or a first message) not read in time.
        self.read_timeouts = 0
        #: Connections refused: too many open in all, or from one address.
        self.refused = 0
        #: Messages waiting for a connection being made, by peer address.
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._ids = itertools.count()

    def buildProtocol(self, addr: IAddress) -> StreamProtocol | None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.refused += 1
            log.warn("Refused a TCP connection: {n} already open", n=len(self.connections))
            return None
        host = getattr(addr, "host", "")
        if self.per_source.get(host, 0) >= MAX_CONNECTIONS_PER_SOURCE:
            self.refused += 1
            log.info(
                "Refused a TCP connection from {host}: {n} already open from it",
                host=host,
                n=MAX_CONNECTIONS_PER_SOURCE,
            )
            return None
        return StreamProtocol(self, accepted=True)

    def connection_made(self, proto: StreamProtocol) -> None:
        if proto.peer is not None:
            self.connections[(proto.peer.host, proto.peer.port)] = proto
            self.per_source[proto.peer.host] = self.per_source.get(proto.peer.host, 0) + 1

    def connection_lost(self, proto: StreamProtocol) -> None:
        if proto.peer is None:
            return
        host = proto.peer.host
        left = self.per_source.get(host, 0) - 1
        if left > 0:
            self.per_source[host] = left
        else:
            self.per_source.pop(host, None)
        if self.connections.get((host, proto.peer.port)) is proto:
            del self.connections[(host, proto.peer.port)]

    def send(self, data: bytes, peer: Peer) -> None:
        proto = (
            peer.connection
            if peer.connection is not None
            else self.connections.get((peer.host, peer.port))
        )
        if proto is None or not proto.connected:
            self._connect(peer, data)
            return
        proto.write(data)

    def _connect(self, peer: Peer, data: bytes) -> None:
        """Open a connection to *peer* (RFC 3261 §18.1.1) and send *data* on it; later
        messages for it wait until it is made (at most :data:`MAX_WAITING_MESSAGES`)."""
        key = (peer.host, peer.port)
        waiting = self._connecting.get(key)
        if waiting is not None:
            if len(waiting) < MAX_WAITING_MESSAGES:
                waiting.append(data)
            return
        if self.reactor is None or len(self.connections) >= self.max_connections:
            log.warn(
                "No open TCP connection to {host}:{port}; message dropped",
                host=peer.host,
                port=peer.port,
            )
            return
        self._connecting[key] = [data]
        ipv6 = ":" in peer.host
        endpoint_class = endpoints.TCP6ClientEndpoint if ipv6 else endpoints.TCP4ClientEndpoint
        endpoint = endpoint_class(self.reactor, peer.host, peer.port, timeout=CONNECT_TIMEOUT)
        d = endpoints.connectProtocol(endpoint, StreamProtocol(self))
        d.addCallbacks(
            self._connected, self._not_connected, callbackArgs=(key,), errbackArgs=(key,)
        )

    def _connected(self, proto: StreamProtocol, key: tuple[str, int]) -> None:
        for data in self._connecting.pop(key, []):
            proto.write(data)

    def _not_connected(self, failure: Any, key: tuple[str, int]) -> None:
        dropped = self._connecting.pop(key, [])
        log.warn(
            "Cannot connect to {host}:{port} over TCP ({why}); {n} message(s) dropped",
            host=key[0],
            port=key[1],
            why=failure.getErrorMessage(),
            n=len(dropped),
        )
