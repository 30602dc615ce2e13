"""Describing a verb's XML attributes once, on the attrs fields they fill.

Each field that an XML attribute sets is declared with :func:`xml_field`: the
attribute's name as written in Plivo XML, the converter that applies Plivo's rule
(:mod:`xml_dsl._values`), and the field's default, which is also the value of an
absent attribute.  The parser has one generic reader
(:func:`xml_dsl._reader.read_attributes`) that walks a verb class's fields and reads
what their metadata describes, so a verb's attributes are described in one place
and not again in a reader function per verb.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from attrs import frozen

__all__ = ["XML_ATTRIBUTE", "XmlAttribute", "xml_attribute", "xml_field"]

#: The key under which a field's :class:`XmlAttribute` sits in its ``metadata``.
XML_ATTRIBUTE = "xml_dsl.attribute"


@frozen
class XmlAttribute:
    """How one XML attribute fills one field.

    :ivar name: the attribute as written (``finishOnKey``; ``xml:lang`` in lxml's
        Clark notation).
    :ivar convert: ``(name, raw text) -> value``, raising
        :class:`~xml_dsl._values.RuleError` with the rule in words.
    :ivar required: the attribute must be present (the field has no default).
    :ivar secret: a password: an error about it never repeats the value.
    """

    name: str
    convert: Callable[[str, str], Any]
    required: bool = False
    secret: bool = False


def xml_field(
    name: str,
    convert: Callable[[str, str], Any],
    default: Any = attrs.NOTHING,
    *,
    secret: bool = False,
    validator: Any = None,
    repr: bool = True,
) -> Any:
    """An attrs field filled from the XML attribute ``name`` through ``convert``.

    Without ``default`` the attribute is required.  ``validator`` still guards
    verbs built in code (tests, the REST API); the converter already enforces the
    same rule, with Plivo's wording, for verbs read from a document.
    """
    spec = XmlAttribute(name, convert, required=default is attrs.NOTHING, secret=secret)
    return attrs.field(
        default=default, validator=validator, repr=repr, metadata={XML_ATTRIBUTE: spec}
    )


def xml_attribute(field: attrs.Attribute[Any]) -> XmlAttribute | None:
    """The XML attribute that fills ``field``, if one does."""
    spec = field.metadata.get(XML_ATTRIBUTE)
    return spec if isinstance(spec, XmlAttribute) else None
