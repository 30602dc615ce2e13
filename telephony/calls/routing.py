"""Where a new INVITE goes (``calls/routing``).

In order:

1. **From a configured gateway** (its source IP, and port when the gateway names
   one; a gateway given by name at the addresses it was last located at): to an
   application's SIP URI (``app-ID``) → that application; to a number we own (the
   Request-URI user, else the To user, where providers we register with name the
   DID) → the number's application (else the default number application); to an
   endpoint's SIP URI → ring that endpoint; anything else → 404.
2. **From anyone else** the INVITE must authenticate as an endpoint (407, digest, the
   REGISTER rules); its From user must be that endpoint.  To an application's SIP URI
   → that application; otherwise the endpoint's application (else the default
   endpoint application) runs with ``To`` = what was dialed; an endpoint with no
   application may still call another endpoint's SIP URI, which rings directly;
   anything else → 403 with a reason that says why.

Every refusal is logged with the Call-ID.
"""

from __future__ import annotations

import enum
import hmac
import re

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from telephony.auth import RequestAuthenticator
from telephony.directory import Application, Directory, Endpoint
from telephony.sip.message import Request
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle
from telephony.sip.uri import SipURI
from telephony.trunks.gateway import Gateway
from telephony.trunks.trust import TrustedGateways

__all__ = ("Route", "RouteKind", "Router", "normalize_number")

log = Logger()

APP_PREFIX = "app-"
_VISUAL = re.compile(r"[\s().\-]")


def normalize_number(text: str) -> str:
    """Dialed digits as E.164 digits: separators and a leading ``+`` dropped."""
    return _VISUAL.sub("", text).lstrip("+")


class RouteKind(enum.Enum):
    """What to do with a new call."""

    APPLICATION = "application"
    ENDPOINT = "endpoint"
    REJECT = "reject"


@attrs.frozen
class Route:
    """The decision for one INVITE.

    :ivar caller: Plivo's ``From`` (an endpoint's username or the caller's number).
    :ivar called: Plivo's ``To`` (the dialed digits, or a SIP URI).
    :ivar endpoint: for ``ENDPOINT``: the username to ring.
    :ivar source: "gateway" or "endpoint".
    """

    kind: RouteKind
    caller: str = ""
    called: str = ""
    caller_name: str = ""
    application: Application | None = None
    endpoint: str | None = None
    source: str = ""
    status: int = 0
    reason: str = ""


