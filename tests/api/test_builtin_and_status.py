"""The Direct Dial app's XML, the status page and the health check, over real HTTP."""

from __future__ import annotations

import pytest
import pytest_twisted
import treq
from lxml import etree

from telephony.api.builtin_apps import direct_dial_fields, direct_dial_xml
from telephony.directory.models import ApplicationFields
from tests.api.conftest import Api

ensure = pytest_twisted.ensureDeferred


@pytest.mark.parametrize(
    ("to", "noun", "text"),
    [
        ("18001231234", "Number", "18001231234"),
        ("+1 (800) 123-1234", "Number", "+18001231234"),
        ("sip:alice123456789012@example.test", "User", "sip:alice123456789012@example.test"),
    ],
)
def test_direct_dial_dials_what_was_dialed(to: str, noun: str, text: str) -> None:
    doc = etree.fromstring(direct_dial_xml(to, "18004321321"))
    dial = doc.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == "18004321321"
    (child,) = list(dial)
    assert (child.tag, child.text) == (noun, text)


def test_direct_dial_refuses_garbage_and_escapes() -> None:
    doc = etree.fromstring(direct_dial_xml("<script>", '"><x'))
    assert [c.tag for c in doc] == ["Hangup"]
    doc = etree.fromstring(direct_dial_xml("123", '"><x'))
    assert doc.find("Dial").get("callerId") is None  # type: ignore[union-attr]


def test_direct_dial_url_follows_the_site_and_keeps_the_caller_id() -> None:
    first = direct_dial_fields("http://127.0.0.1:8088", None)
    assert first.answer_url == "http://127.0.0.1:8088/apps/direct-dial/"
    custom = ApplicationFields(
        app_name="Mine", answer_url="http://127.0.0.1:8088/apps/direct-dial/?callerId=1800"
    )
    moved = direct_dial_fields("http://127.0.0.1:9000", custom)
    assert moved.answer_url == "http://127.0.0.1:9000/apps/direct-dial/?callerId=1800"
    assert moved.app_name == "Mine"


@ensure
async def test_direct_dial_served_over_http(api: Api) -> None:
    response = await treq.post(
        api.root + "/apps/direct-dial/?callerId=18004321321",
        data={"To": "18001231234", "From": "alice"},
    )
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["application/xml"]
    doc = etree.fromstring(await response.content())
    assert doc.find("Dial/Number").text == "18001231234"  # type: ignore[union-attr]


@ensure
async def test_status_page_and_health(api: Api) -> None:
    await api.call("POST", "/Endpoint/", {"username": "u", "password": "p", "alias": "A"})
    response = await treq.get(api.root + "/")
    assert response.code == 200
    page = (await response.content()).decode()
    assert "<th>Endpoints</th><td>1</td>" in page
    assert "<th>Applications</th><td>0</td>" in page
    assert "<th>Version</th>" in page
    health = await treq.get(api.root + "/healthz")
    assert health.code == 200
    assert await health.json() == {"status": "ok"}
