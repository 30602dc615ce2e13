"""The trunks service: gateways located and trusted, registrations kept alive.

It starts after the SIP service (its REGISTERs need the SIP socket) and stops before
it, so that registrations can be removed at shutdown.  Every
:data:`TRUST_REFRESH_INTERVAL` seconds each gateway given by name is located again
(the resolver's cache honours the records' TTLs, so most of these cost nothing) and
the addresses INVITEs are trusted from, and exempt from flood bans, follow DNS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application import service
from twisted.internet.defer import DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony.sip.guard import SourceGuard
from telephony.sip.peer import Peer
from telephony.sip.stack import SipStack
from telephony.trunks.gateway import Gateway
from telephony.trunks.plan import Locator
from telephony.trunks.registration import TrunkRegistration
from telephony.trunks.trust import TrustedGateways

__all__ = ("TRUST_REFRESH_INTERVAL", "TrunksService")

log = Logger()

#: Seconds between two locations of the gateways given by name [ours].
TRUST_REFRESH_INTERVAL = 60.0


class TrunksService(service.Service):
    """Gateways: where they are, whom to trust, which registrations to keep.

    :param contact_host: our ``host:port`` for registrations' Contact and Via.
    """

    def __init__(
        self,
        *,
        gateways: Sequence[Gateway],
        stack: SipStack,
        guard: SourceGuard,
        clock: IReactorTime,
        locator: Locator,
        contact_host: str,
    ) -> None:
        self.setName("trunks")
        self.gateways = tuple(gateways)
        self.locator = locator
        self.guard = guard
        self.clock = clock
        self.trusted = TrustedGateways(self.gateways)
        self.registrations = [
            TrunkRegistration(
                gateway=g, stack=stack, clock=clock, locator=locator, contact_host=contact_host
            )
            for g in self.gateways
            if g.register
        ]
        for gateway in self.gateways:
            if gateway.is_ip:
                guard.trust(gateway.label, [gateway.host])
        self._refresh: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if any(not g.is_ip for g in self.gateways):
            self._refresh = LoopingCall(self._locate_all)
            self._refresh.clock = self.clock
            self._refresh.start(TRUST_REFRESH_INTERVAL, now=True).addErrback(
                lambda f: log.failure("Locating gateways", f)
            )
        for registration in self.registrations:
            registration.start()

    def stopService(self) -> Any:
        super().stopService()
        if self._refresh is not None and self._refresh.running:
            self._refresh.stop()
        self._refresh = None
        return DeferredList([r.stop() for r in self.registrations], consumeErrors=True)

    def _locate_all(self) -> None:
        for gateway in self.gateways:
            if gateway.is_ip:
                continue
            d = self.locator.locate(gateway.host, gateway.port, gateway.transport)
            d.addCallbacks(
                self._located,
                self._not_located,
                callbackArgs=(gateway,),
                errbackArgs=(gateway,),
            )

    def _located(self, peers: tuple[Peer, ...], gateway: Gateway) -> None:
        before = self.trusted.addresses(gateway)
        self.trusted.located(gateway, peers)
        self.guard.trust(gateway.label, {p.host for p in peers})
        if self.trusted.addresses(gateway) != before:
            log.info(
                "Gateway {label} is at {addresses}",
                label=gateway.label,
                addresses=", ".join(sorted(f"{p.host}:{p.port}" for p in peers)) or "nowhere",
            )

    def _not_located(self, failure: Failure, gateway: Gateway) -> None:
        # The addresses it had stay trusted: a DNS outage must not cut a carrier off.
        log.warn(
            "Cannot locate gateway {label}: {why}",
            label=gateway.label,
            why=failure.getErrorMessage(),
        )

    def status(self) -> dict[str, object]:
        """One line per gateway for the status page: where, and its registration."""
        registrations = {r.gateway.label: r.status() for r in self.registrations}
        lines: dict[str, object] = {}
        for gateway in self.gateways:
            where = ", ".join(
                f"{host}:{port}" if port else host
                for host, port in sorted(self.trusted.addresses(gateway), key=str)
            )
            text = f"{gateway} at {where or 'not located yet'}"
            registration = registrations.get(gateway.label)
            if registration is not None:
                expires = registration["expires_in"]
                text += f"; registration {registration['state']}"
                text += f" ({expires} s left)" if expires is not None else ""
                if registration["last"]:
                    text += f", last: {registration['last']}"
            lines[f"Gateway {gateway.label}"] = text
        return lines or {"Gateways": "none configured"}
