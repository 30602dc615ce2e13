"""The HTTP site: REST v1 under ``/v1/Account/{auth_id}/``, its OpenAPI document at
``/v1/openapi.json`` and page at ``/docs``, status, health, built-in apps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web import server
from twisted.web.resource import Resource

from telephony.api._http import BoundedRequest, JSONRouter, Route
from telephony.api.builtin_apps import DirectDialResource
from telephony.api.docs_page import DocsPage, OpenAPIResource
from telephony.api.openapi import build_document
from telephony.api.recording_files import RecordingFiles
from telephony.api.status import HealthResource, Section, StatusPage
from telephony.directory import Directory

__all__ = ("build_site",)


class _VersionOne(Resource):
    """``/v1``: the OpenAPI document at ``openapi.json`` (no auth), the API elsewhere."""

    def __init__(self, api: Resource, openapi: Resource) -> None:
        super().__init__()
        self._api = api
        self._openapi = openapi

    def getChild(self, path: bytes, request: server.Request) -> Resource:
        if path == b"openapi.json" and not request.postpath:
            return self._openapi
        return self._api  # a leaf: it answers for the whole path

    def render(self, request: server.Request) -> Any:
        return self._api.render(request)


def build_site(
    *,
    directory: Directory,
    auth_id: str,
    check_auth: Callable[[str, str], bool],
    routes: list[Route],
    clock: IReactorTime,
    started_at: float,
    status_sections: tuple[Section, ...] = (),
    live_calls: Callable[[], list[dict[str, Any]]] | None = None,
    recordings_dir: Path | None = None,
    live_conferences: Callable[[], list[dict[str, Any]]] | None = None,
) -> server.Site:
    """Assemble the resource tree; tracebacks are never shown to clients."""
    root = Resource()
    status = StatusPage(directory, clock, started_at, status_sections, live_calls, live_conferences)
    root.putChild(b"", status)
    root.putChild(b"healthz", HealthResource(directory))
    account = JSONRouter(routes, check_auth, prefix=f"/v1/Account/{auth_id}/")
    document = build_document(routes)
    root.putChild(b"v1", _VersionOne(account, OpenAPIResource(document)))
    root.putChild(b"docs", DocsPage(document))
    apps = Resource()
    apps.putChild(b"direct-dial", DirectDialResource())
    root.putChild(b"apps", apps)
    if recordings_dir is not None:
        recordings_dir.mkdir(parents=True, exist_ok=True)
        # Only with the REST credentials; unguessable names, never listed.
        root.putChild(b"recordings", RecordingFiles(recordings_dir, check_auth))
    site = server.Site(root)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    return site
