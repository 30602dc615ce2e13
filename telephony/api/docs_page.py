"""``/v1/openapi.json`` and ``/docs``: the OpenAPI document, and a page made from it.

The page is plain HTML with a little CSS (no script, nothing fetched from elsewhere):
every operation with its path and query parameters, its body fields (JSON or form),
its responses, and every response schema with its fields.  Neither needs auth: they
describe the API, they hold nothing of the account.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.web import server
from twisted.web.resource import Resource

__all__ = ("DocsPage", "OpenAPIResource", "render_docs")

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; }
code, .type { font-family: monospace; }
table { border-collapse: collapse; margin: 0.5em 0 1em; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
.op { border-top: 2px solid #888; margin-top: 1.5em; }
.method { font-weight: bold; padding: 0 0.3em; border-radius: 3px; color: #fff; }
.GET { background: #2a7; } .POST { background: #27a; } .DELETE { background: #a33; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _type(schema: Mapping[str, Any]) -> str:
    """A schema as one line of HTML: its type and its constraints."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{_esc(name)}">{_esc(name)}</a>'
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    text = _esc(kind)
    if kind == "array":
        text = f"array of {_type(schema.get('items', {}))}"
    notes = []
    if "enum" in schema:
        choices = (f"<code>{_esc(json.dumps(v))}</code>" for v in schema["enum"])
        notes.append("one of " + ", ".join(choices))
    if "pattern" in schema:
        notes.append(f"matching <code>{_esc(schema['pattern'])}</code>")
    for key, word in (
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("minLength", "length at least"),
        ("maxLength", "length at most"),
    ):
        if key in schema:
            notes.append(f"{word} {_esc(schema[key])}")
    if "default" in schema:
        notes.append(f"default <code>{_esc(json.dumps(schema['default']))}</code>")
    return f'<span class="type">{text}</span>' + (f" ({'; '.join(notes)})" if notes else "")


def _rows(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _parameters(op: Mapping[str, Any]) -> str:
    rows = [
        (
            f"<code>{_esc(p['name'])}</code>",
            _esc(p["in"]),
            "yes" if p.get("required") else "",
            _type(p.get("schema", {})),
            _esc(p.get("description", "")),
        )
        for p in op.get("parameters", [])
    ]
    if not rows:
        return ""
    return "<h4>Parameters</h4>" + _rows(("Name", "In", "Required", "Type", "Description"), rows)


def _body(op: Mapping[str, Any]) -> str:
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return ""
    form = content.get("application/x-www-form-urlencoded", {}).get("schema", {})
    as_json = content.get("application/json", {}).get("schema", {})
    required = set(form.get("required", []))
    rows = [
        (
            f"<code>{_esc(name)}</code>",
            "yes" if name in required else "",
            _type(as_json.get("properties", {}).get(name, schema)),
            _esc(schema.get("description", "")),
        )
        for name, schema in form.get("properties", {}).items()
    ]
    kinds = ", ".join(f"<code>{_esc(k)}</code>" for k in content)
    return f"<h4>Body ({kinds})</h4>" + _rows(("Field", "Required", "Type", "Description"), rows)


def _responses(op: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    shared = document.get("components", {}).get("responses", {})
    rows = []
    for status, response in op.get("responses", {}).items():
        if "$ref" in response:
            response = shared.get(str(response["$ref"]).rsplit("/", 1)[-1], {})
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        rows.append(
            (_esc(status), _esc(response.get("description", "")), _type(schema) if schema else "")
        )
    return "<h4>Responses</h4>" + _rows(("Status", "When", "Body"), rows)


def _schemas(document: Mapping[str, Any]) -> str:
    parts = ['<h2 id="schemas">Response bodies</h2>']
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        rows = [
            (f"<code>{_esc(field)}</code>", "always" if field in required else "", _type(sub))
            for field, sub in schema.get("properties", {}).items()
        ]
        parts.append(f'<h3 id="schema-{_esc(name)}">{_esc(name)}</h3>')
        if schema.get("description"):
            parts.append(f"<p>{_esc(schema['description'])}</p>")
        parts.append(_rows(("Field", "Present", "Type"), rows))
    return "".join(parts)


def render_docs(document: Mapping[str, Any]) -> bytes:
    """The HTML page of an OpenAPI document: every operation, field and response body."""
    info = document.get("info", {})
    toc = []
    ops = []
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            anchor = _esc(op.get("operationId") or f"{method}-{path}")
            label = f'<span class="method {method.upper()}">{method.upper()}</span>'
            toc.append(
                f'<li><a href="#{anchor}">{label} <code>{_esc(path)}</code></a> '
                f"{_esc(op.get('summary', ''))}</li>"
            )
            desc = f"<p>{_esc(op['description'])}</p>" if op.get("description") else ""
            ops.append(
                f'<div class="op"><h3 id="{anchor}">{label} <code>{_esc(path)}</code></h3>'
                f"<p>{_esc(op.get('summary', ''))}</p>{desc}"
                f"{_parameters(op)}{_body(op)}{_responses(op, document)}</div>"
            )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(info.get('title', 'API'))}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(info.get('title', 'API'))} {_esc(info.get('version', ''))}</h1>"
        f"<p>{_esc(info.get('description', ''))}</p>"
        '<p>The same as OpenAPI 3.1: <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>'
        f"<h2>Operations</h2><ul>{''.join(toc)}</ul>{''.join(ops)}{_schemas(document)}"
        "</body></html>"
    )
    return page.encode("utf-8")


class OpenAPIResource(Resource):
    """Serves the OpenAPI document as JSON."""

    isLeaf = True

    def __init__(self, document: Mapping[str, Any]) -> None:
        super().__init__()
        self._body = json.dumps(document, indent=1).encode("utf-8")

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader("content-type", "application/json")
        return self._body


class DocsPage(Resource):
    """Serves the HTML page of the OpenAPI document."""

    isLeaf = True

    def __init__(self, document: Mapping[str, Any]) -> None:
        super().__init__()
        self._body = render_docs(document)

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader("content-type", "text/html; charset=utf-8")
        return self._body
