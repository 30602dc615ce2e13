"""URIs (RFC 3261 §19.1, §25.1; RFC 3966 tel; RFC 5118 IPv6) and name-addr / addr-spec."""

from __future__ import annotations

import time

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.uri import (
    AbsoluteURI,
    NameAddr,
    SipURI,
    TelURI,
    format_params,
    parse_name_addr,
    parse_params,
    parse_uri,
)


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


# -- sip: and sips: -----------------------------------------------------------


def test_full_sip_uri_parts() -> None:
    uri = sip("sip:alice:secret@atlanta.example.com:5070;transport=tcp;lr?subject=x&priority=1")
    assert (uri.scheme, uri.user, uri.password) == ("sip", "alice", "secret")
    assert (uri.host, uri.port) == ("atlanta.example.com", 5070)
    assert uri.params == (("transport", "tcp"), ("lr", None))
    assert uri.headers == "subject=x&priority=1"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None
    assert uri.transport == "tcp"
    assert (
        str(uri)
        == "sip:alice:secret@atlanta.example.com:5070;transport=tcp;lr?subject=x&priority=1"
    )


def test_scheme_is_case_insensitive_and_lowered() -> None:
    uri = sip("SIPS:bob@Biloxi.Example.COM")
    assert uri.scheme == "sips"
    assert uri.transport == "tls"
    assert uri.host == "Biloxi.Example.COM"  # kept as written
    assert uri.aor() == "sips:bob@biloxi.example.com"


def test_host_only_uri() -> None:
    uri = sip("sip:registrar.example.com")
    assert uri.user is None
    assert uri.aor() == "sip:registrar.example.com"
    assert uri.transport == "udp"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:alice@[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        # RFC 5118 §4.3/4.4: inside the brackets ":5070" is part of the address.
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
        ("sip:[::ffff:192.0.2.1]:5060", "[::ffff:192.0.2.1]", 5060),
        ("sip:192.0.2.4:5060", "192.0.2.4", 5060),
        ("sip:host.example.com.", "host.example.com.", None),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_ipv6_host_unbracketed_for_sockets() -> None:
    assert sip("sip:[2001:DB8::10]:5070").host_unbracketed == "2001:db8::10"


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: an IPv6 address needs brackets
        "sip:[2001:db8::10",
        "sip:[]",
        "sip:[zz::1]",
        "sip:alice@",
        "sip:@example.com",
        "sip:alice@example.com:0",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:5x",
        "sip:alice@-bad-.example.com",
        "sip:al ice@example.com",
        "sip:alice@example.com;",
        "sip:alice@example.com;a=b,c",
        "sip:alice:pass@word@example.com",
        "sip:",
        "alice@example.com",
        "",
        ":",
        "sip:alice@exa mple.com",
        "sip:alice@example.com:\u0665\u0660\u0666\u0660",  # Arabic-Indic digits are no port
    ],
)
def test_bad_sip_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_user_part_may_hold_question_marks_and_semicolons() -> None:
    """RFC 4475 §3.1.1.2 (intmeth): userinfo ends at the "@", not at a "?"."""
    uri = sip(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
        "weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.params == ()
    assert uri.headers == ""


def test_semicolon_in_user_part_is_not_a_parameter() -> None:
    """RFC 4475 §3.1.1.9 (semiuri)."""
    uri = sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.params == ()


def test_headers_after_host_with_at_sign_in_value() -> None:
    uri = sip("sip:carol@chicago.com?to=sip:bob%40biloxi.com")
    assert (uri.user, uri.host, uri.headers) == ("carol", "chicago.com", "to=sip:bob%40biloxi.com")


def test_escaped_user_part() -> None:
    """RFC 4475 §3.1.1.3 (esc01): escapes are kept as written, decoded for comparison."""
    uri = sip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == "sips:user@example.com"
    assert uri.host == "example.net"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"


def test_escaped_nul_in_user_part() -> None:
    """RFC 4475 §3.1.1.4 (escnull): %00 is a legal escape and distinct users stay distinct."""
    one, two = sip("sip:%00@host5.example.com"), sip("sip:%00%00@host5.example.com")
    assert one.user_unescaped == "\x00"
    assert two.user_unescaped == "\x00\x00"
    assert not one.equivalent(two)


def test_quoted_uri_parameter_value() -> None:
    uri = sip('sip:alice@example.com;x="a;b c"')
    assert uri.params == (("x", '"a;b c"'),)


# -- aor() --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "aor"),
    [
        ("sip:alice@example.com", "sip:alice@example.com"),
        ("sip:Alice@EXAMPLE.com:5070;transport=tcp;user=phone?x=y", "sip:Alice@example.com"),
        ("sip:%61lice@example.com", "sip:alice@example.com"),
        ("sips:bob@example.com", "sips:bob@example.com"),
        ("sip:example.com", "sip:example.com"),
        ("sip:alice:pw@example.com", "sip:alice@example.com"),
    ],
)
def test_aor_drops_parameters_and_decodes_escapes(text: str, aor: str) -> None:
    """§10.3 step 5: parameters removed, escapes decoded (the user stays case-sensitive)."""
    assert sip(text).aor() == aor


