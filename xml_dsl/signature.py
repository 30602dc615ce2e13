"""Plivo's request signature, version 3 (``X-Plivo-Signature-V3``).

The signed string is built from the URL and the parameters, then HMAC-SHA256 with the
account's auth token over ``<signed string>.<nonce>``, base64-encoded:

* GET: ``scheme://host/path``, then ``?`` and every query parameter (the URL's own and
  ours, merged) as ``key=value`` sorted by key then value, joined by ``&``; values are
  not percent-encoded. Nothing after the path when there are no parameters.
* POST: ``scheme://host/path?``, then the URL's own query sorted as above followed by
  ``.`` (only if it has one), then the form parameters sorted by key then value and
  concatenated as ``keyvalue`` with no separator.

This is the construction of ``plivo.utils.signature_v3`` in Plivo's Python SDK (4.x);
the tests check our signatures with that SDK's validator. The header may carry several
comma-separated signatures (one per auth token, during a rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "make_nonce",
    "sign",
    "signed_string",
    "verify",
]

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"

#: Digits in a nonce we generate [ours; any unpredictable string will do].
NONCE_DIGITS = 20

Params = Mapping[str, str | Iterable[str]]


def make_nonce() -> str:
    """A fresh random nonce of :data:`NONCE_DIGITS` decimal digits."""
    return str(secrets.randbelow(10**NONCE_DIGITS)).zfill(NONCE_DIGITS)


def _multimap(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, val in pairs:
        out.setdefault(k, []).append(val)
    return out


def _as_pairs(params: Params) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for k, val in params.items():
        if isinstance(val, str):
            pairs.append((k, val))
        else:
            pairs.extend((k, item) for item in val)
    return pairs


def _sorted_query(values: dict[str, list[str]]) -> str:
    return "&".join(f"{k}={item}" for k in sorted(values) for item in sorted(values[k]))


def signed_string(method: str, url: str, params: Params) -> str:
    """The string Plivo signs for a request to ``url`` with ``params``.

    :param method: ``GET`` (params in the query) or ``POST`` (params in the form body).
    :param url: the URL as configured, possibly with its own query.
    :param params: the request parameters we add (a value may be a list).
    """
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    own = _multimap(parse_qsl(parts.query, keep_blank_values=True))
    ours = _as_pairs(params)
    if method.upper() == "GET":
        merged = own
        for k, val in ours:
            merged.setdefault(k, []).append(val)
        query = _sorted_query(merged)
        return f"{base}?{query}" if query else base
    query = _sorted_query(own)
    if not ours:
        return f"{base}?{query}" if query else base
    head = f"{base}?{query}." if query else f"{base}?"
    form = _multimap(ours)
    return head + "".join(f"{k}{item}" for k in sorted(form) for item in sorted(form[k]))


def sign(auth_token: str, method: str, url: str, params: Params, nonce: str) -> str:
    """The ``X-Plivo-Signature-V3`` value for one request (base64, no newline)."""
    message = f"{signed_string(method, url, params)}.{nonce}".encode()
    digest = hmac.new(auth_token.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(auth_token: str, method: str, url: str, params: Params, nonce: str, header: str) -> bool:
    """Whether ``header`` (one or more comma-separated signatures) signs this request.

    :param url: the full URL the request was made to, query included.
    :param params: for POST the form parameters; for GET pass ``{}`` (the query is
        read from ``url``).
    """
    expected = sign(auth_token, method, url, params, nonce)
    return any(
        hmac.compare_digest(expected.encode(), given.strip().encode())
        for given in header.split(",")
    )
