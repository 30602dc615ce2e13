"""Which gateway a request comes from, by its source address.

A gateway given by IP address is known at once.  One given by name is trusted at
the addresses it was last located at (refreshed by the trunks service as DNS
records expire), so an INVITE from a carrier's SRV-listed servers is recognised.
A port is checked only when the operator gave one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from telephony.sip.peer import Peer
from telephony.trunks.gateway import Gateway

__all__ = ("TrustedGateways",)


class TrustedGateways:
    """Source address → gateway."""

    def __init__(self, gateways: Sequence[Gateway]) -> None:
        self.gateways = tuple(gateways)
        #: gateway label → {(host, port or None)} it is trusted at.
        self._at: dict[str, frozenset[tuple[str, int | None]]] = {}
        for gateway in self.gateways:
            if gateway.is_ip:
                self._at[gateway.label] = frozenset({(gateway.host, gateway.port)})

    def located(self, gateway: Gateway, peers: Iterable[Peer]) -> None:
        """*gateway*'s name now stands for *peers* (its last DNS answer)."""
        self._at[gateway.label] = frozenset((p.host, gateway.port and p.port) for p in peers)

    def addresses(self, gateway: Gateway) -> frozenset[tuple[str, int | None]]:
        """Where *gateway* is trusted from: (host, port or None for any port)."""
        return self._at.get(gateway.label, frozenset())

    def match(self, peer: Peer) -> Gateway | None:
        """The gateway *peer* is, if any (the first in the operator's order)."""
        for gateway in self.gateways:
            at = self._at.get(gateway.label, frozenset())
            if (peer.host, None) in at or (peer.host, peer.port) in at:
                return gateway
        return None
