"""The registrar and the SIP core on a real SQLite store, with time on a ``task.Clock``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.task import Clock

from telephony.auth import CredentialCache, RequestAuthenticator
from telephony.directory import Directory
from telephony.directory.bindings import BindingStore
from telephony.directory.database import Database
from telephony.location import LocationBusyError, LocationService
from telephony.registrar import Registrar, RegistrarPolicy
from telephony.sip.core import SipCore
from telephony.sip.digest import DigestAuthenticator
from telephony.sip.guard import SourceGuard, parse_networks
from telephony.sip.message import Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import SipStack
from tests.sip.helpers import RecordingTransport

ensure = pytest_twisted.ensureDeferred
DOMAIN = "example.test"
PHONE = Peer("udp", "192.0.2.10", 5060)


def digest_response(
    challenge: str,
    user: str,
    password: str,
    *,
    method: str = "REGISTER",
    uri: str = f"sip:{DOMAIN}",
    nc: int = 1,
    cnonce: str = "c0ffee",
    realm: str | None = None,
) -> str:
    """What a phone answers to *challenge* (a WWW-Authenticate value)."""
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge))
    algorithm = params["algorithm"]
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    realm = realm or params["realm"]
    ha1 = hx(f"{user}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    response = hx(f"{ha1}:{params['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{params["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, cnonce="{cnonce}", qop=auth, nc={ncs}'
    )


@attrs.define
class Phone:
    """Drives REGISTERs through the real stack and waits for the registrar."""

    stack: SipStack
    transport: RecordingTransport
    pending: list[Deferred[Any]]
    clock: Clock
    location: LocationService
    guard: SourceGuard
    peer: Peer = PHONE
    _branch: int = 0
    #: The last request's bytes and where it came from, for :meth:`retransmit`.
    _last: tuple[bytes, Peer] | None = None

    async def send(
        self,
        method: str = "REGISTER",
        *,
        user: str,
        call_id: str = "reg-1",
        cseq: int = 1,
        contact: str | None = None,
        expires: str | None = "300",
        auth: str | None = None,
        user_agent: str = "TestPhone/1.0",
        to_user: str | None = None,
        uri: str = f"sip:{DOMAIN}",
        peer: Peer | None = None,
    ) -> Response | None:
        self._branch += 1
        peer = peer or self.peer
        contact = contact if contact is not None else f"<sip:{user}@{peer.host}:{peer.port}>"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bK{self._branch}x;rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag=ft{self._branch}",
            f"To: <sip:{to_user or user}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"User-Agent: {user_agent}",
        ]
        if contact:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth:
            lines.append(f"Authorization: {auth}")
        self._last = (("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)
        return await self._deliver(*self._last)

    async def retransmit(self) -> Response | None:
        """The last request again, byte for byte (same branch): what a phone does
        when it has not heard the answer."""
        assert self._last is not None
        return await self._deliver(*self._last)

    async def _deliver(self, data: bytes, peer: Peer) -> Response | None:
        before = len(self.transport.sent)
        self.stack.datagram_received(data, peer)
        while self.pending:
            batch, self.pending[:] = list(self.pending), []
            await gatherResults(batch)
        if len(self.transport.sent) == before:
            return None
        message = parse_datagram(self.transport.sent[-1][1])
        assert isinstance(message, Response)
        return message

    async def register(self, user: str, password: str, **kw: Any) -> Response:
        challenge = await self.send(user=user, **kw)
        assert challenge is not None
        assert challenge.status == 401
        header = challenge.headers.get_all("WWW-Authenticate")[0]
        kw["cseq"] = kw.get("cseq", 1) + 1
        ok = await self.send(user=user, auth=digest_response(header, user, password), **kw)
        assert ok is not None
        return ok


@pytest_twisted.async_yield_fixture
async def phone(database: Database, directory: Directory) -> AsyncIterator[Phone]:
    clock = Clock()
    clock.advance(1_800_000_000)
    location = LocationService(BindingStore(database), clock=clock)
    await location.start()
    guard = SourceGuard(exempt=parse_networks("127.0.0.0/8"))
    auth = RequestAuthenticator(
        CredentialCache(directory, clock), DigestAuthenticator(realm=DOMAIN), guard, clock
    )
    registrar = Registrar(
        domains=[DOMAIN],
        location=location,
        auth=auth,
        clock=clock,
        policy=RegistrarPolicy(min_expires=60, max_expires=3600),
    )
    pending: list[Deferred[Any]] = []
    handle = registrar.handle
    registrar.handle = lambda request, txn: pending.append(handle(request, txn))  # type: ignore[method-assign]
    core = SipCore(registrar=registrar, guard=guard, blocked_user_agents="(VaxSIPUserAgent|Ozeki)")
    stack = SipStack(core, clock=clock)
    transport = RecordingTransport(clock)
    stack.transports["udp"] = transport
    yield Phone(stack, transport, pending, clock, location, guard)
    location.stop()
    stack.stop()


async def _endpoint(directory: Directory, name: str = "alice", password: str = "s3cret") -> str:
    return (await directory.create_endpoint(name, password, name.capitalize())).username


@pytest.mark.parametrize("first", ["SHA-256", "MD5"])
@ensure
async def test_register_with_each_algorithm(phone: Phone, directory: Directory, first: str) -> None:
    user = await _endpoint(directory)
    challenge = await phone.send(user=user)
    assert challenge is not None
    assert (challenge.status, challenge.reason) == (401, "Unauthorized")
    offered = challenge.headers.get_all("WWW-Authenticate")
    assert [re.search(r"algorithm=([\w-]+)", o).group(1) for o in offered] == ["SHA-256", "MD5"]  # type: ignore[union-attr]
    assert all('qop="auth"' in o for o in offered)
    header = next(o for o in offered if f"algorithm={first}" in o)
    ok = await phone.send(user=user, cseq=2, auth=digest_response(header, user, "s3cret"))
    assert ok is not None
    assert ok.status == 200
    assert ok.headers.get_all("Contact") == [f"<sip:{user}@192.0.2.10:5060>;expires=300"]
    assert "Date" in ok.headers
    binding = phone.location.latest(user)
    assert binding is not None
    assert binding.expires_at == phone.clock.seconds() + 300
    assert binding.user_agent == "TestPhone/1.0"


@ensure
async def test_unknown_user_and_wrong_password_look_the_same(
    phone: Phone, directory: Directory
) -> None:
    user = await _endpoint(directory)
    replies = []
    for name, password in ((user, "wrong"), ("ghost123456789012", "s3cret")):
        challenge = await phone.send(user=name, call_id=f"c-{name}")
        assert challenge is not None
        header = challenge.headers.get_all("WWW-Authenticate")[0]
        reply = await phone.send(
            user=name, call_id=f"c-{name}", cseq=2, auth=digest_response(header, name, password)
        )
        assert reply is not None
        replies.append(reply)

    def shape(r: Response) -> tuple[Any, ...]:
        names = [k for k, _ in r.headers if k not in ("Content-Length",)]
        challenges = [
            re.sub(r'nonce="[^"]+"', "", v) for v in r.headers.get_all("WWW-Authenticate")
        ]
        return (r.status, r.reason, names, challenges)

    assert shape(replies[0]) == shape(replies[1])
    assert replies[0].status == 401
    assert phone.location.latest(user) is None


@ensure
async def test_stale_nonce_gets_stale_true_and_retry_works(
    phone: Phone, directory: Directory
) -> None:
    user = await _endpoint(directory)
    challenge = await phone.send(user=user)
    header = challenge.headers.get_all("WWW-Authenticate")[1]  # type: ignore[union-attr]
    phone.clock.advance(301)
    stale = await phone.send(user=user, cseq=2, auth=digest_response(header, user, "s3cret"))
    assert stale is not None
    assert stale.status == 401
    assert all("stale=true" in v for v in stale.headers.get_all("WWW-Authenticate"))
    fresh = stale.headers.get_all("WWW-Authenticate")[1]
    ok = await phone.send(user=user, cseq=3, auth=digest_response(fresh, user, "s3cret"))
    assert ok is not None
    assert ok.status == 200


@ensure
async def test_replayed_nonce_count_is_refused(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    challenge = await phone.send(user=user)
    header = challenge.headers.get_all("WWW-Authenticate")[1]  # type: ignore[union-attr]
    auth = digest_response(header, user, "s3cret", nc=1)
    assert (await phone.send(user=user, cseq=2, auth=auth)).status == 200  # type: ignore[union-attr]
    replay = await phone.send(user=user, cseq=3, auth=auth)
    assert replay is not None
    assert replay.status == 401
    assert not any("stale=true" in v for v in replay.headers.get_all("WWW-Authenticate"))
    again = await phone.send(user=user, cseq=4, auth=digest_response(header, user, "s3cret", nc=2))
    assert again.status == 200  # type: ignore[union-attr]


@ensure
async def test_too_brief_gets_423_with_min_expires_and_long_is_shortened(
    phone: Phone, directory: Directory
) -> None:
    user = await _endpoint(directory)
    brief = await phone.register(user, "s3cret", expires="30")
    assert (brief.status, brief.headers.get("Min-Expires")) == (423, "60")
    assert phone.location.latest(user) is None
    long = await phone.register(user, "s3cret", expires="999999", cseq=5)
    assert long.status == 200
    assert long.headers.get("Contact", "").endswith(";expires=3600")
    param = await phone.register(
        user, "s3cret", expires=None, cseq=9, contact=f"<sip:{user}@192.0.2.10:5060>;expires=120"
    )
    assert param.headers.get("Contact", "").endswith(";expires=120")


@ensure
async def test_expiry_removes_the_binding_on_time(
    phone: Phone, directory: Directory, database: Database
) -> None:
    user = await _endpoint(directory)
    assert (await phone.register(user, "s3cret", expires="60")).status == 200
    phone.clock.advance(59.5)
    assert phone.location.latest(user) is not None
    phone.clock.advance(0.5)
    assert phone.location.latest(user) is None, "a lapsed binding is never returned"
    phone.clock.advance(1)  # the sweep runs
    rows = await database.run_interaction(
        lambda cur: cur.execute("SELECT COUNT(*) FROM bindings").fetchone()
    )
    assert rows == (0,)


@ensure
async def test_last_login_wins_refresh_does_not(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    desk = Peer("udp", "192.0.2.20", 5060)
    soft = Peer("udp", "192.0.2.30", 5062)
    assert (await phone.register(user, "s3cret", call_id="desk", peer=desk)).status == 200
    phone.clock.advance(5)
    second = await phone.register(user, "s3cret", call_id="soft", peer=soft)
    assert len(second.headers.get_all("Contact")) == 2, "the 200 lists every binding"
    assert phone.location.latest(user).source_host == "192.0.2.30"  # type: ignore[union-attr]
    phone.clock.advance(5)
    assert (await phone.register(user, "s3cret", call_id="desk", cseq=3, peer=desk)).status == 200
    assert phone.location.latest(user).source_host == "192.0.2.30", "a refresh is not a login"  # type: ignore[union-attr]
    phone.clock.advance(5)
    assert (await phone.register(user, "s3cret", call_id="desk-rebooted", peer=desk)).status == 200
    assert phone.location.latest(user).source_host == "192.0.2.20", "a new Call-ID is a new login"  # type: ignore[union-attr]


@ensure
async def test_unregister_wildcard_and_order(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    assert (await phone.register(user, "s3cret", call_id="a", cseq=10)).status == 200
    old = await phone.register(user, "s3cret", call_id="a", cseq=3)
    assert old.status == 500, "a lower CSeq on the same Call-ID fails"
    bad = await phone.register(user, "s3cret", call_id="a", cseq=20, contact="*", expires="60")
    assert bad.status == 400
    gone = await phone.register(user, "s3cret", call_id="a", cseq=30, contact="*", expires="0")
    assert gone.status == 200
    assert gone.headers.get_all("Contact") == []
    assert phone.location.latest(user) is None


@ensure
async def test_expires_zero_removes_one_contact(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    assert (await phone.register(user, "s3cret", call_id="a")).status == 200
    bye = await phone.register(user, "s3cret", call_id="a", cseq=5, expires="0")
    assert bye.status == 200
    assert phone.location.bindings(user) == []


@ensure
async def test_registrations_survive_a_restart(
    phone: Phone, directory: Directory, database: Database
) -> None:
    user = await _endpoint(directory)
    assert (await phone.register(user, "s3cret")).status == 200
    again = LocationService(BindingStore(database), clock=phone.clock)
    await again.start()
    try:
        assert again.latest(user) == phone.location.latest(user)
    finally:
        again.stop()


@ensure
async def test_someone_elses_aor_is_forbidden(phone: Phone, directory: Directory) -> None:
    alice = await _endpoint(directory, "alice")
    bob = await _endpoint(directory, "bob")
    challenge = await phone.send(user=alice, to_user=bob)
    header = challenge.headers.get_all("WWW-Authenticate")[0]  # type: ignore[union-attr]
    reply = await phone.send(
        user=alice, to_user=bob, cseq=2, auth=digest_response(header, alice, "s3cret")
    )
    assert reply.status == 403  # type: ignore[union-attr]
    assert phone.location.latest(bob) is None


@ensure
async def test_foreign_domain_and_blocked_agent(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    foreign = await phone.send(user=user, uri="sip:elsewhere.example")
    assert foreign.status == 404  # type: ignore[union-attr]
    blocked = await phone.send(user=user, user_agent="VaxSIPUserAgent/3.1")
    assert (blocked.status, blocked.reason) == (403, "Forbidden (User-Agent blocked)")  # type: ignore[union-attr]
    assert "WWW-Authenticate" not in blocked.headers  # type: ignore[union-attr]


@ensure
async def test_options_is_answered(phone: Phone) -> None:
    reply = await phone.send("OPTIONS", user="anyone", contact="", expires=None)
    assert reply is not None
    assert reply.status == 200
    assert "REGISTER" in (reply.headers.get("Allow") or "")


@ensure
async def test_repeated_failures_ban_the_source(phone: Phone, directory: Directory) -> None:
    user = await _endpoint(directory)
    attacker = Peer("udp", "198.51.100.7", 5060)
    for i in range(10):
        challenge = await phone.send(user=user, call_id=f"x{i}", peer=attacker)
        header = challenge.headers.get_all("WWW-Authenticate")[0]  # type: ignore[union-attr]
        refused = await phone.send(
            user=user,
            call_id=f"x{i}",
            cseq=2,
            peer=attacker,
            auth=digest_response(header, user, f"guess{i}"),
        )
        assert refused.status == 401  # type: ignore[union-attr]
    assert await phone.send(user=user, call_id="after", peer=attacker) is None, "banned: silence"
    assert (await phone.send(user=user, call_id="other")).status == 401  # type: ignore[union-attr]
    assert "198.51.100.7" in phone.guard.banned(phone.clock.seconds())
    phone.clock.advance(1801)
    assert (await phone.send(user=user, call_id="later", peer=attacker)).status == 401  # type: ignore[union-attr]


@ensure
async def test_challenges_without_credentials_are_stateless(
    phone: Phone, directory: Directory
) -> None:
    """RFC 3261 §8.2.7: a REGISTER without credentials leaves no transaction behind;
    its retransmission is challenged again, with the same To tag."""
    user = await _endpoint(directory)
    first = await phone.send(user=user)
    assert first is not None
    assert first.status == 401
    assert phone.stack.transaction_count == 0
    again = await phone.retransmit()
    assert again is not None
    assert again.status == 401
    assert again.to.tag == first.to.tag
    assert phone.stack.counters["retransmissions"] == 0, "handled as a new request"
    other = await phone.send(user=user, call_id="reg-2")
    assert other is not None
    assert other.to.tag != first.to.tag


@ensure
async def test_refused_credentials_and_successes_are_answered_statefully(
    phone: Phone, directory: Directory
) -> None:
    """A retransmitted REGISTER with credentials gets the same answer again, without
    being verified twice (wrong credentials would count twice against the source)."""
    user = await _endpoint(directory)
    challenge = await phone.send(user=user)
    header = challenge.headers.get_all("WWW-Authenticate")[0]  # type: ignore[union-attr]
    refused = await phone.send(user=user, cseq=2, auth=digest_response(header, user, "wrong"))
    assert refused is not None
    assert refused.status == 401
    assert phone.stack.transaction_count == 1
    sent = len(phone.transport.sent)
    assert await phone.retransmit() is not None
    assert phone.transport.sent[-1][1] == phone.transport.sent[sent - 1][1]
    assert phone.stack.counters["retransmissions"] == 1
    ok = await phone.send(user=user, cseq=3, auth=digest_response(header, user, "s3cret"))
    assert ok is not None
    assert ok.status == 200
    assert phone.stack.transaction_count == 2
    assert (await phone.retransmit()).status == 200  # type: ignore[union-attr]
    assert phone.stack.counters["retransmissions"] == 2
    phone.clock.advance(32)
    assert phone.stack.transaction_count == 0


@ensure
async def test_deleting_an_endpoint_forgets_its_registrations(
    phone: Phone, directory: Directory
) -> None:
    endpoint = await directory.create_endpoint("carol", "pw", "Carol")
    directory.subscribe(phone.location.forget)
    assert (await phone.register(endpoint.username, "pw")).status == 200
    await directory.delete_endpoint(endpoint.endpoint_id)
    assert phone.location.latest(endpoint.username) is None


@ensure
async def test_a_failed_store_write_gets_500_and_changes_nothing(
    phone: Phone, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await _endpoint(directory)
    store = phone.location._store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "save", lambda *a: fail(RuntimeError("disk full")))
    reply = await phone.register(user, "s3cret")
    assert (reply.status, reply.reason) == (500, "Server Internal Error (registration not stored)")
    assert phone.location.latest(user) is None
    monkeypatch.undo()
    assert (await phone.register(user, "s3cret", cseq=5)).status == 200, "the user's turn passed on"


@ensure
async def test_a_storm_for_one_endpoint_gets_503_with_retry_after(
    phone: Phone, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await _endpoint(directory)
    monkeypatch.setattr(
        phone.location, "update", lambda *a: fail(LocationBusyError("32 changes waiting"))
    )
    reply = await phone.register(user, "s3cret")
    assert reply.status == 503
    assert reply.headers.get("Retry-After") == "5"


@ensure
async def test_an_unexpected_error_gets_500(
    phone: Phone, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await _endpoint(directory)

    def boom(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("telephony.registrar._http_date", boom)
    reply = await phone.register(user, "s3cret")
    assert reply.status == 500


def test_credential_cache_forgets_expired_endpoints() -> None:
    """The cache holds the endpoints seen in the last TTL, not every one ever seen."""
    from twisted.internet.defer import succeed

    from telephony.directory.models import Endpoint

    class Directory:
        reads = 0

        def subscribe(self, listener: object) -> None:
            pass

        def find_endpoint(self, username: str) -> Any:
            Directory.reads += 1
            if username.startswith("ghost"):
                return succeed(None)
            return succeed(Endpoint("e", username, "", DOMAIN, "m", "s", None, "t"))

    clock = Clock()
    cache = CredentialCache(Directory(), clock, ttl=60.0, negative_ttl=5.0)  # type: ignore[arg-type]
    for i in range(100):
        cache.lookup(f"user{i}")
    cache.lookup("ghost1")
    assert len(cache) == 101
    assert isinstance(cache.lookup("user5"), Endpoint)  # fresh: no read
    assert Directory.reads == 101
    clock.advance(61)
    for i in range(100, 200):
        cache.lookup(f"user{i}")
    assert len(cache) == 100  # the first hundred (and the ghost) were swept
    assert cache.lookup("user150") is not None
    assert Directory.reads == 201
