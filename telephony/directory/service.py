"""The directory: endpoints, applications and numbers, kept in the database.

Every public method returns a Deferred and runs as one transaction, so a request
that breaks a rule halfway changes nothing.  Inputs arrive already parsed by
:mod:`telephony.directory.rules`; what needs the stored state (does this app
exist, is this number already ours) is checked here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from telephony.directory._errors import ConflictError, FieldError, NotFoundError
from telephony.directory.database import Cursor, Database
from telephony.directory.models import Application, ApplicationFields, Endpoint, Number, Page
from telephony.directory.rules import USERNAME_SUFFIX_DIGITS
from telephony.sip.digest import DigestAlgorithm, compute_ha1

__all__ = ("DIRECT_DIAL", "MAX_NUMBERS_PER_REQUEST", "UNSET", "Directory")

T = TypeVar("T")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Not given" in an update, as opposed to None ("clear it").
UNSET: Final = _Unset()
#: The ``builtin`` tag of the Direct Dial application.
DIRECT_DIAL = "direct_dial"
#: Numbers one add request may carry.
MAX_NUMBERS_PER_REQUEST = 100
#: Attempts at drawing an unused random ID or username suffix before giving up.
_ID_ATTEMPTS = 20

_ENDPOINT_COLUMNS = "endpoint_id, username, alias, realm, ha1_md5, ha1_sha256, app_id, created_at"
_APP_FIELD_NAMES = tuple(a.name for a in attrs.fields(ApplicationFields))
_APP_BOOLS = frozenset(a.name for a in attrs.fields(ApplicationFields) if a.type in (bool, "bool"))
_APP_COLUMNS = "app_id, " + ", ".join(_APP_FIELD_NAMES) + ", builtin, created_at"
_NUMBER_COLUMNS = "number, alias, app_id, carrier, region, number_type, added_on"
_ORDER = {
    "endpoints": "created_at, endpoint_id",
    "applications": "created_at, app_id",
    "numbers": "added_on, number",
}


def _random_digits(n: int) -> str:
    """*n* random decimal digits, the first one not 0."""
    return str(secrets.randbelow(9 * 10 ** (n - 1)) + 10 ** (n - 1))


def _endpoint(row: tuple[Any, ...]) -> Endpoint:
    return Endpoint(*row)


def _application(row: tuple[Any, ...]) -> Application:
    values = dict(zip(_APP_FIELD_NAMES, row[1:-2], strict=True))
    for name in _APP_BOOLS:
        values[name] = bool(values[name])
    return Application(row[0], ApplicationFields(**values), row[-2], row[-1])


def _number(row: tuple[Any, ...]) -> Number:
    return Number(*row)


@attrs.define
class Directory:
    """Endpoints, applications and numbers, with the rules that need stored state.

    :ivar realm: digest realm (the SIP domain) the HA1 hashes are computed with.
    """

    _db: Database
    realm: str
    _clock: IReactorTime
    _listeners: list[Callable[[str | None], None]] = attrs.Factory(list)

    def subscribe(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(username)`` after an endpoint changed or went (None: maybe several).

        Caches of credentials and registrations use it to forget what is no longer true.
        """
        self._listeners.append(listener)

    def _changed(self, username: str | None) -> None:
        for listener in list(self._listeners):
            listener(username)

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock.seconds(), UTC).isoformat(timespec="microseconds")

    def _run(self, fn: Callable[[Cursor], T]) -> Deferred[T]:
        return self._db.run_interaction(fn)

    # -- endpoints ---------------------------------------------------------

    def create_endpoint(
        self, username: str, password: str, alias: str, app_id: str | None = None
    ) -> Deferred[Endpoint]:
        """Create an endpoint named *username* + 12 random digits.

        :raises FieldError: ``app_id`` names no application.
        """
        realm = self.realm

        def txn(cur: Cursor) -> Endpoint:
            if app_id is not None:
                _require_app(cur, app_id, "app_id")
            full = _unused(
                cur,
                "SELECT 1 FROM endpoints WHERE username = ?",
                lambda: username + f"{secrets.randbelow(10**USERNAME_SUFFIX_DIGITS):012d}",
            )
            endpoint_id = _unused(
                cur, "SELECT 1 FROM endpoints WHERE endpoint_id = ?", lambda: _random_digits(14)
            )
            endpoint = Endpoint(
                endpoint_id,
                full,
                alias,
                realm,
                compute_ha1(DigestAlgorithm.MD5, full, realm, password),
                compute_ha1(DigestAlgorithm.SHA256, full, realm, password),
                app_id,
                self._now(),
            )
            cur.execute(
                f"INSERT INTO endpoints ({_ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                attrs.astuple(endpoint),
            )
            return endpoint

        return self._run(txn)

    def get_endpoint(self, endpoint_id: str) -> Deferred[Endpoint]:
        """The endpoint with this ID.  :raises NotFoundError:"""
        return self._run(lambda cur: _get_endpoint(cur, endpoint_id))

    def find_endpoint(self, username: str) -> Deferred[Endpoint | None]:
        """The endpoint with this full SIP username, or None."""

        def txn(cur: Cursor) -> Endpoint | None:
            row = cur.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE username = ?", (username,)
            ).fetchone()
            return None if row is None else _endpoint(row)

        return self._run(txn)

    def list_endpoints(self, limit: int = 20, offset: int = 0) -> Deferred[Page[Endpoint]]:
        """A page of endpoints, oldest first."""
        return self._run(
            lambda cur: _page(cur, "endpoints", _ENDPOINT_COLUMNS, _endpoint, limit, offset)
        )

    def update_endpoint(
        self,
        endpoint_id: str,
        *,
        password: str | _Unset = UNSET,
        alias: str | _Unset = UNSET,
        app_id: str | _Unset | None = UNSET,
    ) -> Deferred[Endpoint]:
        """Change an endpoint's password, alias or application (None detaches it).

        :raises NotFoundError: no such endpoint.
        :raises FieldError: ``app_id`` names no application.
        """

        def txn(cur: Cursor) -> Endpoint:
            endpoint = _get_endpoint(cur, endpoint_id)
            changes: dict[str, Any] = {}
            if not isinstance(password, _Unset):
                realm = self.realm
                changes.update(
                    realm=realm,
                    ha1_md5=compute_ha1(DigestAlgorithm.MD5, endpoint.username, realm, password),
                    ha1_sha256=compute_ha1(
                        DigestAlgorithm.SHA256, endpoint.username, realm, password
                    ),
                )
            if not isinstance(alias, _Unset):
                changes["alias"] = alias
            if not isinstance(app_id, _Unset):
                if app_id is not None:
                    _require_app(cur, app_id, "app_id")
                changes["app_id"] = app_id
            if changes:
                _update(cur, "endpoints", "endpoint_id", endpoint_id, changes)
            return attrs.evolve(endpoint, **changes)

        return self._run(txn).addCallback(self._notify_endpoint)

    def _notify_endpoint(self, endpoint: Endpoint) -> Endpoint:
        self._changed(endpoint.username)
        return endpoint

    def delete_endpoint(self, endpoint_id: str) -> Deferred[None]:
        """Delete an endpoint (its registrations go with it).  :raises NotFoundError:"""

        def txn(cur: Cursor) -> str:
            username = _get_endpoint(cur, endpoint_id).username
            _delete(cur, "endpoints", "endpoint_id", endpoint_id)
            return username

        return self._run(txn).addCallback(self._changed)

    # -- applications ------------------------------------------------------

    def create_application(
        self, fields: ApplicationFields, builtin: str | None = None
    ) -> Deferred[Application]:
        """Create an application; a default flag set here is cleared on the others."""

        def txn(cur: Cursor) -> Application:
            app_id = _unused(
                cur, "SELECT 1 FROM applications WHERE app_id = ?", lambda: _random_digits(17)
            )
            app = Application(app_id, fields, builtin, self._now())
            _clear_defaults(cur, fields, app_id)
            row = (app_id, *attrs.astuple(fields), builtin, app.created_at)
            marks = ", ".join("?" * len(row))
            cur.execute(f"INSERT INTO applications ({_APP_COLUMNS}) VALUES ({marks})", row)
            return app

        return self._run(txn)

    def get_application(self, app_id: str) -> Deferred[Application]:
        """The application with this ID.  :raises NotFoundError:"""
        return self._run(lambda cur: _get_application(cur, app_id))

    def default_application(self, flag: str) -> Deferred[Application | None]:
        """The application marked ``default_endpoint_app`` or ``default_number_app``."""
        if flag not in ("default_endpoint_app", "default_number_app"):
            raise ValueError(f"not a default flag: {flag}")

        def txn(cur: Cursor) -> Application | None:
            row = cur.execute(
                f"SELECT {_APP_COLUMNS} FROM applications WHERE {flag} = 1 ORDER BY created_at"
            ).fetchone()
            return None if row is None else _application(row)

        return self._run(txn)

    def find_number(self, number: str) -> Deferred[Number | None]:
        """The number (E.164 digits) if we own it, else None."""

        def txn(cur: Cursor) -> Number | None:
            row = cur.execute(
                f"SELECT {_NUMBER_COLUMNS} FROM numbers WHERE number = ?", (number,)
            ).fetchone()
            return None if row is None else _number(row)

        return self._run(txn)

    def find_application(self, app_id: str) -> Deferred[Application | None]:
        """The application with this ID, or None."""

        def txn(cur: Cursor) -> Application | None:
            row = cur.execute(
                f"SELECT {_APP_COLUMNS} FROM applications WHERE app_id = ?", (app_id,)
            ).fetchone()
            return None if row is None else _application(row)

        return self._run(txn)

    def list_applications(
        self, limit: int = 20, offset: int = 0, app_name: str | None = None
    ) -> Deferred[Page[Application]]:
        """A page of applications, oldest first, optionally only those named *app_name*."""
        where = ("app_name = ?", (app_name,)) if app_name is not None else None
        return self._run(
            lambda cur: _page(cur, "applications", _APP_COLUMNS, _application, limit, offset, where)
        )

    def update_application(self, app_id: str, changes: Mapping[str, Any]) -> Deferred[Application]:
        """Change some fields of an application (names as in :class:`ApplicationFields`).

        :raises NotFoundError: no such application.
        """
        unknown = set(changes) - set(_APP_FIELD_NAMES)
        if unknown:
            raise FieldError(sorted(unknown)[0], "not a field of an application")

        def txn(cur: Cursor) -> Application:
            app = _get_application(cur, app_id)
            fields = attrs.evolve(app.fields, **changes)
            _clear_defaults(cur, fields, app_id)
            if changes:
                _update(cur, "applications", "app_id", app_id, dict(changes))
            return attrs.evolve(app, fields=fields)

        return self._run(txn)

    def delete_application(
        self, app_id: str, cascade: bool = True, new_endpoint_application: str | None = None
    ) -> Deferred[None]:
        """Delete an application, as Plivo does.

        With *cascade* (the default) its endpoints are deleted too; otherwise they
        move to *new_endpoint_application*, or are left without an application.
        Numbers attached to it are left without an application.

        :raises NotFoundError: no such application.
        :raises FieldError: *new_endpoint_application* names no other application.
        """

        def txn(cur: Cursor) -> None:
            _get_application(cur, app_id)
            if new_endpoint_application is not None:
                if new_endpoint_application == app_id:
                    raise FieldError(
                        "new_endpoint_application", "must differ from the deleted application"
                    )
                _require_app(cur, new_endpoint_application, "new_endpoint_application")
            if cascade:
                cur.execute("DELETE FROM endpoints WHERE app_id = ?", (app_id,))
            else:
                cur.execute(
                    "UPDATE endpoints SET app_id = ? WHERE app_id = ?",
                    (new_endpoint_application, app_id),
                )
            cur.execute("UPDATE numbers SET app_id = NULL WHERE app_id = ?", (app_id,))
            _delete(cur, "applications", "app_id", app_id)

        return self._run(txn).addCallback(lambda _: self._changed(None))

    def ensure_builtin_application(
        self,
        builtin: str,
        desired: Callable[[ApplicationFields | None], ApplicationFields],
    ) -> Deferred[Application]:
        """Create the built-in application *builtin*, or bring its fields up to date.

        ``desired(current)`` gets the stored fields (None on first start) and returns the
        fields wanted now, so that what follows this server's configuration (its own
        URL) is refreshed while an operator's changes (a caller ID in the query) stay.
        """

        def txn(cur: Cursor) -> Application | None:
            row = cur.execute(
                f"SELECT {_APP_COLUMNS} FROM applications WHERE builtin = ?", (builtin,)
            ).fetchone()
            if row is None:
                return None
            app = _application(row)
            wanted = desired(app.fields)
            changes = {
                name: getattr(wanted, name)
                for name in _APP_FIELD_NAMES
                if getattr(wanted, name) != getattr(app.fields, name)
            }
            if changes:
                _clear_defaults(cur, wanted, app.app_id)
                _update(cur, "applications", "app_id", app.app_id, changes)
            return attrs.evolve(app, fields=wanted)

        def created_if_missing(app: Application | None) -> Deferred[Application] | Application:
            if app is None:
                return self.create_application(desired(None), builtin)
            return app

        return self._run(txn).addCallback(created_if_missing)

    # -- numbers -----------------------------------------------------------

    def add_numbers(
        self,
        numbers: Iterable[str],
        carrier: str,
        region: str,
        number_type: str = "local",
        app_id: str | None = None,
    ) -> Deferred[list[Number]]:
        """Add numbers we own (from our own carrier), all or none.

        :raises ConflictError: one of them is already added.
        :raises FieldError: ``app_id`` names no application, or too many numbers.
        """
        wanted = list(dict.fromkeys(numbers))
        if not 1 <= len(wanted) <= MAX_NUMBERS_PER_REQUEST:
            raise FieldError("numbers", f"1 to {MAX_NUMBERS_PER_REQUEST} numbers per request")

        def txn(cur: Cursor) -> list[Number]:
            if app_id is not None:
                _require_app(cur, app_id, "app_id")
            added = []
            for number in wanted:
                if cur.execute("SELECT 1 FROM numbers WHERE number = ?", (number,)).fetchone():
                    raise ConflictError(f"numbers: {number} is already added")
                record = Number(number, "", app_id, carrier, region, number_type, self._now())
                cur.execute(
                    f"INSERT INTO numbers ({_NUMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    attrs.astuple(record),
                )
                added.append(record)
            return added

        return self._run(txn)

    def get_number(self, number: str) -> Deferred[Number]:
        """The number (E.164 digits).  :raises NotFoundError:"""
        return self._run(lambda cur: _get_number(cur, number))

    def list_numbers(
        self,
        limit: int = 20,
        offset: int = 0,
        number_startswith: str | None = None,
        alias: str | None = None,
        number_type: str | None = None,
    ) -> Deferred[Page[Number]]:
        """A page of numbers, oldest first, with Plivo's filters."""
        clauses: list[str] = []
        params: list[Any] = []
        if number_startswith:
            clauses.append("substr(number, 1, ?) = ?")
            params += [len(number_startswith), number_startswith]
        if alias is not None:
            clauses.append("alias = ?")
            params.append(alias)
        if number_type is not None:
            clauses.append("number_type = ?")
            params.append(number_type)
        where = (" AND ".join(clauses), tuple(params)) if clauses else None
        return self._run(
            lambda cur: _page(cur, "numbers", _NUMBER_COLUMNS, _number, limit, offset, where)
        )

    def update_number(
        self,
        number: str,
        *,
        app_id: str | _Unset | None = UNSET,
        alias: str | _Unset = UNSET,
    ) -> Deferred[Number]:
        """Attach a number to an application (None detaches it) or change its alias."""

        def txn(cur: Cursor) -> Number:
            record = _get_number(cur, number)
            changes: dict[str, Any] = {}
            if not isinstance(app_id, _Unset):
                if app_id is not None:
                    _require_app(cur, app_id, "app_id")
                changes["app_id"] = app_id
            if not isinstance(alias, _Unset):
                changes["alias"] = alias
            if changes:
                _update(cur, "numbers", "number", number, changes)
            return attrs.evolve(record, **changes)

        return self._run(txn)

    def delete_number(self, number: str) -> Deferred[None]:
        """Remove a number from the account.  :raises NotFoundError:"""
        return self._run(lambda cur: _delete(cur, "numbers", "number", number))

    # -- overview ----------------------------------------------------------

    def counts(self) -> Deferred[dict[str, int]]:
        """How many endpoints, applications and numbers are stored."""

        def txn(cur: Cursor) -> dict[str, int]:
            return {
                table: cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for table in ("endpoints", "applications", "numbers")
            }

        return self._run(txn)


