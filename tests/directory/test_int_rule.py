"""Whole numbers from strings: ten digits, so a 0 to 2**31 - 1 rule can be met."""

from __future__ import annotations

import pytest

from telephony.directory import FieldError, rules


def test_ten_digit_strings_are_whole_numbers() -> None:
    assert rules.parse_offset("2147483647") == 2**31 - 1
    assert rules.parse_offset(" 9999999999 ") == 9_999_999_999
    with pytest.raises(FieldError, match="offset: must be an integer"):
        rules.parse_offset("12345678901")
