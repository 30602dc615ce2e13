"""Registrations (contact bindings) in the database, written with group commit.

A registrar under load writes thousands of bindings a second; one transaction each
would cap it near the database's commit rate.  :class:`BindingStore` queues changes
and writes everything queued in one transaction as soon as the previous one is done,
so each REGISTER still waits for its own commit (and learns about a failure), while
the commits per second stay few (:class:`~telephony.directory.groupcommit.GroupCommit`).
A change that fails (its endpoint was just deleted, say) fails alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from telephony.directory.database import Cursor, Database
from telephony.directory.groupcommit import GroupCommit

__all__ = ("Binding", "BindingStore")

_COLUMNS = (
    "username, contact_uri, contact, expires_at, registered_at, call_id, cseq, user_agent,"
    " transport, source_host, source_port"
)
_DELETE = "DELETE FROM bindings WHERE username = ? AND contact_uri = ?"
#: Insert, or update in place the row of the same (username, contact_uri): one
#: statement and one B-tree visit where a DELETE then an INSERT took two (a third less
#: SQLite time per binding, measured: 6.2 µs against 4.0 µs).
_UPSERT = (
    f"INSERT INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 11)})"  # noqa: S608
    " ON CONFLICT (username, contact_uri) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(",")[2:])
)


@attrs.frozen
class Binding:
    """One registered contact of an endpoint.

    :ivar contact_uri: the Contact URI as registered (the key, with the username).
    :ivar contact: the Contact value without its ``expires`` parameter.
    :ivar expires_at: absolute time (seconds since the epoch) it lapses.
    :ivar registered_at: when this device logged in (a new binding, or a new Call-ID);
        refreshes keep it, so the latest login decides where calls go.
    :ivar transport, source_host, source_port: where the REGISTER came from, the
        address that reaches a phone behind NAT.
    """

    username: str
    contact_uri: str
    contact: str
    expires_at: float
    registered_at: float
    call_id: str
    cseq: int
    #: The three values most devices share (one user agent, "udp", one NAT address)
    #: are interned: one string for all of them, 115 bytes less per binding
    #: (11 MB of 100,000 bindings).
    user_agent: str = attrs.field(converter=sys.intern)
    transport: str = attrs.field(converter=sys.intern)
    source_host: str = attrs.field(converter=sys.intern)
    source_port: int


def _row(b: Binding) -> tuple[Any, ...]:
    """The binding's columns in ``_COLUMNS`` order (``attrs.astuple`` without its
    generic, recursive walk: it cost more than the rest of the batch's work)."""
    return (
        b.username,
        b.contact_uri,
        b.contact,
        b.expires_at,
        b.registered_at,
        b.call_id,
        b.cseq,
        b.user_agent,
        b.transport,
        b.source_host,
        b.source_port,
    )


@attrs.frozen
class _Change:
    """One REGISTER's outcome: contacts to write and contact URIs to remove."""

    username: str
    upserts: Sequence[Binding]
    deletes: Sequence[str]


def _write_all(cur: Cursor, batch: Sequence[_Change]) -> None:
    """A whole batch in two statements (one when nothing is removed)."""
    keys = [(c.username, uri) for c in batch for uri in c.deletes]
    if keys:
        cur.executemany(_DELETE, keys)
    cur.executemany(_UPSERT, [_row(b) for c in batch for b in c.upserts])


def _write_one(cur: Cursor, change: _Change) -> None:
    """One change alone (its REGISTER fails alone: an endpoint deleted meanwhile, say)."""
    for uri in change.deletes:
        cur.execute(_DELETE, (change.username, uri))
    for b in change.upserts:
        cur.execute(_UPSERT, _row(b))


class BindingStore:
    """Loads and saves bindings; concurrent saves are grouped into one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes: GroupCommit[_Change] = GroupCommit(db, _write_all, _write_one)

    @property
    def commits(self) -> int:
        """Transactions committed so far (for tests and benchmarks)."""
        return self._writes.commits

    def load(self, now: float) -> Deferred[list[Binding]]:
        """Every binding still valid at *now*; the lapsed ones are deleted."""

        def txn(cur: Cursor) -> list[Binding]:
            cur.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            rows = cur.execute(f"SELECT {_COLUMNS} FROM bindings").fetchall()  # noqa: S608
            return [Binding(*row) for row in rows]

        return self._db.run_interaction(txn)

    def save(
        self, username: str, upserts: Sequence[Binding], deletes: Sequence[str]
    ) -> Deferred[None]:
        """Write one REGISTER's outcome; fires once committed (errback if it failed)."""
        return self._writes.submit(_Change(username, upserts, deletes))

    def delete_lapsed(self, bindings: Sequence[Binding]) -> Deferred[None]:
        """Remove bindings that expired (if not refreshed since: same expiry only)."""

        def txn(cur: Cursor) -> None:
            for b in bindings:
                cur.execute(
                    "DELETE FROM bindings"
                    " WHERE username = ? AND contact_uri = ? AND expires_at = ?",
                    (b.username, b.contact_uri, b.expires_at),
                )

        return self._db.run_interaction(txn)
