"""Field rules: each accepts what Plivo users send and names field and rule otherwise."""

from __future__ import annotations

import pytest

from telephony.directory import FieldError, rules


@pytest.mark.parametrize("value", ["a", "yoda", "A1b2C3", "x" * 25, "12345"])
def test_username_accepts_letters_and_digits(value: str) -> None:
    assert rules.parse_username(value) == value


@pytest.mark.parametrize(
    "value", ["", "x" * 26, "has space", "dash-ed", "ünï", "a_b", None, True, 3.5]
)
def test_username_refuses(value: object) -> None:
    with pytest.raises(
        FieldError,
        match=r"^username: 1 to 25 ASCII letters and digits$|^username: must be a string$",
    ):
        rules.parse_username(value)


@pytest.mark.parametrize("value", ["p", " spaced out ", "~!@#$%^&*()_+{}|:<>?", "x" * 32])
def test_password_accepts_printable_ascii(value: str) -> None:
    assert rules.parse_password(value) == value


@pytest.mark.parametrize("value", ["", "x" * 33, "tab\t", "new\nline", "café", "\x7f"])
def test_password_refuses(value: str) -> None:
    with pytest.raises(FieldError) as excinfo:
        rules.parse_password(value)
    assert str(excinfo.value) == "password: 1 to 32 printable ASCII characters"


def test_alias_limits() -> None:
    assert rules.parse_alias("a" * 50) == "a" * 50
    for bad in ("", "a" * 51, "with space", "dot.ted"):
        with pytest.raises(FieldError, match=r"^alias: 1 to 50 ASCII letters and digits$"):
            rules.parse_alias(bad)


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1/a", "https://example.com:8443/x?y=1", "HTTP://host"]
)
def test_url_accepts_http_and_https(value: str) -> None:
    assert rules.parse_url("answer_url", value) == value


@pytest.mark.parametrize(
    "value",
    [
        "ftp://host/x",
        "http://",
        "javascript:alert(1)",
        "/relative",
        "http://h:99999/",
        "http://a b/",
        "http://h/" + "x" * 2048,
        42,
    ],
)
def test_url_refuses(value: object) -> None:
    with pytest.raises(FieldError) as excinfo:
        rules.parse_url("answer_url", value)
    assert excinfo.value.field == "answer_url"


def test_optional_url_clears_on_empty() -> None:
    assert rules.parse_optional_url("hangup_url", "") is None
    assert rules.parse_optional_url("hangup_url", None) is None


def test_methods_and_booleans() -> None:
    assert rules.parse_method("answer_method", "get") == "GET"
    with pytest.raises(FieldError, match=r"^answer_method: must be GET or POST$"):
        rules.parse_method("answer_method", "PUT")
    assert rules.parse_bool("cascade", "False") is False
    assert rules.parse_bool("cascade", True) is True
    with pytest.raises(FieldError, match=r"^cascade: must be true or false$"):
        rules.parse_bool("cascade", "yes")


@pytest.mark.parametrize(
    ("value", "digits"), [("+18001231234", "18001231234"), ("441234567890", "441234567890")]
)
def test_number_is_stored_as_digits(value: str, digits: str) -> None:
    assert rules.parse_number("numbers", value) == digits


@pytest.mark.parametrize("value", ["0123", "1", "+1234567890123456", "12a4", "", "++12"])
def test_number_refuses_non_e164(value: str) -> None:
    with pytest.raises(FieldError) as excinfo:
        rules.parse_number("numbers", value)
    assert str(excinfo.value).startswith("numbers: an E.164 number")


def test_paging_limits() -> None:
    assert rules.parse_limit("20") == 20
    assert rules.parse_offset(0) == 0
    for bad in ("0", "21", "-1", "x", True):
        with pytest.raises(FieldError) as excinfo:
            rules.parse_limit(bad)
        assert excinfo.value.field == "limit"
    with pytest.raises(FieldError, match=r"^offset: must be 0 or more$"):
        rules.parse_offset("-5")
