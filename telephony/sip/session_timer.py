"""Session timers (RFC 4028): negotiation and the schedule, sans-IO.

A session is refreshed by a re-INVITE or UPDATE from the *refresher* every half
interval; if no refresh arrives, the other side ends it with a BYE
``min(32, interval/3)`` seconds before it would expire (§10).  Defaults follow the
RFC: 1800 s asked for, Min-SE 90 s, the minimum the RFC allows.
"""

from __future__ import annotations

import attrs

from telephony.sip.errors import SipProtocolError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response

__all__ = (
    "DEFAULT_INTERVAL",
    "MIN_SE",
    "SessionTimer",
    "TooSmallError",
    "negotiate_as_uas",
    "offer_as_uac",
    "parse_session_expires",
    "result_as_uac",
)

DEFAULT_INTERVAL = 1800
MIN_SE = 90


class TooSmallError(SipProtocolError):
    """The peer asked for an interval below our Min-SE: answer 422 with Min-SE."""

    def __init__(self, min_se: int) -> None:
        super().__init__("Session Interval Too Small", 422)
        self.min_se = min_se


@attrs.frozen
class SessionTimer:
    """A negotiated session timer, seen from our side.

    :ivar interval: seconds the session lasts without a refresh.
    :ivar we_refresh: whether we send the refreshes (else we watch for them).
    """

    interval: int
    refresher: str
    we_refresh: bool

    @property
    def refresh_after(self) -> float:
        """Seconds after a (re)start at which the refresher refreshes (half the interval)."""
        return self.interval / 2

    @property
    def expire_after(self) -> float:
        """Seconds after a (re)start at which the other side gives up and sends BYE."""
        return self.interval - min(32.0, self.interval / 3)

    def header(self) -> str:
        """The Session-Expires value that states this timer."""
        return f"{self.interval};refresher={self.refresher}"


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """``1800;refresher=uac`` → (1800, "uac").  :raises SipProtocolError: malformed."""
    delta, _, params = value.partition(";")
    delta = delta.strip()
    if not (delta.isascii() and delta.isdigit()) or len(delta) > 9:
        raise SipProtocolError("Bad Session-Expires", 400)
    refresher = None
    for param in params.split(";"):
        name, _, val = param.strip().partition("=")
        if name.lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = val.strip().lower()
    return int(delta), refresher


def _supports_timer(message: Request | Response) -> bool:
    tags = message.headers.values("Supported") + message.headers.values("Require")
    return any(t.lower() == "timer" for t in tags)


def negotiate_as_uas(
    invite: Request, *, min_se: int = MIN_SE, default: int = DEFAULT_INTERVAL
) -> tuple[SessionTimer, Headers]:
    """Decide the session timer for an incoming INVITE (or UPDATE), as its UAS (§9).

    Returns the timer and the headers to put in the 2xx.  With no Session-Expires from
    the peer we still run one, as refresher, so that a dead peer's call ends.

    :raises TooSmallError: the peer supports timers and asked for less than Min-SE.
    """
    supported = _supports_timer(invite)
    headers = Headers()
    value = invite.headers.get("Session-Expires")
    if value is None:
        timer = SessionTimer(default, "uas", True)
    else:
        interval, refresher = parse_session_expires(value)
        if interval < min_se:
            if supported:
                raise TooSmallError(min_se)
            interval = min_se  # a proxy may raise it; so may we when 422 is not allowed
        if refresher is None:
            refresher = "uac" if supported else "uas"
        if refresher == "uac" and not supported:
            refresher = "uas"
        timer = SessionTimer(interval, refresher, refresher == "uas")
    headers.add("Session-Expires", timer.header())
    if supported:
        headers.add("Require", "timer")
    return timer, headers


def offer_as_uac(*, interval: int = DEFAULT_INTERVAL, min_se: int = MIN_SE) -> Headers:
    """Headers for an INVITE we send: we support timers and ask for *interval*."""
    return Headers(
        [
            ("Supported", "timer"),
            ("Session-Expires", str(interval)),
            ("Min-SE", str(min_se)),
        ]
    )


def result_as_uac(response: Response, *, asked: int = DEFAULT_INTERVAL) -> SessionTimer:
    """The timer a 2xx to our INVITE settled on (§7.2); we refresh if the peer did not say.

    A peer that ignores timers returns no Session-Expires: we then refresh ourselves
    at the interval we asked for, so a dead peer's call still ends.
    """
    value = response.headers.get("Session-Expires")
    if value is None:
        return SessionTimer(asked, "uac", True)
    interval, refresher = parse_session_expires(value)
    refresher = refresher or "uac"
    return SessionTimer(interval, refresher, refresher == "uac")
