"""Typed SIP errors, each with the status a server should answer with.

As in h11, an error says whose fault it is: :class:`SipParseError` and
:class:`SipProtocolError` are the peer's (a 4xx/5xx can be sent back), while
:class:`SipStateError` is ours (a transaction was driven wrongly: a bug).
"""

from __future__ import annotations

__all__ = ("SipError", "SipParseError", "SipProtocolError", "SipStateError")


class SipError(Exception):
    """Base of the SIP stack's errors.

    :ivar status_hint: the response code that reports this error to the peer.
    :ivar reason: the reason phrase for that response (one line, ASCII).
    """

    status_hint: int = 500

    def __init__(self, reason: str, status_hint: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason.replace("\r", " ").replace("\n", " ")[:120]
        if status_hint is not None:
            self.status_hint = status_hint


class SipParseError(SipError, ValueError):
    """Bytes that are not a well-formed SIP message (RFC 3261 §7, §25).

    :ivar request: the request as far as it could be read (start line and the headers
        a response copies), so that a 400 can still be sent; None otherwise.
    """

    status_hint = 400
    request: object | None = None


class SipProtocolError(SipError):
    """A well-formed message that breaks a protocol rule (bad CSeq order, say)."""

    status_hint = 400


class SipStateError(SipError):
    """A transaction got an input its state does not allow: a local bug."""

    status_hint = 500
