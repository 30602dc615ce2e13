"""The server's REST API with nothing but urllib, for tests and benchmarks that need
many endpoints quickly (the plivo SDK is tested on its own in test_plivo_sdk.py)."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import attrs

from tests.serverproc import Server

__all__ = ("Endpoint", "RestClient")


@attrs.frozen
class Endpoint:
    """An endpoint created for a test: its ID, full SIP username and password."""

    endpoint_id: str
    username: str
    password: str


class RestClient:
    """``/v1/Account/{auth_id}/...`` with the server's credentials."""

    def __init__(self, server: Server) -> None:
        self.auth_id, token = server.credentials()
        self.base = f"{server.base_url}/v1/Account/{self.auth_id}"
        basic = base64.b64encode(f"{self.auth_id}:{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.base}{path}", data=data, headers=self.headers, method=method
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def create_endpoint(self, username: str, password: str, alias: str = "Test") -> Endpoint:
        created = self.call(
            "POST", "/Endpoint/", {"username": username, "password": password, "alias": alias}
        )
        return Endpoint(created["endpoint_id"], created["username"], password)

    def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/Endpoint/{endpoint_id}/")
        return result
