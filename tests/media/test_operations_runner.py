"""The operations runner on its own: a Clock, a ticker nobody subscribes to, and a
fake send path that records what the runner asks the session to send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from media.dtmf import parse_event
from media.errors import MediaArgumentError, MediaError, SessionClosedError
from media.g711 import Codec
from media.interfaces import DigitsEnd, PlayOutcome, RecordEnd
from media.operations_runner import OperationsRunner
from media.rtp import OutboundStream
from media.sdp import Direction, Negotiated
from media.sources import FrameSource
from media.ticker import SharedTicker

PCMU_SILENCE = bytes((Codec.PCMU.silence,)) * 160
BASE = 1000  # the stream's first timestamp
FIRST = 10  # the tick frame it belongs to


class Harness:
    """A runner and a record of what it did to its session."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        self.clock = clock
        self.sent: list[tuple[int, int, bytes, bool]] = []
        self.calls: list[str] = []
        self.stream = OutboundStream(ssrc=0x5555, sequence=0, timestamp=BASE)
        self.runner = OperationsRunner(
            clock, SharedTicker(clock=clock), 0, self.stream, FIRST,
            send=lambda *packet: self.sent.append(packet),
            on_change=lambda: self.calls.append("change"),
            on_output_end=lambda: self.calls.append("output end"),
            **kwargs,
        )  # fmt: skip
        self.frame_no = FIRST

    def tick(
        self, neg: Negotiated | None, *, sending: bool = True, relaying: bool = False
    ) -> bytes | None:
        """One tick as the session gives it: timers, then the frame."""
        self.runner.on_tick(self.clock.seconds())
        payload = self.runner.frame(self.frame_no, Codec.PCMU, neg, sending, relaying)
        self.frame_no += 1
        self.clock.advance(0.020)
        return payload


def neg(telephone_event: int | None = 101) -> Negotiated:
    return Negotiated(Codec.PCMU, 0, telephone_event, "127.0.0.1", 30000, Direction.SENDRECV)


def collect(runner: OperationsRunner, *, max_digits: int, barge_in: bool) -> list[Any]:
    """Start a collector (1 s timeouts, ``#`` finishes); its results as they come."""
    d = runner.collect_digits(
        max_digits=max_digits, timeout=1.0, digit_timeout=1.0, finish_on_key="#",
        valid_digits="0123456789", barge_in=barge_in,
    )  # fmt: skip
    return results(d)


