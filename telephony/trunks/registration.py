"""Keeping registered with a provider that routes inbound calls to a registered contact.

For each gateway with ``register`` on, :class:`TrunkRegistration` sends a REGISTER
(RFC 3261 §10.2) for ``sip:USERNAME@DOMAIN`` with our address as the Contact,
answers the provider's digest challenge, honours a 423's ``Min-Expires``, and
refreshes before the granted interval runs out.  A failure (timeout, 5xx, refused
credentials) is retried on the gateway's next located address and then with
growing delays, so that a provider that is down or refuses us is not flooded; a
503's ``Retry-After`` is honoured.  At stop, a registration that holds is removed
(``Expires: 0``), waiting for the answer only briefly.

All of one gateway's REGISTERs share a Call-ID and From tag and count their CSeq up,
as §10.2 asks of a UA registering one contact.
"""

from __future__ import annotations

import enum
import secrets
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony._version import __version__
from telephony.sip.digest_client import AuthRefused, DigestClient
from telephony.sip.errors import SipParseError
from telephony.sip.headers import Headers, parse_contacts
from telephony.sip.ids import new_branch, new_tag
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.stack import SipStack
from telephony.sip.uri import SipURI
from telephony.trunks.gateway import Gateway
from telephony.trunks.plan import Locator

__all__ = (
    "REFRESH_MARGIN",
    "RETRY_BASE",
    "RETRY_MAX",
    "RegistrationState",
    "TrunkRegistration",
    "refresh_delay",
    "retry_delay",
)

log = Logger()

#: Seconds before a registration expires that we refresh it (half the interval for
#: short ones) [ours]: room for a full UDP retransmission schedule and one retry.
REFRESH_MARGIN = 30.0
#: First retry after a failed registration, and the cap of the doubling delays,
#: seconds [ours, after RFC 5626 §4.5's 30 s base and its spirit of a cap].
RETRY_BASE = 30.0
RETRY_MAX = 600.0
#: Longest we wait at stop for the answer to our un-REGISTER, seconds.
UNREGISTER_WAIT = 2.0
#: 423 answers followed in a row before giving up (each raises the interval asked).
MAX_INTERVAL_RETRIES = 2


class RegistrationState(enum.Enum):
    """Where a trunk registration stands."""

    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    STOPPED = "stopped"


