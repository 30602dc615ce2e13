"""The live-call journal on a real SQLite file: a call is either journaled or has its
CDR, and what a crash leaves in the journal becomes CDRs at the next start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from telephony.calls.causes import Cause
from telephony.calls.cdr import CallRecord, CdrStore, plivo_time
from telephony.calls.journal import CallJournal, LiveCall
from telephony.directory.database import Database, open_sqlite

ensure = pytest_twisted.ensureDeferred
T0 = 1_800_000_000.0


def _live(uuid: str, started_at: float = T0, **fields: object) -> LiveCall:
    values: dict[str, object] = {
        "call_uuid": uuid,
        "parent_call_uuid": None,
        "request_uuid": None,
        "direction": "inbound",
        "from_number": "alice",
        "to_number": "18001231234",
        "caller_name": "Alice",
        "app_id": "app-1",
        "sip_call_id": f"{uuid}@example.test",
        "started_at": started_at,
        "hangup_url": "http://127.0.0.1:9/hangup",
        "hangup_method": "POST",
    }
    values.update(fields)
    return LiveCall(**values)  # type: ignore[arg-type]


def _record(uuid: str) -> CallRecord:
    return CallRecord(
        call_uuid=uuid,
        parent_call_uuid=None,
        request_uuid=None,
        direction="inbound",
        from_number="alice",
        to_number="18001231234",
        caller_name="Alice",
        call_status="completed",
        app_id="app-1",
        sip_call_id=f"{uuid}@example.test",
        start_time=plivo_time(T0),
        answer_time=plivo_time(T0 + 1),
        end_time=plivo_time(T0 + 31),
        duration=31,
        bill_duration=30,
        hangup_cause_name=Cause.NORMAL.cause_name,
        hangup_cause_code=Cause.NORMAL.code,
        hangup_source="Caller",
    )


def _journal_rows(path: Path) -> list[str]:
    conn = sqlite3.connect(str(path))
    try:
        return [r[0] for r in conn.execute("SELECT call_uuid FROM live_calls ORDER BY call_uuid")]
    finally:
        conn.close()


@ensure
async def test_a_call_that_ends_at_once_leaves_no_journal_row(
    database: Database, db_path: Path
) -> None:
    """Start and end submitted back to back: one ordered stream of commits, so the
    CDR's removal of the row can never be committed before the row itself."""
    journal = CallJournal(database)
    cdrs = CdrStore(database, journal.ended)
    await gatherResults(
        [
            journal.started(_live("c1")),
            journal.answered("c1", T0 + 1),
            cdrs.write(_record("c1")),
            journal.started(_live("c2")),
        ]
    )
    assert _journal_rows(db_path) == ["c2"]
    assert await cdrs.get("c1") == _record("c1")
    assert await journal.recover() != [], "c2 was still live"


@ensure
async def test_what_a_crash_leaves_becomes_cdrs_at_the_next_start(
    database: Database, db_path: Path
) -> None:
    journal = CallJournal(database)
    await gatherResults(
        [
            journal.started(_live("answered", T0)),
            journal.answered("answered", T0 + 2),
            journal.started(_live("ringing", T0 + 5, direction="outbound", parent_call_uuid="x")),
            journal.started(_live("finished", T0)),
            journal.heartbeat(T0 + 40),
        ]
    )
    await journal.ended(_record("finished"))
    # "kill -9": nothing else runs; a new process opens the same file.
    database.close()
    again = open_sqlite(db_path)
    try:
        recovered = await CallJournal(again).recover()
        by_uuid = {r.record.call_uuid: r for r in recovered}
        assert sorted(by_uuid) == ["answered", "ringing"]
        answered = by_uuid["answered"].record
        assert (answered.hangup_cause_name, answered.hangup_cause_code) == ("Server Restart", None)
        assert answered.hangup_source == "Error"
        assert answered.call_status == "completed"
        assert answered.end_time == plivo_time(T0 + 40), "ended at the last heartbeat"
        assert (answered.duration, answered.bill_duration) == (40, 38)
        ringing = by_uuid["ringing"].record
        assert (ringing.call_status, ringing.bill_duration, ringing.answer_time) == (
            "failed",
            0,
            None,
        )
        assert ringing.parent_call_uuid == "x"
        assert by_uuid["answered"].hangup_url == "http://127.0.0.1:9/hangup"
        params = by_uuid["ringing"].hangup_params()
        assert params["HangupCauseName"] == "Server Restart"
        assert params["HangupSource"] == "Error"
        assert (params["ALegUUID"], params["Direction"], params["CallStatus"]) == (
            "x",
            "outbound",
            "completed",
        )
        cdrs = CdrStore(again)
        assert await cdrs.get("answered") == answered
        assert await cdrs.get("finished") == _record("finished"), "the real CDR is kept"
        assert _journal_rows(db_path) == []
        assert await CallJournal(again).recover() == [], "reported once"
    finally:
        again.close()


@ensure
async def test_a_call_started_after_the_last_heartbeat_ends_where_it_started(
    database: Database,
) -> None:
    """Never billed for time the server may not have been up."""
    journal = CallJournal(database)
    await journal.heartbeat(T0)
    await journal.started(_live("late", T0 + 3))
    [found] = await journal.recover()
    assert found.record.end_time == plivo_time(T0 + 3)
    assert found.record.duration == 0


@ensure
async def test_recovery_never_replaces_a_written_cdr(database: Database) -> None:
    journal = CallJournal(database)
    await journal.ended(_record("both"))
    await journal.started(_live("both"))  # cannot happen in order; recovery must cope
    await journal.recover()
    assert await CdrStore(database).get("both") == _record("both")


def test_recovered_calls_are_told_a_few_at_a_time() -> None:
    """A restart with hundreds of recovered calls must not send all their hangup_url
    requests at once (bench/crash_bench.py: 100 at once lost 44 of them)."""
    from telephony.calls.journal import RECOVERY_CALLBACKS_AT_ONCE, Recovered, tell_applications

    in_flight: list[Deferred[None]] = []
    most = 0

    def notify(url: str, method: str, params: object) -> Deferred[None]:
        nonlocal most
        d: Deferred[None] = Deferred()
        in_flight.append(d)
        most = max(most, sum(not x.called for x in in_flight))
        return d

    calls = [Recovered(_record(f"c{i}"), "http://127.0.0.1:9/h", "POST") for i in range(50)]
    calls.append(Recovered(_record("silent"), None, "POST"))  # no hangup_url: not told
    done = tell_applications(calls, notify)
    while not done.called:
        waiting = [d for d in in_flight if not d.called]
        assert waiting, "stalled"
        waiting[0].callback(None)
    assert len(in_flight) == 50
    assert most == RECOVERY_CALLBACKS_AT_ONCE
