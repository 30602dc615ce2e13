"""Digest authentication (RFC 2617, RFC 3261 §22, RFC 7616, RFC 8760): sans-IO.

* **HA1** = H(username ":" realm ":" password) is what we store, per algorithm (MD5 and
  SHA-256 HA1s are not interconvertible), never the password.
* **Nonces** are stateless: ``base64(timestamp ‖ salt ‖ MAC(secret, timestamp ‖ salt ‖
  realm))``, the MAC a 128-bit keyed BLAKE2b, the 8-byte random salt making every
  challenge's nonce unique.
  The server verifies one without having stored it, and knows its age: past
  :attr:`DigestAuthenticator.nonce_lifetime` it is *stale*, and the client gets a new
  challenge with ``stale=true`` to retry silently (RFC 2617 §3.2.1).
* **Replay**: with ``qop=auth`` every use of a nonce carries a growing ``nc``; we keep
  the highest ``nc`` seen per nonce (until the nonce expires) and refuse one that does
  not grow.  ``qop`` is required: without it no replay protection is possible.
* **No oracle**: an unknown user is checked against a dummy HA1, with the same
  constant-time comparison, and gets exactly the challenge a wrong password gets.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import secrets
import struct
from collections import deque
from collections.abc import Mapping

import attrs

from telephony.randompool import token_bytes
from telephony.sip._grammar import unquote

__all__ = (
    "AuthResult",
    "Credentials",
    "DigestAlgorithm",
    "DigestAuthenticator",
    "Verdict",
    "compute_ha1",
    "digest_params",
    "parse_authorization",
)


class DigestAlgorithm(enum.Enum):
    """Digest algorithms we offer, by their ``algorithm=`` token (RFC 8760)."""

    MD5 = "MD5"
    SHA256 = "SHA-256"

    def hash(self, data: bytes) -> str:
        """The lower-case hex digest of *data* under this algorithm."""
        return _HASHES[self](data, usedforsecurity=False).hexdigest()

    #: Members are singletons compared by identity: hash them by identity too, in C
    #: (Enum's own __hash__ is a Python function; these key the HA1 mappings).
    __hash__ = object.__hash__

    @classmethod
    def from_token(cls, token: str | None) -> DigestAlgorithm | None:
        """The algorithm named by an ``algorithm=`` value (absent means MD5)."""
        if token is None:
            return cls.MD5
        return _BY_TOKEN.get(token.strip().lower())


_BY_TOKEN = {"md5": DigestAlgorithm.MD5, "sha-256": DigestAlgorithm.SHA256}
#: hashlib's constructors, called directly (``hashlib.new`` looks the name up each time).
_HASHES = {DigestAlgorithm.MD5: hashlib.md5, DigestAlgorithm.SHA256: hashlib.sha256}


def compute_ha1(algorithm: DigestAlgorithm, username: str, realm: str, password: str) -> str:
    """HA1 for ``algorithm`` over ``username:realm:password`` (UTF-8)."""
    return algorithm.hash(f"{username}:{realm}:{password}".encode())


@attrs.frozen
class Credentials:
    """A parsed ``Authorization`` / ``Proxy-Authorization`` header (§25.1 ``credentials``)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    qop: str | None = None
    nc: str | None = None
    opaque: str | None = None


#: auth-param = token EQUAL ( token / quoted-string ), then a comma or the end.  The
#: quoted string is read possessively (``[^"\\]*+``): the same strings as
#: ``(?:[^"\\]|\\.)*``, without one backtracking step per character.
_AUTH_PARAM = re.compile(
    r'\s*([A-Za-z0-9\-_]+)\s*=\s*("[^"\\]*+(?:\\.[^"\\]*+)*+"|[^\s,]*)\s*(?:,|$)', re.S
)
#: One auth-param, the whole match captured too (to check that they cover the list).
_AUTH_PARAM_WHOLE = re.compile(rf"({_AUTH_PARAM.pattern})", re.S)
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
#: Longest Authorization header we read, in characters.
MAX_AUTHORIZATION_LENGTH = 2048


