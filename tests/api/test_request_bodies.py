"""JSON bodies that json.loads accepts but the server cannot use: a 400, not a 500."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

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


class _Raw(Protocol):
    """Bytes to the site as a client writes them; what comes back until it closes."""

    def __init__(self) -> None:
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.received)


@ensure
async def test_a_request_target_that_is_not_ascii_is_a_400_not_a_500(api: Api) -> None:
    """Found by fuzzing: Twisted's "method not allowed" page decodes the target as
    ASCII; a raw 0xa2 in the path of a POST to a page without POST raised, and the
    server logged a traceback and answered 500."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = int(api.root.rsplit(":", 1)[1])
    for target in (b"/docs/\xa2", b"/v1/Account/\xa2/Number/"):
        raw = _Raw()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), raw)
        raw.transport.write(  # type: ignore[union-attr]
            b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        answer = await raw.done
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


@ensure
async def test_a_content_type_with_a_control_character_is_a_400(api: Api) -> None:
    """Found by fuzzing: Twisted's form parsing raised ValueError for a form feed in a
    POST's Content-Type, outside any handler: logged as unhandled, connection dropped."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    body = b'{"app_name": "x"}'
    raw = _Raw()
    port = int(api.root.rsplit(":", 1)[1])
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), raw)
    raw.transport.write(  # type: ignore[union-attr]
        b"POST /v1/Account/x/Application/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/js\x0con\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    answer = await raw.done
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
