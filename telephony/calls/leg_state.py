"""A leg's life as a table: its states, the events it hears, and where each is legal.

A leg is one INVITE dialog usage (RFC 5057), seen from our side: as UAS for a call
we received, as UAC for one we placed.  Every event — something the call asks of
the leg (ring, answer, hang up) or something its peer sends (a response, a CANCEL,
an in-dialog request) — is acted on only in the states listed for it in
:data:`ACCEPTS`; in any other state it is a no-op, as a hangup is after the end.
Which state may follow which is :data:`TRANSITIONS`.  Both tables are read by
:class:`~telephony.calls.leg.Leg`; keeping them here puts every rule in one place
(the shape of h11's ``_state.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ("ACCEPTS", "TRANSITIONS", "LegEvent", "LegState", "Role", "accepts", "may_move")


class Role(enum.StrEnum):
    """Which side of the INVITE we are."""

    #: We received the INVITE (the caller's leg).
    UAS = "uas"
    #: We sent it (a Dial's B leg, an API call).
    UAC = "uac"


class LegState(enum.Enum):
    """Where a leg is in its life."""

    NEW = "new"
    RINGING = "ringing"
    EARLY = "early-media"
    ANSWERED = "answered"
    ENDED = "ended"


class LegEvent(enum.Enum):
    """What a leg can be asked, or told, to do."""

    #: Send 180 Ringing (UAS).
    RING = "ring"
    #: Send 183 with our SDP answer: early media (UAS).
    PRE_ANSWER = "pre-answer"
    #: Send the 200 OK (UAS).
    ANSWER = "answer"
    #: Send a final refusal (UAS).
    REJECT = "reject"
    #: The caller's CANCEL arrived (UAS).
    CANCELLED = "cancelled"
    #: The ACK of our 2xx arrived (UAS).
    ACK = "ack"
    #: Send our INVITE (UAC).
    START = "start"
    #: A 1xx to our INVITE (UAC).
    PROVISIONAL = "provisional"
    #: The first 2xx to our INVITE (UAC).
    PEER_ANSWERED = "peer-answered"
    #: A 2xx once answered: a retransmission, to be ACKed again (UAC).
    RETRANSMITTED_2XX = "retransmitted-2xx"
    #: A 3xx to 6xx final response to our INVITE, or every hop failed (UAC).
    FAILED = "failed"
    #: Stop ringing: CANCEL (UAC).
    CANCEL = "cancel"
    #: A request inside the dialog from the peer: BYE, re-INVITE, UPDATE, INFO…
    PEER_REQUEST = "peer-request"
    #: Send a re-INVITE: a session refresh, hold or resume.
    REINVITE = "reinvite"
    #: End the leg whatever its state: BYE, reject or CANCEL.
    HANGUP = "hangup"


_S = LegState
_BEFORE_ANSWER = frozenset({_S.NEW, _S.RINGING, _S.EARLY})
_LIVE = frozenset({*_BEFORE_ANSWER, _S.ANSWERED})
_ANSWERED = frozenset({_S.ANSWERED})

#: The states in which each event is acted on, by role; elsewhere it is a no-op.
#: A (role, event) pair missing from the table never happens to that role.
ACCEPTS: Mapping[tuple[Role, LegEvent], frozenset[LegState]] = {
    (Role.UAS, LegEvent.RING): frozenset({_S.NEW}),
    (Role.UAS, LegEvent.PRE_ANSWER): frozenset({_S.NEW, _S.RINGING}),
    (Role.UAS, LegEvent.ANSWER): _BEFORE_ANSWER,
    (Role.UAS, LegEvent.REJECT): _BEFORE_ANSWER,
    (Role.UAS, LegEvent.CANCELLED): _BEFORE_ANSWER,
    # The ACK is awaited from the answer on; one that comes after a BYE is harmless.
    (Role.UAS, LegEvent.ACK): frozenset({_S.ANSWERED, _S.ENDED}),
    (Role.UAC, LegEvent.START): frozenset({_S.NEW}),
    (Role.UAC, LegEvent.PROVISIONAL): _BEFORE_ANSWER,
    (Role.UAC, LegEvent.PEER_ANSWERED): _BEFORE_ANSWER,
    (Role.UAC, LegEvent.RETRANSMITTED_2XX): _ANSWERED,
    (Role.UAC, LegEvent.FAILED): _BEFORE_ANSWER,
    (Role.UAC, LegEvent.CANCEL): _BEFORE_ANSWER,
    **{(role, LegEvent.PEER_REQUEST): _LIVE for role in Role},
    **{(role, LegEvent.REINVITE): _ANSWERED for role in Role},
    **{(role, LegEvent.HANGUP): _LIVE for role in Role},
}

#: The states each state may move to.  A UAC's leg goes back from early media to
#: ringing when a 180 without SDP follows a 183 (the far end switched its tone off).
TRANSITIONS: Mapping[LegState, frozenset[LegState]] = {
    _S.NEW: frozenset({_S.RINGING, _S.EARLY, _S.ANSWERED, _S.ENDED}),
    _S.RINGING: frozenset({_S.EARLY, _S.ANSWERED, _S.ENDED}),
    _S.EARLY: frozenset({_S.RINGING, _S.ANSWERED, _S.ENDED}),
    _S.ANSWERED: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
}


def accepts(role: Role, event: LegEvent, state: LegState) -> bool:
    """Whether a *role* leg in *state* acts on *event* (else it ignores it)."""
    return state in ACCEPTS.get((role, event), frozenset())


def may_move(old: LegState, new: LegState) -> bool:
    """Whether a leg in state *old* may move to *new*."""
    return new in TRANSITIONS[old]
