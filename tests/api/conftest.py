"""The REST site in-process on a real loopback port, over a real SQLite directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from telephony.api.directory_v1 import DirectoryAPI
from telephony.api.site import build_site
from telephony.credentials import Credentials
from telephony.directory import Directory

CREDS = Credentials("MA" + "ABCDEFGH12" * 1 + "ABCDEFGH", "T" * 40)


@attrs.define
class Api:
    """A client for one test: JSON in and out, Basic auth by default."""

    root: str
    creds: Credentials

    @property
    def base(self) -> str:
        return f"{self.root}/v1/Account/{self.creds.auth_id}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {
            "auth": auth or (self.creds.auth_id, self.creds.auth_token),
            "params": params,
        }
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"] = headers or {"Content-Type": "application/json"}
        if form is not None:
            kwargs["data"] = form
        url = path if path.startswith("http") else self.base + path
        response = await treq.request(method, url, **kwargs)
        text = await response.content()
        return response.code, json.loads(text) if text else None


@pytest.fixture
def api(directory: Directory) -> Iterator[Api]:
    rest = DirectoryAPI(directory, "example.test")
    site = build_site(
        directory=directory,
        auth_id=CREDS.auth_id,
        check_auth=CREDS.check,
        routes=rest.routes(),
        clock=reactor,
        started_at=reactor.seconds(),
    )
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield Api(f"http://127.0.0.1:{port.getHost().port}", CREDS)
    pytest_twisted.blockon(port.stopListening())
