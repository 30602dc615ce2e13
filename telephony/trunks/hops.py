"""Where an outgoing leg's INVITE may go: hops, and plans that hand them out in order.

A :class:`Hop` is one place to send the INVITE (next-hop address, Request-URI, From,
To, credentials).  A plan yields hops one at a time, as Deferreds, because finding the
next one may need DNS (a gateway given by name).  An endpoint or a dialed SIP URI is a
:class:`FixedPlan` of one hop; numbers go through the gateways' plan
(:mod:`telephony.trunks.plan`), which fails over from one gateway to the next.
"""

from __future__ import annotations

from typing import Protocol

import attrs
from twisted.internet.defer import Deferred, succeed

from telephony.sip.peer import Peer
from telephony.sip.uri import NameAddr, SipURI

__all__ = ("FixedPlan", "Hop", "HopPlan", "SipCredentials")


@attrs.frozen
class SipCredentials:
    """Digest credentials for a destination that challenges (401/407).

    :ivar realm: answer only this realm; None: any realm the destination names.
    """

    username: str
    password: str = attrs.field(repr=False)
    realm: str | None = None


@attrs.frozen
class Hop:
    """One destination for an INVITE.

    :ivar from_: our From, without its tag (the leg adds its own).
    :ivar response_timeout: seconds to wait for any response before giving this hop
        up for the next; None waits for Timer B (an endpoint, a SIP URI).
    :ivar label: how logs name the hop (a gateway's name; "" for others).
    """

    peer: Peer
    request_uri: SipURI
    from_: NameAddr
    to: NameAddr
    credentials: SipCredentials | None = None
    response_timeout: float | None = None
    label: str = ""


class HopPlan(Protocol):
    """Hands out an outgoing leg's hops in the order they should be tried."""

    def next_hop(self) -> Deferred[Hop | None]:
        """The next hop to try, or None when there is none left.

        Cancelling the Deferred (the leg ended while DNS was asked) stops the search.
        """

    def describe_failure(self) -> str:
        """What went wrong with hops that were never tried (DNS), for logs; "" if nothing."""


@attrs.define
class FixedPlan:
    """A plan of exactly one hop."""

    hop: Hop
    _given: bool = False

    def next_hop(self) -> Deferred[Hop | None]:
        if self._given:
            return succeed(None)
        self._given = True
        return succeed(self.hop)

    def describe_failure(self) -> str:
        return ""
