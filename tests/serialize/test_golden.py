"""The envelope format is pinned by the golden payloads in ``tests/golden/``.

Three promises (``docs/format.md``):

1. every golden payload still loads to its expected value;
2. dumping the same value today writes the same bytes, apart from the header
   fields that legitimately vary (the sender's Python version, serdoctor's
   version, and installed versions of the libraries a payload records);
3. the magic and the format version have their pinned values.

So a format change cannot slip in silently: it fails here with a message
naming what changed. A deliberate change bumps ``FORMAT_VERSION`` and
regenerates the goldens (``python tests/golden/make_golden.py --force``).

The payloads are split here by an independent reader written from
``docs/format.md`` (``struct`` + ``json``), not by serdoctor's own codec.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import importlib.util
import json
import platform
import struct
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import serdoctor
from serdoctor.errors import DeserializationError, IncompatiblePythonError, SignatureError
from serdoctor.serialize import _checks as serializer_module
from serdoctor.serialize import _envelope
from serdoctor.serialize._checks import EnvironmentMismatchWarning
from serdoctor.testing import assert_roundtrip, picklable_values, roundtrip_values

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PINNED_MAGIC = b"\xffSDOC"
PINNED_FORMAT_VERSION = 1
PREFIX = struct.Struct(">5sBBI")
TAG_SIZE = 32
ALWAYS_VARIES = ("python", "serdoctor")
VERSION_MAPS = ("requires", "libraries")  # {name: installed version}
HERE_MINOR = "{}.{}".format(*sys.version_info[:2])

HOW_TO_CHANGE = (
    "If this change of the envelope format is deliberate, bump FORMAT_VERSION in "
    "src/serdoctor/serialize/_envelope.py, describe it in docs/format.md and regenerate "
    "the goldens with `python tests/golden/make_golden.py --force` (under Python 3.11)."
)


def _load_cases() -> ModuleType:
    name = "serdoctor_golden_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GOLDEN / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cases = _load_cases()
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text(encoding="utf-8"))
MADE_WITH: dict[str, str] = MANIFEST["made_with"]
CASE_IDS = [case.name for case in cases.CASES]


@dataclass
class Split:
    """A flat payload cut into its parts, as ``docs/format.md`` describes them."""

    magic: bytes
    version: int
    flags: int
    head: bytes
    header: dict[str, Any]  # field order as written
    body: bytes
    buffers: list[bytes]
    tag: bytes | None

    @property
    def frames(self) -> list[bytes]:
        """The frames whose concatenation is the payload."""
        return [self.head, self.body, *self.buffers, *([self.tag] if self.tag else [])]


def split(payload: bytes) -> Split:
    """Cut a flat payload into prefix, header, body, buffers and tag."""
    magic, version, flags, size = PREFIX.unpack_from(payload)
    end = PREFIX.size + size
    header = json.loads(payload[PREFIX.size : end].decode("utf-8"))
    pos = end + header["body"]
    body = payload[end:pos]
    buffers = []
    for n in header["buffers"]:
        buffers.append(payload[pos : pos + n])
        pos += n
    tag = None
    if flags & 0x01:
        tag = payload[pos:]
        assert len(tag) == TAG_SIZE, f"signed payload ends with {len(tag)} bytes, not a tag"
    else:
        assert pos == len(payload), "unsigned payload has bytes after its last buffer"
    return Split(magic, version, flags, payload[:end], header, body, buffers, tag)


def golden_bytes(name: str) -> bytes:
    """The golden payload ``name``, after checking it is the file make_golden.py wrote."""
    entry = MANIFEST["cases"][name]
    data: bytes = (GOLDEN / str(entry["file"])).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], (
        f"{entry['file']} is not the file make_golden.py wrote (its SHA-256 differs from "
        "manifest.json): golden payloads must not be edited by hand. " + HOW_TO_CHANGE
    )
    return data


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def body_comparable(case: Any) -> tuple[bool, str]:
    """Whether the body must be byte-identical here, and if not, why not."""
    for dep in case.body_depends_on:
        if dep == "python":
            made = ".".join(MADE_WITH["python"].split(".")[:2])
            if made != HERE_MINOR:
                return False, f"made by Python {made}, this is {HERE_MINOR}"
        elif _installed(dep) != MADE_WITH[dep]:
            return False, f"made with {dep} {MADE_WITH[dep]}, this has {_installed(dep)}"
    return True, ""


def _field(header: dict[str, Any], dotted: str) -> Any:
    value: Any = header
    for part in dotted.split("."):
        value = value[part]
    return value


def _local_versions(header: dict[str, Any], field: str) -> dict[str, Any]:
    """What ``header[field]`` must say here: each entry's installed distribution version."""
    dists = header.get("dists", {})
    names = header.get(field, {})
    return {k: _installed(dists.get(k, k) if field == "requires" else k) for k in names}


