"""Typed errors of the directory; the REST edge maps each to a status code."""

from __future__ import annotations

__all__ = ("ConflictError", "DirectoryError", "FieldError", "NotFoundError")


class DirectoryError(Exception):
    """Base of every error the directory raises on purpose."""


class FieldError(DirectoryError, ValueError):
    """An input value broke a rule.  ``str()`` is ``"field: rule"`` (REST 400)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFoundError(DirectoryError, LookupError):
    """The named endpoint, application or number does not exist (REST 404)."""


class ConflictError(DirectoryError):
    """The request clashes with what is stored, e.g. a number already added (REST 409)."""
