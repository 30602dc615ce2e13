"""Answering digest challenges as a client (RFC 2617, RFC 3261 §22.2 and §22.3, RFC 7616,
RFC 8760): sans-IO.

A carrier answers our INVITE or REGISTER with 401 (``WWW-Authenticate``) or 407
(``Proxy-Authenticate``); :class:`DigestClient` turns that response into the
``Authorization`` / ``Proxy-Authorization`` headers of the request sent again, or says
why it will not:

* one answer per realm in the response, to the first challenge of that realm whose
  algorithm we know (RFC 8760 §2.4: challenges come preferred first);
* ``qop=auth`` when offered (else ``auth-int`` over the body, else the RFC 2069 form
  with no qop, which many carriers still send); ``-sess`` algorithms as RFC 7616 §3.4.2;
* ``nc`` counts our uses of each nonce; ``opaque`` is returned unchanged;
* a realm challenged again after we answered it means the credentials were refused,
  unless the new challenge says ``stale=true`` (the nonce expired; RFC 2617 §3.2.1),
  which is answered at most :data:`MAX_STALE_RETRIES` times.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

import attrs

from telephony.randompool import token_bytes
from telephony.sip._grammar import unquote
from telephony.sip.digest import digest_params
from telephony.sip.headers import Headers
from telephony.sip.message import Response

__all__ = (
    "MAX_STALE_RETRIES",
    "AuthRefused",
    "Challenge",
    "DigestClient",
    "RefusalReason",
    "parse_challenge",
)

#: Stale-nonce challenges answered in a row for one request before giving up [ours]:
#: a server that calls every nonce stale is broken, and we would loop forever.
MAX_STALE_RETRIES = 2


def _hasher(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        return hashlib.new(name, data, usedforsecurity=False).hexdigest()

    return digest


#: Algorithm token (lower case) → (hash function, session variant).  SHA-512-256 is
#: left out: not every OpenSSL build that Python links offers it.
_ALGORITHMS: dict[str, tuple[Callable[[bytes], str], bool]] = {
    "md5": (_hasher("md5"), False),
    "md5-sess": (_hasher("md5"), True),
    "sha-256": (_hasher("sha256"), False),
    "sha-256-sess": (_hasher("sha256"), True),
}


@attrs.frozen
class Challenge:
    """One parsed ``WWW-Authenticate`` / ``Proxy-Authenticate`` value.

    :ivar algorithm: as written (``MD5`` when absent, RFC 2617 §3.2.1).
    :ivar qop: the offered qop values, lower case; empty for the RFC 2069 form.
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @property
    def known(self) -> bool:
        """Whether we can answer it (its algorithm, and a qop we speak if any is offered)."""
        qop_ok = not self.qop or "auth" in self.qop or "auth-int" in self.qop
        return self.algorithm.lower() in _ALGORITHMS and qop_ok


def parse_challenge(value: str) -> Challenge | None:
    """A ``Digest`` challenge; None when it is another scheme or unreadable."""
    params = digest_params(value)
    if params is None or "realm" not in params or "nonce" not in params:
        return None
    qop = unquote(params["qop"]) if "qop" in params else ""
    return Challenge(
        realm=unquote(params["realm"]),
        nonce=unquote(params["nonce"]),
        algorithm=unquote(params.get("algorithm", "MD5")),
        qop=tuple(q.strip().lower() for q in qop.split(",") if q.strip()),
        opaque=unquote(params["opaque"]) if "opaque" in params else None,
        stale=unquote(params.get("stale", "false")).lower() == "true",
    )


class RefusalReason(enum.Enum):
    """Why a challenge is not answered."""

    NO_CREDENTIALS = "challenged, and no credentials are configured"
    NO_CHALLENGE = "no readable Digest challenge in the response"
    UNSUPPORTED = "no challenge in an algorithm or qop we support"
    OTHER_REALM = "challenged for a realm the credentials are not for"
    REFUSED = "credentials refused"
    TOO_MANY_STALE = "stale nonce after stale nonce"


@attrs.frozen
class AuthRefused:
    """We will not (or can no longer) answer: the request has failed authentication."""

    reason: RefusalReason
    realm: str | None = None

    def __str__(self) -> str:
        realm = f" (realm {self.realm!r})" if self.realm is not None else ""
        return f"{self.reason.value}{realm}"


