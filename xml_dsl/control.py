"""Values exchanged between the executor and the call layer (:class:`ICallControl`).

The executor hands the call layer fully validated specs; the call layer answers with
results and events. Durations are seconds, instants are Unix epoch milliseconds.
"""

from __future__ import annotations

from enum import Enum

from attrs import field, frozen
from attrs.validators import ge, instance_of

from xml_dsl.verbs import (
    CallType,
    ChannelType,
    FileFormat,
    HangupReason,
    Number,
    Prompt,
    Record,
    SpeechModel,
    User,
)

__all__ = [
    "Beep",
    "ConferenceEvent",
    "ConferenceEventKind",
    "ConferenceExit",
    "ConferenceResult",
    "ConferenceSpec",
    "DialEnd",
    "DialEvent",
    "DialEventKind",
    "DialResult",
    "DialSpec",
    "DialStatus",
    "EndedBy",
    "HangupCause",
    "Outcome",
    "RecordMode",
    "RecordResult",
    "RecordSpec",
    "Ringback",
    "SpeechResult",
    "SpeechSpec",
    "WaitUntil",
]


class HangupCause(Enum):
    """Why the executor ends a call; the value is the cause name for ``HangupCause``.

    ``NORMAL`` and ``END_OF_XML`` are Plivo's own (codes 4000 and 4010); the error
    names are ours, in Plivo's style.
    """

    NORMAL = "Normal Hangup"
    END_OF_XML = "End Of XML Instructions"
    REJECTED = "Rejected"
    BUSY = "Busy Line"
    SCHEDULED = "Scheduled Hangup"
    INVALID_XML = "Invalid XML"
    URL_UNREACHABLE = "Error Reaching Application URL"
    LIMIT_REACHED = "XML Redirect Limit Reached"
    INTERNAL_ERROR = "Internal Error"

    @classmethod
    def for_reason(cls, reason: HangupReason | None, *, first: bool) -> HangupCause:
        """The cause of a ``<Hangup>``: its reason, else rejected if it came first."""
        if reason is HangupReason.BUSY:
            return cls.BUSY
        if reason is HangupReason.REJECTED or first:
            return cls.REJECTED
        return cls.NORMAL


class EndedBy(Enum):
    """Who ended the document's execution."""

    FAR_END = "far-end"
    DOCUMENT = "document"
    ERROR = "error"


@frozen
class Outcome:
    """How an execution ended.

    :ivar cause: the cause the executor hung up with, ``None`` if the far end hung up.
    :ivar error: the logged error, for ``EndedBy.ERROR``.
    :ivar documents: documents run, the first included.
    """

    ended_by: EndedBy
    cause: HangupCause | None = None
    error: str | None = None
    documents: int = 1


@frozen
class WaitUntil:
    """``<Wait>`` that may end early: after ``silence_ms`` of silence, or on a beep."""

    silence_ms: int | None = None
    beep: bool = False


class Beep(Enum):
    """Conference enter/exit sounds built into the media engine."""

    ONE = "beep:1"
    TWO = "beep:2"


# ---------------------------------------------------------------- speech


@frozen
class SpeechSpec:
    """What ``<GetInput>`` asks of the recognizer.

    :ivar end_timeout: seconds of silence that end an utterance; ``None`` = engine's own.
    """

    language: str
    model: SpeechModel = SpeechModel.DEFAULT
    hints: tuple[str, ...] = ()
    end_timeout: int | None = None
    profanity_filter: bool = False


@frozen
class SpeechResult:
    """A transcript, with the recognizer's confidence from 0.0 to 1.0."""

    text: str
    confidence: float = field(default=1.0, validator=[ge(0.0)])


# ---------------------------------------------------------------- record


class RecordMode(Enum):
    """Foreground (the verb waits), the whole session, or the next Dial's conversation."""

    FOREGROUND = "foreground"
    SESSION = "session"
    DIAL = "dial"


