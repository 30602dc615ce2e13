"""Group commit: writes that arrive while a transaction runs share the next one.

A server under load writes many small rows a second (a binding per REGISTER, a
call detail record per leg).  One transaction each costs a hand-off to the
database thread, a commit, and the GIL back and forth every time.
:class:`GroupCommit` queues writes and, as soon as the previous transaction is
done, writes everything queued in one: each writer still gets a Deferred that
fires when *its* row is committed (or fails), while transactions per second stay
few.  The batch is first written whole (``write_all``, typically a couple of
``executemany``); only if that raises is each item retried alone under its own
SAVEPOINT (``write_one``), so a bad item fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from telephony.directory.database import Cursor, Database

__all__ = ("GroupCommit",)

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Queues items and writes each batch in one transaction.

    :param db: the database.
    :param write_all: writes a whole batch with the cursor (may raise).
    :param write_one: writes one item (may raise: that item's writer gets the error).
    """

    def __init__(
        self,
        db: Database,
        write_all: Callable[[Cursor, Sequence[T]], None],
        write_one: Callable[[Cursor, T], None],
    ) -> None:
        self._db = db
        self._write_all = write_all
        self._write_one = write_one
        self._queue: list[tuple[T, Deferred[None]]] = []
        self._flushing = False
        self._idle_waiters: list[Deferred[None]] = []
        #: Transactions committed (for tests and benchmarks).
        self.commits = 0
        db.add_writer(self.drained)

    def drained(self) -> Deferred[None]:
        """Fires once everything submitted so far is committed (or failed): the
        database may be closed then without losing a queued write."""
        done: Deferred[None] = Deferred()
        if not self._flushing and not self._queue:
            done.callback(None)
        else:
            self._idle_waiters.append(done)
        return done

    def submit(self, item: T) -> Deferred[None]:
        """Queue ``item``; the Deferred fires once it is committed (errback if not)."""
        done: Deferred[None] = Deferred()
        self._queue.append((item, done))
        self._flush()
        return done

    def _transaction(self, items: Sequence[T]) -> Callable[[Cursor], list[Exception | None]]:
        def txn(cur: Cursor) -> list[Exception | None]:
            cur.execute("SAVEPOINT batch")
            try:
                self._write_all(cur, items)
            except Exception:
                cur.execute("ROLLBACK TO SAVEPOINT batch")
                cur.execute("RELEASE SAVEPOINT batch")
            else:
                cur.execute("RELEASE SAVEPOINT batch")
                return [None] * len(items)
            outcomes: list[Exception | None] = []
            for i, item in enumerate(items):
                cur.execute(f"SAVEPOINT item{i}")
                try:
                    self._write_one(cur, item)
                except Exception as exc:  # reported to that item's writer alone
                    cur.execute(f"ROLLBACK TO SAVEPOINT item{i}")
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
                cur.execute(f"RELEASE SAVEPOINT item{i}")
            return outcomes

        return txn

    def _flush(self) -> None:
        if self._flushing:
            return
        if not self._queue:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        batch, self._queue = self._queue, []
        self._flushing = True

        def committed(outcomes: list[Exception | None]) -> None:
            self.commits += 1
            for (_, done), error in zip(batch, outcomes, strict=True):
                if error is None:
                    done.callback(None)
                else:
                    done.errback(Failure(error))

        def failed(failure: Failure) -> None:
            for _, done in batch:
                done.errback(failure)

        def next_batch(_: Any) -> None:
            self._flushing = False
            self._flush()

        d = self._db.run_interaction(self._transaction([item for item, _ in batch]))
        d.addCallbacks(committed, failed)
        d.addBoth(next_batch)
