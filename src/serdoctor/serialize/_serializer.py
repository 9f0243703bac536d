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
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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
from serdoctor.serialize._classify import (
    ByValueNeeded,
    CodeDecision,
    LeanRecorder,
    Recorder,
    classify,
)
from serdoctor.serialize._environment import PYTHON_MINOR
from serdoctor.serialize._explain import Attempt, Explanation
from serdoctor.serialize._methods import (
    ChunkedMethod,
    Chunks,
    CloudpickleMethod,
    DumpContext,
    LoadContext,
    Method,
    ReferencePickler,
    registry,
)
from serdoctor.serialize._notdata import not_data
from serdoctor.serialize._persistent import buffer_pid, chain, persistent_loader, scan_bytearrays
from serdoctor.serialize._probe import find_culprit
from serdoctor.serialize._reducers import check_reducers
from serdoctor.serialize._requirements import requirements_for

if TYPE_CHECKING:
    from serdoctor.serialize.proxy import ProxyPlan, ProxyPolicy

DEFAULT_METHODS = ("pickle", "cloudpickle", "dill")
#: buffers smaller than this stay in the body: a frame per tiny array costs more than a copy
MIN_OUT_OF_BAND = 4096


#: header templates (all but the lengths) and their JSON, per kind of payload
_TEMPLATES: dict[tuple[Any, ...], _Kind] = {}
_NO_MODULES: frozenset[str] = frozenset()
#: the tail every writer puts after the body length when there are no buffers
_NO_BUFFERS = b',"buffers":[]}'
_BODY = b',"body":'
#: payloads larger than this are not worth a kept pickler (see _dump_fast)
_REUSE_LIMIT = 16 * 1024
_V1 = env.MAGIC + bytes([env.FORMAT_VERSION])


@dataclass(frozen=True)
class _Kind:
    """One kind of payload's header: the template, and its JSON up to the lengths."""

    template: env.Header
    prefix: str  # see env.static_prefix
    start: bytes  # prefix + ',"body":', encoded
    lead: bytes  # magic, format version and flags
    big_lead: bytes  # the same for payloads of env.CHUNKED_AT bytes or more
    heads: dict[int, bytes] = field(default_factory=dict)  # whole heads of small payloads

    def head(self, size: int, lengths: Sequence[int] = ()) -> bytes:
        """Frame 0 of a payload of this kind (what ``env.encode_head`` writes, faster).

        ``size`` is the body's length, ``lengths`` the buffers' lengths.
        """
        tail = f',"buffers":[{",".join(map(str, lengths))}]}}'.encode() if lengths else _NO_BUFFERS
        text = b"".join((self.start, str(size).encode(), tail))
        lead = self.lead if size + sum(lengths) < env.CHUNKED_AT else self.big_lead
        head = b"".join((lead, len(text).to_bytes(4, "big"), text))
        if not lengths and size < 4096:
            if len(self.heads) >= 4096:
                self.heads.clear()
            self.heads[size] = head
        return head


@dataclass(frozen=True)
class _Checked:
    """A header this serializer has checked and passed, with nothing to warn about.

    The fast path of ``loads`` recognises the same header bytes again and skips
    decoding and re-checking them; every other check (lengths, the signature)
    is still made on each payload.
    """

    method: Method
    generation: int  # registry.generation when checked: a changed registry forgets


#: a checked header as the fast path of ``loads`` uses it: (the head's bytes, its method,
#: where the body ends, registry.generation when checked, the whole payload's size, where
#: the body starts)
_Known = tuple[bytes, Method, int, int, int, int]
_pickle_loads = pickle.loads  # bound once: the fast path of loads calls it


