"""Reading one element's attributes with Plivo's rules, turning rule breaks into
:class:`~xml_dsl.errors.XMLError` with the element's line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lxml import etree

from xml_dsl._values import RuleError, integer
from xml_dsl.errors import XMLError

__all__ = [
    "XML_LANG",
    "AttrReader",
    "checked",
    "fail",
    "line_of",
    "local_tag",
    "no_text",
    "positive",
    "text_only",
]

T = TypeVar("T")
D = TypeVar("D")

#: The ``xml:lang`` attribute as lxml names it.
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def local_tag(el: etree._Element) -> str:
    """The element's tag as written (``xml:`` namespace shown as a prefix)."""
    tag = el.tag
    if not isinstance(tag, str):  # comments and PIs are removed by the parser
        return "?"
    return tag


def attr_name(name: str) -> str:
    return "xml:lang" if name == XML_LANG else name


def fail(
    el: etree._Element, rule: str, *, attribute: str | None = None, value: str | None = None
) -> XMLError:
    """An :class:`XMLError` located at ``el`` (raise it)."""
    line = el.sourceline
    return XMLError(
        rule,
        line=line if isinstance(line, int) else None,
        element=local_tag(el),
        attribute=attr_name(attribute) if attribute is not None else None,
        value=value,
    )


class AttrReader:
    """Reads an element's attributes one by one; :meth:`finish` refuses the rest."""

    def __init__(self, el: etree._Element) -> None:
        self._el = el
        self._seen: set[str] = set()

    def get(self, name: str, convert: Callable[[str, str], T], default: D) -> T | D:
        """The converted value of attribute ``name``, or ``default`` when absent."""
        self._seen.add(name)
        if self._el.get(name) is None:
            return default
        return self._get(name, convert)

    def require(self, name: str, convert: Callable[[str, str], T]) -> T:
        """Like :meth:`get`, but the attribute must be present."""
        self._seen.add(name)
        if self._el.get(name) is None:
            raise fail(self._el, f"attribute {attr_name(name)} is required")
        return self._get(name, convert)

    def _get(self, name: str, convert: Callable[[str, str], T]) -> T:
        raw = str(self._el.get(name))
        try:
            return convert(attr_name(name), raw)
        except RuleError as exc:
            raise fail(self._el, str(exc), attribute=name, value=raw) from None

    def finish(self) -> None:
        """Refuse any attribute that was not read: Plivo does not define it here."""
        for name in self._el.attrib:
            key = str(name)
            if key not in self._seen:
                raise fail(
                    self._el,
                    f"unknown attribute {attr_name(key)}",
                    attribute=key,
                    value=str(self._el.get(key)),
                )


def line_of(el: etree._Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def no_text(el: etree._Element) -> None:
    if (el.text or "").strip():
        raise fail(el, f"<{local_tag(el)}> may not contain text")
    for child in el:
        if (child.tail or "").strip():
            raise fail(el, f"<{local_tag(el)}> may not contain text")


def text_only(el: etree._Element, what: str) -> str:
    if len(el):
        raise fail(el[0], f"<{local_tag(el[0])}> may not be nested in <{local_tag(el)}>")
    text = (el.text or "").strip()
    if not text:
        raise fail(el, f"<{local_tag(el)}> must contain {what}")
    return text


def checked(el: etree._Element, raw: str, convert: Callable[[str, str], str]) -> str:
    try:
        return convert(local_tag(el), raw)
    except RuleError as exc:
        raise fail(el, str(exc)) from None


def positive(name: str, raw: str) -> int:
    return integer(name, raw, low=1)
