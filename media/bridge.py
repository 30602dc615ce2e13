"""Bridging two media sessions: what one peer says, the other hears.

A B2BUA call has two legs, each with its own :class:`~media.session.RTPSession`
(its own ports, SSRC, sequence and timestamp space, codec and telephone-event
payload type).  :class:`MediaBridge` listens to both and relays:

* audio, transcoded between PCMU and PCMA by a 256-byte table when the legs
  differ, renumbered into the receiving leg's stream (its SSRC and sequence;
  timestamps shifted by a per-source offset, so spacing is preserved);
* RFC 4733 events, passed through with the receiving leg's payload type and
  the same timestamp mapping; if the receiving leg negotiated no
  telephone-event, the digit is regenerated there as in-band tones.

While bridged, a leg generates no idle silence; a play/speak/tone started on
one leg (e.g. a whisper) takes over that leg's stream until it ends.
In-band DTMF from a leg without telephone-event simply passes as audio.
"""

from __future__ import annotations

from zope.interface import implementer

from media.interfaces import AudioFrame, EventFrame, IMediaListener, IMediaSession

__all__ = ("MediaBridge",)


@implementer(IMediaListener)
class MediaBridge:
    """Relays RTP both ways between two sessions.

    :param a: one leg.
    :param b: the other leg.
    """

    def __init__(self, a: IMediaSession, b: IMediaSession) -> None:
        if a is b:
            raise ValueError("bridge: the two legs must be different sessions")
        self.a = a
        self.b = b
        self.active = False
        #: Audio frames and events relayed, and digits regenerated in-band.
        self.frames = 0
        self.events = 0
        self.regenerated = 0

    def start(self) -> None:
        """Start relaying."""
        if self.active:
            return
        self.active = True
        for leg in (self.a, self.b):
            leg.set_relaying(True)
            leg.add_listener(self)

    def stop(self) -> None:
        """Stop relaying; each leg goes back to generating its own frames."""
        if not self.active:
            return
        self.active = False
        for leg in (self.a, self.b):
            leg.remove_listener(self)
            leg.set_relaying(False)

    def _other(self, session: IMediaSession) -> IMediaSession:
        return self.b if session is self.a else self.a

    def relay_target(self, session: IMediaSession) -> IMediaSession:
        """Where audio heard on ``session`` goes: the other leg.

        A session whose only audio listener is this bridge sends its plain
        audio packets there itself (counted in :attr:`frames` all the same).
        """
        return self._other(session)

    def audio_received(self, session: IMediaSession, frame: AudioFrame) -> None:
        """Relay an audio frame to the other leg."""
        self._other(session).relay_audio(frame)
        self.frames += 1

    def event_received(self, session: IMediaSession, frame: EventFrame) -> None:
        """Pass a telephone-event through, if the other leg negotiated them."""
        other = self._other(session)
        if other.negotiated is not None and other.negotiated.telephone_event is not None:
            other.relay_event(frame)
            self.events += 1

    def digit_received(self, session: IMediaSession, digit: str) -> None:
        """Regenerate an RFC 4733 digit in-band for a leg without telephone-event."""
        other = self._other(session)
        source_has_events = session.negotiated is not None and (
            session.negotiated.telephone_event is not None
        )
        other_has_events = other.negotiated is not None and (
            other.negotiated.telephone_event is not None
        )
        if source_has_events and not other_has_events and other.negotiated is not None:
            other.send_digits(digit).addErrback(lambda _: None)  # leg closed meanwhile
            self.regenerated += 1
