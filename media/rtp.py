"""RTP packets (RFC 3550 §5.1): a sans-IO codec and the sender's counters.

Nothing here does I/O or reads a clock.  :func:`parse_rtp` turns a datagram
into an :class:`RTPPacket` or raises :class:`~media.errors.RTPError` naming
the field and the rule; :meth:`RTPPacket.to_bytes` is its inverse.
:class:`OutboundStream` owns one stream's SSRC, sequence number and timestamp
(random starts, +1 and +160 per 20 ms G.711 frame, wrapping modulo 2**16 and
2**32) so audio, DTMF events and relayed frames share one sequence space, as
RFC 4733 §2.1 requires.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from media.errors import RTPError

__all__ = (
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "OutboundStream",
    "RTPHeaderExtension",
    "RTPPacket",
    "pack_rtp",
    "parse_rtp",
    "parse_rtp_fields",
)

#: The only RTP version in use (RFC 3550 §5.1).
RTP_VERSION = 2
#: Size in bytes of the fixed header, before CSRCs and extension.
RTP_HEADER_SIZE = 12
#: Largest datagram we accept, in bytes (an Ethernet MTU is 1500; jumbo
#: RTP is not used for narrowband voice).  Longer datagrams are malformed.
MAX_RTP_PACKET = 1500

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


def _uint(bits: int, name: str) -> Callable[[Any, attrs.Attribute[int], int], None]:
    limit = (1 << bits) - 1

    def check(_inst: object, _attr: attrs.Attribute[int], value: int) -> None:
        if not 0 <= value <= limit:
            raise RTPError(f"{name}: must be 0-{limit}, got {value}")

    return check


def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _check_csrcs(
    _inst: object, _attr: attrs.Attribute[tuple[int, ...]], v: tuple[int, ...]
) -> None:
    if len(v) > 15:
        raise RTPError(f"csrc: at most 15 contributing sources, got {len(v)}")
    for c in v:
        if not 0 <= c <= 0xFFFFFFFF:
            raise RTPError(f"csrc: must be 0-4294967295, got {c}")


def _check_ext_data(_inst: object, _attr: attrs.Attribute[bytes], v: bytes) -> None:
    if len(v) % 4:
        raise RTPError(f"extension: data must be whole 32-bit words, got {len(v)} bytes")
    if len(v) > 0xFFFF * 4:
        raise RTPError("extension: data longer than 65535 words")


@attrs.frozen
class RTPHeaderExtension:
    """The header extension (RFC 3550 §5.3.1): a 16-bit profile word and data.

    :ivar profile: the profile-defined 16 bits (e.g. 0xBEDE for RFC 8285).
    :ivar data: the extension body, a multiple of 4 bytes.
    """

    profile: int = attrs.field(validator=_uint(16, "extension profile"))
    data: bytes = attrs.field(default=b"", validator=_check_ext_data)


@attrs.frozen
class RTPPacket:
    """One RTP packet.

    :ivar payload_type: 7-bit payload type (0 PCMU, 8 PCMA, 96-127 dynamic).
    :ivar sequence: 16-bit sequence number.
    :ivar timestamp: 32-bit media timestamp, in clock-rate units (8000 Hz here).
    :ivar ssrc: 32-bit synchronisation source.
    :ivar payload: the payload bytes, without padding.
    :ivar marker: the M bit (first packet of a talkspurt or of a DTMF event).
    :ivar csrcs: contributing sources, at most 15.
    :ivar extension: the header extension, if the X bit is set.
    :ivar padding: number of padding bytes to append (0 means no P bit), 0-255.
    """

    payload_type: int = attrs.field(validator=_uint(7, "payload type"))
    sequence: int = attrs.field(validator=_uint(16, "sequence"))
    timestamp: int = attrs.field(validator=_uint(32, "timestamp"))
    ssrc: int = attrs.field(validator=_uint(32, "ssrc"))
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple, validator=_check_csrcs)
    extension: RTPHeaderExtension | None = None
    padding: int = attrs.field(default=0, validator=_uint(8, "padding"))

    def to_bytes(self) -> bytes:
        """Serialise to a datagram.

        :returns: the header, CSRCs, extension, payload and padding, in order.
        """
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        parts = [
            _HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def pack_rtp(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    """Serialise a plain packet (no CSRC, extension or padding) without building an object.

    This is the per-frame send path; the arguments must already be in range
    (they come from :class:`OutboundStream`).

    :returns: the datagram.
    """
    return (
        _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)
        + payload
    )


def parse_rtp(data: bytes) -> RTPPacket:
    """Parse a datagram as an RTP packet.

    :param data: the UDP payload.
    :returns: the packet; its ``payload`` excludes padding.
    :raises RTPError: naming the field and rule, for a short or oversized
        datagram, a version other than 2, an RTCP packet type in the payload
        type position (RFC 5761 §4), or CSRC / extension / padding lengths that
        overrun the datagram.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RTPError(f"header: need at least {RTP_HEADER_SIZE} bytes, got {size}")
    if size > MAX_RTP_PACKET:
        raise RTPError(f"packet: at most {MAX_RTP_PACKET} bytes, got {size}")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RTPError(f"version: must be 2, got {version}")
    if 200 <= second <= 204:
        # RTCP SR/RR/SDES/BYE/APP multiplexed on the RTP port (RFC 5761 §4).
        raise RTPError(f"payload type: {second & 0x7F} with marker is an RTCP packet type")
    offset = RTP_HEADER_SIZE
    cc = first & 0x0F
    csrcs: tuple[int, ...] = ()
    if cc:
        end = offset + 4 * cc
        if end > size:
            raise RTPError(f"csrc count: {cc} CSRCs overrun a {size}-byte packet")
        csrcs = struct.unpack_from(f"!{cc}I", data, offset)
        offset = end
    extension = None
    if first & 0x10:
        if offset + 4 > size:
            raise RTPError("extension: header overruns the packet")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4
        end = offset + 4 * words
        if end > size:
            raise RTPError(f"extension: length {words} words overruns the packet")
        extension = RTPHeaderExtension(profile, bytes(data[offset:end]))
        offset = end
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RTPError("padding: P bit set but the padding count is 0")
        if offset + padding > size:
            raise RTPError(f"padding: count {padding} overruns the packet")
        end = size - padding
    return RTPPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension=extension,
        padding=padding,
    )


