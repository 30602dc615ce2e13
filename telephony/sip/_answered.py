"""Non-INVITE requests already answered: their final response, kept for Timer J.

A non-INVITE server transaction on UDP stays *Completed* for Timer J (64·T1, 32 s)
only to answer a retransmitted request with the same final response (RFC 3261
§17.2.2).  Under a registration storm nearly every live transaction is in that state:
at 800 REGISTERs a second (each with its 401 challenge) about 51,000 of them.  A full
transaction entry (the entry, its timers dict, a timer handle and its callback) costs
about 1.7 KiB there; this table keeps only what a retransmission needs, the response's
bytes and where they went, under the transaction key, with one deadline queue and one
delayed call for all of them: about 1 KiB each, 40 MiB less at that rate.

Every entry is held for the same time, so the deadlines are added in order and the
queue's head is always the next to expire.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

from telephony.sip._timerqueue import Clock

__all__ = ("AnsweredRequests",)

_Destination = TypeVar("_Destination")


class AnsweredRequests(Generic[_Destination]):
    """Final responses by transaction key, each forgotten *hold* seconds after it is added.

    :param clock: ``seconds()`` and ``callLater()`` (the reactor, or ``task.Clock``).
    :param hold: seconds an answer is kept (Timer J).
    """

    def __init__(self, clock: Clock, hold: float) -> None:
        self._clock = clock
        self._hold = hold
        self._answers: dict[tuple[str, ...], tuple[bytes, _Destination]] = {}
        self._deadlines: deque[tuple[float, tuple[str, ...]]] = deque()
        self._call: Any = None

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: tuple[str, ...]) -> tuple[bytes, _Destination] | None:
        """The answer sent for *key*, with its destination; None if there is none."""
        return self._answers.get(key)

    def add(self, key: tuple[str, ...], data: bytes, destination: _Destination) -> None:
        """Keep *data*, sent to *destination*, as the answer to *key* for *hold* s."""
        self._answers[key] = (data, destination)
        self._deadlines.append((self._clock.seconds() + self._hold, key))
        if self._call is None:
            self._call = self._clock.callLater(self._hold, self._expire)

    def _expire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        deadlines, answers = self._deadlines, self._answers
        while deadlines and deadlines[0][0] <= now:
            answers.pop(deadlines.popleft()[1], None)
        if deadlines:
            self._call = self._clock.callLater(deadlines[0][0] - now, self._expire)

    def stop(self) -> None:
        """Forget every answer and stop the delayed call (at service stop)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._answers.clear()
        self._deadlines.clear()
