"""The conference mixer on a Clock: who hears whom, exactly, and when."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from media.errors import MediaArgumentError, MediaError
from media.g711 import Codec
from media.interfaces import IMediaListener, PlayOutcome
from media.mixer import (
    ENERGY_THRESHOLD,
    MAX_ROOM_SOUNDS,
    TALK_ATTACK_FRAMES,
    TALK_HANGOVER_FRAMES,
    Mixer,
    MixMember,
)
from media.rtp import RTPPacket
from media.session import RTPSession
from media.sources import ClipSource
from media.ticker import SharedTicker
from tests.tones import tone, tones_heard

from .helpers import REMOTE, StampedTransport, advance_to, make_session, negotiated, rtp

FREQS = [500.0, 800.0, 1300.0]


class Phone:
    """A member's far end: sends a steady tone frame by frame, reads what it got."""

    def __init__(self, session: RTPSession, transport: StampedTransport, hz: float) -> None:
        self.session = session
        self.transport = transport
        self.hz = hz
        self.sent = 0
        self.ssrc = 0x1000 + int(hz)

    def say(self, samples: np.ndarray | None = None) -> None:
        """One 20 ms packet of its tone (or of ``samples``)."""
        if samples is None:
            samples = tone(self.hz, 160, offset=160 * self.sent)
        codec = self.session.negotiated.codec if self.session.negotiated else Codec.PCMU
        packet = rtp(codec.payload_type, self.sent, 160 * self.sent, codec.encode(samples),
                     ssrc=self.ssrc)  # fmt: skip
        self.session.datagramReceived(packet, REMOTE)
        self.sent += 1

    def heard(self, since: float = 0.0) -> list[tuple[float, RTPPacket]]:
        return [(t, p) for t, p in self.transport.packets() if t >= since]

    def audio(self, since: float = 0.0) -> np.ndarray:
        codec = self.session.negotiated.codec if self.session.negotiated else Codec.PCMU
        payloads = [p.payload for _, p in self.heard(since)]
        return codec.decode(b"".join(payloads)) if payloads else np.zeros(0, np.int16)


def room(clock: Clock, codecs: tuple[Codec, ...] = (Codec.PCMU,) * 3) -> tuple[Mixer, list[Phone]]:
    ticker = SharedTicker(clock=clock)
    mixer = Mixer(ticker=ticker, clock=clock, name="room")
    phones = []
    for codec, hz in zip(codecs, FREQS, strict=False):
        session, transport = make_session(clock, negotiated(codec), ticker=ticker)
        phones.append(Phone(session, transport, hz))
    return mixer, phones


def talk(clock: Clock, phones: list[Phone], seconds: float, quiet: tuple[Phone, ...] = ()) -> None:
    """Every phone not in ``quiet`` sends a packet every 20 ms, just after each tick."""
    end = clock.seconds() + seconds
    while clock.seconds() < end - 1e-9:
        for phone in phones:
            if phone not in quiet:
                phone.say()
        advance_to(clock, clock.seconds() + 0.020)


def close(mixer: Mixer, phones: list[Phone]) -> None:
    mixer.close()
    for phone in phones:
        phone.session.close()


def test_member_is_a_listener_and_the_mixer_counts_what_it_holds(clock: Clock) -> None:
    mixer, phones = room(clock)
    member = mixer.add(phones[0].session)
    assert verifyObject(IMediaListener, member)
    assert mixer.members == [member]
    assert mixer.floor is member  # the first to enter holds the floor
    with pytest.raises(MediaArgumentError, match="already in this conference"):
        mixer.add(phones[0].session)
    mixer.remove(member)
    mixer.remove(member)  # idempotent
    assert mixer.members == []
    assert mixer.ticker.subscribers == 3  # the sessions: an empty mixer leaves the tick
    close(mixer, phones)
    with pytest.raises(MediaError, match="closed"):
        mixer.add(phones[1].session)


def test_each_member_hears_the_others_but_never_itself(clock: Clock) -> None:
    mixer, phones = room(clock)
    for phone in phones:
        mixer.add(phone.session)
    talk(clock, phones, 0.1)  # primes the buffers
    since = clock.seconds()
    talk(clock, phones, 1.0)
    for phone in phones:
        others = {p.hz for p in phones if p is not phone}
        assert tones_heard(phone.audio(since), FREQS) == others, phone.hz
    close(mixer, phones)


