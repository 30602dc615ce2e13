"""Where a request came from, written into its Via, and where its responses go.

RFC 3261 §18.2.1 adds ``received`` to the top Via when the sent-by host is not the
packet's source; RFC 3581 adds ``rport`` (filled with the source port) when the
client asked for it.  §18.2.2 (with RFC 3581 §4) then sends responses back to that
address: phones behind NAT are answered where their packets came from.  On a
connection-oriented transport the response goes back on the request's connection
while it is open.  Pure functions over messages and :class:`~telephony.sip.peer.Peer`.
"""

from __future__ import annotations

import ipaddress

from telephony.sip._grammar import split_commas
from telephony.sip.errors import SipParseError
from telephony.sip.headers import Via
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer

__all__ = ("response_destination", "stamp_via")


def stamp_via(request: Request, peer: Peer) -> None:
    """Add ``received`` (and fill ``rport``) to the top Via, as §18.2.1 and RFC 3581 say."""
    via = request.top_via
    params = via.params
    names = [key.lower() for key, _ in params]
    rport = "rport" in names
    if not rport and not _sent_by_differs(via, peer.host):
        return
    port = str(peer.port)
    updates = {"rport": port, "received": peer.host} if rport else {"received": peer.host}
    first = request.headers.get("Via") or ""
    if "," in first:  # several Via values on the top line: rewrite the first one
        values = split_commas(first)
        if not values:  # "Via: ," with the top Via on a later line (found by fuzzing)
            raise SipParseError("Bad Via header: an empty value")
        stamped = via.with_params(**updates)
        values[0] = str(stamped)
        text = ", ".join(values)
    elif "received" not in names and (
        not rport
        or (
            names.index("rport") == len(names) - 1  # the one rport, last ...
            and params[-1] == ("rport", None)  # ... a bare flag ...
            and first.endswith(";rport")  # ... written last
        )
    ):
        # Nearly every phone: stamping only appends to the text.  Done to the text, it
        # keeps the client's spelling (formatting the whole Via again was a third of
        # the stamping's cost), and the parsed Via is built as with_params would.
        if rport:
            text = f"{first}={port};received={peer.host}"
            kept = params[:-1]
        else:
            text = f"{first};received={peer.host}"
            kept = params
        stamped = Via(via.transport, via.host, via.port, (*kept, *updates.items()), via.version)
    else:
        stamped = via.with_params(**updates)
        text = str(stamped)
    request.headers.replace_first("Via", text)
    request.restamp_top_via(stamped)


def _sent_by_differs(via: Via, host: str) -> bool:
    if via.host == host:
        return False
    sent_by = via.host.strip("[]")
    try:
        return ipaddress.ip_address(sent_by) != ipaddress.ip_address(host)
    except ValueError:
        return True


def response_destination(response: Response, request_peer: Peer) -> Peer:
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
    if host == request_peer.host and port == request_peer.port and request_peer.connection is None:
        return request_peer  # the usual answer to a UDP request: where it came from
    return Peer(request_peer.transport, host, port, None)
