"""Random bytes for tags, branches, nonce salts and call UUIDs, read from the OS a block
at a time.

:func:`secrets.token_bytes` makes one ``getrandom()`` system call per call, and every
registration needs three (two To tags, one nonce salt): on a virtual machine those
calls were about 5 % of a registration's CPU.  :class:`RandomPool` reads 4 KiB of
``os.urandom`` at once and hands it out in slices, so the bytes are exactly as
unpredictable as :mod:`secrets`' and no byte is ever handed out twice.

The pool is module state, as :mod:`secrets` is, because tags are made by free
functions (``new_tag()``) everywhere in the SIP code.  A forked child discards what
its parent had read, so the two never share bytes.
"""

from __future__ import annotations

import os
import threading
import uuid

__all__ = ("RandomPool", "token_bytes", "token_hex", "uuid4")


class RandomPool:
    """Cryptographically random bytes from ``os.urandom``, fetched *block* bytes at a time."""

    __slots__ = ("_block", "_buffer", "_lock", "_pos")

    def __init__(self, block: int = 4096) -> None:
        self._block = block
        self._buffer = b""
        self._pos = 0
        self._lock = threading.Lock()

    def token_bytes(self, nbytes: int) -> bytes:
        """*nbytes* random bytes not handed out before."""
        with self._lock:
            pos = self._pos
            end = pos + nbytes
            if end > len(self._buffer):
                self._buffer = os.urandom(max(self._block, nbytes))
                pos, end = 0, nbytes
            self._pos = end
            return self._buffer[pos:end]

    def discard(self) -> None:
        """Forget the bytes read so far (in a forked child: they are the parent's)."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._pos = 0


_POOL = RandomPool()
os.register_at_fork(after_in_child=_POOL.discard)


def token_bytes(nbytes: int) -> bytes:
    """*nbytes* random bytes (what :func:`secrets.token_bytes` gives, cheaper)."""
    return _POOL.token_bytes(nbytes)


def token_hex(nbytes: int) -> str:
    """*nbytes* random bytes as ``2 * nbytes`` lower-case hex digits."""
    return _POOL.token_bytes(nbytes).hex()


def uuid4() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` gives."""
    return str(uuid.UUID(bytes=_POOL.token_bytes(16), version=4))
