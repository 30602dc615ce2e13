"""JSON bodies that json.loads accepts but the server cannot use: a 400, not a 500."""

from __future__ import annotations

import pytest_twisted

from tests.api.conftest import Api

ensure = pytest_twisted.ensureDeferred


@ensure
async def test_a_lone_surrogate_is_a_400_naming_the_field(api: Api) -> None:
    code, _ = await api.call(
        "POST", "/Number/", {"numbers": "14155550100", "carrier": "t", "region": "US"}
    )
    assert code == 201
    # json.dumps writes "\ud800" as the escape; json.loads gives back a lone surrogate.
    code, body = await api.call("POST", "/Number/14155550100/", {"alias": "\ud800"})
    assert (code, body["error"]) == (400, "alias: not valid Unicode (a lone surrogate)")
    code, body = await api.call("POST", "/Number/", {"numbers": ["\udfff"], "carrier": "t"})
    assert (code, body["error"]) == (400, "numbers: not valid Unicode (a lone surrogate)")
    code, body = await api.call("POST", "/Application/", raw=b'{"\\ud800": 1}')
    assert (code, body["error"]) == (400, "body: a parameter name is not valid Unicode")
    code, number = await api.call("GET", "/Number/14155550100/")
    assert (code, number["alias"]) == (200, "")


@ensure
async def test_json_nested_past_the_parser_recursion_limit_is_a_400(api: Api) -> None:
    deep = b'{"app_name": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    code, body = await api.call("POST", "/Application/", raw=deep)
    assert (code, body["error"]) == (400, "body: nested too deeply")


@ensure
async def test_a_content_type_that_is_not_utf8_is_read_not_a_500(api: Api) -> None:
    """Found by fuzzing (tools/fuzz.py rest): reading Content-Type as text raised
    UnicodeDecodeError for a byte like 0xff, and the API answered 500."""
    body = b'{"app_name": "x", "answer_url": "http://127.0.0.1/a"}'
    code, reply = await api.call(
        "POST",
        "/Application/",
        raw=body,
        headers={b"Content-Type": b"application/json\xff"},  # type: ignore[dict-item]
    )
    assert code == 400, reply  # not JSON by its type: read as a form, which lacks fields
    assert reply["error"]
    code, _ = await api.call(
        "POST",
        "/Application/",
        raw=body,
        headers={b"Content-Type": b"application/json; x=\xff"},  # type: ignore[dict-item]
    )
    assert code == 201
