"""The SIP service: stack, transports, registrar and location service, wired together.

It listens on ``--sip-listen`` with UDP and TCP on the same port (bound in the
privileged start phase, so port 5060 works when started as root), loads the stored
registrations, and stops in reverse order.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import gatherResults
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from telephony.auth import CredentialCache, RequestAuthenticator
from telephony.config import Config
from telephony.directory import Directory
from telephony.directory.bindings import BindingStore
from telephony.directory.database import Database
from telephony.location import LocationService, RegistrationInfo
from telephony.registrar import Registrar, RegistrarPolicy
from telephony.sip.core import SipCore
from telephony.sip.digest import DigestAlgorithm, DigestAuthenticator
from telephony.sip.guard import SourceGuard
from telephony.sip.message import MAX_MESSAGE_BYTES
from telephony.sip.stack import SipStack
from telephony.sip.transaction import TimerValues
from telephony.sip.transport import StreamTransportFactory, UDPTransport

__all__ = ("SIPService",)

log = Logger()


class SIPService(service.Service):
    """Everything SIP; the attributes are what the manhole and other services use."""

    def __init__(
        self, config: Config, directory: Directory, database: Database, reactor: Any
    ) -> None:
        self.setName("sip")
        self.config = config
        self.reactor = reactor
        self.guard = SourceGuard(exempt=config.throttle_exempt)
        self.location = LocationService(BindingStore(database), clock=reactor)
        self.authenticator = DigestAuthenticator(
            realm=config.domain,
            algorithms=tuple(DigestAlgorithm(name) for name in config.digest_algorithms),
        )
        self.auth = RequestAuthenticator(
            CredentialCache(directory, reactor), self.authenticator, self.guard, reactor
        )
        self.registrar = Registrar(
            domains=_our_domains(config),
            location=self.location,
            auth=self.auth,
            clock=reactor,
            policy=RegistrarPolicy(
                min_expires=config.min_expires,
                max_expires=config.max_expires,
                default_expires=min(3600, config.max_expires),
            ),
        )
        self.core = SipCore(
            registrar=self.registrar,
            guard=self.guard,
            blocked_user_agents=config.blocked_user_agents,
        )
        self.stack = SipStack(
            self.core, clock=reactor, timers=TimerValues(config.t1, config.t2, config.t4)
        )
        self.udp = UDPTransport(self.stack)
        self.tcp = StreamTransportFactory(self.stack, reactor=reactor)
        self.stack.transports["udp"] = self.udp
        self.stack.transports["tcp"] = self.tcp
        directory.subscribe(self.location.forget)
        self._ports: list[IListeningPort] = []

    def privilegedStartService(self) -> None:
        host, port = self.config.sip_listen.host, self.config.sip_listen.port
        try:
            # Twisted reads 8192 bytes of a datagram by default and drops the rest.
            self._ports.append(
                self.reactor.listenUDP(
                    port, self.udp, interface=host, maxPacketSize=MAX_MESSAGE_BYTES
                )
            )
            self._ports.append(self.reactor.listenTCP(port, self.tcp, interface=host))
        except CannotListenError as exc:
            raise SystemExit(
                f"twistd telephony: sip-listen: cannot listen on {self.config.sip_listen}: "
                f"{exc.socketError}"
            ) from None
        log.info(
            "SIP on {address} (UDP and TCP), domain {domain}; UDP receive buffer {kib} KiB",
            address=str(self.config.sip_listen),
            domain=self.config.domain,
            kib=self.udp.receive_buffer // 1024,
        )
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        self.location.start().addErrback(lambda f: log.failure("Could not load registrations", f))

    def stopService(self) -> Any:
        super().stopService()
        self.location.stop()
        self.stack.stop()
        ports, self._ports = self._ports, []
        stopping = [p.stopListening() for p in ports]
        return gatherResults([d for d in stopping if d is not None])

    # -- views for the REST API and the status page -------------------------------

    def registration_info(self, username: str) -> RegistrationInfo | None:
        """The endpoint's latest registration, as the REST API shows it."""
        return self.location.registration_info(username)

    def status(self) -> dict[str, object]:
        """Figures for the status page."""
        counts = self.location.counts()
        now = self.reactor.seconds()
        return {
            "Listening": f"{self.config.sip_listen} (UDP, TCP)",
            "Registered endpoints": counts["registered_endpoints"],
            "Registrations (devices)": counts["bindings"],
            "Live transactions": self.stack.transaction_count,
            "Messages received": self.stack.counters["received"],
            "Malformed messages": self.stack.counters["malformed"],
            "REGISTER accepted": self.registrar.counters["registered"],
            "Authentication failures": self.auth.counters["auth_failures"],
            "Blocked User-Agents": self.core.counters["blocked_user_agent"],
            "Banned sources": len(self.guard.banned(now)),
            "Dropped requests (banned sources)": self.core.counters["dropped"],
            "TCP connections": len(self.tcp.connections),
            "TCP connections refused": self.tcp.refused,
            "TCP read timeouts": self.tcp.read_timeouts,
        }


def _our_domains(config: Config) -> list[str]:
    """Request-URI hosts a REGISTER may name: the domain, and the address we listen on."""
    domains = [config.domain, config.sip_listen.host]
    if config.sip_listen.host in ("127.0.0.1", "::1", "0.0.0.0", "::"):  # noqa: S104
        domains.append("localhost")
    return domains
