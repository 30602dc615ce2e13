"""The media engine: RTP/RTCP, SDP, G.711, RFC 4733 DTMF, play, speak, record.

The call layer needs only what is re-exported here: a :class:`MediaEngine`
(one per reactor, wrapped by :class:`MediaService`) creates an
:class:`RTPSession` per call leg, which provides :class:`IMediaSession`;
:class:`MediaBridge` relays between two legs; a :class:`Mixer` mixes a conference.
"""

from __future__ import annotations

from media.bridge import MediaBridge
from media.config import MediaConfig, PortRange
from media.engine import MediaEngine, MediaService
from media.errors import (
    AudioFormatError,
    FetchError,
    MediaArgumentError,
    MediaError,
    PortsExhaustedError,
    RTCPError,
    RTPError,
    SDPError,
    SessionClosedError,
    TTSError,
)
from media.g711 import Codec
from media.interfaces import (
    AudioFrame,
    DigitsEnd,
    DigitsResult,
    EventFrame,
    IMediaListener,
    IMediaSession,
    PlayOutcome,
    RecordEnd,
    RecordingResult,
    SessionState,
)
from media.mixer import Mixer, MixMember, MixRecording
from media.sdp import Direction, Negotiated, SessionDescription, parse_sdp
from media.session import RTPSession

__all__ = (
    "AudioFormatError",
    "AudioFrame",
    "Codec",
    "DigitsEnd",
    "DigitsResult",
    "Direction",
    "EventFrame",
    "FetchError",
    "IMediaListener",
    "IMediaSession",
    "MediaArgumentError",
    "MediaBridge",
    "MediaConfig",
    "MediaEngine",
    "MediaError",
    "MediaService",
    "MixMember",
    "MixRecording",
    "Mixer",
    "Negotiated",
    "PlayOutcome",
    "PortRange",
    "PortsExhaustedError",
    "RTCPError",
    "RTPError",
    "RTPSession",
    "RecordEnd",
    "RecordingResult",
    "SDPError",
    "SessionClosedError",
    "SessionDescription",
    "SessionState",
    "TTSError",
    "parse_sdp",
)