@frozen
class RecordSpec:
    """A recording to make.

    :ivar max_length: seconds.
    :ivar silence_timeout: seconds of silence ending a foreground recording.
    :ivar finish_on_key: keys ending a foreground recording (empty: none).
    """

    mode: RecordMode
    file_format: FileFormat = FileFormat.MP3
    channels: ChannelType = ChannelType.STEREO
    max_length: int = 60
    silence_timeout: int = 15
    finish_on_key: frozenset[str] = frozenset("#")

    @classmethod
    def of(cls, verb: Record, mode: RecordMode) -> RecordSpec:
        """What ``<Record>`` asks the call layer to record, in ``mode``."""
        return cls(
            mode,
            verb.file_format,
            verb.record_channel_type,
            verb.max_length,
            verb.timeout,
            verb.finish_on_key,
        )


@frozen
class RecordResult:
    """A finished recording.

    :ivar url: where the file can be fetched.
    :ivar start_ms: :ivar end_ms: epoch milliseconds.
    :ivar digits: the key that ended it, if any.
    """

    url: str = field(validator=instance_of(str))
    recording_id: str = field(validator=instance_of(str))
    duration_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    digits: str = ""


# ---------------------------------------------------------------- dial


class DialStatus(Enum):
    """Plivo's ``DialStatus``."""

    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    TIMEOUT = "timeout"
    NO_ANSWER = "no-answer"


class DialEnd(Enum):
    """Why the executor asks the call layer to end a dial attempt."""

    NO_ANSWER = "no-answer"  # Dial timeout: stop ringing every target
    TIME_LIMIT = "time-limit"  # Dial timeLimit: hang up the bridged B leg
    HANGUP_ON_STAR = "hangup-on-star"  # the caller pressed * with hangupOnStar
    CALLER_HANGUP = "caller-hangup"  # the A leg is gone


class Ringback(Enum):
    """What the caller hears while targets ring, when no dialMusic prompts are given."""

    DEFAULT = "default"  # our ringback tone
    REAL = "real"  # relay the called party's early media


@frozen
class DialSpec:
    """A fully validated ``<Dial>`` for the call layer (a B2BUA) to carry out.

    ``timeout`` and ``time_limit`` are enforced by the executor on its clock through
    :meth:`~xml_dsl.interfaces.IDialAttempt.end`; they are here for the call layer's
    information (CDRs, session timers). Each target keeps its ``send_digits``
    (``xml_dsl.dtmf.digit_steps`` splits it into keys and pauses), ``send_on_preanswer``
    and SIP headers (already without the names Plivo reserves) and SIP digest
    credentials (``sip_auth_username``, ``sip_auth_password``). The call layer answers
    the A leg when a target is bridged, if it is not answered yet.

    With ``confirm_prompts`` or ``confirm_key`` (call screening), a target that
    answers first hears the prompts and, with a key, must press it within
    ``confirm_timeout`` seconds of answering; only then is it bridged, the others
    failing. The caller keeps hearing ringback meanwhile.

    :ivar timeout: seconds to ring.
    :ivar time_limit: seconds of bridged conversation.
    :ivar confirm_prompts: played to the answerer before bridging (confirmSound).
    :ivar confirm_key: key the answerer must press to be bridged; ``None``: none.
    :ivar confirm_timeout: seconds the answerer has to press it.
    :ivar ringback: prompts to play to the caller while ringing (dialMusic), or a
        :class:`Ringback`.
    :ivar report_b_leg_digits: deliver the B leg's keys as ``DialEventKind.DIGITS``.
    :ivar record: a recording armed by ``<Record startOnDialAnswer>``, to start when
        a target answers; its result comes back in :attr:`DialResult.recording`.
    :ivar call_type: ``CallType.WHATSAPP`` for a WhatsApp voice call; a call layer that
        cannot place one ends the attempt as ``DialStatus.FAILED``.
    """

    targets: tuple[Number | User, ...]
    timeout: int
    time_limit: int
    caller_id: str | None = None
    caller_name: str | None = None
    hangup_on_star: bool = False
    confirm_prompts: tuple[Prompt, ...] = ()
    confirm_key: str | None = None
    confirm_timeout: int = 120
    ringback: Ringback | tuple[Prompt, ...] = Ringback.DEFAULT
    sip_headers: tuple[tuple[str, str], ...] = ()
    report_b_leg_digits: bool = False
    record: RecordSpec | None = None
    call_type: CallType = CallType.VOICE