def refresh_delay(granted: float) -> float:
    """Seconds after a 200 to refresh an interval of *granted* seconds."""
    return max(granted / 2, granted - REFRESH_MARGIN)


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the *failures*-th failure in a row (a 503's
    ``Retry-After`` wins when longer)."""
    delay = min(RETRY_MAX, RETRY_BASE * 2 ** max(0, failures - 1))
    return max(delay, retry_after or 0.0)


class TrunkRegistration:
    """One gateway's registration, kept alive on *clock*.

    :param contact_host: our ``host:port`` as the provider should reach it.
    """

    def __init__(
        self,
        *,
        gateway: Gateway,
        stack: SipStack,
        clock: IReactorTime,
        locator: Locator,
        contact_host: str,
    ) -> None:
        if gateway.username is None or gateway.password is None:
            raise ValueError(f"gateway {gateway.label}: registration needs credentials")
        self.gateway = gateway
        self.stack = stack
        self.clock = clock
        self.locator = locator
        domain = gateway.sip_domain
        host = f"[{domain}]" if ":" in domain else domain
        self.aor = SipURI("sip", gateway.username, host)
        self.registrar = SipURI("sip", None, host, gateway.port)
        transport = ";transport=tcp" if gateway.transport == "tcp" else ""
        self.contact_host = contact_host
        self.contact = f"<sip:{gateway.username}@{contact_host}{transport}>"
        self.call_id = f"{secrets.token_hex(12)}@{contact_host.rsplit(':', 1)[0].strip('[]')}"
        self.tag = new_tag()
        self.cseq = 0
        self.state = RegistrationState.IDLE
        self.expires_at: float | None = None
        self.last_reason = ""
        self.failures = 0
        self._peers: tuple[Peer, ...] = ()
        self._peer_index = 0
        self._timer: IDelayedCall | None = None
        self._pending: Deferred[Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Register now, and keep registered."""
        if self.state in (RegistrationState.IDLE, RegistrationState.STOPPED):
            self.state = RegistrationState.REGISTERING
            self._register()

    def stop(self) -> Deferred[None]:
        """Stop refreshing; remove the registration if it holds.  Fires when the
        provider answered, or after :data:`UNREGISTER_WAIT` seconds."""
        was_registered = self.state is RegistrationState.REGISTERED and self._peers
        self.state = RegistrationState.STOPPED
        self._cancel_timer()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if not was_registered:
            return succeed(None)
        peer = self._peers[self._peer_index % len(self._peers)]
        unregister = Deferred.fromCoroutine(self._exchange(peer, expires=0))
        timeout = self.clock.callLater(UNREGISTER_WAIT, unregister.cancel)

        def done(result: object) -> None:
            if timeout.active():
                timeout.cancel()
            if isinstance(result, Failure) and not result.check(CancelledError):
                log.failure("Unregistering from {label}", result, label=self.gateway.label)

        return unregister.addBoth(done)

    def status(self) -> dict[str, object]:
        """For the status page and the manhole."""
        expires_in = None
        if self.state is RegistrationState.REGISTERED and self.expires_at is not None:
            expires_in = max(0, round(self.expires_at - self.clock.seconds()))
        return {
            "gateway": self.gateway.label,
            "aor": str(self.aor),
            "state": self.state.value,
            "expires_in": expires_in,
            "last": self.last_reason,
        }

    # -- one round ------------------------------------------------------------------------

    def _register(self) -> None:
        self._timer = None
        if self.state is RegistrationState.STOPPED:
            return
        d = Deferred.fromCoroutine(self._round())
        self._pending = d
        d.addErrback(self._crashed)

    async def _round(self) -> None:
        if not self._peers or self._peer_index >= len(self._peers):
            try:
                self._peers = await self.locator.locate(
                    self.gateway.host, self.gateway.port, self.gateway.transport
                )
            except CancelledError:
                raise
            except Exception as exc:
                self._failed(f"cannot locate {self.gateway.host}: {exc}")
                return
            self._peer_index = 0
            if not self._peers:
                self._failed(f"no address for {self.gateway.host}")
                return
        peer = self._peers[self._peer_index]
        response, refusal = await self._exchange(peer, expires=self.gateway.register_expires)
        self._pending = None
        if self.state is RegistrationState.STOPPED:
            return
        if 200 <= response.status < 300:
            self._registered(response)
        elif refusal is not None:
            self._failed(f"{response.status}: {refusal}")
        elif response.status == 408 or response.status >= 500:
            self._peer_index += 1  # the next address, at once if there is one
            retry_after = _retry_after(response) if response.status == 503 else None
            if self._peer_index < len(self._peers) and retry_after is None:
                self.last_reason = f"{response.status} {response.reason} from {peer.host}"
                self._register()
                return
            self._failed(f"{response.status} {response.reason}", retry_after)
        else:
            self._failed(f"{response.status} {response.reason}")

    async def _exchange(self, peer: Peer, *, expires: int) -> tuple[Response, AuthRefused | None]:
        """One REGISTER and its authenticated or re-timed resends: the final response,
        and why we did not answer it when it is a challenge."""
        client = DigestClient(
            self.gateway.username, self.gateway.password, realm=self.gateway.realm
        )
        auth = Headers()
        interval_retries = 0
        while True:
            request = self._request(peer, expires, auth)
            response = await self.stack.send_request(request, peer)
            if response.status in (401, 407):
                answer = client.answer(
                    response, method="REGISTER", uri=str(request.uri), body=request.body
                )
                if isinstance(answer, AuthRefused):
                    return response, answer
                auth = answer
                continue
            if response.status == 423 and interval_retries < MAX_INTERVAL_RETRIES:
                minimum = (response.headers.get("Min-Expires") or "").strip()
                if minimum.isascii() and minimum.isdigit() and int(minimum) > expires:
                    interval_retries += 1
                    expires = int(minimum)
                    continue
            return response, None

    def _request(self, peer: Peer, expires: int, auth: Headers) -> Request:
        self.cseq += 1
        headers = Headers()
        via = f"SIP/2.0/{peer.transport.upper()} {self.contact_host};branch={new_branch()};rport"
        headers.add("Via", via)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.aor}>;tag={self.tag}")
        headers.add("To", f"<{self.aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", self.contact)
        headers.add("Expires", str(expires))
        headers.add("User-Agent", f"telephony/{__version__}")
        for name, value in auth:
            headers.add(name, value)
        return Request("REGISTER", self.registrar, headers)

    # -- outcomes -------------------------------------------------------------------------

    def _registered(self, response: Response) -> None:
        granted = self._granted(response)
        now = self.clock.seconds()
        self.failures = 0
        self.state = RegistrationState.REGISTERED
        self.expires_at = now + granted
        self.last_reason = f"{response.status} {response.reason}"
        log.info(
            "Registered with gateway {label} as {aor} for {granted} s",
            label=self.gateway.label,
            aor=str(self.aor),
            granted=granted,
        )
        self._timer = self.clock.callLater(refresh_delay(granted), self._register)

    def _granted(self, response: Response) -> int:
        """The interval the registrar granted our contact (§10.2.4)."""
        try:
            contacts = parse_contacts(response.headers) or []
        except SipParseError:
            contacts = []
        for contact in contacts:
            uri, expires = contact.uri, (contact.param("expires") or "").strip()
            ours = (
                isinstance(uri, SipURI)
                and uri.user == self.gateway.username
                and f"{uri.host}:{uri.port or 5060}" == self.contact_host
            )
            if ours and expires.isascii() and expires.isdigit():
                return int(expires)
        header = (response.headers.get("Expires") or "").strip()
        if header.isascii() and header.isdigit():
            return int(header)
        return self.gateway.register_expires

    def _failed(self, reason: str, retry_after: float | None = None) -> None:
        self._pending = None
        if self.state is RegistrationState.STOPPED:
            return
        self.failures += 1
        self._peer_index = 0
        self._peers = ()  # locate again next time: the records may have changed
        self.state = RegistrationState.FAILED
        self.expires_at = None
        self.last_reason = reason
        delay = retry_delay(self.failures, retry_after)
        log.warn(
            "Registration with gateway {label} failed ({reason}); retrying in {delay:.0f} s",
            label=self.gateway.label,
            reason=reason,
            delay=delay,
        )
        self._timer = self.clock.callLater(delay, self._register)

    def _crashed(self, failure: Any) -> None:
        if failure.check(CancelledError):
            return
        log.failure("Registration with gateway {label}", failure, label=self.gateway.label)
        self._failed("internal error")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _retry_after(response: Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").split(";")[0].strip()
    return float(value) if value.isascii() and value.isdigit() else None
