"""Digest authentication of SIP requests against the directory, shared by the registrar
(401 / Authorization, for REGISTER) and the call layer (407 / Proxy-Authorization, for
INVITE).  Failures with credentials count towards the source guard's ban.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from telephony.directory import Directory, Endpoint
from telephony.sip.digest import (
    Credentials,
    DigestAlgorithm,
    DigestAuthenticator,
    Verdict,
    parse_authorization,
)
from telephony.sip.guard import SourceGuard
from telephony.sip.headers import Headers
from telephony.sip.message import Request
from telephony.sip.stack import ServerTransactionHandle

__all__ = ("CredentialCache", "RequestAuthenticator")

log = Logger()


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
        # An OrderedDict, not a dict: the sweep takes the oldest entry again and again,
        # and a dict's iteration walks over every slot deleted at its front since its
        # last resize (18 us per REGISTER with 48,000 entries, against 0.24 us).
        self._entries: OrderedDict[str, tuple[float, Endpoint | None]] = OrderedDict()
        directory.subscribe(self.invalidate)

    def _sweep(self, now: float, most: int = 8) -> None:
        """Drop up to ``most`` expired entries from the oldest end.

        Entries are kept in insertion order, which is expiry order for each TTL, so
        the cache holds about the endpoints seen in the last ``ttl`` seconds rather
        than every endpoint that ever registered (100,000 of them took ~85 MB).
        A short negative entry behind a long positive one waits for it: at most
        ``ttl`` seconds more.
        """
        entries = self._entries
        for _ in range(most):
            oldest = next(iter(entries), None)
            if oldest is None or entries[oldest][0] > now:
                return
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

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
            entries = self._entries
            now = self._clock.seconds()
            self._sweep(now)
            if len(entries) >= self._max:
                entries.clear()
            ttl = self._ttl if endpoint is not None else self._negative_ttl
            entries[username] = (now + ttl, endpoint)
            entries.move_to_end(username)  # last: the entries stay in expiry order
            return endpoint

        return self._directory.find_endpoint(username).addCallback(store)


class RequestAuthenticator:
    """Challenges or verifies a request's digest credentials.

    :param proxy: use 407 / ``Proxy-Authenticate`` / ``Proxy-Authorization`` (for
        INVITE and other requests to a proxy-like server) instead of 401.
    """

    def __init__(
        self,
        credentials: CredentialCache,
        digest: DigestAuthenticator,
        guard: SourceGuard,
        clock: IReactorTime,
    ) -> None:
        self.credentials = credentials
        self.digest = digest
        self.guard = guard
        self.clock = clock
        self.counters = {"challenged": 0, "auth_failures": 0, "authenticated": 0}

    async def check(
        self, request: Request, txn: ServerTransactionHandle, *, proxy: bool = False
    ) -> Endpoint | None:
        """The authenticated endpoint, or None after answering with a challenge."""
        result = self.authenticate(request, txn, proxy=proxy)
        return await result if isinstance(result, Deferred) else result

    def authenticate(
        self, request: Request, txn: ServerTransactionHandle, *, proxy: bool = False
    ) -> Endpoint | Deferred[Endpoint | None] | None:
        """What :meth:`check` gives, at once when the user's credentials are cached
        (the common case: no coroutine, no Deferred), else as a Deferred."""
        header = request.headers.get("Proxy-Authorization" if proxy else "Authorization")
        now = txn.now
        creds: Credentials | str | None = header
        if header is not None:
            creds = parse_authorization(header) or header
            if isinstance(creds, Credentials):
                found = self.credentials.lookup(creds.username)
                if isinstance(found, Deferred):
                    return found.addCallback(self._verify, request, txn, creds, now, proxy)
                return self._verify(found, request, txn, creds, now, proxy)
        return self._verify(None, request, txn, creds, now, proxy)

    def _verify(
        self,
        endpoint: Endpoint | None,
        request: Request,
        txn: ServerTransactionHandle,
        creds: Credentials | str | None,
        now: float,
        proxy: bool,
    ) -> Endpoint | None:
        ha1s: Mapping[DigestAlgorithm, str] | None = None
        if endpoint is not None:
            ha1s = {
                DigestAlgorithm.MD5: endpoint.ha1_md5,
                DigestAlgorithm.SHA256: endpoint.ha1_sha256,
            }
        result = self.digest.verify(request.method, creds, ha1s, now)
        if result.verdict is Verdict.OK:
            self.counters["authenticated"] += 1
            return endpoint
        if creds is not None and result.verdict is Verdict.CHALLENGE:
            self.counters["auth_failures"] += 1
            log.info(
                "{method} from {host}:{port} for {user!r} refused: {reason}",
                method=request.method,
                host=txn.peer.host,
                port=txn.peer.port,
                user=result.username,
                reason=result.reason,
            )
            if self.guard.auth_failed(txn.peer.host, now):
                log.warn("Banned {host} after repeated authentication failures", host=txn.peer.host)
        self.challenge(
            txn, proxy=proxy, stale=result.verdict is Verdict.STALE, stateless=creds is None
        )
        return None

    def challenge(
        self,
        txn: ServerTransactionHandle,
        *,
        proxy: bool = False,
        stale: bool = False,
        stateless: bool = True,
    ) -> None:
        """Answer with a fresh challenge (401, or 407 with *proxy*).

        *stateless* (for a request without credentials): answered as a stateless UAS
        (:meth:`~telephony.sip.stack.ServerTransactionHandle.respond_statelessly`).
        A refusal of credentials stays stateful, so that a retransmission of the same
        wrong credentials is not counted twice against its source.
        """
        self.counters["challenged"] += 1
        challenges = self.digest.challenges(txn.now, stale=stale)
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        respond = txn.respond_statelessly if stateless else txn.respond
        respond(407 if proxy else 401, None, Headers((name, c) for c in challenges))

    @staticmethod
    def has_credentials(request: Request, *, proxy: bool = False) -> bool:
        """Whether the request carries an Authorization (Proxy-Authorization) header."""
        return (
            request.headers.get("Proxy-Authorization" if proxy else "Authorization")
        ) is not None
