"""The serializer stack: selection, envelope and the checks made before loading.

``dumps`` tries each method in order (``pickle`` first) and keeps the first
that succeeds; a method is passed over when it cannot send something, e.g.
``pickle`` meeting a lambda. ``loads`` reads the header (JSON, never pickle),
then, before a single byte is unpickled, checks the signature, the method
allowlist, the Python version for by-value code and the modules the payload
needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import pickle
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serdoctor.errors import (
    DeserializationError,
    MissingModuleError,
    SerdoctorError,
    SerializationError,
    SignatureError,
    UnsafePayloadError,
)
from serdoctor.serialize import _envelope as env
from serdoctor.serialize._checks import (
    IMPLEMENTATION,
    PYTHON,
    OnMismatch,
    check_header,
)
from serdoctor.serialize._classify import ByValueNeeded, CodeDecision, Recorder, classify
from serdoctor.serialize._environment import PYTHON_MINOR
from serdoctor.serialize._explain import Attempt, Explanation
from serdoctor.serialize._methods import (
    ChunkedMethod,
    DumpContext,
    LoadContext,
    Method,
    registry,
)
from serdoctor.serialize._notdata import not_data
from serdoctor.serialize._persistent import buffer_pid, chain, persistent_loader, scan_bytearrays
from serdoctor.serialize._probe import find_culprit
from serdoctor.serialize._requirements import requirements_for

if TYPE_CHECKING:
    from serdoctor.serialize._proxy import ProxyPlan, ProxyPolicy

DEFAULT_METHODS = ("pickle", "cloudpickle", "dill")
#: buffers smaller than this stay in the body: a frame per tiny array costs more than a copy
MIN_OUT_OF_BAND = 4096


#: header templates (all but the lengths) and their JSON, per kind of payload
_TEMPLATES: dict[tuple[Any, ...], tuple[env.Header, str]] = {}


@dataclass
class _Dumped:
    head: bytes
    chunks: list[env.Buffer]  # the body, in the pieces the pickler wrote
    buffers: list[env.Buffer]
    tag: bytes | None
    template: env.Header
    body_len: int
    buffer_lens: tuple[int, ...]
    recorder: Recorder
    attempts: list[Attempt]

    @property
    def header(self) -> env.Header:
        return dataclasses.replace(self.template, body=self.body_len, buffers=self.buffer_lens)

    def frames(self) -> list[env.Buffer]:
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        frames = [self.head, body, *self.buffers]
        if self.tag is not None:
            frames.append(self.tag)
        return frames

    def flat(self) -> bytes:
        parts = [self.head, *self.chunks, *self.buffers]
        if self.tag is not None:
            parts.append(self.tag)
        return b"".join(parts)

    @property
    def size(self) -> int:
        return (
            len(self.head)
            + self.header.body
            + sum(self.header.buffers)
            + (len(self.tag) if self.tag is not None else 0)
        )


def _nbytes(buf: env.Buffer) -> int:
    return buf.nbytes if isinstance(buf, memoryview) else len(buf)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ByValueNeeded):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class Serializer:
    """A configured serializer stack.

    ``methods`` are tried in order; ``by_value_modules`` sends those modules'
    code by value; ``key`` signs every payload with HMAC-SHA256 and refuses
    unsigned ones; ``allow`` lists the methods ``loads`` accepts (default:
    ``methods``); ``proxy`` moves large objects into a ProxyStore store;
    ``on_mismatch`` says what ``loads`` does when a distribution's version
    differs from the sender's (``"warn"``, ``"error"`` or ``"ignore"``).
    """

    def __init__(
        self,
        methods: Sequence[str] = DEFAULT_METHODS,
        *,
        by_value_modules: Sequence[str] = (),
        key: bytes | None = None,
        allow: Sequence[str] | None = None,
        proxy: ProxyPolicy | None = None,
        on_mismatch: OnMismatch = "warn",
    ) -> None:
        if isinstance(methods, str):
            methods = (methods,)
        if not methods:
            raise ValueError("Serializer needs at least one method, e.g. methods=('pickle',)")
        for name in methods:
            registry.get(name)  # unknown names fail now, not at the first dumps
        if isinstance(by_value_modules, str):
            by_value_modules = (by_value_modules,)
        if key is not None and not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"key must be bytes (e.g. os.urandom(32)), not {type(key).__name__}")
        if key is not None and len(key) < 16:
            raise ValueError("key is too short: use at least 16 random bytes, e.g. os.urandom(32)")
        if on_mismatch not in ("warn", "error", "ignore"):
            raise ValueError(
                f"on_mismatch must be 'warn', 'error' or 'ignore', not {on_mismatch!r}"
            )
        self.methods: tuple[str, ...] = tuple(methods)
        self.by_value_modules: tuple[str, ...] = tuple(by_value_modules)
        self.key: bytes | None = bytes(key) if key is not None else None
        self.allow: tuple[str, ...] = tuple(allow) if allow is not None else self.methods
        self.proxy = proxy
        self.on_mismatch: OnMismatch = on_mismatch

    def __repr__(self) -> str:
        return (
            f"Serializer(methods={self.methods!r}, by_value_modules={self.by_value_modules!r}, "
            f"signed={self.key is not None}, allow={self.allow!r}, proxy={self.proxy!r}, "
            f"on_mismatch={self.on_mismatch!r})"
        )

    # --- dumping ---------------------------------------------------------------------

    def _run(
        self,
        method: Method,
        obj: Any,
        pid: Any,
        buffers: list[env.Buffer],
        seed: CodeDecision | None = None,
    ) -> tuple[list[env.Buffer], Recorder]:
        def callback(buf: pickle.PickleBuffer) -> bool:
            try:
                view = buf.raw()
            except BufferError:  # not contiguous: pickle copies it in band
                return True
            if view.nbytes < MIN_OUT_OF_BAND:
                return True
            buffers.append(view)
            return False

        recorder = Recorder(self.by_value_modules)
        if seed is not None:
            recorder.seed(obj, seed)
        ctx = DumpContext(callback, pid, self.by_value_modules, recorder)
        if _chunked(type(method)):
            return method.dumps_chunks(obj, ctx), recorder  # type: ignore[attr-defined]
        return [method.dumps(obj, ctx)], recorder

    def _dump(self, obj: Any) -> _Dumped:
        attempts: list[Attempt] = []
        big = scan_bytearrays(obj)
        plan: ProxyPlan | None = None

        def make_pid() -> Any:  # fresh per pickling pass: the bytearray memo is per pass
            oob = buffer_pid(big) if big else None
            if plan is None:
                return oob
            return plan.persistent_id if oob is None else chain(plan.persistent_id, oob)

        if self.proxy is not None:
            plan = self.proxy.plan_before(obj)
        seed, skip_pickle = self._top_decision(obj, attempts)
        for name in self.methods:
            if name == "pickle" and skip_pickle:
                continue
            method = registry.get(name)
            buffers: list[env.Buffer] = []
            try:
                body, recorder = self._run(method, obj, make_pid(), buffers, seed)
            except SerializationError:  # a proxy store refused the object: no method can help
                if plan is not None:
                    plan.discard()
                raise
            except Exception as exc:
                attempts.append(Attempt(name, _error_text(exc)))
                continue
            if self.proxy is not None and plan is None:
                size = _nbytes(body[0]) if len(body) == 1 else sum(map(_nbytes, body))
                if buffers:
                    size += sum(map(_nbytes, buffers))
                plan = self.proxy.plan_after(obj, size)
                if plan is not None:
                    buffers = []
                    body, recorder = self._run(method, obj, make_pid(), buffers, seed)
            persistent = bool(big) or plan is not None
            return self._pack(method, body, buffers, recorder, persistent, plan, attempts)
        if plan is not None:
            plan.discard()
        raise self._failure(obj, attempts)

    def _top_decision(self, obj: Any, attempts: list[Attempt]) -> tuple[CodeDecision | None, bool]:
        """Classify a function sent on its own once; say whether to skip the pickle attempt."""
        if type(obj) is not types.FunctionType:
            return None, False
        decision = classify(obj, self.by_value_modules)
        if decision.how == "value" and self.methods[0] == "pickle" and len(self.methods) > 1:
            attempts.append(Attempt("pickle", str(ByValueNeeded(decision))))
            return decision, True
        return decision, False

    def _pack(
        self,
        method: Method,
        chunks: list[env.Buffer],
        buffers: list[env.Buffer],
        recorder: Recorder,
        persistent: bool,
        plan: ProxyPlan | None,
        attempts: list[Attempt],
    ) -> _Dumped:
        by_value = recorder.any_by_value or (method.python_bound and not recorder.active)
        signed = self.key is not None
        body = sum(map(_nbytes, chunks))
        lengths = tuple(map(_nbytes, buffers))
        key = (method.name, frozenset(recorder.modules), by_value, persistent, signed)
        cached = None if plan is not None else _TEMPLATES.get(key)
        if cached is None:
            template = self._template(method, recorder, by_value, persistent, plan)
            cached = (template, env.static_prefix(template))
            if plan is None:
                if len(_TEMPLATES) > 1024:
                    _TEMPLATES.clear()
                _TEMPLATES[key] = cached
        template, prefix = cached
        head = env.encode_head_with(prefix, body, lengths, signed)
        tag = env.sign([head, *chunks, *buffers], self.key) if self.key is not None else None
        return _Dumped(head, chunks, buffers, tag, template, body, lengths, recorder, attempts)

    def _template(
        self,
        method: Method,
        recorder: Recorder,
        by_value: bool,
        persistent: bool,
        plan: ProxyPlan | None,
    ) -> env.Header:
        """The header of a payload, but for its lengths (cached per kind of payload)."""
        requires, dists = requirements_for(recorder.modules) if recorder.modules else ({}, {})
        extra: dict[str, Any] = {}
        if dists:
            extra["dists"] = dists
        if persistent:
            extra["persistent"] = True
        if plan is not None:
            extra["proxies"] = plan.to_header()
        from serdoctor._version import __version__

        return env.Header(
            method=method.name,
            python=PYTHON,
            implementation=IMPLEMENTATION,
            by_value=by_value,
            requires=requires,
            libraries=method.versions(),
            body=0,
            buffers=(),
            serdoctor=__version__,
            signed=self.key is not None,
            extra=extra,
        )

    def _failure(self, obj: Any, attempts: list[Attempt]) -> SerializationError:
        def fails(candidate: Any) -> str | None:
            errors = []
            for name in self.methods:
                try:
                    self._run(registry.get(name), candidate, None, [])
                    return None
                except Exception as exc:
                    errors.append(f"{name}: {_error_text(exc)}")
            return "; ".join(errors)

        culprit = None
        with contextlib.suppress(Exception):
            culprit = find_culprit(obj, fails, stop=lambda x: not_data(x) is not None)
        tried = "; ".join(f"{a.method}: {a.reason}" for a in attempts)
        if culprit is None:
            return SerializationError(f"no method could serialize the object ({tried})")
        info = not_data(culprit.obj)
        if info is not None:
            error = SerializationError(
                info.message(culprit.path, culprit.type_name),
                path=culprit.path,
                type_name=culprit.type_name,
            )
            error.__cause__ = _own_error(culprit.obj)
            return error
        return SerializationError(
            f"cannot serialize {culprit.path} (type {culprit.type_name}): no method can send it "
            f"({culprit.error}). Give its class a __reduce__ or register one with copyreg, "
            "or leave it out of what you send (recreate it where the object is loaded)",
            path=culprit.path,
            type_name=culprit.type_name,
        )

    def dumps_frames(self, obj: Any) -> list[env.Buffer]:
        """Serialize ``obj`` into frames: header, body, then each large buffer uncopied.

        ``b"".join(frames)`` equals :meth:`dumps`. Send the frames separately
        (e.g. a ZeroMQ multipart message) to avoid copying large buffers.
        """
        return self._dump(obj).frames()

    def dumps(self, obj: Any) -> bytes:
        """Serialize ``obj`` into one ``bytes`` payload."""
        return self._dump(obj).flat()

    def explain(self, obj: Any) -> Explanation:
        """Serialize ``obj`` and report which method was chosen and why, object by object.

        With a proxy policy, objects are put in the store to measure them and
        evicted again before this returns.
        """
        scope = self.proxy.scope() if self.proxy is not None else contextlib.nullcontext()
        with scope:
            dumped = self._dump(obj)
        header = dumped.header
        decisions = tuple(d for d in dumped.recorder.decisions.values() if not d.plumbing)
        return Explanation(
            method=header.method,
            by_value=header.by_value,
            python=PYTHON_MINOR,
            decisions=decisions,
            requires=dict(header.requires),
            size=dumped.size,
            body_size=header.body,
            buffers=header.buffers,
            attempts=tuple(dumped.attempts),
            proxies=tuple(header.extra.get("proxies", ())),
        )

    @contextlib.contextmanager
    def proxy_scope(self) -> Iterator[Any]:
        """Proxies created by ``dumps`` inside the block are evicted when it ends."""
        if self.proxy is None:
            raise ValueError("this Serializer has no proxy policy: pass proxy=ProxyPolicy(...)")
        with self.proxy.scope() as scope:
            yield scope

    # --- loading ---------------------------------------------------------------------

    def loads(self, data: env.Buffer, *, raw: bool = False) -> Any:
        """Check, then load a payload made by :meth:`dumps`.

        ``raw=True`` also accepts a plain pickle (no envelope, so no checks),
        unless this serializer has a key: a raw pickle cannot be signed.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"loads() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        if not env.is_envelope(data):
            return self._load_raw(data, raw)
        parsed = env.parse(data)
        writable = not memoryview(data).readonly
        return self._load(parsed, copy_buffers=not writable)

    def loads_frames(self, frames: Sequence[env.Buffer]) -> Any:
        """Check, then load frames made by :meth:`dumps_frames`, without copying them.

        Arrays rebuilt from read-only frames are read-only.
        """
        return self._load(env.parse_frames(frames), copy_buffers=False)

    def read_header(self, data: env.Buffer) -> env.Header:
        """Decode a payload's header without loading (or verifying) anything."""
        return env.read_head(data)[0]

    def _load_raw(self, data: env.Buffer, raw: bool) -> Any:
        if not raw:
            hint = (
                "it looks like a plain pickle: read it without executing it with "
                "`ser-doctor inspect FILE`, and pass raw=True to load it without serdoctor's "
                "checks (only if you trust its source: loading a pickle runs code)"
                if _looks_like_pickle(data)
                else "it is neither a serdoctor payload nor a pickle"
            )
            raise DeserializationError(f"not a serdoctor payload (no magic bytes): {hint}")
        if self.key is not None:
            raise SignatureError(
                "a raw pickle carries no signature, and this serializer requires one (key=); "
                "nothing was unpickled"
            )
        if "pickle" not in self.allow:
            raise UnsafePayloadError("raw pickles need 'pickle' in allow=")
        try:
            return pickle.loads(data)
        except SerdoctorError:
            raise
        except Exception as exc:
            raise DeserializationError(f"raw pickle failed to load: {_error_text(exc)}") from exc

    def _check(self, header: env.Header) -> Method:
        return check_header(header, allow=self.allow, on_mismatch=self.on_mismatch)

    def _load(self, parsed: env.Parsed, *, copy_buffers: bool) -> Any:
        if self.key is not None:
            parsed.verify(self.key)
        header = parsed.header
        method = self._check(header)
        buffers: list[Any] = list(parsed.buffers)
        if copy_buffers:
            buffers = [bytearray(b) for b in buffers]
        persistent = persistent_loader() if header.extra.get("persistent") else None
        try:
            return method.loads(parsed.body, LoadContext(buffers, persistent))
        except SerdoctorError:
            raise
        except ModuleNotFoundError as exc:
            module = exc.name or "?"
            raise MissingModuleError(
                f"loading the payload imported {module!r}, which is not installed here: install "
                "it where the payload is loaded",
                module=module,
            ) from exc
        except AttributeError as exc:
            raise DeserializationError(
                f"loading the payload failed: {exc}. The name exists where the payload was made "
                "but not here: the module differs between the two environments (compare them "
                "with `ser-doctor env diff`)"
            ) from exc
        except Exception as exc:
            raise DeserializationError(
                f"the {header.method} body failed to load: {_error_text(exc)}"
            ) from exc


