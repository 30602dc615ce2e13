"""In-process cost of one received RTP packet on a bridged session, fast and full
path, and of one 20 ms tick of a session.

Two real :class:`~media.session.RTPSession` legs (PCMU and PCMA) share a tick and a
:class:`~media.bridge.MediaBridge`; their transports only count what they are given.
Leg A has latched to its peer, so while the bridge is its only audio listener each
plain packet takes the **fast relay path** (no frame object: straight to leg B,
transcoded, renumbered, sent).  Then an audio listener joins and the same packets
take the **full path** (parse, filters, frame object, listeners, the bridge).
Nothing else runs: no reactor, no sockets.

The tick is timed on its own (the session's tick callback, called directly, no
ticker): an **own** tick, a session with nothing running, which sends a frame of
silence, and a **relaying** tick, a bridged session with nothing of its own to
send, which leaves the frame to the relay.

Printed: microseconds per packet for each path, best and median of ``--rounds``
rounds of ``--packets`` packets, and likewise per tick (``--packets`` ticks).
``--session-module`` times another version of ``media/session.py`` (say the one
before a change: ``git show REV:media/session.py > /tmp/old_session.py``) in the
same process, alternating with the current one, so both see the same machine.
Nothing is asserted.  From the repository root::

    python bench/relay_path.py
    python bench/relay_path.py --session-module /tmp/old_session.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted.internet.task import Clock  # noqa: E402

import media.session  # noqa: E402
from media.bridge import MediaBridge  # noqa: E402
from media.g711 import Codec  # noqa: E402
from media.rtp import RTPPacket  # noqa: E402
from media.sdp import Direction, Negotiated  # noqa: E402
from media.ticker import SharedTicker  # noqa: E402

PEER = ("127.0.0.1", 30000)
OTHER_PEER = ("127.0.0.1", 30002)


class _CountingTransport:
    def __init__(self) -> None:
        self.sent = 0

    def write(self, packet: bytes, addr: Any = None) -> None:
        self.sent += 1


class _AudioTap:
    """A listener that wants audio: it sends leg A's packets down the full path."""

    def audio_received(self, session: Any, frame: Any) -> None:
        pass

    def event_received(self, session: Any, frame: Any) -> None:
        pass

    def digit_received(self, session: Any, digit: str) -> None:
        pass


def _legs(module: ModuleType) -> tuple[Any, Any]:
    clock = Clock()
    ticker = SharedTicker(clock=clock)
    legs = []
    for neg in (
        Negotiated(Codec.PCMU, 0, 101, *PEER, Direction.SENDRECV),
        Negotiated(Codec.PCMA, 8, 96, *OTHER_PEER, Direction.SENDRECV),
    ):
        session = module.RTPSession(clock=clock, ticker=ticker, local_address=("127.0.0.1", 0))
        session.makeConnection(_CountingTransport())
        session.configure(neg)
        legs.append(session)
    return legs[0], legs[1]


def _per_packet(module: ModuleType, packets: int) -> tuple[float, float]:
    """Seconds per packet on the fast path, then on the full path."""
    a, b = _legs(module)
    MediaBridge(a, b).start()
    payload = bytes(160)
    datagrams = [
        RTPPacket(0, n & 0xFFFF, 160 * n, 0x1234, payload).to_bytes() for n in range(packets + 1)
    ]
    a.datagramReceived(datagrams[0], PEER)  # latches A to its peer
    receive = a.datagramReceived
    batch = datagrams[1:]

    def run() -> None:
        for datagram in batch:
            receive(datagram, PEER)

    fast = min(timeit.repeat(run, number=3, repeat=5)) / (3 * len(batch))
    a.add_listener(_AudioTap())
    full = min(timeit.repeat(run, number=3, repeat=5)) / (3 * len(batch))
    a.close()
    b.close()
    return fast, full


def _per_tick(module: ModuleType, ticks: int) -> tuple[float, float]:
    """Seconds per tick of a session sending its own silence, then of a relaying one."""
    a, b = _legs(module)

    def run() -> None:
        on_frame = a._on_frame
        for frame in range(ticks):
            on_frame(frame, 0.0)

    own = min(timeit.repeat(run, number=3, repeat=5)) / (3 * ticks)
    a.set_relaying(True)
    relaying = min(timeit.repeat(run, number=3, repeat=5)) / (3 * ticks)
    a.close()
    b.close()
    return own, relaying


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("other_session", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=2000, help="packets per timed batch")
    parser.add_argument("--rounds", type=int, default=8, help="rounds (best and median shown)")
    parser.add_argument("--session-module", type=Path, help="another session.py to time too")
    args = parser.parse_args()
    versions: dict[str, ModuleType] = {}
    if args.session_module is not None:
        versions[str(args.session_module)] = _load(args.session_module)
    versions["media/session.py"] = media.session
    figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, module in versions.items():
            packet = _per_packet(module, args.packets)
            figures[name].append(packet + _per_tick(module, args.packets))
    for name, rounds in figures.items():
        fast, full, own, relaying = ([r[i] * 1e6 for r in rounds] for i in range(4))
        print(
            f"{name}: fast relay path {min(fast):.3f} us/packet best, "
            f"{statistics.median(fast):.3f} median; full path {min(full):.3f} best, "
            f"{statistics.median(full):.3f} median; own tick {min(own):.3f} us best, "
            f"{statistics.median(own):.3f} median; relaying tick {min(relaying):.3f} best, "
            f"{statistics.median(relaying):.3f} median"
        )


if __name__ == "__main__":
    main()
