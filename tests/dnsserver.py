"""Twisted's own DNS server as a real peer: ``twistd -n dns`` in a subprocess, serving
a zone written from a list of records, on a free loopback port.

For interop tests that give the server under test ``--dns-servers``::

    from tests.dnsserver import A, SRV, dns_server

    records = [
        SRV("_sip._udp.carrier.test", priority=10, weight=60, port=5070,
            target="a.carrier.test", ttl=300),
        A("a.carrier.test", "127.0.0.11", ttl=60),
    ]
    with dns_server(records, tmp_path) as (host, port):
        ...  # "--dns-servers", f"{host}:{port}"

The server is authoritative for *zone* (``test`` by default) and nothing else: it is
started without ``--recursive``, so it never asks another DNS server.  A name in the
zone with no records answers NXDOMAIN.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
from twisted.names import dns

from tests.serverproc import twistd
from tests.sipp import free_udp_port

__all__ = ("AAAA", "CNAME", "SRV", "A", "Record", "dns_server")

#: Seconds the server may take to answer its first query after it is started.
START_TIMEOUT = 15.0
#: Seconds to wait for each probe query's answer while it starts.
PROBE_TIMEOUT = 0.2
#: Seconds between two probes while it starts.
PROBE_INTERVAL = 0.05
#: Seconds it may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Ports tried when the free one found was taken before the server bound it.
START_ATTEMPTS = 3
#: Default TTL of the records, seconds.
DEFAULT_TTL = 300


@attrs.frozen
class A:
    """An IPv4 address record."""

    name: str
    address: str
    ttl: int = DEFAULT_TTL

    def pyzone(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.address!r}, ttl={self.ttl})"


@attrs.frozen
class AAAA(A):
    """An IPv6 address record."""


@attrs.frozen
class CNAME:
    """An alias: *name* is another name for *target*."""

    name: str
    target: str
    ttl: int = DEFAULT_TTL

    def pyzone(self) -> str:
        return f"CNAME({self.name!r}, {self.target!r}, ttl={self.ttl})"


@attrs.frozen
class SRV:
    """A service record (RFC 2782); target ``"."`` says "not available here"."""

    name: str
    priority: int
    weight: int
    port: int
    target: str
    ttl: int = DEFAULT_TTL

    def pyzone(self) -> str:
        # The root name is written b"" in a pyzone: "." does not IDNA-encode.
        target = repr(b"") if self.target == "." else repr(self.target)
        fields = f"{self.priority}, {self.weight}, {self.port}, {target}"
        return f"SRV({self.name!r}, {fields}, ttl={self.ttl})"


Record = A | AAAA | CNAME | SRV


def write_zone(path: Path, zone: str, records: Sequence[Record]) -> None:
    """Write *records* as a Twisted pyzone for *zone* (with its SOA) to *path*."""
    soa = (
        f"SOA({zone!r}, mname='ns.{zone}', rname='root.{zone}', serial=1, refresh=60,"
        f" retry=60, expire=60, minimum=60, ttl=60)"
    )
    lines = ["zone = [", f"    {soa},", *(f"    {r.pyzone()}," for r in records), "]", ""]
    path.write_text("\n".join(lines))


def answers(address: tuple[str, int], zone: str) -> bool:
    """Whether a DNS server at *address* answers a SOA query for *zone* now."""
    query = dns.Message(id=4242, recDes=0)
    query.queries = [dns.Query(zone, dns.SOA, dns.IN)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        probe.sendto(query.toStr(), address)
        try:
            data = probe.recv(4096)
        except OSError:  # timeout, or refused while nothing listens yet
            return False
    reply = dns.Message()
    reply.fromStr(data)
    return reply.id == query.id and reply.answer == 1 and reply.rCode == dns.OK


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _start(directory: Path, zone_file: Path, zone: str) -> tuple[subprocess.Popen[bytes], int]:
    log_path = directory / "dns-twistd.log"
    for _ in range(START_ATTEMPTS):
        port = free_udp_port("127.0.0.1")
        args = [twistd(), "-n", "--pidfile=", "dns", "--interface", "127.0.0.1", "-p", str(port)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [*args, "--pyzone", str(zone_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if answers(("127.0.0.1", port), zone):
                return process, port
            time.sleep(PROBE_INTERVAL)  # a refused probe returns at once
        _stop(process)
        if "Address already in use" not in log_path.read_text(errors="replace"):
            break
    raise RuntimeError(
        f"twistd dns did not answer in {START_TIMEOUT} s:\n{log_path.read_text(errors='replace')}"
    )


@contextmanager
def dns_server(
    records: Sequence[Record], directory: Path, zone: str = "test"
) -> Iterator[tuple[str, int]]:
    """Twisted's DNS server serving *records* for *zone*, for the ``with`` block.

    :param records: the zone's records (their names inside *zone*).
    :param directory: where the zone file and the server's log are written.
    :param zone: the zone the server is authoritative for.
    :returns: (as the ``with`` target) the server's ``("127.0.0.1", port)``; it
        listens on UDP and TCP.
    :raises RuntimeError: the server did not answer within :data:`START_TIMEOUT` s
        (with its log), or did not stop cleanly.
    """
    zone_file = directory / "zone.py"
    write_zone(zone_file, zone, records)
    process, port = _start(directory, zone_file, zone)
    try:
        yield ("127.0.0.1", port)
    finally:
        code = _stop(process)
        # twistd re-raises SIGTERM once it has shut down cleanly, hence -15.
        if code not in (0, -signal.SIGTERM):
            log = (directory / "dns-twistd.log").read_text(errors="replace")
            raise RuntimeError(f"twistd dns exited with {code}:\n{log}")
