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

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony.directory import Directory, Endpoint
from telephony.directory.bindings import Binding
from telephony.location import LocationService
from telephony.sip.digest import DigestAlgorithm, DigestAuthenticator, Verdict
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.guard import SourceGuard
from telephony.sip.headers import Headers, parse_contacts
from telephony.sip.message import Request
from telephony.sip.transport import ServerTransactionHandle
from telephony.sip.uri import NameAddr, SipURI

__all__ = ("CredentialCache", "Registrar", "RegistrarPolicy")

log = Logger()


@attrs.frozen
class RegistrarPolicy:
    """Limits of registrations, in seconds and counts."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    #: Devices one endpoint may have registered at once.
    max_bindings: int = 10


class _RegisterRefusedError(SipError):
    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(reason, status)
        self.headers = list(headers)


class CredentialCache:
    """Endpoints' HA1 hashes by username, cached so a REGISTER needs no database read.

    Entries live ``ttl`` seconds (unknown users ``negative_ttl``, so that a scanner
    trying names costs one read per name and interval); the directory's change
    notifications drop an entry at once when its endpoint changes.  At most
    ``max_entries`` are kept.
    """

    def __init__(
        self,
        directory: Directory,
        clock: IReactorTime,
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        max_entries: int = 200_000,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, Endpoint | None]] = {}
        directory.subscribe(self.invalidate)

    def invalidate(self, username: str | None) -> None:
        """Forget one user (None: everyone)."""
        if username is None:
            self._entries.clear()
        else:
            self._entries.pop(username, None)

    def lookup(self, username: str) -> Deferred[Endpoint | None] | Endpoint | None:
        """The endpoint, from the cache when fresh (returned directly), else a Deferred."""
        now = self._clock.seconds()
        hit = self._entries.get(username)
        if hit is not None and hit[0] > now:
            return hit[1]

        def store(endpoint: Endpoint | None) -> Endpoint | None:
            if len(self._entries) >= self._max:
                self._entries.clear()
            ttl = self._ttl if endpoint is not None else self._negative_ttl
            self._entries[username] = (self._clock.seconds() + ttl, endpoint)
            return endpoint

        return self._directory.find_endpoint(username).addCallback(store)


class Registrar:
    """Handles REGISTER requests handed over by the SIP core."""

    def __init__(
        self,
        *,
        domains: Sequence[str],
        location: LocationService,
        credentials: CredentialCache,
        authenticator: DigestAuthenticator,
        guard: SourceGuard,
        clock: IReactorTime,
        policy: RegistrarPolicy | None = None,
    ) -> None:
        self.domains = {d.lower().strip("[]") for d in domains}
        self.location = location
        self.credentials = credentials
        self.authenticator = authenticator
        self.guard = guard
        self.clock = clock
        self.policy = policy or RegistrarPolicy()
        self.counters = {"registered": 0, "challenged": 0, "refused": 0, "auth_failures": 0}

    def handle(self, request: Request, txn: ServerTransactionHandle) -> Deferred[None]:
        """Process one REGISTER and answer it; the Deferred fires when it has answered."""
        d = Deferred.fromCoroutine(self._handle(request, txn))
        return d.addErrback(self._crashed, txn)

    def _crashed(self, failure: Failure, txn: ServerTransactionHandle) -> None:
        log.failure(
            "REGISTER failed unexpectedly (Call-ID {call_id})", failure, call_id=txn.request.call_id
        )
        txn.respond(500)

    async def _handle(self, request: Request, txn: ServerTransactionHandle) -> None:
        try:
            await self._register(request, txn)
        except _RegisterRefusedError as exc:
            self.counters["refused"] += 1
            txn.respond(exc.status_hint, exc.reason, Headers(exc.headers))
        except SipParseError as exc:
            self.counters["refused"] += 1
            txn.respond(400, exc.reason)

    async def _register(self, request: Request, txn: ServerTransactionHandle) -> None:
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
        endpoint = await self._authenticate(request, txn)
        if endpoint is None:
            return  # challenged
        if to_uri.user_unescaped != endpoint.username:
            raise _RegisterRefusedError(403, "Forbidden (not your address of record)")
        contacts = parse_contacts(request.headers)
        now = self.clock.seconds()
        header_expires = request.headers.get("Expires")

        def compute(current: list[Binding]) -> tuple[list[Binding], list[str], list[Binding]]:
            if contacts is None:
                return self._wildcard(request, header_expires, current)
            return self._contacts(
                request, txn, endpoint.username, contacts, header_expires, current, now
            )

        try:
            bindings = await self.location.update(endpoint.username, compute)
        except _RegisterRefusedError:
            raise
        except Exception:
            log.failure("Could not store the registration of {user}", user=endpoint.username)
            raise _RegisterRefusedError(
                500, "Server Internal Error (registration not stored)"
            ) from None
        headers = Headers()
        for binding in bindings:
            remaining = max(0, round(binding.expires_at - now))
            headers.add("Contact", f"{binding.contact};expires={remaining}")
        headers.add("Date", _http_date(now))
        self.counters["registered"] += 1
        txn.respond(200, None, headers)

    async def _authenticate(
        self, request: Request, txn: ServerTransactionHandle
    ) -> Endpoint | None:
        header = request.headers.get("Authorization")
        now = self.clock.seconds()
        endpoint: Endpoint | None = None
        if header is not None:
            from telephony.sip.digest import parse_authorization

            creds = parse_authorization(header)
            if creds is not None:
                found = self.credentials.lookup(creds.username)
                endpoint = await found if isinstance(found, Deferred) else found
        ha1s: Mapping[DigestAlgorithm, str] | None = None
        if endpoint is not None:
            ha1s = {
                DigestAlgorithm.MD5: endpoint.ha1_md5,
                DigestAlgorithm.SHA256: endpoint.ha1_sha256,
            }
        result = self.authenticator.verify(request.method, header, ha1s, now)
        if result.verdict is Verdict.OK:
            return endpoint
        if header is not None and result.verdict is Verdict.CHALLENGE:
            self.counters["auth_failures"] += 1
            log.info(
                "REGISTER from {host}:{port} for {user!r} refused: {reason}",
                host=txn.peer.host,
                port=txn.peer.port,
                user=result.username,
                reason=result.reason,
            )
            if self.guard.auth_failed(txn.peer.host, now):
                log.warn("Banned {host} after repeated authentication failures", host=txn.peer.host)
        self.counters["challenged"] += 1
        challenges = self.authenticator.challenges(now, stale=result.verdict is Verdict.STALE)
        txn.respond(401, None, Headers(("WWW-Authenticate", c) for c in challenges))
        return None

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
        by_uri = {b.contact_uri: b for b in current}
        parsed_current = {b.contact_uri: _contact_uri(b) for b in current}
        upserts: dict[str, Binding] = {}
        deletes: list[str] = []
        cseq = request.cseq.number
        user_agent = (request.headers.get("User-Agent") or "")[:200]
        for contact in contacts:
            expires = self._expires(contact, header_expires)
            existing = next(
                (
                    by_uri[k]
                    for k, u in parsed_current.items()
                    if u == contact.uri and k not in deletes
                ),
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
            upserts[key] = Binding(
                username=username,
                contact_uri=key,
                contact=str(attrs.evolve(contact, params=kept_params)),
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
        if raw is not None and raw.strip().isdigit():
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
