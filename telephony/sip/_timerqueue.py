"""Many timers on one scheduled call: a FIFO queue per distinct delay.

SIP timers take few distinct values (T1·2ⁿ, T2, T4, 64·T1), and within one value
deadlines are added in time order, so each value's timers form a FIFO whose head is
its earliest.  The queue keeps a single delayed call on the clock, at the earliest
head; starting and cancelling a timer are O(1) (cancelled entries are dropped when
they reach the head).  At 3,000 REGISTERs a second, Timer J alone keeps about
190,000 timers alive: as one delayed call each they would weigh on the reactor's heap.

The clock is anything with ``seconds()`` and ``callLater()`` (``IReactorTime``,
``task.Clock`` in tests); this module imports nothing from Twisted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ("Clock", "TimerHandle", "TimerQueue")


class Clock(Protocol):
    """The part of ``IReactorTime`` the queue uses."""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any) -> Any: ...


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
    """Timers on one clock; callbacks run in deadline order, ties in start order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queues: dict[float, deque[TimerHandle]] = {}
        self._call: Any = None
        self._call_at: float | None = None

    def __len__(self) -> int:
        return sum(1 for q in self._queues.values() for h in q if not h.cancelled)

    def start(
        self, delay: float, callback: Callable[[], None], *, base: float | None = None
    ) -> TimerHandle:
        """Run *callback* *delay* seconds after *base* (default: now).

        A timer restarted from its own expiry passes that expiry as *base*, so a
        retransmission schedule (0.5, 1.5, 3.5 s…) does not drift when the clock
        runs late.
        """
        handle = TimerHandle((self._clock.seconds() if base is None else base) + delay, callback)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(handle)
        if self._call_at is None or handle.deadline < self._call_at:
            self._schedule(handle.deadline)
        return handle

    def _schedule(self, deadline: float) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call_at = deadline
        self._call = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._call = None
        self._call_at = None
        now = self._clock.seconds()
        while True:
            due = self._earliest_due(now)
            if due is None:
                break
            due.callback()
        nxt = self._next_deadline()
        if nxt is not None:
            self._schedule(nxt)

    def _earliest_due(self, now: float) -> TimerHandle | None:
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

    def _next_deadline(self) -> float | None:
        heads = [q[0].deadline for q in self._queues.values() if q]
        return min(heads) if heads else None

    def stop(self) -> None:
        """Cancel everything (at service stop)."""
        for queue in self._queues.values():
            for handle in queue:
                handle.cancelled = True
        self._queues.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._call_at = None
