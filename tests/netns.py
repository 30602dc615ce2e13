"""A Linux network namespace of the test's own, entered by the test's thread.

Inside, only the namespace's loopback exists: the server, its peers and the
impairment relay talk to each other and to nothing else, whatever else runs on the
machine.  :func:`network_namespace` makes one (``ip netns add``), brings its ``lo``
up, moves the calling thread into it (``setns(2)``: sockets it then opens, threads
and processes it then starts are inside), and on leaving moves the thread back and
deletes the namespace, even after a failure.  Sockets opened inside stay inside.

Everything started inside must be stopped before leaving: a process still running
keeps the namespace alive after ``ip netns del``.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("NamespaceUnavailableError", "network_namespace")

_CLONE_NEWNET = 0x40000000


class NamespaceUnavailableError(RuntimeError):
    """This machine (or user) cannot make or enter a network namespace; the reason."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise NamespaceUnavailableError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NamespaceUnavailableError(f"setns: {os.strerror(errno)}")


@contextmanager
def network_namespace(prefix: str = "tel") -> Iterator[str]:
    """Make a namespace, put this thread in it for the ``with`` block; its name.

    :raises NamespaceUnavailableError: no ``ip`` command, not allowed (not root), or
        no namespace support in the kernel (the caller skips the test).
    """
    if shutil.which("ip") is None:
        raise NamespaceUnavailableError("no 'ip' command (iproute2)")
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield name
        finally:
            _setns(home)
    finally:
        os.close(home)
        # Not _ip(): a failure to delete must not hide the test's own failure.
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)
