"""Plivo XML: parsing, validation, fetching and execution of call documents.

* :func:`parse` turns a document into a :class:`Response` of verb objects, or raises
  :class:`XMLError` naming the line, element, attribute and rule.
* :class:`Fetcher` requests ``answer_url`` (with ``fallback_answer_url``), action,
  Redirect and callback URLs, signed as Plivo signs them.
* :func:`execute` runs a document against an :class:`ICallControl` (the call layer)
  on an injected clock, and returns an :class:`Execution`.
"""

from __future__ import annotations

from xml_dsl._answer import run_call
from xml_dsl._values import Method, is_reserved_header
from xml_dsl.control import (
    Beep,
    ConferenceEvent,
    ConferenceEventKind,
    ConferenceExit,
    ConferenceResult,
    ConferenceSpec,
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    DialStatus,
    EndedBy,
    HangupCause,
    Outcome,
    RecordMode,
    RecordResult,
    RecordSpec,
    Ringback,
    SpeechResult,
    SpeechSpec,
    WaitUntil,
)
from xml_dsl.errors import ExecutionError, FetchError, LimitError, XMLError
from xml_dsl.executor import Execution, Limits, execute
from xml_dsl.fetcher import Fetcher, UrlSpec
from xml_dsl.interfaces import ICallControl, IDialAttempt, IFetcher
from xml_dsl.parser import parse
from xml_dsl.signature import sign, verify
from xml_dsl.verbs import Response

__all__ = [
    "Beep",
    "ConferenceEvent",
    "ConferenceEventKind",
    "ConferenceExit",
    "ConferenceResult",
    "ConferenceSpec",
    "DialEnd",
    "DialEvent",
    "DialEventKind",
    "DialResult",
    "DialSpec",
    "DialStatus",
    "EndedBy",
    "Execution",
    "ExecutionError",
    "FetchError",
    "Fetcher",
    "HangupCause",
    "ICallControl",
    "IDialAttempt",
    "IFetcher",
    "LimitError",
    "Limits",
    "Method",
    "Outcome",
    "RecordMode",
    "RecordResult",
    "RecordSpec",
    "Response",
    "Ringback",
    "SpeechResult",
    "SpeechSpec",
    "UrlSpec",
    "WaitUntil",
    "XMLError",
    "execute",
    "is_reserved_header",
    "parse",
    "run_call",
    "sign",
    "verify",
]
