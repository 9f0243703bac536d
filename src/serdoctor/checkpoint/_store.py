"""``serdoctor.Checkpoint``: task results kept in SQLite, across runs and crashes.

One row per completed task, written (and committed) when the task completes,
so a killed run loses only what was in flight and the next run executes only
what is missing. The result is stored as a serdoctor payload (envelope and
all): loading it in another environment gets the stack's checks, and a
result that cannot load here counts as a miss with a warning that says why.
Several processes may share one store (WAL, a busy timeout); a damaged row is
reported and skipped; a file that is not a store is refused, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from serdoctor._sqlite import FileKind, open_versioned
from serdoctor.checkpoint._keys import arguments_key, function_identity
from serdoctor.errors import CheckpointError, SerdoctorError
from serdoctor.serialize import Serializer

F = TypeVar("F", bound=Callable[..., Any])

KIND = "serdoctor-checkpoint"
SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    task_key TEXT PRIMARY KEY,       -- function digest + argument digest
    fn TEXT NOT NULL,                -- module.qualname
    fn_digest TEXT NOT NULL,         -- the code's digest (code=False: the name's)
    failed INTEGER NOT NULL,         -- 1 when the stored value is the task's exception
    payload BLOB NOT NULL,           -- a serdoctor payload
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    run_id TEXT NOT NULL,
    env_digest TEXT
);
CREATE INDEX IF NOT EXISTS results_by_fn ON results (fn);
"""


CHECKPOINT_STORE = FileKind(
    KIND,
    SCHEMA_VERSION,
    _DDL,
    "checkpoint store",
    "give another path, or move that file away",
    CheckpointError,
)


class CheckpointMismatchWarning(UserWarning):
    """A stored result could not be loaded here; it counts as a miss."""


