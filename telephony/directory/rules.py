"""Field rules for endpoints, applications and numbers, as Plivo users know them.

Each ``parse_*`` takes the raw value a client sent (a string from a form or a query,
or any JSON value) and returns the typed value, or raises :class:`FieldError` whose
message names the field and the rule.  The rules and their limits:

==================  ==========================================================
username            1-25 ASCII letters and digits (the server appends 12 digits)
password            1-32 printable ASCII characters (space included)
alias (endpoint)    1-50 ASCII letters and digits
app_name            1-100 letters, digits, spaces, ``-`` and ``_``
URLs                http or https with a host, at most 2,048 characters
methods             GET or POST (any case, stored upper-case)
booleans            true/false (JSON booleans, or the strings in any case)
number              E.164: an optional ``+`` and 2-15 digits, first digit not 0
number alias        0-100 printable characters
limit / offset      1-20 / 0 or more (Plivo's paging)
==================  ==========================================================
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from telephony.directory._errors import FieldError

__all__ = (
    "MAX_URL_LENGTH",
    "USERNAME_SUFFIX_DIGITS",
    "parse_alias",
    "parse_app_name",
    "parse_bool",
    "parse_id",
    "parse_int",
    "parse_limit",
    "parse_method",
    "parse_number",
    "parse_number_alias",
    "parse_offset",
    "parse_optional_url",
    "parse_password",
    "parse_text",
    "parse_url",
    "parse_username",
)

MAX_URL_LENGTH = 2048
USERNAME_SUFFIX_DIGITS = 12

_USERNAME = re.compile(r"[A-Za-z0-9]{1,25}")
_PASSWORD = re.compile(r"[\x20-\x7e]{1,32}")
_ALIAS = re.compile(r"[A-Za-z0-9]{1,50}")
_APP_NAME = re.compile(r"[A-Za-z0-9 _-]{1,100}")
_NUMBER = re.compile(r"\+?([1-9][0-9]{1,14})")
_ID = re.compile(r"[0-9]{1,32}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]*")


def _text(field: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(field, "must be a string")
    return str(value)


def parse_username(value: object) -> str:
    """The user-chosen part of an endpoint username."""
    text = _text("username", value)
    if not _USERNAME.fullmatch(text):
        raise FieldError("username", "1 to 25 ASCII letters and digits")
    return text


def parse_password(value: object) -> str:
    """An endpoint password; only its digest HA1 hashes are ever stored."""
    text = _text("password", value)
    if not _PASSWORD.fullmatch(text):
        raise FieldError("password", "1 to 32 printable ASCII characters")
    return text


def parse_alias(value: object) -> str:
    """An endpoint's alias."""
    text = _text("alias", value)
    if not _ALIAS.fullmatch(text):
        raise FieldError("alias", "1 to 50 ASCII letters and digits")
    return text


def parse_app_name(value: object) -> str:
    """An application's name."""
    text = _text("app_name", value)
    if not _APP_NAME.fullmatch(text):
        raise FieldError("app_name", "1 to 100 letters, digits, spaces, '-' and '_'")
    return text


def parse_url(field: str, value: object) -> str:
    """An absolute http(s) URL that our fetcher can request."""
    text = _text(field, value).strip()
    rule = f"an http or https URL with a host, at most {MAX_URL_LENGTH} characters"
    if len(text) > MAX_URL_LENGTH or not _PRINTABLE.fullmatch(text) or " " in text:
        raise FieldError(field, rule)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise FieldError(field, rule) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FieldError(field, rule)
    return text


def parse_optional_url(field: str, value: object) -> str | None:
    """A URL, or None when the client sent null or an empty string (clears it)."""
    if value is None or value == "":
        return None
    return parse_url(field, value)


def parse_method(field: str, value: object) -> str:
    """An HTTP method for a callback: GET or POST."""
    text = _text(field, value).strip().upper()
    if text not in ("GET", "POST"):
        raise FieldError(field, "must be GET or POST")
    return text


def parse_bool(field: str, value: object) -> bool:
    """A boolean: JSON true/false, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FieldError(field, "must be true or false")


def parse_id(field: str, value: object) -> str:
    """An endpoint or application ID: 1-32 digits."""
    text = _text(field, value).strip()
    if not _ID.fullmatch(text):
        raise FieldError(field, "an ID of 1 to 32 digits")
    return text


def parse_number(field: str, value: object) -> str:
    """An E.164 number, stored as digits without the ``+``."""
    text = _text(field, value).strip()
    match = _NUMBER.fullmatch(text)
    if not match:
        raise FieldError(
            field, "an E.164 number: optional '+' and 2 to 15 digits, not starting with 0"
        )
    return match.group(1)


def parse_number_alias(value: object) -> str:
    """A number's free-text alias."""
    text = _text("alias", value)
    if len(text) > 100 or not _PRINTABLE.fullmatch(text):
        raise FieldError("alias", "at most 100 printable characters")
    return text


def parse_text(field: str, value: object, max_length: int) -> str:
    """A short free-text value such as a carrier or region name."""
    text = _text(field, value).strip()
    if not 1 <= len(text) <= max_length or not _PRINTABLE.fullmatch(text):
        raise FieldError(field, f"1 to {max_length} printable characters")
    return text


def _int(field: str, value: object) -> int:
    if isinstance(value, bool):
        raise FieldError(field, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,10}\s*", value):
        return int(value)
    raise FieldError(field, "must be an integer")


def parse_int(field: str, value: object, low: int, high: int) -> int:
    """A whole number from *low* to *high* (JSON number or decimal string)."""
    number = _int(field, value)
    if not low <= number <= high:
        raise FieldError(field, f"must be a whole number from {low} to {high}")
    return number


def parse_limit(value: object) -> int:
    """Page size: 1 to 20, as Plivo allows."""
    limit = _int("limit", value)
    if not 1 <= limit <= 20:
        raise FieldError("limit", "must be between 1 and 20")
    return limit


def parse_offset(value: object) -> int:
    """Page start: 0 or more."""
    offset = _int("offset", value)
    if offset < 0:
        raise FieldError("offset", "must be 0 or more")
    return offset
