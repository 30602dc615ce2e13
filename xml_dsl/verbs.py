"""One frozen value class per Plivo XML element.

The parser builds these from a document; the executor runs them. Defaults are
Plivo's documented ones. Durations are in seconds unless a name ends in ``_ms``.
``line`` is the element's source line, kept for error messages and not compared.

Each field an XML attribute fills says so where it is declared
(:func:`~xml_dsl._xml_field.xml_field`: the attribute's name, its converter, and
the default, which is also the value of an absent attribute); the parser reads
every verb's attributes from that description.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any, TypeAlias

from attrs import field, frozen
from attrs.validators import ge, instance_of, le, optional

from xml_dsl import _values as v
from xml_dsl._values import Method, RuleError
from xml_dsl._xml_field import xml_field

__all__ = [
    "DEFAULT_VALID_DIGITS",
    "DTMF",
    "CallType",
    "ChannelType",
    "Conference",
    "Dial",
    "DialMusic",
    "FileFormat",
    "GetDigits",
    "GetInput",
    "Hangup",
    "HangupReason",
    "IgnoredAttribute",
    "InputType",
    "Method",
    "Number",
    "Play",
    "PreAnswer",
    "PreAnswerVerb",
    "Prompt",
    "Record",
    "Redirect",
    "Response",
    "SendDigitsMode",
    "Speak",
    "SpeechModel",
    "TranscriptionType",
    "User",
    "Verb",
    "Wait",
]

#: GetDigits' default ``validDigits``.
DEFAULT_VALID_DIGITS = frozenset("1234567890*#")


class HangupReason(Enum):
    """``<Hangup reason>``: how an unanswered call is refused."""

    REJECTED = "rejected"
    BUSY = "busy"


class FileFormat(Enum):
    """Recording file format."""

    MP3 = "mp3"
    WAV = "wav"


class ChannelType(Enum):
    """``recordChannelType``: one mixed channel, or one channel per party."""

    MONO = "mono"
    STEREO = "stereo"


class TranscriptionType(Enum):
    """``transcriptionType`` (accepted; no transcription service exists yet)."""

    AUTO = "auto"
    HYBRID = "hybrid"


class InputType(Enum):
    """``<GetInput inputType>`` members: ``dtmf``, ``speech`` or both."""

    DTMF = "dtmf"
    SPEECH = "speech"


def _input_types(name: str, raw: str) -> frozenset[InputType]:
    """``inputType``: ``dtmf``, ``speech`` or both, space-separated, each at most once."""
    words = raw.split()
    try:
        kinds = frozenset(InputType(w.lower()) for w in words)
    except ValueError:
        kinds = frozenset()
    if not kinds or len(kinds) != len(words):
        raise RuleError(f"{name} must be dtmf, speech or dtmf speech")
    return kinds


class SpeechModel(Enum):
    """``<GetInput speechModel>``."""

    DEFAULT = "default"
    COMMAND_AND_SEARCH = "command_and_search"
    PHONE_CALL = "phone_call"


class SendDigitsMode(Enum):
    """``<Number sendDigitsMode>``: RFC 2833/4733 events (default) or in-band tones."""

    RFC2833 = "rfc2833"
    INBAND = "inband"


class CallType(Enum):
    """``<Dial callType>``: an ordinary call (Plivo's default) or a WhatsApp voice call."""

    VOICE = "voice"
    WHATSAPP = "whatsapp"


class DialMusic(Enum):
    """``<Dial dialMusic="real">``: relay the called party's own ringback."""

    REAL = "real"


def _dial_music(name: str, raw: str) -> DialMusic | str | None:
    """``dialMusic``: ``real``, a URL of Play/Speak/Wait XML, or blank (the default)."""
    text = raw.strip()
    if not text:
        return None
    if text.lower() == "real":
        return DialMusic.REAL
    try:
        return v.url(name, text)
    except RuleError:
        raise RuleError(f"{name} must be real or a URL") from None


def _lower(enum: type[Enum]) -> v.Converter[Any]:
    """One of ``enum``'s values, in any case."""
    return v.one_of(enum, fold=str.lower)


#: Converters used by many verbs.
_LOOP = v.int_range(0)
_TRANSCRIPTION = v.blank_or(v.one_of(TranscriptionType, fold=str.lower))


def _line() -> int | None:
    return field(default=None, eq=False, kw_only=True)


# ---------------------------------------------------------------- prompts


@frozen
class Speak:
    """Text to speech.

    :ivar text: the text with any SSML markup removed (for logs and plain engines).
    :ivar ssml: a ``<speak>…</speak>`` document when the content used SSML tags,
        kept so eSpeak NG can honour them; ``None`` for plain text.
    :ivar voice: ``WOMAN``, ``MAN`` or an Amazon Polly name (``Polly.Joanna``).
    :ivar loop: times to speak; 0 repeats until the verb is interrupted.
    """

    text: str = field(validator=instance_of(str))
    ssml: str | None = field(default=None, validator=optional(instance_of(str)))
    voice: str = xml_field("voice", v.voice, "WOMAN")
    language: str = xml_field("language", v.language, "en-US")
    loop: int = xml_field("loop", _LOOP, 1, validator=ge(0))
    line: int | None = _line()


@frozen
class Play:
    """Play an audio file (MP3 or WAV) from ``url``; ``loop`` 0 repeats until interrupted."""

    url: str = field(validator=instance_of(str))
    loop: int = xml_field("loop", _LOOP, 1, validator=ge(0))
    line: int | None = _line()


@frozen
class Wait:
    """Pause for ``length`` seconds.

    :ivar silence: end early once ``min_silence_ms`` of silence is heard.
    :ivar beep: end early on an answering machine's beep.
    """

    length: int = xml_field("length", v.positive, 1, validator=ge(1))
    silence: bool = xml_field("silence", v.boolean, False)
    min_silence_ms: int = xml_field("minSilence", v.positive, 2000, validator=ge(1))
    beep: bool = xml_field("beep", v.boolean, False)
    line: int | None = _line()


Prompt: TypeAlias = Speak | Play | Wait


# ---------------------------------------------------------------- simple verbs


@frozen
class DTMF:
    """Send DTMF keys on the call; ``w`` pauses 0.5 s, ``W`` 1 s.

    :ivar async_: go on to the next verb once the first key is sent (Plivo's
        ``async``, default true); false waits until every key is sent.
    """

    digits: str = field(validator=instance_of(str))
    async_: bool = xml_field("async", v.boolean, True)
    line: int | None = _line()


@frozen
class Redirect:
    """Fetch ``url`` and continue the call with the document it returns."""

    url: str = field(validator=instance_of(str))
    method: Method = xml_field("method", v.method, Method.POST)
    line: int | None = _line()


@frozen
class Hangup:
    """End the call.

    :ivar reason: for an unanswered call: refuse it as rejected or busy. Without one,
        a Hangup that is the first verb rejects the call, any other ends it normally.
    :ivar schedule: if set, hang up this many seconds from now and go on with the
        next verb meanwhile.
    """

    reason: HangupReason | None = xml_field("reason", _lower(HangupReason), None)
    schedule: int | None = xml_field("schedule", v.positive, None, validator=optional(ge(1)))
    line: int | None = _line()


# ---------------------------------------------------------------- input


@frozen
class GetDigits:
    """Collect DTMF keys while ``prompts`` play, then request ``action`` with ``Digits``.

    :ivar timeout: seconds to wait for the first key, after the prompts end.
    :ivar digit_timeout: seconds allowed between keys.
    :ivar finish_on_key: key that submits (not included in Digits); ``None`` for none.
    :ivar num_digits: keys collected at most.
    :ivar retries: attempts (prompts replayed) when nothing valid was entered.
    :ivar redirect: continue with the action's document (true) or request the action
        and go on with the next verb (false).
    """

    action: str | None = xml_field("action", v.optional_url, None)
    method: Method = xml_field("method", v.method, Method.POST)
    timeout: int = xml_field("timeout", v.positive, 5, validator=ge(1))
    digit_timeout: int = xml_field("digitTimeout", v.positive, 2, validator=ge(1))
    finish_on_key: str | None = xml_field("finishOnKey", v.finish_key, "#")
    num_digits: int = xml_field("numDigits", v.positive, 99, validator=ge(1))
    retries: int = xml_field("retries", v.positive, 1, validator=ge(1))
    redirect: bool = xml_field("redirect", v.boolean, True)
    play_beep: bool = xml_field("playBeep", v.boolean, False)
    valid_digits: frozenset[str] = xml_field("validDigits", v.key_set, DEFAULT_VALID_DIGITS)
    invalid_digits_sound: str | None = xml_field("invalidDigitsSound", v.optional_url, None)
    log: bool = xml_field("log", v.boolean, True)
    prompts: tuple[Prompt, ...] = ()
    line: int | None = _line()


@frozen
class GetInput:
    """Collect DTMF and/or speech while ``prompts`` play, then request ``action``.

    :ivar input_types: what to listen for; both means the first detected wins.
    :ivar execution_timeout: seconds (5-60) of listening after the prompts end.
    :ivar digit_end_timeout: seconds (2-10) between keys; ``None`` is Plivo's ``auto``.
    :ivar speech_end_timeout: seconds (2-10) of silence ending speech; ``None`` = auto.
    :ivar num_digits: keys collected at most (1-32).
    :ivar hints: phrases the recognizer should expect.
    :ivar interim_speech_results_callback: URL told of partial transcripts.
    """

    action: str = xml_field("action", v.url, validator=instance_of(str))
    input_types: frozenset[InputType] = xml_field(
        "inputType", _input_types, validator=lambda _i, _a, value: _non_empty(value, "input_types")
    )
    method: Method = xml_field("method", v.method, Method.POST)
    execution_timeout: int = xml_field(
        "executionTimeout", v.int_range(5, 60), 15, validator=[ge(5), le(60)]
    )
    digit_end_timeout: int | None = xml_field(
        "digitEndTimeout", v.auto_or(2, 10), None, validator=optional([ge(2), le(10)])
    )
    speech_end_timeout: int | None = xml_field(
        "speechEndTimeout", v.auto_or(2, 10), None, validator=optional([ge(2), le(10)])
    )
    finish_on_key: str | None = xml_field("finishOnKey", v.finish_key, "#")
    num_digits: int = xml_field("numDigits", v.int_range(1, 32), 32, validator=[ge(1), le(32)])
    speech_model: SpeechModel = xml_field("speechModel", v.one_of(SpeechModel), SpeechModel.DEFAULT)
    hints: tuple[str, ...] = xml_field("hints", v.hints, ())
    language: str = xml_field("language", v.language, "en-US")
    interim_speech_results_callback: str | None = xml_field(
        "interimSpeechResultsCallback", v.optional_url, None
    )
    interim_speech_results_callback_method: Method = xml_field(
        "interimSpeechResultsCallbackMethod", v.method, Method.POST
    )
    log: bool = xml_field("log", v.boolean, True)
    redirect: bool = xml_field("redirect", v.boolean, True)
    profanity_filter: bool = xml_field("profanityFilter", v.boolean, False)
    prompts: tuple[Prompt, ...] = ()
    line: int | None = _line()


def _non_empty(value: frozenset[InputType] | tuple[object, ...], name: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


# ---------------------------------------------------------------- record


def _any_keys(name: str, raw: str) -> frozenset[str]:
    """Keys that end a recording; ``none`` or blank for none."""
    return v.key_set(name, raw, allow_none=True)


@frozen
class Record:
    """Record the caller (or, with ``record_session``, the whole call in the background).

    :ivar timeout: seconds of silence that end a recording.
    :ivar max_length: longest recording, in seconds.
    :ivar finish_on_key: keys that end the recording; empty for none.
    :ivar record_session: record the rest of the call in the background and go on.
    :ivar start_on_dial_answer: record the next Dial's conversation from its answer.
    :ivar callback_url: told when the recording file is ready.
    :ivar transcription_type: accepted for compatibility; no transcription is made.
    """

    action: str | None = xml_field("action", v.optional_url, None)
    method: Method = xml_field("method", v.method, Method.POST)
    file_format: FileFormat = xml_field("fileFormat", _lower(FileFormat), FileFormat.MP3)
    redirect: bool = xml_field("redirect", v.boolean, True)
    timeout: int = xml_field("timeout", v.positive, 15, validator=ge(1))
    max_length: int = xml_field("maxLength", v.int_range(2), 60, validator=ge(2))
    play_beep: bool = xml_field("playBeep", v.boolean, True)
    finish_on_key: frozenset[str] = xml_field("finishOnKey", _any_keys, frozenset("#"))
    record_session: bool = xml_field("recordSession", v.boolean, False)
    start_on_dial_answer: bool = xml_field("startOnDialAnswer", v.boolean, False)
    transcription_type: TranscriptionType | None = xml_field(
        "transcriptionType", _TRANSCRIPTION, None
    )
    transcription_url: str | None = xml_field("transcriptionUrl", v.optional_url, None)
    transcription_method: Method = xml_field("transcriptionMethod", v.method, Method.POST)
    transcription_report_type: str | None = xml_field(
        "transcriptionReportType", v.report_type, None
    )
    callback_url: str | None = xml_field("callbackUrl", v.optional_url, None)
    callback_method: Method = xml_field("callbackMethod", v.method, Method.POST)
    record_channel_type: ChannelType = xml_field(
        "recordChannelType", _lower(ChannelType), ChannelType.STEREO
    )
    line: int | None = _line()


# ---------------------------------------------------------------- conference


@frozen
class Conference:
    """Join the conference room named ``room``.

    Sounds (``enter_sound``, ``exit_sound``) are ``""`` (none), ``beep:1``, ``beep:2``
    or a URL returning Play/Speak/Wait XML. ``time_limit`` is in seconds.
    """

    room: str = field(validator=instance_of(str))
    muted: bool = xml_field("muted", v.boolean, False)
    enter_sound: str = xml_field("enterSound", v.sound, "")
    exit_sound: str = xml_field("exitSound", v.sound, "")
    start_conference_on_enter: bool = xml_field("startConferenceOnEnter", v.boolean, True)
    end_conference_on_exit: bool = xml_field("endConferenceOnExit", v.boolean, False)
    stay_alone: bool = xml_field("stayAlone", v.boolean, True)
    wait_sound: str | None = xml_field("waitSound", v.optional_url, None)
    max_members: int = xml_field("maxMembers", v.int_range(1, 20), 20, validator=[ge(1), le(20)])
    record: bool = xml_field("record", v.boolean, False)
    record_file_format: FileFormat = xml_field(
        "recordFileFormat", _lower(FileFormat), FileFormat.MP3
    )
    time_limit: int = xml_field("timeLimit", v.positive, 86400, validator=ge(1))
    hangup_on_star: bool = xml_field("hangupOnStar", v.boolean, False)
    action: str | None = xml_field("action", v.optional_url, None)
    method: Method = xml_field("method", v.method, Method.POST)
    callback_url: str | None = xml_field("callbackUrl", v.optional_url, None)
    callback_method: Method = xml_field("callbackMethod", v.method, Method.POST)
    digits_match: tuple[str, ...] = xml_field("digitsMatch", v.digit_patterns, ())
    floor_event: bool = xml_field("floorEvent", v.boolean, False)
    redirect: bool = xml_field("redirect", v.boolean, True)
    relay_dtmf: bool = xml_field("relayDTMF", v.boolean, True)
    send_digits: str | None = xml_field("sendDigits", v.digits_to_send, None)
    record_when_alone: bool = xml_field("recordWhenAlone", v.boolean, False)
    transcription_type: TranscriptionType | None = xml_field(
        "transcriptionType", _TRANSCRIPTION, None
    )
    transcription_url: str | None = xml_field("transcriptionUrl", v.optional_url, None)
    transcription_method: Method = xml_field("transcriptionMethod", v.method, Method.POST)
    line: int | None = _line()


# ---------------------------------------------------------------- dial


def _paired(instance: Number | User, _attribute: object, password: str | None) -> None:
    if (instance.sip_auth_username is None) != (password is None):
        raise ValueError("sip_auth_username and sip_auth_password go together")


@frozen
class Number:
    """A phone number to dial, through the configured gateway.

    :ivar send_digits: keys sent once it answers (``w``/``W`` pause 0.5 s/1 s), with
        an optional tone length for every key, ``123@1000`` (milliseconds).
    :ivar send_on_preanswer: send them during early media instead.
    :ivar sip_headers: ``(name, value)`` pairs sent as ``X-PH-<name>`` headers.
    :ivar sip_auth_username: :ivar sip_auth_password: digest credentials for a
        destination that challenges the INVITE (401/407); both or neither. The
        password is left out of ``repr`` and must never be logged.
    """

    number: str = field(validator=instance_of(str))
    send_digits: str | None = xml_field("sendDigits", v.digits_with_tone, None)
    send_on_preanswer: bool = xml_field("sendOnPreanswer", v.boolean, False)
    send_digits_mode: SendDigitsMode = xml_field(
        "sendDigitsMode", _lower(SendDigitsMode), SendDigitsMode.RFC2833
    )
    sip_headers: tuple[tuple[str, str], ...] = xml_field("sipHeaders", v.sip_headers, ())
    sip_auth_username: str | None = xml_field("sipAuthUsername", v.sip_auth_username, None)
    sip_auth_password: str | None = xml_field(
        "sipAuthPassword", v.sip_auth_password, None, secret=True, repr=False, validator=_paired
    )
    line: int | None = _line()


@frozen
class User:
    """A SIP endpoint to dial (``sip:alice@domain``): its most recently registered device.

    :ivar send_digits: as :attr:`Number.send_digits`.
    :ivar sip_headers: ``(name, value)`` pairs sent as ``X-PH-<name>`` headers.
    :ivar sip_auth_username: :ivar sip_auth_password: as for :class:`Number`.
    """

    uri: str = field(validator=instance_of(str))
    send_digits: str | None = xml_field("sendDigits", v.digits_with_tone, None)
    send_on_preanswer: bool = xml_field("sendOnPreanswer", v.boolean, False)
    sip_headers: tuple[tuple[str, str], ...] = xml_field("sipHeaders", v.sip_headers, ())
    sip_auth_username: str | None = xml_field("sipAuthUsername", v.sip_auth_username, None)
    sip_auth_password: str | None = xml_field(
        "sipAuthPassword", v.sip_auth_password, None, secret=True, repr=False, validator=_paired
    )
    line: int | None = _line()


@frozen
class Dial:
    """Call ``targets`` at once; the first to answer is bridged to the caller.

    :ivar timeout: seconds to ring; ``None`` (Plivo's default) leaves it to the call layer.
    :ivar time_limit: longest bridged conversation, in seconds.
    :ivar confirm_sound: URL returning Play/Speak/Wait XML played to the answerer.
    :ivar confirm_key: key the answerer must press to accept.
    :ivar confirm_timeout: seconds the answerer has to press it.
    :ivar dial_music: ``DialMusic.REAL`` (relay ringback), a URL of Play/Speak/Wait XML,
        or ``None`` (the default ringback).
    :ivar redirect: continue with the action's document (true) or request the action
        and go on with the next verb (false).
    :ivar call_type: ``CallType.WHATSAPP`` asks for a WhatsApp voice call, which this
        server cannot place: such a Dial ends as failed.
    """

    targets: tuple[Number | User, ...] = field(
        validator=lambda _i, _a, value: _non_empty(value, "targets")
    )
    action: str | None = xml_field("action", v.optional_url, None)
    method: Method = xml_field("method", v.method, Method.POST)
    hangup_on_star: bool = xml_field("hangupOnStar", v.boolean, False)
    time_limit: int = xml_field("timeLimit", v.positive, 14400, validator=ge(1))
    timeout: int | None = xml_field("timeout", v.positive, None, validator=optional(ge(1)))
    caller_id: str | None = xml_field("callerId", v.caller_id, None)
    caller_name: str | None = xml_field("callerName", v.text_of_most(50), None)
    confirm_sound: str | None = xml_field("confirmSound", v.optional_url, None)
    confirm_timeout: int = xml_field("confirmTimeout", v.positive, 120, validator=ge(1))
    confirm_key: str | None = xml_field("confirmKey", v.finish_key, None)
    dial_music: DialMusic | str | None = xml_field("dialMusic", _dial_music, None)
    callback_url: str | None = xml_field("callbackUrl", v.optional_url, None)
    callback_method: Method = xml_field("callbackMethod", v.method, Method.POST)
    redirect: bool = xml_field("redirect", v.boolean, True)
    digits_match: tuple[str, ...] = xml_field("digitsMatch", v.digit_patterns, ())
    digits_match_b_leg: tuple[str, ...] = xml_field("digitsMatchBLeg", v.digit_patterns, ())
    sip_headers: tuple[tuple[str, str], ...] = xml_field("sipHeaders", v.sip_headers, ())
    call_type: CallType = xml_field("callType", _lower(CallType), CallType.VOICE)
    line: int | None = _line()


# ---------------------------------------------------------------- containers


@frozen
class PreAnswer:
    """Run ``verbs`` as early media, before the call is answered."""

    verbs: tuple[PreAnswerVerb, ...] = ()
    line: int | None = _line()


PreAnswerVerb: TypeAlias = Speak | Play | Wait | GetDigits | Redirect | DTMF

Verb: TypeAlias = (
    Speak
    | Play
    | Wait
    | DTMF
    | Redirect
    | Hangup
    | GetDigits
    | GetInput
    | Record
    | Conference
    | Dial
    | PreAnswer
)


@frozen
class IgnoredAttribute:
    """An attribute Plivo XML does not define on its element, skipped as Plivo skips it.

    :ivar value: as written, cut to a few dozen characters, or ``(hidden)`` when the
        name looks like a secret.
    """

    line: int | None
    element: str
    attribute: str
    value: str


@frozen
class Response:
    """A parsed document: its verbs, in order.

    :ivar ignored: attributes that were skipped, for the executor to log against the
        call (not compared: two documents with the same verbs are equal).
    """

    verbs: tuple[Verb, ...] = ()
    ignored: tuple[IgnoredAttribute, ...] = field(default=(), eq=False, kw_only=True)

    def __iter__(self) -> Iterator[Verb]:
        return iter(self.verbs)

    def __len__(self) -> int:
        return len(self.verbs)