def test_aor_of_undecodable_escapes_stays_distinct() -> None:
    """Escapes that are not UTF-8 must not all collapse into one AoR (U+FFFD)."""
    a, b = sip("sip:%FF@example.com").aor(), sip("sip:%FE@example.com").aor()
    assert a != b
    assert a.encode("utf-8")  # a usable database key


# -- §19.1.4 equivalence --------------------------------------------------------

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    # "Characters other than those in the reserved set are equivalent to their encoding":
    ("sip:cal%6Cer@host5.example.net;%6C%72", "sip:caller@host5.example.net;lr"),
    ("sip:alice@atlanta.com;maddr=%31%30.0.0.1", "sip:alice@atlanta.com;maddr=10.0.0.1"),
    ("sip:alice:p%61ss@atlanta.com", "sip:alice:pass@atlanta.com"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    # and a few more of the rules
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;ttl=1", "sip:alice@atlanta.com;ttl=2"),
    ("sip:alice@atlanta.com;method=INVITE", "sip:alice@atlanta.com"),
    ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice:pw@atlanta.com"),
    ("sip:%FF@atlanta.com", "sip:%FE@atlanta.com"),
    ("sip:alice@atlanta.com?subject=a", "sip:alice@atlanta.com?subject=a&priority=b"),
    ("sip:alice@atlanta.com?subject=a", "sip:alice@atlanta.com?subject=b"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    ua, ub = sip(a), sip(b)
    assert ua.equivalent(ub)
    assert ub.equivalent(ua)
    assert ua == ub
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_not_equivalent_uris(a: str, b: str) -> None:
    ua, ub = sip(a), sip(b)
    assert not ua.equivalent(ub)
    assert not ub.equivalent(ua)
    assert ua != ub


def test_equivalence_is_not_transitive_and_says_so() -> None:
    """§19.1.4's own example: a ~ b ~ c does not imply the ;security values agree."""
    a = sip("sip:carol@chicago.com;security=on")
    b = sip("sip:carol@chicago.com")
    c = sip("sip:carol@chicago.com;security=off")
    assert a == b
    assert b == c
    assert a != c


def test_sip_uri_is_never_equal_to_other_kinds() -> None:
    uri = sip("sip:alice@example.com")
    assert uri != "sip:alice@example.com"
    assert not uri.equivalent(parse_uri("tel:+15550100"))


def test_equivalent_uris_share_a_set_slot() -> None:
    assert len({sip("sip:%61lice@atlanta.com"), sip("sip:alice@ATLANTA.com;foo=1")}) == 1


# -- tel: and absolute URIs ----------------------------------------------------------


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-800-555-0100;ext=12;phone-context=example.com")
    assert isinstance(uri, TelURI)
    assert uri.number == "+1-800-555-0100"
    assert uri.param("ext") == "12"
    assert uri.scheme == "tel"
    assert str(uri) == "tel:+1-800-555-0100;ext=12;phone-context=example.com"


@pytest.mark.parametrize("text", ["tel:", "tel:abc xyz", "tel:+1;", "tel:+1 555"])
def test_bad_tel_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyknowsthisscheme",
            "totallyopaquecontent",
        ),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        ("mailto:alice@example.com", "mailto", "alice@example.com"),
        (
            "urn:uuid:00000000-0000-1000-8000-000a95a0e128",
            "urn",
            "uuid:00000000-0000-1000-8000-000a95a0e128",
        ),
    ],
)
def test_absolute_uris_are_kept_for_the_tu(text: str, scheme: str, rest: str) -> None:
    """RFC 4475 §3.3.2/§3.3.3: an unknown scheme parses; the TU answers 416."""
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert (uri.scheme, uri.rest) == (scheme, rest)
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize("text", ["http:", "http:a b", "http:<x>", 'x:"y"', "1http:x"])
def test_bad_absolute_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


# -- parameters ------------------------------------------------------------------


