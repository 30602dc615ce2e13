"""The receive path's rules: which packets a session accepts, and which path they take.

Sans-IO and stateless: the session passes in what it knows (the negotiation, the
peer's address, whether it latched, who listens) and acts on the answer.

* :func:`admit` parses one datagram and applies the session's filters in order:
  malformed, nothing negotiated yet, unknown payload type, then the source
  (symmetric RTP: the first good packet *latches* the peer's real address, for
  phones behind NAT; later packets from elsewhere are foreign).  Each refusal is
  counted in the session's :class:`~media.ops.SessionCounters`.
* :func:`wants_inband` says when the in-band DTMF detector must run: digits
  matter to someone and RFC 4733 events were not negotiated.
* :func:`relay_route` says when the fast relay path applies: a bridge is the only
  listener that wants the audio, nothing records it or listens for tones.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from media.errors import RTPError
from media.g711 import Codec
from media.ops import SessionCounters
from media.relay import RelayRoute
from media.rtp import parse_rtp_fields
from media.sdp import Negotiated

if TYPE_CHECKING:
    from media.session import RTPSession

__all__ = (
    "CN_PAYLOAD_TYPE",
    "FAST_HEADER",
    "NonAudio",
    "RTPFields",
    "admit",
    "relay_route",
    "wants_inband",
)

#: Comfort noise (RFC 3389) is accepted and ignored, not counted as unknown.
CN_PAYLOAD_TYPE = 13
#: The fixed RTP header after its first byte: M/PT, sequence, timestamp, SSRC.
FAST_HEADER = struct.Struct("!BHII")


#: What :func:`~media.rtp.parse_rtp_fields` returns: ``(payload_type, marker,
#: sequence, timestamp, ssrc, payload)`` (a plain tuple: it is built per packet).
RTPFields = tuple[int, bool, int, int, int, bytes]


class NonAudio(enum.Enum):
    """An accepted packet that carries no audio."""

    #: An RFC 4733 telephone-event, for the digit receivers and listeners.
    EVENT = "telephone-event"
    #: Comfort noise (RFC 3389): accepted and ignored, not counted as unknown.
    COMFORT_NOISE = "CN"


def admit(
    datagram: bytes,
    addr: Any,
    negotiated: Negotiated | None,
    remote: tuple[str, int] | None,
    latched: bool,
    counters: SessionCounters,
) -> tuple[RTPFields, Codec | NonAudio] | None:
    """Parse and filter one datagram: its fields and what its payload is (the audio
    codec, or an event, or comfort noise); ``None``, counted, when it is dropped.

    An accepted packet from a session that has not latched yet is the one to latch
    to (the caller takes its source as the peer's address).

    :param addr: the (host, port) it came from, as the transport reports it.
    :param negotiated: the session's negotiation, if any yet.
    :param remote: the peer's address: from SDP, or latched.
    :param latched: whether ``remote`` was already learnt from a packet.
    :param counters: where drops are counted (``received`` is the caller's to count).
    """
    try:
        fields = parse_rtp_fields(datagram)
    except RTPError:
        counters.malformed += 1
        return None
    if negotiated is None:
        counters.unexpected += 1
        return None
    pt = fields[0]
    kind: Codec | NonAudio | None
    if pt == negotiated.telephone_event:
        kind = NonAudio.EVENT
    elif pt == negotiated.payload_type:
        kind = negotiated.codec
    else:
        kind = Codec.for_payload_type(pt)
        if kind is None and pt == CN_PAYLOAD_TYPE:
            kind = NonAudio.COMFORT_NOISE
    if kind is None:
        counters.unknown_pt += 1
        return None
    if latched and (addr[0], addr[1]) != remote:
        counters.foreign += 1
        return None
    return fields, kind


def wants_inband(
    negotiated: Negotiated | None, *, collecting: bool, recording: bool, listening: bool
) -> bool:
    """Whether the in-band DTMF detector must run.

    :param collecting: digits are being collected.
    :param recording: a foreground recording runs (keys may end it).
    :param listening: listeners are attached (they are told of digits).
    """
    return (
        negotiated is not None
        and negotiated.telephone_event is None
        and (collecting or recording or listening)
    )


def relay_route(
    negotiated: Negotiated | None,
    session: Any,
    listeners: Iterable[Any],
    *,
    target_type: type[RTPSession],
    full_path_needed: bool,
) -> RelayRoute | None:
    """The fast relay route for ``session``, or ``None`` when packets take the full path.

    :param negotiated: the session's negotiation; nothing is relayed before one.
    :param listeners: the session's listeners; those with ``wants_audio`` false
        (digit taps) do not count.  The one that does must offer ``relay_target``.
    :param target_type: what the relay target must be (a session with ``relay_payload``).
    :param full_path_needed: the peer is not latched yet, or something else needs
        the audio (a recording, the in-band detector).
    """
    if negotiated is None or full_path_needed:
        return None
    audio = [x for x in listeners if getattr(x, "wants_audio", True)]
    if len(audio) != 1 or not hasattr(audio[0], "relay_target"):
        return None
    target = audio[0].relay_target(session)
    if not isinstance(target, target_type):
        return None
    return RelayRoute(negotiated.payload_type, negotiated.codec, audio[0], target)
