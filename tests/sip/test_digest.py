"""Digest: parsing, both algorithms, stale and forged nonces, replays (sans-IO)."""

from __future__ import annotations

import pytest

from telephony.sip.digest import (
    DigestAlgorithm,
    DigestAuthenticator,
    Verdict,
    compute_ha1,
    parse_authorization,
)
from tests.sip.test_registrar import digest_response

NOW = 1_800_000_000.0


def _auth() -> DigestAuthenticator:
    return DigestAuthenticator(realm="example.test", secret=b"k" * 32)


def _ha1s(user: str, password: str) -> dict[DigestAlgorithm, str]:
    return {a: compute_ha1(a, user, "example.test", password) for a in DigestAlgorithm}


def test_known_md5_ha1_vector() -> None:
    # RFC 2617 §3.5's example user, realm and password.
    assert compute_ha1(DigestAlgorithm.MD5, "Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_verify_each_algorithm(algorithm: str) -> None:
    auth = _auth()
    challenge = next(c for c in auth.challenges(NOW) if f"algorithm={algorithm}" in c)
    header = digest_response(challenge, "bob", "pw")
    assert auth.verify("REGISTER", header, _ha1s("bob", "pw"), NOW + 1).verdict is Verdict.OK
    wrong = digest_response(challenge, "bob", "nope", nc=2)
    assert auth.verify("REGISTER", wrong, _ha1s("bob", "pw"), NOW + 1).verdict is Verdict.CHALLENGE


def test_the_method_is_part_of_the_digest() -> None:
    auth = _auth()
    header = digest_response(auth.challenges(NOW)[0], "bob", "pw", method="INVITE")
    assert auth.verify("REGISTER", header, _ha1s("bob", "pw"), NOW).verdict is Verdict.CHALLENGE


def test_stale_and_forged_nonces() -> None:
    auth = _auth()
    header = digest_response(auth.challenges(NOW)[0], "bob", "pw")
    result = auth.verify("REGISTER", header, _ha1s("bob", "pw"), NOW + 301)
    assert (result.verdict, result.reason) == (Verdict.STALE, "stale nonce")
    other = DigestAuthenticator(realm="example.test", secret=b"x" * 32)
    forged = digest_response(other.challenges(NOW)[0], "bob", "pw")
    assert auth.verify("REGISTER", forged, _ha1s("bob", "pw"), NOW).verdict is Verdict.STALE
    # A stale nonce with a wrong password is a plain challenge: no stale hint to guessers.
    wrong = digest_response(auth.challenges(NOW)[0], "bob", "guess")
    assert (
        auth.verify("REGISTER", wrong, _ha1s("bob", "pw"), NOW + 301).verdict is Verdict.CHALLENGE
    )


def test_nonces_are_unique_even_at_the_same_instant() -> None:
    auth = _auth()
    assert auth.make_nonce(NOW) != auth.make_nonce(NOW)


def test_replay_and_growing_nc() -> None:
    auth = _auth()
    challenge = auth.challenges(NOW)[0]
    first = digest_response(challenge, "bob", "pw", nc=1)
    assert auth.verify("REGISTER", first, _ha1s("bob", "pw"), NOW).verdict is Verdict.OK
    assert auth.verify("REGISTER", first, _ha1s("bob", "pw"), NOW).reason == "replayed nonce count"
    third = digest_response(challenge, "bob", "pw", nc=3)
    assert auth.verify("REGISTER", third, _ha1s("bob", "pw"), NOW).verdict is Verdict.OK
    second = digest_response(challenge, "bob", "pw", nc=2)
    assert auth.verify("REGISTER", second, _ha1s("bob", "pw"), NOW).verdict is Verdict.CHALLENGE


def test_unknown_user_is_checked_and_refused_like_a_wrong_password() -> None:
    auth = _auth()
    header = digest_response(auth.challenges(NOW)[0], "ghost", "pw")
    result = auth.verify("REGISTER", header, None, NOW)
    assert (result.verdict, result.reason) == (Verdict.CHALLENGE, "wrong credentials")


@pytest.mark.parametrize(
    "header",
    [
        "Basic Ym9iOnB3",
        'Digest username="bob"',
        'Digest username="bob", realm="example.test", nonce="n", uri="sip:x", response="r", junk',
        "Digest " + "a" * 5000,
        "",
    ],
)
def test_unreadable_headers(header: str) -> None:
    assert parse_authorization(header) is None
    assert _auth().verify("REGISTER", header, _ha1s("bob", "pw"), NOW).verdict is Verdict.CHALLENGE


def test_requires_qop_auth() -> None:
    auth = _auth()
    header = digest_response(auth.challenges(NOW)[0], "bob", "pw").replace("qop=auth, ", "")
    assert auth.verify("REGISTER", header, _ha1s("bob", "pw"), NOW).reason.startswith("qop=auth")


def test_parse_quoted_values_with_commas_and_escapes() -> None:
    creds = parse_authorization(
        'Digest username="a\\"b", realm="r,1", nonce="n", uri="sip:x;y=1", response="00", '
        'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"'
    )
    assert creds is not None
    assert (creds.username, creds.realm, creds.uri, creds.algorithm) == (
        'a"b',
        "r,1",
        "sip:x;y=1",
        "SHA-256",
    )


def test_nc_zero_is_never_accepted() -> None:
    auth = _auth()
    header = digest_response(auth.challenges(NOW)[0], "bob", "pw", nc=0)
    assert auth.verify("REGISTER", header, _ha1s("bob", "pw"), NOW).reason == "replayed nonce count"


def test_nonces_that_can_only_be_stale_are_forgotten() -> None:
    auth = _auth()
    old = digest_response(auth.challenges(NOW)[0], "bob", "pw")
    assert auth.verify("REGISTER", old, _ha1s("bob", "pw"), NOW).verdict is Verdict.OK
    later = NOW + auth.nonce_lifetime + 1
    fresh = digest_response(auth.challenges(later)[0], "bob", "pw")
    assert auth.verify("REGISTER", fresh, _ha1s("bob", "pw"), later).verdict is Verdict.OK
    assert len(auth._nc_seen) == 1, "the first nonce went stale and was dropped"


def test_a_nonce_forgotten_for_room_cannot_be_replayed() -> None:
    """Past ``max_tracked_nonces`` the first-used nonce is forgotten; its next use
    (a replay, or the phone's next REGISTER) is answered stale, never accepted."""
    auth = _auth()
    auth.max_tracked_nonces = 2
    pw = _ha1s("bob", "pw")
    challenges = [auth.challenges(NOW + i)[0] for i in range(4)]
    for i in range(3):
        header = digest_response(challenges[i], "bob", "pw")
        assert auth.verify("REGISTER", header, pw, NOW + 10).verdict is Verdict.OK
    assert len(auth._nc_seen) == 2
    replay = digest_response(challenges[0], "bob", "pw", nc=2)
    result = auth.verify("REGISTER", replay, pw, NOW + 11)
    assert (result.verdict, result.reason) == (Verdict.STALE, "nonce no longer tracked")
    tracked = digest_response(challenges[1], "bob", "pw", nc=2)
    assert auth.verify("REGISTER", tracked, pw, NOW + 11).verdict is Verdict.OK
    unused = digest_response(challenges[3], "bob", "pw")  # issued after the forgotten one
    assert auth.verify("REGISTER", unused, pw, NOW + 11).verdict is Verdict.OK


def test_quoted_values_with_escapes_and_commas() -> None:
    creds = parse_authorization(
        r'Digest username="b\"o,b", realm="example.test", nonce="n", uri="sip:x", response="r"'
    )
    assert creds is not None
    assert creds.username == 'b"o,b'
    assert parse_authorization('Digest username="bob, realm="x"') is None
