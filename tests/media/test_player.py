"""The audio loader: files under roots, URLs through treq with validators and limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from media.audio import wav_bytes
from media.errors import AudioFormatError, FetchError, MediaArgumentError
from media.player import AudioLoader

CLIP = (np.arange(800) % 100 * 100 - 5000).astype(np.int16)


class Prompts(Resource):
    """Serves ``/a.wav`` with an ETag, honouring If-None-Match; counts requests."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.body = wav_bytes(CLIP)
        self.etag = b'"v1"'
        self.cache_control: bytes | None = None
        self.status = 200
        self.requests: list[dict[str, bytes | None]] = []
        self.hang: list[Request] = []

    def render_GET(self, request: Request) -> bytes | int:
        self.requests.append(
            {
                "inm": request.getHeader(b"if-none-match"),
                "ims": request.getHeader(b"if-modified-since"),
            }
        )
        if request.path == b"/slow.wav":
            self.hang.append(request)
            return NOT_DONE_YET
        if request.path == b"/junk.wav":
            return b"not a wav at all"
        if request.path != b"/a.wav":
            request.setResponseCode(404)
            return b"no"
        request.setResponseCode(self.status)
        if self.status != 200:
            return b"oops"
        request.setHeader(b"etag", self.etag)
        request.setHeader(b"last-modified", b"Tue, 01 Oct 2024 10:00:00 GMT")
        if self.cache_control:
            request.setHeader(b"cache-control", self.cache_control)
        if request.getHeader(b"if-none-match") == self.etag:
            request.setResponseCode(304)
            return b""
        return self.body


@pytest.fixture
def server() -> Prompts:
    return Prompts()


def loader_for(
    clock: Clock, tmp_path: Path, server: Prompts, **kw: object
) -> tuple[AudioLoader, StubTreq]:
    stub = StubTreq(server)
    loader = AudioLoader(
        clock=clock,
        cache_dir=tmp_path / "cache",
        roots=[tmp_path / "sounds"],
        http=stub,
        **kw,  # type: ignore[arg-type]
    )
    return loader, stub


def fetch(loader: AudioLoader, stub: StubTreq, url: str) -> object:
    d = loader.load(url)
    stub.flush()
    results: list[object] = []
    d.addBoth(results.append)
    assert results, "the load did not finish"
    return results[0]


def test_url_is_fetched_then_revalidated_with_its_etag(
    clock: Clock, tmp_path: Path, server: Prompts
) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    first = fetch(loader, stub, "http://apps.example/a.wav")
    assert np.array_equal(first, CLIP)
    second = fetch(loader, stub, "http://apps.example/a.wav")
    assert np.array_equal(second, CLIP)
    assert server.requests[0] == {"inm": None, "ims": None}
    assert server.requests[1] == {"inm": b'"v1"', "ims": b"Tue, 01 Oct 2024 10:00:00 GMT"}
    assert loader.not_modified == 1
    # A new loader (server restart) still revalidates from the disk cache.
    loader2, stub2 = loader_for(clock, tmp_path, server)
    assert np.array_equal(fetch(loader2, stub2, "http://apps.example/a.wav"), CLIP)
    assert loader2.not_modified == 1


def test_changed_body_replaces_the_cache(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    fetch(loader, stub, "http://apps.example/a.wav")
    server.etag = b'"v2"'
    server.body = wav_bytes(CLIP[::-1].copy())
    assert np.array_equal(fetch(loader, stub, "http://apps.example/a.wav"), CLIP[::-1])


def test_max_age_skips_the_request_while_fresh(
    clock: Clock, tmp_path: Path, server: Prompts
) -> None:
    server.cache_control = b"public, max-age=60"
    loader, stub = loader_for(clock, tmp_path, server)
    fetch(loader, stub, "http://apps.example/a.wav")
    clock.advance(59)
    fetch(loader, stub, "http://apps.example/a.wav")
    assert len(server.requests) == 1
    assert loader.fresh_hits == 1
    clock.advance(2)
    fetch(loader, stub, "http://apps.example/a.wav")
    assert len(server.requests) == 2


def test_no_store_keeps_nothing_on_disk(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    server.cache_control = b"no-store"
    loader, stub = loader_for(clock, tmp_path, server)
    fetch(loader, stub, "http://apps.example/a.wav")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_server_error_falls_back_to_the_cached_copy(
    clock: Clock, tmp_path: Path, server: Prompts
) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    fetch(loader, stub, "http://apps.example/a.wav")
    server.status = 503
    assert np.array_equal(fetch(loader, stub, "http://apps.example/a.wav"), CLIP)


def test_errors_are_typed(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    missing = fetch(loader, stub, "http://apps.example/missing.wav")
    assert missing.check(FetchError)  # type: ignore[attr-defined]
    assert "HTTP 404" in str(missing.value)  # type: ignore[attr-defined]
    junk = fetch(loader, stub, "http://apps.example/junk.wav")
    assert junk.check(AudioFormatError)  # type: ignore[attr-defined]


def test_body_over_the_limit(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server, max_bytes=1000)
    failure = fetch(loader, stub, "http://apps.example/a.wav")
    assert failure.check(FetchError)  # type: ignore[attr-defined]
    assert "over 1000" in str(failure.value)  # type: ignore[attr-defined]


def test_fetch_timeout_on_the_clock(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server, timeout=15.0)
    d = loader.load("http://apps.example/slow.wav")
    stub.flush()
    assert not d.called
    clock.advance(14.9)
    assert not d.called
    clock.advance(0.2)
    failure = d.result
    assert failure.check(FetchError)
    assert "no answer within 15.0 s" in str(failure.value)
    d.addErrback(lambda _: None)


def test_cancel_a_fetch(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    d = loader.load("http://apps.example/slow.wav")
    stub.flush()
    d.cancel()
    assert d.result.check(CancelledError)
    d.addErrback(lambda _: None)


def test_local_files_only_under_roots(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    loader, stub = loader_for(clock, tmp_path, server)
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "hello.wav").write_bytes(wav_bytes(CLIP))
    assert np.array_equal(fetch(loader, stub, str(sounds / "hello.wav")), CLIP)
    with pytest.raises(MediaArgumentError, match="play: local files must be under"):
        loader.load(str(sounds / ".." / "cache" / "x.wav"))
    with pytest.raises(MediaArgumentError):
        loader.load("/etc/passwd")
    missing = fetch(loader, stub, str(sounds / "nope.wav"))
    assert missing.check(FetchError)  # type: ignore[attr-defined]


def test_disk_cache_is_bounded(clock: Clock, tmp_path: Path, server: Prompts) -> None:
    size = len(server.body)
    loader, stub = loader_for(clock, tmp_path, server, cache_bytes=int(size * 2.5))
    for i in range(5):
        clock.advance(1)
        fetch(loader, stub, f"http://apps.example/a.wav?v={i}")
    bodies = list((tmp_path / "cache").glob("*.body"))
    assert len(bodies) == 2
