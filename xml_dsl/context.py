"""What a verb runner may use of the execution running it.

The executor runs the simple verbs itself; the verbs that connect the call to
others (``<Dial>``, ``<Conference>``, in :mod:`xml_dsl._dialing`) are runners of
their own.  They get a :class:`RunContext`: the call, the fetcher, the clock, the
limits, and the executor's hooks (answer the call, fetch a sound document, send a
callback, request an action, file a recording), and nothing of the
:class:`~xml_dsl.executor.Execution` behind it.  The executor's bookkeeping
(documents counted, the redirect chain, early media) stays its own, and a runner
can be tested against a context built from fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from attrs import frozen

from xml_dsl._values import Method
from xml_dsl.control import RecordResult
from xml_dsl.interfaces import ICallControl, IFetcher
from xml_dsl.verbs import Prompt, Record, Response

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from xml_dsl.executor import Limits

__all__ = ["RunContext"]


@frozen
class RunContext:
    """A running document, as a verb runner sees it.

    :ivar call: the call the document runs on.
    :ivar fetcher: fetches documents and sends callbacks (prefer the hooks below,
        which apply the executor's limits and parameters).
    :ivar clock: every timer a runner starts runs on it.
    :ivar limits: the executor's named limits (the default ring timeout, …).
    :ivar answered: answer the call unless it runs as early media, and note that a
        verb reached the caller; await it before talking to the caller.
    :ivar reached_caller: note that a verb reached the caller without answering
        (a Dial rings out first): the next fetched document does not count towards
        the redirect-loop limit.
    :ivar params: the call's callback parameters, updated with ``extra``.
    :ivar notify: send a callback to a URL (``None``: no callback) and go on; a
        failure is logged by the fetcher, never raised.
    :ivar fetch_prompts: the Play/Speak/Wait of a sound document (``dialMusic``,
        ``confirmSound``, …); ``()`` when it cannot be fetched or parsed.  The second
        argument names the attribute, for the log.
    :ivar after: request a verb's action (``action``, ``method``, ``redirect``,
        extra parameters): the next document to run, or ``None`` to go on.  A failed
        fetch ends the call, as a Redirect's would.
    :ivar recorded: the callback that files a finished recording of ``<Record>``
        (its ``callbackUrl``).
    :ivar armed_dial_record: the ``<Record startOnDialAnswer>`` waiting for the next
        Dial, if any.
    """

    call: ICallControl
    fetcher: IFetcher
    clock: IReactorTime
    limits: Limits
    answered: Callable[[], Awaitable[None]]
    reached_caller: Callable[[], None]
    params: Callable[[Mapping[str, str]], dict[str, str]]
    notify: Callable[[str | None, Method, Mapping[str, str]], None]
    fetch_prompts: Callable[[str, str], Awaitable[tuple[Prompt, ...]]]
    after: Callable[[str | None, Method, bool, Mapping[str, str]], Awaitable[Response | None]]
    recorded: Callable[[Record], Callable[[RecordResult], None]]
    armed_dial_record: Callable[[], Record | None]

    @property
    def call_uuid(self) -> str:
        """The call's UUID, for logs and callback parameters."""
        return self.call.call_uuid
