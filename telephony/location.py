"""The location service: where each endpoint can be reached, now.

Bindings live in memory (a lookup for a call must not wait on the database) and in
the store (they survive a restart).  A change is applied to memory only after its
commit succeeded, so what callers see is always what is stored.  Changes for one
endpoint are serialised, so two REGISTERs racing for it cannot lose an update.

Bindings lapse on time: a heap of expiry times is swept by a timer on the injected
clock, and every lookup also ignores what has lapsed, so an expired contact is never
used even between sweeps.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from telephony.directory.bindings import Binding, BindingStore
from telephony.sip.errors import SipParseError
from telephony.sip.uri import parse_name_addr

__all__ = (
    "HEAP_SLACK",
    "MAX_QUEUED_CHANGES",
    "LocationBusyError",
    "LocationService",
    "RegistrationInfo",
)

log = Logger()
T = TypeVar("T")

#: Seconds between sweeps of lapsed bindings (lookups never return them anyway).
SWEEP_INTERVAL = 1.0
#: Changes of one endpoint that may wait behind the one being committed [ours]: a
#: phone sends one REGISTER at a time, a few devices a few; a storm for one endpoint
#: past this fails at once instead of queueing without end (the registrar answers 503).
MAX_QUEUED_CHANGES = 32
#: Stale expiry entries the heap may hold beyond two per live binding before it is
#: rebuilt [ours]: every refresh pushes a new entry and the old one used to stay until
#: its time (up to an hour), so 10,000 refreshes of one binding kept 10,000 entries.
HEAP_SLACK = 1024


@attrs.frozen
class RegistrationInfo:
    """What the REST API shows of an endpoint's current registration.

    :ivar contact: the SIP URI of the device calls go to (the latest binding).
    :ivar expires: when that binding expires, ``YYYY-MM-DD HH:MM:SS`` UTC (Plivo's format).
    """

    contact: str
    expires: str
    user_agent: str


class LocationBusyError(Exception):
    """Too many changes of one endpoint are already waiting (see :data:`MAX_QUEUED_CHANGES`)."""


class LocationService:
    """Bindings per endpoint username, in memory and in the store."""

    def __init__(self, store: BindingStore, *, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock
        self._by_user: dict[str, dict[str, Binding]] = {}
        self._heap: list[tuple[float, str, str]] = []
        #: Bindings held at the heap's last rebuild (see :data:`HEAP_SLACK`).
        self._live = 0
        #: Users with a change in progress, and the changes queued behind it.
        self._busy: dict[str, list[tuple[Callable[..., Any], Deferred[Any]]]] = {}
        self._sweeper: IDelayedCall | None = None
        self._loaded = False
        self._waiting: list[Deferred[None]] = []
        self._listeners: list[Callable[[str], None]] = []

    # -- life cycle -----------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Load the stored bindings, then sweep lapsed ones every second."""
        d = self._store.load(self._clock.seconds())

        def loaded(bindings: list[Binding]) -> None:
            for binding in bindings:
                self._put(binding)
            log.info("Loaded {n} registrations", n=len(bindings))
            self._schedule_sweep()
            self._loaded = True
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

        return d.addCallback(loaded)

    def stop(self) -> None:
        """Stop the sweeper."""
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None

    def when_ready(self) -> Deferred[None]:
        """Fires once the stored bindings are loaded (at once after that)."""
        if self._loaded:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(username)`` after that endpoint's bindings changed."""
        self._listeners.append(listener)

    # -- queries ----------------------------------------------------------------

    def bindings(self, username: str) -> list[Binding]:
        """The endpoint's current bindings, latest login first."""
        now = self._clock.seconds()
        current = [b for b in self._by_user.get(username, {}).values() if b.expires_at > now]
        current.sort(key=lambda b: (b.registered_at, b.expires_at), reverse=True)
        return current

    def latest(self, username: str) -> Binding | None:
        """The binding calls go to: the device that logged in last."""
        current = self.bindings(username)
        return current[0] if current else None

    def registration_info(self, username: str) -> RegistrationInfo | None:
        """The endpoint's latest registration, as the REST API shows it."""
        binding = self.latest(username)
        if binding is None:
            return None
        try:
            contact = str(parse_name_addr(binding.contact).uri)
        except (SipParseError, ValueError):
            contact = binding.contact_uri
        expires = datetime.fromtimestamp(binding.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return RegistrationInfo(contact, expires, binding.user_agent)

    def counts(self) -> dict[str, int]:
        """Live bindings, and endpoints with at least one."""
        now = self._clock.seconds()
        live = [sum(1 for b in bs.values() if b.expires_at > now) for bs in self._by_user.values()]
        return {"bindings": sum(live), "registered_endpoints": sum(1 for n in live if n)}

    # -- changes ----------------------------------------------------------------

    def update(
        self,
        username: str,
        compute: Callable[[list[Binding]], tuple[Sequence[Binding], Sequence[str], T]],
    ) -> Deferred[T]:
        """Change one endpoint's bindings, serialised with its other changes.

        ``compute(current)`` returns (bindings to write, contact URIs to delete, result)
        or raises to refuse; memory changes only once the store committed.
        """
        if not self._loaded:
            return self.when_ready().addCallback(lambda _: self.update(username, compute))
        waiting = self._busy.get(username)
        if waiting is not None:
            if len(waiting) >= MAX_QUEUED_CHANGES:
                return fail(LocationBusyError(f"{len(waiting)} changes of {username} waiting"))
            queued: Deferred[T] = Deferred()
            waiting.append((compute, queued))
            return queued
        self._busy[username] = []
        return self._apply(username, compute)

    def _apply(
        self,
        username: str,
        compute: Callable[[list[Binding]], tuple[Sequence[Binding], Sequence[str], T]],
    ) -> Deferred[T]:
        """Run one change for *username*, which holds the per-user turn; pass it on after."""
        try:
            upserts, deletes, result = compute(self.bindings(username))
        except Exception:
            d: Deferred[T] = fail()
        else:
            if upserts or deletes:
                d = self._store.save(username, upserts, deletes).addCallback(
                    self._committed, username, upserts, deletes, result
                )
            else:
                d = succeed(result)
        return d.addBoth(self._next_turn, username)

    def _committed(
        self, _: None, username: str, upserts: Sequence[Binding], deletes: Sequence[str], result: T
    ) -> T:
        entries = self._by_user.setdefault(username, {})
        for uri in deletes:
            entries.pop(uri, None)
        for binding in upserts:
            self._put(binding)
        if not entries:
            self._by_user.pop(username, None)
        self._notify(username)
        return result

    def _next_turn(self, result: Any, username: str) -> Any:
        waiting = self._busy.get(username)
        if waiting:
            compute, queued = waiting.pop(0)
            self._apply(username, compute).chainDeferred(queued)
        else:
            self._busy.pop(username, None)
        return result

    def forget(self, username: str | None) -> None:
        """Drop an endpoint's bindings from memory (it was deleted); None: re-check all."""
        names: Iterable[str] = [username] if username is not None else list(self._by_user)
        for name in names:
            if self._by_user.pop(name, None) is not None:
                self._notify(name)

    def _put(self, binding: Binding) -> None:
        self._by_user.setdefault(binding.username, {})[binding.contact_uri] = binding
        heapq.heappush(self._heap, (binding.expires_at, binding.username, binding.contact_uri))
        if len(self._heap) > 2 * self._live + HEAP_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the expiry heap from the bindings held (drops refreshed entries)."""
        self._heap = [
            (b.expires_at, b.username, b.contact_uri)
            for entries in self._by_user.values()
            for b in entries.values()
        ]
        heapq.heapify(self._heap)
        self._live = len(self._heap)

    def _notify(self, username: str) -> None:
        for listener in list(self._listeners):
            listener(username)

    # -- expiry -------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        self._sweeper = self._clock.callLater(SWEEP_INTERVAL, self.sweep)

    def sweep(self) -> list[Binding]:
        """Remove lapsed bindings from memory and the store; returns them."""
        now = self._clock.seconds()
        lapsed: list[Binding] = []
        while self._heap and self._heap[0][0] <= now:
            expires_at, username, uri = heapq.heappop(self._heap)
            entries = self._by_user.get(username)
            binding = entries.get(uri) if entries else None
            if binding is None or binding.expires_at != expires_at:
                continue  # refreshed or removed since
            del entries[uri]  # type: ignore[union-attr]
            if not entries:
                self._by_user.pop(username, None)
            lapsed.append(binding)
        if lapsed:
            self._store.delete_lapsed(lapsed).addErrback(
                lambda f: log.failure("Could not delete lapsed registrations", f)
            )
            for username in {b.username for b in lapsed}:
                self._notify(username)
            log.info("{n} registrations lapsed", n=len(lapsed))
        if self._sweeper is not None:
            self._schedule_sweep()
        return lapsed
