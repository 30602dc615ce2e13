"""Parsing ``<Dial>`` and its nouns, ``<Number>`` and ``<User>``."""

from __future__ import annotations

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
    positive,
    text_only,
)
from xml_dsl.verbs import CallType, Dial, DialMusic, Method, Number, SendDigitsMode, User

__all__ = ["MAX_DIAL_TARGETS", "parse_dial"]

#: Most ``<Number>``/``<User>`` rung at once by one ``<Dial>`` [ours].
MAX_DIAL_TARGETS = 10

log = Logger(namespace="xml_dsl.parser")


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


def _headers(el: etree._Element, r: AttrReader) -> tuple[tuple[str, str], ...]:
    """``sipHeaders``, without the names Plivo reserves (dropped, as Plivo drops them)."""
    pairs = r.get("sipHeaders", v.sip_headers, ())
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


def _credentials(el: etree._Element, r: AttrReader) -> tuple[str | None, str | None]:
    """``sipAuthUsername`` and ``sipAuthPassword``: both or neither."""
    username = r.get("sipAuthUsername", v.sip_auth_username, None)
    password = r.get("sipAuthPassword", v.sip_auth_password, None, secret=True)
    if (username is None) != (password is None):
        missing = "sipAuthPassword" if password is None else "sipAuthUsername"
        raise fail(
            el, f"sipAuthUsername and sipAuthPassword must be given together ({missing} is missing)"
        )
    return username, password


def _number(el: etree._Element, ignored: Ignored) -> Number:
    r = AttrReader(el, ignored)
    username, password = _credentials(el, r)
    verb = Number(
        number=checked(el, text_only(el, "a phone number"), _phone),
        send_digits=r.get("sendDigits", v.digits_with_tone, None),
        send_on_preanswer=r.get("sendOnPreanswer", v.boolean, False),
        send_digits_mode=r.get(
            "sendDigitsMode",
            lambda n, s: v.choice(n, s, SendDigitsMode, fold=str.lower),
            SendDigitsMode.RFC2833,
        ),
        sip_headers=_headers(el, r),
        sip_auth_username=username,
        sip_auth_password=password,
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


def _user(el: etree._Element, ignored: Ignored) -> User:
    r = AttrReader(el, ignored)
    username, password = _credentials(el, r)
    verb = User(
        uri=checked(el, text_only(el, "a SIP URI"), _sip_uri),
        send_digits=r.get("sendDigits", v.digits_with_tone, None),
        send_on_preanswer=r.get("sendOnPreanswer", v.boolean, False),
        sip_headers=_headers(el, r),
        sip_auth_username=username,
        sip_auth_password=password,
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


def parse_dial(el: etree._Element, ignored: Ignored) -> Dial:
    """``<Dial>`` and its ``<Number>``/``<User>`` nouns; skipped attributes go to ``ignored``."""
    r = AttrReader(el, ignored)
    targets = _nouns(el, ignored)
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
        sip_headers=_headers(el, r),
        call_type=r.get(
            "callType", lambda n, s: v.choice(n, s, CallType, fold=str.lower), CallType.VOICE
        ),
        line=line_of(el),
    )
    r.finish()
    return verb
