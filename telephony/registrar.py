"""The registrar (RFC 3261 §10.3): REGISTER → bindings in the location service.

Steps, in the RFC's order: the Request-URI must name our domain; the request is
authenticated with digest (401, MD5 and SHA-256); the authenticated user must own
the address-of-record in To; Contact ``*`` removes everything (only with
``Expires: 0``); each contact gets its expiry from its ``expires`` parameter, the
Expires header or our default, clamped to our maximum, with 423 below our minimum;
Call-ID and CSeq order is enforced per binding; the change commits all or nothing;
the 200 lists every current binding.  The device that logged in last (a new binding
or a new Call-ID) is where the endpoint's calls go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony.auth import RequestAuthenticator
from telephony.directory import Endpoint
from telephony.directory.bindings import Binding
from telephony.location import LocationBusyError, LocationService
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.headers import Headers, parse_contacts
from telephony.sip.message import Request
from telephony.sip.stack import ServerTransactionHandle
from telephony.sip.uri import NameAddr, SipURI

__all__ = ("Registrar", "RegistrarPolicy")

log = Logger()


@attrs.frozen
class RegistrarPolicy:
    """Limits of registrations, in seconds and counts."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    #: Devices one endpoint may have registered at once.
    max_bindings: int = 10


#: Seconds a phone is asked to wait (``Retry-After`` of a 503) when too many
#: REGISTERs of its endpoint are already waiting to be stored [ours].
BUSY_RETRY_AFTER = 5


class _RegisterRefusedError(SipError):
    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(reason, status)
        self.headers = list(headers)


