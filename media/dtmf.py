"""RFC 4733 telephone-events: the digit schedule, the sender, and the receiver.

All sans-IO and counted in 20 ms frames of the shared media tick:

* :func:`plan_digits` turns ``"ww12W3"`` into start frames.  A digit lasts
  ``digit_ms`` (default 100 ms, never under 40 ms) and is followed by
  ``gap_ms`` (default 100 ms); ``w`` adds 0.5 s and ``W`` 1 s after that gap.
  A string may end with ``@<ms>`` (Plivo's and FreeSWITCH's ``123@1000``): every
  digit of it then lasts that long.  Durations are rounded up to whole 20 ms
  frames, because every packet rides the 20 ms tick.  With the defaults
  ``"ww12W3"`` starts its digits at frames 50, 60 and 120 (1.0 s, 1.2 s, 2.4 s)
  and ``"1w2W#"`` at 0, 35 and 95.
* :class:`DtmfSender` says which packets to send at each frame: for a digit
  starting at frame ``s`` and lasting ``F`` frames, frame ``s + k`` carries
  duration ``160 * (k + 1)`` for ``k < F``; the last of those has the E bit and is
  sent again at ``s + F`` and ``s + F + 1`` (three end packets, RFC 4733
  §2.5.1.4); all carry the RTP timestamp of frame ``s``; the first has the marker.
  A digit longer than the 16-bit duration field can count (65,535 units, 8.19 s)
  is sent in segments (§2.5.1.3): every :data:`SEGMENT_FRAMES` frames a new
  segment starts, stamped with the timestamp of its first frame, its duration
  counted afresh; the last packet of each segment but the last carries the whole
  segment's duration without the E bit, and no segment after the first has the
  marker, since the event goes on.
* :class:`DtmfReceiver` turns incoming event packets into each digit exactly
  once, keyed by (SSRC, timestamp), tolerating a lost first packet, repeated
  end packets and a missing end (the digit ends 150 ms after its last packet),
  and joining the segments of a long event into one digit.
"""

from __future__ import annotations

import enum
import math
import struct
from collections import deque

import attrs

from media.errors import MediaArgumentError, RTPError

__all__ = (
    "DEFAULT_DIGIT_MS",
    "DEFAULT_GAP_MS",
    "DEFAULT_VOLUME",
    "DIGIT_EVENTS",
    "END_REPEATS",
    "FRAME_MS",
    "MAX_DIGIT_MS",
    "MIN_DIGIT_MS",
    "MIN_GAP_MS",
    "PAUSES_MS",
    "SEGMENT_FRAMES",
    "DigitPlan",
    "DtmfEvent",
    "DtmfEventKind",
    "DtmfReceiver",
    "DtmfSender",
    "EventPacket",
    "ScheduledDigit",
    "TelephoneEvent",
    "normalize_digits",
    "parse_event",
    "plan_digits",
    "split_tone_length",
)

#: Packet interval in ms: one frame of the shared media tick.
FRAME_MS = 20
#: Timestamp units (8 kHz) per frame.
UNITS_PER_FRAME = 160
#: Default digit length in ms; shortest we send, in ms (Asterisk accepts 80,
#: FreeSWITCH 50, some SBCs 35: 40 is two packets, the fewest that carry a rise).
DEFAULT_DIGIT_MS = 100
MIN_DIGIT_MS = 40
#: Longest digit we send, in ms: FreeSWITCH's ceiling on a DTMF tone (192,000
#: samples), which Plivo's ``123@<ms>`` reaches.  Past 65,535 units (8.19 s) the
#: event is sent in segments (RFC 4733 §2.5.1.3).
MAX_DIGIT_MS = 24000
#: Frames in one segment of a long event: the most whole 20 ms frames whose
#: duration (409 x 160 = 65,440 units) the 16-bit field can hold.  Segments are
#: whole frames so that each one's timestamp is a frame's, on the 20 ms grid.
SEGMENT_FRAMES = 0xFFFF // UNITS_PER_FRAME
#: Default gap after each digit, in ms; shortest, so the two end retransmissions
#: (at +20 and +40 ms) finish before the next event starts.
DEFAULT_GAP_MS = 100
MIN_GAP_MS = 40
MAX_GAP_MS = 10000
#: Pauses, in ms, added after the gap: ``w`` half a second, ``W`` a second.
PAUSES_MS = {"w": 500, "W": 1000}
#: The volume field: 10 means -10 dBm0 (sipsorcery and SIPp's pcaps send 10).
DEFAULT_VOLUME = 10
#: How many times the final (E bit) packet is sent.
END_REPEATS = 3
#: Longest digit string accepted by :func:`normalize_digits`.
MAX_DIGITS = 256

