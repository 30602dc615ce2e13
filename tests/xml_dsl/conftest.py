"""Fail any xml_dsl test that leaves an unhandled error in a Deferred behind."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture(autouse=True)
def no_unhandled_deferred_errors() -> Iterator[None]:
    seen: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if "Unhandled error in Deferred" in str(event.get("log_format", "")):
            failure = event.get("log_failure")
            seen.append(repr(failure.value) if failure is not None else "?")

    globalLogPublisher.addObserver(observer)
    try:
        yield
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert seen == [], f"unhandled errors in Deferreds: {seen}"
