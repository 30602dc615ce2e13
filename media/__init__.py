"""The media engine: RTP/RTCP, SDP, G.711, RFC 4733 DTMF, play, speak, record."""
