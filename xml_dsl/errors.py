"""Typed errors of the XML DSL.

Every error says whose fault it is: :class:`XMLError` and :class:`FetchError` are the
application's (a bad document, an unreachable URL), :class:`ExecutionError` is raised
when a document cannot be run against a call.
"""

from __future__ import annotations

__all__ = ["ExecutionError", "FetchError", "LimitError", "XMLError"]


class XMLError(ValueError):
    """A Plivo XML document that we refuse.

    The message names the line, the element, the attribute and the rule, e.g.
    ``line 3: <Dial timeout="abc">: timeout must be a positive integer``.

    :param rule: what was wrong, in words.
    :param line: 1-based source line, when known.
    :param element: the element's tag, when known.
    :param attribute: the attribute's name, when the fault is in one.
    :param value: the attribute's value as written.
    """

    def __init__(
        self,
        rule: str,
        *,
        line: int | None = None,
        element: str | None = None,
        attribute: str | None = None,
        value: str | None = None,
    ) -> None:
        self.rule = rule
        self.line = line
        self.element = element
        self.attribute = attribute
        self.value = value
        super().__init__(self._render())

    def _render(self) -> str:
        parts: list[str] = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.element is not None:
            if self.attribute is not None:
                shown = (self.value or "").replace('"', "&quot;")
                if len(shown) > 60:
                    shown = shown[:57] + "..."
                parts.append(f'<{self.element} {self.attribute}="{shown}">')
            else:
                parts.append(f"<{self.element}>")
        parts.append(self.rule)
        return ": ".join(parts)


class FetchError(Exception):
    """An application URL could not give us a document.

    :param url: the URL requested (without its query).
    :param reason: what went wrong, in words (timeout, status 500, too large, ...).
    :param status: the HTTP status code, if a response arrived.
    """

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"{url}: {reason}")


class LimitError(Exception):
    """A named limit of the executor was reached (documents fetched, redirect chain)."""


class ExecutionError(Exception):
    """A verb could not be carried out on the call (raised by an ``ICallControl``)."""
