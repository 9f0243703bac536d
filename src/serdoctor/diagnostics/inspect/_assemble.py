"""Putting the report together from what the machine saw.

:func:`_finish` fills an :class:`InspectReport` (availability of each import,
by-value descriptions, Python mismatches, largest values with their paths,
sketch, sorted findings); :func:`_predict` says what loading the file here
would need and what would stop it.
"""

from __future__ import annotations

import sys
from typing import Any

from serdoctor.diagnostics.inspect._byvalue import _describe
from serdoctor.diagnostics.inspect._env import _Env
from serdoctor.diagnostics.inspect._report import (
    DANGEROUS,
    INFO,
    RUNNING_PYTHON,
    WARNING,
    InspectReport,
    LoadPrediction,
    ValueInfo,
)
from serdoctor.diagnostics.inspect.machine._nodes import (
    F_ATTRS,
    K_CODE,
    K_FUNC,
    K_OBJ,
    KT_ARGS,
    KT_INDEX,
    KT_KEY,
    KT_KWARGS,
    KT_MEMBER,
    KT_ROOT,
    KT_STATE,
    MAX_BY_VALUE,
    MAX_FINDINGS,
    _Node,
    _seq,
    _type_name,
)
from serdoctor.diagnostics.inspect.machine._sim import _Machine


def _key_text(key: Any) -> str:
    t = type(key)
    if t is str:
        return repr(key) if len(key) <= 40 else repr(key[:40]) + "…"
    if key is None or t in (int, float, bool, bytes):
        return repr(key)[:40]
    if t is tuple:
        return repr(key)[:40]
    return f"<{_type_name(key)}>"


def _path(node: _Node, stacked: bool) -> str:
    """``['payload'].weights[3]``-style path from the root to ``node``."""
    segs: list[str] = []
    cur: _Node | None = node
    seen: set[int] = set()
    prefix = ""
    while cur is not None:
        if id(cur) in seen:
            segs.append("<cycle>")
            break
        seen.add(id(cur))
        kt = cur.ktype
        if kt == KT_ROOT:
            prefix = f"#{cur.key + 1} " if stacked else ""
            break
        parent = cur.parent
        if parent is None:
            prefix = "<not stored in the result> "
            segs.append(f"@{cur.pos}")
            break
        if kt == KT_INDEX:
            segs.append(f"[{cur.key}]")
        elif kt == KT_MEMBER:
            segs.append("{member}")
        elif kt == KT_KEY:
            if parent.flags & F_ATTRS and type(cur.key) is str and cur.key.isidentifier():
                segs.append(f".{cur.key}")
            else:
                segs.append(f"[{_key_text(cur.key)}]")
        elif kt == KT_ARGS:
            segs.append(".args")
        elif kt == KT_STATE:
            if not cur.flags & F_ATTRS:
                segs.append(".state")
        elif kt == KT_KWARGS:
            segs.append(".kwargs")
        cur = parent
    segs.reverse()
    if len(segs) > 14:
        segs = [*segs[:5], f"…({len(segs) - 11} levels)…", *segs[-6:]]
    text = "".join(segs)
    if not text or text.startswith("."):
        text = "<root>" + text
    return prefix + text


def _finish(m: _Machine, report: InspectReport, env: _Env) -> None:
    """Fill ``report`` from the machine's observations (also after an error)."""
    report.pickles = list(m.s.pickles)
    report.pickle_count = m.s.pickle_count
    report.totals = dict(m.s.totals)
    stacked = m.s.pickle_count > 1
    imports = sorted(m.s.imports.values(), key=lambda i: i.offsets[0] if i.offsets else 0)
    for info in imports:
        info.availability = env.check(info.module, info.name)
    report.imports = imports
    producers: list[str] = []
    if any(i.module.startswith("cloudpickle") for i in imports):
        producers.append("cloudpickle")
    if any(i.module.startswith("dill") for i in imports) or m.s.dill_main:
        producers.append("dill")
    report.producer = producers or (["pickle"] if m.s.pickles else [])
    inner = {
        id(code)
        for bv in m.s.by_value
        if bv.kind == K_FUNC
        for code in (_seq(bv.args) or [None])[:1]
    }
    report.by_value = [
        _describe(m.r, bv)
        for bv in m.s.by_value
        if not (bv.kind == K_CODE and id(bv.node) in inner)
    ]
    for d in report.by_value:
        if d.python and RUNNING_PYTHON not in d.python:
            m.s.finding(
                WARNING,
                "python-mismatch",
                f"by-value {d.kind} {d.qualname or d.name or '?'} was compiled by Python "
                f"{', '.join(d.python)} ({d.python_basis}); this is Python {RUNNING_PYTHON}: "
                "loading it here fails or runs wrong bytecode. Load it with that Python, or "
                "make the code importable so it travels by reference",
                d.offset,
                d.qualname or d.name,
            )
    leaves = sorted(m.s.leaves, key=lambda t: (-t[0], t[1]))
    report.largest = [
        ValueInfo(_path(n, stacked), _leaf_type(n), n.size, n.pos) for _, _, n in leaves
    ]
    boxes = sorted(m.s.boxes, key=lambda t: (-t[0], t[1]))
    report.containers = [
        ValueInfo(
            _path(n, stacked),
            f"{n.label}(…)" if n.kind == K_OBJ else _type_name(n),
            n.size,
            n.pos,
            n.count if n.kind != K_OBJ else None,
            True,
        )
        for _, _, n in boxes
        if n.ktype != KT_ARGS
    ]
    lines = list(dict.fromkeys(m.s.sketch_imports))
    report.sketch = lines + ([""] if lines else []) + m.s.sketch
    if m.s.sketch_full:
        report.sketch.append("# … (sketch truncated)")
    report.findings = sorted(
        m.s.findings,
        key=lambda f: (
            {DANGEROUS: 0, WARNING: 1, INFO: 2}.get(f.severity, 3),
            f.offset if f.offset is not None else -1,
        ),
    )
    report.truncated_lists = len(m.s.by_value) >= MAX_BY_VALUE or len(m.s.findings) >= MAX_FINDINGS