#: RFC 4733 §3.2 event codes.
DIGIT_EVENTS = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
EVENT_DIGITS = {v: k for k, v in DIGIT_EVENTS.items()}

_EVENT = struct.Struct("!BBH")


@attrs.frozen
class TelephoneEvent:
    """The 4-byte payload of a telephone-event packet (RFC 4733 §2.3).

    :ivar event: the event code (0-15 for DTMF).
    :ivar end: the E bit: this is the final packet of the event.
    :ivar volume: power level, 0-63, in -dBm0.
    :ivar duration: time since the event started, in 8 kHz timestamp units.
    """

    event: int
    end: bool
    volume: int
    duration: int

    def to_bytes(self) -> bytes:
        """Serialise the payload."""
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload.

    Only the first event is read when several are stacked (RFC 4733 §2.5.1.5
    allows redundancy via RFC 2198, which a plain payload type never carries).

    :raises RTPError: if the payload is shorter than 4 bytes.
    """
    if len(payload) < 4:
        raise RTPError(f"telephone-event: payload must be 4 bytes, got {len(payload)}")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def split_tone_length(digits: str) -> tuple[str, int | None]:
    """Split Plivo's ``"123@1000"`` into the keys and the tone length in ms.

    :returns: ``(keys, ms)``; ``ms`` is ``None`` when there is no ``@``.
    :raises MediaArgumentError: if what follows the ``@`` is not a whole number.
    """
    keys, at, length = digits.partition("@")
    if not at:
        return digits, None
    if not (1 <= len(length) <= 6 and length.isascii() and length.isdigit()):
        raise MediaArgumentError(
            f"digits: the tone length after @ must be a whole number of ms, got {length!r}"
        )
    return keys, int(length)


def normalize_digits(digits: str) -> str:
    """Validate a digit string, upper-casing ``a``-``d``.

    :raises MediaArgumentError: naming the first bad character and its position.
    """
    if len(digits) > MAX_DIGITS:
        raise MediaArgumentError(f"digits: at most {MAX_DIGITS} characters, got {len(digits)}")
    out = []
    for i, ch in enumerate(digits):
        if ch in PAUSES_MS:
            out.append(ch)
        elif ch.upper() in DIGIT_EVENTS:
            out.append(ch.upper())
        else:
            raise MediaArgumentError(f"digits: only 0-9 * # A-D w W, got {ch!r} at position {i}")
    return "".join(out)


@attrs.frozen
class ScheduledDigit:
    """One digit of a plan: its start and length in 20 ms frames from the plan's start."""

    digit: str
    start_frame: int
    frames: int

    @property
    def event(self) -> int:
        """The RFC 4733 event code."""
        return DIGIT_EVENTS[self.digit]

    @property
    def last_frame(self) -> int:
        """The frame of the last end-packet retransmission."""
        return self.start_frame + self.frames - 1 + END_REPEATS - 1


@attrs.frozen
class DigitPlan:
    """A whole digit string laid out in frames.

    :ivar digits: the scheduled digits, in order.
    :ivar done_frame: the frame after which the plan is complete: the last end
        packet of the last digit has been sent and trailing pauses have elapsed.
    """

    digits: tuple[ScheduledDigit, ...]
    done_frame: int


def _frames(ms: int) -> int:
    return math.ceil(ms / FRAME_MS)