def digest_params(value: str) -> dict[str, str] | None:
    """The auth-params of a ``Digest`` header (credentials or challenge), names
    lower-cased, values as written (quoted strings still quoted); None when the
    header is too long, of another scheme, or unreadable."""
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    rest = rest.strip()
    # One scan in C instead of a Python step per parameter.  findall skips what does
    # not match, so the matches are the whole list only if their lengths add up to
    # it: then each began where the last ended, as a fullmatch would have read them.
    found = _AUTH_PARAM_WHOLE.findall(rest)
    if sum(len(whole) for whole, _, _ in found) != len(rest):
        return None
    return {name.lower(): raw for _, name, raw in found}


def parse_authorization(value: str) -> Credentials | None:
    """Parse ``Digest username="…", …``; None when it is not a readable Digest header."""
    params = digest_params(value)
    if params is None or any(name not in params for name in _REQUIRED):
        return None

    def optional(name: str) -> str | None:
        raw = params.get(name)
        return None if raw is None else unquote(raw)

    return Credentials(
        unquote(params["username"]),
        unquote(params["realm"]),
        unquote(params["nonce"]),
        unquote(params["uri"]),
        unquote(params["response"]),
        optional("algorithm"),
        optional("cnonce"),
        optional("qop"),
        optional("nc"),
        optional("opaque"),
    )


class Verdict(enum.Enum):
    """What to do with a request's credentials."""

    OK = "ok"
    #: No (usable) credentials, a wrong digest, an unknown user or a replay: challenge.
    CHALLENGE = "challenge"
    #: A correct digest over an expired nonce: challenge with ``stale=true``.
    STALE = "stale"


@attrs.frozen
class AuthResult:
    """The verdict, and the username the credentials claimed (for logs and throttling)."""

    verdict: Verdict
    username: str | None = None
    reason: str = ""


