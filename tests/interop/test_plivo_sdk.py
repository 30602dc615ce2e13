"""The real ``plivo`` SDK, pointed at a real ``twistd -n telephony``, manages the directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import plivo
import plivo.exceptions
import plivo.rest.client
import pytest

from tests.serverproc import Server, plivo_client, running_server

pytestmark = pytest.mark.interop


Connect = Callable[[Server], plivo.RestClient]


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connect]:
    """Makes SDK clients for a server; their HTTP sessions are closed after the test."""
    made: list[plivo.RestClient] = []

    def make(server: Server) -> plivo.RestClient:
        client: plivo.RestClient = plivo_client(server, monkeypatch)
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path / "var") as s:
        yield s


def test_endpoint_and_application_life_cycle(server: Server, connect: Connect) -> None:
    client = connect(server)

    app = client.applications.create(
        app_name="support_line",
        answer_url="http://127.0.0.1:9/answer",
        answer_method="GET",
        hangup_url="http://127.0.0.1:9/hangup",
    )
    assert app.message == "created"
    app_id = app.app_id
    fetched = client.applications.get(app_id)
    assert fetched.app_name == "support_line"
    assert fetched.answer_url == "http://127.0.0.1:9/answer"
    assert fetched.answer_method == "GET"
    assert fetched.hangup_url == "http://127.0.0.1:9/hangup"
    assert fetched.sip_uri.startswith("sip:")
    assert app_id in fetched.sip_uri

    created = client.endpoints.create(
        username="yoda", password="M@y the 4th be with u", alias="Yoda", app_id=app_id
    )
    assert created.message == "created"
    assert created.username.startswith("yoda")
    assert len(created.username) == 16
    assert created.username[4:].isdigit()
    endpoint = client.endpoints.get(created.endpoint_id)
    assert endpoint.username == created.username
    assert endpoint.alias == "Yoda"
    assert endpoint.sip_uri == f"sip:{created.username}@127.0.0.1"
    assert endpoint.sip_registered == "false"
    assert endpoint.application.endswith(f"/Application/{app_id}/")
    assert "password" not in endpoint.__dict__

    listed = client.endpoints.list(limit=20, offset=0)
    assert [e.endpoint_id for e in listed] == [created.endpoint_id]
    assert listed.meta.total_count == 1

    client.endpoints.update(created.endpoint_id, alias="MasterYoda")
    assert client.endpoints.get(created.endpoint_id).alias == "MasterYoda"
    client.applications.update(app_id, answer_url="http://127.0.0.1:9/v2")
    assert client.applications.get(app_id).answer_url == "http://127.0.0.1:9/v2"

    apps = client.applications.list()
    names = sorted(a.app_name for a in apps)
    assert names == ["Direct Dial", "support_line"]

    client.endpoints.delete(created.endpoint_id)
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.endpoints.get(created.endpoint_id)
    client.applications.delete(app_id)
    with pytest.raises(plivo.exceptions.ResourceNotFoundError):
        client.applications.get(app_id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "bad name", "password": "secret", "alias": "Alias"}, "username"),
        ({"username": "a" * 26, "password": "secret", "alias": "Alias"}, "username"),
        ({"username": "ok", "password": "x" * 33, "alias": "Alias"}, "password"),
        ({"username": "ok", "password": "tab\there", "alias": "Alias"}, "password"),
        ({"username": "ok", "password": "secret", "alias": "has space"}, "alias"),
        ({"username": "ok", "password": "secret", "alias": "a" * 51}, "alias"),
    ],
)
def test_bad_endpoint_fields_answer_400_naming_the_field(
    server: Server, connect: Connect, kwargs: dict[str, str], field: str
) -> None:
    client = connect(server)
    with pytest.raises(plivo.exceptions.ValidationError) as excinfo:
        client.endpoints.create(**kwargs)
    assert str(excinfo.value).startswith(f"{field}: ")
    assert client.endpoints.list().meta.total_count == 0


def test_wrong_token_is_refused(server: Server, connect: Connect) -> None:
    auth_id, _ = server.credentials()
    intruder = connect(server)
    intruder.session.auth = (auth_id, "W" * 40)  # the SDK's credentials, a wrong token
    # (A list call would not do: plivo 4.x's ListResponseObject fails on any JSON
    # error body before it looks at the status code.)
    with pytest.raises(plivo.exceptions.AuthenticationError):
        intruder.applications.get("12345678901234567")


def test_restart_keeps_endpoints_and_applications(tmp_path: Path, connect: Connect) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir) as first:
        client = connect(first)
        app_id = client.applications.create(
            app_name="ivr", answer_url="http://127.0.0.1:9/a"
        ).app_id
        endpoint = client.endpoints.create(
            username="han", password="solo", alias="Han", app_id=app_id
        )
        credentials = first.credentials()
    with running_server(data_dir) as second:
        assert second.credentials() == credentials
        client = connect(second)
        again = client.endpoints.get(endpoint.endpoint_id)
        assert again.username == endpoint.username
        assert again.application.endswith(f"/Application/{app_id}/")
        assert client.applications.get(app_id).app_name == "ivr"
        direct_dials = [a for a in client.applications.list() if a.app_name == "Direct Dial"]
        assert len(direct_dials) == 1, "the built-in app is created once, not per start"
