"""The import graph of telephony, xml_dsl and media against the design's layers.

Read from the source with ``ast`` (nothing is imported), so a rule holds whatever a
test happened to import first.  Imports under ``if TYPE_CHECKING:`` are annotations
only and do not count.  The rules (the design guide's map):

* **media** is the bottom: it imports nothing of ours but itself;
* **xml_dsl** runs Plivo XML against interfaces: it may use media, never telephony;
* **telephony.sip** is the sans-IO SIP stack: nothing of telephony but its helpers
  (``randompool``, ``_version``), and only ``transport.py`` touches
  ``twisted.internet`` (the one Twisted glue module: sockets, protocols, the
  reactor); the rest may use Deferreds (``twisted.internet.defer``), which are
  results, not I/O;
* **telephony.directory** (the store) and **telephony.trunks** know nothing of calls,
  the REST API, the registrar or the services above them;
* between the units (a top-level module, or a subpackage of telephony) there is no
  cycle: each can be read, tested and changed from the bottom up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("telephony", "xml_dsl", "media")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements outside ``if TYPE_CHECKING:`` blocks."""
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                typing_only.update(id(inner) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
            yield node


def _ours(name: str) -> str | None:
    """The module of ours that *name* (a module, or a name in one) is, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(modules of ours, other top-level names) that *module* imports at run time."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours: set[str] = set()
    others: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            mine = _ours(target)
            if mine is not None and mine != module:
                ours.add(mine)
            elif mine is None:
                others.add(target)
    return ours, others


GRAPH = {module: _imports(module) for module in MODULES}


def _unit(module: str) -> str:
    """A top-level module or package, or a subpackage (or module) of telephony."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "telephony" and len(parts) > 1 else parts[0]


def _violations(source: str, allowed: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, (ours, _) in GRAPH.items()
        if _unit(module) == source or module.startswith(source + ".")
        for target in ours
        if not any(target == a or target.startswith(a + ".") for a in allowed)
    )


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("media", ("media",)),
        ("xml_dsl", ("xml_dsl", "media")),
        ("telephony.sip", ("telephony.sip", "telephony.randompool", "telephony._version")),
        (
            "telephony.directory",
            ("telephony.directory", "telephony.sip", "telephony.randompool"),
        ),
        (
            "telephony.trunks",
            ("telephony.trunks", "telephony.sip", "telephony._version", "telephony.randompool"),
        ),
    ],
)
def test_a_layer_imports_only_what_is_below_it(layer: str, allowed: tuple[str, ...]) -> None:
    assert any(_unit(m) == layer for m in MODULES), f"no module in {layer}"
    assert _violations(layer, allowed) == []


def test_only_the_sip_transport_touches_twisted_internet() -> None:
    offenders = sorted(
        module
        for module, (_, others) in GRAPH.items()
        if module.startswith("telephony.sip.")
        and module != "telephony.sip.transport"
        and any(
            (o == "twisted.internet" or o.startswith("twisted.internet."))
            and not o.startswith("twisted.internet.defer")
            for o in others
        )
    )
    assert offenders == []


def test_the_sip_core_reads_no_clock_and_knows_no_layer_above() -> None:
    """The dispatcher takes the arrival time from its handle; the registrar is attached."""
    ours, others = GRAPH["telephony.sip.core"]
    assert not any(o.startswith("twisted.internet") for o in others)
    assert all(
        target.startswith("telephony.sip.") or target == "telephony._version" for target in ours
    )


def test_no_cycle_between_units() -> None:
    units: dict[str, set[str]] = {}
    for module, (ours, _) in GRAPH.items():
        for target in ours:
            if _unit(module) != _unit(target):
                units.setdefault(_unit(module), set()).add(_unit(target))
    cycles = []
    for start in sorted(units):
        # Depth-first from each unit's neighbours back to itself, bounded by the units.
        stack, seen = [(n, (start, n)) for n in sorted(units[start])], set()
        while stack:
            node, path = stack.pop()
            if node == start:
                cycles.append(" -> ".join(path))
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend((n, (*path, n)) for n in sorted(units.get(node, ())))
    assert cycles == []


def test_the_checker_sees_what_it_must() -> None:
    """The graph itself: a test of the rules is worth nothing if it reads nothing."""
    assert "telephony.sip.transport" in GRAPH["telephony.sipservice"][0]
    assert (
        "twisted.internet"
        in {
            o.rpartition(".")[0] if o.count(".") > 1 else o
            for o in GRAPH["telephony.sip.transport"][1]
        }
        | GRAPH["telephony.sip.transport"][1]
    )
    # TYPE_CHECKING imports do not count: calls.dial names Call only for annotations.
    assert "telephony.calls.call" not in GRAPH["telephony.calls.dial"][0]
    assert _unit("telephony.calls.leg") == "telephony.calls"
    assert _unit("telephony.tap") == "telephony.tap"
