"""Every public name is where ``__all__`` says, and implementations match their interfaces."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from zope.interface.verify import verifyClass

import media

MODULES = sorted(m.name for m in pkgutil.iter_modules(media.__path__, "media."))


@pytest.mark.parametrize("name", MODULES)
def test_module_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for public in exported:
        assert hasattr(module, public), f"{name}.__all__ lists missing {public!r}"


def test_package_exports_are_the_modules_own_public_names() -> None:
    """Each name ``media`` exports is the very object its home module defines and
    lists in that module's ``__all__`` (not a stale alias, not a private helper)."""
    assert len(set(media.__all__)) == len(media.__all__), "media.__all__ repeats a name"
    for public in media.__all__:
        obj = getattr(media, public)
        home_name = getattr(obj, "__module__", None)
        assert isinstance(home_name, str), f"{public}: no home module"
        assert home_name.startswith("media."), f"{public} comes from {home_name}"
        home = importlib.import_module(home_name)
        assert getattr(home, public, None) is obj, f"{public} is not {home_name}.{public}"
        assert public in getattr(home, "__all__", ()), f"{home_name}.__all__ lacks {public}"


def test_implementations_provide_interfaces() -> None:
    assert verifyClass(media.IMediaSession, media.RTPSession)
    assert verifyClass(media.IMediaListener, media.MediaBridge)


def _global_reactor_imports(source: str) -> list[int]:
    """Lines of *source* that import the global reactor, in any spelling
    (``from twisted.internet import reactor as r``, ``import twisted.internet.reactor``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
            names = {alias.name for alias in node.names}
            if "reactor" in names:
                lines.append(node.lineno)
        elif isinstance(node, ast.Import):
            names = {alias.name for alias in node.names}
            if "twisted.internet.reactor" in names:
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source",
    [
        "from twisted.internet import reactor",
        "def f():\n    from twisted.internet import defer, reactor as r",
        "import twisted.internet.reactor",
    ],
)
def test_the_reactor_import_check_sees_every_spelling(source: str) -> None:
    assert _global_reactor_imports(source)


def test_nothing_under_media_imports_the_global_reactor() -> None:
    for name in MODULES:
        source = importlib.import_module(name).__file__
        assert source is not None
        assert _global_reactor_imports(Path(source).read_text(encoding="utf-8")) == [], name