# -- helpers run inside a transaction ----------------------------------------


def _unused(cur: Cursor, exists_sql: str, draw: Callable[[], str]) -> str:
    for _ in range(_ID_ATTEMPTS):
        candidate = draw()
        if cur.execute(exists_sql, (candidate,)).fetchone() is None:
            return candidate
    raise ConflictError(f"could not draw an unused identifier in {_ID_ATTEMPTS} attempts")


def _require_app(cur: Cursor, app_id: str, field: str) -> None:
    if cur.execute("SELECT 1 FROM applications WHERE app_id = ?", (app_id,)).fetchone() is None:
        raise FieldError(field, f"no application with ID {app_id}")


def _get_endpoint(cur: Cursor, endpoint_id: str) -> Endpoint:
    row = cur.execute(
        f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"endpoint {endpoint_id} not found")
    return _endpoint(row)


def _get_application(cur: Cursor, app_id: str) -> Application:
    row = cur.execute(
        f"SELECT {_APP_COLUMNS} FROM applications WHERE app_id = ?", (app_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"application {app_id} not found")
    return _application(row)


def _get_number(cur: Cursor, number: str) -> Number:
    row = cur.execute(
        f"SELECT {_NUMBER_COLUMNS} FROM numbers WHERE number = ?", (number,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"number {number} not found")
    return _number(row)


def _clear_defaults(cur: Cursor, fields: ApplicationFields, app_id: str) -> None:
    """Only one application may be the default for endpoints, one for numbers."""
    for flag in ("default_endpoint_app", "default_number_app"):
        if getattr(fields, flag):
            cur.execute(f"UPDATE applications SET {flag} = 0 WHERE app_id <> ?", (app_id,))


def _update(cur: Cursor, table: str, key: str, value: str, changes: Mapping[str, Any]) -> None:
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cur.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", (*changes.values(), value))


def _delete(cur: Cursor, table: str, key: str, value: str) -> None:
    if cur.execute(f"DELETE FROM {table} WHERE {key} = ?", (value,)).rowcount == 0:
        raise NotFoundError(f"{table[:-1]} {value} not found")


def _page(
    cur: Cursor,
    table: str,
    columns: str,
    make: Callable[[tuple[Any, ...]], T],
    limit: int,
    offset: int,
    where: tuple[str, tuple[Any, ...]] | None = None,
) -> Page[T]:
    """One page of *table*, oldest first (the first column breaks ties)."""
    clause, params = (f" WHERE {where[0]}", where[1]) if where else ("", ())
    total = cur.execute(f"SELECT COUNT(*) FROM {table}{clause}", params).fetchone()
    rows = cur.execute(
        f"SELECT {columns} FROM {table}{clause} ORDER BY {_ORDER[table]} LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    return Page(tuple(make(row) for row in rows), total[0] if total else 0, limit, offset)
