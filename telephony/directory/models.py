"""The directory's records: frozen values, as stored and as the REST API shows them."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

T = TypeVar("T")

__all__ = ("Application", "ApplicationFields", "Endpoint", "Number", "Page")


@attrs.frozen
class Endpoint:
    """A SIP endpoint: a user that phones register as.

    :ivar username: the full SIP user name (the client's part + 12 random digits).
    :ivar realm: the digest realm the HA1 hashes were computed with.
    :ivar ha1_md5: H(username:realm:password) with MD5, for ``algorithm=MD5``.
    :ivar ha1_sha256: the same with SHA-256 (RFC 8760).
    :ivar app_id: the application its calls run, or None for the default endpoint app.
    :ivar created_at: ISO 8601 UTC.
    """

    endpoint_id: str
    username: str
    alias: str
    realm: str
    ha1_md5: str = attrs.field(repr=False)
    ha1_sha256: str = attrs.field(repr=False)
    app_id: str | None
    created_at: str


@attrs.frozen
class ApplicationFields:
    """The settable fields of an application (create, or update with ``evolve``)."""

    app_name: str
    answer_url: str
    answer_method: str = "POST"
    hangup_url: str | None = None
    hangup_method: str = "POST"
    fallback_answer_url: str | None = None
    fallback_method: str = "POST"
    message_url: str | None = None
    message_method: str = "POST"
    default_endpoint_app: bool = False
    default_number_app: bool = False
    log_incoming_messages: bool = True
    public_uri: bool = False


@attrs.frozen
class Application:
    """An application: where a call's Plivo XML comes from.

    :ivar builtin: the name of a built-in application (``"direct_dial"``), else None.
    """

    app_id: str
    fields: ApplicationFields
    builtin: str | None
    created_at: str


@attrs.frozen
class Number:
    """A phone number (DID) we own, attached to an application.

    :ivar number: E.164 digits without ``+``.
    """

    number: str
    alias: str
    app_id: str | None
    carrier: str
    region: str
    number_type: str
    added_on: str


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing and the total count, for Plivo's ``meta`` block."""

    items: tuple[T, ...]
    total_count: int
    limit: int
    offset: int
