"""A database that runs each interaction at once, on an in-memory SQLite connection.

The real server's store runs transactions on a thread pool, so its Deferreds fire
later; a fuzzer needs each input handled whole before the next.  This one runs the
same SQL through the same :class:`~telephony.directory.database.Cursor` and the same
migrations, synchronously: the directory, the registrar's group commit and the REST
handlers behave as in the server, minus the thread hand-off.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from telephony.directory.database import Cursor, Database

__all__ = ("inline_database",)

T = TypeVar("T")


class _InlineDatabase(Database):
    """:class:`Database` whose transactions run in the caller's thread, at once."""

    conn: sqlite3.Connection

    def run_interaction(self, fn: Callable[[Cursor], T]) -> Deferred[T]:
        cursor = Cursor(self.conn.cursor())
        cursor.execute("BEGIN")
        try:
            result = fn(cursor)
        except BaseException:
            self.conn.rollback()
            return fail()
        self.conn.commit()
        return succeed(result)


def inline_database() -> Database:
    """A migrated, empty in-memory database whose Deferreds have fired on return."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")

    class _NoPool:
        running = False

    db = _InlineDatabase(_NoPool(), lambda: _Unclosable(conn), "sqlite::memory:")  # type: ignore[arg-type]
    db.conn = conn
    db.migrate_blocking()
    return db


class _Unclosable:
    """The shared connection, for ``migrate_blocking`` (which closes what it gets)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def cursor(self) -> sqlite3.Cursor:
        return self._conn.cursor()

    def close(self) -> None:
        """Keep the in-memory database: closing it would drop it."""