def test_the_mix_is_the_exact_sum_of_the_others_encoded_once_per_tick(clock: Clock) -> None:
    mixer, phones = room(clock, (Codec.PCMU, Codec.PCMA, Codec.PCMU))
    for phone in phones:
        mixer.add(phone.session)
    for phone in phones:
        phone.transport.written.clear()
    # Two frames each, then two ticks: the buffers prime on two frames.
    frames = {p.hz: [tone(p.hz, 160, 3000, 160 * k) for k in range(2)] for p in phones}
    for k in range(2):
        for phone in phones:
            phone.say(frames[phone.hz][k])
    advance_to(clock, clock.seconds() + 0.030)  # the ticks at 0 and 20 ms
    for phone in phones:
        codec = phone.session.negotiated.codec
        decoded = {p.hz: [codec_roundtrip(p, f) for f in frames[p.hz]] for p in phones}
        sent = phone.heard()
        assert len(sent) == 2
        for k, (_, packet) in enumerate(sent):
            expected = sum(decoded[p.hz][k].astype(np.int32) for p in phones if p is not phone)
            assert packet.payload == codec.encode(np.clip(expected, -32768, 32767))
            assert packet.payload_type == codec.payload_type
    close(mixer, phones)


def codec_roundtrip(phone: Phone, samples: np.ndarray) -> np.ndarray:
    """What the mixer decodes from the phone's packet."""
    codec = phone.session.negotiated.codec
    return codec.decode(codec.encode(samples))


def test_mixed_frames_leave_every_20_ms_on_each_members_timeline(clock: Clock) -> None:
    mixer, phones = room(clock)
    for phone in phones:
        mixer.add(phone.session)
    advance_to(clock, 0.5)
    for phone in phones:
        sent = phone.heard()
        times = [t for t, _ in sent]
        assert np.allclose(np.diff(times), 0.020)
        stamps = [p.timestamp for _, p in sent]
        assert {(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)} == {160}
        assert {p.ssrc for _, p in sent} == {phone.session.stream.ssrc}
    assert mixer.frames == 26  # 0 to 0.5 s, both ends
    assert mixer.late == 0
    close(mixer, phones)


def test_mute_takes_a_member_out_of_what_the_others_hear(clock: Clock) -> None:
    mixer, phones = room(clock)
    members = [mixer.add(phone.session) for phone in phones]
    talk(clock, phones, 0.1)
    members[1].muted = True
    since = clock.seconds()
    talk(clock, phones, 1.0)
    assert tones_heard(phones[0].audio(since), FREQS) == {1300.0}
    assert tones_heard(phones[2].audio(since), FREQS) == {500.0}
    assert tones_heard(phones[1].audio(since), FREQS) == {500.0, 1300.0}  # still hears
    members[1].muted = False
    since = clock.seconds()
    talk(clock, phones, 1.0)
    assert tones_heard(phones[0].audio(since), FREQS) == {800.0, 1300.0}
    close(mixer, phones)


def test_a_deaf_member_hears_silence_but_is_heard(clock: Clock) -> None:
    mixer, phones = room(clock)
    members = [mixer.add(phone.session) for phone in phones]
    members[0].deaf = True
    talk(clock, phones, 0.1)
    since = clock.seconds()
    talk(clock, phones, 1.0)
    assert set(phones[0].audio(since)) == {0}
    assert tones_heard(phones[1].audio(since), FREQS) == {500.0, 1300.0}
    close(mixer, phones)


def test_held_members_neither_hear_nor_are_heard_but_hear_their_own_music(clock: Clock) -> None:
    mixer, phones = room(clock)
    members = [mixer.add(phone.session) for phone in phones]
    members[2].held = True
    music = tone(300.0, 800, 4000)
    done = members[2].play("wait", ClipSource(music, loops=0))
    talk(clock, phones, 0.1)
    since = clock.seconds()
    talk(clock, phones, 1.0)
    assert tones_heard(phones[2].audio(since), [*FREQS, 300.0]) == {300.0}
    assert tones_heard(phones[0].audio(since), FREQS) == {800.0}
    members[2].stop("wait")
    assert done.result is PlayOutcome.STOPPED
    close(mixer, phones)


