"""DTMF on the clock: sending key strings with ``w``/``W`` pauses, and collecting keys
with Plivo's rules (first-key and inter-key timeouts, finish key, count, valid keys)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater

__all__ = [
    "PAUSE_LONG",
    "PAUSE_SHORT",
    "CollectEnd",
    "Collected",
    "DigitCollector",
    "Keys",
    "PatternMatcher",
    "Pause",
    "digit_steps",
    "send_keys",
]

#: Seconds paused by ``w`` and ``W`` in a key string (Plivo, Asterisk, FreeSWITCH).
PAUSE_SHORT = 0.5
PAUSE_LONG = 1.0


@frozen
class Keys:
    """Keys to send back to back."""

    keys: str


@frozen
class Pause:
    """A pause, in seconds."""

    seconds: float


def digit_steps(digits: str) -> tuple[Keys | Pause, ...]:
    """Split ``12w3W#`` into keys and pauses: ``Keys('12'), Pause(0.5), Keys('3'), …``.

    Consecutive pauses add up; ``digits`` must already be validated.
    """
    steps: list[Keys | Pause] = []
    for char in digits:
        if char in "wW":
            length = PAUSE_SHORT if char == "w" else PAUSE_LONG
            if steps and isinstance(steps[-1], Pause):
                steps[-1] = Pause(steps[-1].seconds + length)
            else:
                steps.append(Pause(length))
        elif steps and isinstance(steps[-1], Keys):
            steps[-1] = Keys(steps[-1].keys + char)
        else:
            steps.append(Keys(char))
    return tuple(steps)


async def send_keys(
    send: Callable[[str], Deferred[None]],
    digits: str,
    *,
    clock: IReactorTime,
    first_sent: Deferred[None] | None = None,
) -> None:
    """Send ``digits`` through ``send``, pausing on ``clock`` for ``w`` and ``W``.

    :param first_sent: fired once the first keys are sent (for ``<DTMF async>``).
    """
    for step in digit_steps(digits):
        if isinstance(step, Keys):
            await send(step.keys)
            if first_sent is not None and not first_sent.called:
                first_sent.callback(None)
        else:
            await deferLater(clock, step.seconds, lambda: None)
    if first_sent is not None and not first_sent.called:
        first_sent.callback(None)


class CollectEnd(Enum):
    """Why a collection ended."""

    FINISH_KEY = "finish-key"
    NUM_DIGITS = "num-digits"
    TIMEOUT = "timeout"
    INVALID = "invalid"


@frozen
class Collected:
    """Keys collected (the finish key excluded) and why collection ended."""

    digits: str
    end: CollectEnd


class DigitCollector:
    """Plivo's key-collection rules, timed on ``clock``.

    Feed it keys with :meth:`feed`; call :meth:`start` when the prompts are over to
    start the first-key timeout. :attr:`result` fires with :class:`Collected`.

    :param first_timeout: seconds to wait for the first key, from :meth:`start`.
    :param digit_timeout: seconds allowed between keys.
    :param finish_key: key that submits, or ``None``.
    :param max_digits: keys collected at most.
    :param valid: keys accepted; another key ends the collection as ``INVALID``.
    :param on_first_key: called at the first key (to stop the prompts: barge-in).
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        first_timeout: float,
        digit_timeout: float,
        finish_key: str | None,
        max_digits: int,
        valid: frozenset[str],
        on_first_key: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._first_timeout = first_timeout
        self._digit_timeout = digit_timeout
        self._finish_key = finish_key
        self._max_digits = max_digits
        self._valid = valid
        self.on_first_key = on_first_key
        self._keys: list[str] = []
        self._timer: IDelayedCall | None = None
        self._pressed = False
        self.result: Deferred[Collected] = Deferred(lambda _: self.stop())

    @property
    def pressed(self) -> bool:
        """Whether any key arrived."""
        return self._pressed

    def start(self) -> None:
        """Prompts are over: start the first-key timeout (unless keys already came)."""
        if not self.result.called and not self._pressed:
            self._arm(self._first_timeout)

    def feed(self, key: str) -> None:
        """One key from the caller."""
        if self.result.called:
            return
        first = not self._pressed
        self._pressed = True
        if first and self.on_first_key is not None:
            self.on_first_key()
        if self._finish_key is not None and key == self._finish_key:
            self._end(CollectEnd.FINISH_KEY)
        elif key not in self._valid:
            self._end(CollectEnd.INVALID)
        else:
            self._keys.append(key)
            if len(self._keys) >= self._max_digits:
                self._end(CollectEnd.NUM_DIGITS)
            else:
                self._arm(self._digit_timeout)

    def stop(self) -> None:
        """Cancel any timer (the result is left as it is)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm(self, seconds: float) -> None:
        self.stop()
        self._timer = self._clock.callLater(seconds, self._end, CollectEnd.TIMEOUT)

    def _end(self, why: CollectEnd) -> None:
        self.stop()
        if not self.result.called:
            self.result.callback(Collected("".join(self._keys), why))


class PatternMatcher:
    """Finds ``digitsMatch`` patterns at the end of the keys pressed so far."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self._patterns = patterns
        self._keys = ""
        self._keep = max((len(p) for p in patterns), default=0)

    def feed(self, key: str) -> str | None:
        """Add a key; the pattern it completes, if any (then start afresh)."""
        if not self._patterns:
            return None
        self._keys = (self._keys + key)[-self._keep :]
        for pattern in self._patterns:
            if self._keys.endswith(pattern):
                self._keys = ""
                return pattern
        return None
