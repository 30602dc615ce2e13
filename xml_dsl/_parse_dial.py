"""Parsing ``<Dial>`` and its nouns, ``<Number>`` and ``<User>``."""

from __future__ import annotations

from lxml import etree

from xml_dsl import _values as v
from xml_dsl._reader import (
    AttrReader,
    checked,
    fail,
    line_of,
    local_tag,
    no_text,
    positive,
    text_only,
)
from xml_dsl.verbs import Dial, DialMusic, Method, Number, SendDigitsMode, User

__all__ = ["MAX_DIAL_TARGETS", "parse_dial"]

#: Most ``<Number>``/``<User>`` rung at once by one ``<Dial>`` [ours].
MAX_DIAL_TARGETS = 10


def _nouns(el: etree._Element) -> tuple[Number | User, ...]:
    no_text(el)
    out: list[Number | User] = []
    for child in el:
        tag = local_tag(child)
        if tag == "Number":
            out.append(_number(child))
        elif tag == "User":
            out.append(_user(child))
        else:
            raise fail(child, f"<{tag}> may not be nested in <Dial> (only <Number> and <User>)")
    return tuple(out)


def _number(el: etree._Element) -> Number:
    r = AttrReader(el)
    verb = Number(
        number=checked(el, text_only(el, "a phone number"), _phone),
        send_digits=r.get("sendDigits", v.digits_to_send, None),
        send_on_preanswer=r.get("sendOnPreanswer", v.boolean, False),
        send_digits_mode=r.get(
            "sendDigitsMode",
            lambda n, s: v.choice(n, s, SendDigitsMode, fold=str.lower),
            SendDigitsMode.RFC2833,
        ),
        line=line_of(el),
    )
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


def _user(el: etree._Element) -> User:
    r = AttrReader(el)
    verb = User(
        uri=checked(el, text_only(el, "a SIP URI"), _sip_uri),
        send_digits=r.get("sendDigits", v.digits_to_send, None),
        send_on_preanswer=r.get("sendOnPreanswer", v.boolean, False),
        sip_headers=r.get("sipHeaders", v.sip_headers, ()),
        line=line_of(el),
    )
    r.finish()
    return verb


def _dial_music(name: str, raw: str) -> DialMusic | str | None:
    text = raw.strip()
    if not text:
        return None
    if text.lower() == "real":
        return DialMusic.REAL
    try:
        return v.url(name, text)
    except v.RuleError:
        raise v.RuleError(f"{name} must be real or a URL") from None


def parse_dial(el: etree._Element) -> Dial:
    r = AttrReader(el)
    targets = _nouns(el)
    if not targets:
        raise fail(el, "Dial must contain at least one <Number> or <User>")
    if len(targets) > MAX_DIAL_TARGETS:
        raise fail(el, f"Dial may ring at most {MAX_DIAL_TARGETS} numbers and users at once")
    verb = Dial(
        targets=targets,
        action=r.get("action", v.optional_url, None),
        method=r.get("method", v.method, Method.POST),
        hangup_on_star=r.get("hangupOnStar", v.boolean, False),
        time_limit=r.get("timeLimit", positive, 14400),
        timeout=r.get("timeout", positive, None),
        caller_id=r.get("callerId", v.caller_id, None),
        caller_name=r.get("callerName", lambda n, s: v.bounded_text(n, s, most=50), None),
        confirm_sound=r.get("confirmSound", v.optional_url, None),
        confirm_timeout=r.get("confirmTimeout", positive, 120),
        confirm_key=r.get("confirmKey", v.finish_key, None),
        dial_music=r.get("dialMusic", _dial_music, None),
        callback_url=r.get("callbackUrl", v.optional_url, None),
        callback_method=r.get("callbackMethod", v.method, Method.POST),
        redirect=r.get("redirect", v.boolean, True),
        digits_match=r.get("digitsMatch", v.digit_patterns, ()),
        digits_match_b_leg=r.get("digitsMatchBLeg", v.digit_patterns, ()),
        sip_headers=r.get("sipHeaders", v.sip_headers, ()),
        line=line_of(el),
    )
    r.finish()
    return verb
