"""The monitoring database: its tables, its version, and how it is opened safely.

One SQLite file (WAL) holds any number of runs. The schema is versioned twice
over: a ``meta`` table names the file as serdoctor's (``kind``) and records the
schema ``version``, and ``PRAGMA user_version`` mirrors it, so a reader can
refuse a file that is not a monitoring database, or one written by a newer
serdoctor, before it reads a row. ``docs/monitoring.md`` describes every column.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from serdoctor._sqlite import FileKind, open_versioned
from serdoctor.errors import MonitorError

KIND = "serdoctor-monitoring"
#: Bump when a table or column changes meaning; readers refuse newer versions.
SCHEMA_VERSION = 1

#: Task states, in the order a task normally goes through them.
STATES = ("queued", "sent", "running", "done", "failed", "retried", "cancelled", "memo_hit")

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL, host TEXT, pid INTEGER,
    python TEXT, serdoctor TEXT, env_digest TEXT, executor TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL, task_id INTEGER NOT NULL, fn TEXT, submitted REAL,
    status TEXT NOT NULL, status_time REAL, tries INTEGER NOT NULL DEFAULT 0,
    method TEXT, payload_bytes INTEGER, depends_on TEXT,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS status (
    run_id TEXT NOT NULL, task_id INTEGER NOT NULL, try INTEGER NOT NULL, status TEXT NOT NULL,
    time REAL NOT NULL, pool TEXT, worker TEXT, detail TEXT
);
CREATE TABLE IF NOT EXISTS tries (
    run_id TEXT NOT NULL, task_id INTEGER NOT NULL, try INTEGER NOT NULL,
    pool TEXT, worker TEXT, sent REAL, started REAL, ended REAL,
    method TEXT, payload_bytes INTEGER, result_bytes INTEGER, proxies INTEGER,
    exc_type TEXT, exc_message TEXT, remedy TEXT,
    PRIMARY KEY (run_id, task_id, try)
);
CREATE TABLE IF NOT EXISTS pools (
    run_id TEXT NOT NULL, pool_id TEXT NOT NULL, host TEXT, pid INTEGER, python TEXT,
    env_digest TEXT, workers INTEGER, block_id TEXT, registered REAL, last_heartbeat REAL,
    lost REAL, mismatch TEXT,
    PRIMARY KEY (run_id, pool_id)
);
CREATE TABLE IF NOT EXISTS heartbeats (
    run_id TEXT NOT NULL, pool_id TEXT NOT NULL, time REAL NOT NULL, tasks_running INTEGER
);
CREATE TABLE IF NOT EXISTS blocks (
    run_id TEXT NOT NULL, block_id TEXT NOT NULL, provider TEXT, job_id TEXT, state TEXT,
    submitted REAL, ended REAL, reason TEXT, stderr TEXT,
    PRIMARY KEY (run_id, block_id)
);
"""


MONITORING_DB = FileKind(
    KIND,
    SCHEMA_VERSION,
    DDL,
    "monitoring database",
    "give the file that Executor(monitoring=...) wrote",
    MonitorError,
)


def connect(path: str | Path, *, create: bool, timeout: float = 5.0) -> sqlite3.Connection:
    """Open the monitoring database at ``path`` (creating it when ``create``).

    Raises :class:`MonitorError` that says what to do when the file is not a
    monitoring database, was written by a newer serdoctor, is locked by
    another process, or does not exist (and ``create`` is false). Nothing in
    the file is changed by a refusal.
    """
    return open_versioned(path, MONITORING_DB, create=create, timeout=timeout)
