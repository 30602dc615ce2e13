"""The Recording API and the recording files, in-process over a real SQLite store.

The site runs on a real loopback port; rows and files are real; time for
``recording_storage_duration`` comes from a ``task.Clock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from telephony.api.recordings_v1 import RecordingsAPI
from telephony.api.site import build_site
from telephony.directory import Directory
from telephony.directory.database import Database
from telephony.directory.recordings import TRASH, RecordingRow, RecordingStore, add_time_text
from tests.api.conftest import CREDS, Api

ensure = pytest_twisted.ensureDeferred
DAY = 86400.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


@attrs.define
class Env:
    api: Api
    store: RecordingStore
    clock: Clock
    directory: Path

    async def add(
        self, n: int, *, call_uuid: str = "call-1", age_days: float = 0.0
    ) -> RecordingRow:
        when = T0 - age_days * DAY
        row = RecordingRow(
            recording_id=f"{n:08x}-0000-4000-8000-000000000000",
            call_uuid=call_uuid,
            recording_format="mp3",
            recording_type="normal",
            channels=2,
            recording_duration_ms=61_500,
            recording_start_ms=int(when * 1000) - 61_500,
            recording_end_ms=int(when * 1000),
            add_time=add_time_text(when),
            add_epoch=when,
            from_number="18004321321",
            to_number="18001231234",
            conference_name=None,
            conference_uuid=None,
            file_bytes=3,
        )
        (self.directory / row.file_name).write_bytes(b"ID3")
        await self.store.add(row)
        return row


@pytest.fixture
def env(directory: Directory, database: Database, tmp_path: Path) -> Iterator[Env]:
    clock = Clock()
    clock.advance(T0)
    recordings = tmp_path / "recordings"
    store = RecordingStore(database, recordings, maybeDeferred)
    rest = RecordingsAPI(store, lambda name: f"http://files.test/recordings/{name}", clock)
    site = build_site(
        directory=directory,
        auth_id=CREDS.auth_id,
        check_auth=CREDS.check,
        routes=rest.routes(),
        clock=reactor,
        started_at=reactor.seconds(),
        recordings_dir=recordings,
    )
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield Env(Api(f"http://127.0.0.1:{port.getHost().port}", CREDS), store, clock, recordings)
    pytest_twisted.blockon(port.stopListening())


@ensure
async def test_get_shows_plivo_fields(env: Env) -> None:
    row = await env.add(1)
    status, body = await env.api.call("GET", f"/Recording/{row.recording_id}/")
    assert status == 200
    assert body["recording_id"] == row.recording_id
    assert body["recording_url"] == f"http://files.test/recordings/{row.recording_id}.mp3"
    assert body["recording_format"] == "mp3"
    assert body["recording_type"] == "normal"
    assert body["recording_duration_ms"] == "61500.00000"
    assert body["recording_end_ms"] == f"{int(T0 * 1000)}.00000"
    assert body["rounded_recording_duration"] == 120
    assert body["recording_storage_duration"] == 1
    assert body["add_time"] == "2027-01-15 08:00:00.000000+00:00"
    assert body["conference_name"] is None
    assert body["resource_uri"] == f"/v1/Account/{CREDS.auth_id}/Recording/{row.recording_id}/"


@ensure
async def test_list_filters_and_pages(env: Env) -> None:
    old = await env.add(1, age_days=3)
    await env.add(2, call_uuid="call-2")
    newest = await env.add(3, age_days=-0.5)
    status, body = await env.api.call("GET", "/Recording/", params={"limit": "2"})
    assert status == 200
    assert body["meta"]["total_count"] == 3
    assert body["objects"][0]["recording_id"] == newest.recording_id
    assert body["meta"]["next"].endswith("limit=2&offset=2")
    _, body = await env.api.call("GET", "/Recording/", params={"call_uuid": "call-2"})
    assert [o["call_uuid"] for o in body["objects"]] == ["call-2"]
    _, body = await env.api.call("GET", "/Recording/", params={"add_time__lt": "2027-01-14 00:00"})
    assert [o["recording_id"] for o in body["objects"]] == [old.recording_id]
    params = {"recording_storage_duration__gt": "4"}  # 3 days old: stored 4 days
    _, body = await env.api.call("GET", "/Recording/", params=params)
    assert body["objects"] == []
    env.clock.advance(DAY)  # a day later the old one has been stored 5 days
    _, body = await env.api.call("GET", "/Recording/", params=params)
    assert [(o["recording_id"], o["recording_storage_duration"]) for o in body["objects"]] == [
        (old.recording_id, 5)
    ]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"add_time__gt": "yesterday"}, "add_time__gt: a UTC time as YYYY-MM-DD HH:MM"),
        ({"add_time": "2027-02-30 10:00"}, "add_time: a UTC time"),
        ({"recording_storage_duration__lt": "-1"}, "recording_storage_duration__lt: must be"),
        ({"limit": "50"}, "limit: must be between 1 and 20"),
        ({"mpc_name": "room"}, "mpc_name: multiparty calls are not supported"),
        ({"add_time__between": "x"}, "add_time__between: unknown parameter"),
    ],
)
@ensure
async def test_bad_filters_answer_400_naming_the_field(
    env: Env, params: dict[str, str], error: str
) -> None:
    status, body = await env.api.call("GET", "/Recording/", params=params)
    assert (status, body["error"][: len(error)]) == (400, error)


@ensure
async def test_delete_removes_the_row_and_the_file(env: Env) -> None:
    row = await env.add(1)
    path = env.directory / row.file_name
    assert path.exists()
    status, _ = await env.api.call("DELETE", f"/Recording/{row.recording_id}/")
    assert status == 204
    assert not path.exists()
    assert list((env.directory / TRASH).iterdir()) == []
    assert (await env.api.call("GET", f"/Recording/{row.recording_id}/"))[0] == 404
    assert (await env.api.call("DELETE", f"/Recording/{row.recording_id}/"))[0] == 404
    assert (await env.api.call("GET", "/Recording/../../etc/"))[0] in (400, 404)


class _FailingCommit:
    """The real database, but every transaction fails after its work (a full disk)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def run_interaction(self, fn: Any) -> Any:
        def txn(cur: Any) -> Any:
            fn(cur)
            raise RuntimeError("disk I/O error")  # adbapi rolls the transaction back

        return self.db.run_interaction(txn)

    def add_writer(self, drained: Any) -> None:
        """Group commits register to be drained at stop (telephony.directory.database)."""
        self.db.add_writer(drained)


