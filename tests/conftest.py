"""Shared fixtures.

pytest-twisted runs the global reactor in a greenlet; tests that need it use
``@pytest_twisted.ensureDeferred`` (or its ``inlineCallbacks``).  Plain pytest
has no trial janitor, so the ``clock`` fixture fails a test that leaves a
delayed call behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from twisted.internet.task import Clock

from telephony.directory import Directory
from telephony.directory.database import Database, open_sqlite

# Property tests are about correctness, not speed: no per-example deadline (Hypothesis's
# default, 200 ms, fails examples that a loaded CI machine merely ran slowly).  Modules
# that set their own settings (tests/sip/test_fuzz.py) keep them.
settings.register_profile("telephony", deadline=None)
settings.load_profile("telephony")


@pytest.fixture
def clock() -> Iterator[Clock]:
    """A fresh ``task.Clock``; the test fails if it leaves delayed calls pending."""
    c = Clock()
    yield c
    pending = c.getDelayedCalls()
    assert pending == [], f"delayed calls left pending: {pending!r}"


# A real SQLite file per test, migrated, on the real reactor's thread pool.


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "telephony.sqlite3"


@pytest.fixture
def database(db_path: Path) -> Iterator[Database]:
    db = open_sqlite(db_path)
    db.migrate_blocking()
    yield db
    db.close()


@pytest.fixture
def directory(database: Database) -> Directory:
    clock = Clock()
    clock.advance(1_800_000_000)
    return Directory(database, "example.test", clock)
