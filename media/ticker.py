"""The shared 20 ms media tick: one timer per reactor drives every stream.

One ``callLater`` per stream falls behind at a few thousand streams; one tick
that walks all subscribers holds its schedule (STYLE.md, "Time").  Frame ``n``
of a subscriber is due at ``start + n * 0.020 (+ its phase offset)`` where
``start`` is when the first subscriber arrived, so the schedule never drifts
however late a wake-up is.  A late wake-up dispatches every frame that became
due, oldest first, up to :data:`MAX_CATCH_UP` frames per subscriber; older
ones are skipped (and counted) so a stalled reactor does not answer with a
burst of stale audio.

Phases: with ``phases=k`` the one timer wakes every ``20/k`` ms and each wake-up
serves one of ``k`` equal groups of subscribers, each group offset by
``20/k`` ms.  Every stream still sends exactly every 20 ms on an absolute
schedule, but the sends of thousands of streams are spread over the interval
instead of leaving in one burst that holds back everything received meanwhile
(see ``docs/benchmarks.md``).  ``phases=1`` is the plain single tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ("FRAME", "MAX_CATCH_UP", "SharedTicker", "Subscription")

#: The frame interval, in seconds.
FRAME = 0.020
#: Most frames dispatched to a subscriber in one wake-up: 5 frames = 100 ms.
MAX_CATCH_UP = 5
#: A slot is due when the clock is within this many seconds of its time, so
#: float rounding of ``start + n * FRAME`` never postpones it by a whole frame.
_EPSILON = 1e-6

FrameCallback = Callable[[int, float], object]

_log = Logger()


@attrs.frozen
class Subscription:
    """Where a subscriber sits on the tick.

    :ivar phase: its phase group, ``0 <= phase < phases``.
    :ivar first_frame: the first frame number it receives.
    """

    phase: int
    first_frame: int


class SharedTicker:
    """A drift-free 20 ms tick shared by every media stream of a reactor.

    Subscribers are called as ``callback(frame, due)`` with the frame number and
    the time (seconds, the clock's timebase) it was due.  The tick runs only
    while it has subscribers, so an idle engine leaves no delayed call behind.

    :param clock: the reactor's time (``task.Clock`` in tests).
    :param frame: the interval in seconds.
    :param phases: how many evenly offset groups share the interval (1 to 20).
    """

    def __init__(self, *, clock: IReactorTime, frame: float = FRAME, phases: int = 1) -> None:
        if not 1 <= phases <= 20:
            raise ValueError(f"phases: must be 1-20, got {phases}")
        self.clock = clock
        self.frame = frame
        self.phases = phases
        self.slot = frame / phases
        self._groups: list[dict[FrameCallback, None]] = [{} for _ in range(phases)]
        self._phase_of: dict[FrameCallback, int] = {}
        self._start = 0.0
        self._next_slot = 0
        self._call: IDelayedCall | None = None
        #: When the frame being dispatched was due (seconds), for sources that
        #: want to stamp it.
        self.current_due = 0.0
        #: Wake-ups' slots dispatched, slots skipped after a stall, wake-ups
        #: that found their oldest due slot more than half a frame late, and
        #: the worst lateness seen in seconds.
        self.frames = 0
        self.skipped = 0
        self.late_wakeups = 0
        self.max_lateness = 0.0

    @property
    def running(self) -> bool:
        """Whether the tick is scheduled."""
        return self._call is not None

    @property
    def subscribers(self) -> int:
        """How many callbacks are subscribed."""
        return len(self._phase_of)

    def frame_time(self, frame: int, phase: int = 0) -> float:
        """When ``frame`` of a subscriber in ``phase`` is (or was) due, in seconds."""
        return self._start + frame * self.frame + phase * self.slot

    def frame_at(self, when: float, phase: int = 0) -> float:
        """The (fractional) frame number of ``phase`` at a time."""
        return (when - self._start - phase * self.slot) / self.frame

    @property
    def next_frame(self) -> int:
        """The number of the next frame of phase 0 to be dispatched."""
        return -(-self._next_slot // self.phases)

    def subscribe(self, callback: FrameCallback) -> Subscription:
        """Call ``callback`` for every frame of the least busy phase from the next one on."""
        if not self._phase_of and self._call is None:
            self._start = self.clock.seconds()
            self._next_slot = 0
            self._call = self.clock.callLater(0, self._fire)
        phase = min(range(self.phases), key=lambda p: len(self._groups[p]))
        self._groups[phase][callback] = None
        self._phase_of[callback] = phase
        first = -(-(self._next_slot - phase) // self.phases)
        return Subscription(phase, first)

    def unsubscribe(self, callback: FrameCallback) -> None:
        """Stop calling ``callback``; the tick stops with its last subscriber."""
        phase = self._phase_of.pop(callback, None)
        if phase is not None:
            self._groups[phase].pop(callback, None)
        if not self._phase_of and self._call is not None:
            self._call.cancel()
            self._call = None

    def _fire(self) -> None:
        self._call = None
        now = self.clock.seconds()
        last_due = math.floor((now - self._start + _EPSILON) / self.slot)
        first = self._next_slot
        limit = MAX_CATCH_UP * self.phases
        if last_due - first + 1 > limit:
            self.skipped += last_due - limit + 1 - first
            first = last_due - limit + 1
        lateness = now - (self._start + first * self.slot)
        if lateness > self.frame / 2:
            self.late_wakeups += 1
        self.max_lateness = max(self.max_lateness, lateness)
        for slot in range(first, last_due + 1):
            self._next_slot = slot + 1  # a subscriber added now starts later
            group = self._groups[slot % self.phases]
            if not group:
                continue
            n = slot // self.phases
            due = self.current_due = self._start + slot * self.slot
            for callback in list(group):
                if callback in group:
                    try:
                        callback(n, due)
                    except Exception:
                        _log.failure("media tick subscriber {callback!r} failed", callback=callback)
            self.frames += 1
        if self._phase_of:
            delay = self._start + self._next_slot * self.slot - self.clock.seconds()
            self._call = self.clock.callLater(max(0.0, delay), self._fire)