def plan_digits(
    digits: str, *, digit_ms: int = DEFAULT_DIGIT_MS, gap_ms: int = DEFAULT_GAP_MS
) -> DigitPlan:
    """Lay out a digit string on the 20 ms frame grid.

    :param digits: ``0-9 * # A-D`` and the pauses ``w`` (0.5 s) and ``W`` (1 s),
        optionally followed by ``@<ms>``, which overrides ``digit_ms``.
    :param digit_ms: each digit's length in ms, 40-24000, rounded up to 20 ms.
    :param gap_ms: the silence after each digit in ms, 40-10000, rounded up to 20 ms.
    :raises MediaArgumentError: for a bad character or an out-of-range length.
    """
    digits, tone_ms = split_tone_length(digits)
    digits = normalize_digits(digits)
    if tone_ms is not None:
        digit_ms = tone_ms
    if not MIN_DIGIT_MS <= digit_ms <= MAX_DIGIT_MS:
        raise MediaArgumentError(
            f"digit_ms: must be {MIN_DIGIT_MS}-{MAX_DIGIT_MS} ms, got {digit_ms}"
        )
    if not MIN_GAP_MS <= gap_ms <= MAX_GAP_MS:
        raise MediaArgumentError(f"gap_ms: must be {MIN_GAP_MS}-{MAX_GAP_MS} ms, got {gap_ms}")
    length, gap = _frames(digit_ms), _frames(gap_ms)
    cursor = 0
    done = 0
    scheduled = []
    for ch in digits:
        if ch in PAUSES_MS:
            cursor += _frames(PAUSES_MS[ch])
            done = max(done, cursor)
            continue
        item = ScheduledDigit(ch, cursor, length)
        scheduled.append(item)
        done = max(done, item.last_frame + 1)
        cursor += length + gap
    return DigitPlan(tuple(scheduled), done)


@attrs.frozen
class EventPacket:
    """A telephone-event packet to send at some frame.

    :ivar payload: the 4-byte payload.
    :ivar marker: the M bit (first packet of the event).
    :ivar start_frame: the start frame of the event (or of its segment, for a long
        event), whose timestamp it carries.
    """

    payload: bytes
    marker: bool
    start_frame: int


class DtmfSender:
    """The packets of a :class:`DigitPlan`, frame by frame.

    :param plan: the plan to send.
    :param volume: the volume field, 0-63 (-dBm0).
    """

    def __init__(self, plan: DigitPlan, *, volume: int = DEFAULT_VOLUME) -> None:
        if not 0 <= volume <= 63:
            raise MediaArgumentError(f"volume: must be 0-63 (-dBm0), got {volume}")
        self.plan = plan
        self.volume = volume
        self._index = 0

    @property
    def done_frame(self) -> int:
        """The first frame at which the plan is complete."""
        return self.plan.done_frame

    def packet_at(self, frame: int) -> EventPacket | None:
        """The packet to send at ``frame`` (frames since the plan started), if any.

        Frames must be asked in increasing order; skipped frames are skipped.
        """
        digits = self.plan.digits
        while self._index < len(digits) and digits[self._index].last_frame < frame:
            self._index += 1
        if self._index >= len(digits):
            return None
        d = digits[self._index]
        k = frame - d.start_frame
        if k < 0:
            return None
        end = k >= d.frames - 1
        # The segment this frame belongs to; the end repeats belong to the last one.
        segment = min(k, d.frames - 1) // SEGMENT_FRAMES
        first = segment * SEGMENT_FRAMES
        duration = UNITS_PER_FRAME * (min(k, d.frames - 1) - first + 1)
        payload = TelephoneEvent(d.event, end, self.volume, duration).to_bytes()
        return EventPacket(payload, k == 0, d.start_frame + first)

    def digit_at(self, frame: int) -> str | None:
        """The digit sounding at ``frame`` (for in-band tones), if any."""
        for d in self.plan.digits:
            if d.start_frame <= frame < d.start_frame + d.frames:
                return d.digit
        return None


class DtmfEventKind(enum.Enum):
    """What happened to a received digit."""

    BEGIN = "begin"
    END = "end"


@attrs.frozen
class DtmfEvent:
    """A digit began or ended.

    :ivar kind: begin or end.
    :ivar digit: ``0-9 * # A-D``.
    :ivar duration: the duration in 8 kHz units (the longest seen, at END).
    :ivar ssrc: the sending source.
    :ivar timestamp: the event's RTP timestamp.
    """

    kind: DtmfEventKind
    digit: str
    duration: int
    ssrc: int
    timestamp: int


