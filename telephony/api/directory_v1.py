"""REST v1 for the directory, with Plivo's paths, fields and JSON.

``/Endpoint/``, ``/Application/`` and ``/Number/`` under ``/v1/Account/{auth_id}``:
create (POST, 201), get, list (``limit``/``offset`` and Plivo's ``meta`` block),
update (POST, 202), delete (DELETE, 204).  Parameters Plivo defines that this
server does not implement (sub-accounts) are refused with a 400 that says so,
never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import attrs

from telephony.api._http import ApiRequest, Reply, Route, new_api_id
from telephony.directory import Application, Directory, Endpoint, FieldError, Number, rules
from telephony.directory.models import ApplicationFields, Page
from telephony.location import RegistrationInfo

__all__ = ("DirectoryAPI",)


#: Looks up an endpoint's registration by full username; the registrar provides it.
RegistrationLookup = Callable[[str], RegistrationInfo | None]

#: Accepted for compatibility with the SDK; they ask for a callback we don't make.
_SDK_CALLBACK = ("callback_url", "callback_method")

_APP_URL_FIELDS = ("answer_url", "hangup_url", "fallback_answer_url", "message_url")
_APP_METHOD_FIELDS = ("answer_method", "hangup_method", "fallback_method", "message_method")
_APP_BOOL_FIELDS = (
    "default_endpoint_app",
    "default_number_app",
    "log_incoming_messages",
    "public_uri",
)
_APP_PARAMS = ("app_name", *_APP_URL_FIELDS, *_APP_METHOD_FIELDS, *_APP_BOOL_FIELDS)
_NUMBER_TYPES = ("local", "national", "mobile", "tollfree", "fixed")


def _no_subaccount(req: ApiRequest) -> None:
    if req.params.get("subaccount") not in (None, ""):
        raise FieldError("subaccount", "sub-accounts are not supported by this server")


def _meta(
    req: ApiRequest, resource: str, page: Page[Any], extra: Mapping[str, str]
) -> dict[str, Any]:
    def link(offset: int) -> str:
        query = urlencode({**extra, "limit": page.limit, "offset": offset})
        return f"{req.base_uri}/{resource}/?{query}"

    following = page.offset + page.limit
    return {
        "limit": page.limit,
        "offset": page.offset,
        "total_count": page.total_count,
        "next": link(following) if following < page.total_count else None,
        "previous": link(max(0, page.offset - page.limit)) if page.offset > 0 else None,
    }


def _paging(req: ApiRequest) -> tuple[int, int]:
    limit = rules.parse_limit(req.params.get("limit", 20))
    offset = rules.parse_offset(req.params.get("offset", 0))
    return limit, offset


def _opt(req: ApiRequest, name: str, parse: Callable[[object], Any]) -> dict[str, Any]:
    """``{name: parse(value)}`` when the client sent *name*, else ``{}``."""
    return {name: parse(req.params[name])} if name in req.params else {}


@attrs.define
class DirectoryAPI:
    """The handlers; :meth:`routes` lists them for :class:`~telephony.api._http.JSONRouter`.

    :ivar domain: the SIP domain of endpoints' and applications' SIP URIs.
    :ivar registrations: the registrar's view of endpoints (None until it runs).
    """

    directory: Directory
    domain: str
    registrations: RegistrationLookup | None = None

    def routes(self) -> list[Route]:
        """Every route of this API."""
        table: Iterable[tuple[str, str, Callable[[ApiRequest], Any]]] = (
            ("POST", r"/Endpoint/", self.create_endpoint),
            ("GET", r"/Endpoint/", self.list_endpoints),
            ("GET", r"/Endpoint/(?P<endpoint_id>[^/]+)/", self.get_endpoint),
            ("POST", r"/Endpoint/(?P<endpoint_id>[^/]+)/", self.update_endpoint),
            ("DELETE", r"/Endpoint/(?P<endpoint_id>[^/]+)/", self.delete_endpoint),
            ("POST", r"/Application/", self.create_application),
            ("GET", r"/Application/", self.list_applications),
            ("GET", r"/Application/(?P<app_id>[^/]+)/", self.get_application),
            ("POST", r"/Application/(?P<app_id>[^/]+)/", self.update_application),
            ("DELETE", r"/Application/(?P<app_id>[^/]+)/", self.delete_application),
            ("POST", r"/Number/", self.add_numbers),
            ("GET", r"/Number/", self.list_numbers),
            ("GET", r"/Number/(?P<number>[^/]+)/", self.get_number),
            ("POST", r"/Number/(?P<number>[^/]+)/", self.update_number),
            ("DELETE", r"/Number/(?P<number>[^/]+)/", self.delete_number),
        )
        return [Route(method, re.compile(pattern), handler) for method, pattern, handler in table]

    # -- representations ---------------------------------------------------

    def app_sip_uri(self, app_id: str) -> str:
        """An application's own SIP URI; ``app-`` keeps it apart from any endpoint's."""
        return f"sip:app-{app_id}@{self.domain}"

    def endpoint_json(self, req: ApiRequest, endpoint: Endpoint) -> dict[str, Any]:
        """An endpoint as Plivo shows it (never any password or hash)."""
        body: dict[str, Any] = {
            "alias": endpoint.alias,
            "application": _app_uri(req, endpoint.app_id),
            "app_id": endpoint.app_id,
            "endpoint_id": endpoint.endpoint_id,
            "resource_uri": f"{req.base_uri}/Endpoint/{endpoint.endpoint_id}/",
            "sip_registered": "false",
            "sip_uri": f"sip:{endpoint.username}@{self.domain}",
            "sub_account": None,
            "username": endpoint.username,
        }
        info = self.registrations(endpoint.username) if self.registrations else None
        if info is not None:
            body.update(
                sip_registered="true",
                sip_contact=info.contact,
                sip_expires=info.expires,
                sip_user_agent=info.user_agent,
            )
        return body

    def application_json(self, req: ApiRequest, app: Application) -> dict[str, Any]:
        """An application as Plivo shows it (URLs not set are empty strings)."""
        fields = attrs.asdict(app.fields)
        for name in _APP_URL_FIELDS:
            fields[name] = fields[name] or ""
        return {
            **fields,
            "app_id": app.app_id,
            "default_app": app.fields.default_number_app,
            "enabled": True,
            "resource_uri": f"{req.base_uri}/Application/{app.app_id}/",
            "sip_uri": self.app_sip_uri(app.app_id),
            "sub_account": None,
            "builtin": app.builtin,
        }

    @staticmethod
    def number_json(req: ApiRequest, number: Number) -> dict[str, Any]:
        """A number as Plivo shows it."""
        return {
            "added_on": number.added_on[:10],
            "alias": number.alias,
            "application": _app_uri(req, number.app_id),
            "app_id": number.app_id,
            "carrier": number.carrier,
            "number": number.number,
            "number_type": number.number_type,
            "region": number.region,
            "resource_uri": f"{req.base_uri}/Number/{number.number}/",
            "sms_enabled": False,
            "voice_enabled": True,
            "sub_account": None,
        }

    # -- endpoints ---------------------------------------------------------

    async def create_endpoint(self, req: ApiRequest) -> Reply:
        """POST /Endpoint/: username, password, alias, optional app_id."""
        req.allow(("username", "password", "alias", "app_id", *_SDK_CALLBACK))
        endpoint = await self.directory.create_endpoint(
            rules.parse_username(req.require("username")),
            rules.parse_password(req.require("password")),
            rules.parse_alias(req.require("alias")),
            _optional_app_id(req, "app_id"),
        )
        return Reply(
            201,
            {
                "alias": endpoint.alias,
                "api_id": new_api_id(),
                "endpoint_id": endpoint.endpoint_id,
                "message": "created",
                "username": endpoint.username,
            },
        )

    async def list_endpoints(self, req: ApiRequest) -> Reply:
        """GET /Endpoint/."""
        req.allow(("limit", "offset", *_SDK_CALLBACK))
        page = await self.directory.list_endpoints(*_paging(req))
        objects = [self.endpoint_json(req, e) for e in page.items]
        return _list_reply(_meta(req, "Endpoint", page, {}), objects)

    async def get_endpoint(self, req: ApiRequest) -> Reply:
        """GET /Endpoint/{endpoint_id}/."""
        req.allow(_SDK_CALLBACK)
        endpoint = await self.directory.get_endpoint(req.path_args["endpoint_id"])
        return Reply(200, {"api_id": new_api_id(), **self.endpoint_json(req, endpoint)})

    async def update_endpoint(self, req: ApiRequest) -> Reply:
        """POST /Endpoint/{endpoint_id}/: password, alias, app_id ("" detaches)."""
        req.allow(("password", "alias", "app_id", *_SDK_CALLBACK))
        changes: dict[str, Any] = {
            **_opt(req, "password", rules.parse_password),
            **_opt(req, "alias", rules.parse_alias),
        }
        if "app_id" in req.params:
            changes["app_id"] = _optional_app_id(req, "app_id")
        await self.directory.update_endpoint(req.path_args["endpoint_id"], **changes)
        return _changed()

    async def delete_endpoint(self, req: ApiRequest) -> Reply:
        """DELETE /Endpoint/{endpoint_id}/."""
        req.allow(_SDK_CALLBACK)
        await self.directory.delete_endpoint(req.path_args["endpoint_id"])
        return Reply(204, None)

    # -- applications ------------------------------------------------------

    def _app_changes(self, req: ApiRequest) -> dict[str, Any]:
        _no_subaccount(req)
        changes: dict[str, Any] = {**_opt(req, "app_name", rules.parse_app_name)}
        for name in _APP_URL_FIELDS:
            if name in req.params:
                parse = rules.parse_url if name == "answer_url" else rules.parse_optional_url
                changes[name] = parse(name, req.params[name])
        for name in _APP_METHOD_FIELDS:
            if name in req.params:
                changes[name] = rules.parse_method(name, req.params[name])
        for name in _APP_BOOL_FIELDS:
            if name in req.params:
                changes[name] = rules.parse_bool(name, req.params[name])
        return changes

    async def create_application(self, req: ApiRequest) -> Reply:
        """POST /Application/: app_name and answer_url required, the rest optional."""
        req.allow((*_APP_PARAMS, "subaccount", *_SDK_CALLBACK))
        rules.parse_app_name(req.require("app_name"))
        rules.parse_url("answer_url", req.require("answer_url"))
        app = await self.directory.create_application(ApplicationFields(**self._app_changes(req)))
        return Reply(201, {"api_id": new_api_id(), "app_id": app.app_id, "message": "created"})

    async def list_applications(self, req: ApiRequest) -> Reply:
        """GET /Application/, optionally filtered by ``app_name``."""
        req.allow(("limit", "offset", "app_name", "subaccount", *_SDK_CALLBACK))
        _no_subaccount(req)
        name = req.params.get("app_name")
        app_name = rules.parse_app_name(name) if name is not None else None
        page = await self.directory.list_applications(*_paging(req), app_name=app_name)
        extra = {"app_name": app_name} if app_name is not None else {}
        objects = [self.application_json(req, a) for a in page.items]
        return _list_reply(_meta(req, "Application", page, extra), objects)

    async def get_application(self, req: ApiRequest) -> Reply:
        """GET /Application/{app_id}/."""
        req.allow(_SDK_CALLBACK)
        app = await self.directory.get_application(req.path_args["app_id"])
        return Reply(200, {"api_id": new_api_id(), **self.application_json(req, app)})

    async def update_application(self, req: ApiRequest) -> Reply:
        """POST /Application/{app_id}/: any field of create."""
        req.allow((*_APP_PARAMS, "subaccount", *_SDK_CALLBACK))
        await self.directory.update_application(req.path_args["app_id"], self._app_changes(req))
        return _changed()

    async def delete_application(self, req: ApiRequest) -> Reply:
        """DELETE /Application/{app_id}/ with ``cascade`` (default true) and
        ``new_endpoint_application``."""
        req.allow(("cascade", "new_endpoint_application", *_SDK_CALLBACK))
        cascade = rules.parse_bool("cascade", req.params.get("cascade", True))
        new_app = _optional_app_id(req, "new_endpoint_application")
        if cascade and new_app is not None:
            raise FieldError("new_endpoint_application", "only applies when cascade is false")
        await self.directory.delete_application(req.path_args["app_id"], cascade, new_app)
        return Reply(204, None)

    # -- numbers -----------------------------------------------------------

    async def add_numbers(self, req: ApiRequest) -> Reply:
        """POST /Number/: add numbers from our own carrier (``numbers`` comma-separated)."""
        req.allow(("numbers", "carrier", "region", "number_type", "app_id", "subaccount"))
        _no_subaccount(req)
        raw = req.require("numbers")
        items = raw if isinstance(raw, list) else rules.parse_text("numbers", raw, 2000).split(",")
        numbers = [rules.parse_number("numbers", item) for item in items]
        number_type = rules.parse_text("number_type", req.params.get("number_type", "local"), 20)
        if number_type not in _NUMBER_TYPES:
            raise FieldError("number_type", f"one of {', '.join(_NUMBER_TYPES)}")
        added = await self.directory.add_numbers(
            numbers,
            rules.parse_text("carrier", req.require("carrier"), 100),
            rules.parse_text("region", req.require("region"), 100),
            number_type,
            _optional_app_id(req, "app_id"),
        )
        return Reply(
            201,
            {"api_id": new_api_id(), "message": "created", "numbers": [n.number for n in added]},
        )

    async def list_numbers(self, req: ApiRequest) -> Reply:
        """GET /Number/ with ``number_startswith``, ``alias``, ``type``."""
        req.allow(("limit", "offset", "number_startswith", "alias", "type", "services"))
        startswith = req.params.get("number_startswith")
        if startswith is not None and not re.fullmatch(r"[0-9]{1,15}", str(startswith)):
            raise FieldError("number_startswith", "1 to 15 digits")
        alias = req.params.get("alias")
        kind = req.params.get("type")
        page = await self.directory.list_numbers(
            *_paging(req),
            number_startswith=str(startswith) if startswith is not None else None,
            alias=rules.parse_number_alias(alias) if alias is not None else None,
            number_type=rules.parse_text("type", kind, 20) if kind is not None else None,
        )
        extra = {k: str(v) for k, v in req.params.items() if k not in ("limit", "offset")}
        objects = [self.number_json(req, n) for n in page.items]
        return _list_reply(_meta(req, "Number", page, extra), objects)

    async def get_number(self, req: ApiRequest) -> Reply:
        """GET /Number/{number}/."""
        req.allow(())
        number = await self.directory.get_number(_path_number(req))
        return Reply(200, {"api_id": new_api_id(), **self.number_json(req, number)})

    async def update_number(self, req: ApiRequest) -> Reply:
        """POST /Number/{number}/: ``app_id`` ("" detaches) and ``alias``."""
        req.allow(("app_id", "alias", "subaccount"))
        _no_subaccount(req)
        changes: dict[str, Any] = {**_opt(req, "alias", rules.parse_number_alias)}
        if "app_id" in req.params:
            changes["app_id"] = _optional_app_id(req, "app_id")
        await self.directory.update_number(_path_number(req), **changes)
        return _changed()

    async def delete_number(self, req: ApiRequest) -> Reply:
        """DELETE /Number/{number}/."""
        req.allow(())
        await self.directory.delete_number(_path_number(req))
        return Reply(204, None)


def _changed() -> Reply:
    return Reply(202, {"api_id": new_api_id(), "message": "changed"})


def _list_reply(meta: dict[str, Any], objects: list[dict[str, Any]]) -> Reply:
    return Reply(200, {"api_id": new_api_id(), "meta": meta, "objects": objects})


def _app_uri(req: ApiRequest, app_id: str | None) -> str | None:
    return f"{req.base_uri}/Application/{app_id}/" if app_id else None


def _optional_app_id(req: ApiRequest, name: str) -> str | None:
    value = req.params.get(name)
    if value is None or value == "":
        return None
    return rules.parse_id(name, value)


def _path_number(req: ApiRequest) -> str:
    return rules.parse_number("number", req.path_args["number"])
