"""The schema: one migration script per version; opening a store brings older records up to
date (SQLite's ``PRAGMA user_version``, or PostgreSQL's ``schema_version`` table, counts the
scripts applied).

A migration is written once, in SQLite's words, and runs on both engines:
``retrotread.store.backend`` renders it for PostgreSQL (``REAL`` as ``DOUBLE PRECISION``, an
``INTEGER PRIMARY KEY`` as an identity column, SQLite's implicit ``rowid`` as a column,
``COLLATE NOCASE`` as an ICU collation). Keep to plain DDL: ``CREATE TABLE`` (closing ``);`` on
a line of its own), ``CREATE [UNIQUE] INDEX``, ``ALTER TABLE ... ADD COLUMN``; no SQLite-only
column types or ``WITHOUT ROWID``. tests/test_store*.py run every migration on both.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        client_id INTEGER REFERENCES clients(id),
        program TEXT NOT NULL,
        program_source TEXT NOT NULL DEFAULT '',
        program_toml TEXT,
        device TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        phase TEXT,
        interval_s INTEGER NOT NULL DEFAULT 0,
        handrail TEXT,
        plan_reason TEXT NOT NULL DEFAULT '',
        blocks_total INTEGER NOT NULL,
        blocks_done INTEGER NOT NULL DEFAULT 0,
        retro_s REAL NOT NULL DEFAULT 0,
        elapsed_s REAL NOT NULL DEFAULT 0,
        distance_m REAL NOT NULL DEFAULT 0,
        belt_stopped INTEGER,
        outcome TEXT,
        note TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        host TEXT
    );
    CREATE INDEX sessions_by_client ON sessions(client_id, started_at);
    CREATE INDEX sessions_by_status ON sessions(status);
    CREATE TABLE blocks (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        handrail TEXT NOT NULL,
        planned_s INTEGER NOT NULL,
        target_mph REAL,
        incline_pct REAL NOT NULL,
        started_at REAL NOT NULL,
        start_offset_s REAL NOT NULL,
        actual_s REAL,
        extended_s INTEGER NOT NULL DEFAULT 0,
        result TEXT NOT NULL,
        PRIMARY KEY (session_id, idx)
    );
    CREATE TABLE samples (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        offset_s REAL NOT NULL,
        block_idx INTEGER,
        target_mph REAL,
        speed_mph REAL NOT NULL,
        incline_pct REAL NOT NULL,
        distance_m REAL NOT NULL
    );
    CREATE INDEX samples_by_session ON samples(session_id, at);
    CREATE TABLE events (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        offset_s REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_session ON events(session_id, at);
    """,
    # 2: a session's own name (a uid), so records written again (from a console's spool to a
    # database that was out of reach) are recognised, not doubled; and how far each spool has
    # been written into these records
    """
    ALTER TABLE sessions ADD COLUMN uid TEXT;
    CREATE UNIQUE INDEX sessions_by_uid ON sessions(uid);
    CREATE TABLE spool_applied (
        spool TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    """,
    # 3: the clinic (retrotread.clinic): a client's limits, how each walk felt, heart rate
    """
    CREATE TABLE client_limits (
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        speed_low_mph REAL,
        speed_high_mph REAL,
        incline_max_pct REAL,
        longest_backward_s INTEGER,
        handrail TEXT,
        retro_run INTEGER NOT NULL DEFAULT 1,
        hr_ceiling_bpm INTEGER,
        age INTEGER,
        hr_percent REAL,
        recovery_mph REAL,
        strap TEXT,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX client_limits_by_client ON client_limits(client_id);
    CREATE TABLE feelings (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        block_idx INTEGER NOT NULL,
        pain INTEGER,
        exertion REAL,
        balance_losses INTEGER,
        handrail TEXT,
        at REAL NOT NULL
    );
    CREATE UNIQUE INDEX feelings_by_session ON feelings(session_id, block_idx);
    CREATE TABLE heart_rate (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        offset_s REAL NOT NULL,
        bpm INTEGER NOT NULL
    );
    CREATE INDEX heart_rate_by_session ON heart_rate(session_id, at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
