"""Reading one element's attributes with Plivo's rules, turning rule breaks into
:class:`~xml_dsl.errors.XMLError` with the element's line."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

import attrs
from lxml import etree

from xml_dsl._values import RuleError
from xml_dsl._xml_field import xml_attribute
from xml_dsl.errors import XMLError
from xml_dsl.verbs import IgnoredAttribute

__all__ = [
    "HIDDEN",
    "MAX_IGNORED_VALUE_CHARS",
    "XML_LANG",
    "AttrReader",
    "Ignored",
    "checked",
    "fail",
    "line_of",
    "local_tag",
    "no_text",
    "read_attributes",
    "text_only",
]

T = TypeVar("T")
D = TypeVar("D")

#: The ``xml:lang`` attribute as lxml names it.
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: Longest value of an ignored attribute kept for the log, in characters [ours]: enough
#: to recognise it, not enough to fill a log line with a document's worth of text.
MAX_IGNORED_VALUE_CHARS = 60

#: Name fragments of ignored attributes whose value is never kept (a misspelt
#: ``sipAuthPassword`` must not reach a log) [ours].
_SECRET_HINTS = ("pass", "secret", "token", "auth")

#: What an error or a log line shows instead of a secret value.
HIDDEN = "(hidden)"

#: Where a document's ignored attributes are collected while it is parsed.
Ignored = list[IgnoredAttribute]


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


def _shown(name: str, raw: str) -> str:
    if any(hint in name.lower() for hint in _SECRET_HINTS):
        return HIDDEN
    if len(raw) > MAX_IGNORED_VALUE_CHARS:
        return raw[: MAX_IGNORED_VALUE_CHARS - 3] + "..."
    return raw


class AttrReader:
    """Reads an element's attributes one by one; :meth:`finish` notes the rest.

    :param el: the element.
    :param ignored: where :meth:`finish` appends the attributes nobody read.
    """

    def __init__(self, el: etree._Element, ignored: Ignored) -> None:
        self._el = el
        self._ignored = ignored
        self._seen: set[str] = set()

    def get(
        self, name: str, convert: Callable[[str, str], T], default: D, *, secret: bool = False
    ) -> T | D:
        """The converted value of attribute ``name``, or ``default`` when absent.

        :param secret: a password: an error about it names the attribute and the rule
            but never repeats the value.
        """
        self._seen.add(name)
        if self._el.get(name) is None:
            return default
        return self._get(name, convert, secret=secret)

    def require(self, name: str, convert: Callable[[str, str], T]) -> T:
        """Like :meth:`get`, but the attribute must be present."""
        self._seen.add(name)
        if self._el.get(name) is None:
            raise fail(self._el, f"attribute {attr_name(name)} is required")
        return self._get(name, convert)

    def _get(self, name: str, convert: Callable[[str, str], T], *, secret: bool = False) -> T:
        raw = str(self._el.get(name))
        try:
            return convert(attr_name(name), raw)
        except RuleError as exc:
            shown = HIDDEN if secret else raw
            raise fail(self._el, str(exc), attribute=name, value=shown) from None

    def finish(self) -> None:
        """Note every attribute that was not read, to be logged and ignored.

        Plivo ignores attributes it does not define (a document written for a newer
        Plivo, or with a typo, still runs), so we do too; the executor logs each one
        against the call. A value longer than :data:`MAX_IGNORED_VALUE_CHARS` is cut,
        and the value of a name that looks like a secret is not kept at all.
        """
        for name in self._el.attrib:
            key = str(name)
            if key not in self._seen:
                shown = attr_name(key)
                self._ignored.append(
                    IgnoredAttribute(
                        line=line_of(self._el),
                        element=local_tag(self._el),
                        attribute=shown,
                        value=_shown(shown, str(self._el.get(key))),
                    )
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


def read_attributes(
    cls: type,
    reader: AttrReader,
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
) -> dict[str, Any]:
    """The fields of verb class ``cls`` that XML attributes fill, read from the
    reader's element as their :func:`~xml_dsl._xml_field.xml_field` metadata says.

    Fields are read in the order the class declares them, so the first attribute
    that breaks a rule is the one reported.  An absent attribute takes the field's
    default; an absent required one is an error.

    :param only: read just these fields (by field name), for a verb that checks a
        rule across attributes before reading the rest.
    :param skip: fields already read.
    :returns: field name to value, ready to pass to ``cls``.
    """
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):
        spec = xml_attribute(field)
        if spec is None or field.name in skip or (only is not None and field.name not in only):
            continue
        if spec.required:
            values[field.name] = reader.require(spec.name, spec.convert)
        else:
            values[field.name] = reader.get(
                spec.name, spec.convert, field.default, secret=spec.secret
            )
    return values
