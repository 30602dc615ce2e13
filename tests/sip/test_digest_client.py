"""Answering digest challenges as a client: RFC vectors, our own verifier, refusals."""

from __future__ import annotations

import pytest

from telephony.sip.digest import (
    DigestAlgorithm,
    DigestAuthenticator,
    Verdict,
    compute_ha1,
    parse_authorization,
)
from telephony.sip.digest_client import (
    MAX_STALE_RETRIES,
    AuthRefused,
    DigestClient,
    RefusalReason,
    parse_challenge,
)
from telephony.sip.headers import Headers
from telephony.sip.message import Response

NOW = 1_800_000_000.0


def _challenged(status: int, *challenges: str) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return Response(status, "Unauthorized", Headers([(name, c) for c in challenges]))


def _only(headers: Headers | AuthRefused) -> tuple[str, str]:
    assert isinstance(headers, Headers), headers
    [(name, value)] = list(headers)
    return name, value


def test_rfc2617_example_with_qop_auth() -> None:
    """RFC 2617 §3.5: the response for Mufasa's GET is 6629fae4…."""
    client = DigestClient("Mufasa", "Circle Of Life", cnonce=lambda: "0a4f113b")
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    name, value = _only(
        client.answer(_challenged(401, challenge), method="GET", uri="/dir/index.html")
    )
    assert name == "Authorization"
    creds = parse_authorization(value)
    assert creds is not None
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", "00000001", "0a4f113b")
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    """RFC 7616 §3.9.1, both algorithms."""
    client = DigestClient(
        "Mufasa", "Circle of Life", cnonce=lambda: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    )
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    _, value = _only(
        client.answer(_challenged(401, challenge), method="GET", uri="/dir/index.html")
    )
    creds = parse_authorization(value)
    assert creds is not None
    assert (creds.response, creds.algorithm) == (expected, algorithm)


def test_rfc2069_form_without_qop() -> None:
    """No qop offered: response = H(HA1:nonce:HA2), no cnonce or nc (what many carriers send)."""
    client = DigestClient("Mufasa", "CircleOfLife")
    challenge = 'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    _, value = _only(
        client.answer(_challenged(401, challenge), method="GET", uri="/dir/index.html")
    )
    creds = parse_authorization(value)
    assert creds is not None
    assert (
        creds.response == "1949323746fe6a43ef61f9606e7febea"
    )  # RFC 2069 §2.4, as corrected by its erratum
    assert (creds.qop, creds.nc, creds.cnonce) == (None, None, None)


@pytest.mark.parametrize("algorithm", list(DigestAlgorithm))
def test_our_own_server_accepts_the_answer(algorithm: DigestAlgorithm) -> None:
    server = DigestAuthenticator(realm="carrier.test", algorithms=(algorithm,))
    client = DigestClient("acme", 'pa ss"word')
    challenges = server.challenges(NOW)
    _, value = _only(
        client.answer(_challenged(407, *challenges), method="INVITE", uri="sip:1800@carrier.test")
    )
    ha1 = {algorithm: compute_ha1(algorithm, "acme", "carrier.test", 'pa ss"word')}
    assert server.verify("INVITE", value, ha1, NOW).verdict is Verdict.OK


def test_407_is_answered_with_proxy_authorization_and_the_first_known_challenge() -> None:
    client = DigestClient("acme", "secret")
    response = _challenged(
        407,
        'Digest realm="c", nonce="n1", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="c", nonce="n2", algorithm=SHA-256, qop="auth"',
        'Digest realm="c", nonce="n3", algorithm=MD5, qop="auth"',
    )
    name, value = _only(client.answer(response, method="INVITE", uri="sip:x@c"))
    assert name == "Proxy-Authorization"
    assert "algorithm=SHA-256" in value
    assert 'nonce="n2"' in value


def test_each_realm_gets_its_own_answer() -> None:
    client = DigestClient("acme", "secret")
    response = _challenged(
        407, 'Digest realm="edge", nonce="a", qop="auth"', 'Digest realm="core", nonce="b"'
    )
    headers = client.answer(response, method="INVITE", uri="sip:x@c")
    assert isinstance(headers, Headers)
    assert sorted(parse_authorization(v).realm for _, v in headers) == ["core", "edge"]  # type: ignore[union-attr]


