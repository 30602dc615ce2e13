"""Typed errors of the media engine.

Every error names the field it is about and the rule that was broken, so the
edge (a SIP 488, a REST 400, an XML verb error) can pass the message on
unchanged.  Errors about what a peer sent (:class:`RTPError`, :class:`SDPError`)
are *remote*: the packet or body is dropped or refused and nothing else
happens.  Errors about what our own caller asked (:class:`MediaArgumentError`)
are raised before any Deferred exists.
"""

from __future__ import annotations

__all__ = (
    "AudioFormatError",
    "FetchError",
    "MediaArgumentError",
    "MediaError",
    "PortsExhaustedError",
    "RTCPError",
    "RTPError",
    "SDPError",
    "SessionClosedError",
    "TTSError",
)


class MediaError(Exception):
    """Base class of every error raised by :mod:`media`."""


class RTPError(MediaError, ValueError):
    """A datagram is not a valid RTP packet (RFC 3550 §5.1).

    Sessions count and drop such packets; this error never reaches the reactor.
    """


class RTCPError(MediaError, ValueError):
    """A datagram is not a valid RTCP compound packet (RFC 3550 §6)."""


class SDPError(MediaError, ValueError):
    """A session description is malformed or cannot be answered.

    :ivar status_hint: the SIP status the call layer should answer with:
        400 for a syntax error, 488 (Not Acceptable Here) when the description
        is well formed but offers nothing we support.
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class AudioFormatError(MediaError, ValueError):
    """A WAV file or audio buffer cannot be decoded or exceeds a limit."""


class MediaArgumentError(MediaError, ValueError):
    """A media operation was called with an invalid argument (our caller's fault)."""


class PortsExhaustedError(MediaError):
    """No even RTP port (with its RTCP port) is free in the configured range."""


class FetchError(MediaError):
    """An audio URL could not be fetched (status, size limit or timeout)."""


class TTSError(MediaError):
    """Text to speech failed (eSpeak NG missing, exited non-zero, or timed out)."""


class SessionClosedError(MediaError):
    """An operation was started on, or interrupted by, a closed media session."""
