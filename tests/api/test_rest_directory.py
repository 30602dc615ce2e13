"""REST v1 over real HTTP: status codes, Plivo's JSON, errors that name the field."""

from __future__ import annotations

import pytest
import pytest_twisted
import treq

from tests.api.conftest import Api

ensure = pytest_twisted.ensureDeferred


async def _app(api: Api, **fields: object) -> str:
    code, body = await api.call(
        "POST", "/Application/", {"app_name": "ivr", "answer_url": "http://127.0.0.1:9/a", **fields}
    )
    assert code == 201, body
    return str(body["app_id"])


@ensure
async def test_every_response_has_an_api_id(api: Api) -> None:
    for method, path in [("GET", "/Endpoint/"), ("GET", "/Endpoint/1/"), ("PUT", "/Endpoint/")]:
        _, body = await api.call(method, path)
        assert len(body["api_id"]) == 36


@ensure
async def test_wrong_credentials_get_401_without_saying_which_part(api: Api) -> None:
    wrong_token = await api.call("GET", "/Endpoint/", auth=(api.creds.auth_id, "x" * 40))
    wrong_id = await api.call("GET", "/Endpoint/", auth=("MA" + "Z" * 18, api.creds.auth_token))
    assert wrong_token[0] == wrong_id[0] == 401
    assert wrong_token[1]["error"] == wrong_id[1]["error"]
    response = await treq.get(api.base + "/Endpoint/")
    assert response.code == 401
    assert response.headers.getRawHeaders("www-authenticate") == ['Basic realm="telephony"']
    other_account = api.root + "/v1/Account/MA" + "Q" * 18 + "/Endpoint/"
    assert (await api.call("GET", other_account))[0] == 401


@ensure
async def test_endpoint_create_get_list_update_delete(api: Api) -> None:
    app_id = await _app(api)
    code, created = await api.call(
        "POST",
        "/Endpoint/",
        {"username": "obiwan", "password": "hello there", "alias": "Ben", "app_id": app_id},
    )
    assert code == 201
    assert created["message"] == "created"
    assert created["username"].startswith("obiwan")
    endpoint_id = created["endpoint_id"]

    code, got = await api.call("GET", f"/Endpoint/{endpoint_id}/")
    assert code == 200
    assert got["sip_uri"] == f"sip:{created['username']}@example.test"
    assert got["application"] == f"/v1/Account/{api.creds.auth_id}/Application/{app_id}/"
    assert got["resource_uri"] == f"/v1/Account/{api.creds.auth_id}/Endpoint/{endpoint_id}/"
    assert got["sip_registered"] == "false"
    assert not {"password", "ha1_md5", "ha1_sha256"} & set(got)

    code, changed = await api.call(
        "POST", f"/Endpoint/{endpoint_id}/", {"alias": "Kenobi", "app_id": ""}
    )
    assert (code, changed["message"]) == (202, "changed")
    _, got = await api.call("GET", f"/Endpoint/{endpoint_id}")
    assert got["alias"] == "Kenobi"
    assert got["application"] is None

    assert (await api.call("DELETE", f"/Endpoint/{endpoint_id}/")) == (204, None)
    code, body = await api.call("GET", f"/Endpoint/{endpoint_id}/")
    assert code == 404
    assert body["error"] == f"endpoint {endpoint_id} not found"


@ensure
async def test_form_encoded_bodies_work_too(api: Api) -> None:
    code, body = await api.call(
        "POST",
        "/Application/",
        form={"app_name": "formapp", "answer_url": "https://example.com/x", "answer_method": "get"},
    )
    assert code == 201, body
    _, app = await api.call("GET", f"/Application/{body['app_id']}/")
    assert app["answer_method"] == "GET"
    assert app["hangup_url"] == ""
    assert app["sip_uri"] == f"sip:app-{body['app_id']}@example.test"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"username": "a b", "password": "p", "alias": "A"},
            "username: 1 to 25 ASCII letters and digits",
        ),
        ({"password": "p", "alias": "A"}, "username: is required"),
        (
            {"username": "a", "password": "", "alias": "A"},
            "password: 1 to 32 printable ASCII characters",
        ),
        (
            {"username": "a", "password": "p", "alias": "A-B"},
            "alias: 1 to 50 ASCII letters and digits",
        ),
        (
            {"username": "a", "password": "p", "alias": "A", "app_id": "404"},
            "app_id: no application with ID 404",
        ),
        (
            {"username": "a", "password": "p", "alias": "A", "colour": "red"},
            "colour: unknown parameter",
        ),
        ({"username": ["a"], "password": "p", "alias": "A"}, "username: must be a string"),
    ],
)
@ensure
async def test_bad_endpoint_input_is_a_400_naming_the_field(
    api: Api, body: dict[str, object], error: str
) -> None:
    code, reply = await api.call("POST", "/Endpoint/", body)
    assert (code, reply["error"]) == (400, error)
    _, listing = await api.call("GET", "/Endpoint/")
    assert listing["meta"]["total_count"] == 0


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b"\xff\xfe", "body: not valid JSON"),
    ],
)
@ensure
async def test_malformed_json_is_a_400(api: Api, raw: bytes, error: str) -> None:
    code, reply = await api.call("POST", "/Application/", raw=raw)
    assert code == 400
    assert reply["error"].startswith(error)