class Registrar:
    """Handles REGISTER requests handed over by the SIP core."""

    def __init__(
        self,
        *,
        domains: Sequence[str],
        location: LocationService,
        auth: RequestAuthenticator,
        clock: IReactorTime,
        policy: RegistrarPolicy | None = None,
    ) -> None:
        self.domains = {d.lower().strip("[]") for d in domains}
        self.location = location
        self.auth = auth
        self.clock = clock
        self.policy = policy or RegistrarPolicy()
        self.counters = {"registered": 0, "refused": 0}
        self._date: tuple[int, str] = (-1, "")

    def handle(self, request: Request, txn: ServerTransactionHandle) -> Deferred[None]:
        """Process one REGISTER and answer it; the Deferred fires when it has answered.

        A REGISTER without credentials (the first of every login) is challenged at
        once, without a lookup: half of all REGISTERs take this path.  With
        credentials of a cached user, everything up to the store's commit runs at
        once too; only the answer waits for the commit.  (No coroutine: its
        machinery was a tenth of a registration's cost.)
        """
        try:
            d = self._handle(request, txn)
        except Exception:
            d = fail()
        if d.called and not isinstance(d.result, Failure):
            return d  # answered at once (a challenge, a refusal): nothing can fail later
        return d.addErrback(self._crashed, txn)

    def _handle(self, request: Request, txn: ServerTransactionHandle) -> Deferred[None]:
        try:
            to_uri = self._address_of_record(request)
        except (_RegisterRefusedError, SipParseError) as exc:
            self._refuse(txn, exc)
            return succeed(None)
        if not self.auth.has_credentials(request):
            self.auth.challenge(txn)
            return succeed(None)
        found = self.auth.authenticate(request, txn)
        if isinstance(found, Deferred):
            return found.addCallback(self._update, request, txn, to_uri)
        return self._update(found, request, txn, to_uri)

    def _address_of_record(self, request: Request) -> SipURI:
        """The To URI, after checking that the request and it name our domain."""
        uri = request.uri
        if not isinstance(uri, SipURI) or uri.host_unbracketed not in self.domains:
            raise _RegisterRefusedError(404, "Not Found (not our domain)")
        to_uri = request.to.uri
        if (
            not isinstance(to_uri, SipURI)
            or not to_uri.user
            or to_uri.host_unbracketed not in self.domains
        ):
            raise _RegisterRefusedError(404, "Not Found (address of record)")
        return to_uri

    def _crashed(self, failure: Failure, txn: ServerTransactionHandle) -> None:
        log.failure(
            "REGISTER failed unexpectedly (Call-ID {call_id})", failure, call_id=txn.request.call_id
        )
        txn.respond(500)

    def _refuse(self, txn: ServerTransactionHandle, exc: SipError) -> None:
        """Answer a refused REGISTER: our refusal's status, or 400 for a parse error."""
        self.counters["refused"] += 1
        headers = Headers(exc.headers) if isinstance(exc, _RegisterRefusedError) else None
        txn.respond(exc.status_hint, exc.reason, headers)

    def _update(
        self,
        endpoint: Endpoint | None,
        request: Request,
        txn: ServerTransactionHandle,
        to_uri: SipURI,
    ) -> Deferred[None]:
        """Compute and store the authenticated *endpoint*'s new bindings; answer once
        they are committed (or refused)."""
        if endpoint is None:
            return succeed(None)  # challenged
        try:
            if to_uri.user_unescaped != endpoint.username:
                raise _RegisterRefusedError(403, "Forbidden (not your address of record)")
            contacts = parse_contacts(request.headers)
        except (_RegisterRefusedError, SipParseError) as exc:
            self._refuse(txn, exc)
            return succeed(None)
        now = txn.now
        header_expires = request.headers.get("Expires")
        username = endpoint.username

        def compute(current: list[Binding]) -> tuple[list[Binding], list[str], list[Binding]]:
            if contacts is None:
                return self._wildcard(request, header_expires, current)
            return self._contacts(request, txn, username, contacts, header_expires, current, now)

        d = self.location.update(username, compute)
        return d.addCallbacks(
            self._stored,
            self._not_stored,
            callbackArgs=(txn, now),
            errbackArgs=(txn, username),
        )

    def _stored(self, bindings: list[Binding], txn: ServerTransactionHandle, now: float) -> None:
        """Answer 200 with every current binding (§10.3 step 8)."""
        headers = Headers()
        for binding in bindings:
            remaining = max(0, round(binding.expires_at - now))
            headers.add("Contact", f"{binding.contact};expires={remaining}")
        headers.add("Date", self._http_date(now))
        self.counters["registered"] += 1
        txn.respond(200, None, headers)

    def _not_stored(self, failure: Failure, txn: ServerTransactionHandle, username: str) -> None:
        """Answer a refusal from ``compute``, 503 when the endpoint has too many
        changes waiting, or 500 when the store failed."""
        error = failure.value
        if isinstance(error, LocationBusyError):
            error = _RegisterRefusedError(
                503,
                "Service Unavailable (registrations of this user in progress)",
                [("Retry-After", str(BUSY_RETRY_AFTER))],
            )
        elif not isinstance(error, _RegisterRefusedError):
            log.failure("Could not store the registration of {user}", failure, user=username)
            error = _RegisterRefusedError(500, "Server Internal Error (registration not stored)")
        self._refuse(txn, error)

    def _http_date(self, now: float) -> str:
        """The Date header for *now*, formatted once per second."""
        second = int(now)
        if self._date[0] != second:
            self._date = (second, _http_date(second))
        return self._date[1]

    def _wildcard(
        self, request: Request, header_expires: str | None, current: list[Binding]
    ) -> tuple[list[Binding], list[str], list[Binding]]:
        if (header_expires or "").strip() != "0":
            raise _RegisterRefusedError(400, "Bad Request (Contact: * needs Expires: 0)")
        cseq = request.cseq.number
        for binding in current:
            if binding.call_id == request.call_id and cseq <= binding.cseq:
                raise _RegisterRefusedError(500, "Server Internal Error (CSeq out of order)")
        return [], [b.contact_uri for b in current], []

    def _contacts(
        self,
        request: Request,
        txn: ServerTransactionHandle,
        username: str,
        contacts: list[NameAddr],
        header_expires: str | None,
        current: list[Binding],
        now: float,
    ) -> tuple[list[Binding], list[str], list[Binding]]:
        parsed_current = [(b, _contact_uri(b)) for b in current]
        upserts: dict[str, Binding] = {}
        deletes: list[str] = []
        cseq = request.cseq.number
        user_agent = (request.headers.get("User-Agent") or "")[:200]
        for contact in contacts:
            expires = self._expires(contact, header_expires)
            existing = next(
                (b for b, u in parsed_current if u == contact.uri and b.contact_uri not in deletes),
                None,
            )
            if (
                existing is not None
                and existing.call_id == request.call_id
                and cseq <= existing.cseq
            ):
                raise _RegisterRefusedError(500, "Server Internal Error (CSeq out of order)")
            if expires == 0:
                if existing is not None:
                    deletes.append(existing.contact_uri)
                    upserts.pop(existing.contact_uri, None)
                continue
            key = existing.contact_uri if existing is not None else str(contact.uri)
            same_device = existing is not None and existing.call_id == request.call_id
            registered_at = existing.registered_at if same_device and existing else now
            kept_params = tuple((k, v) for k, v in contact.params if k.lower() != "expires")
            kept = NameAddr(contact.uri, contact.display, kept_params, contact.bracketed)
            upserts[key] = Binding(
                username=username,
                contact_uri=key,
                contact=str(kept),
                expires_at=now + expires,
                registered_at=registered_at,
                call_id=request.call_id,
                cseq=cseq,
                user_agent=user_agent,
                transport=txn.peer.transport,
                source_host=txn.peer.host,
                source_port=txn.peer.port,
            )
        remaining = {b.contact_uri for b in current} - set(deletes) | set(upserts)
        if len(remaining) > self.policy.max_bindings:
            raise _RegisterRefusedError(
                403, f"Forbidden (at most {self.policy.max_bindings} devices)"
            )
        result = [
            b for b in current if b.contact_uri not in deletes and b.contact_uri not in upserts
        ]
        result.extend(upserts.values())
        result.sort(key=lambda b: b.registered_at, reverse=True)
        return list(upserts.values()), deletes, result

    def _expires(self, contact: NameAddr, header_expires: str | None) -> int:
        raw = contact.param("expires")
        if raw is None:
            raw = header_expires
        value = self.policy.default_expires
        if raw is not None and raw.strip().isascii() and raw.strip().isdigit():
            value = min(int(raw.strip()), 2**32 - 1)
        if 0 < value < self.policy.min_expires:
            raise _RegisterRefusedError(
                423, "Interval Too Brief", [("Min-Expires", str(self.policy.min_expires))]
            )
        return min(value, self.policy.max_expires)


def _contact_uri(binding: Binding) -> Any:
    from telephony.sip.uri import parse_name_addr

    try:
        return parse_name_addr(binding.contact).uri
    except SipParseError:
        return binding.contact_uri


def _http_date(now: float) -> str:
    from email.utils import formatdate

    return formatdate(now, usegmt=True)
