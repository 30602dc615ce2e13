"""Verb attributes described once on their fields (xml_dsl._xml_field), read by one
generic reader (xml_dsl._reader.read_attributes)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from lxml import etree

from xml_dsl import _values as v
from xml_dsl._reader import HIDDEN, AttrReader, Ignored, read_attributes
from xml_dsl._xml_field import XmlAttribute, xml_attribute, xml_field
from xml_dsl.errors import XMLError
from xml_dsl.parser import VERB_CLASSES
from xml_dsl.verbs import Dial, GetDigits, Method, Number


@attrs.frozen
class Sample:
    """A verb of our own, to test the reader apart from Plivo's verbs."""

    url: str = xml_field("url", v.url)
    count: int = xml_field("count", v.positive, 3)
    method: Method = xml_field("method", v.method, Method.POST)
    password: str | None = xml_field("password", v.sip_auth_password, None, secret=True)
    note: str = "not from XML"


def element(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def read(xml: str, **kwargs: Any) -> tuple[dict[str, Any], Ignored]:
    ignored: Ignored = []
    reader = AttrReader(element(xml), ignored)
    values = read_attributes(Sample, reader, **kwargs)
    reader.finish()
    return values, ignored


def refused(xml: str, **kwargs: Any) -> XMLError:
    with pytest.raises(XMLError) as info:
        read(xml, **kwargs)
    return info.value


def test_the_metadata_says_name_rule_and_whether_required() -> None:
    fields = attrs.fields_dict(Sample)
    assert xml_attribute(fields["url"]) == XmlAttribute("url", v.url, required=True)
    assert xml_attribute(fields["count"]) == XmlAttribute("count", v.positive)
    assert xml_attribute(fields["password"]) == XmlAttribute(
        "password", v.sip_auth_password, secret=True
    )
    assert xml_attribute(fields["note"]) is None
    assert fields["count"].default == 3


def test_absent_attributes_take_the_field_default_and_others_are_converted() -> None:
    values, ignored = read('<S url="http://a.example/x" method="get" other="1"/>')
    assert values == {
        "url": "http://a.example/x",
        "count": 3,
        "method": Method.GET,
        "password": None,
    }
    assert Sample(**values).note == "not from XML"
    assert [i.attribute for i in ignored] == ["other"]  # what no field describes


def test_a_required_attribute_must_be_present() -> None:
    assert "attribute url is required" in str(refused('<S count="2"/>'))


def test_the_first_bad_attribute_in_field_order_is_the_one_reported() -> None:
    error = refused('<S method="PUT" count="0" url="http://a.example/"/>')
    assert error.attribute == "count"
    assert "must be a positive integer" in str(error)


def test_only_and_skip_split_the_reading_without_reading_twice() -> None:
    head, _ = read('<S url="http://a.example/" count="7"/>', only=("count",))
    assert head == {"count": 7}
    rest, _ = read('<S url="http://a.example/" count="x"/>', skip=("count",))
    assert set(rest) == {"url", "method", "password"}


def test_a_secret_value_is_never_repeated_in_an_error() -> None:
    error = refused('<S url="http://a.example/" password="short"/>')
    assert error.attribute == "password"
    assert error.value == HIDDEN
    assert "short" not in str(error)


@pytest.mark.parametrize("cls", sorted(set(VERB_CLASSES.values()), key=lambda c: c.__name__))
def test_every_verb_names_each_xml_attribute_once_and_defaults_what_is_optional(cls: type) -> None:
    specs = [(f, xml_attribute(f)) for f in attrs.fields(cls)]
    names = [spec.name for _, spec in specs if spec is not None]
    assert len(names) == len(set(names)), cls
    for f, spec in specs:
        if spec is not None:
            assert spec.required == (f.default is attrs.NOTHING), f.name


def test_plivo_verbs_describe_their_attributes() -> None:
    specs = (xml_attribute(f) for f in attrs.fields(GetDigits))
    get_digits = {spec.name for spec in specs if spec is not None}
    assert {"action", "finishOnKey", "numDigits", "validDigits"} <= get_digits
    dial = attrs.fields_dict(Dial)
    assert xml_attribute(dial["targets"]) is None  # children, not an attribute
    password = xml_attribute(attrs.fields_dict(Number)["sip_auth_password"])
    assert password is not None
    assert password.secret
