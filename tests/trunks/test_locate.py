"""RFC 3263 §4 decisions and RFC 2782 SRV ordering (sans-IO, exact)."""

from __future__ import annotations

import random
import socket
from collections import Counter

import pytest

from telephony.sip.locate import (
    DEFAULT_PORT,
    AddressLookup,
    Literal,
    LocateError,
    LocateFailure,
    ServiceLookup,
    SrvRecord,
    Target,
    ip_family,
    normalize_host,
    order_srv,
    plan,
    srv_targets,
)


class ScriptedRandInt:
    """A ``randint`` that returns scripted draws and records the ranges asked for."""

    def __init__(self, *draws: int) -> None:
        self.draws = list(draws)
        self.asked: list[tuple[int, int]] = []

    def __call__(self, low: int, high: int) -> int:
        self.asked.append((low, high))
        draw = self.draws.pop(0)
        assert low <= draw <= high
        return draw


def srv(priority: int, weight: int, target: str, port: int = 5060) -> SrvRecord:
    return SrvRecord(priority, weight, port, target)


SERVICE = ServiceLookup("_sip._udp.carrier.test", "carrier.test", "udp")


# --- plan: RFC 3263 §4.1 (transport) and §4.2 (what to look up) -----------------------


def test_ip_literal_is_used_as_is_at_the_default_port() -> None:
    assert plan("192.0.2.7") == Literal(Target("udp", "192.0.2.7", 5060))


def test_ip_literal_keeps_an_explicit_port_and_transport() -> None:
    assert plan("192.0.2.7", 5080, "TCP") == Literal(Target("tcp", "192.0.2.7", 5080))


def test_ipv6_reference_loses_its_brackets_and_is_canonical() -> None:
    assert plan("[2001:DB8:0::1]") == Literal(Target("udp", "2001:db8::1", DEFAULT_PORT))
    assert plan("::1", 5070) == Literal(Target("udp", "::1", 5070))


def test_name_with_a_port_is_an_address_lookup_not_srv() -> None:
    assert plan("Sip.Carrier.Test.", 5080) == AddressLookup(Target("udp", "sip.carrier.test", 5080))


def test_name_without_a_port_asks_srv_for_udp_by_default() -> None:
    assert plan("Carrier.Test") == ServiceLookup("_sip._udp.carrier.test", "carrier.test", "udp")


def test_name_without_a_port_asks_srv_for_the_transport_given() -> None:
    assert plan("carrier.test", None, "tcp").name == "_sip._tcp.carrier.test"


def test_srv_fallback_is_the_host_at_5060() -> None:
    assert plan("carrier.test", None, "tcp").fallback == AddressLookup(  # type: ignore[union-attr]
        Target("tcp", "carrier.test", 5060)
    )


