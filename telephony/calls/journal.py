"""The live-call journal: which calls are up, on disk, so that a crash loses none.

A call's detail record is written when it ends; a server killed mid-call (``kill
-9``, a power cut, the OOM killer) would forget every call that was up.  So a call
is journaled when it starts (a row in ``live_calls``), its row notes the answer,
and the transaction that writes its CDR deletes the row: at any time a call has
exactly one of the two.  A heartbeat row records every :data:`HEARTBEAT_INTERVAL`
seconds that the server was alive.

At the next start :meth:`CallJournal.recover` turns every row left over into a CDR
with the cause :attr:`~telephony.calls.causes.Cause.SERVER_RESTART`, source
``Error``, ended at the last heartbeat (never later: a call is not billed for the
time the server was down), and the caller sends the hangup_url it was to get.

All writes share one :class:`~telephony.directory.groupcommit.GroupCommit`, so they
are committed in the order they were made: a call that ends at once cannot have its
CDR (and the removal of its row) committed before the row itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore

from telephony.calls.causes import Cause
from telephony.calls.cdr import CallRecord, plivo_time
from telephony.directory.database import Cursor, Database
from telephony.directory.groupcommit import GroupCommit
from xml_dsl.params import hangup_params

__all__ = (
    "HEARTBEAT_INTERVAL",
    "RECOVERY_CALLBACKS_AT_ONCE",
    "CallJournal",
    "LiveCall",
    "Recovered",
    "tell_applications",
)

#: Seconds between heartbeats: how much of a crashed call's end may be missed (its
#: CDR ends at the last heartbeat before the crash) [ours].
HEARTBEAT_INTERVAL = 5.0
#: Who ended a call that the server's crash ended (Plivo's hangup source for errors).
RESTART_SOURCE = "Error"
#: hangup_url requests for recovered calls in flight at once [ours]: a restart after a
#: crash with hundreds of calls up must not hit the applications' servers with them
#: all at once (100 at once lost 44 to a small server's full accept queue).
RECOVERY_CALLBACKS_AT_ONCE = 8


@attrs.frozen
class LiveCall:
    """A call as journaled when it starts: what its CDR and hangup_url will need.

    :ivar started_at: seconds since the epoch.
    :ivar hangup_url: where its application wants to hear that it ended (or None).
    """

    call_uuid: str
    parent_call_uuid: str | None
    request_uuid: str | None
    direction: str
    from_number: str
    to_number: str
    caller_name: str
    app_id: str | None
    sip_call_id: str
    started_at: float
    hangup_url: str | None = None
    hangup_method: str = "POST"


@attrs.frozen
class _Answered:
    call_uuid: str
    answered_at: float


@attrs.frozen
class _Heartbeat:
    alive_at: float


@attrs.frozen
class Recovered:
    """A call found in the journal at start: its CDR (written), and its hangup_url."""

    record: CallRecord
    hangup_url: str | None
    hangup_method: str

    def hangup_params(self) -> dict[str, str]:
        """Plivo's hangup_url parameters for the call, as far as the journal knows it."""
        record = self.record
        params = {
            "CallUUID": record.call_uuid,
            "From": record.from_number,
            "To": record.to_number,
            "Direction": record.direction,
            "CallerName": record.caller_name,
        }
        if record.request_uuid:
            params["RequestUUID"] = record.request_uuid
        if record.parent_call_uuid:
            params["ALegUUID"] = record.parent_call_uuid
        return hangup_params(
            params,
            cause=record.hangup_cause_name,
            cause_code=record.hangup_cause_code,
            source=record.hangup_source,
            duration=record.duration,
            bill_duration=record.bill_duration,
            start_time=record.start_time,
            answer_time=record.answer_time or "",
            end_time=record.end_time,
        )


_Write = CallRecord | LiveCall | _Answered | _Heartbeat

_LIVE_FIELDS = tuple(attrs.fields_dict(LiveCall))
_LIVE_INSERT = (
    f"INSERT OR REPLACE INTO live_calls ({', '.join(_LIVE_FIELDS)})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(_LIVE_FIELDS))})"
)
_CDR_FIELDS = tuple(attrs.fields_dict(CallRecord))
_CDR_DELETE = "DELETE FROM cdrs WHERE call_uuid = ?"
_CDR_INSERT = (
    f"INSERT INTO cdrs ({', '.join(_CDR_FIELDS)})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(_CDR_FIELDS))})"
)
#: A recovered CDR never replaces one already written (it cannot exist, but a
#: record of how the call really ended would be the one to keep).
_CDR_INSERT_NEW = _CDR_INSERT + " ON CONFLICT (call_uuid) DO NOTHING"
_LIVE_DELETE = "DELETE FROM live_calls WHERE call_uuid = ?"
_ANSWER = "UPDATE live_calls SET answered_at = ? WHERE call_uuid = ?"
_HEARTBEAT = "INSERT OR REPLACE INTO call_heartbeat (id, alive_at) VALUES (1, ?)"


