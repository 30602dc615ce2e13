"""Call detail records: one row per leg, written when the leg ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from telephony.directory.database import Cursor, Database
from telephony.directory.groupcommit import GroupCommit
from telephony.directory.models import Page

__all__ = ("CallRecord", "CdrStore", "plivo_time")


def plivo_time(seconds: float | None) -> str:
    """``yyyy-MM-dd HH:mm:ss`` UTC, as Plivo writes times; "" for None."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


@attrs.frozen
class CallRecord:
    """A finished leg.

    :ivar call_status: completed, busy, failed, no-answer or cancel (Plivo's values).
    :ivar parent_call_uuid: for a B leg, the A leg it was dialed from.
    """

    call_uuid: str
    parent_call_uuid: str | None
    request_uuid: str | None
    direction: str
    from_number: str
    to_number: str
    caller_name: str
    call_status: str
    app_id: str | None
    sip_call_id: str
    start_time: str
    answer_time: str | None
    end_time: str
    duration: int
    bill_duration: int
    hangup_cause_name: str
    hangup_cause_code: int | None
    hangup_source: str


_FIELDS = tuple(attrs.fields_dict(CallRecord))
_COLUMNS = ", ".join(_FIELDS)
_DELETE = "DELETE FROM cdrs WHERE call_uuid = ?"
_INSERT = f"INSERT INTO cdrs ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"  # noqa: S608


def _write_all(cur: Cursor, records: Sequence[CallRecord]) -> None:
    cur.executemany(_DELETE, [(r.call_uuid,) for r in records])
    cur.executemany(_INSERT, [attrs.astuple(r) for r in records])


def _write_one(cur: Cursor, record: CallRecord) -> None:
    cur.execute(_DELETE, (record.call_uuid,))
    cur.execute(_INSERT, attrs.astuple(record))


class CdrStore:
    """Writes and reads call detail records; writes are group-committed.

    :param write: writes one record (the live-call journal's, which also drops the
        call from the journal in the same commit); default: a group commit of its own.
    """

    def __init__(
        self, db: Database, write: Callable[[CallRecord], Deferred[None]] | None = None
    ) -> None:
        self._db = db
        self._writes: GroupCommit[CallRecord] | None = None
        if write is None:
            self._writes = GroupCommit(db, _write_all, _write_one)
            write = self._writes.submit
        self._write = write

    def write(self, record: CallRecord) -> Deferred[None]:
        """Store one record (replacing one with the same UUID); fires once committed."""
        return self._write(record)

    def get(self, call_uuid: str) -> Deferred[CallRecord | None]:
        """The record of one leg, or None."""

        def txn(cur: Cursor) -> CallRecord | None:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM cdrs WHERE call_uuid = ?",  # noqa: S608
                (call_uuid,),
            ).fetchone()
            return None if row is None else CallRecord(*row)

        return self._db.run_interaction(txn)

    def list(
        self, limit: int = 20, offset: int = 0, filters: dict[str, Any] | None = None
    ) -> Deferred[Page[CallRecord]]:
        """Newest first; *filters* maps a column (or ``column__gt``-style bound) to a value."""
        clauses: list[str] = []
        params: list[Any] = []
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for key, value in (filters or {}).items():
            column, _, op = key.partition("__")
            if column not in _FIELDS or (op and op not in ops):
                raise ValueError(f"not a filter: {key}")
            clauses.append(f"{column} {ops.get(op, '=')} ?")
            params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def txn(cur: Cursor) -> Page[CallRecord]:
            total = cur.execute(f"SELECT COUNT(*) FROM cdrs{where}", params).fetchone()  # noqa: S608
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM cdrs{where} ORDER BY end_time DESC, call_uuid"  # noqa: S608
                " LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            return Page(
                tuple(CallRecord(*r) for r in rows), total[0] if total else 0, limit, offset
            )

        return self._db.run_interaction(txn)