#: Receiver limits: end a digit this long (s) after its last packet when no E
#: bit arrives (Asterisk's value); remember this many ended events to absorb
#: their retransmissions; ignore events this quiet (volume >= 55 -dBm0, as SEMS).
END_TIMEOUT = 0.150
REMEMBERED_EVENTS = 32
QUIETEST_VOLUME = 55


class DtmfReceiver:
    """Incoming telephone-events to digits, each exactly once.

    Feed every packet of the negotiated telephone-event payload type with
    :meth:`feed`; call :meth:`poll` at (or after) :meth:`next_deadline` to end
    a digit whose end packets were all lost.
    """

    def __init__(self) -> None:
        self._active: tuple[int, int] | None = None
        self._active_digit = ""
        self._active_duration = 0
        #: Units of the active event reported by its earlier segments (long events).
        self._segments_before = 0
        #: Most units of the active event any of its segments reached so far: a
        #: segment stamped inside the last one must not shorten the event.
        self._covered = 0
        self._last_seen = 0.0
        self._ended: deque[tuple[int, int]] = deque(maxlen=REMEMBERED_EVENTS)
        #: Packets ignored: malformed, non-DTMF events, duration 0, too quiet.
        self.ignored = 0

    def feed(self, ssrc: int, timestamp: int, payload: bytes, now: float) -> list[DtmfEvent]:
        """Account for one telephone-event packet.

        :param now: arrival time in seconds (any monotonic origin).
        :returns: the BEGIN/END events it causes, in order.
        """
        try:
            ev = parse_event(payload)
        except RTPError:
            self.ignored += 1
            return []
        if ev.event not in EVENT_DIGITS or ev.duration == 0 or ev.volume >= QUIETEST_VOLUME:
            self.ignored += 1
            return []
        key = (ssrc, timestamp)
        if key in self._ended:
            return []  # a retransmitted end packet, or a late packet of an ended event
        out: list[DtmfEvent] = []
        previous = self._active
        if previous is not None and previous != key and self._continues(previous, key, ev):
            self._ended.append(previous)  # late packets of the old segment are stale
            self._covered = max(self._covered, self._segments_before + self._active_duration)
            self._segments_before += (timestamp - previous[1]) & 0xFFFFFFFF
            self._active = key
            self._active_duration = 0
        elif self._active != key:
            out.extend(self._end_active())
            self._active = key
            self._active_digit = EVENT_DIGITS[ev.event]
            self._active_duration = 0
            self._segments_before = 0
            self._covered = 0
            out.append(DtmfEvent(DtmfEventKind.BEGIN, self._active_digit, ev.duration, *key))
        self._active_duration = max(self._active_duration, ev.duration)
        self._last_seen = now
        if ev.end:
            out.extend(self._end_active())
        return out

    def _continues(self, active: tuple[int, int], key: tuple[int, int], ev: TelephoneEvent) -> bool:
        """Whether ``key`` starts the next segment of the active long event (§2.5.2.3).

        It does when it comes from the same source with the same event, and its
        timestamp falls within what the active segment already covered (plus one
        packet interval, for a lost last packet), at most 65,535 units on: a new
        press of the same key comes after a gap, so beyond that.
        """
        if key[0] != active[0] or EVENT_DIGITS[ev.event] != self._active_digit:
            return False
        step = (key[1] - active[1]) & 0xFFFFFFFF
        return 0 < step <= 0xFFFF and step <= self._active_duration + UNITS_PER_FRAME

    def _end_active(self) -> list[DtmfEvent]:
        if self._active is None:
            return []
        key, self._active = self._active, None
        self._ended.append(key)
        total = max(self._covered, self._segments_before + self._active_duration)
        return [DtmfEvent(DtmfEventKind.END, self._active_digit, total, *key)]

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should next be called, in the ``now`` timebase, or ``None``."""
        return None if self._active is None else self._last_seen + END_TIMEOUT

    def poll(self, now: float) -> list[DtmfEvent]:
        """End the active digit if no packet came for :data:`END_TIMEOUT` seconds."""
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            return self._end_active()
        return []
