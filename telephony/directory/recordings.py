"""Recording files and their rows: filing, listing with Plivo's filters, deleting both.

A finished recording is a file ``<recording_id>.<format>`` in the recordings
directory plus one row in ``recordings``.  Files are written elsewhere while a
call runs (``partial/``) and only moved in when complete, so the directory holds
finished files only.  Rows are group-committed, as CDRs are.

Deleting must not leave a row without its file or a file without its row.  Inside
the one database transaction, the file is first renamed into ``.trash/`` (atomic
on one file system), then the row deleted; the commit decides: committed, the
trashed file is unlinked; rolled back, it is renamed back.  A crash in between
leaves a file in ``.trash/``, which :meth:`RecordingStore.recover` settles at the
next start by the same rule (row still there: restore; row gone: unlink).  All
file work happens on the database's thread, never the reactor's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from telephony.directory.database import Cursor, Database
from telephony.directory.groupcommit import GroupCommit
from telephony.directory.models import Page

__all__ = ("FILTERS", "RecordingRow", "RecordingStore", "add_time_text")

log = Logger()

#: The list filters and the column each applies to (``__gt``-style bounds allowed
#: on the last two); ``recording_storage_duration`` is computed from ``add_epoch``.
FILTERS = (
    "call_uuid",
    "from_number",
    "to_number",
    "conference_name",
    "conference_uuid",
    "add_time",
    "recording_storage_duration",
)
_OPS = {"": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
TRASH = ".trash"


def add_time_text(seconds: float) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` UTC: stored, compared as text, and shown."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@attrs.frozen
class RecordingRow:
    """A finished recording.

    :ivar recording_type: ``normal`` (a call) or ``conference``.
    :ivar recording_start_ms: :ivar recording_end_ms: Unix epoch milliseconds.
    :ivar add_time: when it was filed (:func:`add_time_text`); ``add_epoch`` the same
        in seconds.
    :ivar file_bytes: the file's size.
    """

    recording_id: str
    call_uuid: str
    recording_format: str
    recording_type: str
    channels: int
    recording_duration_ms: int
    recording_start_ms: int
    recording_end_ms: int
    add_time: str
    add_epoch: float
    from_number: str
    to_number: str
    conference_name: str | None
    conference_uuid: str | None
    file_bytes: int

    @property
    def file_name(self) -> str:
        """The file's name in the recordings directory."""
        return f"{self.recording_id}.{self.recording_format}"


_FIELDS = tuple(attrs.fields_dict(RecordingRow))
_COLUMNS = ", ".join(_FIELDS)
_INSERT = f"INSERT INTO recordings ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"  # noqa: S608


def _insert_all(cur: Cursor, rows: Sequence[RecordingRow]) -> None:
    cur.executemany(_INSERT, [attrs.astuple(r) for r in rows])


def _insert_one(cur: Cursor, row: RecordingRow) -> None:
    cur.execute(_INSERT, attrs.astuple(row))


class RecordingStore:
    """The ``recordings`` rows and the files they describe.

    :param db: the database.
    :param directory: the recordings directory (files ``<id>.<format>``).
    :param run_blocking: runs file removal off the reactor thread.
    """

    def __init__(
        self, db: Database, directory: Path, run_blocking: Callable[..., Deferred[Any]]
    ) -> None:
        self._db = db
        self.directory = directory
        self._run = run_blocking
        self._inserts: GroupCommit[RecordingRow] = GroupCommit(db, _insert_all, _insert_one)

    def add(self, row: RecordingRow) -> Deferred[None]:
        """Store a row (its file is in place); fires once committed."""
        return self._inserts.submit(row)

    def get(self, recording_id: str) -> Deferred[RecordingRow | None]:
        """One recording, or None."""

        def txn(cur: Cursor) -> RecordingRow | None:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE recording_id = ?",  # noqa: S608
                (recording_id,),
            ).fetchone()
            return None if row is None else RecordingRow(*row)

        return self._db.run_interaction(txn)

    def list(
        self, limit: int, offset: int, filters: dict[str, Any], now: float
    ) -> Deferred[Page[RecordingRow]]:
        """Newest first; ``filters`` maps a name of :data:`FILTERS` (with an optional
        ``__gt``/``__gte``/``__lt``/``__lte``) to an already validated value.

        :param now: the present (seconds), for ``recording_storage_duration`` (days
            stored: 1 during the first 24 hours, as Plivo counts).
        """
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in filters.items():
            name, _, op = key.partition("__")
            if name not in FILTERS or op not in _OPS:
                raise ValueError(f"not a filter: {key}")
            column = name
            if name == "recording_storage_duration":
                column = "(1 + CAST((? - add_epoch) / 86400 AS INTEGER))"
                params.append(now)
            clauses.append(f"{column} {_OPS[op]} ?")
            params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def txn(cur: Cursor) -> Page[RecordingRow]:
            total = cur.execute(f"SELECT COUNT(*) FROM recordings{where}", params).fetchone()  # noqa: S608
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM recordings{where}"  # noqa: S608
                " ORDER BY add_time DESC, recording_id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            return Page(
                tuple(RecordingRow(*r) for r in rows), total[0] if total else 0, limit, offset
            )

        return self._db.run_interaction(txn)

    def delete(self, recording_id: str) -> Deferred[bool]:
        """Remove the row and its file together; ``False`` if there was no row."""
        trash = self.directory / TRASH
        moved: list[tuple[Path, Path]] = []

        def txn(cur: Cursor) -> bool:
            row = cur.execute(
                "SELECT recording_format FROM recordings WHERE recording_id = ?", (recording_id,)
            ).fetchone()
            if row is None:
                return False
            name = f"{recording_id}.{row[0]}"
            trash.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # already gone: the row goes too
                os.replace(self.directory / name, trash / name)
                moved.append((trash / name, self.directory / name))
            cur.execute("DELETE FROM recordings WHERE recording_id = ?", (recording_id,))
            return True

        def committed(found: bool) -> Deferred[bool]:
            unlinked: Deferred[None] = self._run(_unlink, [t for t, _ in moved])
            return unlinked.addCallback(lambda _: found)

        def rolled_back(failure: Any) -> Deferred[Any]:
            restored: Deferred[None] = self._run(_restore, moved)
            return restored.addCallback(lambda _: failure)

        d = self._db.run_interaction(txn)
        return d.addCallbacks(committed, rolled_back)

    def recover(self) -> Deferred[int]:
        """Settle deletions a crash interrupted: a trashed file whose row is still
        there goes back, one whose row is gone is removed.  Fires with the count."""
        trash = self.directory / TRASH

        def txn(cur: Cursor) -> int:
            if not trash.is_dir():
                return 0
            settled = 0
            for path in trash.iterdir():
                recording_id = path.name.partition(".")[0]
                row = cur.execute(
                    "SELECT 1 FROM recordings WHERE recording_id = ?", (recording_id,)
                ).fetchone()
                if row is not None:
                    os.replace(path, self.directory / path.name)
                else:
                    path.unlink(missing_ok=True)
                settled += 1
            return settled

        return self._db.run_interaction(txn)


def _unlink(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _restore(moves: Sequence[tuple[Path, Path]]) -> None:
    for trashed, home in moves:
        with contextlib.suppress(OSError):
            os.replace(trashed, home)
