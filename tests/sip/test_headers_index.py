"""Headers.get reads a first-value index built lazily and kept through changes; it
must always agree with the lines themselves, whatever the order of reads and changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from telephony.sip.headers import Headers

NAMES = st.sampled_from(["Via", "v", "To", "CONTACT", "Contact", "X-Custom", "x-custom", "Route"])
VALUES = st.text(alphabet="abc;=1", min_size=1, max_size=6)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), NAMES, st.none()),
        st.tuples(st.sampled_from(["add", "prepend", "set", "replace_first"]), NAMES, VALUES),
        st.tuples(st.just("remove"), NAMES, st.none()),
        st.tuples(st.just("extend"), NAMES, VALUES),
    ),
    max_size=30,
)


def _first(headers: Headers, name: str) -> str | None:
    """The first value of *name* found by walking the lines (the model)."""
    wanted = Headers([(name, "")]).__iter__().__next__()[0].lower()
    return next((v for k, v in headers if k.lower() == wanted), None)


@given(st.lists(st.tuples(NAMES, VALUES), max_size=6), OPERATIONS)
def test_get_agrees_with_the_lines_after_any_changes(
    start: list[tuple[str, str]], operations: list[tuple[str, str, str | None]]
) -> None:
    headers = Headers(start)
    for op, name, value in operations:
        if op == "get":
            assert headers.get(name) == _first(headers, name)
        elif op == "remove":
            headers.remove(name)
        elif op == "extend":
            assert value is not None
            headers.extend(Headers([(name, value), ("Via", value)]))
        else:
            assert value is not None
            getattr(headers, op)(name, value)
    for name in ("Via", "To", "Contact", "X-Custom", "Route"):
        assert headers.get(name) == _first(headers, name)
