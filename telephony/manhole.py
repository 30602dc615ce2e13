"""The operators' shell: an SSH manhole (twisted.conch) over the live services.

Only SSH, only on a loopback address (checked in :mod:`telephony.config`), and only
with credentials the operator provides: an ``authorized_keys`` file (any user name,
the key decides) or a password file of PBKDF2 hashes made with::

    python -m telephony.manhole USERNAME >> manhole.passwd

The host key is generated once into the data directory (Ed25519, mode 0600), so
clients see the same key after every restart.
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.application import strports
from twisted.application.service import IService
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import credentials, error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

__all__ = (
    "AuthorizedKeysFile",
    "PasswordFileChecker",
    "hash_password",
    "load_or_create_host_key",
    "manhole_service",
)

log = Logger()

#: PBKDF2-HMAC-SHA256 iterations for new password hashes (OWASP 2023 guidance).
PBKDF2_ITERATIONS = 600_000
HOST_KEY_FILE = "manhole_host_key"


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (base64) for a password file line."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def _verify(password: bytes, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha256", password, base64.b64decode(salt, validate=True), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    """Checked for unknown users so that they cost the same time as known ones."""
    return hash_password(secrets.token_hex(16))


@implementer(ICredentialsChecker)
class PasswordFileChecker:
    """Checks user names and passwords against a file of ``user:pbkdf2_sha256$…`` lines.

    The file is re-read at each login, so edits apply without a restart.  The hash
    runs on a thread: 600,000 PBKDF2 rounds take about a third of a second.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, path: Path) -> None:
        self._path = path

    def _entries(self) -> dict[str, str]:
        entries = {}
        for line in self._path.read_text("utf-8").splitlines():
            user, sep, stored = line.strip().partition(":")
            if sep and user and not user.startswith("#"):
                entries[user] = stored
        return entries

    def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes | tuple[()]]:
        from twisted.internet.threads import deferToThread

        username = creds.username.decode("utf-8", "replace")
        stored = self._entries().get(username)

        def check() -> bool:
            ok = _verify(creds.password, stored if stored is not None else _dummy_hash())
            return ok and stored is not None

        def decide(ok: bool) -> bytes | tuple[()]:
            if not ok:
                log.warn("Manhole: failed password login for {user!r}", user=username)
                raise error.UnauthorizedLogin()
            return bytes(creds.username)

        return deferToThread(check).addCallback(decide)


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """Public keys from one ``authorized_keys`` file, valid for any user name.

    Re-read at each login; lines that are not keys are skipped.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def getAuthorizedKeys(self, username: bytes) -> Iterable[keys.Key]:
        found = []
        for line in self._path.read_bytes().splitlines():
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            try:
                found.append(keys.Key.fromString(line))
            except (keys.BadKeyError, ValueError, IndexError):
                continue
        return found


def load_or_create_host_key(data_dir: Path) -> keys.Key:
    """The manhole's SSH host key, generated on first use (Ed25519, mode 0600)."""
    path = data_dir / HOST_KEY_FILE
    if not path.exists():
        key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.toString("OPENSSH"))
        log.info("Manhole: generated SSH host key {path}", path=str(path))
    return keys.Key.fromFile(str(path))


class _ManholeFactory:
    """Builds one colored manhole per SSH session, over the shared *namespace*."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace

    def __call__(self) -> insults.ServerProtocol:
        return insults.ServerProtocol(manhole.ColoredManhole, self.namespace)


def manhole_service(
    endpoint: str,
    namespace: Mapping[str, Any],
    *,
    host_key: keys.Key,
    keys_file: Path | None = None,
    passwd_file: Path | None = None,
) -> IService:
    """An SSH manhole listening on *endpoint*, with the given credential files.

    :param namespace: the names an operator finds in the shell (shared, live objects).
    """
    checkers: list[ICredentialsChecker] = []
    if keys_file is not None:
        checkers.append(SSHPublicKeyChecker(AuthorizedKeysFile(keys_file)))
    if passwd_file is not None:
        checkers.append(PasswordFileChecker(passwd_file))
    if not checkers:
        raise ValueError("manhole: needs an authorized_keys file or a password file")
    realm = manhole_ssh.TerminalRealm()
    # Twisted types this as a class, but calls it as any zero-argument factory.
    realm.chainedProtocolFactory = _ManholeFactory(dict(namespace))  # type: ignore[assignment]
    factory = manhole_ssh.ConchFactory(portal.Portal(cast(portal.IRealm, realm), checkers))
    # Fresh dicts on the instance: the class attributes are shared by every factory.
    # (Twisted annotates the values as bytes; at run time they are Key objects.)
    factory.publicKeys = {host_key.sshType(): host_key.public()}
    factory.privateKeys = {host_key.sshType(): host_key}  # type: ignore[dict-item]
    service: IService = strports.service(endpoint, factory)
    return service


def main(argv: list[str] | None = None) -> int:
    """``python -m telephony.manhole USERNAME``: print a password file line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or ":" in args[0]:
        print("usage: python -m telephony.manhole USERNAME  (reads the password)", file=sys.stderr)
        return 2
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline()
    password = password.rstrip("\n")
    if not password:
        print("error: empty password", file=sys.stderr)
        return 2
    print(f"{args[0]}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
