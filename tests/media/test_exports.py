"""Every public name is where ``__all__`` says, and implementations match their interfaces."""

from __future__ import annotations

import importlib
import pkgutil

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


def test_package_exports() -> None:
    for public in media.__all__:
        assert getattr(media, public) is not None


def test_implementations_provide_interfaces() -> None:
    assert verifyClass(media.IMediaSession, media.RTPSession)
    assert verifyClass(media.IMediaListener, media.MediaBridge)


def test_nothing_under_media_imports_the_global_reactor() -> None:
    for name in MODULES:
        source = importlib.import_module(name).__file__
        assert source is not None
        with open(source, encoding="utf-8") as f:
            text = f.read()
        assert "from twisted.internet import reactor" not in text, name
