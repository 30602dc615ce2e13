"""SDP (RFC 4566) parsing and generation, and audio offer/answer (RFC 3264).

Sans-IO: bodies in, frozen value objects out.  :func:`parse_sdp` raises
:class:`~media.errors.SDPError` naming the line type and the rule
("m=audio: port must be 0-65535"); :func:`answer_offer` picks the first codec
of the offer we support (PCMU, PCMA), takes the offer's ``telephone-event/8000``
payload type, mirrors the direction (sendonly <-> recvonly) and refuses every
other stream with port 0, keeping the offer's m-line order (RFC 3264 §6).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Sequence

import attrs

from media.errors import SDPError
from media.g711 import Codec

__all__ = (
    "DEFAULT_TELEPHONE_EVENT_PT",
    "MAX_SDP_BYTES",
    "Direction",
    "MediaDescription",
    "Negotiated",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "make_offer",
    "parse_sdp",
)

#: The telephone-event payload type we offer (Asterisk and FreeSWITCH use 101 too).
DEFAULT_TELEPHONE_EVENT_PT = 101
#: Largest SDP body we parse, in bytes; SIP over UDP rarely carries more than 4 KiB.
MAX_SDP_BYTES = 65536
#: Most m-lines we accept in one description.
MAX_MEDIA_LINES = 16
#: The packet interval we send, in ms: every stream rides the shared 20 ms tick.
PTIME_MS = 20

_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")  # RFC 4566 §9 token
_RTPMAP = re.compile(r"^(\d{1,3}) ([^/\s]+)/(\d{1,6})(?:/(\d{1,2}))?$")


class Direction(enum.Enum):
    """Media direction attributes (RFC 3264 §5.1); ``inactive`` is a full hold."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """Whether the side with this direction sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether the side with this direction receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def answer(self, wanted: Direction | None = None) -> Direction:
        """Our direction in an answer to an offer with this direction.

        :param wanted: what we would like (``sendrecv`` by default, ``sendonly``
            to hold the peer).
        """
        wanted = wanted or Direction.SENDRECV
        sends = self.receives and wanted.sends
        receives = self.sends and wanted.receives
        return _DIRECTIONS[(sends, receives)]


_DIRECTIONS = {
    (True, True): Direction.SENDRECV,
    (True, False): Direction.SENDONLY,
    (False, True): Direction.RECVONLY,
    (False, False): Direction.INACTIVE,
}


@attrs.frozen
class RtpMap:
    """An ``a=rtpmap`` line: payload type, encoding name, clock rate (Hz), channels."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    def to_line(self) -> str:
        """The attribute value, e.g. ``101 telephone-event/8000``."""
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{suffix}"


@attrs.frozen
class Origin:
    """The ``o=`` line (RFC 4566 §5.2); ``session_version`` grows with each new offer."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    address: str = "127.0.0.1"

    @property
    def address_type(self) -> str:
        """``IP4`` or ``IP6``, from the address."""
        return _address_type(self.address)


@attrs.frozen
class MediaDescription:
    """One m-section.

    :ivar media: the media type (``audio``, ``video`` ...).
    :ivar port: the RTP port; 0 means the stream is refused or disabled.
    :ivar proto: the transport (``RTP/AVP`` is the only one we accept for audio).
    :ivar formats: the format list, payload types as strings, in preference order.
    :ivar connection: the media-level ``c=`` address, if any.
    :ivar rtpmaps: the ``a=rtpmap`` lines, by payload type.
    :ivar fmtps: the ``a=fmtp`` values, as (payload type, parameters) pairs.
    :ivar ptime: the ``a=ptime`` packet time in ms, if given.
    :ivar direction: the media-level direction attribute, if given.
    :ivar attributes: other attributes, as (name, value or ``None``), kept verbatim.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    rtpmaps: tuple[RtpMap, ...] = ()
    fmtps: tuple[tuple[int, str], ...] = ()
    ptime: int | None = None
    direction: Direction | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The rtpmap for a payload type, with RFC 3551 defaults for static PCMU/PCMA."""
        for m in self.rtpmaps:
            if m.payload_type == payload_type:
                return m
        codec = Codec.for_payload_type(payload_type)
        return RtpMap(payload_type, codec.value, 8000) if codec else None


