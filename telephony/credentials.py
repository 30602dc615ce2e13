"""The REST API's credentials: given on the command line, or generated once.

Generated credentials have Plivo's shapes (the SDK refuses any other auth ID) and
are written to ``DATA_DIR/credentials.json`` with mode 0600, so that a restart
keeps them and nobody else on the host can read them.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import string
from pathlib import Path

import attrs

from telephony.config import ConfigError, parse_auth_id, parse_auth_token

__all__ = ("Credentials", "generate_credentials", "load_or_create_credentials")

_ID_ALPHABET = string.ascii_uppercase + string.digits
_TOKEN_ALPHABET = string.ascii_letters + string.digits
CREDENTIALS_FILE = "credentials.json"


@attrs.frozen(repr=False)
class Credentials:
    """An auth ID and token; ``repr`` hides the token so logs never carry it."""

    auth_id: str
    auth_token: str

    def __repr__(self) -> str:
        return f"Credentials(auth_id={self.auth_id!r}, auth_token=<hidden>)"

    def check(self, auth_id: str, auth_token: str) -> bool:
        """Compare a presented pair in constant time (both halves always compared)."""
        id_ok = hmac.compare_digest(auth_id.encode(), self.auth_id.encode())
        token_ok = hmac.compare_digest(auth_token.encode(), self.auth_token.encode())
        return id_ok and token_ok


def generate_credentials() -> Credentials:
    """``MA`` + 18 upper-case letters/digits, and a 40-character token."""
    auth_id = "MA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(40))
    return Credentials(auth_id, token)


def load_or_create_credentials(
    data_dir: Path, auth_id: str | None, auth_token: str | None
) -> tuple[Credentials, bool]:
    """Credentials for this server, and whether they were generated just now.

    Values given explicitly win over the stored file; a half given on the command line
    is completed from the file.  A new pair is generated only when nothing is stored.

    :raises ConfigError: the stored file is unreadable or malformed.
    """
    path = data_dir / CREDENTIALS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text("utf-8"))
            parse_auth_id(f"{path}: auth_id", stored["auth_id"])
            parse_auth_token(f"{path}: auth_token", stored["auth_token"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"auth-id: cannot read stored credentials {path}: {exc}") from None
    created = False
    if not stored:
        fresh = generate_credentials()
        stored = {"auth_id": fresh.auth_id, "auth_token": fresh.auth_token}
        _write_private(path, json.dumps(stored, indent=2) + "\n")
        created = True
    return Credentials(auth_id or stored["auth_id"], auth_token or stored["auth_token"]), created


def _write_private(path: Path, text: str) -> None:
    """Write *text* to a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
