"""Parsing ``<Dial>`` and its nouns, ``<Number>`` and ``<User>``."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from twisted.logger import Logger

from xml_dsl import _values as v
from xml_dsl._reader import (
    AttrReader,
    Ignored,
    checked,
    fail,
    line_of,
    local_tag,
    no_text,
    read_attributes,
    text_only,
)
from xml_dsl.verbs import Dial, Number, User

__all__ = ["MAX_DIAL_TARGETS", "parse_dial"]

#: Most ``<Number>``/``<User>`` rung at once by one ``<Dial>`` [ours].
MAX_DIAL_TARGETS = 10

log = Logger(namespace="xml_dsl.parser")

#: Checks an element's text: ``(element name, text) -> value``.
_Rule = Callable[[str, str], str]


def _nouns(el: etree._Element, ignored: Ignored) -> tuple[Number | User, ...]:
    no_text(el)
    out: list[Number | User] = []
    for child in el:
        tag = local_tag(child)
        if tag == "Number":
            out.append(_number(child, ignored))
        elif tag == "User":
            out.append(_user(child, ignored))
        else:
            raise fail(child, f"<{tag}> may not be nested in <Dial> (only <Number> and <User>)")
    return tuple(out)


def _without_reserved(
    el: etree._Element, pairs: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """``sipHeaders`` without the names Plivo reserves (dropped, as Plivo drops them)."""
    kept = tuple((name, value) for name, value in pairs if not v.is_reserved_header(name))
    for name, _ in pairs:
        if v.is_reserved_header(name):
            log.debug(
                "line {line}: <{element} sipHeaders>: {header} is a reserved name; dropped",
                line=line_of(el),
                element=local_tag(el),
                header=name,
            )
    return kept


#: The digest credentials of a ``<Number>`` or ``<User>``: read first, both or neither.
_CREDENTIALS = ("sip_auth_username", "sip_auth_password")


def _target(
    cls: type[Number] | type[User], el: etree._Element, ignored: Ignored, what: str, rule: _Rule
) -> Number | User:
    """A ``<Number>`` or ``<User>``: credentials checked first, then the text, then
    the other attributes."""
    r = AttrReader(el, ignored)
    credentials = read_attributes(cls, r, only=_CREDENTIALS)
    username, password = credentials["sip_auth_username"], credentials["sip_auth_password"]
    if (username is None) != (password is None):
        missing = "sipAuthPassword" if password is None else "sipAuthUsername"
        raise fail(
            el, f"sipAuthUsername and sipAuthPassword must be given together ({missing} is missing)"
        )
    text = checked(el, text_only(el, what), rule)
    values = read_attributes(cls, r, skip=_CREDENTIALS)
    values["sip_headers"] = _without_reserved(el, values["sip_headers"])
    verb = cls(text, **values, **credentials, line=line_of(el))
    r.finish()
    return verb


def _phone(name: str, raw: str) -> str:
    digits = raw[1:] if raw.startswith("+") else raw
    if not (1 <= len(digits) <= 20 and digits.isascii() and digits.isdigit()):
        raise v.RuleError(f"{name} must be a phone number: an optional + and 1 to 20 digits")
    return raw


def _sip_uri(name: str, raw: str) -> str:
    scheme, _, rest = raw.partition(":")
    user, at, host = rest.partition("@")
    bad = any(c.isspace() or c in '<>"' for c in raw)
    if scheme.lower() not in ("sip", "sips") or not at or not user or not host or bad:
        raise v.RuleError(f"{name} must be a SIP URI such as sip:alice@example.com")
    if len(raw) > 256:
        raise v.RuleError(f"{name} must be at most 256 characters")
    return raw


def _number(el: etree._Element, ignored: Ignored) -> Number | User:
    return _target(Number, el, ignored, "a phone number", _phone)


def _user(el: etree._Element, ignored: Ignored) -> Number | User:
    return _target(User, el, ignored, "a SIP URI", _sip_uri)


def parse_dial(el: etree._Element, ignored: Ignored) -> Dial:
    """``<Dial>`` and its ``<Number>``/``<User>`` nouns; skipped attributes go to ``ignored``."""
    r = AttrReader(el, ignored)
    targets = _nouns(el, ignored)
    if not targets:
        raise fail(el, "Dial must contain at least one <Number> or <User>")
    if len(targets) > MAX_DIAL_TARGETS:
        raise fail(el, f"Dial may ring at most {MAX_DIAL_TARGETS} numbers and users at once")
    values = read_attributes(Dial, r)
    values["sip_headers"] = _without_reserved(el, values["sip_headers"])
    verb = Dial(targets, **values, line=line_of(el))
    r.finish()
    return verb