@dataclass(frozen=True)
class StoredResult:
    """One row of the store (without its payload)."""

    task_key: str
    fn: str
    fn_digest: str
    failed: bool
    size: int
    created: float
    run_id: str
    env_digest: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _env_digest() -> str:
    import hashlib
    import json

    from serdoctor.serialize import environment

    text = json.dumps(environment().to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """A store of task results at ``path`` (created when missing).

    Args:
        path: the SQLite file.
        serializer: how results are stored (``Serializer(key=...)`` signs them:
            a row that does not verify is a miss with a warning).
        on_mismatch: a stored result that cannot load here: ``"warn"`` (a miss
            and a warning) or ``"error"`` (raise).
        cache_failures: also store exceptions (they come back as remote exceptions).
        code: include each function's code in its identity (``False``: only its name).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        serializer: Serializer | None = None,
        on_mismatch: Literal["warn", "error"] = "warn",
        cache_failures: bool = False,
        code: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if on_mismatch not in ("warn", "error"):
            raise ValueError(f"on_mismatch must be 'warn' or 'error', not {on_mismatch!r}")
        self.path = Path(path)
        self.serializer = serializer or Serializer()
        self.on_mismatch = on_mismatch
        self.cache_failures = cache_failures
        self.code = code
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:12]
        self._local = threading.local()
        self._env: str | None = None
        self._fn_cache: dict[int, tuple[Any, str, str]] = {}
        self._connect()  # refuse a file that is not a store now, not at the first task

    # -- the file ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # WAL + NORMAL: a commit survives the process being killed (what checkpoints are
            # for); only a power cut may lose the last commits. FULL would fsync each task.
            conn = open_versioned(
                self.path, CHECKPOINT_STORE, create=True, timeout=self.timeout,
                synchronous="NORMAL",
            )  # fmt: skip
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    # -- identity ---------------------------------------------------------------------------

    def _function(self, fn: Callable[..., Any], code: bool) -> tuple[str, str]:
        cached = self._fn_cache.get(id(fn))
        if cached is not None and cached[0] is fn:
            return cached[1], cached[2]
        name, digest = function_identity(fn, code=code)
        self._fn_cache[id(fn)] = (fn, name, digest)
        return name, digest

    def key(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        ignore: Iterable[str] = (),
        code: bool | None = None,
    ) -> tuple[str, str, str]:
        """``(task key, function name, function digest)`` for this call."""
        import hashlib

        name, digest = self._function(fn, self.code if code is None else code)
        arguments = arguments_key(fn, args, kwargs, ignore=ignore)
        return hashlib.sha256(f"{digest}:{arguments}".encode()).hexdigest()[:40], name, digest

    # -- the TaskMemo protocol (what serdoctor.Executor calls) --------------------------------

    def lookup(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ignore: Iterable[str] = (),
        code: bool | None = None,
    ) -> tuple[bool, Any]:
        """``(True, value)`` when this call's result is stored and loads here."""
        task_key, name, _ = self.key(fn, args, kwargs, ignore=ignore, code=code)
        return self._get(task_key, name)

    def record(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        value: Any,
        *,
        ignore: Iterable[str] = (),
        code: bool | None = None,
        failed: bool = False,
    ) -> None:
        """Store (and commit) the result of this call."""
        task_key, name, digest = self.key(fn, args, kwargs, ignore=ignore, code=code)
        self._put(task_key, name, digest, value, failed)

    # -- rows -------------------------------------------------------------------------------

    def _get(self, task_key: str, name: str) -> tuple[bool, Any]:
        try:
            row = (
                self._connect()
                .execute("SELECT payload, failed FROM results WHERE task_key = ?", (task_key,))
                .fetchone()
            )
        except sqlite3.DatabaseError as exc:
            self._mismatch(f"the row for {name} ({task_key}) could not be read: {exc}")
            return False, None
        if row is None:
            return False, None
        payload, failed = row
        try:
            value = self.serializer.loads(payload)
        except SerdoctorError as exc:
            self._mismatch(f"the stored result of {name} ({task_key}) cannot load here: {exc}")
            return False, None
        except Exception as exc:
            self._mismatch(
                f"the stored result of {name} ({task_key}) is damaged "
                f"({type(exc).__name__}: {exc}); it will be computed again"
            )
            return False, None
        if failed:
            raise value
        return True, value

    def _mismatch(self, message: str) -> None:
        if self.on_mismatch == "error":
            raise CheckpointError(message)
        warnings.warn(message, CheckpointMismatchWarning, stacklevel=4)

    def _put(self, task_key: str, name: str, digest: str, value: Any, failed: bool) -> None:
        if self._env is None:
            self._env = _env_digest()
        payload = self.serializer.dumps(value)
        conn = self._connect()
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task_key, name, digest, int(failed), payload, len(payload), time.time(),
                 self.run_id, self._env),
            )  # fmt: skip

    # -- the decorator ----------------------------------------------------------------------

    def memoize(
        self, fn: F | None = None, *, ignore: Iterable[str] = (), code: bool | None = None
    ) -> Any:
        """Decorate a function so that calls with stored results return them at once.

        ``@checkpoint.memoize`` or ``@checkpoint.memoize(ignore=("verbose",))``.
        """
        skip = tuple(ignore)

        def decorate(func: F) -> F:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                hit, value = self.lookup(func, args, kwargs, ignore=skip, code=code)
                if hit:
                    return value
                try:
                    value = func(*args, **kwargs)
                except Exception as exc:
                    if self.cache_failures:
                        self.record(func, args, kwargs, exc, ignore=skip, code=code, failed=True)
                    raise
                self.record(func, args, kwargs, value, ignore=skip, code=code)
                return value

            wrapper.checkpoint = self  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

        return decorate(fn) if fn is not None else decorate

    # -- listing (what ``ser-doctor checkpoint`` shows) ----------------------------------------

    def entries(
        self,
        *,
        function: str | None = None,
        older_than: float | None = None,
        larger_than: int | None = None,
        limit: int | None = None,
    ) -> list[StoredResult]:
        """Stored results, newest first, filtered by function name (substring), age, size."""
        sql = ("SELECT task_key, fn, fn_digest, failed, size, created, run_id, env_digest "
               "FROM results WHERE 1=1")  # fmt: skip
        params: list[Any] = []
        if function:
            sql += " AND fn LIKE ?"
            params.append(f"%{function}%")
        if older_than is not None:
            sql += " AND created < ?"
            params.append(time.time() - older_than)
        if larger_than is not None:
            sql += " AND size > ?"
            params.append(larger_than)
        sql += " ORDER BY created DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            rows = self._connect().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"{self.path} could not be read (damaged?): {exc}") from None
        return [StoredResult(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def payload(self, task_key: str) -> bytes:
        """The stored payload of one result (a unique prefix of its key is enough)."""
        rows = (
            self._connect()
            .execute(
                "SELECT task_key, payload FROM results WHERE task_key LIKE ?", (task_key + "%",)
            )
            .fetchall()
        )
        if len(rows) != 1:
            raise CheckpointError(
                f"{'no result' if not rows else f'{len(rows)} results'} with key {task_key!r}: "
                "`ser-doctor checkpoint ls PATH` lists them"
            )
        return bytes(rows[0][1])

    def remove(self, keys: Iterable[str]) -> int:
        """Delete these results; the number deleted."""
        conn = self._connect()
        with conn:
            return sum(
                conn.execute("DELETE FROM results WHERE task_key = ?", (k,)).rowcount for k in keys
            )

    def gc(self, *, older_than: float | None = None, stale_code: bool = False) -> int:
        """Delete old or stale results; the number deleted (the file shrinks too).

        ``older_than`` seconds; ``stale_code``: results whose function digest is not
        the newest stored for that function name (the code changed since).
        """
        doomed = (
            {e.task_key for e in self.entries(older_than=older_than)}
            if older_than is not None
            else set()
        )
        if stale_code:
            newest: dict[str, tuple[float, str]] = {}
            everything = self.entries()
            for e in everything:
                if e.fn not in newest or e.created > newest[e.fn][0]:
                    newest[e.fn] = (e.created, e.fn_digest)
            doomed |= {e.task_key for e in everything if e.fn_digest != newest[e.fn][1]}
        removed = self.remove(sorted(doomed))
        with contextlib.suppress(sqlite3.OperationalError):
            self._connect().execute("VACUUM")
        return removed