def test_a_second_challenge_for_the_same_realm_means_refused() -> None:
    client = DigestClient("acme", "wrong")
    first = _challenged(401, 'Digest realm="c", nonce="n1", qop="auth"')
    assert isinstance(client.answer(first, method="REGISTER", uri="sip:c"), Headers)
    again = _challenged(401, 'Digest realm="c", nonce="n2", qop="auth"')
    refused = client.answer(again, method="REGISTER", uri="sip:c")
    assert refused == AuthRefused(RefusalReason.REFUSED, "c")
    assert str(refused) == "credentials refused (realm 'c')"


def test_stale_nonces_are_answered_a_bounded_number_of_times() -> None:
    client = DigestClient("acme", "secret")
    assert isinstance(
        client.answer(_challenged(401, 'Digest realm="c", nonce="n0"'), method="X", uri="u"),
        Headers,
    )
    for i in range(MAX_STALE_RETRIES):
        stale = _challenged(401, f'Digest realm="c", nonce="s{i}", stale=TRUE')
        assert isinstance(client.answer(stale, method="X", uri="u"), Headers)
    stale = _challenged(401, 'Digest realm="c", nonce="last", stale=true')
    assert client.answer(stale, method="X", uri="u") == AuthRefused(
        RefusalReason.TOO_MANY_STALE, "c"
    )


def test_nc_counts_uses_of_one_nonce() -> None:
    client = DigestClient("acme", "secret")
    challenge = _challenged(401, 'Digest realm="c", nonce="same", qop="auth", stale=true')
    ncs = []
    for _ in range(2):
        _, value = _only(client.answer(challenge, method="X", uri="u"))
        ncs.append(parse_authorization(value).nc)  # type: ignore[union-attr]
    assert ncs == ["00000001", "00000002"]


@pytest.mark.parametrize(
    ("client", "challenges", "reason"),
    [
        (DigestClient(None, None), ['Digest realm="c", nonce="n"'], RefusalReason.NO_CREDENTIALS),
        (DigestClient("a", "b"), ['Basic realm="c"'], RefusalReason.NO_CHALLENGE),
        (DigestClient("a", "b"), [], RefusalReason.NO_CHALLENGE),
        (
            DigestClient("a", "b"),
            ['Digest realm="c", nonce="n", algorithm=SHA-512-256'],
            RefusalReason.UNSUPPORTED,
        ),
        (
            DigestClient("a", "b"),
            ['Digest realm="c", nonce="n", qop="auth-conf"'],
            RefusalReason.UNSUPPORTED,
        ),
        (
            DigestClient("a", "b", realm="mine"),
            ['Digest realm="theirs", nonce="n"'],
            RefusalReason.OTHER_REALM,
        ),
    ],
)
def test_refusals(client: DigestClient, challenges: list[str], reason: RefusalReason) -> None:
    refused = client.answer(_challenged(401, *challenges), method="INVITE", uri="sip:x@c")
    assert isinstance(refused, AuthRefused)
    assert refused.reason is reason


def test_the_password_never_shows() -> None:
    client = DigestClient("acme", "hunter2-secret")
    assert "hunter2" not in repr(client)
    challenge = _challenged(401, 'Digest realm="c", nonce="n"')
    _, value = _only(client.answer(challenge, method="INVITE", uri="sip:x@c"))
    assert "hunter2" not in value


def test_parse_challenge_reads_the_fields() -> None:
    parsed = parse_challenge(
        'Digest realm="a\\"b", nonce="n", algorithm=MD5-sess, qop="auth-int, auth", stale=TRUE,'
        ' opaque="o"'
    )
    assert parsed is not None
    assert (parsed.realm, parsed.algorithm, parsed.qop, parsed.stale, parsed.opaque) == (
        'a"b',
        "MD5-sess",
        ("auth-int", "auth"),
        True,
        "o",
    )
    assert parse_challenge('Digest nonce="n"') is None