def _leaf_type(node: _Node) -> str:
    return str(node.label)


def _predict(m: _Machine, report: InspectReport) -> LoadPrediction:
    """What loading the file here would need, and what would stop it."""
    pred = _loader(m, report)
    _import_problems(report, pred)
    _payload_problems(m, report, pred)
    pred.would_load = not pred.problems
    return pred


def _loader(m: _Machine, report: InspectReport) -> LoadPrediction:
    """The loader and the call to use, and the libraries it needs."""
    envelope = report.envelope
    dill = "dill" in report.producer
    if envelope is not None:
        loader = "serdoctor.loads"
        call = "serdoctor.loads(data)"
        if envelope.signed:
            call = "serdoctor.Serializer(key=KEY).loads(data)"
    elif dill:
        loader = "dill.load"
        call = "dill.load(f)"
    else:
        loader = "pickle.load"
        call = "pickle.load(f)"
    buffers = report.out_of_band_buffers
    pred = LoadPrediction(loader, call, True, buffers=buffers)
    if envelope is None:
        extras = []
        if buffers:
            extras.append("buffers=buffers")
        if m.s.nonascii_strings:
            extras.append('encoding="latin1"')
        if extras:
            pred.call = f"{loader}(f, {', '.join(extras)})"
        if report.pickle_count > 1:
            pred.call += f"  # {report.pickle_count} times: one call per stacked pickle"
    if "cloudpickle" in report.producer:
        pred.needs.append("cloudpickle installed where it is loaded (pickle.load works)")
    if dill:
        pred.needs.append(
            "dill installed; load with dill.load (its Unpickler resolves dill-specific references)"
        )
    return pred


def _import_problems(report: InspectReport, pred: LoadPrediction) -> None:
    """Imports that do not resolve here (and known moves), ``__main__`` names."""
    for info in report.imports:
        av = info.availability
        if av is None or av.ok:
            if av is not None and av.move:
                pred.needs.append(f"{info.target}: {av.move}")
            continue
        if av.status == "main":
            if info.module == "__main__":
                pred.main_names.append(info.name)
            continue
        if (
            av.status in ("missing-module", "missing-submodule")
            and info.module not in pred.missing_modules
        ):
            pred.missing_modules.append(info.module)
        text = f"{info.target}: {av.detail}"
        if av.move:
            text += f" ({av.move})"
        pred.problems.append(text)
    for name in pred.main_names:
        pred.problems.append(
            f"__main__.{name}: the program that loads the pickle must define {name} in its "
            "__main__ module (or the sender must pass it by value)"
        )


def _payload_problems(m: _Machine, report: InspectReport, pred: LoadPrediction) -> None:
    """By-value code, buffers, Python 2 strings, persistent IDs, envelope needs, errors."""
    envelope = report.envelope
    buffers = report.out_of_band_buffers
    for d in report.by_value:
        if d.python and RUNNING_PYTHON not in d.python:
            pred.problems.append(
                f"by-value {d.kind} {d.qualname or d.name or '?'} needs Python "
                f"{' or '.join(d.python)}; this is {RUNNING_PYTHON}"
            )
    if buffers and envelope is None:
        pred.problems.append(
            f"needs {buffers} out-of-band buffer(s) that are not in this file: pass them "
            "with buffers= (pickle.load raises without them)"
        )
    if m.s.nonascii_strings and envelope is None:
        pred.problems.append(
            "holds Python 2 byte strings with non-ASCII bytes: pickle.load(f) raises "
            'UnicodeDecodeError unless given encoding="latin1" (numpy, datetime data) or '
            'encoding="bytes"'
        )
    if m.s.persids and not m.s.envelope_persistent:
        pred.problems.append("uses persistent IDs: needs an Unpickler with persistent_load")
    for code in m.s.ext_codes:
        pred.problems.append(f"copyreg extension code {code} is not registered here")
    if envelope is not None:
        for module, avail in envelope.requirements.items():
            if not avail.ok and avail.status != "main" and module not in pred.missing_modules:
                pred.missing_modules.append(module)
                pred.problems.append(f"requires {module}: {avail.detail}")
        if envelope.by_value and envelope.python_minor != RUNNING_PYTHON:
            pred.problems.append(
                f"by-value payload made by Python {envelope.python}; this is "
                f"{sys.version.split()[0]}: serdoctor.loads refuses it "
                "(IncompatiblePythonError)"
            )
    if report.error is not None:
        pred.problems.append(f"loading fails at byte {report.error.offset}: {report.error.message}")
