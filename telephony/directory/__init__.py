"""Endpoints, applications and numbers: the rules, the records and their SQL store."""

from telephony.directory._errors import ConflictError, DirectoryError, FieldError, NotFoundError
from telephony.directory.models import Application, Endpoint, Number
from telephony.directory.service import Directory

__all__ = (
    "Application",
    "ConflictError",
    "Directory",
    "DirectoryError",
    "Endpoint",
    "FieldError",
    "NotFoundError",
    "Number",
)