def test_parse_params_flags_values_whitespace_and_quotes() -> None:
    params = parse_params(' ; tag = abc ;lr; q=0.5 ;x="a;b"', where="test")
    assert params == (("tag", "abc"), ("lr", None), ("q", "0.5"), ("x", '"a;b"'))
    assert format_params(params) == ';tag=abc;lr;q=0.5;x="a;b"'


@pytest.mark.parametrize("text", [";", ";;", "tag=1", ";=x", ';x="unterminated', ';x=a"b'])
def test_bad_params(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_params(text, where="test")


# -- name-addr and addr-spec (§20.10, §25.1) ---------------------------------------------


def test_name_addr_with_quoted_display_name_and_header_params() -> None:
    value = parse_name_addr(
        '"Alice \\"A\\" Smith" <sip:alice@example.com;transport=tcp>;tag=88;q=0.7'
    )
    assert value.display == 'Alice "A" Smith'
    assert isinstance(value.uri, SipURI)
    assert value.uri.params == (("transport", "tcp"),)
    assert value.params == (("tag", "88"), ("q", "0.7"))
    assert value.tag == "88"
    assert value.bracketed
    assert str(value) == '"Alice \\"A\\" Smith" <sip:alice@example.com;transport=tcp>;tag=88;q=0.7'


def test_name_addr_with_token_display_name() -> None:
    value = parse_name_addr("Alice   Smith <sip:alice@example.com>")
    assert value.display == "Alice Smith"


def test_display_name_without_space_before_bracket() -> None:
    """RFC 4475 §3.1.1.6 (lwsdisp)."""
    value = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert value.display == "caller"
    assert value.tag == "323"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    """§20.10: without <>, ";tag" and friends are header parameters, not URI ones."""
    value = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;tag=5")
    assert not value.bracketed
    assert isinstance(value.uri, SipURI)
    assert value.uri.params == ()
    assert value.params == (("unknownparam", None), ("tag", "5"))
    # and it serializes in the name-addr form, where the meaning stays the same
    assert str(value) == "<sip:+19725552222@gw1.example.net>;unknownparam;tag=5"
    assert parse_name_addr(str(value)) == NameAddr(value.uri, None, value.params, True)


def test_bracketed_uri_parameters_belong_to_the_uri() -> None:
    value = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(value.uri, SipURI)
    assert value.uri.params == (("unknownparam", None),)
    assert value.params == ()


@pytest.mark.parametrize(
    "text",
    [
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regbadct
        "sip:a@example.com,sip:b@example.com",
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 baddn
        '"Joe" sip:joe@example.org',
        "<sip:joe@example.org",
        '"Joe" <sip:joe@example.org>;;;;',  # RFC 4475 badinv01 Contact
        "",
        "<>",
        "Joe <>",
    ],
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_spaces_inside_angle_brackets_are_tolerated() -> None:
    """RFC 4475 §3.1.2.14 (badaspec): "Elements attempting to be liberal may ignore the spaces"."""
    value = parse_name_addr('"Watson, Thomas" < sip:t.watson@example.org >')
    assert value.display == "Watson, Thomas"
    assert str(value.uri) == "sip:t.watson@example.org"


def test_name_addr_with_non_sip_uri() -> None:
    value = parse_name_addr("<http://www.example.com>;tag=3234233")
    assert isinstance(value.uri, AbsoluteURI)
    assert value.tag == "3234233"


def test_with_param_replaces_case_insensitively() -> None:
    value = parse_name_addr("<sip:a@example.com>;TAG=1;x")
    assert str(value.with_param("tag", "2")) == "<sip:a@example.com>;x;tag=2"


@pytest.mark.parametrize("text", [";a" + " " * 60_000 + "x", ";a=" + " " * 60_000 + '"'])
def test_long_whitespace_in_a_parameter_fails_in_linear_time(text: str) -> None:
    """A failing match once tried every split of the spaces: 60,000 took about 12 s.

    The bound is loose on purpose (it passes in well under a millisecond).
    """
    start = time.perf_counter()
    with pytest.raises(SipParseError):
        parse_params(text, where="test")
    assert time.perf_counter() - start < 1.0


def test_repeated_uris_are_parsed_once_and_errors_every_time() -> None:
    """parse_uri remembers short URIs (frozen values), never a failure."""
    first = parse_uri("sip:alice@example.test:5070;transport=tcp")
    assert parse_uri("sip:alice@example.test:5070;transport=tcp") is first
    for _ in range(2):
        with pytest.raises(SipParseError):
            parse_uri("sip:alice@exa mple.test")
    long_text = "sip:" + "a" * 300 + "@example.test"
    assert parse_uri(long_text) == parse_uri(long_text)
