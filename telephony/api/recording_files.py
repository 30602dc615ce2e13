"""``/recordings/<id>.<format>``: recording files, for the REST credentials only.

A recording is a conversation: it is served only to a request carrying the REST
API's own HTTP Basic credentials (the auth ID and token), as the API itself.
Names are checked against the one shape recordings have (a random UUID and
``.wav`` or ``.mp3``) before any path is built, so nothing else under the data
directory can be reached (no ``..``, no partial or trashed files), and the
directory itself is never listed.  Files are served by ``twisted.web.static``
(ranges, HEAD, streaming without reading them whole).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from twisted.web import resource, server, static

from telephony.api._http import new_api_id

__all__ = ("RecordingFiles",)

_NAME = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(wav|mp3)")
_TYPES = {b"wav": "audio/wav", b"mp3": "audio/mpeg"}


class _Error(resource.Resource):
    """A JSON error in the API's shape."""

    isLeaf = True

    def __init__(self, status: int, message: str, challenge: bool = False) -> None:
        super().__init__()
        self.status = status
        self.message = message
        self.challenge = challenge

    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json")
        if self.challenge:
            request.setHeader(b"www-authenticate", b'Basic realm="telephony"')
        return json.dumps({"api_id": new_api_id(), "error": self.message}).encode()


class RecordingFiles(resource.Resource):
    """The recordings directory, one authenticated file at a time.

    :param directory: where finished recordings are.
    :param check_auth: ``(user, password) -> bool``, constant-time (the REST check).
    """

    def __init__(self, directory: Path, check_auth: Callable[[str, str], bool]) -> None:
        super().__init__()
        self.directory = directory
        self._check_auth = check_auth

    def _authenticated(self, request: server.Request) -> bool:
        user = request.getUser().decode("utf-8", "replace")
        password = request.getPassword().decode("utf-8", "replace")
        return self._check_auth(user, password)

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if not self._authenticated(request):
            return _Error(401, "authentication failed: use the REST API's auth ID and token", True)
        match = _NAME.fullmatch(path)
        if match is None or request.postpath:
            return _Error(404, "no such recording")
        file = self.directory / path.decode("ascii")
        if not file.is_file():
            return _Error(404, "no such recording")
        served = static.File(str(file), defaultType=_TYPES[match.group(1)])
        served.contentTypes = {".wav": _TYPES[b"wav"], ".mp3": _TYPES[b"mp3"]}
        return served

    def render(self, request: server.Request) -> bytes:
        """The directory itself: never listed."""
        if not self._authenticated(request):
            return _Error(401, "authentication failed", True).render(request)
        return _Error(404, "recordings are not listed here; GET /Recording/ lists them").render(
            request
        )