def parse_rtp_fields(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    """Parse a datagram into ``(payload_type, marker, sequence, timestamp, ssrc, payload)``.

    The per-packet receive path: a plain packet (no padding, extension or
    CSRC, as voice packets almost always are) is unpacked without building an
    object; anything else goes through :func:`parse_rtp`, with the same errors.

    :raises RTPError: as :func:`parse_rtp`.
    """
    if len(data) >= RTP_HEADER_SIZE and data[0] == 0x80 and len(data) <= MAX_RTP_PACKET:
        _first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if not 200 <= second <= 204:
            return second & 0x7F, second > 0x7F, sequence, timestamp, ssrc, data[12:]
    p = parse_rtp(data)
    return p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc, p.payload


class OutboundStream:
    """Sequence, timestamp and SSRC of one RTP stream we send.

    Sequence and timestamp start at random values (RFC 3550 §5.1) and wrap.
    Callers give the timestamp of each packet explicitly, computed from the
    frame index of the shared tick (``ts0 + 160 * n``), so the media clock never
    drifts from wall-clock time; the stream only numbers the packets.

    :param ssrc: the SSRC, random if ``None``.
    :param sequence: the first sequence number, random if ``None``.
    :param timestamp: the timestamp of frame 0, random if ``None``.
    """

    def __init__(
        self, *, ssrc: int | None = None, sequence: int | None = None, timestamp: int | None = None
    ) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.next_sequence = secrets.randbits(16) if sequence is None else sequence
        self.timestamp_base = secrets.randbits(32) if timestamp is None else timestamp
        #: Packets and payload octets sent, for RTCP sender reports.
        self.packets_sent = 0
        self.octets_sent = 0
        #: Timestamp of the last packet sent, for RTCP sender reports.
        self.last_timestamp = self.timestamp_base

    def timestamp_at(self, units: int) -> int:
        """The RTP timestamp ``units`` clock-rate ticks after the base, wrapped to 32 bits."""
        return (self.timestamp_base + units) & 0xFFFFFFFF

    def packet(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> bytes:
        """Number and serialise one packet of this stream.

        :param payload_type: the 7-bit payload type.
        :param timestamp: the packet's 32-bit timestamp.
        :param payload: the payload bytes.
        :param marker: the M bit.
        :returns: the datagram; the sequence number advances by one.
        """
        seq = self.next_sequence
        self.next_sequence = (seq + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self.last_timestamp = timestamp
        return pack_rtp(payload_type, seq, timestamp, self.ssrc, payload, marker)
