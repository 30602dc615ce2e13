"""Dialogs (RFC 3261 §12): identifiers, route sets, CSeq, and in-dialog requests.

Sans-IO.  A :class:`Dialog` is created on the UAS side from an INVITE and our 2xx
(or 1xx with a To tag: early dialog), and on the UAC side from our INVITE and the
peer's response.  It builds in-dialog requests (BYE, re-INVITE, UPDATE, INFO, the ACK
of a 2xx) with the right Request-URI, Route set, tags and CSeq, and checks the CSeq
order of requests from the peer (§12.2.2: a lower one gets 500).

Only loose routing (``;lr``) is implemented; a strict-routing route set (RFC 2543
proxies) is used as if it were loose.
"""

from __future__ import annotations

import secrets

import attrs

from telephony.randompool import token_hex
from telephony.sip.errors import SipProtocolError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.transaction import MAGIC_COOKIE
from telephony.sip.uri import URI, NameAddr, parse_name_addr

__all__ = ("Dialog", "DialogId")


@attrs.frozen
class DialogId:
    """Call-ID, local tag, remote tag: what identifies a dialog (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str


def _contact_target(message: Request | Response) -> URI | None:
    values = message.headers.values("Contact")
    if not values:
        return None
    return parse_name_addr(values[0]).uri


@attrs.define
class Dialog:
    """One side's view of a dialog.

    :ivar local: our From (UAC) or To (UAS) value, with our tag.
    :ivar remote: the peer's, with its tag (None while early without a tag).
    :ivar remote_target: where in-dialog requests are addressed (the peer's Contact).
    :ivar route_set: Route header values for in-dialog requests, in order.
    :ivar local_contact: the Contact we put in our requests and responses.
    """

    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: URI
    route_set: list[str]
    local_cseq: int
    remote_cseq: int | None
    local_contact: str
    via_host: str
    via_transport: str = "UDP"
    confirmed: bool = False

    @property
    def id(self) -> DialogId:
        """The dialog's identifiers."""
        return DialogId(self.call_id, self.local.tag or "", self.remote.tag or "")

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_contact: str, via_host: str) -> Dialog:
        """Our side of a dialog the peer's INVITE creates (§12.1.1)."""
        target = _contact_target(invite)
        if target is None:
            raise SipProtocolError("INVITE without Contact", 400)
        return cls(
            call_id=invite.call_id,
            local=invite.to.with_param("tag", local_tag),
            remote=invite.from_,
            remote_target=target,
            route_set=invite.headers.values("Record-Route"),
            local_cseq=secrets.randbelow(2**20) + 1,
            remote_cseq=invite.cseq.number,
            local_contact=local_contact,
            via_host=via_host,
            via_transport=invite.top_via.transport,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, via_host: str) -> Dialog:
        """Our side of a dialog our INVITE created, from a response with a To tag (§12.1.2)."""
        target = _contact_target(response) or invite.uri
        return cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            remote_target=target,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_cseq=invite.cseq.number,
            remote_cseq=None,
            local_contact=invite.headers.get("Contact") or "",
            via_host=via_host,
            via_transport=invite.top_via.transport,
            confirmed=response.status >= 200,
        )

    # -- the peer's requests ------------------------------------------------

    def check_remote_request(self, request: Request) -> None:
        """Enforce CSeq order on a request from the peer; update the target on re-INVITE.

        :raises SipProtocolError: (500) a lower CSeq than the last one seen.
        """
        number = request.cseq.number
        if self.remote_cseq is not None and number <= self.remote_cseq and request.method != "ACK":
            raise SipProtocolError("CSeq out of order", 500)
        if request.method != "ACK":
            self.remote_cseq = number
        if request.method in ("INVITE", "UPDATE"):
            target = _contact_target(request)
            if target is not None:
                self.remote_target = target

    def matches(self, message: Request | Response, *, we_are_from: bool) -> bool:
        """Whether *message* belongs to this dialog (Call-ID and both tags)."""
        if message.call_id != self.call_id:
            return False
        ours = message.from_.tag if we_are_from else message.to.tag
        theirs = message.to.tag if we_are_from else message.from_.tag
        return ours == self.local.tag and theirs == self.remote.tag

    # -- our requests ---------------------------------------------------------

    def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Headers | None = None,
    ) -> Request:
        """A new in-dialog request (§12.2.1.1), with the next CSeq (not for ACK)."""
        if method == "ACK":
            raise SipProtocolError("use ack() for the ACK of a 2xx", 500)
        self.local_cseq += 1
        return self._build(method, self.local_cseq, body, content_type, extra)

    def ack(
        self, invite_cseq: int, *, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for a 2xx to our INVITE (§13.2.2.4): the INVITE's CSeq number, new branch."""
        return self._build("ACK", invite_cseq, body, content_type, None)

    def _build(
        self, method: str, cseq: int, body: bytes, content_type: str | None, extra: Headers | None
    ) -> Request:
        headers = Headers()
        branch = MAGIC_COOKIE + token_hex(8)
        headers.add("Via", f"SIP/2.0/{self.via_transport} {self.via_host};branch={branch};rport")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE", "ACK") and self.local_contact:
            headers.add("Contact", self.local_contact)
        for name, value in extra or ():
            headers.add(name, value)
        if content_type and body:
            headers.add("Content-Type", content_type)
        return Request(method, self.remote_target, headers, body)
