"""A minimal SIP UAS for the sipp interop test (the SIP stack is another issue).

It answers one INVITE with 200 OK carrying the media session's SDP answer,
ignores the ACK and answers BYE with 200 OK.  No transactions, no auth: just
enough for ``sipp -sf`` to reach its media actions.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import DatagramProtocol

from media.sdp import parse_sdp
from media.session import RTPSession

_COPIED = ("via", "from", "call-id", "cseq")


def parse_message(data: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


class MinimalUAS(DatagramProtocol):
    """Answers INVITE with ``session``'s SDP answer; records what happened."""

    def __init__(self, session: RTPSession) -> None:
        self.session = session
        self.events: list[str] = []
        self._answer: bytes | None = None
        self.port = 0

    def _respond(self, headers: dict[str, list[str]], addr: Any, body: bytes = b"") -> None:
        lines = ["SIP/2.0 200 OK"]
        for name in _COPIED:
            lines += [f"{name.title()}: {value}" for value in headers.get(name, [])]
        to = headers.get("to", [""])[0]
        if ";tag=" not in to:
            to += ";tag=media-uas"
        lines.append(f"To: {to}")
        lines.append(f"Contact: <sip:media@127.0.0.1:{self.port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body, addr)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        start, headers, body = parse_message(datagram)
        method = start.split(" ", 1)[0]
        self.events.append(method)
        if method == "INVITE":
            if self._answer is None:
                answer = self.session.accept_offer(parse_sdp(body))
                self._answer = answer.to_bytes()
            self._respond(headers, addr, self._answer)
        elif method == "BYE":
            self._respond(headers, addr)
