"""The benchmark's answer_url server: a tiny twisted.web app in its own process.

``POST/GET /answer`` returns ``<Dial callerId=…><Number>…</Number></Dial>``,
``/hangup`` and ``/action`` return an empty document, ``/stats`` the request counts
as JSON.  It prints ``READY <port>`` once listening.  Run::

    python bench/answer_app.py --port 0 --number 18001231234 --caller-id 18004321321
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from twisted.internet import reactor
from twisted.web import server
from twisted.web.resource import Resource


class App(Resource):
    isLeaf = True

    def __init__(self, number: str, caller_id: str) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.dial = (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Dial callerId="{caller_id}"><Number>{number}</Number></Dial></Response>'
        ).encode()

    def render(self, request: server.Request) -> bytes:
        path = (request.path or b"").decode()
        if path == "/stats":
            request.setHeader("content-type", "application/json")
            return json.dumps(self.counts).encode()
        self.counts[path] += 1
        request.setHeader("content-type", "application/xml")
        if path == "/answer":
            return self.dial
        return b"<Response/>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--number", default="18001231234")
    parser.add_argument("--caller-id", default="18004321321")
    args = parser.parse_args()
    site = server.Site(App(args.number, args.caller_id))
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(args.port, site, interface="127.0.0.1", backlog=1024)  # type: ignore[attr-defined]
    print(f"READY {port.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
