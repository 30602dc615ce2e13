"""Built-in applications, served by our own HTTP site like any answer_url.

**Direct Dial** answers every call with a ``<Dial>`` to whatever the caller dialed:
a ``<User>`` for a SIP URI, a ``<Number>`` otherwise.  Its caller ID is a query
parameter of its answer_url (``?callerId=18004321321``), so an operator sets it by
updating the application's URL; without one the caller's own ID is kept.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import attrs
from lxml import etree
from twisted.web import server
from twisted.web.resource import Resource

from telephony.directory.models import ApplicationFields

__all__ = ("DIRECT_DIAL_PATH", "DirectDialResource", "direct_dial_fields", "direct_dial_xml")

#: Where Direct Dial is served on our HTTP site.
DIRECT_DIAL_PATH = "/apps/direct-dial/"

_DIALABLE_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
_SIP_URI = re.compile(r"sips?:[^\s<>\"]{1,256}")
_CALLER_ID = re.compile(r"\+?[0-9]{1,20}|[A-Za-z0-9 ._-]{1,40}")


def direct_dial_xml(to: str, caller_id: str | None) -> bytes:
    """The Plivo XML document Direct Dial answers with for a call to *to*."""
    response = etree.Element("Response")
    to = to.strip()
    if _SIP_URI.fullmatch(to):
        noun = "User"
    elif _DIALABLE_NUMBER.fullmatch(re.sub(r"[\s().-]", "", to)):
        noun, to = "Number", re.sub(r"[\s().-]", "", to)
    else:
        etree.SubElement(response, "Hangup", reason="rejected")
        return etree.tostring(response, xml_declaration=True, encoding="UTF-8")
    dial = etree.SubElement(response, "Dial")
    if caller_id and _CALLER_ID.fullmatch(caller_id):
        dial.set("callerId", caller_id)
    etree.SubElement(dial, noun).text = to
    return etree.tostring(response, xml_declaration=True, encoding="UTF-8")


class DirectDialResource(Resource):
    """``GET``/``POST`` with Plivo's call parameters (``To``) and ``callerId`` in the query."""

    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        def arg(name: bytes) -> str | None:
            args: dict[bytes, list[bytes]] = request.args or {}
            values = args.get(name)
            return values[-1].decode("utf-8", "replace") if values else None

        request.setHeader("content-type", "application/xml")
        return direct_dial_xml(arg(b"To") or "", arg(b"callerId"))


def direct_dial_fields(base_url: str, current: ApplicationFields | None) -> ApplicationFields:
    """The Direct Dial application's fields for a site at *base_url*.

    The answer URL follows the site's address; its query (the caller ID) and every
    other field an operator may have changed are kept from *current*.
    """
    scheme, netloc, path, _, _ = urlsplit(base_url.rstrip("/") + DIRECT_DIAL_PATH)
    if current is None:
        return ApplicationFields(
            app_name="Direct Dial", answer_url=urlunsplit((scheme, netloc, path, "", ""))
        )
    query = urlsplit(current.answer_url).query
    url = urlunsplit((scheme, netloc, path, query, ""))
    return attrs.evolve(current, answer_url=url)
