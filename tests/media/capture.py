"""A loopback RTP capture for interop tests: a UDP sink that writes a pcap file.

Capturing with dumpcap needs privileges CI may not have, so the sink receives
the packets itself, stamps them on arrival, and writes them to a classic pcap
(LINKTYPE_RAW, with IPv4 and UDP headers rebuilt around the exact datagrams)
that tshark then decodes.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

from twisted.internet.protocol import DatagramProtocol

_LINKTYPE_RAW = 101


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ident: int) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


class CaptureSink(DatagramProtocol):
    """Receives datagrams and remembers (wall time, source, bytes)."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, tuple[str, int], bytes]] = []
        self.port: int = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.packets.append((time.time(), (addr[0], addr[1]), datagram))

    def write_pcap(self, path: Path, local: tuple[str, int]) -> None:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_RAW)]
        for i, (stamp, source, data) in enumerate(self.packets):
            frame = ipv4_udp(source, local, data, i)
            sec = int(stamp)
            usec = round((stamp - sec) * 1_000_000)
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        path.write_bytes(b"".join(out))
