"""Opening serdoctor's own SQLite files (checkpoint stores, monitoring databases) safely.

Each such file says what it is: a ``meta`` table holds its ``kind`` and schema
``version`` (also in ``PRAGMA user_version``). :func:`open_versioned` creates
one (WAL mode) or opens one, and refuses — with an error that says what to do,
and without changing the file — a path that does not exist (when it may not
create it), a file that is not SQLite or is damaged, another program's SQLite
database, a file written by a newer serdoctor, and a file locked by another
process for longer than ``timeout``.

It never ``open()``s the file itself to look at it: closing any descriptor of
an SQLite file drops every lock this process holds on it, also another
connection's.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from serdoctor.errors import SerdoctorError


@dataclass(frozen=True)
class FileKind:
    """What a serdoctor SQLite file is, for its checks and its error messages."""

    kind: str  #: written in ``meta`` (``serdoctor-checkpoint``)
    version: int  #: the schema version this serdoctor writes and reads
    ddl: str  #: creates the tables
    what: str  #: in messages: ``checkpoint store``
    hint: str  #: what to do instead, in messages
    error: type[SerdoctorError]


def open_versioned(
    path: str | Path,
    spec: FileKind,
    *,
    create: bool,
    timeout: float = 5.0,
    synchronous: str | None = None,
) -> sqlite3.Connection:
    """Open (or create) the file at ``path``; raise ``spec.error`` when it cannot be used."""
    path = Path(path)
    if not create and not path.exists():
        raise spec.error(f"{path}: no such {spec.what} ({spec.hint})")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if synchronous is not None:
            conn.execute(f"PRAGMA synchronous = {synchronous}")
        _check(conn, path, spec, create=create)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise spec.error(
                f"{path} is locked by another process (for longer than {timeout:g} s): try again "
                "when the process that holds it pauses, or read a copy of the file"
            ) from exc
        raise spec.error(f"{path}: cannot open the {spec.what}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise spec.error(
            f"{path} is not a readable {spec.what} (SQLite says: {exc}): it is damaged or "
            f"another kind of file; {spec.hint}"
        ) from exc
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a file this process has just created to WAL (readers never block the writer).

    Changing the journal mode needs the file to itself, and SQLite answers "locked"
    at once, without waiting, while another process reads it: try for a moment.
    WAL is a setting of the file, so this is done once, by its creator; a file left
    in the default journal mode still works, only with less concurrency.
    """
    for attempt in range(40):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.005 * (attempt + 1))


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _check(conn: sqlite3.Connection, path: Path, spec: FileKind, *, create: bool) -> None:
    tables = _tables(conn)
    if "meta" not in tables and not tables and create:
        # Create under a write lock, in one transaction: a second process opening the
        # same new file waits here (busy_timeout), then finds every table and the meta rows.
        conn.execute("BEGIN IMMEDIATE")  # waits (busy_timeout) while another process creates
        try:
            tables = _tables(conn)
            if not tables:
                for statement in spec.ddl.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('kind', ?), ('version', ?)",
                    (spec.kind, str(spec.version)),
                )
                conn.execute(f"PRAGMA user_version = {spec.version}")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if not tables:
            _use_wal(conn)
            return
    if "meta" not in tables:
        conn.close()
        raise spec.error(
            f"{path} is an SQLite file but not a serdoctor {spec.what} "
            f"(its tables: {', '.join(sorted(tables)) or 'none'}); {spec.hint}"
        )
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("kind") != spec.kind:
        conn.close()
        raise spec.error(
            f"{path} is not a serdoctor {spec.what} (its kind is {meta.get('kind')!r}); {spec.hint}"
        )
    version = int(meta.get("version", "0"))
    if version > spec.version:
        conn.close()
        raise spec.error(
            f"{path} was written by a newer serdoctor ({spec.what} version {version}; this one "
            f"reads {spec.version}): upgrade serdoctor to read it"
        )
