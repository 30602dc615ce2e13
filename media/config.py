"""Media engine configuration: one frozen value with every limit named.

The server's ``--rtp-ports LOW-HIGH`` option parses with :meth:`PortRange.parse`.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from media.audio import MAX_WAV_BYTES
from media.errors import MediaArgumentError
from media.g711 import Codec
from media.sdp import DEFAULT_TELEPHONE_EVENT_PT

__all__ = ("MediaConfig", "PortRange")


@attrs.frozen
class PortRange:
    """The UDP ports RTP may use: even ports ``p`` with ``p + 1`` (RTCP) also in range.

    :ivar low: first port, 1024-65534.
    :ivar high: last port, ``low + 1`` to 65535.
    """

    low: int = 16384
    high: int = 32767

    def __attrs_post_init__(self) -> None:
        if not 1024 <= self.low <= 65534:
            raise MediaArgumentError(f"rtp-ports: low port must be 1024-65534, got {self.low}")
        if not self.low < self.high <= 65535:
            raise MediaArgumentError(
                f"rtp-ports: high port must be {self.low + 1}-65535, got {self.high}"
            )
        if not self.pairs:
            raise MediaArgumentError(
                f"rtp-ports: {self.low}-{self.high} holds no even port with its odd neighbour"
            )

    @property
    def first_even(self) -> int:
        """The lowest even port in range."""
        return self.low + (self.low & 1)

    @property
    def pairs(self) -> int:
        """How many RTP/RTCP port pairs fit."""
        return max(0, (self.high - self.first_even + 1) // 2)

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """Parse ``LOW-HIGH``, e.g. ``16384-32767``.

        :raises MediaArgumentError: naming the option and the rule.
        """
        low, sep, high = text.strip().partition("-")
        if not sep or not (low + high).isascii() or not low.isdigit() or not high.isdigit():
            raise MediaArgumentError(f"rtp-ports: must be LOW-HIGH, e.g. 16384-32767; got {text!r}")
        return cls(int(low), int(high))


@attrs.frozen
class MediaConfig:
    """Everything the media engine needs to know, with its limits.

    :ivar rtp_ports: the RTP port range (RTCP on each port + 1).
    :ivar bind_host: the address RTP sockets bind to.
    :ivar advertise_host: the address put in SDP ``c=`` lines (defaults to
        ``bind_host``; set it when binding to 0.0.0.0 or behind NAT).
    :ivar data_dir: the server's data directory: recordings go to
        ``recordings/``, caches to ``cache/audio`` and ``cache/tts``, and
        local files may be played from ``sounds/``.
    :ivar codecs: what we offer and accept, in our order of preference.
    :ivar telephone_event: the RFC 4733 payload type we offer.
    :ivar rtcp: whether sessions send RTCP reports.
    :ivar rtcp_interval: nominal seconds between reports (RFC 3550: at least 5).
    :ivar espeak: the eSpeak NG binary.
    :ivar tts_timeout: seconds a synthesis may take.
    :ivar fetch_timeout: seconds an audio URL fetch may take.
    :ivar max_audio_bytes: largest WAV file or fetched body, in bytes.
    :ivar audio_cache_bytes: bound of the fetched-audio disk cache, in bytes.
    :ivar tts_cache_bytes: bound of the speech disk cache, in bytes.
    :ivar clip_cache_entries: decoded clips kept in memory (per cache).
    :ivar tick_phases: groups the shared 20 ms tick serves in turn, spreading
        the sends of many streams over the interval (1 = one burst per tick).
    """

    rtp_ports: PortRange = PortRange()
    bind_host: str = "127.0.0.1"
    advertise_host: str | None = None
    data_dir: Path = Path("var")
    codecs: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA)
    telephone_event: int = DEFAULT_TELEPHONE_EVENT_PT
    rtcp: bool = True
    rtcp_interval: float = 5.0
    espeak: str = "espeak-ng"
    tts_timeout: float = 30.0
    fetch_timeout: float = 15.0
    max_audio_bytes: int = MAX_WAV_BYTES
    audio_cache_bytes: int = 256 * 1024 * 1024
    tts_cache_bytes: int = 256 * 1024 * 1024
    clip_cache_entries: int = 64
    tick_phases: int = 4

    @property
    def sdp_host(self) -> str:
        """The address we advertise in SDP."""
        return self.advertise_host or self.bind_host

    @property
    def recordings_dir(self) -> Path:
        """Where recordings are written by default."""
        return self.data_dir / "recordings"

    @property
    def sounds_dir(self) -> Path:
        """Local WAV files under here may be played."""
        return self.data_dir / "sounds"
