"""The 2xx retransmission schedule (RFC 3261 §13.3.1.4), without a reactor."""

from __future__ import annotations

import itertools

import pytest

from telephony.sip.reliable_2xx import Reliable2xx, Step, StepKind


def _all(schedule: Reliable2xx) -> list[Step]:
    steps: list[Step] = []
    step: Step | None = schedule.first()
    while step is not None:
        steps.append(step)
        step = schedule.after(step)
    return steps


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def test_default_timers_resend_at_t1_doubling_to_t2_then_give_up_at_64_t1() -> None:
    steps = _all(Reliable2xx(sent_at=0.0))
    resends = [_ms(s.at) for s in steps if s.kind is StepKind.RESEND]
    assert resends == [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    assert (steps[-1].number, _ms(steps[-1].at), steps[-1].kind) == (11, 32000, StepKind.GIVE_UP)
    assert [s.number for s in steps] == list(range(1, 12))


def test_the_schedule_is_absolute_from_the_first_send() -> None:
    schedule = Reliable2xx(sent_at=1000.25)
    assert _ms(schedule.first().at) == 1_000_750
    assert _ms(schedule.step(4).at) == 1_007_750
    assert _ms(schedule.give_up_at) == 1_032_250


def test_other_timer_values() -> None:
    # T1 = 100 ms, T2 = 300 ms: 0.1, 0.3 (+0.2), 0.6, 0.9 … the give-up at 6.4 s.
    steps = _all(Reliable2xx(sent_at=0.0, t1=0.1, t2=0.3))
    assert [_ms(s.at) for s in steps[:4]] == [100, 300, 600, 900]
    gaps = {_ms(b.at - a.at) for a, b in itertools.pairwise(steps[2:-1])}
    assert gaps == {300}
    assert (_ms(steps[-1].at), steps[-1].kind) == (6400, StepKind.GIVE_UP)
    assert _ms(steps[-2].at) == 6300


def test_t2_equal_to_t1_resends_at_a_fixed_interval() -> None:
    steps = _all(Reliable2xx(sent_at=0.0, t1=0.5, t2=0.5))
    assert [_ms(s.at) for s in steps[:3]] == [500, 1000, 1500]
    assert len([s for s in steps if s.kind is StepKind.RESEND]) == 63
    assert (_ms(steps[-1].at), steps[-1].kind) == (32000, StepKind.GIVE_UP)


def test_nothing_follows_the_give_up() -> None:
    schedule = Reliable2xx(sent_at=0.0)
    give_up = schedule.step(11)
    assert give_up.kind is StepKind.GIVE_UP
    assert schedule.after(give_up) is None
    assert schedule.step(50) == give_up, "steps past the end are the give-up"


@pytest.mark.parametrize(
    ("now", "number", "at_ms"),
    [(-1.0, 1, 500), (0.0, 1, 500), (0.5, 2, 1500), (0.501, 2, 1500), (31.5, 11, 32000)],
)
def test_next_after_now(now: float, number: int, at_ms: int) -> None:
    step = Reliable2xx(sent_at=0.0).next_after(now)
    assert step is not None
    assert (step.number, _ms(step.at)) == (number, at_ms)


def test_next_after_the_give_up_is_none() -> None:
    assert Reliable2xx(sent_at=0.0).next_after(32.0) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"t1": 0.0}, "t1: must be a positive"),
        ({"t2": -1.0}, "t2: must be a positive"),
        ({"t1": 1.0, "t2": 0.5}, "t2: must not be below t1"),
    ],
)
def test_bad_timer_values_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Reliable2xx(sent_at=0.0, **fields)


def test_steps_count_from_one() -> None:
    with pytest.raises(ValueError, match="number: steps count from 1"):
        Reliable2xx(sent_at=0.0).step(0)
