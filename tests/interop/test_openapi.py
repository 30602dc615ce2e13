"""Schemathesis, driven by the server's own ``/v1/openapi.json``, against the real server.

Every operation (directory and calls) gets generated requests, valid and invalid, as
JSON and as forms, with the right Basic credentials; no answer may be a 5xx, and every
answer must be documented (status, content type, body schema).  There is no live call
or conference here, so their operations must answer clean 404s and 400s.  A fixed seed
(``derandomize``) and a small ``max_examples`` keep it deterministic and quick.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from telephony.api.docs_page import render_docs
from telephony.api.openapi import OPERATIONS, PREFIX
from tests.serverproc import Server, running_server

pytestmark = pytest.mark.interop

#: Examples per operation and mode; TELEPHONY_SCHEMATHESIS_EXAMPLES=500 digs deeper.
EXAMPLES = int(os.environ.get("TELEPHONY_SCHEMATHESIS_EXAMPLES", "15"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("openapi") / "var") as s:
        yield s


@pytest.fixture(scope="module")
def document(server: Server) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.base_url}/v1/openapi.json", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/json"
        loaded: dict[str, Any] = json.load(response)
    return loaded


@pytest.fixture(scope="module")
def api_schema(server: Server, document: dict[str, Any]) -> Any:
    # Our own account's path: any other auth_id is (rightly) a 401, which would leave
    # the operations behind it untested.
    auth_id, _ = server.credentials()
    document = copy.deepcopy(document)
    for item in document["paths"].values():
        for op in item.values():
            for param in op["parameters"]:
                if param["name"] == "auth_id":
                    param["schema"] = {"type": "string", "enum": [auth_id]}
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server.base_url, basic_auth=server.credentials())
    return schema


def test_the_document_is_the_one_for_every_route(document: dict[str, Any]) -> None:
    served = {
        (method.upper(), path.removeprefix(PREFIX))
        for path, item in document["paths"].items()
        for method in item
    }
    assert served == set(OPERATIONS)


# One test per operation and mode (schema-valid data, and data that breaks the schema),
# written with Hypothesis directly: schemathesis' lazy pytest fixture reaches into
# pytest internals that pytest 9 no longer has.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(
    ("method", "path"), sorted(OPERATIONS), ids=[f"{m} {p}" for m, p in sorted(OPERATIONS)]
)
def test_no_server_error_and_no_schema_violation(
    api_schema: Any, server: Server, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[PREFIX + path][method]
    credentials = server.credentials()
    auth_id = credentials[0]
    fixed = {"auth_id": auth_id}
    if mode is GenerationMode.POSITIVE:
        # Valid requests name a resource that exists, so that its real shape is checked
        # (a DELETE removes it on the first example; the others see the 404).
        fixed.update(_existing(server, path))

    # auth_id stays ours in both modes: a wrong one is a 401 before anything else.
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=10)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    seen: dict[int, int] = {}
    run()
    if mode is GenerationMode.POSITIVE:
        assert 401 not in seen, "valid requests carry valid credentials"
        # Calls, recordings and conferences need a real call to exist: their lists only.
        listed = (method, path) in (("GET", "/Call/"), ("GET", "/Recording/"))
        if not path.startswith(("/Call/", "/Request/", "/Recording/", "/Conference/{")) or listed:
            assert any(200 <= status < 300 for status in seen), seen  # real resources


_NUMBERS = itertools.count(1)


def _post(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    auth_id, token = server.credentials()
    request = urllib.request.Request(
        f"{server.base_url}/v1/Account/{auth_id}{path}",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{auth_id}:{token}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        created: dict[str, Any] = json.load(response)
    return created


def _existing(server: Server, path: str) -> dict[str, str]:
    """A fresh resource of the kind *path* names, as its path parameter."""
    app = {"app_name": "schemathesis", "answer_url": "http://127.0.0.1:9/answer"}
    if "{app_id}" in path:
        return {"app_id": _post(server, "/Application/", app)["app_id"]}
    if "{endpoint_id}" in path:
        body = {"username": "fuzz", "password": "secret", "alias": "Fuzz"}
        return {"endpoint_id": _post(server, "/Endpoint/", body)["endpoint_id"]}
    if "{number}" in path:
        number = f"1415555{next(_NUMBERS):04d}"
        _post(server, "/Number/", {"numbers": number, "carrier": "fuzz", "region": "US"})
        return {"number": number}
    return {}


def test_docs_and_openapi_are_served_without_auth(server: Server, document: Any) -> None:
    with urllib.request.urlopen(f"{server.base_url}/docs", timeout=5) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.read() == render_docs(document)
    auth_id, _ = server.credentials()
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{server.base_url}/v1/Account/{auth_id}/Call/", timeout=5)
    assert excinfo.value.code == 401


def test_no_call_was_placed(server: Server) -> None:
    """Generated destinations never became calls (none may leave loopback).

    Looks for the originator's own log line: the word "outbound" alone also appears
    in the access log when the generated requests list ``/Call/outbound/``.
    """
    assert re.search(r"call \S+: outbound .* -> ", server.log()) is None
