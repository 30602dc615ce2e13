"""The 2xx a UAS resends until its ACK comes (RFC 3261 §13.3.1.4), as a schedule.

An INVITE server transaction ends when it sends a 2xx (§17.2.1): from then on the
2xx is the dialog's to deliver, not the transaction's.  The UAS core resends it at
T1, then at intervals doubling up to T2 (0.5, 1, 2, 4, 4, 4… s with the defaults),
until the ACK arrives; if none has come 64·T1 after the first send (32 s), it gives
up and ends the session with a BYE.

This module only says *when*: each step is an absolute time on the caller's clock,
computed from the first send, so that a late timer does not push the later steps
back.  Sending, the timers themselves and the ACK are the caller's.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ("Reliable2xx", "Step", "StepKind")


class StepKind(enum.Enum):
    """What to do when a step is due."""

    #: Send the 2xx again.
    RESEND = "resend"
    #: 64·T1 and still no ACK: stop resending and end the dialog (a BYE).
    GIVE_UP = "give-up"


@attrs.frozen
class Step:
    """One point of the schedule.

    :ivar number: 1 for the first retransmission, counting up; the give-up step
        comes after the last retransmission.
    :ivar at: when it is due, seconds, on the clock that ``sent_at`` was read from.
    :ivar kind: resend, or give up.
    """

    number: int
    at: float
    kind: StepKind


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: must be a positive number of seconds, not {value!r}")


@attrs.frozen
class Reliable2xx:
    """The retransmission schedule of one 2xx, from its first send.

    :ivar sent_at: when the 2xx was first sent, seconds.
    :ivar t1: RFC 3261 T1, the round-trip estimate, seconds (0.5 by default).
    :ivar t2: RFC 3261 T2, the longest interval between retransmissions, seconds.
    :raises ValueError: T1 or T2 not positive, or T2 below T1.
    """

    sent_at: float
    t1: float = attrs.field(default=0.5, validator=_positive)
    t2: float = attrs.field(default=4.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.t2 < self.t1:
            raise ValueError(f"t2: must not be below t1 ({self.t1}), not {self.t2}")

    @property
    def give_up_at(self) -> float:
        """When to stop waiting for the ACK: 64·T1 after the first send."""
        return self.sent_at + 64 * self.t1

    def step(self, number: int) -> Step:
        """The *number*-th step (from 1): a retransmission, or the give-up once the
        retransmissions would reach 64·T1.

        :raises ValueError: *number* below 1.
        """
        if number < 1:
            raise ValueError(f"number: steps count from 1, not {number}")
        offset = 0.0
        interval = self.t1
        limit = 64 * self.t1
        for taken in range(1, number + 1):
            offset += interval
            if offset >= limit:
                return Step(taken, self.give_up_at, StepKind.GIVE_UP)
            interval = min(2 * interval, self.t2)
        return Step(number, self.sent_at + offset, StepKind.RESEND)

    def first(self) -> Step:
        """The first step: a retransmission T1 after the first send."""
        return self.step(1)

    def after(self, step: Step) -> Step | None:
        """The step that follows *step*; None after the give-up."""
        if step.kind is StepKind.GIVE_UP:
            return None
        return self.step(step.number + 1)

    def next_after(self, now: float) -> Step | None:
        """The first step due strictly after *now* (seconds); None once the give-up
        is past."""
        step: Step | None = self.first()
        while step is not None and step.at <= now:
            step = self.after(step)
        return step