@attrs.define
class DigestClient:
    """Answers the challenges to one request (and its resends) with one set of credentials.

    Use a new one per request we originate (an INVITE and its authenticated resends; a
    REGISTER refresh may keep one to count ``nc`` on a nonce it reuses).

    :ivar realm: answer only this realm; None: whatever realm challenges.
    :ivar cnonce: makes client nonces; random by default, fixed in tests.
    """

    username: str | None
    password: str | None = attrs.field(repr=False)
    realm: str | None = None
    cnonce: Callable[[], str] = attrs.field(default=lambda: token_bytes(12).hex(), repr=False)
    _answered: dict[str, str] = attrs.field(factory=dict, repr=False)  # realm → nonce
    _nc: dict[str, int] = attrs.field(factory=dict, repr=False)  # nonce → last nc
    _stale_in_a_row: int = 0

    def answer(
        self, response: Response, *, method: str, uri: str, body: bytes = b""
    ) -> Headers | AuthRefused:
        """The headers that answer *response* (a 401 or 407) for a resend of *method*
        to *uri* with *body*, or why not."""
        if self.username is None or self.password is None:
            return AuthRefused(RefusalReason.NO_CREDENTIALS)
        name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        parsed = [parse_challenge(v) for v in response.headers.get_all(name)]
        challenges = [c for c in parsed if c is not None]
        if not challenges:
            return AuthRefused(RefusalReason.NO_CHALLENGE)
        by_realm: dict[str, Challenge] = {}
        for challenge in challenges:
            if challenge.known and challenge.realm not in by_realm:
                by_realm[challenge.realm] = challenge
        if self.realm is not None:
            by_realm = {r: c for r, c in by_realm.items() if r == self.realm}
            if not by_realm:
                return AuthRefused(RefusalReason.OTHER_REALM, challenges[0].realm)
        if not by_realm:
            return AuthRefused(RefusalReason.UNSUPPORTED, challenges[0].realm)
        stale = False
        for realm, challenge in by_realm.items():
            if realm in self._answered and not challenge.stale:
                return AuthRefused(RefusalReason.REFUSED, realm)
            stale = stale or challenge.stale
        self._stale_in_a_row = self._stale_in_a_row + 1 if stale else 0
        if self._stale_in_a_row > MAX_STALE_RETRIES:
            return AuthRefused(RefusalReason.TOO_MANY_STALE, next(iter(by_realm)))
        header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        headers = Headers()
        for realm, challenge in by_realm.items():
            self._answered[realm] = challenge.nonce
            headers.add(
                header,
                self._credentials(challenge, self.username, self.password, method, uri, body),
            )
        return headers

    def _credentials(
        self, challenge: Challenge, username: str, password: str, method: str, uri: str, body: bytes
    ) -> str:
        hash_, session = _ALGORITHMS[challenge.algorithm.lower()]
        cnonce = self.cnonce()
        ha1 = hash_(f"{username}:{challenge.realm}:{password}".encode())
        if session:
            ha1 = hash_(f"{ha1}:{challenge.nonce}:{cnonce}".encode())
        qop = "auth" if "auth" in challenge.qop else ("auth-int" if challenge.qop else None)
        a2 = f"{method}:{uri}"
        if qop == "auth-int":
            a2 += f":{hash_(body)}"
        ha2 = hash_(a2.encode())
        fields = [
            f'username="{_quoted(username)}"',
            f'realm="{_quoted(challenge.realm)}"',
            f'nonce="{_quoted(challenge.nonce)}"',
            f'uri="{_quoted(uri)}"',
        ]
        if qop is None:
            response = hash_(f"{ha1}:{challenge.nonce}:{ha2}".encode())
        else:
            nc = f"{self._nc.get(challenge.nonce, 0) + 1:08x}"
            self._nc[challenge.nonce] = int(nc, 16)
            response = hash_(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
        fields.append(f'response="{response}"')
        fields.append(f"algorithm={challenge.algorithm}")
        if qop is not None:
            fields += [f'cnonce="{cnonce}"', f"qop={qop}", f"nc={nc}"]
        if challenge.opaque is not None:
            fields.append(f'opaque="{_quoted(challenge.opaque)}"')
        return "Digest " + ", ".join(fields)


def _quoted(text: str) -> str:
    """*text* escaped for a quoted-string (RFC 3261 §25.1)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
