"""Group commit on a real SQLite file: a writer hears "done" only once its row is
committed, so the registrar's 200 (and a CDR's acknowledgement) never comes before
the data would survive the process being killed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads
from twisted.internet.defer import Deferred, gatherResults

from telephony.directory.database import Cursor, Database
from telephony.directory.groupcommit import GroupCommit

ensure = pytest_twisted.ensureDeferred
#: Seconds any wait in these tests may take (the database thread is local).
WAIT = 10.0


def _table(database: Database) -> Deferred[None]:
    return database.run_interaction(
        lambda cur: cur.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)") and None
    )


def _rows_seen_by_another_connection(path: Path) -> list[str]:
    """What a separate connection (another process, after a crash) reads."""
    conn = sqlite3.connect(str(path))
    try:
        return [row[0] for row in conn.execute("SELECT k FROM t ORDER BY k")]
    finally:
        conn.close()


class GatedWriter:
    """write_all that waits, on the database thread, until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def write_all(self, cur: Cursor, items: Sequence[str]) -> None:
        self.batches.append(list(items))
        cur.executemany("INSERT INTO t (k) VALUES (?)", [(k,) for k in items])
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"

    def write_one(self, cur: Cursor, item: str) -> None:
        cur.execute("INSERT INTO t (k) VALUES (?)", (item,))


@ensure
async def test_a_writer_hears_done_only_after_the_commit(database: Database, db_path: Path) -> None:
    await _table(database)
    writer = GatedWriter()
    commits: GroupCommit[str] = GroupCommit(database, writer.write_all, writer.write_one)
    first = commits.submit("a")
    await threads.deferToThread(writer.entered.wait, WAIT)
    # The row is written inside the open transaction, not committed: nobody was told.
    assert not first.called
    assert await threads.deferToThread(_rows_seen_by_another_connection, db_path) == []
    # Writes made meanwhile wait for the next transaction, together.
    later = [commits.submit(k) for k in ("b", "c", "d")]
    assert not any(d.called for d in later)
    writer.gate.set()
    await first
    await gatherResults(later)
    assert await threads.deferToThread(_rows_seen_by_another_connection, db_path) == [
        "a",
        "b",
        "c",
        "d",
    ]
    assert writer.batches == [["a"], ["b", "c", "d"]]
    assert commits.commits == 2


@ensure
async def test_a_failed_item_fails_alone_and_a_failed_commit_fails_everyone(
    database: Database, db_path: Path
) -> None:
    await _table(database)

    def write_all(cur: Cursor, items: Sequence[str]) -> None:
        for k in items:
            write_one(cur, k)

    def write_one(cur: Cursor, item: str) -> None:
        if item == "bad":
            raise ValueError("refused")
        cur.execute("INSERT INTO t (k) VALUES (?)", (item,))

    commits: GroupCommit[str] = GroupCommit(database, write_all, write_one)
    results = [commits.submit(k) for k in ("x", "bad", "y")]
    outcomes = []
    for d in results:
        try:
            await d
            outcomes.append("ok")
        except ValueError:
            outcomes.append("refused")
    assert outcomes == ["ok", "refused", "ok"]
    assert await threads.deferToThread(_rows_seen_by_another_connection, db_path) == ["x", "y"]

    # The transaction itself cannot commit (a deferred foreign key fails at COMMIT):
    # nobody hears "done", and nothing of the batch is stored.
    await database.run_interaction(
        lambda cur: (
            cur.execute(
                "CREATE TABLE child (k TEXT REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)"
            )
            and None
        )
    )

    def orphan(cur: Cursor, items: Sequence[str]) -> None:
        cur.executemany("INSERT INTO t (k) VALUES (?)", [(k,) for k in items])
        cur.execute("INSERT INTO child (k) VALUES ('no such parent')")

    failing: GroupCommit[str] = GroupCommit(database, orphan, lambda cur, k: orphan(cur, [k]))
    lost = [failing.submit(k) for k in ("p", "q")]
    for d in lost:
        with pytest.raises(sqlite3.IntegrityError):
            await d
    assert await threads.deferToThread(_rows_seen_by_another_connection, db_path) == ["x", "y"]


@ensure
async def test_stopping_commits_what_was_queued_behind_a_running_batch(
    database: Database, db_path: Path
) -> None:
    """Work given to the pool after it is closed never runs: a write queued behind
    the batch in flight (a CDR of a call hung up at shutdown) was lost.  The store
    drains its writers before closing."""
    from twisted.internet import reactor

    from telephony.tap import StoreService

    await _table(database)
    writer = GatedWriter()
    commits: GroupCommit[str] = GroupCommit(database, writer.write_all, writer.write_one)
    first = commits.submit("in-flight")
    await threads.deferToThread(writer.entered.wait, WAIT)
    queued = commits.submit("queued")
    store = StoreService(database, reactor)
    store.startService()
    stopped = store.stopService()
    assert not stopped.called, "it waits for the writes"
    writer.gate.set()
    await gatherResults([first, queued, stopped]).addTimeout(WAIT, reactor)
    assert await threads.deferToThread(_rows_seen_by_another_connection, db_path) == [
        "in-flight",
        "queued",
    ]