def results(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_a_tone_plays_then_ends_and_the_session_hears_of_it_in_order(clock: Clock) -> None:
    h = Harness(clock)
    done = results(h.runner.play_tone("silence", 0.04))  # two frames
    assert h.runner.output is not None
    assert [h.tick(neg()), h.tick(neg())] == [bytes((0xFF,)) * 160] * 2  # μ-law zero
    assert done == []
    assert h.calls == []
    assert h.tick(neg()) == PCMU_SILENCE  # the source ran out: silence fills this frame
    assert done == [PlayOutcome.FINISHED]
    assert h.runner.output is None
    assert h.calls == ["output end", "change"]
    assert h.sent == []  # audio is the session's to send


def test_relaying_leaves_idle_frames_to_the_relay_but_not_a_loading_output(clock: Clock) -> None:
    h = Harness(clock)
    assert h.tick(neg(), relaying=True) is None
    assert h.tick(neg(), relaying=False) == PCMU_SILENCE
    loading: Deferred[FrameSource] = Deferred()
    h.runner._start_output(loading=loading)
    assert h.tick(neg(), relaying=True) == PCMU_SILENCE  # still loading: hold the stream
    h.runner.stop_output()
    assert loading.called  # the load was cancelled with the output
    assert h.tick(neg(), relaying=True) is None


def test_a_new_output_stops_the_running_one(clock: Clock) -> None:
    h = Harness(clock)
    first = results(h.runner.play_tone("ringback"))
    h.runner.play_tone("beep")
    assert first == [PlayOutcome.STOPPED]
    h.runner.stop_output()
    assert h.runner.output is None
    assert h.calls == ["output end", "change"] * 2


def test_digits_are_sent_as_events_stamped_with_the_digits_start(clock: Clock) -> None:
    h = Harness(clock)
    clock.advance(FIRST * 0.020)  # the request falls on the first frame
    done = results(h.runner.send_digits("1", digit_ms=40, gap_ms=40))
    audio = [h.tick(neg()) for _ in range(4)]  # 2 frames of tone, the end sent thrice
    assert audio == [None] * 4
    assert done == [None]
    assert h.runner.digits_out == []
    assert [(pt, ts, marker) for pt, ts, _, marker in h.sent] == [
        (101, BASE, True), *[(101, BASE, False)] * 3
    ]  # fmt: skip
    events = [parse_event(p) for _, _, p, _ in h.sent]
    assert [(e.event, e.end, e.duration) for e in events] == [
        (1, False, 160), (1, True, 320), (1, True, 320), (1, True, 320)
    ]  # fmt: skip
    assert h.tick(neg()) == PCMU_SILENCE
    assert h.runner.suppress_audio is False


def test_without_telephone_event_digits_are_tones_in_the_audio_payload_type(clock: Clock) -> None:
    h = Harness(clock)
    clock.advance(FIRST * 0.020)
    h.runner.send_digits("5", digit_ms=40, gap_ms=40)
    h.tick(neg(None))
    h.tick(neg(None))
    assert [(pt, ts) for pt, ts, _, _ in h.sent] == [(0, BASE), (0, BASE + 160)]
    samples = Codec.PCMU.decode(h.sent[0][2])
    assert np.abs(samples).max() > 1000  # a tone, not silence


def test_digits_not_sent_still_hold_the_stream_and_end(clock: Clock) -> None:
    h = Harness(clock)
    clock.advance(FIRST * 0.020)
    done = results(h.runner.send_digits("1", digit_ms=40, gap_ms=40))
    assert [h.tick(neg(), sending=False) for _ in range(4)] == [None] * 4
    assert h.sent == []
    assert done == [None]


def test_digits_queue_behind_digits(clock: Clock) -> None:
    h = Harness(clock)
    clock.advance(FIRST * 0.020)
    first = results(h.runner.send_digits("1", digit_ms=40, gap_ms=40))
    second = results(h.runner.send_digits("2", digit_ms=40, gap_ms=40))
    assert h.runner.digits_out[1].anchor is None  # queued: it starts when the first ends
    for _ in range(4):
        h.tick(neg())
    assert first == [None]
    assert second == []
    for _ in range(4):
        h.tick(neg())
    assert second == [None]
    assert [parse_event(p).event for _, _, p, _ in h.sent] == [1] * 4 + [2] * 4
    assert h.sent[4][1] == BASE + 4 * 160
    assert h.sent[4][3] is True  # a new event: marked


def test_a_digit_barges_in_on_the_prompt_and_reaches_the_collector(clock: Clock) -> None:
    h = Harness(clock)
    prompt = results(h.runner.play_tone("ringback"))
    collected = collect(h.runner, max_digits=2, barge_in=True)
    h.runner.on_digit("4", clock.seconds())
    assert prompt == [PlayOutcome.BARGED_IN]
    h.runner.on_digit("2", clock.seconds())
    assert [(r.digits, r.reason) for r in collected] == [("42", DigitsEnd.MAX_DIGITS)]
    assert h.runner.collector is None
    assert h.calls == ["change", "output end", "change", "change"]


def test_the_collectors_timeout_runs_on_the_tick_once_the_prompt_ends(clock: Clock) -> None:
    h = Harness(clock)
    h.runner.play_tone("silence", 1.0)
    collected = collect(h.runner, max_digits=4, barge_in=False)
    for _ in range(51 + 50):  # the 1 s prompt, then the 1 s first-digit timeout
        h.tick(neg())
    assert collected == []
    h.tick(neg())
    assert [(r.digits, r.reason) for r in collected] == [("", DigitsEnd.TIMEOUT)]


def test_a_recording_starts_after_its_beep_hears_audio_and_stops_on_a_key(
    clock: Clock, tmp_path: Path
) -> None:
    h = Harness(clock, recordings=tmp_path)
    recorded = h.runner.record(
        directory=None, max_length=10.0, finish_on_key="#", silence_timeout=5.0,
        beep=True, path=None, file_format="wav",
    )  # fmt: skip
    done = results(recorded)
    recording = h.runner.recording
    assert recording is not None
    assert recording.path.parent == tmp_path
    assert not recording.recording  # the beep first
    for _ in range(14):  # 250 ms of beep (13 frames), then the frame it ends on
        h.tick(neg())
    assert recording.recording
    assert recording.started_at == pytest.approx(0.26)
    loud = np.full(160, 5000, dtype=np.int16)
    for n in range(10):
        h.runner.heard(loud, BASE + 160 * n, 0x1234, clock.seconds())
    h.runner.on_digit("#", clock.seconds())
    [result] = done
    assert result.reason is RecordEnd.FINISH_KEY
    assert result.digits == "#"
    assert result.duration == pytest.approx(10 * 160 / 8000)
    assert h.runner.recording is None


def test_close_keeps_recordings_and_fails_the_rest(clock: Clock, tmp_path: Path) -> None:
    h = Harness(clock, call_uuid="abc")
    played = results(h.runner.play_tone("ringback"))
    digits = results(h.runner.send_digits("123", digit_ms=40, gap_ms=40))
    collected = collect(h.runner, max_digits=4, barge_in=False)
    recorded = results(
        h.runner.record_call(path=tmp_path / "call.wav", file_format="wav", stereo=True,
                             max_length=60.0)
    )  # fmt: skip
    h.runner.close()
    for failed in (played, digits, collected):
        assert failed[0].check(SessionClosedError)
        assert "session abc: closed" in str(failed[0].value)
    assert recorded[0].reason is RecordEnd.CLOSED
    assert (tmp_path / "call.wav").exists()
    assert (h.runner.output, h.runner.collector, h.runner.digits_out) == (None, None, [])
    assert h.runner.call_recordings == []


def test_play_and_speak_need_their_collaborators_and_sane_arguments(clock: Clock) -> None:
    h = Harness(clock)
    with pytest.raises(MediaArgumentError, match="loop"):
        h.runner.play(["a.wav"], loop=-1)
    with pytest.raises(MediaArgumentError, match="sources"):
        h.runner.play([])
    with pytest.raises(MediaArgumentError, match="tone"):
        h.runner.play_tone("whistle")
    no_loader = results(h.runner.play("a.wav"))
    no_speaker = results(h.runner.speak("hi", voice="WOMAN", language="en-US", loop=1))
    assert no_loader[0].check(MediaError)
    assert no_speaker[0].check(MediaError)
    assert h.runner.output is None
    assert h.calls == []
