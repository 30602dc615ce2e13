"""Identifiers of our own SIP messages: branches, tags, and the tag of a stateless answer.

Random parts come from :mod:`telephony.randompool` (64 bits each: RFC 3261 §19.3 asks
for at least 32 bits of randomness in tags, and §8.1.1.7 for unique branches).
"""

from __future__ import annotations

import hashlib
import os

from telephony.randompool import token_hex
from telephony.sip.message import Request
from telephony.sip.transaction import MAGIC_COOKIE

__all__ = ("new_branch", "new_tag", "stateless_tag")


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return MAGIC_COOKIE + token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (64 random bits)."""
    return token_hex(8)


#: Keys the tags of stateless answers, so that they cannot be predicted from outside.
_STATELESS_TAG_KEY = os.urandom(16)


def stateless_tag(request: Request) -> str:
    """The To tag of a stateless answer to *request*: the same for the same request,
    as RFC 3261 §8.2.7 requires (from its Call-ID, From tag and top Via branch)."""
    seed = f"{request.headers.get('Call-ID')}\0{request.from_.tag}\0{request.top_via.branch}"
    return hashlib.blake2b(seed.encode(), digest_size=8, key=_STATELESS_TAG_KEY).hexdigest()
