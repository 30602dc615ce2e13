"""Why calls end: one table of causes with Plivo's names, codes and our SIP statuses.

Plivo reports ``HangupCauseName`` and ``HangupCauseCode``; the codes it documents are
used where known (4000 normal hangup, 4010 end of XML); others carry None rather
than an invented number.  ``sip_status`` is what we answer an unanswered caller with
when the call ends for that cause.
"""

from __future__ import annotations

import enum

__all__ = ("Cause", "cause_for_status")


class Cause(enum.Enum):
    """A hangup cause: (name, Plivo code or None, SIP status for an unanswered caller)."""

    NORMAL = ("Normal Hangup", 4000, 480)
    END_OF_XML = ("End Of XML Instructions", 4010, 480)
    BUSY = ("Busy Line", None, 486)
    NO_ANSWER = ("No Answer", None, 480)
    REJECTED = ("Rejected", None, 603)
    ORIGINATOR_CANCEL = ("Cancelled", None, 487)
    NOT_FOUND = ("Unallocated Number", None, 404)
    FAILED = ("Call Failed", None, 503)
    SESSION_TIMEOUT = ("Session Timeout", None, 408)
    ACK_TIMEOUT = ("No ACK Received", None, 408)
    MEDIA_FAILURE = ("Media Negotiation Failed", None, 488)
    NO_APPLICATION = ("No Application", None, 480)
    URL_UNREACHABLE = ("Error Reaching Application URL", None, 480)
    INVALID_XML = ("Invalid XML", None, 480)
    TIME_LIMIT = ("Time Limit Reached", None, 480)
    API_HANGUP = ("API Request", None, 480)
    INTERNAL_ERROR = ("Internal Error", None, 500)
    #: A gateway (or a dialed SIP URI) refused our digest credentials, or challenged
    #: and we have none: Plivo's name and code for it.
    SIP_AUTH_FAILED = ("sip_auth_failed", 4240, 503)
    #: A gateway challenged us and then did not answer the authenticated INVITE.
    SIP_AUTH_TIMEOUT = ("sip_auth_timeout", 4250, 408)
    #: The server stopped without ending the call (killed, crashed, power cut): found
    #: in the live-call journal at the next start.  Plivo documents no such cause; the
    #: name says what happened, where its "Unknown" (0) would hide it.
    SERVER_RESTART = ("Server Restart", None, 500)

    @property
    def cause_name(self) -> str:
        """The name Plivo's callbacks carry."""
        return self.value[0]

    @property
    def code(self) -> int | None:
        """Plivo's numeric code, when it documents one."""
        return self.value[1]

    @property
    def sip_status(self) -> int:
        """The final response an unanswered caller gets for this cause."""
        return self.value[2]

    def reason_header(self, status: int | None = None) -> str:
        """An RFC 3326 ``Reason`` value naming this cause, for the final response
        *status* (default :attr:`sip_status`): ``SIP;cause=480;text="No Answer"``.

        A status alone is often vague (480 for an unreachable answer_url); the text
        tells the caller which cause it was, as the hangup_url does.
        """
        return f'SIP;cause={status or self.sip_status};text="{self.cause_name}"'


def cause_for_status(status: int) -> Cause:
    """The cause a failure response reports (a B leg's, or our own to a caller)."""
    if status in (486, 600):
        return Cause.BUSY
    if status in (408, 480):
        return Cause.NO_ANSWER
    if status in (603, 403):
        return Cause.REJECTED
    if status in (404, 484, 604):
        return Cause.NOT_FOUND
    if status == 487:
        return Cause.ORIGINATOR_CANCEL
    if status == 488:
        return Cause.MEDIA_FAILURE
    return Cause.FAILED