_default: Serializer | None = None


@functools.lru_cache(maxsize=64)
def _chunked(method_type: type) -> bool:
    """Does this kind of method have ``dumps_chunks`` (the ChunkedMethod protocol)?"""
    return issubclass(method_type, ChunkedMethod)


def _own_error(obj: Any) -> BaseException | None:
    """What plain pickle itself says about ``obj`` (kept as the refusal's ``__cause__``)."""
    try:
        pickle.dumps(obj, protocol=5)
    except Exception as exc:
        return exc
    return None


def _looks_like_pickle(data: env.Buffer) -> bool:
    """Does ``data`` look like a raw pickle (of any protocol)?

    A protocol 2+ pickle starts with PROTO (0x80); a protocol 0/1 one starts
    with an opcode and ends with STOP (``.``).
    """
    import pickletools

    view = memoryview(data)
    if not len(view):
        return False
    first = bytes(view[:1])
    if first == b"\x80":
        return True
    codes = {op.code for op in pickletools.opcodes}
    return first.decode("latin-1") in codes and bytes(view[-1:]) == b"."


def default_serializer() -> Serializer:
    """The serializer behind :func:`serdoctor.dumps` and :func:`serdoctor.loads`."""
    global _default
    if _default is None:
        _default = Serializer()
    return _default


def dumps(obj: Any) -> bytes:
    """Serialize ``obj`` with the default stack (pickle, then cloudpickle, then dill)."""
    return default_serializer().dumps(obj)


def loads(data: env.Buffer, *, raw: bool = False) -> Any:
    """Check, then load a payload made by :func:`dumps`."""
    return default_serializer().loads(data, raw=raw)


def explain(obj: Any) -> Explanation:
    """Report how the default stack would serialize ``obj``, and why."""
    return default_serializer().explain(obj)
