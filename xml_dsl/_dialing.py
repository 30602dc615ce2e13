"""``<Dial>`` and ``<Conference>``: the verbs that connect the call to others.

For ``<Dial>`` the call layer rings and bridges (:meth:`ICallControl.dial`); the executor
owns the
timers (ring ``timeout``, ``timeLimit``), ``hangupOnStar``, digit patterns, the
callbackUrl events and cancellation when the caller hangs up.

For ``<Conference>`` the executor fetches the sounds (enter, exit, wait), hands the
call layer a :class:`~xml_dsl.control.ConferenceSpec`, turns the member's keys into
``digitsMatch`` patterns and the room's events into callbackUrl requests, and asks for
the action once the member has left.  The room itself (mixing, the start and end
rules, ``timeLimit`` for the whole room, ``hangupOnStar``, recording) is the call
layer's, since it spans every member's call.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from xml_dsl import params as cbp
from xml_dsl.context import RunContext
from xml_dsl.control import (
    Beep,
    ConferenceEvent,
    ConferenceExit,
    ConferenceSpec,
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    RecordMode,
    RecordSpec,
    Ringback,
)
from xml_dsl.dtmf import PatternMatcher
from xml_dsl.verbs import Conference, Dial, DialMusic, Prompt, Response

__all__ = ["run_conference", "run_dial"]

log = Logger(namespace="xml_dsl.executor")


async def _ringback(ctx: RunContext, verb: Dial) -> Ringback | tuple[Prompt, ...]:
    if verb.dial_music is None:
        return Ringback.DEFAULT
    if isinstance(verb.dial_music, DialMusic):
        return Ringback.REAL
    prompts = await ctx.fetch_prompts(verb.dial_music, "dialMusic")
    return prompts or Ringback.DEFAULT


async def run_dial(ctx: RunContext, verb: Dial) -> DialResult:
    """Carry out ``verb`` on ``ctx.call`` and return how it ended."""
    ctx.reached_caller()
    armed = ctx.armed_dial_record()
    spec = DialSpec(
        targets=verb.targets,
        timeout=verb.timeout or ctx.limits.default_ring_timeout,
        time_limit=verb.time_limit,
        caller_id=verb.caller_id,
        caller_name=verb.caller_name,
        hangup_on_star=verb.hangup_on_star,
        confirm_prompts=(
            await ctx.fetch_prompts(verb.confirm_sound, "confirmSound")
            if verb.confirm_sound
            else ()
        ),
        confirm_key=verb.confirm_key,
        confirm_timeout=verb.confirm_timeout,
        ringback=await _ringback(ctx, verb),
        sip_headers=verb.sip_headers,
        report_b_leg_digits=bool(verb.digits_match_b_leg),
        record=RecordSpec.of(armed, RecordMode.DIAL) if armed is not None else None,
        call_type=verb.call_type,
    )
    a_leg = ctx.call_uuid
    timers: list[IDelayedCall] = []
    b_matcher = PatternMatcher(verb.digits_match_b_leg)
    a_matcher = PatternMatcher(verb.digits_match)

    def notify(params: dict[str, str]) -> None:
        ctx.notify(verb.callback_url, verb.callback_method, ctx.params(params))

    def stop_timers() -> None:
        for timer in timers:
            if timer.active():
                timer.cancel()
        timers.clear()

    def on_event(event: DialEvent) -> None:
        if event.kind is DialEventKind.DIGITS:
            pattern = b_matcher.feed(event.digits)
            if pattern is not None:
                notify(cbp.dial_digits_params(a_leg, pattern, "BLeg"))
            return
        if event.kind is DialEventKind.ANSWER:
            stop_timers()
            timers.append(ctx.clock.callLater(verb.time_limit, attempt.end, DialEnd.TIME_LIMIT))
        notify(cbp.dial_callback_params(a_leg, event))

    def on_a_digit(key: str) -> None:
        if verb.hangup_on_star and key == "*":
            attempt.end(DialEnd.HANGUP_ON_STAR)
            return
        pattern = a_matcher.feed(key)
        if pattern is not None:
            notify(cbp.dial_digits_params(a_leg, pattern, "ALeg"))

    attempt = ctx.call.dial(spec, on_event)
    timers.append(ctx.clock.callLater(spec.timeout, attempt.end, DialEnd.NO_ANSWER))
    listener: Deferred[None] | None = None
    if verb.hangup_on_star or verb.digits_match:
        listener = ctx.call.collect_digits(on_a_digit)
        listener.addErrback(lambda _: None)

    cancelled: list[bool] = []

    def caller_gone(_: Deferred[DialResult]) -> None:
        cancelled.append(True)
        attempt.end(DialEnd.CALLER_HANGUP)

    waiter: Deferred[DialResult] = Deferred(caller_gone)

    settled: list[object] = []

    def settle(result: object) -> None:
        settled.append(result)
        if not cancelled and not waiter.called:
            waiter.callback(result)  # type: ignore[arg-type]

    attempt.result.addBoth(settle)
    try:
        result = await waiter
    except CancelledError:
        if armed is not None:
            # The caller hung up: the conversation's recording is still filed (when
            # the call layer is done with it) and its callbackUrl told.
            def late(_: object) -> None:
                result = settled[0] if settled else None
                if isinstance(result, DialResult) and result.recording is not None:
                    ctx.recorded(armed)(result.recording)

            attempt.result.addCallback(late)
        raise
    finally:
        stop_timers()
        if listener is not None:
            listener.cancel()
    log.info(
        "call {call_uuid} Dial (line {line}) ended: {status}, B leg {b_leg}",
        call_uuid=a_leg,
        line=verb.line,
        status=result.status.value,
        b_leg=result.b_leg_uuid or "-",
    )
    return result


async def _sound(ctx: RunContext, sound: str, what: str) -> Beep | tuple[Prompt, ...] | None:
    if not sound:
        return None
    if sound in ("beep:1", "beep:2"):
        return Beep(sound)
    return await ctx.fetch_prompts(sound, what)


async def run_conference(ctx: RunContext, verb: Conference) -> Response | None:
    """Put the call in ``verb``'s room; report its events; request its action."""
    await ctx.answered()
    if verb.transcription_type is not None or verb.transcription_url is not None:
        log.warn(
            "call {call_uuid}: transcription is not available; conference recording only",
            call_uuid=ctx.call_uuid,
        )
    record = RecordSpec(RecordMode.SESSION, verb.record_file_format) if verb.record else None
    spec = ConferenceSpec(
        room=verb.room,
        muted=verb.muted,
        start_on_enter=verb.start_conference_on_enter,
        end_on_exit=verb.end_conference_on_exit,
        stay_alone=verb.stay_alone,
        max_members=verb.max_members,
        time_limit=verb.time_limit,
        hangup_on_star=verb.hangup_on_star,
        relay_dtmf=verb.relay_dtmf,
        enter_sound=await _sound(ctx, verb.enter_sound, "enterSound"),
        exit_sound=await _sound(ctx, verb.exit_sound, "exitSound"),
        wait_prompts=(
            await ctx.fetch_prompts(verb.wait_sound, "waitSound") if verb.wait_sound else ()
        ),
        record=record,
        record_when_alone=verb.record_when_alone,
        send_digits=verb.send_digits,
        report_digits=bool(verb.digits_match),
        report_floor=verb.floor_event,
    )
    matcher = PatternMatcher(verb.digits_match)

    def on_event(event: ConferenceEvent) -> None:
        if event.digits:
            pattern = matcher.feed(event.digits)
            if pattern is None:
                return
            event = ConferenceEvent(
                event.kind, event.conference_uuid, event.member_id, pattern, event.recording
            )
        ctx.notify(
            verb.callback_url,
            verb.callback_method,
            ctx.params(cbp.conference_callback_params(verb.room, event)),
        )

    result = await ctx.call.join_conference(spec, on_event)
    if result.exit is ConferenceExit.FULL:
        # As Plivo's own framework did: a member who cannot enter gets no callbacks
        # and no action; the document goes on with the next verb.
        log.warn(
            "call {call_uuid} Conference (line {line}): room {room} is full "
            "(maxMembers {max_members}); going on with the next verb",
            call_uuid=ctx.call_uuid,
            line=verb.line,
            room=verb.room,
            max_members=verb.max_members,
        )
        return None
    log.info(
        "call {call_uuid} Conference (line {line}) left room {room}: {exit}",
        call_uuid=ctx.call_uuid,
        line=verb.line,
        room=verb.room,
        exit=result.exit.value,
    )
    return await ctx.after(
        verb.action, verb.method, verb.redirect, cbp.conference_action_params(verb.room, result)
    )
