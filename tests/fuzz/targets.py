"""The fuzz targets by name, with their seeds (the starting corpus).

A target takes one input (bytes) and returns, or raises on a bug; the format's own
error for a bad input (``SipParseError``, ``SDPError``, ``XMLError``...) is caught
inside it.  ``tools/fuzz.py`` runs them under atheris; the suite runs each briefly.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from tests.fuzz._media import (
    RTCP_SEEDS,
    RTP_SEEDS,
    SDP_SEEDS,
    TELEPHONE_EVENT_SEEDS,
    XML_SEEDS,
    fuzz_rtcp,
    fuzz_rtp,
    fuzz_sdp,
    fuzz_telephone_events,
    fuzz_xml,
)
from tests.fuzz._rest import REST_SEEDS, fuzz_rest
from tests.fuzz._sip import (
    SIP_SEEDS,
    BugFoundError,
    fuzz_sip_datagram,
    fuzz_sip_server,
    fuzz_sip_stream,
)

__all__ = ("TARGETS", "BugFoundError", "Target")


@attrs.frozen
class Target:
    """One input format.

    :ivar max_len: longest input the fuzzer makes, in bytes.
    """

    name: str
    run: Callable[[bytes], None]
    seeds: tuple[bytes, ...]
    max_len: int = 8192

    @property
    def summary(self) -> str:
        """The first line of the target function's docstring."""
        return (self.run.__doc__ or "").strip().splitlines()[0]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("sip-datagram", fuzz_sip_datagram, tuple(SIP_SEEDS)),
        Target("sip-stream", fuzz_sip_stream, tuple(SIP_SEEDS)),
        Target("sip-server", fuzz_sip_server, tuple(SIP_SEEDS)),
        Target("sdp", fuzz_sdp, tuple(SDP_SEEDS), 4096),
        Target("rtp", fuzz_rtp, tuple(RTP_SEEDS), 4096),
        Target("rtcp", fuzz_rtcp, tuple(RTCP_SEEDS), 2048),
        Target("rfc4733", fuzz_telephone_events, tuple(TELEPHONE_EVENT_SEEDS), 2048),
        Target("plivo-xml", fuzz_xml, tuple(XML_SEEDS)),
        Target("rest", fuzz_rest, tuple(REST_SEEDS), 4096),
    )
}
