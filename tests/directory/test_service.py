"""The directory on a real SQLite file: rules that need stored state, atomicity, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from telephony.directory import ConflictError, Directory, FieldError, NotFoundError
from telephony.directory.database import SchemaError, open_sqlite
from telephony.directory.migrations import MIGRATIONS, Migration
from telephony.directory.models import ApplicationFields
from telephony.sip.digest import DigestAlgorithm, compute_ha1

ensure = pytest_twisted.ensureDeferred


def _fields(name: str = "ivr", **kw: object) -> ApplicationFields:
    return ApplicationFields(app_name=name, answer_url="http://127.0.0.1:9/a", **kw)  # type: ignore[arg-type]


@ensure
async def test_endpoint_gets_12_random_digits_and_only_ha1_hashes(
    directory: Directory, db_path: Path
) -> None:
    first = await directory.create_endpoint("yoda", "secret pw", "Yoda")
    second = await directory.create_endpoint("yoda", "secret pw", "Yoda")
    for endpoint in (first, second):
        assert endpoint.username.startswith("yoda")
        assert len(endpoint.username) == 16
        assert endpoint.username[4:].isdigit()
        assert len(endpoint.endpoint_id) == 14
    assert first.username != second.username
    assert first.ha1_md5 == compute_ha1(
        DigestAlgorithm.MD5, first.username, "example.test", "secret pw"
    )
    assert first.ha1_sha256 == compute_ha1(
        DigestAlgorithm.SHA256, first.username, "example.test", "secret pw"
    )
    raw = db_path.read_bytes() + Path(str(db_path) + "-wal").read_bytes()
    assert b"secret pw" not in raw


@ensure
async def test_endpoint_crud(directory: Directory) -> None:
    app = await directory.create_application(_fields())
    endpoint = await directory.create_endpoint("luke", "pw", "Luke", app.app_id)
    assert (await directory.get_endpoint(endpoint.endpoint_id)) == endpoint
    assert (await directory.find_endpoint(endpoint.username)) == endpoint
    assert (await directory.find_endpoint("nobody000000000000")) is None

    changed = await directory.update_endpoint(
        endpoint.endpoint_id, password="new", alias="Skywalker", app_id=None
    )
    assert changed.alias == "Skywalker"
    assert changed.app_id is None
    assert changed.ha1_md5 == compute_ha1(
        DigestAlgorithm.MD5, endpoint.username, "example.test", "new"
    )
    assert (await directory.get_endpoint(endpoint.endpoint_id)) == changed

    await directory.delete_endpoint(endpoint.endpoint_id)
    with pytest.raises(NotFoundError):
        await directory.get_endpoint(endpoint.endpoint_id)
    with pytest.raises(NotFoundError):
        await directory.delete_endpoint(endpoint.endpoint_id)


@ensure
async def test_unknown_app_id_is_refused_and_nothing_is_written(directory: Directory) -> None:
    with pytest.raises(FieldError, match=r"^app_id: no application with ID 999$"):
        await directory.create_endpoint("leia", "pw", "Leia", "999")
    assert (await directory.list_endpoints()).total_count == 0


@ensure
async def test_paging_is_oldest_first_with_total(directory: Directory) -> None:
    clock = directory._clock  # type: ignore[attr-defined]
    assert isinstance(clock, Clock)
    made = []
    for i in range(5):
        clock.advance(1)
        made.append(await directory.create_endpoint(f"u{i}", "pw", f"U{i}"))
    page = await directory.list_endpoints(limit=2, offset=2)
    assert page.total_count == 5
    assert [e.endpoint_id for e in page.items] == [made[2].endpoint_id, made[3].endpoint_id]


@ensure
async def test_only_one_default_app_of_each_kind(directory: Directory) -> None:
    a = await directory.create_application(_fields("a", default_endpoint_app=True))
    b = await directory.create_application(
        _fields("b", default_endpoint_app=True, default_number_app=True)
    )
    assert not (await directory.get_application(a.app_id)).fields.default_endpoint_app
    await directory.update_application(a.app_id, {"default_number_app": True})
    assert (await directory.get_application(a.app_id)).fields.default_number_app
    fresh_b = await directory.get_application(b.app_id)
    assert fresh_b.fields.default_endpoint_app
    assert not fresh_b.fields.default_number_app


@ensure
async def test_delete_application_cascades_by_default(directory: Directory) -> None:
    app = await directory.create_application(_fields())
    endpoint = await directory.create_endpoint("e", "pw", "E", app.app_id)
    (number,) = await directory.add_numbers(["18001231234"], "trunk", "US", app_id=app.app_id)
    await directory.delete_application(app.app_id)
    with pytest.raises(NotFoundError):
        await directory.get_endpoint(endpoint.endpoint_id)
    assert (await directory.get_number(number.number)).app_id is None


@ensure
async def test_delete_application_without_cascade_moves_endpoints(directory: Directory) -> None:
    old = await directory.create_application(_fields("old"))
    new = await directory.create_application(_fields("new"))
    kept = await directory.create_endpoint("e", "pw", "E", old.app_id)
    orphan_app = await directory.create_application(_fields("third"))
    orphan = await directory.create_endpoint("o", "pw", "O", orphan_app.app_id)
    await directory.delete_application(
        old.app_id, cascade=False, new_endpoint_application=new.app_id
    )
    assert (await directory.get_endpoint(kept.endpoint_id)).app_id == new.app_id
    await directory.delete_application(orphan_app.app_id, cascade=False)
    assert (await directory.get_endpoint(orphan.endpoint_id)).app_id is None


@ensure
async def test_adding_numbers_is_all_or_nothing(directory: Directory) -> None:
    await directory.add_numbers(["18001231234"], "trunk", "US")
    with pytest.raises(ConflictError, match="18001231234 is already added"):
        await directory.add_numbers(["18005550000", "18001231234"], "trunk", "US")
    page = await directory.list_numbers()
    assert [n.number for n in page.items] == ["18001231234"]
    filtered = await directory.list_numbers(number_startswith="1800555")
    assert filtered.total_count == 0


@ensure
async def test_builtin_application_is_created_once_and_keeps_operator_changes(
    directory: Directory,
) -> None:
    def desired(current: ApplicationFields | None) -> ApplicationFields:
        base = _fields("Direct Dial")
        return (
            base
            if current is None
            else ApplicationFields(app_name=current.app_name, answer_url="http://127.0.0.1:2/new")
        )

    first = await directory.ensure_builtin_application("direct_dial", desired)
    await directory.update_application(first.app_id, {"app_name": "My Dialer"})
    second = await directory.ensure_builtin_application("direct_dial", desired)
    assert second.app_id == first.app_id
    assert second.fields.app_name == "My Dialer"
    assert (
        await directory.get_application(first.app_id)
    ).fields.answer_url == "http://127.0.0.1:2/new"
    assert (await directory.list_applications()).total_count == 1


@ensure
async def test_data_survives_reopening_the_file(directory: Directory, db_path: Path) -> None:
    endpoint = await directory.create_endpoint("han", "pw", "Han")
    reopened = open_sqlite(db_path)
    try:
        assert reopened.migrate_blocking() == []
        again = Directory(reopened, "example.test", Clock())
        assert (await again.get_endpoint(endpoint.endpoint_id)) == endpoint
    finally:
        reopened.close()


def test_migrations_apply_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    db = open_sqlite(tmp_path / "m.sqlite3")
    try:
        assert db.migrate_blocking() == [m.version for m in MIGRATIONS]
        assert db.migrate_blocking() == []
        future = (
            *MIGRATIONS,
            Migration(999, "from the future", ("CREATE TABLE future (x INTEGER)",)),
        )
        assert db.migrate_blocking(future) == [999]
        with pytest.raises(SchemaError, match="schema version 999 is newer"):
            db.migrate_blocking()
    finally:
        db.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    db = open_sqlite(path)
    try:
        nxt = max(m.version for m in MIGRATIONS) + 1
        broken = (*MIGRATIONS, Migration(nxt, "broken", ("CREATE TABLE t2 (x INTEGER)", "NOT SQL")))
        with pytest.raises(sqlite3.OperationalError):
            db.migrate_blocking(broken)
        conn = sqlite3.connect(path)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        conn.close()
        assert versions == [m.version for m in MIGRATIONS]
        assert "t2" not in tables
    finally:
        db.close()


def test_database_file_is_private(db_path: Path, directory: Directory) -> None:
    assert db_path.stat().st_mode & 0o077 == 0


@ensure
async def test_binding_batches_fail_only_the_bad_change(
    directory: Directory, database: Any
) -> None:
    from telephony.directory.bindings import Binding, BindingStore

    store = BindingStore(database)
    alice = await directory.create_endpoint("alice", "pw", "Alice")

    def binding(user: str, uri: str) -> Binding:
        return Binding(user, uri, f"<{uri}>", 2e9, 1e9, "c", 1, "ua", "udp", "127.0.0.1", 5060)

    first = store.save(alice.username, [binding(alice.username, "sip:a@h1")], [])
    # These two queue behind the first and are written together, in one batch.
    good = store.save(alice.username, [binding(alice.username, "sip:a@h2")], [])
    bad = store.save("ghost000000000000", [binding("ghost000000000000", "sip:g@h")], [])
    await first
    await good
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    stored = await store.load(1.5e9)
    assert sorted(b.contact_uri for b in stored) == ["sip:a@h1", "sip:a@h2"]
    assert store.commits == 2


@ensure
async def test_cdr_writes_are_group_committed(database: Any) -> None:
    """Records written while a transaction runs share the next one; a bad one fails alone."""
    import attrs

    from telephony.calls.cdr import CallRecord, CdrStore

    store = CdrStore(database)
    base = CallRecord(
        "u0", None, None, "inbound", "alice", "1800", "", "completed", None, "cid",
        "2026-11-27 03:00:00", None, "2026-11-27 03:00:05", 5, 0, "NORMAL_CLEARING", 16, "Caller",
    )  # fmt: skip
    writes = [store.write(attrs.evolve(base, call_uuid=f"u{i}")) for i in range(5)]
    # A record the table refuses (NOT NULL end_time), queued with good ones.
    bad = store.write(attrs.evolve(base, call_uuid="bad", end_time=None))  # type: ignore[arg-type]
    later = store.write(attrs.evolve(base, call_uuid="u9", duration=9))
    for w in writes:
        await w
    await later
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    # The first write went alone; everything queued behind it shared one more.
    assert store._writes.commits == 2
    page = await store.list(limit=20, offset=0)
    assert sorted(r.call_uuid for r in page.items) == ["u0", "u1", "u2", "u3", "u4", "u9"]
    assert (await store.get("u9")).duration == 9  # type: ignore[union-attr]
    # Writing a record again replaces it.
    await store.write(attrs.evolve(base, call_uuid="u9", duration=12))
    assert (await store.get("u9")).duration == 12  # type: ignore[union-attr]


def test_binding_rows_follow_the_columns() -> None:
    """The store writes a binding's fields in _COLUMNS order, as load() reads them."""
    import attrs

    from telephony.directory.bindings import _COLUMNS, Binding, _row

    binding = Binding("u", "sip:u@h", "<sip:u@h>", 2e9, 1e9, "c", 7, "ua", "udp", "10.0.0.1", 5062)
    assert _row(binding) == attrs.astuple(binding)
    assert [f.name for f in attrs.fields(Binding)] == [c.strip() for c in _COLUMNS.split(",")]
    assert Binding(*_row(binding)) == binding
