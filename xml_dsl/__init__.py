"""Plivo XML: parsing, validation, fetching and execution of call documents."""

from __future__ import annotations

from xml_dsl._values import Method
from xml_dsl.errors import ExecutionError, FetchError, LimitError, XMLError
from xml_dsl.fetcher import Fetcher, UrlSpec
from xml_dsl.parser import parse

__all__ = [
    "ExecutionError",
    "FetchError",
    "Fetcher",
    "LimitError",
    "Method",
    "UrlSpec",
    "XMLError",
    "parse",
]
