"""A call: its leg, the application that steers it, the dials it makes, its records.

An inbound call's leg is the caller's (UAS); an outbound call's (REST API) is the
leg we placed (UAC).  When the leg ends, whatever runs on it is cancelled (the
executor sees a far-end hangup), its dials are ended, one CDR row is written per
leg, and the application's ``hangup_url`` is told, with Plivo's parameters.

What a call works with (clock, fetcher, CDR store, journal, recordings, conferences,
and the switchboard that places its B legs) arrives in one
:class:`~telephony.calls.call_services.CallServices`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from media import Direction, SessionDescription
from telephony.calls.call_services import CallServices, LiveCallJournal
from telephony.calls.causes import Cause
from telephony.calls.cdr import CallRecord, plivo_time
from telephony.calls.control import CallControl
from telephony.calls.dial import DialAttempt
from telephony.calls.journal import LiveCall
from telephony.calls.leg import Leg, LegEnd, LegState
from telephony.calls.recordings import CallInfo
from telephony.directory import Application
from xml_dsl import (
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    DialStatus,
    EndedBy,
    Method,
    Outcome,
    Ringback,
    run_call,
)
from xml_dsl.params import hangup_params
from xml_dsl.verbs import User

__all__ = ("Call",)

log = Logger()

_STATUS = {
    Cause.BUSY: "busy",
    Cause.NO_ANSWER: "no-answer",
    Cause.ORIGINATOR_CANCEL: "cancel",
}


class Call:
    """One call and everything hanging off it.

    :ivar caller: Plivo's ``From``.  :ivar called: Plivo's ``To``.
    :ivar direction: "inbound" or "outbound".
    :ivar services: what the call works with (shared by every call).
    """

    def __init__(
        self,
        *,
        services: CallServices,
        leg: Leg,
        direction: str,
        caller: str,
        called: str,
        caller_name: str = "",
        application: Application | None = None,
        request_uuid: str | None = None,
        parent: Call | None = None,
    ) -> None:
        self.services = services
        self.leg = leg
        self.uuid = leg.uuid
        self.direction = direction
        self.caller = caller
        self.called = called
        self.caller_name = caller_name
        self.application = application
        self.request_uuid = request_uuid
        self.parent = parent
        self.control = CallControl(self)
        self.execution: Deferred[Outcome] | None = None
        self.dials: list[DialAttempt] = []
        self.extra_params: dict[str, str] = {}
        self._waiting: list[Deferred[None]] = []
        leg.on_reoffer = self._reoffer
        leg.ended.addCallback(self._leg_ended)
        if services.journal is not None:
            self._journal_start(services.journal)

    def __repr__(self) -> str:
        state = self.leg.state.value
        return f"<Call {self.uuid} {self.direction} {self.caller}->{self.called} {state}>"

    @property
    def recordings_dir(self) -> Path:
        """Where this call's recordings go."""
        return self.services.recordings.directory

    def params(self) -> Mapping[str, str]:
        """Plivo's parameters for this call, as they are now."""
        state = self.leg.state
        if state is LegState.ENDED:
            status = "completed"
        elif self.leg.answered:
            status = "in-progress"
        else:
            status = "ringing"
        params = {
            "CallUUID": self.uuid,
            "From": self.caller,
            "To": self.called,
            "Direction": self.direction,
            "CallStatus": status,
            "CallerName": self.caller_name,
        }
        if self.request_uuid:
            params["RequestUUID"] = self.request_uuid
        if self.parent is not None:
            params["ALegUUID"] = self.parent.uuid
        params.update(self.extra_params)
        return params

    def when_ended(self) -> Deferred[None]:
        """Fires (with None) when the call is over; at once if it already is."""
        if self.leg.state is LegState.ENDED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    # -- what runs on the call ------------------------------------------------------------

    def run_application(self, application: Application | None = None) -> None:
        """Fetch the application's answer_url and run the document on this call."""
        app = application or self.application
        if app is None:
            self.leg.hangup(Cause.NO_APPLICATION)
            return
        self.application = app
        fields = app.fields
        self.execution = run_call(
            self.control,
            self.services.fetcher,
            fields.answer_url,
            clock=self.services.clock,
            answer_method=Method(fields.answer_method),
            fallback_url=fields.fallback_answer_url,
            fallback_method=Method(fields.fallback_method),
        )
        self.execution.addCallbacks(self._document_over, self._document_failed)

    def transfer(self, url: str, method: Method) -> None:
        """Stop what runs on the call and run the document at *url* (REST transfer)."""
        old = self.execution
        self.execution = None
        for dial in list(self.dials):
            dial.end(DialEnd.CALLER_HANGUP)
        if old is not None and not old.called:
            old.cancel()
        self.execution = run_call(
            self.control,
            self.services.fetcher,
            url,
            clock=self.services.clock,
            answer_method=method,
        )
        self.execution.addCallbacks(self._document_over, self._document_failed)

    def _document_over(self, outcome: Outcome) -> None:
        if outcome.ended_by is EndedBy.ERROR:
            log.warn(
                "call {call_uuid}: the application failed: {error}",
                call_uuid=self.uuid,
                error=outcome.error,
            )

    def _document_failed(self, failure: Any) -> None:
        log.failure("call {call_uuid}: the executor failed", failure, call_uuid=self.uuid)
        self.leg.hangup(Cause.INTERNAL_ERROR)

    def ring_endpoint(self, username: str) -> None:
        """No application: ring an endpoint directly and bridge it (an endpoint's SIP URI)."""
        spec = DialSpec(
            targets=(User(uri=f"sip:{username}@{self.services.domain}"),),
            timeout=self.services.ring_timeout,
            time_limit=14_400,
            caller_id=self.caller,
            caller_name=self.caller_name or None,
            ringback=Ringback.DEFAULT,
        )
        clock = self.services.clock
        timers: list[IDelayedCall] = []

        def stop_timers() -> None:
            for timer in timers:
                if timer.active():
                    timer.cancel()
            timers.clear()

        def on_event(event: DialEvent) -> None:
            # As the executor times a <Dial>: the ring timeout ends at the answer (left
            # armed, it hung the bridged call up ring_timeout seconds after the start)
            # and the time limit starts.  (No leg answers while the Dial is starting.)
            if event.kind is DialEventKind.ANSWER:
                stop_timers()
                timers.append(clock.callLater(spec.time_limit, attempt.end, DialEnd.TIME_LIMIT))

        attempt = self.dial(spec, on_event)
        timers.append(clock.callLater(spec.timeout, attempt.end, DialEnd.NO_ANSWER))

        def over(result: DialResult) -> None:
            stop_timers()
            if self.leg.state is LegState.ENDED:
                return
            if result.status is DialStatus.COMPLETED:
                self.leg.hangup(Cause.NORMAL)
            elif result.status is DialStatus.BUSY:
                self.leg.hangup(Cause.BUSY)
            elif result.status is DialStatus.NO_ANSWER:
                self.leg.hangup(Cause.NO_ANSWER)
            else:
                self.leg.hangup(Cause.FAILED)

        attempt.result.addCallback(over)

    def dial(self, spec: DialSpec, on_event: Callable[[DialEvent], None]) -> DialAttempt:
        """Start a ``<Dial>`` from this call."""
        attempt = DialAttempt(self, spec, on_event, self.services.switchboard.placer(self))
        self.dials.append(attempt)

        def done(result: DialResult) -> DialResult:
            if attempt in self.dials:
                self.dials.remove(attempt)
            return result

        attempt.result.addCallback(done)
        attempt.start()
        return attempt

    def caller_id_for(self, spec: DialSpec) -> str:
        """The caller ID a B leg shows: the Dial's callerId, else the caller's."""
        return spec.caller_id or self.caller

    def recording_info(self) -> CallInfo:
        """What this call's recordings are filed under."""
        return CallInfo(self.uuid, self.caller, self.called)

    def _reoffer(self, leg: Leg, offer: SessionDescription) -> SessionDescription:
        """A re-INVITE with SDP: answer it, and pass hold/resume on to the bridged leg."""
        media = leg.ensure_media()
        was_held = media.negotiated is not None and media.negotiated.on_hold
        answer = media.accept_offer(offer)
        held = media.negotiated is not None and media.negotiated.on_hold
        if held != was_held:
            direction = Direction.SENDONLY if held else Direction.SENDRECV
            others = [dial.winner for dial in self.dials if dial.winner is not None]
            if self.parent is not None:
                others.append(self.parent.leg)
            for other in others:
                other.reinvite(direction)
        return answer

    def _journal_start(self, journal: LiveCallJournal) -> None:
        """Journal this call while it is up, so that a crash does not lose it; its
        CDR's commit takes it out of the journal (telephony.calls.journal)."""
        app = self.application
        entry = LiveCall(
            call_uuid=self.uuid,
            parent_call_uuid=self.parent.uuid if self.parent else None,
            request_uuid=self.request_uuid,
            direction=self.direction,
            from_number=self.caller,
            to_number=self.called,
            caller_name=self.caller_name,
            app_id=app.app_id if app else None,
            sip_call_id=self.leg.call_id,
            started_at=self.leg.started_at,
            hangup_url=app.fields.hangup_url if app else None,
            hangup_method=app.fields.hangup_method if app else "POST",
        )
        journal.started(entry).addErrback(self._journal_failed)

        def answered(leg: Leg, state: LegState) -> None:
            if state is LegState.ANSWERED and leg.answered_at is not None:
                journal.answered(self.uuid, leg.answered_at).addErrback(self._journal_failed)

        self.leg.listeners.append(answered)

    def _journal_failed(self, failure: Any) -> None:
        log.failure("call {call_uuid}: live-call journal not written", failure, call_uuid=self.uuid)

    # -- the end ----------------------------------------------------------------------------

    def _leg_ended(self, end: LegEnd) -> LegEnd:
        if self.execution is not None and not self.execution.called:
            self.execution.cancel()
        for dial in list(self.dials):
            dial.end(DialEnd.CALLER_HANGUP)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        self.services.switchboard.call_ended(self, end)
        self._report(end)
        return end

    def record(self, end: LegEnd) -> CallRecord:
        """This call's detail record."""
        leg = self.leg
        return CallRecord(
            call_uuid=self.uuid,
            parent_call_uuid=self.parent.uuid if self.parent else None,
            request_uuid=self.request_uuid,
            direction=self.direction,
            from_number=self.caller,
            to_number=self.called,
            caller_name=self.caller_name,
            call_status="completed" if leg.answered else _STATUS.get(end.cause, "failed"),
            app_id=self.application.app_id if self.application else None,
            sip_call_id=leg.invite.call_id,
            start_time=plivo_time(leg.started_at),
            answer_time=plivo_time(leg.answered_at) or None,
            end_time=plivo_time(leg.ended_at),
            duration=leg.duration(),
            bill_duration=leg.bill_duration(),
            hangup_cause_name=end.cause.cause_name,
            hangup_cause_code=end.cause.code,
            hangup_source=end.source,
        )

    def _report(self, end: LegEnd) -> None:
        record = self.record(end)
        self.services.cdrs.write(record).addErrback(
            lambda f: log.failure("call {call_uuid}: CDR not written", f, call_uuid=self.uuid)
        )
        app = self.application
        if app is None or not app.fields.hangup_url:
            return
        params = hangup_params(
            self.params(),
            cause=end.cause.cause_name,
            cause_code=end.cause.code,
            source=end.source,
            duration=record.duration,
            bill_duration=record.bill_duration,
            start_time=record.start_time,
            answer_time=record.answer_time or "",
            end_time=record.end_time,
        )
        self.services.fetcher.notify(
            app.fields.hangup_url, Method(app.fields.hangup_method), params
        )