def test_the_noise_gate_keeps_quiet_members_out(clock: Clock) -> None:
    mixer, phones = room(clock)
    for phone in phones:
        mixer.add(phone.session)
    hiss = np.full(160, 40, dtype=np.int16)
    assert ENERGY_THRESHOLD > 2 * 40  # well under the threshold
    for _ in range(30):
        phones[0].say()
        phones[1].say(hiss)
        phones[2].say(hiss)
        advance_to(clock, clock.seconds() + 0.020)
    since = clock.seconds() - 0.2
    # Phone 1 hears phone 0's tone and nothing of phone 2's hiss: exactly the tone.
    heard = phones[1].audio(since)
    expected = [codec_roundtrip(phones[0], tone(500.0, 160, offset=160 * k)) for k in range(30)]
    assert any(np.array_equal(heard[:160], frame) for frame in expected)
    assert set(phones[0].audio(since)) == {0}  # phone 0 hears no hiss at all
    close(mixer, phones)


def test_talking_starts_after_the_attack_and_ends_after_the_hangover(clock: Clock) -> None:
    mixer, phones = room(clock)
    events: list[tuple[float, float, bool]] = []
    mixer.on_talking = lambda m, t: events.append((clock.seconds(), m.session.ticker.frame, t))
    member = mixer.add(phones[0].session)
    loud = tone(500.0, 160, 2000)
    for _ in range(2):
        phones[0].say(loud)
    start = clock.seconds()
    for _ in range(TALK_ATTACK_FRAMES):
        advance_to(clock, clock.seconds() + 0.020)
        phones[0].say(loud)
    assert member.talking
    assert len(events) == 1
    assert events[0][2] is True
    assert events[0][0] == pytest.approx(start + 0.020 * (TALK_ATTACK_FRAMES - 1), abs=1e-6)
    quiet_from = clock.seconds()
    for _ in range(TALK_HANGOVER_FRAMES + 3):
        phones[0].say(np.zeros(160, np.int16))
        advance_to(clock, clock.seconds() + 0.020)
    assert not member.talking
    assert [e[2] for e in events] == [True, False]
    # The buffer still held three loud frames when the quiet ones began.
    assert events[1][0] == pytest.approx(quiet_from + 0.020 * (TALK_HANGOVER_FRAMES + 1), abs=1e-6)
    close(mixer, phones)


def test_the_floor_goes_to_the_loudest_talker_once_the_holder_stops(clock: Clock) -> None:
    mixer, phones = room(clock)
    floors: list[MixMember] = []
    mixer.on_floor = floors.append
    a, b, c = (mixer.add(phone.session) for phone in phones)
    assert mixer.floor is a
    quiet = np.zeros(160, np.int16)
    # b and c talk, c louder, while a is quiet: the floor goes to c.
    for k in range(10):
        phones[0].say(quiet)
        phones[1].say(tone(800.0, 160, 1000, 160 * k))
        phones[2].say(tone(1300.0, 160, 5000, 160 * k))
        advance_to(clock, clock.seconds() + 0.020)
    assert floors == [c]
    # c keeps it while it talks, even when b gets louder.
    for k in range(10):
        phones[0].say(quiet)
        phones[1].say(tone(800.0, 160, 9000, 160 * k))
        phones[2].say(tone(1300.0, 160, 2000, 160 * k))
        advance_to(clock, clock.seconds() + 0.020)
    assert floors == [c]
    # c falls silent: after its hangover, b (still talking) takes the floor.
    for k in range(TALK_HANGOVER_FRAMES + 4):
        phones[0].say(quiet)
        phones[1].say(tone(800.0, 160, 9000, 160 * k))
        phones[2].say(quiet)
        advance_to(clock, clock.seconds() + 0.020)
    assert floors == [c, b]
    assert mixer.floor is b
    mixer.remove(b)
    assert mixer.floor is None
    close(mixer, phones)


def test_room_sounds_reach_all_but_the_deaf_and_are_bounded(clock: Clock) -> None:
    mixer, phones = room(clock)
    members = [mixer.add(phone.session) for phone in phones]
    members[1].deaf = True
    beep = tone(700.0, 800, 4000)
    done = mixer.play_room(beep)
    since = clock.seconds()
    advance_to(clock, since + 0.2)
    assert tones_heard(phones[0].audio(since), [700.0]) == {700.0}
    assert tones_heard(phones[2].audio(since), [700.0]) == {700.0}
    assert set(phones[1].audio(since)) == {0}
    advance_to(clock, since + 0.2)
    assert done.result is PlayOutcome.FINISHED
    sounds = [mixer.play_room(beep) for _ in range(MAX_ROOM_SOUNDS + 1)]
    assert sounds[0].result is PlayOutcome.STOPPED  # the oldest made room
    assert all(not d.called for d in sounds[1:])
    close(mixer, phones)
    assert all(d.result is PlayOutcome.STOPPED for d in sounds[1:])


