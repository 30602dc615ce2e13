"""The transaction layer's sans-IO tables, driven by hand with plain numbers for time.

No reactor and no Clock: each table is told ``now`` and says when it next needs to
be told it, which is what lets the stack keep one delayed call for all of them.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from telephony.sip.answered import AnsweredRequests
from telephony.sip.message import Request, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle, SipStack
from telephony.sip.timerqueue import TimerQueue

KEY_A = ("z9hG4bKa", "10.0.0.1", "5060", "REGISTER")
KEY_B = ("z9hG4bKb", "10.0.0.1", "5060", "REGISTER")


def test_timers_come_out_in_deadline_order_across_delays_and_in_start_order_on_ties() -> None:
    queue = TimerQueue()
    fired: list[str] = []
    queue.start(4.0, lambda: fired.append("T2 at 4"), 0.0)
    queue.start(0.5, lambda: fired.append("T1 at 0.5"), 0.0)
    queue.start(0.5, lambda: fired.append("T1 at 1.5"), 1.0)
    queue.start(1.0, lambda: fired.append("1 s at 1.5"), 0.5)
    assert queue.next_deadline() == 0.5
    assert queue.pop_due(0.499) is None
    while (handle := queue.pop_due(1.5)) is not None:
        handle.callback()
    assert fired == ["T1 at 0.5", "T1 at 1.5", "1 s at 1.5"]
    assert queue.next_deadline() == 4.0
    assert len(queue) == 1


def test_a_restart_from_its_own_expiry_does_not_drift() -> None:
    queue = TimerQueue()
    first = queue.start(0.5, lambda: None, 100.0)
    # Handled late, at 100.9: the next retransmission is still 1 s after 100.5.
    again = queue.start(1.0, lambda: None, 100.9, base=first.deadline)
    assert again.deadline == 101.5


def test_a_cancelled_timer_never_comes_out_and_stops_counting() -> None:
    queue = TimerQueue()
    fired: list[str] = []
    handle = queue.start(0.5, lambda: fired.append("cancelled"), 0.0)
    queue.start(0.5, lambda: fired.append("kept"), 0.1)
    handle.cancel()
    handle.cancel()  # idempotent
    assert len(queue) == 1
    while (due := queue.pop_due(10.0)) is not None:
        due.callback()
    assert fired == ["kept"]
    assert queue.next_deadline() is None


def test_answers_are_kept_for_the_hold_and_forgotten_in_order() -> None:
    table: AnsweredRequests[str] = AnsweredRequests(32.0)
    assert table.next_deadline() is None
    assert table.add(KEY_A, b"SIP/2.0 200 OK", "phone-a", 10.0) == 42.0
    assert table.add(KEY_B, b"SIP/2.0 401", "phone-b", 11.5) == 43.5
    assert table.get(KEY_A) == (b"SIP/2.0 200 OK", "phone-a")
    table.expire(41.999)
    assert len(table) == 2
    table.expire(42.0)
    assert table.get(KEY_A) is None
    assert table.get(KEY_B) == (b"SIP/2.0 401", "phone-b")
    assert table.next_deadline() == 43.5
    table.clear()
    assert len(table) == 0
    assert table.next_deadline() is None


class _Answers200:
    """A TU that answers every request at once, statefully."""

    def handle_request(self, request: Request, txn: ServerTransactionHandle) -> None:
        txn.respond(200)

    def handle_ack(self, request: Request, peer: Peer) -> None:
        pass


class _Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, peer: Peer) -> None:
        self.sent.append(data)


def _options(branch: str, port: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: c\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_the_stack_keeps_one_delayed_call_for_every_timer_of_every_table() -> None:
    clock = Clock()
    stack = SipStack(_Answers200(), clock=clock)
    wire = _Wire()
    stack.transports["udp"] = wire
    for i in range(50):
        # A request answered at once: its 200 kept for Timer J (the answered table) ...
        stack.datagram_received(_options(f"z9hG4bKin{i}", 5061), Peer("udp", "127.0.0.1", 5061))
        # ... and one of ours: timers E and F (the timer queue).
        request = parse_datagram(_options(f"z9hG4bKout{i}", 5060))
        assert isinstance(request, Request)
        stack.send_request(request, Peer("udp", "127.0.0.1", 5062))
        clock.advance(0.01)
    assert stack.transaction_count == 100
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(31.5)  # 32 s after the first ones, before the last ones
    assert 0 < stack.transaction_count < 100
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1.0)  # 64·T1 after the last: Timers J and F have ended everything
    assert stack.transaction_count == 0
    assert clock.getDelayedCalls() == []
