"""Non-INVITE requests already answered: their final response, kept for Timer J.

A non-INVITE server transaction on UDP stays *Completed* for Timer J (64·T1, 32 s)
only to answer a retransmitted request with the same final response (RFC 3261
§17.2.2).  Under a registration storm nearly every live transaction is in that state:
at 800 REGISTERs a second (each with its 401 challenge) about 51,000 of them.  A full
transaction entry (the entry, its timers dict, a timer handle and its callback) costs
about 1.7 KiB there; this table keeps only what a retransmission needs, the response's
bytes and where they went, under the transaction key, with one deadline queue for all
of them: about 1 KiB each, 40 MiB less at that rate.

Every entry is held for the same time, so the deadlines are added in order and the
queue's head is always the next to expire.  The table is sans-IO: it is told the time
and says when it next needs to be told it (:meth:`next_deadline`); whoever owns the
clock calls :meth:`expire` then.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ("AnsweredRequests",)

_Destination = TypeVar("_Destination")


class AnsweredRequests(Generic[_Destination]):
    """Final responses by transaction key, each forgotten *hold* seconds after it is added.

    :param hold: seconds an answer is kept (Timer J).
    """

    def __init__(self, hold: float) -> None:
        self._hold = hold
        self._answers: dict[tuple[str, ...], tuple[bytes, _Destination]] = {}
        self._deadlines: deque[tuple[float, tuple[str, ...]]] = deque()

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: tuple[str, ...]) -> tuple[bytes, _Destination] | None:
        """The answer sent for *key*, with its destination; None if there is none."""
        return self._answers.get(key)

    def add(
        self, key: tuple[str, ...], data: bytes, destination: _Destination, now: float
    ) -> float:
        """Keep *data*, sent to *destination* at *now*, as the answer to *key* for *hold*
        seconds; returns when it is to be forgotten."""
        deadline = now + self._hold
        self._answers[key] = (data, destination)
        self._deadlines.append((deadline, key))
        return deadline

    def next_deadline(self) -> float | None:
        """When the oldest answer is to be forgotten; None when none is kept."""
        return self._deadlines[0][0] if self._deadlines else None

    def expire(self, now: float) -> None:
        """Forget every answer whose time is up at *now*."""
        deadlines, answers = self._deadlines, self._answers
        while deadlines and deadlines[0][0] <= now:
            answers.pop(deadlines.popleft()[1], None)

    def clear(self) -> None:
        """Forget every answer (at service stop)."""
        self._answers.clear()
        self._deadlines.clear()
