"""The relay route record and the per-source timestamp timeline (media.relay)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.g711 import Codec
from media.relay import RelayRoute, RelayTimeline


class _Bridge:
    frames = 0


def test_route_names_its_parts_and_is_slotted() -> None:
    bridge, target = _Bridge(), object()
    route = RelayRoute(8, Codec.PCMA, bridge, target)  # type: ignore[arg-type]
    assert (route.payload_type, route.codec, route.bridge, route.target) == (
        8,
        Codec.PCMA,
        bridge,
        target,
    )
    assert [f.name for f in attrs.fields(RelayRoute)] == [
        "payload_type",
        "codec",
        "bridge",
        "target",
    ]
    assert not hasattr(route, "__dict__")  # read per packet: slots, no instance dict
    with pytest.raises(AttributeError):
        route.other = 1  # type: ignore[attr-defined]


def test_a_new_source_is_unmapped_until_started_then_keeps_its_spacing() -> None:
    timeline = RelayTimeline(max_sources=8)
    assert timeline.map(0x1234, 1000) is None
    assert timeline.start(0x1234, 1000, 50_000) == 50_000
    assert timeline.map(0x1234, 1160) == 50_160
    assert timeline.map(0x1234, 840) == 49_840  # reordered packets keep their place
    assert timeline.map(0x9999, 1160) is None  # each source has its own offset


def test_mapping_wraps_at_32_bits() -> None:
    timeline = RelayTimeline(max_sources=8)
    timeline.start(1, 0xFFFFFF00, 100)
    assert timeline.map(1, 0xFFFFFFA0) == 260
    timeline.start(2, 10, 0xFFFFFFF0)
    assert timeline.map(2, 170) == 0x90


def test_one_source_too_many_starts_the_table_afresh() -> None:
    timeline = RelayTimeline(max_sources=2)
    timeline.start(1, 0, 0)
    timeline.start(2, 0, 0)
    assert len(timeline) == 2
    timeline.start(3, 0, 500)
    assert len(timeline) == 1
    assert timeline.map(1, 0) is None
    assert timeline.map(3, 160) == 660


def test_clear_forgets_every_source() -> None:
    timeline = RelayTimeline(max_sources=8)
    timeline.start(1, 0, 0)
    timeline.clear()
    assert timeline.map(1, 0) is None


@given(
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.integers(-(2**20), 2**20), max_size=20),
)
def test_differences_between_packets_survive_the_mapping(
    first: int, ours: int, steps: list[int]
) -> None:
    timeline = RelayTimeline(max_sources=8)
    timeline.start(7, first, ours)
    for step in steps:
        mapped = timeline.map(7, (first + step) & 0xFFFFFFFF)
        assert mapped == (ours + step) & 0xFFFFFFFF