def compare_headers(old: dict[str, Any], new: dict[str, Any], body_exact: bool) -> list[str]:
    """Differences between a golden header and today's, ignoring what may vary.

    ``python`` and ``serdoctor`` must be this interpreter's and this serdoctor's
    versions; ``requires`` and ``libraries`` must name the same modules and
    libraries, each with the version installed here; everything else must be
    identical, field order included (``body`` only when the body is compared).
    """
    diffs: list[str] = []
    if list(old) != list(new):
        diffs.append(f"header fields (in order) changed: {list(old)} -> {list(new)}")
    if new.get("python") != platform.python_version():
        diffs.append(f"header 'python' is {new.get('python')!r}, not this interpreter's version")
    if new.get("serdoctor") != serdoctor.__version__:
        diffs.append(f"header 'serdoctor' is {new.get('serdoctor')!r}, not {serdoctor.__version__}")
    skip = set(ALWAYS_VARIES) | ({"body"} if not body_exact else set())
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        if key not in new:
            diffs.append(f"header field {key!r} disappeared (was {old[key]!r})")
        elif key not in old:
            diffs.append(f"header field {key!r} is new ({new[key]!r})")
        elif key in VERSION_MAPS:
            if not isinstance(new[key], dict) or list(old[key]) != list(new[key]):
                diffs.append(f"header field {key!r} changed: {old[key]!r} -> {new[key]!r}")
            elif new[key] != _local_versions(new, key):
                diffs.append(
                    f"header field {key!r} is {new[key]!r}; the installed versions are "
                    f"{_local_versions(new, key)!r}"
                )
        elif old[key] != new[key]:
            diffs.append(f"header field {key!r} changed: {old[key]!r} -> {new[key]!r}")
    return diffs


def _first_difference(a: bytes, b: bytes) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return (
        f"{len(a)} -> {len(b)} bytes, first difference at offset {n}: "
        f"{a[n : n + 16]!r} -> {b[n : n + 16]!r}"
    )