@pytest.mark.parametrize(
    ("host", "port", "transport", "field"),
    [
        ("", None, None, "host"),
        ("bad host", None, None, "host"),
        ("-carrier.test", None, None, "host"),
        ("carrier..test", None, None, "host"),
        ("a" * 64 + ".test", None, None, "host"),
        ("x." * 127 + "test", None, None, "host"),
        ("[192.0.2.1]", None, None, "host"),
        ("[::1", None, None, "host"),
        ("carrier.test:5060", None, None, "host"),
        ("carrier.test", 0, None, "port"),
        ("carrier.test", 65536, None, "port"),
        ("192.0.2.1", 70000, None, "port"),
        ("carrier.test", None, "tls", "transport"),
        ("carrier.test", 5061, "tls", "transport"),
        ("192.0.2.1", None, "sctp", "transport"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    host: str, port: int | None, transport: str | None, field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        plan(host, port, transport)


def test_ip_family() -> None:
    assert ip_family("192.0.2.1") == socket.AF_INET
    assert ip_family("[::1]") == socket.AF_INET6
    assert ip_family("carrier.test") is None


def test_normalize_host_keeps_a_name_of_253_characters() -> None:
    name = ("a" * 62 + ".") * 4 + "b"  # 253 characters
    assert normalize_host(name) == name


# --- RFC 2782 ordering ------------------------------------------------------------------


def test_lower_priority_first_whatever_the_answer_order() -> None:
    records = [srv(20, 0, "c.test"), srv(10, 0, "a.test"), srv(30, 0, "d.test")]
    assert [r.target for r in order_srv(records, ScriptedRandInt(0, 0, 0))] == [
        "a.test",
        "c.test",
        "d.test",
    ]


def test_weighted_draw_takes_the_first_running_sum_that_reaches_the_number() -> None:
    # Running sums in the arranged order (zero weights first): z 0, a 10, b 30.
    records = [srv(1, 10, "a.test"), srv(1, 20, "b.test"), srv(1, 0, "z.test")]
    rand = ScriptedRandInt(11, 0, 10)
    ordered = order_srv(records, rand)
    # 11 > 10 (a's sum) → b; then 0 → z (sum 0 reaches 0); a is left.
    assert [r.target for r in ordered] == ["b.test", "z.test", "a.test"]
    assert rand.asked == [(0, 30), (0, 10), (1, 10)]


def test_a_draw_equal_to_a_running_sum_selects_that_record() -> None:
    records = [srv(1, 10, "a.test"), srv(1, 20, "b.test")]
    rand = ScriptedRandInt(10, 20)
    assert [r.target for r in order_srv(records, rand)] == ["a.test", "b.test"]
    # No zero weight: drawn from 1, so the first record gets no extra share.
    assert rand.asked == [(1, 30), (1, 20)]


def test_weights_one_and_one_split_evenly() -> None:
    """Drawn from 0 as RFC 2782's text says, the first would win 2 draws in 3 (the
    erratum); drawn from 1, each wins one draw of two."""
    records = [srv(1, 1, "a.test"), srv(1, 1, "b.test")]
    assert order_srv(records, ScriptedRandInt(1, 1))[0].target == "a.test"
    assert order_srv(records, ScriptedRandInt(2, 1))[0].target == "b.test"


def test_zero_weight_is_drawn_only_on_zero_while_others_have_weight() -> None:
    records = [srv(1, 5, "a.test"), srv(1, 0, "z.test")]
    assert [r.target for r in order_srv(records, ScriptedRandInt(1, 0))] == ["a.test", "z.test"]
    assert [r.target for r in order_srv(records, ScriptedRandInt(0, 5))] == ["z.test", "a.test"]


def test_all_zero_weights_keep_the_order_given() -> None:
    records = [srv(1, 0, "b.test"), srv(1, 0, "a.test"), srv(1, 0, "c.test")]
    rand = ScriptedRandInt(0, 0, 0)
    assert [r.target for r in order_srv(records, rand)] == ["b.test", "a.test", "c.test"]
    assert rand.asked == [(0, 0)] * 3


def test_weights_share_first_place_in_proportion() -> None:
    """Over 4,000 seeded orderings, weight 3 comes first about three times as often as
    weight 1 (exact counts for this seed; the proportion is what matters)."""
    records = [srv(1, 1, "light.test"), srv(1, 3, "heavy.test")]
    rng = random.Random(2782)
    firsts = Counter(order_srv(records, rng.randint)[0].target for _ in range(4000))
    assert firsts["heavy.test"] + firsts["light.test"] == 4000
    assert 2850 <= firsts["heavy.test"] <= 3150  # 3,000 expected; ±5 standard deviations


def test_every_record_is_ordered_exactly_once() -> None:
    records = [srv(p, w, f"h{p}{w}.test") for p in (2, 1) for w in (0, 1, 7)]
    rng = random.Random(7)
    for _ in range(50):
        ordered = order_srv(records, rng.randint)
        assert sorted(ordered, key=repr) == sorted(records, key=repr)
        assert [r.priority for r in ordered] == [1, 1, 1, 2, 2, 2]


# --- SRV records to targets ---------------------------------------------------------------


def test_no_srv_records_fall_back_to_the_host_at_5060() -> None:
    assert srv_targets(SERVICE, []) == AddressLookup(Target("udp", "carrier.test", 5060))


def test_targets_in_order_with_their_ports_normalized() -> None:
    records = [srv(20, 0, "B.Carrier.Test.", 5080), srv(10, 0, "a.carrier.test.", 5070)]
    assert srv_targets(SERVICE, records, ScriptedRandInt(0, 0)) == (
        Target("udp", "a.carrier.test", 5070),
        Target("udp", "b.carrier.test", 5080),
    )


@pytest.mark.parametrize("root", [".", ""])
def test_a_single_dot_target_means_not_available_there(root: str) -> None:
    with pytest.raises(LocateError) as caught:
        srv_targets(SERVICE, [srv(0, 0, root, 0)])
    assert caught.value.kind is LocateFailure.NOT_AVAILABLE
    assert caught.value.host == "carrier.test"
    assert str(caught.value) == (
        "cannot locate SIP server carrier.test: SRV _sip._udp.carrier.test says the "
        "service is not available there (target '.')"
    )


def test_unusable_records_are_skipped_and_duplicates_dropped() -> None:
    records = [
        srv(1, 0, "a.test"),
        srv(1, 0, "."),
        srv(1, 0, "under_score.test"),
        srv(1, 0, "zero-port.test", 0),
        srv(2, 0, "A.test."),
        srv(3, 0, "b.test"),
    ]
    assert srv_targets(SERVICE, records, ScriptedRandInt(0, 0, 0, 0, 0)) == (
        Target("udp", "a.test", 5060),
        Target("udp", "b.test", 5060),
    )


def test_only_unusable_records_is_no_address() -> None:
    with pytest.raises(LocateError) as caught:
        srv_targets(SERVICE, [srv(1, 0, "zero-port.test", 0)], ScriptedRandInt(0))
    assert caught.value.kind is LocateFailure.NO_ADDRESS
    assert "carrier.test" in str(caught.value)
