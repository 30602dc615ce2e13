"""An INVITE without credentials is challenged without a 100 Trying first.

Found through the impaired network (tests/interop/test_impaired_network.py): the
server sent 100 Trying, then the 407 statelessly (no Timer G).  A phone that got the
100 stops retransmitting its INVITE (RFC 3261 §17.1.1.2), so when the 407 was lost
the call hung until the phone's Timer B, 32 s later.  Without the 100, a lost 407 is
repaired by the phone's next INVITE retransmission, which is challenged again.
"""

from __future__ import annotations

from tests.sip.inprocess import SipSide


def _invite(side: SipSide, branch: str, extra: str = "") -> bytes:
    return (
        "INVITE sip:1000@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bK{branch};rport\r\n"
        f"From: <sip:{side.username}@example.com>;tag=a\r\nTo: <sip:1000@example.com>\r\n"
        f"Call-ID: {branch}@192.0.2.200\r\nCSeq: 1 INVITE\r\n"
        "Contact: <sip:phone@192.0.2.200:5060>\r\nMax-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def test_an_invite_without_credentials_gets_the_407_alone() -> None:
    side = SipSide()
    assert [r.status for r in side.send(_invite(side, "first"))] == [407]
    # Its retransmission (the 407 was lost) is challenged again, at once.
    assert [r.status for r in side.send(_invite(side, "first"))] == [407]


def test_an_invite_with_credentials_gets_100_trying_first() -> None:
    """With credentials the answer waits for routing and the application: 100 at once
    (§17.2.1), and then every final answer is sent statefully."""
    side = SipSide()
    bad = (
        'Proxy-Authorization: Digest username="x", realm="example.com", nonce="n",'
        ' uri="sip:1000@example.com", response="00"\r\n'
    )
    assert [r.status for r in side.send(_invite(side, "second", bad))] == [100, 407]
