"""The operator's view over HTTP: an HTML status page at ``/`` and ``/healthz``."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from telephony._version import __version__
from telephony.directory import Directory

__all__ = ("HealthResource", "StatusPage")

log = Logger()

#: Extra sections of the page: a title and a function giving rows (name → value).
Section = tuple[str, Callable[[], Mapping[str, object]]]


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"


class StatusPage(Resource):
    """Version, uptime and counts of what the server holds, as a small HTML page.

    :param sections: live figures from other services (registrations, calls), each
        read when the page is rendered.
    """

    isLeaf = True

    def __init__(
        self,
        directory: Directory,
        clock: IReactorTime,
        started_at: float,
        sections: tuple[Section, ...] = (),
        live_calls: Callable[[], list[dict[str, Any]]] | None = None,
        live_conferences: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__()
        self._directory = directory
        self._clock = clock
        self._started_at = started_at
        self._sections = sections
        self._live_calls = live_calls
        self._live_conferences = live_conferences

    def render_GET(self, request: server.Request) -> int:
        d: Deferred[str] = self._directory.counts().addCallbacks(self._page, self._unavailable)
        d.addCallback(self._finish, request)
        return server.NOT_DONE_YET

    def _unavailable(self, failure: Failure) -> str:
        log.failure("Status page: the database did not answer", failure)
        return "<p>The database did not answer; see the server log.</p>"

    def _page(self, counts: Mapping[str, int]) -> str:
        now = self._clock.seconds()
        rows = {
            "Version": __version__,
            "Started": datetime.fromtimestamp(self._started_at, UTC).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            ),
            "Uptime": _uptime(now - self._started_at),
            "Endpoints": counts["endpoints"],
            "Applications": counts["applications"],
            "Numbers": counts["numbers"],
        }
        parts = [_table("Server", rows)]
        for title, source in self._sections:
            parts.append(_table(title, source()))
        if self._live_calls is not None:
            parts.append(_calls_table(self._live_calls()))
        if self._live_conferences is not None:
            parts.append(_conferences_table(self._live_conferences()))
        return "\n".join(parts)

    def _finish(self, body: str, request: server.Request) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setHeader("content-type", "text/html; charset=utf-8")
        request.write(
            (
                "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
                "<title>telephony status</title></head><body>"
                f"<h1>telephony</h1>\n{body}\n</body></html>\n"
            ).encode()
        )
        request.finish()


def _table(title: str, rows: Mapping[str, object]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<h2>{html.escape(title)}</h2>\n<table>{cells}</table>"


_CALL_COLUMNS = ("CallUUID", "Direction", "From", "To", "state", "duration")


def _calls_table(calls: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _CALL_COLUMNS)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(c.get(k, '')))}</td>" for k in _CALL_COLUMNS)
        + "</tr>"
        for c in calls[:200]
    )
    return f"<h2>Live calls ({len(calls)})</h2>\n<table><tr>{head}</tr>{rows}</table>"


_MEMBER_COLUMNS = (
    "room", "member_id", "call_uuid", "from", "muted", "deaf", "held", "talking", "floor",
    "joined", "recording",
)  # fmt: skip
#: Most conference members the page lists (as for calls).
MAX_LISTED = 200


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _conferences_table(members: list[dict[str, Any]]) -> str:
    """One row per member of every live room (the room's name first)."""
    rooms = len({m["room"] for m in members})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _MEMBER_COLUMNS)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(m.get(k, '')))}</td>" for k in _MEMBER_COLUMNS)
        + "</tr>"
        for m in members[:MAX_LISTED]
    )
    return (
        f"<h2>Live conferences ({_count(rooms, 'room')}, {_count(len(members), 'member')})</h2>\n"
        f"<table><tr>{head}</tr>{rows}</table>"
    )


class HealthResource(Resource):
    """``/healthz``: 200 when the database answers a query, 503 otherwise."""

    isLeaf = True

    def __init__(self, directory: Directory) -> None:
        super().__init__()
        self._directory = directory

    def render_GET(self, request: server.Request) -> int:
        d: Deferred[tuple[int, dict[str, str]]] = self._directory.counts().addCallbacks(
            lambda _: (200, {"status": "ok"}),
            lambda f: (503, {"status": "unavailable", "error": f.getErrorMessage()}),
        )

        def finish(result: tuple[int, dict[str, str]]) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setResponseCode(result[0])
            request.setHeader("content-type", "application/json")
            request.write(json.dumps(result[1]).encode())
            request.finish()

        d.addCallback(finish)
        return server.NOT_DONE_YET
