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
