"""The calls service: media engine, fetcher, router and call manager, wired to SIP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from media import MediaConfig, MediaEngine
from telephony.calls.cdr import CdrStore
from telephony.calls.journal import (
    HEARTBEAT_INTERVAL,
    CallJournal,
    Recovered,
    tell_applications,
)
from telephony.calls.leg import SipContext
from telephony.calls.manager import CallManager
from telephony.calls.routing import Router
from telephony.config import Config
from telephony.directory import Directory
from telephony.directory.database import Database
from telephony.directory.recordings import RecordingStore
from telephony.sip.peer import Peer
from telephony.sipservice import SIPService
from telephony.trunks.service import TrunksService
from xml_dsl import Fetcher, Method
from xml_dsl.fetcher import application_agent

__all__ = ("CallsService",)

log = Logger()

#: Seconds an idle connection to an application server is kept for reuse: below
#: the common server keep-alive timeouts (5 s for Node.js and Apache), so that we do
#: not send a request on a connection the server is closing (the fetcher sends such
#: a request again, but only once: ``xml_dsl.fetcher.CLOSED_CONNECTION_RETRIES``).
HTTP_IDLE_TIMEOUT = 4
#: Idle connections kept per application host: enough for the requests in flight
#: at a couple of hundred calls a second (answer_url, hangup_url, callbacks), so
#: that connections are reused rather than opened and closed in bursts (8 made
#: about one request in six open a new connection at 170 calls/s).
HTTP_IDLE_PER_HOST = 32


class _QuietClientFactory(_HTTP11ClientFactory):
    """The pool's connection factory without "Starting/Stopping factory" log lines."""

    noisy = False


class CallsService(service.Service):
    """Calls on top of the SIP service; closing every media session at stop."""

    def __init__(
        self,
        config: Config,
        sip: SIPService,
        directory: Directory,
        database: Database,
        reactor: Any,
        auth_token: str,
        site_url: Callable[[], str | None],
        trunks: TrunksService,
    ) -> None:
        self.setName("calls")
        listen = config.sip_listen
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        self.media = MediaEngine(
            reactor=reactor,
            config=MediaConfig(
                rtp_ports=config.rtp_ports,
                bind_host=listen.host if listen.host not in ("0.0.0.0", "::") else "0.0.0.0",  # noqa: S104
                advertise_host=config.media_address or None,
                data_dir=config.data_dir,
            ),
        )
        self.journal = CallJournal(database)
        self.cdrs = CdrStore(database, self.journal.ended)
        #: Calls found in the journal at start (the last run ended without them).
        self.recovered = 0
        self._reactor = reactor
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = reactor
        # answer_url, action and hangup_url requests over persistent connections: a
        # TCP connection per request took a sixth of the CPU of a call's setup
        # (bench/calls_bench.py; docs/benchmarks.md).
        self.http_pool = HTTPConnectionPool(reactor, persistent=True)
        self.http_pool._factory = _QuietClientFactory  # no log line per connection
        self.http_pool.cachedConnectionTimeout = HTTP_IDLE_TIMEOUT
        self.http_pool.maxPersistentPerHost = HTTP_IDLE_PER_HOST
        self.fetcher = Fetcher(
            reactor=reactor,
            auth_token=auth_token,
            agent=application_agent(reactor, self.http_pool),
        )
        ctx = SipContext(
            stack=sip.stack,
            via_host=f"{host}:{listen.port}",
            contact=f"sip:telephony@{host}:{listen.port}",
            domain=config.domain,
            min_se=config.min_se,
        )
        router = Router(
            directory=directory, auth=sip.auth, gateways=trunks.trusted, domain=config.domain
        )
        self.manager = CallManager(
            ctx=ctx,
            media=self.media,
            clock=reactor,
            router=router,
            location=sip.location,
            fetcher=self.fetcher,
            cdrs=self.cdrs,
            gateways=trunks.gateways,
            locator=trunks.locator,
            recordings_dir=config.data_dir / "recordings",
            site_url=site_url,
            own_address=Peer("udp", listen.host, listen.port),
            journal=self.journal,
        )
        self.recordings = RecordingStore(
            database, config.data_dir / "recordings", self.media.run_blocking
        )
        self.manager.recordings.store = self.recordings
        sip.core.calls = self.manager.handle
        sip.core.acks = self.manager.handle_ack

    def startService(self) -> None:
        """Settle what a crash interrupted (recording deletions, the calls left in the
        journal), then start the journal's heartbeat."""
        super().startService()

        # Deletions a crash interrupted are settled before any request is served.
        def settled(n: int) -> None:
            if n:
                log.info("Settled {n} interrupted recording deletion(s)", n=n)

        self.recordings.recover().addCallbacks(
            settled, lambda f: log.failure("Could not settle interrupted recording deletions", f)
        )
        d = self.journal.recover()
        d.addCallback(self._recovered)
        d.addErrback(lambda f: log.failure("Could not recover the live-call journal", f))
        d.addBoth(lambda _: self._heartbeat.start(HEARTBEAT_INTERVAL) if self.running else None)

    def _recovered(self, calls: list[Recovered]) -> None:
        self.recovered = len(calls)
        if not calls:
            return
        log.warn(
            "{n} call(s) were live when the server last stopped without ending them;"
            " recorded with cause Server Restart",
            n=len(calls),
        )
        for call in calls:
            record = call.record
            log.info(
                "call {call_uuid} ({direction} {caller} -> {called}) ended by the restart",
                call_uuid=record.call_uuid,
                direction=record.direction,
                caller=record.from_number,
                called=record.to_number,
            )
        tell_applications(
            calls, lambda url, method, params: self.fetcher.notify(url, Method(method), params)
        )

    def _beat(self) -> None:
        self.journal.heartbeat(self._reactor.seconds()).addErrback(
            lambda f: log.failure("Heartbeat not written", f)
        )

    def stopService(self) -> Any:
        if self._heartbeat.running:
            self._heartbeat.stop()
        for call in list(self.manager.calls.values()):
            call.leg.hangup()  # members leave their rooms as their calls end (no action)
        self.manager.conferences.close_all()
        self.media.close_all()
        super().stopService()
        return self.http_pool.closeCachedConnections()

    def status(self) -> dict[str, object]:
        """Figures for the status page."""
        return {
            "Live calls": len(self.manager.calls),
            "Inbound calls": self.manager.counters["inbound"],
            "Outbound legs": self.manager.counters["outbound"],
            "Refused INVITEs": self.manager.counters["rejected"],
            "Media sessions": self.media.ports.in_use,
            "Live conferences": len(self.manager.conferences.rooms),
            "Calls recovered at start": self.recovered,
        }
