"""Registrations and calls with DTMF through a lossy, reordering, slow network (issue 16;
the suite's single call is ``tests/interop/test_impaired_network.py``).

Everything runs in a network namespace this script makes (root needed), with the
userspace relay ``tests/impair.py`` between the phones and the server (the kernel
here has no netem): ``--loss`` of datagrams dropped each way, ``--reorder`` of the
others sent at once (overtaking), the rest held ``--delay`` seconds, seeded.

1. **Registrations**: one sipp registers ``--registrations`` endpoints (401, digest,
   200) through one relay link at ``--reg-rate``/s.  Printed: succeeded, failed,
   sipp's retransmissions, the relay's drops.
2. **Calls**: ``--calls`` calls, ``--concurrency`` at a time, each its own sipp phone,
   Python RTP socket and pair of relay links: the phone calls an application whose
   ``GetDigits`` collects four digits the phone sends as RFC 4733 events, whose action
   sends them back reversed with ``<DTMF>``, then hangs up.  Printed: calls completed
   and failed, digits decoded right by the server and by the phone, SIP
   retransmissions the relay saw (and the shortest gap between two copies), datagrams
   dropped and reordered.

Nothing is asserted.  From the repository root, as root, in the project's virtualenv::

    nice -n 19 python bench/impaired_bench.py --registrations 500 --calls 100 --concurrency 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.register_bench import machine  # noqa: E402
from tests.appserver import AppRequest, app_server  # noqa: E402
from tests.impair import DirectionStats, Impairment, Link, Profile  # noqa: E402
from tests.interop.callpeers import Api, auth  # noqa: E402
from tests.interop.callpeers import start_sipp as start_phone  # noqa: E402
from tests.interop.rtppeer import RtpPeer  # noqa: E402
from tests.netns import network_namespace  # noqa: E402
from tests.serverproc import running_server  # noqa: E402
from tests.sipp import SCENARIOS, authentication, run_sipp, write_injection  # noqa: E402

PASSWORD = "impaired-bench-1"  # noqa: S105 - throw-away endpoints of the bench
#: Most seconds one call may take (its sipp's own timeout ends it first).
CALL_TIMEOUT = 90
#: sipp aborts a call on a message its scenario does not expect next, such as a
#: 100 Trying the relay delayed behind the 200 it overtook: legal (RFC 3261 §17.1.1.2
#: ignores it), so those are ignored rather than fail the call.
REORDER_TOLERANT = ["-default_behaviors", "all,-abortunexp"]


def _totals(links: list[Link]) -> dict[str, Any]:
    out = DirectionStats()
    for link in links:
        for stats in link.stats:
            out.received += stats.received
            out.dropped += stats.dropped
            out.reordered += stats.reordered
            out.repeats += stats.repeats
            out.repeat_gaps += stats.repeat_gaps
    return {
        "datagrams": out.received,
        "dropped": out.dropped,
        "reordered": out.reordered,
        "repeats (retransmissions)": out.repeats,
        "shortest gap between copies, s": round(min(out.repeat_gaps), 3)
        if out.repeat_gaps
        else None,
    }


def registrations(
    options: argparse.Namespace, server: Any, net: Impairment, work: Path
) -> dict[str, Any]:
    api = Api(server)
    users = [api.endpoint(f"reg{i}", PASSWORD) for i in range(options.registrations)]
    link = net.link(target=("127.0.0.1", server.sip_port), count_repeats=True)
    injection = write_injection(
        work / "register.csv",
        [(u, authentication(u, PASSWORD), "impaired", "300") for u in users],
    )
    started = time.monotonic()
    result = run_sipp(
        SCENARIOS / "register_auth.xml",
        link.front_address,
        workdir=work,
        injection=injection,
        calls=len(users),
        rate=options.reg_rate,
        timeout=600,
    )
    return {
        "registrations": len(users),
        "succeeded": result.successful,
        "failed": result.failed,
        "sipp retransmissions": result.retransmissions,
        "seconds": round(time.monotonic() - started, 1),
        "relay": _totals([link]),
    }


class CallRun:
    """One call of the bench: its peers, links and outcome."""

    def __init__(self, index: int, user: str, server: Any, net: Impairment, work: Path) -> None:
        self.digits = f"{(index * 7919) % 10000:04d}"
        self.user = user
        self.media = RtpPeer()
        self.sip = net.link(target=("127.0.0.1", server.sip_port), count_repeats=True)
        self.rtp = net.link(client=self.media.address)
        self.work = work / f"call-{index}"
        self.work.mkdir()
        self.server = server
        self.completed = False
        self.heard = ""
        self.error = ""

    def run(self) -> None:
        phone = start_phone(
            self.work, "phone", "phone_waits", remote=self.sip.front_address,
            rows=[(self.user, "1000", auth(self.user, PASSWORD))],
            keys={"rtp_port": self.rtp.back_address[1], "header1": "X-A: 1", "header2": "X-B: 2"},
            timeout=CALL_TIMEOUT, extra=REORDER_TOLERANT,
        )  # fmt: skip
        try:
            self.rtp.target = ("127.0.0.1", int(phone.wait_value("SERVER_RTP_PORT", 45)))
            self.media.send_dtmf(self.rtp.front_address, self.digits)
            self.completed = phone.wait(CALL_TIMEOUT + 10) == 0
            if not self.completed:
                self.error = phone.report()[-2500:]
            time.sleep(0.5)
            self.heard = "".join(d.digit for d in self.media.digits())
        except AssertionError as exc:
            self.error = str(exc)[:300]
        finally:
            phone.stop()
            self.media.close()


def calls(
    options: argparse.Namespace, server: Any, net: Impairment, apps: Any, work: Path
) -> dict[str, Any]:
    api = Api(server)
    apps.reply(
        "/answer",
        f'<Response><GetDigits action="{apps.url("/digits")}" numDigits="4" timeout="20"'
        ' retries="1"/></Response>',
    )

    def back(request: AppRequest) -> str:
        reversed_digits = request.params.get("Digits", "")[::-1]
        return f'<Response><DTMF>{reversed_digits}</DTMF><Wait length="2"/><Hangup/></Response>'

    apps.reply("/digits", back)
    app_id = api.application("impaired", apps.url("/answer"), hangup_url=apps.url("/hangup"))
    users = [api.endpoint(f"call{i}", PASSWORD, app_id) for i in range(options.concurrency)]
    runs: list[CallRun] = []
    started = time.monotonic()
    for batch in range(0, options.calls, options.concurrency):
        group = [
            CallRun(i, users[i % options.concurrency], server, net, work)
            for i in range(batch, min(options.calls, batch + options.concurrency))
        ]
        threads = [threading.Thread(target=r.run, daemon=True) for r in group]
        for t in threads:
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join(CALL_TIMEOUT + 60)
        runs += group
    decoded = [r.params.get("Digits", "") for r in apps.seen("/digits")]
    server_right = sum(1 for r in runs if r.digits in decoded)
    phone_right = sum(r.heard == r.digits[::-1] for r in runs)
    return {
        "calls": len(runs),
        "completed": sum(r.completed for r in runs),
        "failed": sum(not r.completed for r in runs),
        "digits decoded by the server": f"{server_right}/{len(runs)}",
        "digits decoded by the phone": f"{phone_right}/{len(runs)}",
        "errors": [r.error for r in runs if r.error][:3],
        "seconds": round(time.monotonic() - started, 1),
        "sip relay": _totals([r.sip for r in runs]),
        "rtp relay": _totals([r.rtp for r in runs]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--reorder", type=float, default=0.10)
    parser.add_argument("--delay", type=float, default=0.100)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--registrations", type=int, default=500)
    parser.add_argument("--reg-rate", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    profile = Profile(loss=options.loss, reorder=options.reorder, delay=options.delay)
    figures: dict[str, Any] = {"machine": machine(), "profile": str(profile), "seed": options.seed}
    with tempfile.TemporaryDirectory(prefix="impaired-bench-") as tmp, network_namespace("bench"):
        work = Path(tmp)
        with (
            app_server() as apps,
            Impairment(profile, seed=options.seed) as net,
            running_server(work / "var", ["--digest-algorithms", "MD5"]) as server,
        ):
            if options.registrations:
                figures["registrations"] = registrations(options, server, net, work)
                print(json.dumps(figures["registrations"], indent=2), flush=True)
            if options.calls:
                figures["calls"] = calls(options, server, net, apps, work)
                print(json.dumps(figures["calls"], indent=2), flush=True)
    figures["machine"]["load_average_after"] = os.getloadavg()
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
