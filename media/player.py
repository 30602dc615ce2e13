"""Loading audio to play: WAV and MP3 files under allowed roots, and URLs fetched with treq.

:class:`AudioLoader` turns a source string into 8 kHz mono 16-bit samples
(:func:`media.decode.decode_audio_8k`: the format is told by the content).

* URLs (``http``/``https``) are fetched with treq and cached on disk by URL
  with their validators: the next play sends ``If-None-Match`` /
  ``If-Modified-Since`` and a 304 reuses the stored body;
  ``Cache-Control: max-age`` skips the request while fresh, ``no-store`` keeps
  the body off disk.  A failed revalidation falls back to the stored copy.
  Bodies are capped at ``max_bytes`` (checked on Content-Length, then while
  reading: the connection is dropped past the cap); a fetch has ``timeout``
  seconds, counted on the injected clock.
* Local paths must resolve under one of ``roots``: an answer_url's XML comes
  from outside, and must not read arbitrary files of the server.
* Decoded clips are kept in a memory LRU keyed by content hash.
* A body that does not decode fails the load with an
  :class:`~media.errors.AudioFormatError` naming the source and the rule; it is
  never cached.

Disk I/O and decoding run through ``run_blocking`` (the reactor's thread pool
in production, synchronous in tests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import treq
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from media.audio import MAX_WAV_BYTES
from media.cache import ClipMemo, DiskCache, cache_key
from media.decode import decode_audio_8k
from media.errors import AudioFormatError, FetchError, MediaArgumentError

__all__ = ("AudioLoader", "RunBlocking", "load_all", "run_synchronously")

Int16Array = npt.NDArray[np.int16]
T = TypeVar("T")
RunBlocking = Callable[..., Deferred[Any]]

_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")
_log = Logger()


def run_synchronously(f: Callable[..., T], *args: Any) -> Deferred[T]:
    """A ``run_blocking`` that runs in the calling thread (tests, tiny files)."""
    return maybeDeferred(f, *args)


class _HTTPClient(Protocol):
    def get(self, url: str, **kwargs: Any) -> Deferred[Any]: ...


class _TooLargeError(Exception):
    pass


class AudioLoader:
    """Files and URLs to 8 kHz samples, with bounded caches.

    :param clock: for fetch timeouts and cache freshness.
    :param cache_dir: where fetched bodies and their validators are kept.
    :param roots: directories local files may be played from.
    :param http: a treq ``HTTPClient`` (or ``StubTreq``); ``None`` uses treq's default.
    :param run_blocking: runs ``f(*args)`` off the reactor thread, returning a Deferred.
    :param timeout: seconds per fetch.
    :param max_bytes: largest body or file, in bytes.
    :param cache_bytes: disk cache bound, in bytes.
    :param memory_entries: decoded clips kept in memory.
    :param memory_bytes: sample bytes kept in memory.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        cache_dir: Path,
        roots: Sequence[Path] = (),
        http: _HTTPClient | None = None,
        run_blocking: RunBlocking = run_synchronously,
        timeout: float = 15.0,
        max_bytes: int = MAX_WAV_BYTES,
        cache_bytes: int = 256 * 1024 * 1024,
        memory_entries: int = 64,
        memory_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.clock = clock
        self.roots = [Path(r).resolve() for r in roots]
        self._http: _HTTPClient = http if http is not None else treq  # type: ignore[assignment]
        self._run = run_blocking
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.disk = DiskCache(cache_dir, max_bytes=cache_bytes, suffix=".body")
        self.memo = ClipMemo(max_entries=memory_entries, max_bytes=memory_bytes)
        #: Fetches sent, 304 answers, and plays served from the disk cache without a request.
        self.requests = 0
        self.not_modified = 0
        self.fresh_hits = 0

    def load(self, source: str) -> Deferred[Int16Array]:
        """Samples for a file path or an http(s) URL.

        :raises MediaArgumentError: (synchronously) for a path outside the roots.
        :returns: a cancellable Deferred; it fails with :class:`FetchError` or
            :class:`~media.errors.AudioFormatError`.
        """
        if source.startswith(("http://", "https://")):
            return self._load_url(source)
        return self._load_file(source)

    def _decoded(self, content_key: str, data: bytes, source: str) -> Deferred[Int16Array]:
        clip = self.memo.get(content_key)
        if clip is not None:
            return succeed(clip)
        d: Deferred[Int16Array] = self._run(decode_audio_8k, data)

        def keep(samples: Int16Array) -> Int16Array:
            self.memo.put(content_key, samples)
            return samples

        def name_source(failure: Failure) -> Failure:
            if failure.check(AudioFormatError):
                raise AudioFormatError(f"play {source}: {failure.getErrorMessage()}")
            return failure

        return d.addCallbacks(keep, name_source)

    # Files --------------------------------------------------------------------------

    def _load_file(self, source: str) -> Deferred[Int16Array]:
        path = Path(source).resolve()
        if not any(path.is_relative_to(root) for root in self.roots):
            raise MediaArgumentError(
                f"play: local files must be under {', '.join(map(str, self.roots)) or 'no root'};"
                f" got {source!r}"
            )
        d: Deferred[tuple[str, bytes]] = self._run(_read_file, path, self.max_bytes)
        return d.addCallback(lambda kv: self._decoded(kv[0], kv[1], source))

    # URLs ---------------------------------------------------------------------------

    def _load_url(self, url: str) -> Deferred[Int16Array]:
        key = cache_key(url)
        meta = self.disk.meta(key)
        now = self.clock.seconds()
        if meta and now < meta.get("fetched_at", 0) + meta.get("max_age", 0):
            self.fresh_hits += 1
            return self._cached(key, meta, url)
        headers = {}
        if meta and meta.get("etag"):
            headers["If-None-Match"] = [meta["etag"]]
        if meta and meta.get("last_modified"):
            headers["If-Modified-Since"] = [meta["last_modified"]]
        self.requests += 1
        # treq reports a cancelled request as ResponseNeverReceived (or another
        # wrapper), so whether we cancelled, or the timeout did, is kept here.
        why: list[str] = []
        inner = self._http.get(url, headers=headers, unbuffered=True)
        inner.addCallback(self._got_response, url, key, meta)

        def timed_out() -> None:
            why.append("timeout")
            inner.cancel()

        timer = self.clock.callLater(self.timeout, timed_out)

        def cancel(_: Deferred[Int16Array]) -> None:
            why.append("cancelled")
            inner.cancel()

        def settle(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        outer: Deferred[Int16Array] = Deferred(cancel)
        inner.addBoth(settle)
        inner.addErrback(self._fetch_failed, url, key, meta, why)
        inner.chainDeferred(outer)
        return outer

    def _cached(self, key: str, meta: dict[str, Any], url: str) -> Deferred[Int16Array]:
        clip = self.memo.get(meta["sha256"])
        if clip is not None:
            self.disk.touch(key)
            return succeed(clip)
        d: Deferred[bytes] = self._run(self.disk.read, key)
        return d.addCallback(lambda data: self._decoded(meta["sha256"], data, url))

    def _got_response(
        self, response: Any, url: str, key: str, meta: dict[str, Any] | None
    ) -> Deferred[Int16Array]:
        code = response.code
        if code == 304 and meta is not None:
            self.not_modified += 1
            return self._cached(key, {**meta, "fetched_at": self.clock.seconds()}, url)
        if code >= 500 and meta is not None:
            _log.warn("play {url}: HTTP {code}, using the cached copy", url=url, code=code)
            return self._cached(key, meta, url)
        if code != 200:
            raise FetchError(f"play {url}: HTTP {code}")
        length = response.length
        if isinstance(length, int) and length > self.max_bytes:
            raise FetchError(f"play {url}: body of {length} bytes is over {self.max_bytes}")
        chunks: list[bytes] = []
        size = [0]

        def collect(data: bytes) -> None:
            size[0] += len(data)
            if size[0] > self.max_bytes:
                raise _TooLargeError()
            chunks.append(data)

        body = treq.collect(response, collect)
        return body.addCallback(lambda _: self._store(url, key, response, b"".join(chunks)))

    def _store(self, url: str, key: str, response: Any, data: bytes) -> Deferred[Int16Array]:
        headers = response.headers
        cache_control = ",".join(
            h.decode("latin-1") for h in headers.getRawHeaders(b"cache-control", [])
        )
        sha = hashlib.sha256(data).hexdigest()
        decoded = self._decoded(sha, data, url)
        if "no-store" in cache_control:
            return decoded
        max_age = _MAX_AGE.search(cache_control)
        meta = {
            "url": url,
            "sha256": sha,
            "etag": _header(headers, b"etag"),
            "last_modified": _header(headers, b"last-modified"),
            "max_age": 0 if "no-cache" in cache_control or not max_age else int(max_age[1]),
            "fetched_at": self.clock.seconds(),
        }

        def write(samples: Int16Array) -> Deferred[Int16Array]:
            # Only bodies that decode are cached.
            stored: Deferred[None] = self._run(self.disk.write, key, data, meta)
            return stored.addCallback(lambda _: samples)

        return decoded.addCallback(write)

    def _fetch_failed(
        self, failure: Failure, url: str, key: str, meta: dict[str, Any] | None, why: list[str]
    ) -> Deferred[Int16Array]:
        if "cancelled" in why:
            raise CancelledError()
        if failure.check(FetchError, AudioFormatError):
            failure.raiseException()
        if failure.check(_TooLargeError):
            raise FetchError(f"play {url}: body is over {self.max_bytes} bytes")
        if meta is not None:
            _log.warn(
                "play {url}: fetch failed ({error}), using the cached copy",
                url=url,
                error=failure.getErrorMessage(),
            )
            return self._cached(key, meta, url)
        if "timeout" in why:
            raise FetchError(f"play {url}: no answer within {self.timeout} s")
        raise FetchError(f"play {url}: {failure.getErrorMessage()}")


class _Loader(Protocol):
    def load(self, source: str) -> Deferred[Int16Array]: ...


def load_all(loader: _Loader, sources: Sequence[str]) -> Deferred[Int16Array]:
    """Load several sources at once and join them, in order.

    Cancelling the result, or the first failure, cancels every load still running.
    """
    loads = [loader.load(s) for s in sources]

    def failed(failure: Failure) -> Failure:
        for load in loads:
            if not load.called:
                load.cancel()
        return failure.value.subFailure if failure.check(FirstError) else failure

    return gatherResults(loads, consumeErrors=True).addCallbacks(np.concatenate, failed)


def _header(headers: Any, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


def _read_file(path: Path, max_bytes: int) -> tuple[str, bytes]:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FetchError(f"play {path}: {e.strerror}") from None
    if size > max_bytes:
        raise FetchError(f"play {path}: file of {size} bytes is over {max_bytes}")
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), data
