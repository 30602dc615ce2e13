"""A database that never blocks the reactor, with numbered migrations.

Queries run on ``twisted.enterprise.adbapi``'s thread pool; each call to
:meth:`Database.run_interaction` is one transaction, committed when the function
returns and rolled back when it raises, so a request is never half-written.

SQL is written once, with ``?`` placeholders and portable types; the
:class:`Cursor` wrapper rewrites placeholders for drivers with another paramstyle,
which is what a PostgreSQL backend would plug in (``psycopg``: ``%s``) without
touching any caller.  Migrations are applied at start-up, before anything listens,
on a plain blocking connection: the reactor is not serving yet.

SQLite runs in WAL mode with ``synchronous=NORMAL``: always consistent, nothing
lost when the process crashes; an OS crash may roll back the last commits (about
50,000 commits/s instead of 1,500 with the default journal).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from telephony.directory.migrations import MIGRATIONS, Migration

__all__ = ("Cursor", "Database", "SchemaError", "open_sqlite")

T = TypeVar("T")
log = Logger()

#: Seconds stopping the server waits for queued writes to commit [ours].
DRAIN_TIMEOUT = 10.0


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version of the server."""


class _DBAPICursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@attrs.define
class Cursor:
    """A DB-API cursor that takes ``?`` placeholders whatever the driver's paramstyle."""

    _cursor: _DBAPICursor
    _paramstyle: str = "qmark"

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor:
        """Run one statement; returns self so ``fetchone()`` can follow."""
        if self._paramstyle == "format":
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._cursor.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Cursor:
        """Run one statement for each row of parameters."""
        if self._paramstyle == "format":
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._cursor.executemany(sql, [tuple(r) for r in rows])
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        """All remaining rows."""
        return [tuple(row) for row in self._cursor.fetchall()]

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return self._cursor.rowcount


@attrs.define
class Database:
    """Transactions on a connection pool, plus the start-up migration step.

    :ivar description: where the data lives, for logs and the status page.
    """

    _pool: adbapi.ConnectionPool
    _connect_blocking: Callable[[], Any]
    description: str
    _paramstyle: str = "qmark"
    #: Writers that may hold queued writes (group commits), asked before closing.
    _writers: list[Callable[[], Deferred[None]]] = attrs.field(factory=list, init=False)

    def add_writer(self, drained: Callable[[], Deferred[None]]) -> None:
        """Register a writer's ``drained()``: :meth:`drain` waits for it."""
        self._writers.append(drained)

    def drain(self, *, clock: IReactorTime, timeout: float = DRAIN_TIMEOUT) -> Deferred[None]:
        """Fires once every registered writer has committed what it holds, or after
        *timeout* seconds (a stuck write must not stop the server stopping).

        Work given to the pool before :meth:`close` still runs; work given after it
        never runs, so a group commit whose next batch waits for the current one must
        be drained first (writes made while stopping, such as the CDRs of the calls
        hung up at shutdown, were lost otherwise).
        """
        pending = gatherResults([drained() for drained in self._writers], consumeErrors=True)
        pending.addErrback(lambda f: log.failure("A write failed while stopping", f))
        return (
            pending.addTimeout(timeout, clock)
            .addErrback(
                lambda f: log.warn("Writes still pending after {t} s; closing anyway", t=timeout)
            )
            .addCallback(lambda _: None)
        )

    def run_interaction(self, fn: Callable[[Cursor], T]) -> Deferred[T]:
        """Run ``fn(cursor)`` in one transaction on a pool thread."""

        def interaction(txn: Any) -> T:
            cursor = Cursor(txn, self._paramstyle)
            # The pooled connections are in autocommit mode; the transaction is ours,
            # so that nested SAVEPOINTs do not commit, and adbapi commits it at the end.
            cursor.execute("BEGIN")
            return fn(cursor)

        d: Deferred[T] = self._pool.runInteraction(interaction)
        return d

    def migrate_blocking(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
        """Apply the migrations not yet applied, in order; return their versions.

        *connect_blocking* must give a connection in autocommit mode.

        Each migration runs in its own transaction together with the row that
        records it, so a failure leaves the schema at the last complete version.

        :raises SchemaError: the database was written by a newer server.
        """
        conn = self._connect_blocking()
        try:
            cur = Cursor(conn.cursor(), self._paramstyle)
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            rows = cur.execute("SELECT version FROM schema_migrations").fetchall()
            applied = {row[0] for row in rows}
            newest = max((m.version for m in migrations), default=0)
            if applied and max(applied) > newest:
                raise SchemaError(
                    f"{self.description}: schema version {max(applied)} is newer than this "
                    f"server knows ({newest}); upgrade the server"
                )
            done = []
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version in applied:
                    continue
                # Explicit BEGIN: the blocking connection is in autocommit mode, so that
                # DDL (which Python's sqlite3 would otherwise commit at once) is rolled
                # back with the rest of a failed migration.
                cur.execute("BEGIN")
                try:
                    for statement in migration.statements:
                        cur.execute(statement)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES (?, ?, CURRENT_TIMESTAMP)",
                        (migration.version, migration.name),
                    )
                except Exception:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
                log.info(
                    "Applied schema migration {version} ({name}) to {db}",
                    version=migration.version,
                    name=migration.name,
                    db=self.description,
                )
                done.append(migration.version)
            return done
        finally:
            conn.close()

    def close(self) -> None:
        """Close the pool's connections (idempotent)."""
        if self._pool.running:
            self._pool.close()


def _sqlite_pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")


def open_sqlite(path: Path, reactor: Any = None) -> Database:
    """A :class:`Database` on the SQLite file at *path* (created if missing).

    One pooled connection: SQLite has a single writer, and one thread keeps
    transactions strictly ordered.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file holds digest hashes: only its owner may read it (WAL files follow).
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    pool = adbapi.ConnectionPool(
        "sqlite3",
        str(path),
        check_same_thread=False,
        isolation_level=None,
        cp_min=1,
        cp_max=1,
        cp_noisy=False,
        cp_openfun=_sqlite_pragmas,
        cp_reactor=reactor,
    )

    def connect_blocking() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None)
        _sqlite_pragmas(conn)
        return conn

    return Database(pool, connect_blocking, f"sqlite:{path}")
