"""Shared fixtures.

pytest-twisted runs the global reactor in a greenlet; tests that need it use
``@pytest_twisted.ensureDeferred`` (or its ``inlineCallbacks``).  Plain pytest
has no trial janitor, so the ``clock`` fixture fails a test that leaves a
delayed call behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock


@pytest.fixture
def clock() -> Iterator[Clock]:
    """A fresh ``task.Clock``; the test fails if it leaves delayed calls pending."""
    c = Clock()
    yield c
    pending = c.getDelayedCalls()
    assert pending == [], f"delayed calls left pending: {pending!r}"
