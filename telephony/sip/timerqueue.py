"""Many transaction timers, one deadline: a FIFO queue per distinct delay.

SIP timers take few distinct values (T1·2ⁿ, T2, T4, 64·T1), and within one value
deadlines are added in time order, so each value's timers form a FIFO whose head is
its earliest.  Starting and cancelling a timer are O(1) (cancelled entries are dropped
when they reach the head).  At 3,000 REGISTERs a second, Timer J alone kept about
190,000 timers alive: as one delayed call each they would weigh on the reactor's heap.

Sans-IO: the queue is told the time (``now``) and says when it next needs to be told
it (:meth:`TimerQueue.next_deadline`); whoever owns the clock then takes the due
timers with :meth:`TimerQueue.pop_due` and runs their callbacks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ("TimerHandle", "TimerQueue")


class TimerHandle:
    """A started timer; :meth:`cancel` stops it (idempotent)."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the timer; its callback will not run."""
        self.cancelled = True


class TimerQueue:
    """Timers by deadline; due ones come out in deadline order, ties in start order."""

    def __init__(self) -> None:
        self._queues: dict[float, deque[TimerHandle]] = {}

    def __len__(self) -> int:
        return sum(1 for q in self._queues.values() for h in q if not h.cancelled)

    def start(
        self, delay: float, callback: Callable[[], None], now: float, *, base: float | None = None
    ) -> TimerHandle:
        """Run *callback* *delay* seconds after *base* (default: *now*).

        A timer restarted from its own expiry passes that expiry as *base*, so a
        retransmission schedule (0.5, 1.5, 3.5 s…) does not drift when the clock
        runs late.
        """
        handle = TimerHandle((now if base is None else base) + delay, callback)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(handle)
        return handle

    def pop_due(self, now: float) -> TimerHandle | None:
        """The earliest timer due at *now* (removed from the queue), or None."""
        best: deque[TimerHandle] | None = None
        for delay, queue in list(self._queues.items()):
            while queue and queue[0].cancelled:
                queue.popleft()
            if not queue:
                del self._queues[delay]
                continue
            if queue[0].deadline <= now and (best is None or queue[0].deadline < best[0].deadline):
                best = queue
        return best.popleft() if best is not None else None

    def next_deadline(self) -> float | None:
        """The earliest deadline of a timer still queued (perhaps cancelled), or None."""
        heads = [q[0].deadline for q in self._queues.values() if q]
        return min(heads) if heads else None

    def clear(self) -> None:
        """Cancel everything (at service stop)."""
        for queue in self._queues.values():
            for handle in queue:
                handle.cancelled = True
        self._queues.clear()
