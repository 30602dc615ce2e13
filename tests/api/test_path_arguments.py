"""Path arguments are percent-decoded before handlers see them."""

from __future__ import annotations

import pytest_twisted

from tests.api.conftest import Api

ensure = pytest_twisted.ensureDeferred


@ensure
async def test_a_percent_encoded_path_argument_names_the_same_resource(api: Api) -> None:
    code, _ = await api.call(
        "POST", "/Number/", {"numbers": "+14155550100", "carrier": "t", "region": "US"}
    )
    assert code == 201
    for spelled in ("+14155550100", "%2B14155550100", "%2b14155550100", "14155550100"):
        code, body = await api.call("GET", f"/Number/{spelled}/")
        assert (code, body.get("number")) == (200, "14155550100"), spelled
    code, body = await api.call("GET", "/Endpoint/%31%32/")
    assert (code, body["error"]) == (404, "endpoint 12 not found")
