"""One session's offer/answer state (media.negotiation), without a session or a socket."""

from __future__ import annotations

import pytest

from media.errors import MediaArgumentError, SDPError
from media.g711 import Codec
from media.negotiation import SdpNegotiation
from media.sdp import Direction, Origin, answer_offer, parse_sdp

PEER = Origin("peer", 7, 1, "192.0.2.10")


def ours(**kwargs: object) -> SdpNegotiation:
    defaults: dict[str, object] = {
        "origin": Origin("telephony", 42, 0, "127.0.0.1"),
        "address": "127.0.0.1",
        "port": 20000,
        "codecs": (Codec.PCMU, Codec.PCMA),
    }
    defaults.update(kwargs)
    return SdpNegotiation(**defaults)  # type: ignore[arg-type]


def test_each_description_bumps_the_origin_version_and_keeps_the_session_id() -> None:
    n = ours()
    first = n.create_offer()
    second = n.create_offer(Direction.SENDONLY)
    answer, _ = n.answer(first)  # a later offer from the peer: our answer is newer still
    assert [d.origin.session_version for d in (first, second, answer)] == [1, 2, 3]
    assert {d.origin.session_id for d in (first, second, answer)} == {42}
    assert n.last_offer is second


def test_offer_carries_our_address_codecs_event_and_direction() -> None:
    n = ours(codecs=(Codec.PCMA,), telephone_event=96, port=20002)
    offer = parse_sdp(n.create_offer(Direction.SENDONLY).to_bytes())
    media = offer.media[0]
    assert media.port == 20002
    assert offer.connection == "127.0.0.1"
    assert media.formats == ("8", "96")
    assert media.direction is Direction.SENDONLY


def test_settle_needs_an_outstanding_offer() -> None:
    with pytest.raises(MediaArgumentError, match="no offer of ours is outstanding"):
        ours().settle(ours().create_offer())


def test_settle_follows_the_peer_answer_to_our_last_offer() -> None:
    n = ours()
    offer = n.create_offer()
    answer, theirs = answer_offer(
        offer, PEER, address="192.0.2.10", port=4000, supported=(Codec.PCMA,)
    )
    negotiated = n.settle(answer)
    assert negotiated.codec is Codec.PCMA
    assert (negotiated.remote_host, negotiated.remote_port) == ("192.0.2.10", 4000)
    assert negotiated.telephone_event == theirs.telephone_event == 101


def test_answer_to_an_offer_without_our_codecs_is_refused() -> None:
    peer = ours(codecs=(Codec.PCMA,))
    offer = peer.create_offer()
    with pytest.raises(SDPError):
        ours(codecs=(Codec.PCMU,)).answer(offer)
