"""The location service's memory stays bounded under storms of changes (issue 16)."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from telephony.directory.bindings import Binding
from telephony.location import (
    HEAP_SLACK,
    MAX_QUEUED_CHANGES,
    LocationBusyError,
    LocationService,
)

NOW = 1_800_000_000.0


class MemoryStore:
    """A binding store that commits at once, or when told (``hold``)."""

    def __init__(self) -> None:
        self.hold = False
        self.held: list[Deferred[None]] = []
        self.saved = 0

    def load(self, now: float) -> Deferred[list[Binding]]:
        return succeed([])

    def save(
        self, username: str, upserts: Sequence[Binding], deletes: Sequence[str]
    ) -> Deferred[None]:
        self.saved += 1
        if not self.hold:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.held.append(d)
        return d

    def delete_lapsed(self, bindings: Sequence[Binding]) -> Deferred[None]:
        return succeed(None)


def _binding(user: str, contact: str, expires_at: float, cseq: int = 1) -> Binding:
    return Binding(
        user,
        contact,
        f"<{contact}>",
        expires_at,
        NOW,
        "call-1",
        cseq,
        "ua",
        "udp",
        "192.0.2.1",
        5060,
    )


def _service(clock: Clock) -> tuple[LocationService, MemoryStore]:
    store = MemoryStore()
    location = LocationService(store, clock=clock)  # type: ignore[arg-type]
    location.start()
    return location, store


def _refresh(
    location: LocationService, user: str, contact: str, expires_at: float, cseq: int
) -> Deferred[None]:
    def compute(current: list[Binding]) -> tuple[list[Binding], list[str], None]:
        return [_binding(user, contact, expires_at, cseq)], [], None

    return location.update(user, compute)


def test_refreshing_one_binding_many_times_keeps_the_expiry_heap_small(clock: Clock) -> None:
    """Each refresh pushes a new expiry; the old ones used to stay in the heap until
    their time came (up to an hour): 10,000 refreshes of one binding kept 10,000."""
    clock.advance(NOW)
    location, _ = _service(clock)
    for i in range(10_000):
        clock.advance(0.001)
        _refresh(location, "alice", "sip:alice@192.0.2.1", NOW + 3600 + i, i + 1)
    assert location.counts() == {"bindings": 1, "registered_endpoints": 1}
    assert len(location._heap) <= 2 * 1 + HEAP_SLACK
    # Compaction kept what matters: the binding still lapses on time.
    clock.advance(3600 + 10_000)
    assert location.counts()["bindings"] == 0
    location.stop()


def test_changes_queued_for_one_endpoint_are_bounded(clock: Clock) -> None:
    """While a commit for an endpoint is in progress its next changes wait in line;
    a storm for one endpoint must not queue without end: past the bound they fail
    at once with LocationBusyError (the registrar answers 503)."""
    clock.advance(NOW)
    location, store = _service(clock)
    store.hold = True
    results = [
        _refresh(location, "alice", "sip:alice@192.0.2.1", NOW + 3600, i + 1) for i in range(1000)
    ]
    busy = [d for d in results if d.called]
    assert len(busy) == 1000 - 1 - MAX_QUEUED_CHANGES
    for d in busy:
        d.addErrback(lambda f: f.trap(LocationBusyError))
    # The queue drains once commits go through; the other users were never affected.
    store.hold = False
    _refresh(location, "bob", "sip:bob@192.0.2.2", NOW + 60, 1)
    assert location.latest("bob") is not None
    while store.held:
        store.held.pop(0).callback(None)
    assert all(d.called for d in results)
    assert store.saved == 1 + MAX_QUEUED_CHANGES + 1
    location.stop()
