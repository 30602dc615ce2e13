"""The schema, as numbered migrations applied in order at start-up.

Never edit a released migration: add the next number.  The SQL sticks to what
SQLite and PostgreSQL both accept (TEXT, INTEGER, foreign keys, CHECK).
"""

from __future__ import annotations

import attrs

__all__ = ("MIGRATIONS", "Migration")


@attrs.frozen
class Migration:
    """One schema step: a version number, a name for the log, and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "directory: applications, endpoints, numbers",
        (
            """CREATE TABLE applications (
                app_id TEXT PRIMARY KEY,
                app_name TEXT NOT NULL,
                answer_url TEXT NOT NULL,
                answer_method TEXT NOT NULL CHECK (answer_method IN ('GET', 'POST')),
                hangup_url TEXT,
                hangup_method TEXT NOT NULL CHECK (hangup_method IN ('GET', 'POST')),
                fallback_answer_url TEXT,
                fallback_method TEXT NOT NULL CHECK (fallback_method IN ('GET', 'POST')),
                message_url TEXT,
                message_method TEXT NOT NULL CHECK (message_method IN ('GET', 'POST')),
                default_endpoint_app INTEGER NOT NULL DEFAULT 0,
                default_number_app INTEGER NOT NULL DEFAULT 0,
                log_incoming_messages INTEGER NOT NULL DEFAULT 1,
                public_uri INTEGER NOT NULL DEFAULT 0,
                builtin TEXT UNIQUE,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE endpoints (
                endpoint_id TEXT PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                alias TEXT NOT NULL,
                realm TEXT NOT NULL,
                ha1_md5 TEXT NOT NULL,
                ha1_sha256 TEXT NOT NULL,
                app_id TEXT REFERENCES applications (app_id) ON DELETE SET NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX endpoints_app_id ON endpoints (app_id)",
            """CREATE TABLE numbers (
                number TEXT PRIMARY KEY,
                alias TEXT NOT NULL,
                app_id TEXT REFERENCES applications (app_id) ON DELETE SET NULL,
                carrier TEXT NOT NULL,
                region TEXT NOT NULL,
                number_type TEXT NOT NULL,
                added_on TEXT NOT NULL
            )""",
            "CREATE INDEX numbers_app_id ON numbers (app_id)",
        ),
    ),
    Migration(
        2,
        "registrar: contact bindings",
        (
            """CREATE TABLE bindings (
                username TEXT NOT NULL REFERENCES endpoints (username) ON DELETE CASCADE,
                contact_uri TEXT NOT NULL,
                contact TEXT NOT NULL,
                expires_at REAL NOT NULL,
                registered_at REAL NOT NULL,
                call_id TEXT NOT NULL,
                cseq INTEGER NOT NULL,
                user_agent TEXT NOT NULL,
                transport TEXT NOT NULL,
                source_host TEXT NOT NULL,
                source_port INTEGER NOT NULL,
                PRIMARY KEY (username, contact_uri)
            )""",
            "CREATE INDEX bindings_expires_at ON bindings (expires_at)",
        ),
    ),
    Migration(
        3,
        "calls: one detail record per leg",
        (
            """CREATE TABLE cdrs (
                call_uuid TEXT PRIMARY KEY,
                parent_call_uuid TEXT,
                request_uuid TEXT,
                direction TEXT NOT NULL,
                from_number TEXT NOT NULL,
                to_number TEXT NOT NULL,
                caller_name TEXT NOT NULL,
                call_status TEXT NOT NULL,
                app_id TEXT,
                sip_call_id TEXT NOT NULL,
                start_time TEXT NOT NULL,
                answer_time TEXT,
                end_time TEXT NOT NULL,
                duration INTEGER NOT NULL,
                bill_duration INTEGER NOT NULL,
                hangup_cause_name TEXT NOT NULL,
                hangup_cause_code INTEGER,
                hangup_source TEXT NOT NULL
            )""",
            "CREATE INDEX cdrs_end_time ON cdrs (end_time)",
            "CREATE INDEX cdrs_parent ON cdrs (parent_call_uuid)",
        ),
    ),
    Migration(
        4,
        "recordings: one row per finished recording file",
        (
            """CREATE TABLE recordings (
                recording_id TEXT PRIMARY KEY,
                call_uuid TEXT NOT NULL,
                recording_format TEXT NOT NULL CHECK (recording_format IN ('wav', 'mp3')),
                recording_type TEXT NOT NULL,
                channels INTEGER NOT NULL,
                recording_duration_ms INTEGER NOT NULL,
                recording_start_ms INTEGER NOT NULL,
                recording_end_ms INTEGER NOT NULL,
                add_time TEXT NOT NULL,
                add_epoch REAL NOT NULL,
                from_number TEXT NOT NULL,
                to_number TEXT NOT NULL,
                conference_name TEXT,
                conference_uuid TEXT,
                file_bytes INTEGER NOT NULL
            )""",
            "CREATE INDEX recordings_add_time ON recordings (add_time)",
            "CREATE INDEX recordings_call_uuid ON recordings (call_uuid)",
        ),
    ),
    Migration(
        5,
        "calls: journal of live calls, and the server's heartbeat",
        (
            """CREATE TABLE live_calls (
                call_uuid TEXT PRIMARY KEY,
                parent_call_uuid TEXT,
                request_uuid TEXT,
                direction TEXT NOT NULL,
                from_number TEXT NOT NULL,
                to_number TEXT NOT NULL,
                caller_name TEXT NOT NULL,
                app_id TEXT,
                sip_call_id TEXT NOT NULL,
                started_at REAL NOT NULL,
                hangup_url TEXT,
                hangup_method TEXT NOT NULL,
                answered_at REAL
            )""",
            """CREATE TABLE call_heartbeat (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                alive_at REAL NOT NULL
            )""",
        ),
    ),
)