class Router:
    """Decides the :class:`Route` of each new INVITE."""

    def __init__(
        self,
        *,
        directory: Directory,
        auth: RequestAuthenticator,
        gateways: TrustedGateways,
        domain: str,
    ) -> None:
        self.directory = directory
        self.auth = auth
        self.gateways = gateways
        self.domain = domain
        self._internal: tuple[Peer, str] | None = None

    def trust_internal(self, own_address: Peer, token: str) -> None:
        """Trust INVITEs from our own SIP address that carry *token* (calls we place to
        our own application URIs) as if they came from a gateway."""
        self._internal = (own_address, token)

    def _is_internal(self, invite: Request, peer: Peer) -> bool:
        if self._internal is None:
            return False
        own, token = self._internal
        presented = invite.headers.get("X-Telephony-Internal") or ""
        same_place = (peer.host, peer.port) == (own.host, own.port)
        return same_place and hmac.compare_digest(presented.encode(), token.encode())

    async def _find_endpoint(self, username: str) -> Endpoint | None:
        """An endpoint by username through the credentials cache: most calls are to
        numbers, and a miss is cached too, so routing needs no database read."""
        found = self.auth.credentials.lookup(username)
        if isinstance(found, Deferred):
            return await found
        return found

    def challenges_at_once(self, invite: Request, peer: Peer) -> bool:
        """Whether :meth:`route` will answer *invite* with a stateless challenge and
        nothing else: it carries no credentials and comes from no trusted source.
        Such an INVITE must get no 100 Trying first (see ``CallManager``)."""
        return (
            invite.headers.get("Proxy-Authorization") is None
            and isinstance(invite.uri, SipURI)
            and self.gateway_for(peer) is None
            and not self._is_internal(invite, peer)
        )

    def gateway_for(self, peer: Peer) -> Gateway | None:
        """The gateway *peer* is, if any."""
        return self.gateways.match(peer)

    async def route(self, invite: Request, txn: ServerTransactionHandle) -> Route | None:
        """The route of *invite*; None when it was answered with a challenge."""
        ruri = invite.uri
        if not isinstance(ruri, SipURI):
            return _reject(invite, 416, "Unsupported URI Scheme")
        user = ruri.user_unescaped or ""
        from_ = invite.from_
        caller_name = from_.display or ""
        from_user = from_.uri.user_unescaped if isinstance(from_.uri, SipURI) else None
        if self.gateway_for(txn.peer) is not None or self._is_internal(invite, txn.peer):
            to_user = invite.to.uri.user_unescaped if isinstance(invite.to.uri, SipURI) else None
            return await self._from_gateway(invite, user, from_user or "", caller_name, to_user)
        endpoint = await self.auth.check(invite, txn, proxy=True)
        if endpoint is None:
            return None
        if from_user != endpoint.username:
            return _reject(invite, 403, "Forbidden (From is not the authenticated endpoint)")
        base = Route(
            RouteKind.APPLICATION,
            caller=endpoint.username,
            caller_name=caller_name,
            source="endpoint",
        )
        if user.startswith(APP_PREFIX):
            return await self._app_uri(invite, user, base)
        called_endpoint = await self._find_endpoint(user) if user else None
        called = (
            f"sip:{user}@{self.domain}" if called_endpoint is not None else normalize_number(user)
        )
        app = None
        if endpoint.app_id is not None:
            app = await self.directory.find_application(endpoint.app_id)
        if app is None:
            app = await self.directory.default_application("default_endpoint_app")
        if app is not None:
            return attrs.evolve(base, called=called, application=app)
        if called_endpoint is not None:
            return attrs.evolve(base, kind=RouteKind.ENDPOINT, called=called, endpoint=user)
        return _reject(invite, 403, "Forbidden (no application for this endpoint)")

    async def _from_gateway(
        self, invite: Request, user: str, caller: str, caller_name: str, to_user: str | None = None
    ) -> Route:
        base = Route(
            RouteKind.APPLICATION,
            caller=normalize_number(caller) or caller,
            caller_name=caller_name,
            source="gateway",
        )
        if user.startswith(APP_PREFIX):
            return await self._app_uri(invite, user, base)
        digits = normalize_number(user)
        number = await self.directory.find_number(digits) if digits.isdigit() else None
        if number is None and to_user and to_user != user:
            # A provider we register with sends calls to the contact we registered
            # (its Request-URI user is our trunk account) and names the DID in To.
            to_digits = normalize_number(to_user)
            number = await self.directory.find_number(to_digits) if to_digits.isdigit() else None
            if number is not None:
                digits = to_digits
        if number is not None:
            app = await self.directory.find_application(number.app_id) if number.app_id else None
            if app is None:
                app = await self.directory.default_application("default_number_app")
            if app is None:
                return _reject(
                    invite, 480, "Temporarily Unavailable (no application for this number)"
                )
            return attrs.evolve(base, called=digits, application=app)
        if user and await self._find_endpoint(user) is not None:
            return attrs.evolve(
                base, kind=RouteKind.ENDPOINT, called=f"sip:{user}@{self.domain}", endpoint=user
            )
        return _reject(invite, 404, "Not Found (not a number or endpoint of ours)")

    async def _app_uri(self, invite: Request, user: str, base: Route) -> Route:
        app_id = user[len(APP_PREFIX) :]
        app = await self.directory.find_application(app_id) if app_id.isdigit() else None
        if app is None:
            return _reject(invite, 404, "Not Found (no such application)")
        return attrs.evolve(base, called=f"sip:{user}@{self.domain}", application=app)


def _reject(invite: Request, status: int, reason: str) -> Route:
    log.info(
        "{status} to INVITE {ruri} (Call-ID {call_id}): {reason}",
        status=status,
        ruri=str(invite.uri),
        call_id=invite.call_id,
        reason=reason,
    )
    return Route(RouteKind.REJECT, status=status, reason=reason)
