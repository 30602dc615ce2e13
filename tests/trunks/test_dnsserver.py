"""The DNS server helper for interop tests: Twisted's ``twistd dns`` as a real peer,
located through with our own SipResolver."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from telephony.sip.peer import Peer
from telephony.trunks.resolver import LocateError, LocateFailure, SipResolver
from tests.dnsserver import AAAA, CNAME, SRV, A, dns_server

pytestmark = pytest.mark.interop


@pytest_twisted.ensureDeferred
async def test_a_name_is_located_through_twistd_dns(tmp_path: Path) -> None:
    records = [
        SRV("_sip._udp.carrier.test", 20, 0, 5070, "a.carrier.test", ttl=300),
        SRV("_sip._udp.carrier.test", 10, 50, 5072, "b.carrier.test", ttl=300),
        A("a.carrier.test", "127.0.0.11", ttl=60),
        A("b.carrier.test", "127.0.0.12", ttl=60),
        AAAA("b.carrier.test", "::1", ttl=60),
        CNAME("alias.test", "a.carrier.test"),
        SRV("_sip._udp.closed.test", 0, 0, 0, "."),
    ]
    with dns_server(records, tmp_path) as address:
        host, port = address
        assert host == "127.0.0.1"
        resolver = SipResolver(clock=reactor, servers=[address], family=socket.AF_UNSPEC)
        peers = await resolver.locate("carrier.test", None, None)
        assert peers == (
            Peer("udp", "127.0.0.12", 5072),
            Peer("udp", "::1", 5072),
            Peer("udp", "127.0.0.11", 5070),
        )
        assert await resolver.locate("alias.test", 5060, None) == (Peer("udp", "127.0.0.11", 5060),)
        with pytest.raises(LocateError) as caught:
            await resolver.locate("closed.test", None, None)
        assert caught.value.kind is LocateFailure.NOT_AVAILABLE
    # Stopped: its port is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))
