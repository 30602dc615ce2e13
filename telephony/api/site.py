"""The HTTP site: REST v1 under ``/v1/Account/{auth_id}/``, status, health, built-in apps."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web import server
from twisted.web.resource import Resource

from telephony.api._http import BoundedRequest, JSONRouter, Route
from telephony.api.builtin_apps import DirectDialResource
from telephony.api.status import HealthResource, Section, StatusPage
from telephony.directory import Directory

__all__ = ("build_site",)


def build_site(
    *,
    directory: Directory,
    auth_id: str,
    check_auth: Callable[[str, str], bool],
    routes: list[Route],
    clock: IReactorTime,
    started_at: float,
    status_sections: tuple[Section, ...] = (),
) -> server.Site:
    """Assemble the resource tree; tracebacks are never shown to clients."""
    root = Resource()
    root.putChild(b"", StatusPage(directory, clock, started_at, status_sections))
    root.putChild(b"healthz", HealthResource(directory))
    account = JSONRouter(routes, check_auth, prefix=f"/v1/Account/{auth_id}/")
    root.putChild(b"v1", account)
    apps = Resource()
    apps.putChild(b"direct-dial", DirectDialResource())
    root.putChild(b"apps", apps)
    site = server.Site(root)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    return site
