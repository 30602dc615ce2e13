"""In-process cost of one authenticated SIP registration, without sockets or a database.

Real REGISTER datagrams, shaped as sipp's ``register_auth.xml`` sends them, go through
the real :class:`~telephony.sip.stack.SipStack`, :class:`~telephony.sip.core.SipCore`,
:class:`~telephony.registrar.Registrar`, digest authenticator, credential cache,
location service and :class:`~telephony.directory.bindings.BindingStore` (group
commit included).  Only the edges are fakes: the UDP transport keeps the last datagram
it was given; the database runs each interaction against a cursor that does nothing
and "commits" every ``--batch`` registrations (as the group commit does under load);
the directory returns endpoints from a dict.  The clock advances by ``1 / --rate``
seconds per registration, so Timer J and the binding sweeper fire as in a server at
that rate.

Printed: microseconds of CPU per challenge (REGISTER without credentials → 401), per
authenticated REGISTER (→ 200, its share of the commit callbacks included) and per
whole registration, best of ``--repeat`` runs.  The client's own work (computing the
digest response) is outside the timed sections.  Nothing is asserted.  Run from the
repository root::

    python bench/register_inprocess.py
    python bench/register_inprocess.py --profile /tmp/register.prof
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted.internet.defer import Deferred, succeed  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from zope.interface import implementer  # noqa: E402

from telephony.auth import CredentialCache, RequestAuthenticator  # noqa: E402
from telephony.directory.bindings import BindingStore  # noqa: E402
from telephony.directory.models import Endpoint  # noqa: E402
from telephony.location import LocationService  # noqa: E402
from telephony.registrar import Registrar, RegistrarPolicy  # noqa: E402
from telephony.sip.core import SipCore  # noqa: E402
from telephony.sip.digest import DigestAlgorithm, DigestAuthenticator, compute_ha1  # noqa: E402
from telephony.sip.guard import SourceGuard, parse_networks  # noqa: E402
from telephony.sip.peer import ITransport, Peer  # noqa: E402
from telephony.sip.stack import SipStack  # noqa: E402

REALM = "127.0.0.1"
SERVER = "127.0.0.1:5060"
PASSWORD = "s3cret-password"  # noqa: S105 - the bench endpoints' password
_NONCE = re.compile(rb'nonce="([^"]+)"')
_STATUS = re.compile(rb"SIP/2.0 (\d{3}) ")


class _NullCursor:
    """Takes every statement and returns nothing, like an empty table."""

    def execute(self, sql: str, params: Any = ()) -> _NullCursor:
        return self

    def executemany(self, sql: str, rows: Any) -> _NullCursor:
        for _ in rows:
            pass
        return self

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None


class _FakeDatabase:
    """``run_interaction`` queued; :meth:`commit` runs the queue and fires its Deferreds."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[[Any], Any], Deferred[Any]]] = []

    def run_interaction(self, fn: Callable[[Any], Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((fn, d))
        return d

    def add_writer(self, drained: Callable[[], Deferred[None]]) -> None:
        """Group commits register here so that stopping can drain them; not used."""

    def commit(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            for fn, d in batch:
                d.callback(fn(_NullCursor()))


class _FakeDirectory:
    """Endpoints by username, found at once."""

    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = endpoints

    def subscribe(self, listener: Callable[[str | None], None]) -> None:
        pass

    def find_endpoint(self, username: str) -> Deferred[Endpoint | None]:
        return succeed(self.endpoints.get(username))


@implementer(ITransport)
class _LastDatagram:
    """Keeps the last datagram sent, and counts them."""

    def __init__(self) -> None:
        self.last = b""
        self.count = 0

    def send(self, data: bytes, peer: Peer) -> None:
        self.last = data
        self.count += 1


class Server:
    """The SIP side of the server as ``sipservice`` wires it, on fake edges."""

    def __init__(self, users: list[str]) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        endpoints = {
            u: Endpoint(
                endpoint_id=f"id-{u}",
                username=u,
                alias=u,
                realm=REALM,
                ha1_md5=compute_ha1(DigestAlgorithm.MD5, u, REALM, PASSWORD),
                ha1_sha256=compute_ha1(DigestAlgorithm.SHA256, u, REALM, PASSWORD),
                app_id=None,
                created_at="2025-01-01T00:00:00",
            )
            for u in users
        }
        self.db = _FakeDatabase()
        directory: Any = _FakeDirectory(endpoints)
        self.location = LocationService(BindingStore(self.db), clock=self.clock)  # type: ignore[arg-type]
        guard = SourceGuard(exempt=parse_networks("127.0.0.0/8, ::1"))
        # The server's default: one MD5 challenge (issue 11).
        digest = DigestAuthenticator(realm=REALM, algorithms=(DigestAlgorithm.MD5,))
        auth = RequestAuthenticator(
            CredentialCache(directory, self.clock), digest, guard, self.clock
        )
        self.registrar = Registrar(
            domains=[REALM, "localhost"],
            location=self.location,
            auth=auth,
            clock=self.clock,
            policy=RegistrarPolicy(min_expires=60, max_expires=3600, default_expires=3600),
        )
        core = SipCore(registrar=self.registrar, guard=guard, blocked_user_agents="")
        self.stack = SipStack(core, clock=self.clock)
        self.wire = _LastDatagram()
        self.stack.transports["udp"] = self.wire
        self.location.start()
        self.db.commit()


def _register(user: str, call: int, cseq: int, port: int, authorization: str | None) -> bytes:
    """A REGISTER as sipp's register_auth.xml writes it."""
    lines = [
        f"REGISTER sip:{SERVER} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{port}-{call}-{cseq};rport",
        f"From: <sip:{user}@{REALM}>;tag={port}SIPpTag00{call}",
        f"To: <sip:{user}@{REALM}>",
        f"Call-ID: {call}-{port}@127.0.0.1",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@127.0.0.1:{port}>",
    ]
    if authorization is not None:
        lines.append(authorization)
    lines += [
        "Max-Forwards: 70",
        "Expires: 3600",
        "User-Agent: sipp-bench",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _authorization(user: str, nonce: str, call: int) -> str:
    """sipp's ``[authentication]`` for MD5 with qop=auth."""
    uri = f"sip:{SERVER}"
    cnonce = f"{call:08x}"
    ha1 = hashlib.md5(f"{user}:{REALM}:{PASSWORD}".encode()).hexdigest()  # noqa: S324
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(  # noqa: S324
        f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()
    ).hexdigest()
    return (
        f'Authorization: Digest username="{user}",realm="{REALM}",cnonce="{cnonce}",'
        f'nc=00000001,qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",'
        "algorithm=MD5"
    )


def run(
    server: Server, users: list[str], count: int, batch: int, rate: float, start: int
) -> tuple[float, float, float]:
    """*count* registrations; returns total seconds in challenges, in REGISTERs with
    credentials, and in commits (the 200s are sent from the commits)."""
    stack, wire, clock = server.stack, server.wire, server.clock
    peers = [Peer("udp", "127.0.0.1", 5061 + i % 4) for i in range(len(users))]
    t_challenge = t_auth = t_commit = 0
    step = 1.0 / rate
    ok_before = server.registrar.counters["registered"]
    clock_ns = time.thread_time_ns  # CPU time: other processes on the core do not count
    for n in range(start, start + count):
        i = n % len(users)
        user, peer = users[i], peers[i]
        first = _register(user, n, 1, peer.port, None)
        t0 = clock_ns()
        stack.datagram_received(first, peer)
        t1 = clock_ns()
        t_challenge += t1 - t0
        match = _NONCE.search(wire.last)
        if match is None:
            raise SystemExit(f"no challenge: {wire.last[:200]!r}")
        second = _register(user, n, 2, peer.port, _authorization(user, match.group(1).decode(), n))
        t0 = clock_ns()
        stack.datagram_received(second, peer)
        t1 = clock_ns()
        t_auth += t1 - t0
        if (n + 1) % batch == 0:
            t0 = clock_ns()
            server.db.commit()
            t1 = clock_ns()
            t_commit += t1 - t0
        clock.advance(step)
    t0 = clock_ns()
    server.db.commit()
    t_commit += clock_ns() - t0
    ok = server.registrar.counters["registered"] - ok_before
    if ok != count:
        raise SystemExit(f"{count - ok} of {count} registrations failed; last: {wire.last[:300]!r}")
    status = _STATUS.match(wire.last)
    if status is None or status.group(1) != b"200":
        raise SystemExit(f"last answer was not 200: {wire.last[:300]!r}")
    return t_challenge / 1e9, t_auth / 1e9, t_commit / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000, help="endpoints (default 2000)")
    parser.add_argument(
        "--registrations", type=int, default=20_000, help="per run (default 20,000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is shown")
    parser.add_argument("--batch", type=int, default=20, help="registrations per commit")
    parser.add_argument("--rate", type=float, default=3000.0, help="simulated registrations/s")
    parser.add_argument("--gc", action="store_true", help="leave the garbage collector on")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one run")
    args = parser.parse_args(argv)
    users = [f"bench{i:012d}" for i in range(args.users)]
    server = Server(users)
    run(server, users, min(2000, args.registrations), args.batch, args.rate, 0)  # warm-up
    start = args.registrations
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(server, users, args.registrations, args.batch, args.rate, start)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"profile written to {args.profile}")
        return
    results = []
    for _ in range(args.repeat):
        if not args.gc:
            gc.collect()
            gc.disable()
        try:
            results.append(run(server, users, args.registrations, args.batch, args.rate, start))
        finally:
            gc.enable()
        start += args.registrations
    n = args.registrations
    per = [
        (c / n * 1e6, (a + m) / n * 1e6, (c + a + m) / n * 1e6, m / n * 1e6) for c, a, m in results
    ]
    best = min(per, key=lambda p: p[2])
    print(
        f"python {sys.version.split()[0]}, {n} registrations x {args.repeat} runs, "
        f"{args.users} users, commit every {args.batch}, gc {'on' if args.gc else 'off'}"
    )
    print(f"challenge (401)            {best[0]:7.1f} us")
    print(f"authenticated REGISTER     {best[1]:7.1f} us  (commit callbacks {best[3]:.1f} us)")
    print(
        f"whole registration         {best[2]:7.1f} us  "
        f"(median of runs {statistics.median(p[2] for p in per):.1f} us)"
    )


if __name__ == "__main__":
    main()
