"""Starting a call's program: fetch the answer document (or its fallback), then run it."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from xml_dsl._values import Method
from xml_dsl.control import EndedBy, HangupCause, Outcome
from xml_dsl.errors import FetchError, XMLError
from xml_dsl.executor import Execution, Limits
from xml_dsl.interfaces import ICallControl, IFetcher
from xml_dsl.verbs import Response

__all__ = ["run_call"]

log = Logger(namespace="xml_dsl.executor")


def _swallow(d: Deferred[Any]) -> Deferred[Any]:
    d.addErrback(lambda _: None)
    return d


def run_call(
    call: ICallControl,
    fetcher: IFetcher,
    answer_url: str,
    *,
    clock: IReactorTime,
    answer_method: Method = Method.POST,
    fallback_url: str | None = None,
    fallback_method: Method = Method.POST,
    limits: Limits | None = None,
) -> Deferred[Outcome]:
    """What the call layer calls for a new call: fetch ``answer_url`` (falling back to
    ``fallback_url`` on any failure: connection, timeout, non-2xx, invalid XML), then
    run the document. If neither gives a document the call is hung up with
    ``URL_UNREACHABLE`` or ``INVALID_XML``.

    Cancel the returned Deferred when the far end hangs up, or when something else
    takes the call over (a REST transfer), at any point, fetch included: it then fires
    with ``Outcome(EndedBy.FAR_END)`` and nothing more is done on the call (no
    fallback fetched, no hangup).
    """
    cancelled = False
    execution: Execution | None = None

    def cancel(d: Deferred[Outcome]) -> None:
        nonlocal cancelled
        # Marked before the fetch is cancelled: its cancellation fails it (with
        # CancelledError, or a FetchError from a fetcher that sees its request
        # aborted), and that failure is no dead URL to fall back from or hang up for.
        cancelled = True
        if execution is not None:
            execution.far_end_hangup()
        else:
            fetching.cancel()
        if not d.called:
            d.callback(Outcome(EndedBy.FAR_END, documents=0))

    result: Deferred[Outcome] = Deferred(cancel)

    async def first_document() -> Response:
        params = dict(call.params())
        try:
            return await fetcher.fetch(answer_url, answer_method, params)
        except (FetchError, XMLError) as exc:
            if fallback_url is None or cancelled:
                raise
            log.warn(
                "call {call_uuid}: answer_url failed ({error}); trying fallback_url",
                call_uuid=call.call_uuid,
                error=str(exc),
            )
        return await fetcher.fetch(fallback_url, fallback_method, params)

    def got(document: Response) -> None:
        nonlocal execution
        execution = Execution(call, fetcher, clock=clock, limits=limits or Limits())
        execution.start(document).addCallback(settle)

    def settle(outcome: Outcome) -> None:
        if not result.called:
            result.callback(outcome)

    def failed(failure: Failure) -> None:
        if cancelled or result.called:
            return
        error = failure.getErrorMessage()
        cause = HangupCause.INVALID_XML if failure.check(XMLError) else HangupCause.URL_UNREACHABLE
        log.error(
            "call {call_uuid}: no document to run: {error}; hanging up",
            call_uuid=call.call_uuid,
            error=error,
        )
        hanging = _swallow(call.hangup(cause))
        hanging.addCallback(lambda _: settle(Outcome(EndedBy.ERROR, cause, error, 0)))

    fetching = Deferred.fromCoroutine(first_document())
    fetching.addCallbacks(got, failed)
    return result
