"""Digest authentication (RFC 2617, RFC 3261 §22, RFC 7616, RFC 8760).

Only what the directory needs today: the HA1 hashes we store instead of passwords.
HA1 = H(username ":" realm ":" password) for each algorithm we offer; MD5 and
SHA-256 HA1s are not interconvertible, so both are computed when a password is set.
"""

from __future__ import annotations

import enum
import hashlib

__all__ = ("DigestAlgorithm", "compute_ha1")


class DigestAlgorithm(enum.Enum):
    """Digest algorithms we offer, by their ``algorithm=`` token."""

    MD5 = "MD5"
    SHA256 = "SHA-256"

    def hash(self, data: bytes) -> str:
        """The lower-case hex digest of *data* under this algorithm."""
        name = "md5" if self is DigestAlgorithm.MD5 else "sha256"
        return hashlib.new(name, data, usedforsecurity=False).hexdigest()


def compute_ha1(algorithm: DigestAlgorithm, username: str, realm: str, password: str) -> str:
    """HA1 for ``algorithm`` over ``username:realm:password`` (UTF-8)."""
    return algorithm.hash(f"{username}:{realm}:{password}".encode())
