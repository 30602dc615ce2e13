"""Where SIP messages come from and go to, and what the stack needs of a transport."""

from __future__ import annotations

from typing import Any

import attrs
from zope.interface import Interface

__all__ = ("ITransport", "Peer")


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
