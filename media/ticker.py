"""The shared 20 ms media tick: one timer per reactor drives every stream.

One ``callLater`` per stream falls behind at a few thousand streams; one tick
that walks all subscribers holds its schedule (STYLE.md, "Time").  Frame ``n``
is due at ``start + n * 0.020`` where ``start`` is when the first subscriber
arrived, so the schedule never drifts however late a wake-up is.  A late
wake-up dispatches every frame that became due, oldest first, up to
:data:`MAX_CATCH_UP` frames; older ones are skipped (and counted) so a stalled
reactor does not answer with a burst of stale audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ("FRAME", "MAX_CATCH_UP", "SharedTicker")

#: The frame interval, in seconds.
FRAME = 0.020
#: Most frames dispatched in one wake-up: 5 frames = 100 ms of catch-up.
MAX_CATCH_UP = 5
#: A frame is due when the clock is within this many seconds of its time, so
#: float rounding of ``start + n * FRAME`` never postpones it by a whole frame.
_EPSILON = 1e-6

FrameCallback = Callable[[int, float], object]

_log = Logger()


class SharedTicker:
    """A drift-free 20 ms tick shared by every media stream of a reactor.

    Subscribers are called as ``callback(frame, due)`` with the frame number and
    the time (seconds, the clock's timebase) it was due.  The tick runs only
    while it has subscribers, so an idle engine leaves no delayed call behind.

    :param clock: the reactor's time (``task.Clock`` in tests).
    :param frame: the interval in seconds.
    """

    def __init__(self, *, clock: IReactorTime, frame: float = FRAME) -> None:
        self.clock = clock
        self.frame = frame
        self._subscribers: dict[FrameCallback, None] = {}
        self._start = 0.0
        self._next = 0
        self._call: IDelayedCall | None = None
        #: Frames dispatched, frames skipped after a stall, wake-ups that found
        #: their oldest due frame more than half a frame late, and the worst
        #: lateness seen in seconds.
        self.frames = 0
        self.skipped = 0
        self.late_wakeups = 0
        self.max_lateness = 0.0

    @property
    def running(self) -> bool:
        """Whether the tick is scheduled."""
        return self._call is not None

    def frame_time(self, frame: int) -> float:
        """When ``frame`` is (or was) due, in the clock's seconds."""
        return self._start + frame * self.frame

    @property
    def next_frame(self) -> int:
        """The number of the next frame to be dispatched."""
        return self._next

    def frame_at(self, when: float) -> float:
        """The (fractional) frame number at a time; for mapping foreign timestamps."""
        return (when - self._start) / self.frame

    def subscribe(self, callback: FrameCallback) -> int:
        """Call ``callback`` for every frame from the next one on.

        :returns: the first frame number it will receive.
        """
        if not self._subscribers and self._call is None:
            self._start = self.clock.seconds()
            self._next = 0
            self._call = self.clock.callLater(0, self._fire)
        self._subscribers[callback] = None
        return self._next

    def unsubscribe(self, callback: FrameCallback) -> None:
        """Stop calling ``callback``; the tick stops with its last subscriber."""
        self._subscribers.pop(callback, None)
        if not self._subscribers and self._call is not None:
            self._call.cancel()
            self._call = None

    def _fire(self) -> None:
        self._call = None
        now = self.clock.seconds()
        last_due = math.floor((now - self._start + _EPSILON) / self.frame)
        first = self._next
        if last_due - first + 1 > MAX_CATCH_UP:
            self.skipped += last_due - MAX_CATCH_UP + 1 - first
            first = last_due - MAX_CATCH_UP + 1
        lateness = now - self.frame_time(first)
        if lateness > self.frame / 2:
            self.late_wakeups += 1
        self.max_lateness = max(self.max_lateness, lateness)
        for n in range(first, last_due + 1):
            self._next = n + 1  # a subscriber added now starts with the next frame
            due = self.frame_time(n)
            for callback in list(self._subscribers):
                if callback in self._subscribers:
                    try:
                        callback(n, due)
                    except Exception:
                        _log.failure("media tick subscriber {callback!r} failed", callback=callback)
            self.frames += 1
        if self._subscribers:
            delay = self.frame_time(self._next) - self.clock.seconds()
            self._call = self.clock.callLater(max(0.0, delay), self._fire)