def _write_all(cur: Cursor, batch: Sequence[_Write]) -> None:
    """A batch in order, each run of one kind of write in a few statements."""
    for kind, run in itertools.groupby(batch, type):
        items: list[Any] = list(run)
        if kind is CallRecord:
            cur.executemany(_CDR_DELETE, [(r.call_uuid,) for r in items])
            cur.executemany(_CDR_INSERT, [attrs.astuple(r) for r in items])
            cur.executemany(_LIVE_DELETE, [(r.call_uuid,) for r in items])
        elif kind is LiveCall:
            cur.executemany(_LIVE_INSERT, [attrs.astuple(c) for c in items])
        elif kind is _Answered:
            cur.executemany(_ANSWER, [(a.answered_at, a.call_uuid) for a in items])
        else:
            cur.execute(_HEARTBEAT, (items[-1].alive_at,))


def _write_one(cur: Cursor, item: _Write) -> None:
    _write_all(cur, [item])


class CallJournal:
    """Journals live calls and writes CDRs, in one ordered stream of commits."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes: GroupCommit[_Write] = GroupCommit(db, _write_all, _write_one)

    def started(self, call: LiveCall) -> Deferred[None]:
        """Journal a call that has begun; fires once committed."""
        return self._writes.submit(call)

    def answered(self, call_uuid: str, at: float) -> Deferred[None]:
        """Note when a journaled call was answered (for its bill duration)."""
        return self._writes.submit(_Answered(call_uuid, at))

    def ended(self, record: CallRecord) -> Deferred[None]:
        """Write a finished call's CDR and drop it from the journal, in one commit."""
        return self._writes.submit(record)

    def heartbeat(self, now: float) -> Deferred[None]:
        """Record that the server is alive at *now* (seconds since the epoch)."""
        return self._writes.submit(_Heartbeat(now))

    def recover(self) -> Deferred[list[Recovered]]:
        """Turn the calls left in the journal by a server that stopped without ending
        them into CDRs (cause Server Restart), in one transaction; returns them."""

        def txn(cur: Cursor) -> list[Recovered]:
            beat = cur.execute("SELECT alive_at FROM call_heartbeat WHERE id = 1").fetchone()
            alive_at = float(beat[0]) if beat else 0.0
            rows = cur.execute(
                f"SELECT {', '.join(_LIVE_FIELDS)}, answered_at FROM live_calls"  # noqa: S608
                " ORDER BY started_at"
            ).fetchall()
            found = [(LiveCall(*row[:-1]), row[-1]) for row in rows]
            recovered = [_recovered(call, answered_at, alive_at) for call, answered_at in found]
            cur.executemany(_CDR_INSERT_NEW, [attrs.astuple(r.record) for r in recovered])
            cur.executemany(_LIVE_DELETE, [(c.call_uuid,) for c, _ in found])
            return recovered

        return self._db.run_interaction(txn)


def _recovered(call: LiveCall, answered_at: float | None, alive_at: float) -> Recovered:
    """The CDR of a call the server's end interrupted: ended at the last heartbeat."""
    cause = Cause.SERVER_RESTART
    end = max(call.started_at, answered_at or 0.0, alive_at)
    record = CallRecord(
        call_uuid=call.call_uuid,
        parent_call_uuid=call.parent_call_uuid,
        request_uuid=call.request_uuid,
        direction=call.direction,
        from_number=call.from_number,
        to_number=call.to_number,
        caller_name=call.caller_name,
        call_status="completed" if answered_at is not None else "failed",
        app_id=call.app_id,
        sip_call_id=call.sip_call_id,
        start_time=plivo_time(call.started_at),
        answer_time=plivo_time(answered_at) or None,
        end_time=plivo_time(end),
        duration=int(end - call.started_at),
        bill_duration=int(end - answered_at) if answered_at is not None else 0,
        hangup_cause_name=cause.cause_name,
        hangup_cause_code=cause.code,
        hangup_source=RESTART_SOURCE,
    )
    return Recovered(record, call.hangup_url, call.hangup_method)


Notify = Callable[[str, str, Mapping[str, str]], Deferred[None]]


def tell_applications(
    calls: Sequence[Recovered], notify: Notify, at_once: int = RECOVERY_CALLBACKS_AT_ONCE
) -> Deferred[Any]:
    """Send each recovered call's hangup_url (``notify(url, method, params)``, whose
    Deferred fires when the request is over), *at_once* at a time; fires when all are."""
    gate = DeferredSemaphore(at_once)
    sent = [
        gate.run(notify, call.hangup_url, call.hangup_method, call.hangup_params())
        for call in calls
        if call.hangup_url
    ]
    return DeferredList(sent, consumeErrors=True)
