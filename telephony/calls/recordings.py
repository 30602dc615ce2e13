"""Recordings of calls: naming them, and filing them once their media is done.

Every recording (``<Record>``, ``recordSession``, ``startOnDialAnswer``, the REST
``Record`` of a live call) gets an unguessable ID (a random UUID, 122 bits) and
is written under ``partial/`` while it runs.  When the media side is done,
:meth:`CallRecordings.file` moves the file into the recordings directory (off the
reactor thread), stores its row (:class:`~telephony.directory.recordings.RecordingStore`)
and answers what the executor reports to the application: Plivo's ``RecordUrl``,
``RecordingID``, durations and times.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from media import RecordingResult
from telephony.directory.recordings import RecordingRow, RecordingStore, add_time_text
from xml_dsl import RecordResult

__all__ = ("CallInfo", "CallRecordings", "PendingRecording")

log = Logger()

#: Where recordings are written while they run, under the recordings directory.
PARTIAL = "partial"


@attrs.frozen
class PendingRecording:
    """A recording that has started: its ID, the file being written, its future URL."""

    recording_id: str
    file_format: str
    partial: Path
    final: Path
    url: str


@attrs.frozen
class CallInfo:
    """What a recording's row says of its call."""

    call_uuid: str
    from_number: str
    to_number: str


def _move_into_place(partial: Path, final: Path) -> int:
    os.replace(partial, final)
    return final.stat().st_size


class CallRecordings:
    """Names recordings and files them when they are done.

    :param directory: the recordings directory.
    :param url_for: the URL a recording file (by its name) is served at.
    :param store: the rows; ``None`` files the files alone (tests of the call layer).
    :param run_blocking: runs file moves off the reactor thread.
    :param clock: for the time a recording is filed.
    """

    def __init__(
        self,
        *,
        directory: Path,
        url_for: Callable[[str], str],
        store: RecordingStore | None,
        run_blocking: Callable[..., Deferred[Any]],
        clock: Any,
    ) -> None:
        self.directory = directory
        self.url_for = url_for
        self.store = store
        self._run = run_blocking
        self.clock = clock

    def begin(self, file_format: str) -> PendingRecording:
        """A new recording's ID and paths."""
        recording_id = str(uuid.uuid4())
        name = f"{recording_id}.{file_format}"
        return PendingRecording(
            recording_id,
            file_format,
            self.directory / PARTIAL / name,
            self.directory / name,
            self.url_for(name),
        )

    def file(
        self,
        call: CallInfo,
        pending: PendingRecording,
        result: RecordingResult,
        conference: tuple[str, str] | None = None,
    ) -> Deferred[RecordResult]:
        """Move the finished file into place, store its row; fires with what the
        application is told.  A row that cannot be stored is logged (the file stays).

        :param conference: for a conference's recording, the room's name and UUID (its
            row's type is then ``conference``).
        """
        duration_ms = round(result.duration * 1000)
        start_ms = round(result.started_at * 1000)
        report = RecordResult(
            url=pending.url,
            recording_id=pending.recording_id,
            duration_ms=duration_ms,
            start_ms=start_ms,
            end_ms=start_ms + duration_ms,
            digits=result.digits,
        )
        moved: Deferred[int] = self._run(_move_into_place, result.path, pending.final)

        def store(size: int) -> Deferred[None] | None:
            if self.store is None:
                return None
            now = self.clock.seconds()
            row = RecordingRow(
                recording_id=pending.recording_id,
                call_uuid=call.call_uuid,
                recording_format=pending.file_format,
                recording_type="normal" if conference is None else "conference",
                channels=result.channels,
                recording_duration_ms=duration_ms,
                recording_start_ms=start_ms,
                recording_end_ms=start_ms + duration_ms,
                add_time=add_time_text(now),
                add_epoch=now,
                from_number=call.from_number,
                to_number=call.to_number,
                conference_name=conference[0] if conference else None,
                conference_uuid=conference[1] if conference else None,
                file_bytes=size,
            )
            return self.store.add(row).addErrback(
                lambda f: log.failure(
                    "call {call_uuid}: recording {recording_id} not stored",
                    f,
                    call_uuid=call.call_uuid,
                    recording_id=pending.recording_id,
                )
            )

        moved.addCallback(store)
        log.info(
            "call {call_uuid}: recording {recording_id} ({duration:.1f} s, {reason})",
            call_uuid=call.call_uuid,
            recording_id=pending.recording_id,
            duration=result.duration,
            reason=result.reason.value,
        )
        return moved.addCallback(lambda _: report)