class DialEventKind(Enum):
    """Plivo's ``DialAction`` values for ``callbackUrl``."""

    ANSWER = "answer"
    CONNECTED = "connected"
    HANGUP = "hangup"
    DIGITS = "digits"


@frozen
class DialEvent:
    """Something that happened to a B leg, reported by the call layer.

    :ivar position: 1-based index of the target in the Dial.
    :ivar digits: for ``DIGITS``: the key pressed on the B leg.
    :ivar duration: :ivar bill_duration: for ``HANGUP``: seconds.
    """

    kind: DialEventKind
    b_leg_uuid: str
    b_leg_from: str = ""
    b_leg_to: str = ""
    position: int = 1
    digits: str = ""
    hangup_cause: str = ""
    duration: int = 0
    bill_duration: int = 0


@frozen
class DialResult:
    """How a dial attempt ended.

    :ivar rang: whether any target rang (``DialRingStatus``).
    :ivar b_leg_uuid: the answering leg, ``None`` if nobody answered.
    :ivar duration: seconds bridged.
    """

    status: DialStatus
    rang: bool = False
    hangup_cause: str = ""
    b_leg_uuid: str | None = None
    duration: int = 0
    bill_duration: int = 0
    recording: RecordResult | None = None


# ---------------------------------------------------------------- conference


@frozen
class ConferenceSpec:
    """A fully validated ``<Conference>`` membership for the call layer.

    Sounds are a :class:`Beep`, prompts fetched from the document's URL, or ``None``.
    The call layer handles ``hangup_on_star``, ``time_limit`` (seconds, for the whole
    conference), relaying DTMF and recording.
    """

    room: str
    muted: bool = False
    start_on_enter: bool = True
    end_on_exit: bool = False
    stay_alone: bool = True
    max_members: int = 20
    time_limit: int = 86400
    hangup_on_star: bool = False
    relay_dtmf: bool = True
    enter_sound: Beep | tuple[Prompt, ...] | None = None
    exit_sound: Beep | tuple[Prompt, ...] | None = None
    wait_prompts: tuple[Prompt, ...] = ()
    record: RecordSpec | None = None
    record_when_alone: bool = False
    send_digits: str | None = None
    report_digits: bool = False
    report_floor: bool = False


class ConferenceEventKind(Enum):
    """Plivo's ``ConferenceAction`` values for ``callbackUrl``."""

    ENTER = "enter"
    EXIT = "exit"
    DIGITS = "digits"
    FLOOR = "floor"
    RECORD = "record"


@frozen
class ConferenceEvent:
    """Something that happened to this member or the room."""

    kind: ConferenceEventKind
    conference_uuid: str
    member_id: str
    digits: str = ""
    recording: RecordResult | None = None


class ConferenceExit(Enum):
    """How a member's time in a room ended."""

    HANGUP = "hangup"  # the call ended (the verb is cancelled)
    KICKED = "kicked"  # the REST API kicked the member
    HANGUP_ON_STAR = "hangup-on-star"  # the member pressed * with hangupOnStar
    ENDED = "conference-ended"  # endConferenceOnExit, stayAlone, or the REST API ended it
    TIME_LIMIT = "time-limit"  # the room's timeLimit passed
    FULL = "full"  # maxMembers were in already: the member never entered


@frozen
class ConferenceResult:
    """This member left the room (or, with ``exit`` ``FULL``, never entered it).

    :ivar recording: the room's recording this member asked for (``record``), if one
        was made: its URL and ID (the recording may still be running).
    """

    conference_uuid: str
    member_id: str
    recording: RecordResult | None = None
    exit: ConferenceExit = ConferenceExit.ENDED
