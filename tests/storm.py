"""A registration storm over plain UDP: many endpoints log in at once, and the client
knows exactly which ones the server acknowledged (a 200) and with which contact.

For the crash tests: every binding that got a 200 must be in the database after the
server is killed, so the client must not guess.  One socket, one loop, no threads;
each endpoint sends REGISTER, answers the 401 with its digest (MD5, ``qop=auth``)
and records the 200.  No retransmissions: on loopback nothing is lost, and a request
left unanswered (the server died) simply is not acknowledged.

Everything is bounded: at most ``window`` logins in flight, a send rate, and a
wall-clock ``deadline``.  Nothing here uses the server's own SIP code.
"""

from __future__ import annotations

import secrets
import select
import socket
import time
from collections.abc import Callable, Sequence

import attrs

from tests.rawsip import digest_authorization, parse_response, request

__all__ = ("Login", "StormResult", "register_storm")


@attrs.frozen
class Login:
    """An endpoint to register: its SIP username and password."""

    username: str
    password: str


@attrs.frozen
class StormResult:
    """What the storm saw.

    :ivar acknowledged: username → the Contact URI a 200 confirmed (the last one).
    :ivar confirmed: logins that got a 200 (several may be one endpoint's devices).
    :ivar failed: username → the status of a final non-200 answer.
    :ivar unanswered: usernames whose login never got a final answer.
    :ivar seconds: wall time from the first send to the end.
    """

    acknowledged: dict[str, str]
    confirmed: int
    failed: dict[str, int]
    unanswered: list[str]
    sent: int
    seconds: float


@attrs.define
class _State:
    login: Login
    call_id: str
    contact: str
    cseq: int = 1


def register_storm(
    server: tuple[str, int],
    logins: Sequence[Login],
    *,
    rate: float = 500.0,
    window: int = 200,
    deadline: float = 60.0,
    grace: float = 1.0,
    expires: int = 3600,
    on_acknowledged: Callable[[int], None] | None = None,
) -> StormResult:
    """Register every login once from one loopback UDP socket.

    :param rate: new logins started per second, at most.
    :param window: logins in flight at once, at most.
    :param deadline: seconds the whole storm may take.
    :param grace: seconds to keep reading once nothing more is to be sent and no
        answer has come (answers the server sent just before dying are still read).
    :param on_acknowledged: called with the count after each 200 (a test kills the
        server from it, mid-storm).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    local: tuple[str, int] = sock.getsockname()
    uri = f"sip:{server[0]}:{server[1]}"
    pending: dict[str, _State] = {}
    acknowledged: dict[str, str] = {}
    failed: dict[str, int] = {}
    queue = list(logins)
    queue.reverse()
    sent = 0
    confirmed = 0
    start = time.monotonic()
    last_answer = start
    try:
        while time.monotonic() - start < deadline:
            now = time.monotonic()
            due = int((now - start) * rate) + 1 - (len(logins) - len(queue))
            while queue and due > 0 and len(pending) < window:
                login = queue.pop()
                state = _State(
                    login,
                    f"storm-{secrets.token_hex(6)}@127.0.0.1",
                    f"sip:{login.username}@{local[0]}:{local[1]};ob={secrets.token_hex(3)}",
                )
                pending[state.call_id] = state
                sock.sendto(_register(uri, state, local, expires), server)
                sent += 1
                due -= 1
            if not queue and not pending:
                break
            if now - last_answer > grace and (not queue or len(pending) >= window):
                break  # nothing answers any more (the server is gone)
            ready, _, _ = select.select([sock], [], [], 0.01)
            while ready:
                data = sock.recv(65535)
                last_answer = time.monotonic()
                if _answer(data, pending, acknowledged, failed, sock, server, uri, local, expires):
                    confirmed += 1
                    if on_acknowledged is not None:
                        on_acknowledged(len(acknowledged))
                ready, _, _ = select.select([sock], [], [], 0)
    finally:
        sock.close()
    unanswered = [s.login.username for s in pending.values()] + [q.username for q in queue]
    return StormResult(acknowledged, confirmed, failed, unanswered, sent, time.monotonic() - start)


def _register(
    uri: str, state: _State, local: tuple[str, int], expires: int, auth: str = ""
) -> bytes:
    extra = [f"Contact: <{state.contact}>", f"Expires: {expires}", "User-Agent: storm"]
    if auth:
        extra.append(f"Authorization: {auth}")
    return request(
        "REGISTER",
        uri,
        local=local,
        user=state.login.username,
        call_id=state.call_id,
        cseq=state.cseq,
        extra=extra,
    )


def _answer(
    data: bytes,
    pending: dict[str, _State],
    acknowledged: dict[str, str],
    failed: dict[str, int],
    sock: socket.socket,
    server: tuple[str, int],
    uri: str,
    local: tuple[str, int],
    expires: int,
) -> bool:
    """Handle one answer; True when it confirmed a login (a 200 listing its contact)."""
    response = parse_response(data)
    state = pending.get(response.get("Call-ID") or "")
    if state is None or response.status < 200:
        return False
    username = state.login.username
    if response.status == 401 and state.cseq == 1:
        auth = digest_authorization(
            response.challenge("MD5"),
            username=username,
            password=state.login.password,
            method="REGISTER",
            uri=uri,
        )
        state.cseq = 2
        sock.sendto(_register(uri, state, local, expires, auth), server)
        return False
    del pending[state.call_id]
    if response.status == 200 and any(state.contact in c for c in response.values("Contact")):
        acknowledged[username] = state.contact
        return True
    failed[username] = response.status
    return False