class _Reusable:
    """A pickler kept per thread and serializer for the common case (see ``_dump_fast``).

    Making a pickler costs more than pickling a small object; this one is reset
    and reused. ``busy`` guards against reentrant use (a reducer that itself
    calls ``dumps``), which then takes the ordinary path.
    """

    def __init__(self, by_value_modules: tuple[str, ...], reducers: tuple[str, ...]) -> None:
        self.file = Chunks()
        self.buffers: list[env.Buffer] = []
        self.recorder = LeanRecorder(by_value_modules)
        # the callback holds the list, not self: no reference cycle, so a dropped
        # pickler (and the memo of everything it pickled) is freed at once, not by the GC
        callback = functools.partial(_out_of_band, buffers=self.buffers)
        ctx = DumpContext(callback, None, by_value_modules, self.recorder, reducers)
        self.pickler = ReferencePickler(self.file, ctx)
        self.busy = False
        #: functions and classes found to need by-value code, by id (see _dump_fast)
        self.by_value: dict[int, Any] = {}


class _ReusableByValue:
    """A cloudpickle pickler kept per thread and serializer for calls of by-value code.

    Code pickle cannot send (a function of ``__main__``, a lambda) goes through
    cloudpickle; an executor sends the same function many times over. This one is
    reset and reused like :class:`_Reusable` (see ``_dump_fast_by_value``).
    """

    def __init__(self, reducers: tuple[str, ...]) -> None:
        plain, _ = CloudpickleMethod.classes()
        self.module = sys.modules.get("cloudpickle")  # its helpers: a re-import makes a new one
        self.file = Chunks()
        self.buffers: list[env.Buffer] = []
        self.recorder = LeanRecorder(())
        self.recorder.active = True
        callback = functools.partial(_out_of_band, buffers=self.buffers)
        ctx = DumpContext(callback, None, (), self.recorder, reducers)
        self.pickler = plain(self.file, ctx)
        self.busy = False


class _PerThread(threading.local):
    """A serializer's state per thread: its reused picklers (None until the first ``dumps``)."""

    pickler: _Reusable | None = None  # a class attribute: every thread starts from it
    by_value: _ReusableByValue | None = None


def _out_of_band(buf: pickle.PickleBuffer, buffers: list[env.Buffer]) -> bool:
    """Keep large contiguous buffers out of band (pickle's ``buffer_callback``)."""
    try:
        view = buf.raw()
    except BufferError:  # not contiguous: pickle copies it in band
        return True
    if view.nbytes < MIN_OUT_OF_BAND:
        return True
    buffers.append(view)
    return False


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


def _fast_size(chunks: list[env.Buffer]) -> int | None:
    """A fast path's body size; None when a large bytearray went in band.

    The general path sends such a bytearray out of band (see ``scan_bytearrays``).
    """
    if len(chunks) == 1:
        return len(chunks[0])
    if bytearray in map(type, chunks):
        return None
    return sum(map(_nbytes, chunks))


def _fast_head(kind: _Kind, size: int, buffers: Sequence[env.Buffer]) -> bytes:
    """A fast path's frame 0 (the cached head of a small payload where there is one)."""
    if buffers:
        return kind.head(size, [_nbytes(b) for b in buffers])
    return kind.heads.get(size) or kind.head(size)