@ensure
async def test_oversized_body_is_413_and_nothing_is_stored(api: Api) -> None:
    big = b'{"app_name": "x", "answer_url": "http://h/", "pad": "' + b"x" * (2 << 20) + b'"}'
    code, reply = await api.call("POST", "/Application/", raw=big)
    assert code == 413
    assert reply["error"].startswith("body: larger than")
    _, listing = await api.call("GET", "/Application/")
    assert listing["meta"]["total_count"] == 0


@ensure
async def test_method_not_allowed_and_unknown_resource(api: Api) -> None:
    code, body = await api.call("PUT", "/Endpoint/")
    assert code == 405
    assert "allowed: POST, GET" in body["error"]
    assert (await api.call("GET", "/Nothing/"))[0] == 404


@ensure
async def test_list_meta_follows_plivo(api: Api) -> None:
    for i in range(3):
        await api.call(
            "POST", "/Endpoint/", {"username": f"u{i}", "password": "p", "alias": f"A{i}"}
        )
    code, page = await api.call("GET", "/Endpoint/", params={"limit": "2", "offset": "0"})
    assert code == 200
    meta = page["meta"]
    assert (meta["limit"], meta["offset"], meta["total_count"]) == (2, 0, 3)
    assert meta["next"] == f"/v1/Account/{api.creds.auth_id}/Endpoint/?limit=2&offset=2"
    assert meta["previous"] is None
    assert len(page["objects"]) == 2
    _, last = await api.call("GET", "/Endpoint/", params={"limit": "2", "offset": "2"})
    assert last["meta"]["next"] is None
    assert last["meta"]["previous"] == f"/v1/Account/{api.creds.auth_id}/Endpoint/?limit=2&offset=0"
    code, bad = await api.call("GET", "/Endpoint/", params={"limit": "50"})
    assert (code, bad["error"]) == (400, "limit: must be between 1 and 20")


@ensure
async def test_application_update_and_delete_options(api: Api) -> None:
    app_id = await _app(api)
    other = await _app(api, app_name="other")
    code, body = await api.call("POST", f"/Application/{app_id}/", {"answer_url": "ftp://nope"})
    assert (code, body["error"]) == (
        400,
        "answer_url: an http or https URL with a host, at most 2048 characters",
    )
    code, body = await api.call("POST", f"/Application/{app_id}/", {"subaccount": "SA" + "1" * 18})
    assert (code, body["error"]) == (
        400,
        "subaccount: sub-accounts are not supported by this server",
    )
    _, ep = await api.call(
        "POST", "/Endpoint/", {"username": "u", "password": "p", "alias": "A", "app_id": app_id}
    )
    code, body = await api.call(
        "DELETE", f"/Application/{app_id}/", {"cascade": True, "new_endpoint_application": other}
    )
    assert (code, body["error"]) == (
        400,
        "new_endpoint_application: only applies when cascade is false",
    )
    code, _ = await api.call(
        "DELETE", f"/Application/{app_id}/", {"cascade": "false", "new_endpoint_application": other}
    )
    assert code == 204
    _, moved = await api.call("GET", f"/Endpoint/{ep['endpoint_id']}/")
    assert moved["app_id"] == other


@ensure
async def test_numbers(api: Api) -> None:
    app_id = await _app(api)
    code, body = await api.call(
        "POST",
        "/Number/",
        {
            "numbers": "+18001231234,18005550100",
            "carrier": "trunk",
            "region": "US",
            "app_id": app_id,
        },
    )
    assert (code, body["numbers"]) == (201, ["18001231234", "18005550100"])
    code, body = await api.call(
        "POST", "/Number/", {"numbers": "18001231234", "carrier": "t", "region": "US"}
    )
    assert (code, body["error"]) == (409, "numbers: 18001231234 is already added")
    code, number = await api.call("GET", "/Number/+18001231234/")
    assert code == 200
    assert number["application"].endswith(f"/Application/{app_id}/")
    assert number["voice_enabled"] is True
    assert (await api.call("POST", "/Number/18001231234/", {"alias": "main line", "app_id": ""}))[
        0
    ] == 202
    _, number = await api.call("GET", "/Number/18001231234/")
    assert (number["alias"], number["app_id"]) == ("main line", None)
    _, listing = await api.call("GET", "/Number/", params={"number_startswith": "1800555"})
    assert [n["number"] for n in listing["objects"]] == ["18005550100"]
    assert (await api.call("DELETE", "/Number/18005550100/"))[0] == 204
    assert (await api.call("GET", "/Number/18005550100/"))[0] == 404
    code, body = await api.call(
        "POST", "/Number/", {"numbers": "0800", "carrier": "t", "region": "US"}
    )
    assert code == 400
    assert body["error"].startswith("numbers: an E.164 number")
