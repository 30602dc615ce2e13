"""Process-level tuning for a server that holds many long-lived objects.

CPython's cyclic garbage collector walks every tracked object in its oldest
generation on each full collection.  A busy registrar keeps tens of thousands of
transactions (Timer J holds each for 32 s) and up to 100,000 bindings alive, so with
the default thresholds (700, 10, 10) full collections run often and pause the
reactor for hundreds of milliseconds (measured in ``bench/register_bench.py``).  Our
data has few reference cycles, so collections can be rarer: young collections every
10,000 net allocations instead of 700, and a full one a hundred times less often.
Objects alive at start-up (modules, configuration) are moved out of the collector's
sight with ``gc.freeze()``.
"""

from __future__ import annotations

import gc

from twisted.application import service
from twisted.logger import Logger

__all__ = ("GC_THRESHOLDS", "GCTuning")

log = Logger()

#: (generation 0, generation 1, generation 2) thresholds.
GC_THRESHOLDS = (10_000, 50, 100)


class GCTuning(service.Service):
    """Sets the collector's thresholds and freezes start-up objects when the server starts."""

    def __init__(self, thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
        self.setName("gc")
        self.thresholds = thresholds
        self._previous: tuple[int, int, int] | None = None

    def startService(self) -> None:
        super().startService()
        self._previous = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*self.thresholds)
        log.info(
            "Garbage collector thresholds {thresholds}; {frozen} start-up objects frozen",
            thresholds=self.thresholds,
            frozen=gc.get_freeze_count(),
        )

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            gc.set_threshold(*self._previous)
            gc.unfreeze()
