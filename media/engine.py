"""The media engine: port allocation, the shared tick, and session creation.

One :class:`MediaEngine` per reactor owns the :class:`~media.ticker.SharedTicker`
every session rides, the :class:`PortAllocator` for the configured RTP range,
the audio loader and the speech synthesiser.  The call layer asks it for a
session per call leg::

    session = engine.create_session(call_uuid=call.uuid)
    answer = session.accept_offer(parse_sdp(invite.body))   # A leg (UAS)
    offer = other.create_offer()                            # B leg (UAC)
    ...
    other.accept_answer(parse_sdp(response.body))
    bridge = MediaBridge(session, other); bridge.start()
    ...
    session.close()                                         # on BYE

:class:`MediaService` wraps an engine as a Twisted service, closing every
session when the server stops.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from media.config import MediaConfig, PortRange
from media.errors import PortsExhaustedError
from media.mixer import Mixer
from media.player import AudioLoader, RunBlocking, run_synchronously
from media.rtcp_port import RTCPPort
from media.session import RTPSession
from media.ticker import SharedTicker
from media.tts import Speaker
from media.udp import listen_rtp

__all__ = ("MediaEngine", "MediaService", "PortAllocator")

_log = Logger()


class PortAllocator:
    """Hands out even RTP ports (RTCP on the odd one above) from a range.

    Allocation walks the range round-robin from a random start, so a port freed
    by one call is not reused at once (late packets of the old call would land
    in the new one); ports another process holds are skipped.

    :param ports: the range.
    :param rng: picks the starting point.
    """

    def __init__(self, ports: PortRange, *, rng: random.Random | None = None) -> None:
        self.ports = ports
        self._in_use: set[int] = set()
        rng = rng or random.Random()  # noqa: S311 -- spreading, not security
        self._cursor = rng.randrange(ports.pairs)

    @property
    def in_use(self) -> int:
        """Pairs currently allocated."""
        return len(self._in_use)

    def allocate(self, bind: Callable[[int], Any]) -> tuple[int, Any]:
        """Find a free pair and bind it.

        :param bind: binds RTP on the given even port and RTCP on the next one,
            raising ``CannotListenError`` if either is taken (having released
            the other).
        :returns: the port and what ``bind`` returned.
        :raises PortsExhaustedError: when every pair is in use or taken.
        """
        pairs = self.ports.pairs
        for _ in range(pairs):
            port = self.ports.first_even + 2 * self._cursor
            self._cursor = (self._cursor + 1) % pairs
            if port in self._in_use:
                continue
            try:
                bound = bind(port)
            except CannotListenError:
                continue
            self._in_use.add(port)
            return port, bound
        raise PortsExhaustedError(
            f"rtp-ports: no free even port pair in {self.ports.low}-{self.ports.high}"
        )

    def release(self, port: int) -> None:
        """Return a port pair."""
        self._in_use.discard(port)


class MediaEngine:
    """Creates media sessions on one reactor.

    :param reactor: provides UDP, time, processes and a thread pool.
    :param config: ports, addresses, directories and limits.
    :param http: a treq ``HTTPClient`` for audio URLs (``None``: treq's default).
    :param run_blocking: runs disk I/O and decoding; ``None`` uses the reactor's
        thread pool.
    """

    def __init__(
        self,
        *,
        reactor: Any,
        config: MediaConfig | None = None,
        http: Any = None,
        run_blocking: RunBlocking | None = None,
    ) -> None:
        self.reactor = reactor
        self.config = config = config or MediaConfig()
        if run_blocking is None:
            pool = getattr(reactor, "getThreadPool", None)
            if pool is not None:

                def run_blocking(f: Callable[..., Any], *args: Any) -> Any:
                    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

            else:
                run_blocking = run_synchronously
        self.run_blocking: RunBlocking = run_blocking
        self.ticker = SharedTicker(clock=reactor, phases=config.tick_phases)
        self.ports = PortAllocator(config.rtp_ports)
        self.loader = AudioLoader(
            clock=reactor,
            cache_dir=config.data_dir / "cache" / "audio",
            roots=[config.sounds_dir],
            http=http,
            run_blocking=run_blocking,
            timeout=config.fetch_timeout,
            max_bytes=config.max_audio_bytes,
            cache_bytes=config.audio_cache_bytes,
            memory_entries=config.clip_cache_entries,
        )
        self.speaker = Speaker(
            reactor=reactor,
            clock=reactor,
            cache_dir=config.data_dir / "cache" / "tts",
            binary=config.espeak,
            timeout=config.tts_timeout,
            run_blocking=run_blocking,
            cache_bytes=config.tts_cache_bytes,
            memory_entries=config.clip_cache_entries,
        )
        self.sessions: dict[int, RTPSession] = {}

    def create_session(self, *, call_uuid: str = "") -> RTPSession:
        """A new session bound to a free port pair.

        :raises PortsExhaustedError: when the range is full.
        """
        config = self.config
        host = config.bind_host

        def bind(port: int) -> RTPSession:
            session = RTPSession(
                clock=self.reactor,
                ticker=self.ticker,
                local_address=(config.sdp_host, port),
                loader=self.loader,
                speaker=self.speaker,
                recordings=config.recordings_dir,
                telephone_event=config.telephone_event,
                codecs=config.codecs,
                call_uuid=call_uuid,
                on_close=self._closed,
                run_blocking=self.run_blocking,
            )
            try:
                rtp = listen_rtp(self.reactor, port, session, host)
            except CannotListenError:
                session.close()
                raise
            rtcp = RTCPPort(session, clock=self.reactor, interval=config.rtcp_interval)
            try:
                rtcp_port = listen_rtp(self.reactor, port + 1, rtcp, host)
            except CannotListenError:
                session.close()
                rtp.stopListening()
                raise
            if config.rtcp:
                session.rtcp = rtcp
            session.listening = (rtp, rtcp_port)
            return session

        port, session = self.ports.allocate(bind)
        self.sessions[port] = session
        _log.debug("{call_uuid} media session on port {port}", call_uuid=call_uuid, port=port)
        return session

    def create_mixer(self, *, name: str = "") -> Mixer:
        """A conference mixer on this engine's tick, able to play files and speak."""
        return Mixer(
            ticker=self.ticker,
            clock=self.reactor,
            loader=self.loader,
            speaker=self.speaker,
            run_blocking=self.run_blocking,
            name=name,
        )

    def _closed(self, session: RTPSession) -> None:
        port = session.local_address[1]
        if self.sessions.get(port) is not session:
            return
        del self.sessions[port]
        for listening in session.listening:
            listening.stopListening()
        self.ports.release(port)

    def close_all(self) -> None:
        """Close every session (server shutdown)."""
        for session in list(self.sessions.values()):
            session.close()


class MediaService(Service):
    """A Twisted service around a :class:`MediaEngine`; stopping closes every session."""

    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine

    def stopService(self) -> Any:
        """Close all sessions, then stop."""
        self.engine.close_all()
        return super().stopService()