@attrs.define
class DigestAuthenticator:
    """Challenges and verifies digest credentials for one realm.

    :ivar nonce_lifetime: seconds a nonce stays fresh (then *stale*).
    :ivar max_tracked_nonces: nonces whose ``nc`` is remembered; the oldest are forgotten
        first (a forgotten nonce's next use is answered with ``stale=true``, so that a
        captured Authorization cannot be replayed once its nonce is forgotten).
    """

    realm: str
    secret: bytes = attrs.field(factory=lambda: secrets.token_bytes(32), repr=False)
    nonce_lifetime: float = 300.0
    max_tracked_nonces: int = 200_000
    algorithms: tuple[DigestAlgorithm, ...] = (DigestAlgorithm.SHA256, DigestAlgorithm.MD5)
    #: nonce → highest nc seen.
    _nc_seen: dict[str, int] = attrs.field(factory=dict, repr=False)
    #: The remembered nonces in the order they were first used, and when each was
    #: issued (two deques rather than one of tuples: 100,000 nonces, 8 MB less).
    _order: deque[str] = attrs.field(factory=deque, repr=False)
    _issued: deque[float] = attrs.field(factory=deque, repr=False)
    #: The latest issue time of a nonce forgotten to stay under ``max_tracked_nonces``:
    #: an untracked nonce issued before it may have been used already.
    _forgotten_until: float = attrs.field(default=-math.inf, repr=False)
    _dummy: Mapping[DigestAlgorithm, str] = attrs.field(init=False, repr=False)
    _realm_bytes: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._realm_bytes = self.realm.encode()
        token = secrets.token_hex(16)
        self._dummy = {a: compute_ha1(a, "nobody", self.realm, token) for a in DigestAlgorithm}

    # -- nonces --------------------------------------------------------------

    def make_nonce(self, now: float) -> str:
        """A nonce stamped with *now* (seconds), verifiable without state."""
        stamp = struct.pack(">d", now) + token_bytes(8)
        mac = self._mac(stamp)
        return base64.urlsafe_b64encode(stamp + mac).decode().rstrip("=")

    def _mac(self, stamp: bytes) -> bytes:
        """The nonce's 128-bit MAC over its stamp and the realm: keyed BLAKE2b, a MAC
        by design (RFC 7693 §2.5), at a third of HMAC-SHA256's cost here."""
        return hashlib.blake2b(stamp + self._realm_bytes, key=self.secret, digest_size=16).digest()

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """The nonce's age in seconds, or None if we did not issue it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        stamp, mac = raw[:16], raw[16:]
        expected = self._mac(stamp)
        if not hmac.compare_digest(mac, expected):
            return None
        return now - struct.unpack(">d", stamp[:8])[0]

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values: one per algorithm, preferred first (RFC 8760 §2.4).

        They depend only on the realm, the time and *stale*: the same for every user.
        """
        nonce = self.make_nonce(now)
        stale_param = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={a.value}, qop="auth"'
            f"{stale_param}"
            for a in self.algorithms
        ]

    # -- verification ----------------------------------------------------------

    def verify(
        self,
        method: str,
        header: str | Credentials | None,
        ha1_lookup: Mapping[DigestAlgorithm, str] | None,
        now: float,
    ) -> AuthResult:
        """Check an ``Authorization`` header (or its parsed :class:`Credentials`) for a
        request of *method*.

        :param ha1_lookup: the claimed user's stored HA1 per algorithm; None when the
            user does not exist (a dummy is checked instead, so timing does not tell).
        """
        if header is None:
            return AuthResult(Verdict.CHALLENGE, None, "no credentials")
        creds = header if isinstance(header, Credentials) else parse_authorization(header)
        if creds is None:
            return AuthResult(Verdict.CHALLENGE, None, "unreadable credentials")
        algorithm = DigestAlgorithm.from_token(creds.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return AuthResult(Verdict.CHALLENGE, creds.username, "unsupported algorithm")
        if creds.realm != self.realm:
            return AuthResult(Verdict.CHALLENGE, creds.username, "wrong realm")
        if (creds.qop or "").lower() != "auth" or not creds.cnonce or not creds.nc:
            return AuthResult(
                Verdict.CHALLENGE, creds.username, "qop=auth with cnonce and nc required"
            )
        if not _NC.fullmatch(creds.nc):
            return AuthResult(Verdict.CHALLENGE, creds.username, "bad nc")
        ha1 = (ha1_lookup or {}).get(algorithm) or self._dummy[algorithm]
        ha2 = algorithm.hash(f"{method}:{creds.uri}".encode())
        expected = algorithm.hash(
            f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:auth:{ha2}".encode()
        )
        digest_ok = hmac.compare_digest(expected, creds.response.lower())
        # Computed whatever the outcome, so that every failure costs the same.
        age = self._nonce_age(creds.nonce, now)
        if ha1_lookup is None or not digest_ok:
            return AuthResult(Verdict.CHALLENGE, creds.username, "wrong credentials")
        if age is None or age < -1.0 or age > self.nonce_lifetime:
            return AuthResult(Verdict.STALE, creds.username, "stale nonce")
        nc = int(creds.nc, 16)
        issued = now - age
        last = self._nc_seen.get(creds.nonce)
        if last is None and issued <= self._forgotten_until:
            return AuthResult(Verdict.STALE, creds.username, "nonce no longer tracked")
        if nc <= (last or 0):  # nc starts at 1
            return AuthResult(Verdict.CHALLENGE, creds.username, "replayed nonce count")
        self._remember(creds.nonce, nc, issued, now, new=last is None)
        return AuthResult(Verdict.OK, creds.username)

    def _remember(self, nonce: str, nc: int, issued: float, now: float, *, new: bool) -> None:
        """Record *nonce*'s highest ``nc``; *issued* is its stamp (kept, so that its age
        is known later without computing its HMAC again)."""
        seen, order, issued_at = self._nc_seen, self._order, self._issued
        seen[nonce] = nc
        if new:
            order.append(nonce)
            issued_at.append(issued)
        while len(order) > self.max_tracked_nonces:
            self._forgotten_until = max(self._forgotten_until, issued_at.popleft())
            seen.pop(order.popleft(), None)
        # Forget nonces that can only be stale now, from the first used.  One issued
        # long before its first use waits behind fresher ones: a little longer.
        while issued_at and now - issued_at[0] > self.nonce_lifetime:
            issued_at.popleft()
            seen.pop(order.popleft(), None)
