# zope.interface methods are declared without self.
# ruff: noqa: N805
"""The seams between the XML DSL and the rest of the server.

:class:`ICallControl` is what a verb needs from a call; the call layer (a B2BUA over
the media engine) implements it. Every operation returns a Deferred that can be
cancelled: cancelling stops the operation (stop the audio, stop listening, end the
legs) and must not hang up the call. An operation fails with
:class:`~xml_dsl.errors.ExecutionError` when it cannot be done, and with any failure
once the call is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from xml_dsl._values import Method
    from xml_dsl.control import (
        ConferenceEvent,
        ConferenceResult,
        ConferenceSpec,
        DialEnd,
        DialEvent,
        DialResult,
        DialSpec,
        HangupCause,
        RecordResult,
        RecordSpec,
        SpeechResult,
        SpeechSpec,
        WaitUntil,
    )
    from xml_dsl.verbs import Response

__all__ = ["ICallControl", "IDialAttempt", "IFetcher"]


class IDialAttempt(Interface):
    """A ``<Dial>`` in progress, as returned by :meth:`ICallControl.dial`."""

    result: Deferred[DialResult] = Attribute(
        "Fires with the DialResult once every leg of the attempt is over."
    )

    def end(reason: DialEnd) -> None:
        """Stop ringing (``NO_ANSWER``) or hang up the bridged B leg (the others);
        :attr:`result` then fires with the matching status."""


class ICallControl(Interface):
    """One call (the A leg), as the executor drives it."""

    call_uuid: str = Attribute("The call's unique id (Plivo's CallUUID).")
    answered: bool = Attribute("Whether the call has been answered (200 OK sent/received).")

    def params() -> Mapping[str, str]:
        """The parameters Plivo sends with every request for this call, as they are
        now: ``CallUUID``, ``From``, ``To``, ``Direction``, ``CallStatus``,
        ``CallerName`` and, when they apply, ``ALegUUID``, ``ALegRequestUUID``,
        ``ForwardedFrom``."""

    def answer() -> Deferred[None]:
        """Answer the call; fires once answered (at once if it already is)."""

    def pre_answer() -> Deferred[None]:
        """Open early media (183 with SDP) without answering."""

    def hangup(cause: HangupCause) -> Deferred[None]:
        """End the call: refuse it if unanswered (``REJECTED`` → 603, ``BUSY`` → 486,
        others → 480), else send BYE. Fires once the call is over."""

    def play(url: str) -> Deferred[None]:
        """Play the audio file at ``url`` once, to its end."""

    def speak(text: str, ssml: str | None, voice: str, language: str) -> Deferred[None]:
        """Speak once (eSpeak NG): ``ssml`` when given, else ``text``."""

    def beep() -> Deferred[None]:
        """Play the short beep used by GetDigits' and Record's ``playBeep``."""

    def wait(until: WaitUntil) -> Deferred[None]:
        """Fire when the media condition is met (silence, an answering machine's beep).
        The executor bounds it by ``<Wait length>`` on its own clock and cancels it."""

    def collect_digits(on_digit: Callable[[str], None]) -> Deferred[None]:
        """Deliver each key the caller presses (RFC 4733 or in-band) to ``on_digit``
        until the Deferred is cancelled. It never fires by itself while the call is
        up; it fails when the call ends. Timeouts are the executor's."""

    def recognize_speech(
        spec: SpeechSpec, on_interim: Callable[[str], None]
    ) -> Deferred[SpeechResult]:
        """Listen for one utterance; fire with its transcript. Partial transcripts go
        to ``on_interim``. Fails with ExecutionError if no recognizer is available."""

    def send_dtmf(keys: str) -> Deferred[None]:
        """Send keys (0-9, *, #; no pauses: the executor times ``w``/``W``)."""

    def record(spec: RecordSpec) -> Deferred[RecordResult]:
        """Record. ``FOREGROUND`` fires when the recording ends (silence, max length,
        a finish key); ``SESSION`` runs in the background and fires when the call ends.
        Cancelling stops the recording (the result is then not delivered)."""

    def dial(spec: DialSpec, on_event: Callable[[DialEvent], None]) -> IDialAttempt:
        """Ring the spec's targets at once, bridge the first to answer, and report
        B-leg events to ``on_event`` as they happen."""

    def join_conference(
        spec: ConferenceSpec, on_event: Callable[[ConferenceEvent], None]
    ) -> Deferred[ConferenceResult]:
        """Put the call in a conference room; fire when this member leaves it."""


class IFetcher(Interface):
    """Fetches documents from the application and tells it of events."""

    def fetch(url: str, method: Method, params: Mapping[str, str]) -> Deferred[Response]:
        """Request ``url`` with ``params`` and parse the XML it returns. Fails with
        :class:`~xml_dsl.errors.FetchError` or :class:`~xml_dsl.errors.XMLError`;
        cancelled, with :class:`~twisted.internet.defer.CancelledError`."""

    def notify(url: str, method: Method, params: Mapping[str, str]) -> Deferred[None]:
        """Fire-and-forget callback: failures are logged, never raised; the Deferred
        fires (with None) once the request is over, for those who want to wait."""