@ensure
async def test_a_failed_delete_keeps_both(env: Env, database: Database) -> None:
    row = await env.add(1)
    failing = RecordingStore(_FailingCommit(database), env.directory, maybeDeferred)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await failing.delete(row.recording_id)
    assert (env.directory / row.file_name).exists()
    assert await env.store.get(row.recording_id) == row


@ensure
async def test_recover_settles_an_interrupted_delete(env: Env) -> None:
    kept = await env.add(1)
    trash = env.directory / TRASH
    trash.mkdir()
    (env.directory / kept.file_name).rename(trash / kept.file_name)  # crashed before commit
    gone = trash / "00000009-0000-4000-8000-000000000000.mp3"  # crashed after commit
    gone.write_bytes(b"ID3")
    assert await env.store.recover() == 2
    assert (env.directory / kept.file_name).exists()
    assert not gone.exists()


@ensure
async def test_files_need_the_rest_credentials(env: Env) -> None:
    row = await env.add(1)
    url = f"{env.api.root}/recordings/{row.file_name}"
    anonymous = await treq.get(url)
    assert anonymous.code == 401
    assert anonymous.headers.getRawHeaders("www-authenticate") == ['Basic realm="telephony"']
    await anonymous.content()
    wrong = await treq.get(url, auth=(CREDS.auth_id, "wrong"))
    assert wrong.code == 401
    await wrong.content()
    ok = await treq.get(url, auth=(CREDS.auth_id, CREDS.auth_token))
    assert ok.code == 200
    assert ok.headers.getRawHeaders("content-type") == ["audio/mpeg"]
    assert await ok.content() == b"ID3"
    (env.directory / "partial").mkdir()
    (env.directory / "partial" / row.file_name).write_bytes(b"x")
    for path in ("", "partial/" + row.file_name, "..%2Fsecret", "%2E%2E/telephony.sqlite3",
                 row.file_name + "/x", row.recording_id + ".txt"):  # fmt: skip
        response = await treq.get(
            f"{env.api.root}/recordings/{path}", auth=(CREDS.auth_id, CREDS.auth_token)
        )
        assert response.code == 404, path
        await response.content()
