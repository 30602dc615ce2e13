"""The OpenAPI document describes every route, with exactly the fields each handler takes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from lxml import html

from telephony.api._http import ApiRequest, Route
from telephony.api.calls_v1 import CallsAPI
from telephony.api.conference_v1 import ConferenceAPI
from telephony.api.directory_v1 import DirectoryAPI
from telephony.api.docs_page import render_docs
from telephony.api.openapi import OPERATIONS, PREFIX, build_document, path_template, undocumented
from telephony.api.recordings_v1 import RecordingsAPI
from tests.api.conftest import Api

ensure = pytest_twisted.ensureDeferred


def all_routes() -> list[Route]:
    # The handlers are never run here, only asked which parameters they take.
    return [
        *DirectoryAPI(None, "example.test").routes(),  # type: ignore[arg-type]
        *CallsAPI(None, None).routes(),  # type: ignore[arg-type]
        *ConferenceAPI(None, None).routes(),  # type: ignore[arg-type]
        *RecordingsAPI(None, None, None).routes(),  # type: ignore[arg-type]
    ]


class _AllowCalledError(Exception):
    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)


@attrs.frozen
class _Probe(ApiRequest):
    """A request whose ``allow()`` reports the names the handler accepts, then stops it."""

    def allow(self, names: Iterable[str]) -> None:
        raise _AllowCalledError(names)


def accepted(route: Route) -> set[str]:
    """The parameter names *route*'s handler accepts: every handler calls allow() first."""
    args = {name: "1" for name in route.pattern.groupindex}
    coro = route.handler(_Probe(route.method, {}, args, "/v1/Account/MA0"))
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except _AllowCalledError as allowed:
        return allowed.names
    finally:
        coro.close()  # type: ignore[attr-defined]
    raise AssertionError(f"{route.method} {path_template(route)} did not call allow() first")


def test_every_route_is_documented_and_nothing_else() -> None:
    routes = all_routes()
    assert undocumented(routes) == []
    assert {(r.method, path_template(r)) for r in routes} == set(OPERATIONS)


def test_a_new_route_without_documentation_is_reported() -> None:
    extra = Route("GET", re.compile(r"/Conference/(?P<name>[^/]+)/"), all_routes()[0].handler)
    assert undocumented([*all_routes(), extra]) == ["GET /Conference/{name}/"]
    doc = build_document([extra])
    assert doc["paths"][f"{PREFIX}/Conference/{{name}}/"]["get"]["summary"] == "Undocumented"


@pytest.mark.parametrize("route", all_routes(), ids=lambda r: f"{r.method} {path_template(r)}")
def test_documented_fields_are_the_ones_the_handler_accepts(route: Route) -> None:
    op = OPERATIONS[(route.method, path_template(route))]
    assert {f.name for f in op.fields} == accepted(route)
    assert len(op.fields) == len({f.name for f in op.fields}), "a field listed twice"


def test_the_document_is_valid_openapi_3_1_with_both_body_encodings() -> None:
    import schemathesis

    doc = build_document(all_routes())
    schemathesis.openapi.from_dict(doc).validate()
    for path, item in doc["paths"].items():
        assert path.startswith(PREFIX)
        for method, op in item.items():
            names = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert names == re.findall(r"{(\w+)}", path)
            if method == "post":
                assert set(op["requestBody"]["content"]) == {
                    "application/json",
                    "application/x-www-form-urlencoded",
                }
            else:
                assert "requestBody" not in op
            assert "401" in op["responses"]
    assert doc["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"


def test_docs_page_shows_every_operation_field_and_body() -> None:
    doc = build_document(all_routes())
    page = html.fromstring(render_docs(doc))
    assert page.xpath("//script") == []
    assert [e.get("href") for e in page.xpath("//link")] == []
    text = page.text_content()
    for op in OPERATIONS.values():
        (section,) = page.xpath(f'//*[@id="{op.operation_id}"]/..')
        codes = {c.text_content() for c in section.xpath(".//code")}
        assert PREFIX + op.path in codes
        assert {f.name for f in op.fields} <= codes, op.operation_id
    for name in doc["components"]["schemas"]:
        assert page.xpath(f'//*[@id="schema-{name}"]')
    assert "call_uuid" in text


@ensure
async def test_served_without_auth(api: Api) -> None:
    response = await treq.get(api.root + "/v1/openapi.json")
    assert response.code == 200
    doc: Any = await response.json()
    assert f"{PREFIX}/Endpoint/" in doc["paths"]
    response = await treq.get(api.root + "/docs")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    # The API itself still needs auth, and unknown paths under /v1 stay JSON errors.
    response = await treq.get(api.base + "/Endpoint/")
    assert response.code == 401
    code, body = await api.call("GET", api.root + "/v1/nothing")
    assert code == 401
    assert "error" in body
