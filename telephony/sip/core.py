"""The SIP transaction user: the checks every request passes, then dispatch by method.

In order (RFC 3261 §8.2, then our policy): a source the guard has banned is dropped
in silence; a blocked User-Agent gets 403 before anything else; then version (505),
URI scheme (416), Max-Forwards (483) and Require (420) are checked; REGISTER goes to
the registrar, OPTIONS is answered here (phones use it as a keep-alive), INVITE and
the dialog methods go to the call layer when one is attached, and anything else gets
501 Not Implemented with an Allow header.

It reads no clock: the time a request arrived comes with its handle
(:attr:`~telephony.sip.stack.ServerTransactionHandle.now`), and the registrar and
the call layer are attached from above, so this module knows only the SIP stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from twisted.logger import Logger
from zope.interface import implementer

from telephony._version import __version__
from telephony.sip.guard import SourceGuard
from telephony.sip.headers import Headers
from telephony.sip.message import Request
from telephony.sip.peer import Peer
from telephony.sip.stack import IRequestHandler, ServerTransactionHandle
from telephony.sip.uri import SipURI, TelURI

__all__ = ("SUPPORTED_EXTENSIONS", "SipCore")

log = Logger()

#: Option tags we implement (Supported / Require): ``timer``, session timers
#: (RFC 4028), run by every call leg.  A request that requires one of these is
#: served; one that requires any other tag gets 420 naming the others.
SUPPORTED_EXTENSIONS: tuple[str, ...] = ("timer",)
SERVER_HEADER = f"telephony/{__version__}"

#: A handler for INVITE and in-dialog methods, set by the call layer.
CallHandler = Callable[[Request, ServerTransactionHandle], None]
AckHandler = Callable[[Request, Peer], None]


class RegisterHandler(Protocol):
    """What answers REGISTER (the registrar, one layer up)."""

    def handle(self, request: Request, txn: ServerTransactionHandle) -> object:
        """Answer *request* through *txn* (now or later)."""


@implementer(IRequestHandler)
class SipCore:
    """Checks and routes every new request."""

    def __init__(
        self,
        *,
        registrar: RegisterHandler,
        guard: SourceGuard,
        blocked_user_agents: str,
    ) -> None:
        self.registrar = registrar
        self.guard = guard
        self.blocked = re.compile(blocked_user_agents) if blocked_user_agents else None
        self.calls: CallHandler | None = None
        self.acks: AckHandler | None = None
        self.counters = {"dropped": 0, "blocked_user_agent": 0}

    @property
    def allowed_methods(self) -> list[str]:
        """What we answer (for Allow headers)."""
        methods = ["REGISTER", "OPTIONS"]
        if self.calls is not None:
            methods += ["INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "INFO"]
        return methods

    def handle_request(self, request: Request, txn: ServerTransactionHandle) -> None:
        if not self.guard.allow(txn.peer.host, txn.now):
            self.counters["dropped"] += 1
            txn.drop()  # silence: a banned source learns nothing, and leaves nothing
            return
        user_agent = request.headers.get("User-Agent") or ""
        if self.blocked is not None and self.blocked.search(user_agent):
            self.counters["blocked_user_agent"] += 1
            log.info(
                "403 to {method} from {host}:{port}: blocked User-Agent {ua!r}",
                method=request.method,
                host=txn.peer.host,
                port=txn.peer.port,
                ua=user_agent[:80],
            )
            txn.respond(403, "Forbidden (User-Agent blocked)")
            return
        if request.version != "SIP/2.0":
            txn.respond(505, "Version Not Supported")
            return
        if not isinstance(request.uri, SipURI | TelURI):
            txn.respond(416, f"Unsupported URI Scheme ({request.uri.scheme})")
            return
        max_forwards = (request.headers.get("Max-Forwards") or "70").strip()
        # isascii: str.isdigit() is true of '²', which int() refuses (found by fuzzing).
        if not (max_forwards.isascii() and max_forwards.isdigit()):
            txn.respond(400, "Bad Max-Forwards")
            return
        if int(max_forwards) == 0 and request.method != "OPTIONS":
            txn.respond(483, "Too Many Hops")
            return
        unsupported = [
            tag
            for tag in request.headers.values("Require")
            if tag.lower() not in SUPPORTED_EXTENSIONS
        ]
        if unsupported and request.method not in ("CANCEL", "ACK"):
            txn.respond(420, "Bad Extension", Headers([("Unsupported", ", ".join(unsupported))]))
            return
        method = request.method
        if method == "REGISTER":
            self.registrar.handle(request, txn)
        elif method == "OPTIONS":
            txn.respond(200, None, self._capabilities())
        elif self.calls is not None and method in ("INVITE", "BYE", "CANCEL", "UPDATE", "INFO"):
            self.calls(request, txn)
        else:
            txn.respond(
                501, "Not Implemented", Headers([("Allow", ", ".join(self.allowed_methods))])
            )

    def handle_ack(self, request: Request, peer: Peer) -> None:
        if self.acks is not None:
            self.acks(request, peer)

    def _capabilities(self) -> Headers:
        return Headers(
            [
                ("Allow", ", ".join(self.allowed_methods)),
                ("Accept", "application/sdp"),
                ("Supported", ", ".join(SUPPORTED_EXTENSIONS)),
                ("Server", SERVER_HEADER),
            ]
        )
