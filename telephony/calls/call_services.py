"""What a call works with, handed to it by whoever makes it.

A :class:`~telephony.calls.call.Call` runs its application through a fetcher, times
its ringing on a clock, writes its CDR, journals itself while it is up, files its
recordings, joins conferences, and places the B legs of its dials through the
switchboard that keeps it.  It receives all of these in one :class:`CallServices`,
built once per process by :class:`~telephony.calls.manager.CallManager` (and by
tests, from fakes), instead of reaching into the manager for them.  The protocols
name only what a call uses of each, so that a fake need not be the real class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from telephony.calls.cdr import CallRecord
from telephony.calls.journal import LiveCall
from xml_dsl import IFetcher

if TYPE_CHECKING:
    from telephony.calls.call import Call
    from telephony.calls.conference import Conferences
    from telephony.calls.dial import PlaceLeg
    from telephony.calls.leg import LegEnd
    from telephony.calls.recordings import CallRecordings

__all__ = ("CallServices", "CdrWriter", "LiveCallJournal", "Switchboard")


class CdrWriter(Protocol):
    """Where finished calls' detail records go (:class:`~.cdr.CdrStore`)."""

    def write(self, record: CallRecord) -> Deferred[None]:
        """Store *record*; fires once it is stored."""


class LiveCallJournal(Protocol):
    """Where calls are noted while they are up (:class:`~.journal.CallJournal`)."""

    def started(self, call: LiveCall) -> Deferred[None]:
        """Note a call that has just started."""

    def answered(self, call_uuid: str, at: float) -> Deferred[None]:
        """Note the answer of a journaled call, *at* seconds (epoch)."""


class Switchboard(Protocol):
    """What a call needs from whoever keeps the live calls (the manager)."""

    def placer(self, call: Call) -> PlaceLeg:
        """Places the B legs of *call*'s dials."""

    def call_ended(self, call: Call, end: LegEnd) -> None:
        """*call*'s leg ended: forget it."""


@attrs.frozen
class CallServices:
    """The collaborators every call of a process shares.

    :ivar clock: times the direct ringing of an endpoint and the documents' waits.
    :ivar fetcher: answer_url, action and hangup_url requests.
    :ivar cdrs: one record per finished call.
    :ivar switchboard: places B legs; hears of the call's end.
    :ivar recordings: names and files recordings.
    :ivar conferences: the live conference rooms.
    :ivar domain: our SIP domain (the host of the endpoints' URIs).
    :ivar ring_timeout: seconds an endpoint rings when it is called directly.
    :ivar journal: where live calls are journaled; None: they are not.
    """

    clock: IReactorTime
    fetcher: IFetcher
    cdrs: CdrWriter
    switchboard: Switchboard
    recordings: CallRecordings
    conferences: Conferences
    domain: str
    ring_timeout: int = 60
    journal: LiveCallJournal | None = None