@attrs.frozen
class SessionDescription:
    """A whole SDP body.

    :ivar origin: the ``o=`` line.
    :ivar name: the ``s=`` line (``-`` when there is nothing to say).
    :ivar connection: the session-level ``c=`` address, if any.
    :ivar media: the m-sections, in order.
    :ivar direction: the session-level direction attribute, if any.
    """

    origin: Origin
    media: tuple[MediaDescription, ...]
    name: str = "-"
    connection: str | None = None
    direction: Direction | None = None

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends (RFC 4566 §5)."""
        o = self.origin
        lines = [
            "v=0",
            f"o={o.username} {o.session_id} {o.session_version} IN {o.address_type} {o.address}",
            f"s={self.name}",
        ]
        if self.connection:
            lines.append(f"c=IN {_address_type(self.connection)} {self.connection}")
        lines.append("t=0 0")
        if self.direction:
            lines.append(f"a={self.direction.value}")
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}")
            if m.connection:
                lines.append(f"c=IN {_address_type(m.connection)} {m.connection}")
            lines.extend(f"a=rtpmap:{r.to_line()}" for r in m.rtpmaps)
            lines.extend(f"a=fmtp:{pt} {params}" for pt, params in m.fmtps)
            if m.ptime is not None:
                lines.append(f"a=ptime:{m.ptime}")
            if m.direction is not None:
                lines.append(f"a={m.direction.value}")
            lines.extend(f"a={k}:{v}" if v is not None else f"a={k}" for k, v in m.attributes)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _int(text: str, field: str, low: int, high: int) -> int:
    # isascii: str.isdigit() is true of '²', which int() refuses (found by fuzzing).
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise SDPError(f"{field} must be a number {low}-{high}, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise SDPError(f"{field} must be {low}-{high}, got {value}")
    return value


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SDPError(f"c=: must be 'IN IP4|IP6 <address>', got {value[:60]!r}")
    address = parts[2].split("/")[0]  # drop a multicast TTL
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise SDPError(f"c=: address must be an IP literal, got {address[:60]!r}") from None
    if (parsed.version == 6) != (parts[1] == "IP6"):
        raise SDPError(f"c=: address {address} does not match address type {parts[1]}")
    return address


def _origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SDPError(
            f"o=: needs 6 fields (username id version IN type address), got {len(parts)}"
        )
    return Origin(
        parts[0],
        _int(parts[1], "o=: session id", 0, 2**64 - 1),
        _int(parts[2], "o=: session version", 0, 2**64 - 1),
        parts[5],
    )


def _media_line(value: str) -> tuple[str, int, str, tuple[str, ...]]:
    parts = value.split()
    if len(parts) < 4:
        raise SDPError(f"m=: needs '<media> <port> <proto> <fmt> ...', got {value[:60]!r}")
    media = parts[0]
    if not _TOKEN.match(media):
        raise SDPError(f"m=: media type must be a token, got {media[:20]!r}")
    port_text = parts[1].split("/")[0]
    port = _int(port_text, f"m={media}: port", 0, 65535)
    return media, port, parts[2], tuple(parts[3:])


@attrs.define
class _MediaBuilder:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    rtpmaps: list[RtpMap] = attrs.Factory(list)
    fmtps: list[tuple[int, str]] = attrs.Factory(list)
    ptime: int | None = None
    direction: Direction | None = None
    attributes: list[tuple[str, str | None]] = attrs.Factory(list)

    def finish(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            connection=self.connection,
            rtpmaps=tuple(self.rtpmaps),
            fmtps=tuple(self.fmtps),
            ptime=self.ptime,
            direction=self.direction,
            attributes=tuple(self.attributes),
        )


def _media_attribute(builder: _MediaBuilder, name: str, value: str | None) -> None:
    media = builder.media
    if name == "rtpmap":
        match = _RTPMAP.match(value or "")
        if not match:
            raise SDPError(
                f"a=rtpmap: must be '<pt> <encoding>/<rate>[/<channels>]', got {value!r:.60}"
            )
        pt = _int(match[1], "a=rtpmap: payload type", 0, 127)
        channels = int(match[4]) if match[4] else 1
        rate = _int(match[3], "a=rtpmap: clock rate", 1, 999999)
        builder.rtpmaps.append(RtpMap(pt, match[2], rate, channels))
    elif name == "fmtp":
        pt_text, _, params = (value or "").partition(" ")
        pt = _int(pt_text, "a=fmtp: payload type", 0, 127)
        builder.fmtps.append((pt, params.strip()))
    elif name == "ptime":
        builder.ptime = _int((value or "").strip(), f"m={media}: a=ptime", 1, 1000)
    elif name in _DIRECTION_NAMES:
        builder.direction = Direction(name)
    else:
        builder.attributes.append((name, value))


_DIRECTION_NAMES = {d.value for d in Direction}


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body.

    Unknown line types and attributes are kept or skipped, never rejected
    (RFC 4566 §5: a parser must ignore attributes it does not understand); so are
    the attributes of media other than audio, which are never answered.

    :param body: the body, CRLF or LF line ends, UTF-8.
    :raises SDPError: naming the line type and rule, for a missing or
        malformed ``v=``/``o=``/``m=``/``c=`` line, a bad port, payload type or
        ptime, or a body over :data:`MAX_SDP_BYTES`.
    """
    if isinstance(body, bytes):
        if len(body) > MAX_SDP_BYTES:
            raise SDPError(f"body: at most {MAX_SDP_BYTES} bytes, got {len(body)}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SDPError("body: must be UTF-8") from None
    else:
        text = body
        if len(text) > MAX_SDP_BYTES:
            raise SDPError(f"body: at most {MAX_SDP_BYTES} characters, got {len(text)}")
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SDPError("v=: the description must start with 'v=0'")
    origin: Origin | None = None
    name = "-"
    connection: str | None = None
    direction: Direction | None = None
    media: list[MediaDescription] = []
    current: _MediaBuilder | None = None
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SDPError(f"line {number}: must be '<type>=<value>', got {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            if current is not None:
                media.append(current.finish())
            if len(media) >= MAX_MEDIA_LINES:
                raise SDPError(f"m=: at most {MAX_MEDIA_LINES} media descriptions")
            m, port, proto, formats = _media_line(value)
            current = _MediaBuilder(m, port, proto, formats)
        elif kind == "o" and current is None:
            origin = _origin(value)
        elif kind == "s" and current is None:
            name = value or "-"
        elif kind == "c":
            if current is None:
                connection = _connection(value)
            else:
                current.connection = _connection(value)
        elif kind == "a":
            attr, sep, attr_value = value.partition(":")
            if current is None:
                if attr in _DIRECTION_NAMES:
                    direction = Direction(attr)
            elif current.media != "audio":
                # Only audio is ever answered: another stream's attributes are kept as
                # they are, not checked (RFC 4475's valid INVITEs carry a video
                # ``a=rtpmap:31 LPC`` without a clock rate; refusing it refused them).
                current.attributes.append((attr, attr_value if sep else None))
            else:
                _media_attribute(current, attr, attr_value if sep else None)
    if current is not None:
        media.append(current.finish())
    if origin is None:
        raise SDPError("o=: the origin line is required")
    return SessionDescription(origin, tuple(media), name, connection, direction)


# Offer / answer ---------------------------------------------------------------


@attrs.frozen
class Negotiated:
    """What an offer/answer exchange settled for the audio stream.

    :ivar codec: the audio codec both sides use.
    :ivar payload_type: the payload type of that codec on the wire.
    :ivar telephone_event: the ``telephone-event/8000`` payload type, or ``None``
        when the peer did not negotiate RFC 4733 (in-band DTMF then).
    :ivar remote_host: the peer's RTP address from ``c=``.
    :ivar remote_port: the peer's RTP port from ``m=``.
    :ivar direction: *our* direction: whether we send and/or receive.
    :ivar remote_ptime: the packet time the peer asked for, in ms (we send 20).
    """

    codec: Codec
    payload_type: int
    telephone_event: int | None
    remote_host: str
    remote_port: int
    direction: Direction
    remote_ptime: int | None = None

    @property
    def on_hold(self) -> bool:
        """Whether the peer put the stream on hold (we must not send)."""
        return not self.direction.sends


def _audio_formats(m: MediaDescription, supported: Sequence[Codec]) -> tuple[Codec, int] | None:
    for fmt in m.formats:
        if not (fmt.isascii() and fmt.isdigit()) or int(fmt) > 127:
            continue
        rtpmap = m.rtpmap(int(fmt))
        if rtpmap is None or rtpmap.clock_rate != 8000 or rtpmap.channels != 1:
            continue
        for codec in supported:
            if rtpmap.encoding.upper() == codec.value:
                return codec, int(fmt)
    return None


def _telephone_event(m: MediaDescription) -> int | None:
    for r in m.rtpmaps:
        is_event = r.encoding.lower() == "telephone-event" and r.clock_rate == 8000
        if is_event and str(r.payload_type) in m.formats:
            return r.payload_type
    return None


def _audio_media(
    codecs: Sequence[tuple[int, Codec]],
    te: int | None,
    events: str,
    port: int,
    direction: Direction,
) -> MediaDescription:
    """An ``m=audio`` line for ``codecs`` (payload type, codec) in order, then
    telephone-event at ``te`` with the ``events`` range, if any."""
    formats = [str(pt) for pt, _ in codecs]
    rtpmaps = [RtpMap(pt, codec.value, 8000) for pt, codec in codecs]
    fmtps: list[tuple[int, str]] = []
    if te is not None:
        formats.append(str(te))
        rtpmaps.append(RtpMap(te, "telephone-event", 8000))
        fmtps.append((te, events))
    return MediaDescription(
        media="audio",
        port=port,
        proto="RTP/AVP",
        formats=tuple(formats),
        rtpmaps=tuple(rtpmaps),
        fmtps=tuple(fmtps),
        ptime=PTIME_MS,
        direction=direction,
    )


def make_offer(
    origin: Origin,
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
    telephone_event: int | None = DEFAULT_TELEPHONE_EVENT_PT,
    direction: Direction = Direction.SENDRECV,
) -> SessionDescription:
    """Build our offer: one audio stream with ``codecs`` in preference order.

    :param origin: our ``o=`` line (bump ``session_version`` for each re-offer).
    :param address: our RTP address for ``c=``.
    :param port: our RTP port.
    :param telephone_event: the RFC 4733 payload type to offer, or ``None``.
    :param direction: ``sendonly`` puts the peer on hold, ``inactive`` both ways.
    """
    if not codecs:
        raise SDPError("m=audio: offer at least one codec")
    entries = [(c.payload_type, c) for c in codecs]
    m = _audio_media(entries, telephone_event, "0-16", port, direction)
    return SessionDescription(origin, (m,), "-", address)


def _remote_address(offer: SessionDescription, m: MediaDescription) -> str:
    host = m.connection or offer.connection
    if host is None:
        raise SDPError(f"c=: no connection address for m={m.media} (session or media level)")
    return host


def _direction(sd: SessionDescription, m: MediaDescription, host: str) -> Direction:
    direction = m.direction or sd.direction or Direction.SENDRECV
    if host in ("0.0.0.0", "::"):  # noqa: S104 -- RFC 2543 hold, not a bind address
        # RFC 3264 §8.4: the old hold style; do not send to the null address.
        direction = _DIRECTIONS[(direction.sends, False)]
    return direction


def answer_offer(
    offer: SessionDescription,
    origin: Origin,
    *,
    address: str,
    port: int,
    supported: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
    wanted: Direction = Direction.SENDRECV,
) -> tuple[SessionDescription, Negotiated]:
    """Answer an offer: accept its first usable audio stream, refuse the rest.

    :param offer: the peer's offer.
    :param origin: our ``o=`` line.
    :param address: our RTP address for ``c=``.
    :param port: our RTP port.
    :param supported: the codecs we accept; the *offer's* order decides.
    :param wanted: our wish (``sendonly`` to hold the peer).
    :returns: the answer and what it settled.
    :raises SDPError: ``status_hint=488`` when no audio stream has a codec we
        support; 400 for an audio stream without a connection address.
    """
    answer_media: list[MediaDescription] = []
    negotiated: Negotiated | None = None
    for m in offer.media:
        choice = None
        if negotiated is None and m.media == "audio" and m.port and m.proto == "RTP/AVP":
            choice = _audio_formats(m, supported)
        if choice is None or negotiated is not None:
            answer_media.append(MediaDescription(m.media, 0, m.proto, m.formats))
            continue
        codec, pt = choice
        te = _telephone_event(m)
        host = _remote_address(offer, m)
        direction = _direction(offer, m, host).answer(wanted)
        answer_media.append(_audio_media([(pt, codec)], te, "0-15", port, direction))
        negotiated = Negotiated(codec, pt, te, host, m.port, direction, m.ptime)
    if negotiated is None:
        raise SDPError(
            "m=audio: no RTP/AVP audio stream offers PCMU/8000 or PCMA/8000", status_hint=488
        )
    return SessionDescription(origin, tuple(answer_media), "-", address), negotiated


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Settle our offer with the peer's answer.

    :raises SDPError: if the answer's m-lines do not match our offer, the audio
        stream was refused (port 0), or the answer picked a codec we did not offer.
    """
    if len(answer.media) != len(offer.media):
        raise SDPError(
            f"m=: answer has {len(answer.media)} media lines, offer had {len(offer.media)}"
        )
    ours = offer.media[0]
    m = answer.media[0]
    if m.media != "audio" or m.port == 0:
        raise SDPError("m=audio: the peer refused the audio stream (port 0)", status_hint=488)
    offered = [Codec.for_payload_type(int(f)) for f in ours.formats if f.isascii() and f.isdigit()]
    choice = _audio_formats(m, [c for c in offered if c is not None])
    if choice is None:
        raise SDPError("m=audio: the answer picked no codec from our offer", status_hint=488)
    host = _remote_address(answer, m)
    te = _telephone_event(m)
    # Our direction is the complement of theirs.
    theirs = _direction(answer, m, host)
    mine = ours.direction or Direction.SENDRECV
    direction = _DIRECTIONS[(mine.sends and theirs.receives, mine.receives and theirs.sends)]
    return Negotiated(choice[0], choice[1], te, host, m.port, direction, m.ptime)
