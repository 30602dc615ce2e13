"""REST v1 for recordings, with Plivo's paths, fields and filters.

``GET /Recording/`` lists recordings newest first, filtered by ``call_uuid``,
``from_number``, ``to_number``, ``conference_name``, ``conference_uuid``,
``add_time`` and ``recording_storage_duration`` (the last two also with
``__gt``/``__gte``/``__lt``/``__lte``); ``GET /Recording/{id}/`` gets one;
``DELETE /Recording/{id}/`` removes its row and its file together.  Differences
from Plivo, said here and in ``/docs``: no seven-day default window (every
recording is listed), no sub-accounts or multiparty calls (a 400 says so), and
costs are always zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import attrs
from twisted.internet.interfaces import IReactorTime

from telephony.api._http import ApiRequest, HTTPError, Reply, Route, new_api_id
from telephony.directory import FieldError, rules
from telephony.directory.recordings import FILTERS, RecordingRow, RecordingStore

__all__ = ("RecordingsAPI", "recording_json")

_SDK_CALLBACK = ("callback_url", "callback_method")
_BOUNDS = ("", "__gt", "__gte", "__lt", "__lte")
_BOUNDED = ("add_time", "recording_storage_duration")
#: Plivo's time filter: ``YYYY-MM-DD HH:MM[:ss[.uuuuuu]]``, UTC.
_ADD_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?")
_ADD_TIME_RULE = "a UTC time as YYYY-MM-DD HH:MM[:ss[.uuuuuu]]"
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _add_time(name: str, value: object) -> str:
    """A filter's time, normalized to the stored form (``…:SS.ffffff``)."""
    match = _ADD_TIME.fullmatch(str(value).strip())
    if match is None:
        raise FieldError(name, _ADD_TIME_RULE)
    day, hour, minute, second, fraction = match.groups()
    text = f"{day} {hour}:{minute}:{second or '00'}.{(fraction or '').ljust(6, '0')}"
    try:
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        raise FieldError(name, f"{_ADD_TIME_RULE} (a real date and time)") from None
    return text


def _decimal(value: int) -> str:
    """Plivo writes these as decimal strings: ``"345100.00000"``."""
    return f"{value}.00000"


def recording_json(base_uri: str, row: RecordingRow, url: str, now: float) -> dict[str, Any]:
    """A recording as Plivo shows it (storage costs are zero here)."""
    return {
        "add_time": f"{row.add_time}+00:00",
        "call_uuid": row.call_uuid,
        "conference_name": row.conference_name,
        "conference_uuid": row.conference_uuid,
        "from_number": row.from_number,
        "to_number": row.to_number,
        "monthly_recording_storage_amount": "0.00000",
        "recording_duration_ms": _decimal(row.recording_duration_ms),
        "recording_end_ms": _decimal(row.recording_end_ms),
        "recording_format": row.recording_format,
        "recording_id": row.recording_id,
        "recording_start_ms": _decimal(row.recording_start_ms),
        "recording_storage_duration": 1 + max(0, int((now - row.add_epoch) // 86400)),
        "recording_storage_rate": "0.00000",
        "recording_type": row.recording_type,
        "recording_url": url,
        "resource_uri": f"{base_uri}/Recording/{row.recording_id}/",
        "rounded_recording_duration": 60 * max(1, math.ceil(row.recording_duration_ms / 60000)),
    }


@attrs.define
class RecordingsAPI:
    """Handlers for ``/Recording/``; :meth:`routes` lists them.

    :ivar url_for: the URL a recording file (by name) is served at.
    """

    store: RecordingStore
    url_for: Callable[[str], str]
    clock: IReactorTime

    def routes(self) -> list[Route]:
        """Every route of this API."""
        one = r"/Recording/(?P<recording_id>[^/]+)/"
        return [
            Route("GET", re.compile(r"/Recording/"), self.list_recordings),
            Route("GET", re.compile(one), self.get_recording),
            Route("DELETE", re.compile(one), self.delete_recording),
        ]

    def _json(self, req: ApiRequest, row: RecordingRow) -> dict[str, Any]:
        return recording_json(req.base_uri, row, self.url_for(row.file_name), self.clock.seconds())

    async def list_recordings(self, req: ApiRequest) -> Reply:
        """GET /Recording/ with Plivo's filters, ``limit`` and ``offset``."""
        filters = {f"{name}{bound}" for name in _BOUNDED for bound in _BOUNDS}
        allowed = ("limit", "offset", *FILTERS, *filters, "subaccount", "mpc_name", "mpc_uuid")
        req.allow((*allowed, *_SDK_CALLBACK))
        for name in ("subaccount", "mpc_name", "mpc_uuid"):
            if req.params.get(name) not in (None, ""):
                what = "sub-accounts" if name == "subaccount" else "multiparty calls"
                raise FieldError(name, f"{what} are not supported by this server")
        limit = rules.parse_limit(req.params.get("limit", 20))
        offset = rules.parse_offset(req.params.get("offset", 0))
        chosen: dict[str, Any] = {}
        for name, value in sorted(req.params.items()):
            base = name.partition("__")[0]
            if base == "add_time":
                chosen[name] = _add_time(name, value)
            elif base == "recording_storage_duration":
                chosen[name] = rules.parse_int(name, value, 0, 100_000)
            elif base in FILTERS:
                chosen[name] = rules.parse_text(name, value, 128)
        page = await self.store.list(limit, offset, chosen, self.clock.seconds())
        query = {k: str(v) for k, v in req.params.items() if k not in ("limit", "offset")}

        def link(at: int) -> str:
            return f"{req.base_uri}/Recording/?{urlencode({**query, 'limit': limit, 'offset': at})}"

        following = offset + limit
        meta = {
            "limit": limit,
            "offset": offset,
            "total_count": page.total_count,
            "next": link(following) if following < page.total_count else None,
            "previous": link(max(0, offset - limit)) if offset else None,
        }
        objects = [self._json(req, row) for row in page.items]
        return Reply(200, {"api_id": new_api_id(), "meta": meta, "objects": objects})

    async def _row(self, req: ApiRequest) -> RecordingRow:
        recording_id = req.path_args["recording_id"]
        if not _ID.fullmatch(recording_id):
            raise HTTPError(404, f"recording {recording_id} not found")
        row = await self.store.get(recording_id)
        if row is None:
            raise HTTPError(404, f"recording {recording_id} not found")
        return row

    async def get_recording(self, req: ApiRequest) -> Reply:
        """GET /Recording/{id}/."""
        req.allow(_SDK_CALLBACK)
        row = await self._row(req)
        return Reply(200, {"api_id": new_api_id(), **self._json(req, row)})

    async def delete_recording(self, req: ApiRequest) -> Reply:
        """DELETE /Recording/{id}/: the row and the file, together."""
        req.allow(_SDK_CALLBACK)
        recording_id = req.path_args["recording_id"]
        if not _ID.fullmatch(recording_id) or not await self.store.delete(recording_id):
            raise HTTPError(404, f"recording {recording_id} not found")
        return Reply(204, None)