def test_private_play_is_mixed_over_the_room_for_that_member_only(clock: Clock) -> None:
    mixer, phones = room(clock)
    members = [mixer.add(phone.session) for phone in phones]
    loading: Deferred[ClipSource] = Deferred()
    done = members[0].play("play", loading=loading)
    talk(clock, phones, 0.1)
    loading.callback(ClipSource(tone(300.0, 4000, 3000)))
    since = clock.seconds()
    talk(clock, phones, 0.4)
    assert tones_heard(phones[0].audio(since), [*FREQS, 300.0]) == {800.0, 1300.0, 300.0}
    assert tones_heard(phones[1].audio(since), [*FREQS, 300.0]) == {500.0, 1300.0}
    talk(clock, phones, 0.2)
    assert done.result is PlayOutcome.FINISHED
    with pytest.raises(MediaArgumentError, match="kind"):
        members[0].play("nope", ClipSource(tone(300.0, 160)))
    close(mixer, phones)


def test_own_output_on_a_session_takes_over_its_stream(clock: Clock) -> None:
    mixer, phones = room(clock)
    for phone in phones:
        mixer.add(phone.session)
    talk(clock, phones, 0.1)
    phones[0].session.play_tone("silence", 0.2).addErrback(lambda _: None)
    since = clock.seconds() + 0.001  # after this instant's tick
    talk(clock, phones, 0.2)
    assert set(phones[0].audio(since)) == {0}  # its own silence, not the mix
    assert phones[0].session.counters.dropped_relay >= 9
    close(mixer, phones)


def test_recording_writes_the_room_and_skips_it_while_alone(clock: Clock, tmp_path: Path) -> None:
    mixer, phones = room(clock)
    a = mixer.add(phones[0].session)
    result = mixer.start_recording(tmp_path / "room.wav")
    with pytest.raises(MediaArgumentError, match="already being recorded"):
        mixer.start_recording(tmp_path / "other.wav")
    talk(clock, phones[:1], 0.2)  # alone: not recorded
    b = mixer.add(phones[1].session)
    talk(clock, phones[:2], 0.4)
    mixer.stop_recording()
    recording = result.result
    assert recording.path == tmp_path / "room.wav"
    assert recording.duration == pytest.approx(0.4, abs=0.021)
    with wave.open(str(recording.path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert tones_heard(samples, FREQS) == {500.0, 800.0}
    assert mixer.recording is None
    mixer.remove(a)
    mixer.remove(b)
    close(mixer, phones)


def test_recording_when_alone_keeps_everything(clock: Clock, tmp_path: Path) -> None:
    mixer, phones = room(clock)
    mixer.add(phones[0].session)
    result = mixer.start_recording(tmp_path / "alone.wav", when_alone=True)
    talk(clock, phones[:1], 0.3)
    mixer.close()  # closing finishes the recording
    assert result.result.duration == pytest.approx(0.3, abs=0.021)
    close(mixer, phones)


def test_load_and_synthesize_go_to_the_engines_helpers(clock: Clock) -> None:
    class Loader:
        def load(self, source: str) -> Deferred[np.ndarray]:
            return succeed(np.full(10, len(source), dtype=np.int16))

    class Speaker:
        def synthesize(self, text: str, *, voice: str, language: str) -> Deferred[np.ndarray]:
            return succeed(np.full(3, 7, dtype=np.int16))

    ticker = SharedTicker(clock=clock)
    bare = Mixer(ticker=ticker, clock=clock)
    assert isinstance(bare.load(["x"]).result.value, MediaError)  # type: ignore[attr-defined]
    bare.synthesize("hi", voice="MAN", language="en-US").addErrback(lambda f: None)
    mixer = Mixer(ticker=ticker, clock=clock, loader=Loader(), speaker=Speaker())  # type: ignore[arg-type]
    assert list(mixer.load(["ab", "c"]).result) == [2] * 10 + [1] * 10
    assert list(mixer.synthesize("hi", voice="MAN", language="en-US").result) == [7, 7, 7]
    bare.close()
    mixer.close()
