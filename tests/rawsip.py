"""A tiny SIP client over plain sockets, for tests that need exact bytes on the wire.

It builds requests as text (so a test can break them on purpose), sends them over UDP
or TCP from a chosen loopback address, and reads raw responses.  Nothing here uses the
server's own SIP code: a bug there must not hide itself in the test.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from collections.abc import Sequence

import attrs

__all__ = (
    "RawResponse",
    "UDPClient",
    "digest_authorization",
    "parse_response",
    "request",
    "tcp_exchange",
)


def request(
    method: str,
    uri: str,
    *,
    local: tuple[str, int],
    user: str = "probe",
    domain: str = "127.0.0.1",
    call_id: str | None = None,
    cseq: int = 1,
    extra: Sequence[str] = (),
    body: bytes = b"",
    transport: str = "UDP",
) -> bytes:
    """A well-formed request; *extra* header lines go before Content-Length."""
    call_id = call_id or f"{secrets.token_hex(8)}@{local[0]}"
    branch = f"z9hG4bK{secrets.token_hex(8)}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *extra,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@attrs.frozen
class RawResponse:
    """A response as received: status line and headers in order, values untouched."""

    raw: bytes
    status_line: str
    headers: tuple[tuple[str, str], ...]

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def values(self, name: str) -> list[str]:
        """Every value of header *name* (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def challenge(self, algorithm: str = "MD5") -> dict[str, str]:
        """The parameters of the ``WWW-Authenticate`` for *algorithm*."""
        for value in self.values("WWW-Authenticate"):
            params = dict(
                (k.lower(), v.strip('"'))
                for k, v in re.findall(r'([A-Za-z-]+)=("[^"]*"|[^,\s]+)', value)
            )
            if params.get("algorithm", "MD5").upper() == algorithm.upper():
                return params
        raise AssertionError(f"no {algorithm} challenge in {self.raw!r}")


def parse_response(data: bytes) -> RawResponse:
    """Split a response into its status line and ``(name, value)`` header pairs."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return RawResponse(data, lines[0], tuple(headers))


def digest_authorization(
    challenge: dict[str, str],
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    algorithm: str = "MD5",
) -> str:
    """An ``Authorization`` value answering *challenge* (``qop=auth``, RFC 7616 §3.4)."""
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm.upper()]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode(), usedforsecurity=False).hexdigest()

    realm, nonce = challenge["realm"], challenge["nonce"]
    cnonce = secrets.token_hex(4)
    nc_text = f"{nc:08x}"
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    response = h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, cnonce="{cnonce}", qop=auth, '
        f"nc={nc_text}"
    )


class UDPClient:
    """A UDP socket bound to a loopback address; send requests, read responses."""

    def __init__(self, server: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.local: tuple[str, int] = self.sock.getsockname()

    def __enter__(self) -> UDPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def receive(self, timeout: float = 2.0) -> RawResponse | None:
        """The next datagram from the server, or None after *timeout* seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data, source = self.sock.recvfrom(65535)
                if source == self.server:
                    return parse_response(data)
        except TimeoutError:
            return None

    def exchange(self, data: bytes, timeout: float = 2.0) -> RawResponse | None:
        """Send, then wait for the first response (None after *timeout* seconds)."""
        self.send(data)
        return self.receive(timeout)

    def drain(self) -> None:
        """Drop whatever is waiting on the socket."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65535)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)


def tcp_exchange(server: tuple[str, int], data: bytes, timeout: float = 2.0) -> RawResponse | None:
    """Open a TCP connection, send *data*, read one response (framed by Content-Length)."""
    with socket.create_connection(server, timeout=timeout) as sock:
        sock.sendall(data)
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65535)
                if not chunk:
                    return None
                buffer += chunk
            head = buffer.split(b"\r\n\r\n", 1)[0]
            match = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
            length = int(match.group(1)) if match else 0
            while len(buffer) < len(head) + 4 + length:
                chunk = sock.recv(65535)
                if not chunk:
                    break
                buffer += chunk
        except TimeoutError:
            return None
        return parse_response(buffer)
