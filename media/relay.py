"""Relaying audio heard on one session into another: the route and the timeline.

Two small pieces of the bridged path, kept apart from the session so each can be
read and tested alone:

* :class:`RelayRoute` names the fast relay path's parts.  While a bridge is the
  only listener that wants a session's audio, each plain audio packet goes
  straight to the route's target session with no frame object; the route says
  which payload type qualifies, how to read it, and where it goes.  It is read
  once per packet, so it is a slotted attrs class (attribute reads as cheap as
  the anonymous tuple it replaced).
* :class:`RelayTimeline` maps each remote source's RTP timestamps onto the
  receiving session's own timeline, one offset per SSRC, so relayed frames keep
  their spacing while the stream keeps one SSRC and one timestamp space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

from media.g711 import Codec

if TYPE_CHECKING:
    from media.session import RTPSession

__all__ = ("FrameCounter", "RelayRoute", "RelayTimeline")


class FrameCounter(Protocol):
    """What the fast path needs of the bridge it stands in for: its frame count."""

    frames: int


@attrs.define(slots=True, eq=False, weakref_slot=False)
class RelayRoute:
    """The fast relay path of one session, while a bridge alone wants its audio.

    :param payload_type: the negotiated audio payload type; only packets with it
        take the route (events, comfort noise and others take the full path).
    :param codec: the codec of that payload type, handed to the target for transcoding.
    :param bridge: the listener the route stands in for; its :attr:`frames` is
        counted as if it had relayed the frame itself.
    :param target: the session that sends the audio on.
    """

    payload_type: int
    codec: Codec
    bridge: FrameCounter
    target: RTPSession


#: RTP timestamps are 32-bit and wrap (RFC 3550 §5.1).
_TS_MASK = 0xFFFFFFFF


@attrs.define(slots=True)
class RelayTimeline:
    """Per-source offsets from remote RTP timestamps to ours.

    :param max_sources: most sources remembered; one more starts the table afresh
        (a bridge sees one or two sources; a flood of SSRCs must not grow it).
    """

    max_sources: int
    _offsets: dict[int, int] = attrs.field(factory=dict, init=False)

    def map(self, ssrc: int, timestamp: int) -> int | None:
        """``timestamp`` from ``ssrc`` on our timeline; ``None`` for a source not yet
        seen (then :meth:`start` it)."""
        offset = self._offsets.get(ssrc)
        if offset is None:
            return None
        return (timestamp + offset) & _TS_MASK

    def start(self, ssrc: int, timestamp: int, ours: int) -> int:
        """Begin mapping ``ssrc`` so that ``timestamp`` lands on ``ours`` (our
        timestamp for now); returns ``ours``."""
        if len(self._offsets) >= self.max_sources:
            self._offsets.clear()
        self._offsets[ssrc] = (ours - timestamp) & _TS_MASK
        return ours & _TS_MASK

    def clear(self) -> None:
        """Forget every source (the stream was taken over, or relaying restarts)."""
        self._offsets.clear()

    def __len__(self) -> int:
        return len(self._offsets)