def _lead(obj: Any) -> Any:
    """What pickle meets first: a tuple's first item (a call's function), or the object."""
    return obj[0] if type(obj) is tuple and obj else obj


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
    differs from the sender's (``"warn"``, ``"error"`` or ``"ignore"``);
    ``reducers`` opts in to sending some objects that are not data as new
    objects of the receiver's (``"file"``, ``"lock"``, ``"stdio"``: see
    ``docs/not-data.md``), which are refused by default.
    """

    # per-process caches, dropped whenever the configuration changes (see __setattr__)
    _local: _PerThread
    _checked: dict[tuple[bytes, int], _Checked]
    _heads: dict[bytes, _Known]
    _last: _Known | None  # the last of _heads that loads met
    _by_modules: dict[str | frozenset[str], _Kind]
    _generation: int
    _fast_generation: int

    def __init__(
        self,
        methods: Sequence[str] = DEFAULT_METHODS,
        *,
        by_value_modules: Sequence[str] = (),
        key: bytes | None = None,
        allow: Sequence[str] | None = None,
        proxy: ProxyPolicy | None = None,
        on_mismatch: OnMismatch = "warn",
        reducers: Sequence[str] = (),
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
        self.reducers: tuple[str, ...] = check_reducers(reducers)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set an attribute; a change of configuration drops what was cached for the old one."""
        object.__setattr__(self, name, value)
        if not name.startswith("_"):
            object.__setattr__(self, "_local", _PerThread())
            object.__setattr__(self, "_checked", {})
            object.__setattr__(self, "_heads", {})
            object.__setattr__(self, "_last", None)
            object.__setattr__(self, "_by_modules", {})
            object.__setattr__(self, "_generation", -1)
            object.__setattr__(self, "_fast_generation", -1)

    def __getstate__(self) -> dict[str, Any]:
        """The configuration, without the per-process caches (a Serializer pickles)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`__getstate__`'s configuration."""
        for name, value in state.items():
            setattr(self, name, value)

    @property
    def _fast(self) -> bool:
        """Whether ``dumps`` may take the reused-pickler path (re-decided on registry changes)."""
        if self._generation != registry.generation:
            object.__setattr__(self, "_generation", registry.generation)
            fast = (
                self.proxy is None
                and self.methods[0] == "pickle"
                and registry.peek("pickle") is _PICKLE
            )
            object.__setattr__(self, "_fast_generation", registry.generation if fast else -1)
        return self._fast_generation == registry.generation

    def __repr__(self) -> str:
        return (
            f"Serializer(methods={self.methods!r}, by_value_modules={self.by_value_modules!r}, "
            f"signed={self.key is not None}, allow={self.allow!r}, proxy={self.proxy!r}, "
            f"on_mismatch={self.on_mismatch!r}, reducers={self.reducers!r})"
        )

    # --- dumping ---------------------------------------------------------------------

    def _run(
        self,
        method: Method,
        obj: Any,
        pid: Any,
        buffers: list[env.Buffer],
        seed: tuple[Any, CodeDecision] | None = None,
    ) -> tuple[list[env.Buffer], Recorder]:
        callback = functools.partial(_out_of_band, buffers=buffers)
        recorder = Recorder(self.by_value_modules)
        if seed is not None:
            recorder.seed(*seed)
        ctx = DumpContext(callback, pid, self.by_value_modules, recorder, self.reducers)
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

    def _top_decision(
        self, obj: Any, attempts: list[Attempt]
    ) -> tuple[tuple[Any, CodeDecision] | None, bool]:
        """Classify a function sent on its own, or first in a tuple (a call), once.

        Say whether to skip the pickle attempt: pickle meets that function first,
        and gives up there when it must travel by value.
        """
        lead = _lead(obj)
        if type(lead) is not types.FunctionType:
            return None, False
        decision = classify(lead, self.by_value_modules)
        if decision.how == "value" and self.methods[0] == "pickle" and len(self.methods) > 1:
            attempts.append(Attempt("pickle", str(ByValueNeeded(decision))))
            return (lead, decision), True
        return (lead, decision), False

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
        body = sum(map(_nbytes, chunks))
        lengths = tuple(map(_nbytes, buffers))
        modules = frozenset(recorder.modules) if recorder.modules else _NO_MODULES
        kind = self._kind(method, modules, by_value, persistent, plan)
        head = kind.head(body, lengths)
        tag = env.sign([head, *chunks, *buffers], self.key) if self.key is not None else None
        return _Dumped(head, chunks, buffers, tag, kind.template, body, lengths, recorder, attempts)

    def _kind(
        self,
        method: Method,
        modules: frozenset[str],
        by_value: bool,
        persistent: bool,
        plan: ProxyPlan | None,
    ) -> _Kind:
        """The header of this kind of payload (cached, but for payloads with proxies)."""
        key = (method.name, modules, by_value, persistent, self.key is not None)
        kind = None if plan is not None else _TEMPLATES.get(key)
        if kind is None:
            template = self._template(method, modules, by_value, persistent, plan)
            prefix = env.static_prefix(template)
            signed = self.key is not None
            lead = _V1 + bytes([env.flags_for(signed, 0)])
            big_lead = _V1 + bytes([env.flags_for(signed, env.CHUNKED_AT)])
            kind = _Kind(template, prefix, prefix.encode() + _BODY, lead, big_lead)
            if plan is None:
                if len(_TEMPLATES) > 1024:
                    _TEMPLATES.clear()
                _TEMPLATES[key] = kind
        return kind

    def _dump_fast(self, obj: Any) -> tuple[bytes, list[env.Buffer], Sequence[env.Buffer]] | None:
        """The common case without the general machinery: (head, body pieces, buffers).

        Plain pickle with a reused pickler, for a serializer without a proxy
        policy whose first method is ``pickle``; code that must travel by value,
        alone or leading a call, goes on to :meth:`_dump_fast_by_value`.
        Anything else (a large bytearray, an object pickle refuses, a reentrant
        call) returns None, and :meth:`_dump` does the whole work, recording
        every attempt for ``explain``. The header is the one the general path
        writes for the same payload.
        """
        reusable = self._local.pickler
        if reusable is None:
            reusable = self._local.pickler = _Reusable(self.by_value_modules, self.reducers)
        elif reusable.busy:
            return None  # reentrant
        elif reusable.by_value:
            lead = _lead(obj)
            if reusable.by_value.get(id(lead)) is lead:
                # code (alone, or leading a call) pickle could not send last time
                return self._dump_fast_by_value(obj)
        reusable.busy = True
        file = reusable.file
        recorder = reusable.recorder
        modules = recorder.modules
        pickler = reusable.pickler
        chunks: list[env.Buffer] | None = None
        try:
            pickler.dump(obj)
            chunks = file[:]
            buffers: Sequence[env.Buffer] = reusable.buffers[:] if reusable.buffers else ()
            if not modules:
                needs: str | frozenset[str] = _NO_MODULES
            else:  # (one module is a str: the set is emptied, as the reset below would)
                needs = modules.pop() if len(modules) == 1 else frozenset(modules)
            kind = self._by_modules.get(needs) or self._module_kind(needs)
        except ByValueNeeded as exc:
            # pickle cannot send it. A function or class, on its own or leading a
            # tuple (a call: fn, args, kwargs), that was what pickle gave up on is
            # remembered, so that sending it again does not try pickle first (the
            # next call checks identity), and goes by value below; anything else
            # takes the general path
            lead = _lead(obj)
            if not (isinstance(lead, (types.FunctionType, type)) and exc.culprit is lead):
                return None
            if len(reusable.by_value) >= 64:
                reusable.by_value.clear()
            reusable.by_value[id(lead)] = lead
        except Exception:
            self._local.pickler = None  # a fresh one next time: no state left from the failure
            return None
        finally:  # reset for the next payload (recorder.reset(), inline: this is the hot path)
            pickler.clear_memo()
            file.clear()
            if reusable.buffers:
                reusable.buffers.clear()
            if modules:
                modules.clear()
            recorder.by_value_seen = False
            reusable.busy = False
        if chunks is None:  # code pickle gave up on, remembered above: by value now
            return self._dump_fast_by_value(obj)
        size = _fast_size(chunks)
        if size is None:
            return None
        if size > _REUSE_LIMIT:
            # a pickler keeps the output buffer and memo table of its largest payload, and
            # clears them in full on every use: after a large payload, start afresh
            self._local.pickler = None
        return _fast_head(kind, size, buffers), chunks, buffers

    def _dump_fast_by_value(
        self, obj: Any
    ) -> tuple[bytes, list[env.Buffer], Sequence[env.Buffer]] | None:
        """Code that pickle cannot send, alone or leading a call, with a reused cloudpickle.

        What the general path would write when pickle gives up on that code and
        the next method is the built-in cloudpickle (the default), for a
        serializer that sends no module by value as a whole. Anything else (and a
        reentrant call, a large bytearray, an error) returns None, and
        :meth:`_dump` does the work.
        """
        if (
            self.by_value_modules
            or self.methods[1:2] != ("cloudpickle",)
            or registry.peek("cloudpickle") is not _CLOUDPICKLE
        ):
            return None
        reusable = self._local.by_value
        if reusable is None or reusable.module is not sys.modules.get("cloudpickle"):
            reusable = self._local.by_value = _ReusableByValue(self.reducers)
        elif reusable.busy:
            return None
        reusable.busy = True
        recorder = reusable.recorder
        try:
            reusable.pickler.dump(obj)
            chunks = reusable.file[:]
            buffers: Sequence[env.Buffer] = reusable.buffers[:] if reusable.buffers else ()
            modules = frozenset(recorder.modules) if recorder.modules else _NO_MODULES
            by_value = recorder.any_by_value
            kind = self._kind(_CLOUDPICKLE, modules, by_value, False, None)
        except Exception:
            self._local.by_value = None  # a fresh one next time: no state left from the failure
            return None
        finally:
            reusable.pickler.clear_memo()
            reusable.pickler._globals_ref.clear()  # (the general path's picklers start without)
            reusable.file.clear()
            reusable.buffers.clear()
            recorder.reset()
            reusable.busy = False
        if not by_value:  # its name leads to the code again: pickle can send it now
            remembered = self._local.pickler
            if remembered is not None:
                remembered.by_value.pop(id(_lead(obj)), None)
            return None
        size = _fast_size(chunks)
        if size is None:
            return None
        if size > _REUSE_LIMIT:
            self._local.by_value = None  # (see _dump_fast)
        return _fast_head(kind, size, buffers), chunks, buffers

    def _module_kind(self, modules: str | frozenset[str]) -> _Kind:
        """The kind of a pickle payload that needs these modules (cached per serializer)."""
        needs = frozenset((modules,)) if isinstance(modules, str) else modules
        kind = self._kind(_PICKLE, needs, False, False, None)
        if len(self._by_modules) >= 256:
            self._by_modules.clear()
        self._by_modules[modules] = kind
        return kind

    def _tag(self, frames: Sequence[env.Buffer]) -> list[env.Buffer]:
        """Append the signature frame when this serializer signs."""
        if self.key is None:
            return list(frames)
        return [*frames, env.sign(frames, self.key)]

    def _template(
        self,
        method: Method,
        modules: frozenset[str],
        by_value: bool,
        persistent: bool,
        plan: ProxyPlan | None,
    ) -> env.Header:
        """The header of a payload, but for its lengths (cached per kind of payload)."""
        requires, dists = requirements_for(modules) if modules else ({}, {})
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
        if self._fast_generation == registry.generation or self._fast:
            fast = self._dump_fast(obj)
            if fast is not None:
                head, chunks, buffers = fast
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return self._tag([head, body, *buffers])
        return self._dump(obj).frames()

    def dumps(
        self,
        obj: Any,
        protocol: int | None = None,
        *,
        buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None,
    ) -> bytes:
        """Serialize ``obj`` into one ``bytes`` payload.

        The arguments are ``pickle.dumps``'s, so code written for pickle or
        cloudpickle can switch by changing an import: ``protocol`` is checked
        as pickle checks it (the body always uses protocol 5, which the
        envelope's out-of-band buffers need), and with ``buffer_callback``
        each large buffer is handed to the callback as a ``PickleBuffer``
        instead of being copied into the payload (unless the callback returns
        a true value); give them back with ``loads(data, buffers=...)``.
        """
        if protocol is not None:
            _check_protocol(protocol, buffer_callback)
        if buffer_callback is not None:
            return self._dumps_to_callback(obj, buffer_callback)
        if self._fast_generation == registry.generation or self._fast:
            fast = self._dump_fast(obj)
            if fast is not None:
                head, chunks, buffers = fast
                if self.key is None and not buffers and len(chunks) == 1:
                    return head + chunks[0]
                return b"".join(self._tag([head, *chunks, *buffers]))
        return self._dump(obj).flat()

    def _dumps_to_callback(self, obj: Any, callback: Callable[[pickle.PickleBuffer], Any]) -> bytes:
        """``dumps`` with pickle's ``buffer_callback``: buffers it keeps stay out of the payload."""
        dumped = self._dump(obj)
        external = [
            i for i, buf in enumerate(dumped.buffers) if not callback(pickle.PickleBuffer(buf))
        ]
        if not external:
            return dumped.flat()
        header = dumped.header
        header = dataclasses.replace(header, extra={**header.extra, "external": external})
        head = env.encode_head(header)
        body = b"".join(dumped.chunks)
        frames: list[env.Buffer] = [head, body, *dumped.buffers]
        kept = [b for i, b in enumerate(dumped.buffers) if i not in external]
        tag = [env.sign(frames, self.key)] if self.key is not None else []
        return b"".join([head, body, *kept, *tag])

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
            reduced=tuple(dumped.recorder.reduced),
        )

    @contextlib.contextmanager
    def proxy_scope(self) -> Iterator[Any]:
        """Proxies created by ``dumps`` inside the block are evicted when it ends."""
        if self.proxy is None:
            raise ValueError("this Serializer has no proxy policy: pass proxy=ProxyPolicy(...)")
        with self.proxy.scope() as scope:
            yield scope

    # --- loading ---------------------------------------------------------------------

    def loads(
        self, data: env.Buffer, *, raw: bool = False, buffers: Iterable[Any] | None = None
    ) -> Any:
        """Check, then load a payload made by :meth:`dumps`.

        ``raw=True`` also accepts a plain pickle (no envelope, so no checks),
        unless this serializer has a key: a raw pickle cannot be signed.
        ``buffers`` gives back, in order, the buffers that ``dumps``'s
        ``buffer_callback`` kept out of the payload (as ``pickle.loads`` takes them).
        """
        if buffers is not None and env.is_envelope(data):
            return self._load_with_buffers(data, buffers)
        if type(data) is bytes:
            # recognised by the header's first 11 bytes (magic, version, flags, length),
            # then by comparing the rest of it: nothing is parsed
            known = self._last  # a stream of payloads mostly repeats one kind and size
            if known is None or not data.startswith(known[0]):
                known = self._recognise(data)
            if known is not None and known[3] == registry.generation and len(data) == known[4]:
                _, method, body_end, _, _, end = known
                if self.key is not None:
                    view = memoryview(data)
                    env.verify_tag([view[:body_end]], view[body_end:], self.key)
                # small bodies are cheaper to copy than to view
                body = data[end:body_end] if body_end - end < 65536 else (
                    memoryview(data)[end:body_end])  # fmt: skip
                if method is _PICKLE:
                    try:
                        return _pickle_loads(body)
                    except SerdoctorError:
                        raise
                    except Exception as exc:
                        raise _load_error(exc, "pickle") from exc
                return self._unpickle(method, body)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"loads() takes bytes, bytearray or memoryview, not {type(data).__name__}"
            )
        if not env.is_envelope(data):
            return self._load_raw(data, raw)
        try:
            parsed = env.parse(data)
        except DeserializationError:
            header = None
            with contextlib.suppress(SerdoctorError):
                header = env.read_head(data)[0]
            if header is not None and header.extra.get("external"):
                raise DeserializationError(
                    f"the payload's buffer_callback kept {len(header.extra['external'])} "
                    "buffer(s) out of it: pass them, in order, as loads(data, buffers=...)"
                ) from None
            raise
        writable = not memoryview(data).readonly
        return self._load(parsed, copy_buffers=not writable)

    def _load_with_buffers(self, data: env.Buffer, given: Iterable[Any]) -> Any:
        """Put the buffers given to ``loads`` back where ``buffer_callback`` took them."""
        header, pos = env.read_head(data)
        external = header.extra.get("external") or []
        supplied = [memoryview(b).cast("B") for b in given]
        if len(supplied) < len(external):
            raise DeserializationError(
                f"the payload's buffer_callback kept {len(external)} buffer(s) out of it; "
                f"loads() was given {len(supplied)}: pass them all, in order, as buffers="
            )
        view = memoryview(data)
        end = pos + header.body
        frames: list[env.Buffer] = [view[:pos], view[pos:end]]
        taken = iter(supplied)
        for i, n in enumerate(header.buffers):
            if i in external:
                frames.append(next(taken))
            else:
                frames.append(view[end : end + n])
                end += n
        if header.signed:
            frames.append(view[end:])
        elif end != len(view):
            raise DeserializationError(
                f"serdoctor payload has {len(view) - end} unexpected bytes after its end"
            )
        return self.loads_frames(frames)

    def loads_frames(self, frames: Sequence[env.Buffer]) -> Any:
        """Check, then load frames made by :meth:`dumps_frames`, without copying them.

        Arrays rebuilt from read-only frames are read-only.
        """
        signed = self.key is not None
        if len(frames) == 2 + signed:
            head = frames[0]
            if type(head) is not bytes:
                head = bytes(head)
            known = self._recognise(head)
            if known is not None and known[3] == registry.generation and len(head) == len(known[0]):
                body = memoryview(frames[1])
                if body.nbytes == known[2] - len(head) and body.format == "B":
                    if self.key is not None:
                        env.verify_tag([head, body], frames[2], self.key)
                    return self._unpickle(known[1], body)
        return self._load(env.parse_frames(frames), copy_buffers=False)

    # The fast path of loading. A header this serializer has already decoded and
    # checked (same bytes, so same method, Python, modules and versions) is not
    # decoded or checked again; the lengths, the layout and the signature are
    # checked on every payload. Anything unexpected falls back to the general
    # path, which gives the precise error.

    def _recognise(self, data: bytes) -> _Known | None:
        """What the fast path needs if ``data`` starts with a header already checked.

        Looked up by the header's first 11 bytes (magic, format, flags, length),
        then compared byte for byte; remembered as the last header met.
        """
        known = self._heads.get(data[:11])
        if known is None or not data.startswith(known[0]):
            known = self._known_head(data) if data[:6] == _V1 else None
        if known is not None:
            object.__setattr__(self, "_last", known)
        return known

    def _known_head(self, data: bytes) -> _Known | None:
        """What the fast path needs if ``data``'s head is of a kind already checked.

        Remembered by the header's first 11 bytes: the next payload of the same
        kind and size is recognised by comparing bytes, without parsing
        anything. A payload whose signing does not fit this serializer (unsigned
        for a serializer with a key) is left to the general path and its error.
        """
        end = env.PREFIX_SIZE + int.from_bytes(data[7:11], "big")
        text = data[11:end]
        if not text.endswith(_NO_BUFFERS):
            return None
        i = text.rfind(_BODY)
        digits = text[i + 8 : -14]
        if i < 0 or not digits.isdigit():
            return None
        signed = bool(data[6] & env.FLAG_SIGNED)
        if self.key is not None and not signed:
            return None
        checked = self._checked.get((text[:i], data[6]))
        if checked is None or checked.generation != registry.generation:
            return None
        body_end = end + int(digits)
        total = body_end + env.TAG_SIZE if signed else body_end
        known = (data[:end], checked.method, body_end, checked.generation, total, end)
        if len(self._heads) >= 1024:
            self._heads.clear()
        self._heads[data[:11]] = known
        return known

    def _remember(self, parsed: env.Parsed, method: Method) -> None:
        """Let the fast path recognise this header again (it passed every check quietly)."""
        header = parsed.header
        if header.buffers or "persistent" in header.extra or "proxies" in header.extra:
            return
        text = bytes(parsed.head[env.PREFIX_SIZE :])
        i = text.rfind(_BODY)
        if i < 0 or text[i:] != b"%s%d%s" % (_BODY, header.body, _NO_BUFFERS):
            return
        if len(self._checked) >= 256:
            self._checked.clear()
        flags = parsed.head[6]
        self._checked[(text[:i], flags)] = _Checked(method, registry.generation)

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

    def _check(self, header: env.Header, mismatches: list[str] | None = None) -> Method:
        return check_header(
            header, allow=self.allow, on_mismatch=self.on_mismatch, mismatches=mismatches
        )

    def _load(self, parsed: env.Parsed, *, copy_buffers: bool) -> Any:
        if self.key is not None:
            parsed.verify(self.key)
        header = parsed.header
        mismatches: list[str] = []
        method = self._check(header, mismatches)
        if not mismatches:
            self._remember(parsed, method)
        buffers: list[Any] = list(parsed.buffers)
        if copy_buffers:
            buffers = [bytearray(b) for b in buffers]
        persistent = persistent_loader() if header.extra.get("persistent") else None
        return self._unpickle(method, parsed.body, LoadContext(buffers, persistent))

    def _unpickle(
        self,
        method: Method,
        body: bytes | memoryview,
        context: LoadContext | None = None,
    ) -> Any:
        """Run the method's loader; explain its failures in serdoctor's terms."""
        view = body if isinstance(body, memoryview) else memoryview(body)
        try:
            return method.loads(view, context if context is not None else _NO_CONTEXT)
        except SerdoctorError:
            raise
        except Exception as exc:
            raise _load_error(exc, method.name) from exc


