"""One session's side of SDP offer/answer (RFC 3264): what we offer, what is pending.

:class:`SdpNegotiation` is sans-IO: it builds our offers and answers from
:mod:`media.sdp`, bumps the ``o=`` version on every new description (a
re-INVITE or a hold is a new version of the same session, RFC 3264 §8), and
remembers our last offer so the peer's answer can be settled against it.  It
knows nothing of sockets or of the stream; :class:`~media.session.RTPSession`
follows the :class:`~media.sdp.Negotiated` results it returns.
"""

from __future__ import annotations

import attrs

from media.errors import MediaArgumentError
from media.g711 import Codec
from media.sdp import (
    Direction,
    Negotiated,
    Origin,
    SessionDescription,
    accept_answer,
    answer_offer,
    make_offer,
)

__all__ = ("SdpNegotiation",)


@attrs.define
class SdpNegotiation:
    """Our offers and answers for one media stream, and the offer awaiting an answer.

    :param origin: the ``o=`` line of our first description; each new offer or
        answer carries ``session_version + 1`` of the previous one.
    :param address: the host we advertise in ``c=``.
    :param port: our RTP port, advertised in ``m=``.
    :param codecs: the codecs we offer and accept, in our preference order.
    :param telephone_event: the payload type we offer for RFC 4733 events.
    """

    origin: Origin
    address: str
    port: int
    codecs: tuple[Codec, ...]
    telephone_event: int = 101
    #: Our latest offer, until a later one replaces it; ``None`` before we offer.
    last_offer: SessionDescription | None = None

    def _next_origin(self) -> Origin:
        o = self.origin
        self.origin = attrs.evolve(o, session_version=o.session_version + 1)
        return self.origin

    def create_offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """A new offer from us, remembered until the peer answers it.

        :param direction: what we want: ``sendonly`` puts the peer on hold.
        """
        self.last_offer = make_offer(
            self._next_origin(), address=self.address, port=self.port, codecs=self.codecs,
            telephone_event=self.telephone_event, direction=direction,
        )  # fmt: skip
        return self.last_offer

    def answer(
        self, offer: SessionDescription, wanted: Direction = Direction.SENDRECV
    ) -> tuple[SessionDescription, Negotiated]:
        """Our answer to the peer's ``offer``, and what the two settle on.

        :raises SDPError: when nothing in the offer is acceptable.
        """
        return answer_offer(
            offer, self._next_origin(), address=self.address, port=self.port,
            supported=self.codecs, wanted=wanted,
        )  # fmt: skip

    def settle(self, answer: SessionDescription) -> Negotiated:
        """What the peer's ``answer`` to our last offer settles on.

        :raises MediaArgumentError: when no offer of ours is outstanding.
        :raises SDPError: when the answer does not fit our offer.
        """
        if self.last_offer is None:
            raise MediaArgumentError("answer: no offer of ours is outstanding")
        return accept_answer(self.last_offer, answer)
