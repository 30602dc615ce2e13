"""The hops of a call to a number: each gateway in turn, each of its located addresses.

A gateway given by IP address is one hop.  One given by name is located when its
turn comes (RFC 3263: SRV, then A/AAAA), and each address found is a hop, in the
order DNS gives them (SRV priority and weight): that is the failover RFC 3263 §4.3
describes inside one gateway, and the operator's list gives the order across
gateways.  A gateway whose name cannot be located is skipped, and said why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred

from telephony.sip.peer import Peer
from telephony.sip.uri import NameAddr, SipURI
from telephony.trunks.gateway import Gateway
from telephony.trunks.hops import Hop, SipCredentials

__all__ = ("MAX_HOPS", "MAX_HOPS_PER_GATEWAY", "GatewayPlan", "Locator")

#: Addresses of one gateway tried before the next gateway [ours]: SRV sets are
#: usually two or three servers; a longer list only delays the next gateway.
MAX_HOPS_PER_GATEWAY = 3
#: Hops tried for one call in all [ours]: with the default 4 s response timeout a
#: caller waits at most about half a minute, below Timer B, before the call fails.
MAX_HOPS = 8


class Locator(Protocol):
    """Finds the addresses of a SIP server (``telephony.trunks.resolver.SipResolver``)."""

    def locate(
        self, host: str, port: int | None, transport: str | None
    ) -> Deferred[tuple[Peer, ...]]:
        """The server's addresses in the order to try them; fails with a reason."""


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class GatewayPlan:
    """The hops of one call to *digits* through *gateways*, in order.

    :param caller_id: the call's caller ID (each gateway may rewrite it).
    :param our_domain: the From host for gateways without credentials.
    :param credentials: the destination's own credentials (``<Number
        sipAuthUsername>``); they replace the gateway's.
    """

    def __init__(
        self,
        *,
        gateways: Sequence[Gateway],
        locator: Locator,
        digits: str,
        caller_id: str,
        caller_name: str | None,
        our_domain: str,
        credentials: SipCredentials | None = None,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self.gateways = list(gateways)
        self.locator = locator
        self.digits = digits
        self.caller_id = caller_id
        self.caller_name = caller_name
        self.our_domain = our_domain
        self.credentials = credentials
        self.max_hops = max_hops
        self._queue: list[Hop] = []
        self._next_gateway = 0
        self._given = 0
        self._unreached: list[str] = []

    def first_request_uri(self) -> SipURI:
        """The Request-URI the first gateway will get (to name the call before DNS)."""
        return self._request_uri(self.gateways[0])

    def next_hop(self) -> Deferred[Hop | None]:
        return Deferred.fromCoroutine(self._next())

    def describe_failure(self) -> str:
        return "; ".join(self._unreached)

    async def _next(self) -> Hop | None:
        while self._given < self.max_hops:
            if self._queue:
                self._given += 1
                return self._queue.pop(0)
            if self._next_gateway >= len(self.gateways):
                return None
            gateway = self.gateways[self._next_gateway]
            self._next_gateway += 1
            if gateway.is_ip:
                peers: tuple[Peer, ...] = (
                    Peer(gateway.transport, gateway.host, gateway.port or 5060),
                )
            else:
                try:
                    peers = await self.locator.locate(gateway.host, gateway.port, gateway.transport)
                except CancelledError:
                    raise  # the leg ended while DNS was asked
                except Exception as exc:
                    self._unreached.append(f"{gateway.label}: {exc}")
                    continue
            self._queue = [self._hop(gateway, peer) for peer in peers[:MAX_HOPS_PER_GATEWAY]]
            if not self._queue:
                self._unreached.append(f"{gateway.label}: no address")
        return None

    def _request_uri(self, gateway: Gateway) -> SipURI:
        return SipURI("sip", gateway.dialed(self.digits), _bracketed(gateway.host), gateway.port)

    def _hop(self, gateway: Gateway, peer: Peer) -> Hop:
        credentials = self.credentials
        if credentials is None and gateway.username is not None and gateway.password is not None:
            credentials = SipCredentials(gateway.username, gateway.password, gateway.realm)
        from_host = gateway.sip_domain if credentials is not None else self.our_domain
        from_uri = SipURI(
            "sip", gateway.caller(self.caller_id) or "anonymous", _bracketed(from_host)
        )
        request_uri = self._request_uri(gateway)
        return Hop(
            peer=peer,
            request_uri=request_uri,
            from_=NameAddr(from_uri, self.caller_name or None),
            to=NameAddr(request_uri),
            credentials=credentials,
            response_timeout=gateway.response_timeout,
            label=gateway.label,
        )


class UriPlan:
    """The hops of a call to a SIP URI on another server: its host's located addresses.

    An IP literal is one hop; a name is located as RFC 3263 says (SRV, then A/AAAA),
    and each address is tried in turn on 408, 5xx or Timer B.
    """

    def __init__(
        self,
        *,
        uri: SipURI,
        locator: Locator,
        from_: NameAddr,
        to: NameAddr,
        credentials: SipCredentials | None = None,
    ) -> None:
        self.uri = uri
        self.locator = locator
        self.from_ = from_
        self.to = to
        self.credentials = credentials
        self._queue: list[Hop] | None = None
        self._unreached = ""

    def next_hop(self) -> Deferred[Hop | None]:
        return Deferred.fromCoroutine(self._next())

    def describe_failure(self) -> str:
        return self._unreached

    async def _next(self) -> Hop | None:
        if self._queue is None:
            transport = self.uri.transport if self.uri.transport in ("udp", "tcp") else None
            try:
                peers = await self.locator.locate(
                    self.uri.host_unbracketed, self.uri.port, transport
                )
            except CancelledError:
                raise
            except Exception as exc:
                self._unreached = f"{self.uri.host_unbracketed}: {exc}"
                peers = ()
            self._queue = [
                Hop(peer, self.uri, self.from_, self.to, self.credentials)
                for peer in peers[:MAX_HOPS_PER_GATEWAY]
            ]
        return self._queue.pop(0) if self._queue else None
