"""REST-originated calls on fakes: placing, ring_url, the timers to the tick,
send_digits, and cancellation by request UUID."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock

from telephony.calls.call import Call
from telephony.calls.causes import Cause
from telephony.calls.manager import Destination
from telephony.calls.originate import (
    INTERNAL_HEADER,
    OriginateRequest,
    Originator,
    split_destinations,
)
from telephony.directory.models import ApplicationFields
from telephony.sip.headers import Headers
from telephony.sip.peer import Peer
from telephony.sip.uri import SipURI
from tests.calls.fakes import FakeFetcher, FakeLeg, make_services
from xml_dsl import Method
from xml_dsl.verbs import Number, User

ANSWER_URL = "http://app.test/answer"
RING_URL = "http://app.test/ring"
GATEWAY = Peer("udp", "10.0.0.9", 5060)


@attrs.define
class FakePlacer:
    """Resolves every target to one destination (or a Cause) and places fake legs."""

    clock: Clock
    outcome: Destination | Cause
    own_users: frozenset[str] = frozenset()
    resolved: list[tuple[Number | User, str, str | None]] = attrs.Factory(list)
    legs: list[tuple[FakeLeg, Headers]] = attrs.Factory(list)
    calls: dict[str, Call] = attrs.Factory(dict)

    def resolve(
        self, target: Number | User, caller_id: str = "", caller_name: str | None = None
    ) -> Destination | Cause:
        self.resolved.append((target, caller_id, caller_name))
        return self.outcome

    def is_own_application(self, uri: SipURI) -> bool:
        return uri.user in self.own_users

    def place_leg(
        self,
        where: Destination,
        caller_id: str,
        caller_name: str | None,
        extra: Headers | None = None,
    ) -> FakeLeg:
        leg = FakeLeg(f"leg-{len(self.legs) + 1}", self.clock)
        self.legs.append((leg, extra or Headers()))
        return leg

    def add_call(self, call: Call) -> None:
        self.calls[call.uuid] = call


@attrs.define
class Setup:
    placer: FakePlacer
    originator: Originator
    fetcher: FakeFetcher


def _setup(
    clock: Clock, tmp_path: Path, outcome: Destination | Cause | None = None, **own: frozenset[str]
) -> Setup:
    services, fetcher, _, _ = make_services(clock, tmp_path)
    where = outcome or Destination(SipURI("sip", "18001231234", "10.0.0.9"), GATEWAY, "18001231234")
    placer = FakePlacer(clock, where, **own)
    uuids = iter(f"req-{n}" for n in range(1, 100))
    originator = Originator(
        placer=placer,  # type: ignore[arg-type]
        services=services,
        internal_token="tok3n",
        new_uuid=lambda: next(uuids),
    )
    return Setup(placer, originator, fetcher)


def _request(**fields: object) -> OriginateRequest:
    values: dict[str, object] = {
        "from_": "18004321321",
        "to": "18001231234",
        "application": ApplicationFields(app_name="api", answer_url=ANSWER_URL),
        **fields,
    }
    return OriginateRequest(**values)  # type: ignore[arg-type]


def _leg(s: Setup, n: int = 0) -> FakeLeg:
    return s.placer.legs[n][0]


def test_a_number_is_placed_as_an_outbound_call(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    placed = s.originator.originate(_request(caller_name="Shop"))
    assert placed == "req-1"
    assert s.placer.resolved == [(Number("18001231234"), "18004321321", "Shop")]
    leg = _leg(s)
    assert leg.started == 1
    call = s.placer.calls[leg.uuid]
    assert s.originator.requests == {"req-1": call}
    params = call.params()
    assert (params["Direction"], params["RequestUUID"], params["From"], params["To"]) == (
        "outbound",
        "req-1",
        "18004321321",
        "18001231234",
    )
    assert call.application is not None
    assert call.application.fields.answer_url == ANSWER_URL
    leg.end(Cause.NORMAL, "Callee")


def test_a_sip_uri_is_placed_as_a_user(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(to="sip:bob@example.test"))
    assert s.placer.resolved[0][0] == User(uri="sip:bob@example.test")
    _leg(s).end(Cause.NORMAL, "Callee")


def test_an_unreachable_destination_places_nothing(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path, Cause.NOT_FOUND)
    assert s.originator.originate(_request()) is Cause.NOT_FOUND
    assert s.placer.legs == []
    assert s.originator.requests == {}
    assert clock.getDelayedCalls() == []


def test_headers_and_the_internal_mark(clock: Clock, tmp_path: Path) -> None:
    own = Destination(SipURI("sip", "app-42", "example.test"), GATEWAY, "sip:app-42@example.test")
    s = _setup(clock, tmp_path, own, own_users=frozenset({"app-42"}))
    s.originator.originate(_request(sip_headers=(("Account", "7"),)))
    extra = s.placer.legs[0][1]
    assert list(extra) == [("X-PH-Account", "7"), (INTERNAL_HEADER, "tok3n")]
    other = _setup(Clock(), tmp_path)
    other.originator.originate(_request())
    assert INTERNAL_HEADER not in other.placer.legs[0][1]
    _leg(s).end(Cause.NORMAL, "Callee")
    _leg(other).end(Cause.NORMAL, "Callee")


def test_the_ring_timeout_hangs_up_to_the_tick(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(ring_timeout=30))
    leg = _leg(s)
    leg.peer_rings()
    clock.advance(29.999)
    assert leg.hangups == []
    clock.advance(0.001)
    assert leg.hangups == [(Cause.NO_ANSWER, "Plivo")]
    assert s.originator.requests == {}
    assert clock.getDelayedCalls() == []


def test_ring_url_is_told_once(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(ring_url=RING_URL, ring_method="GET"))
    leg = _leg(s)
    assert s.fetcher.notified == []
    leg.peer_rings()
    leg.peer_early_media()
    [(url, method, params)] = s.fetcher.notified
    assert (url, method, params["CallStatus"], params["RequestUUID"]) == (
        RING_URL,
        Method.GET,
        "ringing",
        "req-1",
    )
    leg.end(Cause.NORMAL, "Callee")


def test_hangup_on_ring_counts_from_the_ringing(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(hangup_on_ring=5))
    leg = _leg(s)
    clock.advance(3.0)
    leg.peer_rings()
    clock.advance(4.999)
    assert leg.hangups == []
    clock.advance(0.001)
    assert leg.hangups == [(Cause.NORMAL, "Plivo")]
    assert clock.getDelayedCalls() == []


def test_the_answer_stops_the_ring_timers_and_starts_the_time_limit(
    clock: Clock, tmp_path: Path
) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(ring_timeout=30, hangup_on_ring=20, time_limit=90))
    leg = _leg(s)
    leg.peer_rings()
    clock.advance(10.0)
    leg.peer_answers()
    assert s.originator.requests == {}, "an answered call can no longer be cancelled"
    assert [url for url, _, _ in s.fetcher.fetched] == [ANSWER_URL], "the document runs"
    assert [c.getTime() for c in clock.getDelayedCalls()] == [100.0]
    clock.advance(89.999)
    assert leg.hangups == []
    clock.advance(0.001)
    assert leg.hangups == [(Cause.TIME_LIMIT, "Plivo")]
    assert s.fetcher.cancelled == [ANSWER_URL], "the hangup cancels the document"


@pytest.mark.parametrize("on_preanswer", [False, True])
def test_send_digits_at_the_answer_or_on_early_media(
    clock: Clock, tmp_path: Path, on_preanswer: bool
) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(send_digits="1w2", send_on_preanswer=on_preanswer))
    leg = _leg(s)
    assert leg.media is not None
    leg.peer_early_media()
    assert leg.media.digits_sent == (["1w2"] if on_preanswer else [])
    leg.peer_answers()
    assert leg.media.digits_sent == ["1w2"], "sent once"
    leg.end(Cause.NORMAL, "Callee")


def test_cancel_by_request_uuid_while_ringing(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request())
    leg = _leg(s)
    leg.peer_rings()
    assert s.originator.cancel("unknown") is False
    assert s.originator.cancel("req-1") is True
    assert leg.hangups == [(Cause.ORIGINATOR_CANCEL, "API")]
    assert s.originator.requests == {}
    assert s.originator.cancel("req-1") is False, "over"
    assert clock.getDelayedCalls() == []


def test_an_answered_call_is_not_cancelled(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request())
    leg = _leg(s)
    call = s.placer.calls[leg.uuid]
    leg.peer_answers()
    s.originator.requests["req-1"] = call  # even if it were still listed
    assert s.originator.cancel("req-1") is False
    assert leg.hangups == []
    leg.end(Cause.NORMAL, "Callee")


def test_a_failed_call_is_forgotten(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.originator.originate(_request(ring_url=RING_URL))
    leg = _leg(s)
    leg.end(Cause.BUSY, "Callee", 486)
    assert s.originator.requests == {}
    assert s.fetcher.notified == [], "it never rang"
    assert clock.getDelayedCalls() == [], "the ring timeout is cancelled"


def test_split_destinations() -> None:
    assert split_destinations("1800<sip:bob@example.test< 1900 <") == [
        "1800",
        "sip:bob@example.test",
        "1900",
    ]