def _loads_quietly(serializer: serdoctor.Serializer, data: Any, *, frames: bool = False) -> Any:
    """Load; a distribution version differing from the golden's only warns (ignored here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnvironmentMismatchWarning)
        return serializer.loads_frames(data) if frames else serializer.loads(data)


# --- 1. every golden payload loads to its expected value ---------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
def test_golden_payload_loads_to_its_expected_value(name: str) -> None:
    case = cases.BY_NAME[name]
    data = golden_bytes(name)
    serializer = serdoctor.Serializer(**case.serializer)
    if case.by_value and HERE_MINOR != cases.GOLDEN_PYTHON:
        with pytest.raises(IncompatiblePythonError) as info:
            serializer.loads(data)
        assert cases.GOLDEN_PYTHON in str(info.value) and HERE_MINOR in str(info.value)
        return
    value = _loads_quietly(serializer, data)
    assert case.check(value), f"{case.filename} loaded to {value!r}"
    framed = _loads_quietly(serializer, split(data).frames, frames=True)
    assert case.check(framed), f"{case.filename} loaded from frames to {framed!r}"


def test_golden_header_says_what_the_case_is() -> None:
    for case in cases.CASES:
        parts = split(golden_bytes(case.name))
        assert parts.header["method"] == case.method, case.name
        assert parts.header["by_value"] is case.by_value, case.name
        assert bool(parts.flags & 0x01) is ("key" in case.serializer), case.name
        header, size = _envelope.read_head(golden_bytes(case.name))
        assert size == len(parts.head)
        assert header.to_dict() == parts.header, case.name


def test_by_value_golden_is_refused_by_another_python_minor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In-process stand-in for "loaded by Python 3.12"; the real cross-interpreter run is
    # in the stack's own tests. The version check must fire before anything is unpickled.
    data = golden_bytes("lambda_by_value_py311")
    other = "3.10" if HERE_MINOR != "3.10" else "3.12"
    monkeypatch.setattr(serializer_module, "PYTHON_MINOR", other)
    monkeypatch.setattr(serializer_module, "PYTHON", f"{other}.0")
    with pytest.raises(IncompatiblePythonError) as info:
        serdoctor.Serializer().loads(data)
    message = str(info.value)
    assert "3.11" in message and other in message
    assert "importable" in message  # the remedy: make it travel by reference


def test_signed_golden_is_checked_with_the_key() -> None:
    data = golden_bytes("signed")
    parts = split(data)
    assert parts.tag == hmac.new(cases.TEST_KEY, data[:-TAG_SIZE], hashlib.sha256).digest(), (
        "the tag must be HMAC-SHA256 over every byte before it (prefix, header, body, buffers)"
    )
    with pytest.raises(SignatureError):
        serdoctor.Serializer(key=b"another-key-of-32-bytes-00000000").loads(data)
    tampered = bytearray(data)
    tampered[len(parts.head) + 5] ^= 0x01  # a body byte
    with pytest.raises(SignatureError):
        serdoctor.Serializer(key=cases.TEST_KEY).loads(bytes(tampered))
    unsigned = golden_bytes("plain_values")
    with pytest.raises(SignatureError):
        serdoctor.Serializer(key=cases.TEST_KEY).loads(unsigned)


@given(
    key=st.binary(min_size=0, max_size=200),  # shorter than, as long as and longer than a block
    parts=st.lists(st.binary(max_size=300), max_size=5),
)
@settings(max_examples=200, deadline=None)
def test_hmac_from_copied_pads_is_the_standard_hmac(key: bytes, parts: list[bytes]) -> None:
    expected = hmac.new(key, b"".join(parts), hashlib.sha256).digest()
    assert _envelope.hmac_sha256(key, parts) == expected
    assert _envelope.hmac_sha256(key, [memoryview(p) for p in parts]) == expected  # (again:
    # the cached pads are copied, never updated)


# Payloads of 2 MiB or more are signed by chunks (flags bit 1; docs/format.md, "The tag"):
# no golden file for them (they would be megabytes); the scheme is pinned by this
# independent implementation of what the docs say instead.
CHUNK = 1 << 20
CHUNKED_DOMAIN = b"serdoctor tag by chunks 1\x00"


def tag_by_chunks(key: bytes, signed: bytes) -> bytes:
    """The tag docs/format.md describes for payloads signed by chunks."""
    mac = hmac.new(key, CHUNKED_DOMAIN + len(signed).to_bytes(8, "big"), hashlib.sha256)
    for start in range(0, len(signed), CHUNK):
        mac.update(hashlib.sha256(signed[start : start + CHUNK]).digest())
    return mac.digest()


def _large_value() -> tuple[Any, ...]:
    import numpy as np
    # odd sizes: chunks straddle the boundaries between head, body and buffers
    first = np.arange((3 << 20) // 8 + 3, dtype=np.int64)
    return (b"x" * 1000, first, np.ones(1_500_001, dtype=np.uint8), "tail")


@pytest.mark.timeout(60)
def test_large_signed_payloads_are_tagged_by_chunks() -> None:
    serializer = serdoctor.Serializer(key=cases.TEST_KEY)
    value = _large_value()
    flat = serializer.dumps(value)
    assert flat == b"".join(bytes(memoryview(f)) for f in serializer.dumps_frames(value))
    parts = split(flat)
    assert parts.flags == 0x03, "signed, by chunks"
    assert len(parts.buffers) == 2
    assert parts.tag == tag_by_chunks(cases.TEST_KEY, flat[:-TAG_SIZE])
    assert parts.tag != hmac.new(cases.TEST_KEY, flat[:-TAG_SIZE], hashlib.sha256).digest()
    back = serializer.loads(flat)
    assert back[0] == value[0] and (back[1] == value[1]).all() and back[3] == "tail"

    for where in (len(parts.head) + 3, len(flat) // 2, len(flat) - TAG_SIZE - 1):
        tampered = bytearray(flat)
        tampered[where] ^= 0x01
        with pytest.raises(SignatureError):
            serializer.loads(bytes(tampered))
    # the flag that picks the scheme is covered by the tag: clearing it fails too
    whole = bytearray(flat)
    whole[6] = 0x01
    with pytest.raises(SignatureError):
        serializer.loads(bytes(whole))


@pytest.mark.timeout(60)
def test_large_payloads_signed_whole_by_older_serdoctor_still_load() -> None:
    serializer = serdoctor.Serializer(key=cases.TEST_KEY)
    value = _large_value()
    flat = serializer.dumps(value)
    # what serdoctor wrote before tags by chunks: flags 0x01, HMAC over every byte
    older = bytearray(flat[:-TAG_SIZE])
    older[6] = 0x01
    older += hmac.new(cases.TEST_KEY, bytes(older), hashlib.sha256).digest()
    back = serializer.loads(bytes(older))
    assert (back[1] == value[1]).all() and (back[2] == value[2]).all()
    # and its whole-payload tag does not pass for a tag by chunks
    older[6] = 0x03
    with pytest.raises(SignatureError):
        serializer.loads(bytes(older))


def test_a_chunked_flag_without_the_signed_flag_is_refused() -> None:
    data = bytearray(serdoctor.Serializer().dumps(1))
    data[6] = 0x02
    with pytest.raises(DeserializationError, match=r"by chunks.*damaged"):
        serdoctor.Serializer().loads(bytes(data))


def test_a_header_nested_past_the_recursion_limit_is_a_clear_error(tmp_path: Path) -> None:
    text = b"[" * 100_000  # json.loads raises RecursionError, not a JSONDecodeError
    data = _envelope._PREFIX.pack(_envelope.MAGIC, _envelope.FORMAT_VERSION, 0, len(text)) + text
    with pytest.raises(DeserializationError, match="not valid JSON"):
        serdoctor.Serializer().loads(data)
    path = tmp_path / "deep.pkl"
    path.write_bytes(data)
    inspect = subprocess.run(
        [sys.executable, "-m", "serdoctor.cli", "inspect", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = " ".join((inspect.stdout + inspect.stderr).split())  # (the report wraps its lines)
    assert "Traceback" not in said and "header is not valid JSON" in said


# --- 2. dumping the same value today writes the same bytes -------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
def test_dumping_again_writes_the_golden_bytes(name: str) -> None:
    case = cases.BY_NAME[name]
    old = split(golden_bytes(name))
    serializer = serdoctor.Serializer(**case.serializer)
    frames = serializer.dumps_frames(case.make())
    flat = b"".join(bytes(memoryview(f)) for f in frames)
    assert flat == serializer.dumps(case.make()), "dumps() must equal b''.join(dumps_frames())"
    new = split(flat)
    body_exact, why = body_comparable(case)

    diffs = []
    if new.magic != old.magic:
        diffs.append(f"magic changed: {old.magic!r} -> {new.magic!r}")
    if new.version != old.version:
        diffs.append(f"format version byte changed: {old.version} -> {new.version}")
    if new.flags != old.flags:
        diffs.append(f"flags byte changed: {old.flags:#04x} -> {new.flags:#04x}")
    diffs += compare_headers(old.header, new.header, body_exact)
    if body_exact and new.body != old.body:
        diffs.append("body bytes changed: " + _first_difference(old.body, new.body))
    if len(new.frames) != len(old.frames) or len(new.buffers) != len(old.buffers):
        diffs.append(f"frame count changed: {len(old.frames)} -> {len(new.frames)}")
    for i, (a, b) in enumerate(zip(old.buffers, new.buffers, strict=False)):
        if a != b:
            diffs.append(f"out-of-band buffer {i} changed: " + _first_difference(a, b))
    if new.tag is not None:
        key = case.serializer["key"]
        if new.tag != hmac.new(key, flat[:-TAG_SIZE], hashlib.sha256).digest():
            diffs.append("the tag is no longer HMAC-SHA256 over every byte before it")
        if new.head == old.head and new.body == old.body and new.tag != old.tag:
            diffs.append("same header and body, but a different tag")
    assert not diffs, (
        f"golden payload {case.filename} ({case.description}) is no longer what serdoctor "
        "writes — the envelope format changed silently:\n  - "
        + "\n  - ".join(diffs)
        + (f"\n(body not compared byte for byte: {why})" if not body_exact else "")
        + "\n"
        + HOW_TO_CHANGE
    )


# --- 3. the pinned constants -------------------------------------------------------------


def test_magic_and_format_version_are_pinned() -> None:
    assert _envelope.MAGIC == PINNED_MAGIC, HOW_TO_CHANGE
    assert _envelope.FORMAT_VERSION == PINNED_FORMAT_VERSION, (
        "FORMAT_VERSION changed: update PINNED_FORMAT_VERSION here, docs/format.md and "
        "regenerate the goldens (`python tests/golden/make_golden.py --force`)"
    )
    assert _envelope.PREFIX_SIZE == PREFIX.size == 11
    assert _envelope.TAG_SIZE == TAG_SIZE
    assert _envelope.FLAG_SIGNED == 0x01
    assert _envelope.FLAG_CHUNKED == 0x02
    assert (_envelope.CHUNK, _envelope.CHUNKED_AT) == (CHUNK, 2 * CHUNK)
    assert _envelope.CHUNKED_DOMAIN == CHUNKED_DOMAIN
    assert MANIFEST["format_version"] == PINNED_FORMAT_VERSION
    assert bytes.fromhex(MANIFEST["magic"]) == PINNED_MAGIC
    for name in CASE_IDS:
        parts = split(golden_bytes(name))
        assert parts.magic == PINNED_MAGIC and parts.version == PINNED_FORMAT_VERSION, name


def test_every_golden_file_is_listed() -> None:
    on_disk = {p.name for p in GOLDEN.glob("*.sdoc")}
    listed = {entry["file"] for entry in MANIFEST["cases"].values()}
    assert on_disk == listed == {case.filename for case in cases.CASES}


# --- 4. every value of serdoctor.testing's strategies makes a well-formed envelope -------


class EnvelopeChecking:
    """A serializer that checks every payload it writes against this page's reader."""

    def __init__(self, inner: serdoctor.Serializer) -> None:
        self.inner = inner
        self.headers: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"EnvelopeChecking({self.inner!r})"

    def _check(self, flat: bytes) -> None:
        header, size = _envelope.read_head(flat)
        parts = split(flat)  # the independent reader agrees on every length
        assert size == len(parts.head)
        assert header.to_dict() == parts.header
        assert b"".join(parts.frames) == flat
        assert parts.magic == PINNED_MAGIC and parts.version == PINNED_FORMAT_VERSION
        assert list(parts.header)[-2:] == ["body", "buffers"]
        assert parts.header["python"] == platform.python_version()
        assert parts.header["method"] in self.inner.methods
        if parts.header["by_value"]:
            assert parts.header["method"] != "pickle"
        self.headers.append(parts.header)

    def dumps(self, obj: Any) -> bytes:
        data = self.inner.dumps(obj)
        self._check(data)
        return data

    def loads(self, data: bytes) -> Any:
        return self.inner.loads(data)

    def dumps_frames(self, obj: Any) -> list[Any]:
        frames = self.inner.dumps_frames(obj)
        self._check(b"".join(bytes(memoryview(f)) for f in frames))
        return frames

    def loads_frames(self, frames: Any) -> Any:
        return self.inner.loads_frames(frames)


QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(value=roundtrip_values(max_leaves=8))
def test_strategy_values_round_trip_through_the_envelope(value: Any) -> None:
    checking = EnvelopeChecking(serdoctor.Serializer())
    assert_roundtrip(value, serializer=checking)
    assert_roundtrip(value, serializer=checking, frames=True)
    assert len(checking.headers) == 2


@QUICK
@given(value=picklable_values(max_leaves=8))
def test_picklable_values_travel_by_reference_with_pickle(value: Any) -> None:
    checking = EnvelopeChecking(serdoctor.Serializer())
    assert_roundtrip(value, serializer=checking)
    header = checking.headers[-1]
    assert header["method"] == "pickle" and header["by_value"] is False, header


def test_make_golden_refuses_to_overwrite_without_force() -> None:
    before = {p.name: p.read_bytes() for p in GOLDEN.iterdir() if p.is_file()}
    done = subprocess.run(
        [sys.executable, str(GOLDEN / "make_golden.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    if HERE_MINOR == cases.GOLDEN_PYTHON:
        assert "refusing to overwrite" in done.stderr and "--force" in done.stderr
    after = {p.name: p.read_bytes() for p in GOLDEN.iterdir() if p.is_file()}
    assert after == before


def test_names_that_payloads_wrote_before_the_subpackages_still_load() -> None:
    """serialize/exceptions/ and serialize/proxy/ moved; old payloads name the old modules."""
    import importlib
    import pickle

    from serdoctor.serialize.exceptions import reduce_exception
    from serdoctor.serialize.proxy._store import make_lazy_proxy

    rebuild, (record,) = reduce_exception(ValueError("written before", 7))
    old = b"\x80\x02cserdoctor.serialize._remote_exc\n_rebuild_exception\n"
    data = old + pickle.dumps((record,), 2)[2:-1] + b"R."
    back = pickle.loads(data)
    assert type(back) is ValueError and back.args == ("written before", 7)
    assert importlib.import_module("serdoctor.serialize._remote_exc")._rebuild_exception is rebuild
    assert importlib.import_module("serdoctor.serialize._proxy_store").make_lazy_proxy is (
        make_lazy_proxy
    )
