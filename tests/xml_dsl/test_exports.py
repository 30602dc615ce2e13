"""The public names of ``xml_dsl`` are all importable and documented."""

from __future__ import annotations

import xml_dsl


def test_all_names_exist_and_have_docstrings() -> None:
    for name in xml_dsl.__all__:
        obj = getattr(xml_dsl, name)
        assert obj is not None, name
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_all_is_sorted_and_unique() -> None:
    assert len(set(xml_dsl.__all__)) == len(xml_dsl.__all__)