def _load_error(exc: Exception, method_name: str) -> SerdoctorError:
    """A method's failure to load a body, in serdoctor's terms."""
    if isinstance(exc, ModuleNotFoundError):
        module = exc.name or "?"
        return MissingModuleError(
            f"loading the payload imported {module!r}, which is not installed here: install "
            "it where the payload is loaded",
            module=module,
        )
    if isinstance(exc, AttributeError):
        return DeserializationError(
            f"loading the payload failed: {exc}. The name exists where the payload was made "
            "but not here: the module differs between the two environments (compare them "
            "with `ser-doctor env diff`)"
        )
    return DeserializationError(f"the {method_name} body failed to load: {_error_text(exc)}")


_default: Serializer | None = None
_PICKLE = registry.get("pickle")
_CLOUDPICKLE = registry.get("cloudpickle")
_NO_CONTEXT = LoadContext()


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


def dumps(
    obj: Any,
    protocol: int | None = None,
    *,
    buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None,
) -> bytes:
    """Serialize ``obj`` with the default stack (pickle, then cloudpickle, then dill).

    Takes ``pickle.dumps``'s arguments (see :meth:`Serializer.dumps`).
    """
    return default_serializer().dumps(obj, protocol, buffer_callback=buffer_callback)


def loads(data: env.Buffer, *, raw: bool = False, buffers: Iterable[Any] | None = None) -> Any:
    """Check, then load a payload made by :func:`dumps` (``buffers`` as for ``pickle.loads``)."""
    return default_serializer().loads(data, raw=raw, buffers=buffers)


def _check_protocol(protocol: int, buffer_callback: Any) -> None:
    """Refuse what ``pickle.dumps`` refuses, with its reasons."""
    if not isinstance(protocol, int) or protocol > pickle.HIGHEST_PROTOCOL:
        raise ValueError(
            f"pickle protocol must be <= {pickle.HIGHEST_PROTOCOL}, not {protocol!r} "
            "(serdoctor always writes protocol 5 inside its envelope)"
        )
    if buffer_callback is not None and 0 <= protocol < 5:
        raise ValueError("buffer_callback needs protocol >= 5")


def explain(obj: Any) -> Explanation:
    """Report how the default stack would serialize ``obj``, and why."""
    return default_serializer().explain(obj)
