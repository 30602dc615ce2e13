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

Logging is filtered by level before it is formatted: twistd writes every event,
debug included, and formatting and writing one costs tens of microseconds, a
noticeable share of a call's CPU when each call logs a handful of lines.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from twisted.application import service
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogBeginner,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
)

__all__ = ("GC_THRESHOLDS", "GCTuning", "filter_log_level")

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


def filter_log_level(level: str, beginner: LogBeginner = globalLogBeginner) -> None:
    """Write only events of ``level`` (``debug``, ``info``, ``warn``…) or above.

    twistd starts logging after the plugin has built its services, with the
    observers its own options chose (``--logfile``, ``--syslog``, stdout).  This
    wraps that one call: each observer twistd passes in is put behind a
    :class:`~twisted.logger.FilteringLogObserver`; the call after it is left
    alone.  At ``debug`` nothing is wrapped.
    """
    minimum = LogLevel.levelWithName(level)
    if minimum is LogLevel.debug:
        return
    begin = beginner.beginLoggingTo

    def filtered_begin(observers: Iterable[ILogObserver], *args: Any, **kwargs: Any) -> None:
        del beginner.beginLoggingTo  # one call only: back to the class's method
        predicate = LogLevelFilterPredicate(defaultLogLevel=minimum)
        wrapped = [FilteringLogObserver(o, [predicate]) for o in observers]
        begin(wrapped, *args, **kwargs)

    beginner.beginLoggingTo = filtered_begin  # type: ignore[method-assign]
