"""telephony: a self-hosted, Plivo-compatible programmable SIP server on Twisted."""

from telephony._version import __version__

__all__ = ("__version__",)
