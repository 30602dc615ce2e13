"""The server's SIP side in this process, wired as ``telephony.tap`` wires it.

``SIPService`` (stack, core, registrar, digest, location service) and
``CallsService`` (router, call manager) are built from the default configuration
over an in-memory store whose transactions run at once (``tests.fuzz._inline``), on a
``MemoryReactorClock``; a recording transport takes every datagram sent, whatever
its address.  So a test sees exactly what the server would answer to a message,
including messages whose Via names a host that is not ours.
"""

from __future__ import annotations

import tempfile

from twisted.internet.testing import MemoryReactorClock

from telephony.calls.service import CallsService
from telephony.config import DEFAULTS, build_config
from telephony.directory import Directory
from telephony.directory.models import ApplicationFields
from telephony.sip.peer import Peer
from telephony.sipservice import SIPService
from telephony.tap import _trunks
from tests.fuzz._inline import inline_database
from tests.rawsip import RawResponse, parse_response
from tests.sip.helpers import RecordingTransport

__all__ = ("SOURCE", "SipSide")

#: Where the test's messages come from (exempt from throttling, see below).
SOURCE = Peer("udp", "192.0.2.200", 5060)


class SipSide:
    """The SIP side of a server for *domain*, with one endpoint that has an application.

    :ivar username: the endpoint's SIP username; :ivar password: its password.
    """

    def __init__(self, domain: str = "example.com", password: str = "s3cret") -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        self.data_dir = tempfile.mkdtemp(prefix="sipside-")
        # The test source (192.0.2.0/24) is exempt from throttling: dozens of messages
        # at one instant of the test clock are not a flood to ban.
        settings = {"data-dir": self.data_dir, "domain": domain, "throttle-exempt": "192.0.2.0/24"}
        config = build_config({name: None for name in DEFAULTS} | settings)
        db = inline_database()
        self.directory = Directory(db, domain, self.reactor)
        self.sip = SIPService(config, self.directory, db, self.reactor)
        trunks = _trunks(config, self.sip, self.reactor)
        self.calls = CallsService(
            config, self.sip, self.directory, db, self.reactor, "t" * 40, lambda: None, trunks
        )
        self.sip.location.start()
        self.transport = RecordingTransport(self.reactor)  # type: ignore[arg-type]
        self.sip.stack.transports["udp"] = self.transport
        self.password = password
        app = self._fired(
            self.directory.create_application(
                ApplicationFields(app_name="torture", answer_url="http://127.0.0.1:9/a")
            )
        )
        endpoint = self._fired(
            self.directory.create_endpoint("caller", password, "Caller", app.app_id)
        )
        self.username: str = endpoint.username

    @staticmethod
    def _fired(d: object) -> object:
        results: list[object] = []
        d.addBoth(results.append)  # type: ignore[attr-defined]
        assert results, "the in-memory store answers at once"
        return results[0]

    def send(self, data: bytes, source: Peer = SOURCE) -> list[RawResponse]:
        """Deliver one datagram; every response the server sent for it, in order, read
        by the tests' own parser (a 400 copies the broken header it refuses)."""
        start = len(self.transport.sent)
        self.sip.stack.datagram_received(data, source)
        sent = [d for _, d, _ in self.transport.sent[start:]]
        return [parse_response(d) for d in sent if d.startswith(b"SIP/2.0 ")]

    def statuses(self, data: bytes) -> list[int]:
        """The statuses of :meth:`send`'s answers, 100 Trying left out."""
        return [r.status for r in self.send(data) if r.status != 100]
