"""ProxyPolicy in one process: what gets proxied, paths, explain, scopes, bad cases.

Everything goes through ``serdoctor.Serializer(proxy=ProxyPolicy(...))``;
cross-process behaviour (fresh interpreters, Redis) is in test_proxy_process.py.
"""

from __future__ import annotations

import array
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from proxystore.connectors.file import FileConnector
from proxystore.proxy import Proxy, extract, is_resolved
from proxystore.store import Store

import serdoctor
from serdoctor.errors import DeserializationError, ProxyResolutionError, SerializationError
from serdoctor.serialize import _envelope as env
from serdoctor.serialize.proxy._policy import ProxyPlan, ProxyPolicy, load_persistent, proxy_scope
from serdoctor.serialize.proxy._redis import redis_store
from serdoctor.serialize.proxy._walk import find, probe

MB = 1 << 20
BIG = 100 * MB


def _store(tmp_path: Path, name: str = "test-store") -> Store[Any]:
    return Store(name, FileConnector(str(tmp_path / "store"), clear=True), cache_size=0)


def _stored(store: Store[Any]) -> list[str]:
    """Objects in a FileConnector store (each object is a file plus a .ready marker)."""
    directory = store.connector.store_dir
    return sorted(f for f in os.listdir(directory) if not f.endswith(".ready"))


def _proxies(data: bytes) -> list[dict[str, Any]]:
    header, _ = env.read_head(data)
    return list(header.extra.get("proxies", ()))


@dataclass
class Frame:
    name: str
    data: Any


class Slotted:
    __slots__ = ("blob", "tag")

    def __init__(self, blob: Any, tag: str) -> None:
        self.blob = blob
        self.tag = tag


class Marker:
    def __init__(self, value: int) -> None:
        self.value = value


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = _store(tmp_path)
    yield s
    s.close()


# --------------------------------------------------------------------------- what is proxied


def _make(kind: str) -> Any:
    if kind == "bytes":
        return b"\x01" * BIG
    if kind == "str":
        return "é" * (BIG // 2)  # 100 MB of UTF-8
    if kind == "bytearray":
        return bytearray(b"\x02") * BIG
    return np.full(BIG // 8, 3.5)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["bytes", "str", "bytearray", "ndarray"])
def test_large_object_nested_in_containers_travels_as_a_small_proxy(kind: str, store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    big = _make(kind)
    payload = {"meta": {"n": 1}, "items": [0, ("x", {"deep": big})]}
    data = s.dumps(payload)
    assert len(data) < 2048, len(data)
    [entry] = _proxies(data)
    assert entry["path"] == "['items'][1][1]['deep']"
    assert entry["size"] >= BIG
    assert entry["store"] == "test-store"
    assert len(_stored(store)) == 1

    out = s.loads(data)
    proxy = out["items"][1][1]["deep"]
    assert isinstance(proxy, Proxy) and not is_resolved(proxy)
    assert out["meta"] == {"n": 1}
    target = extract(proxy)
    assert type(target) is type(big)
    if kind == "ndarray":
        assert np.array_equal(target, big)
    else:
        assert target == big


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(MB, dtype=np.int32).reshape(1024, 1024),
        lambda: np.asfortranarray(np.arange(MB, dtype=np.float32).reshape(1024, 1024)),
        lambda: np.arange(2 * MB, dtype=np.int16)[::2],  # not contiguous
        lambda: np.array([str(i) for i in range(200_000)], dtype=object),  # needs pickle
        lambda: np.zeros(MB // 4, dtype=[("a", "<i4"), ("b", "<f4")]),  # structured
    ],
    ids=["C", "F", "strided", "object", "structured"],
)
def test_numpy_arrays_round_trip_writable_in_their_layout(make: Any, store: Any) -> None:
    arr = make()
    s = serdoctor.Serializer(proxy=ProxyPolicy(store, min_bytes=MB))
    out = s.loads(s.dumps({"arr": arr}))
    assert isinstance(out["arr"], np.ndarray) and not is_resolved(out["arr"])
    back = extract(out["arr"])
    assert type(back) is np.ndarray and back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    if arr.flags.c_contiguous or arr.flags.f_contiguous:  # strided arrays arrive compacted
        assert back.flags.f_contiguous == arr.flags.f_contiguous
    assert back.flags.writeable


def test_pickled_objects_changed_in_the_store_are_refused(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store, types=(Marker,)))
    data = s.dumps({"m": Marker(1)})
    [name] = _stored(store)
    path = Path(store.connector.store_dir, name)
    path.write_bytes(path.read_bytes().replace(b"value", b"valux"))
    out = s.loads(data)
    with pytest.raises(ProxyResolutionError, match="do not match the digest") as info:
        print(out["m"].value)
    assert name in str(info.value) and "'test-store'" in str(info.value)


def test_small_payloads_get_no_plan_and_stay_plain(store: Any) -> None:
    policy = ProxyPolicy(store)
    small = {"a": [1, 2.0, "three"], "b": b"x" * 1000}
    assert policy.plan_before(small) is None
    assert policy.plan_after(small, 10_000) is None
    s = serdoctor.Serializer(proxy=policy)
    data = s.dumps(small)
    assert _proxies(data) == []
    assert s.loads(data) == small
    assert _stored(store) == []


def test_threshold_types_and_predicate(store: Any) -> None:
    blob = os.urandom(2 * MB)
    payload = {
        "frame": Frame("f", blob),
        "slotted": Slotted(bytes(3 * MB), "t"),
        "marker": Marker(7),
        "tiny": "abc",
        "arr": array.array("d", [1.0]) * (MB // 4),
    }
    s = serdoctor.Serializer(proxy=ProxyPolicy(store, types=(Marker,)))
    data = s.dumps(payload)
    paths = {e["path"]: e["type"] for e in _proxies(data)}
    assert paths == {
        "['frame'].data": "bytes",
        "['slotted'].blob": "bytes",
        "['marker']": f"{__name__}.Marker",
        "['arr']": "array.array",
    }
    out = s.loads(data)
    assert out["frame"].data == blob and out["marker"].value == 7 and out["tiny"] == "abc"
    assert out["slotted"].blob == bytes(3 * MB) and out["arr"] == payload["arr"]

    by_predicate = ProxyPolicy(store, min_bytes=1 << 40, predicate=lambda o: o == "abc")
    data = serdoctor.Serializer(proxy=by_predicate).dumps(payload)
    assert [e["path"] for e in _proxies(data)] == ["['tiny']"]


def test_dict_keys_and_set_members_stay_inline(store: Any) -> None:
    # They are hashed while loading, so a proxy there would resolve at once.
    key = "k" * (2 * MB)
    payload = {key: 1, "members": {b"m" * (2 * MB)}, "value": b"v" * (2 * MB)}
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    data = s.dumps(payload)
    assert [e["path"] for e in _proxies(data)] == ["['value']"]
    assert s.loads(data) == payload


def test_shared_object_is_stored_once(store: Any) -> None:
    blob = os.urandom(2 * MB)
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    data = s.dumps([blob, {"again": blob}, (blob,)])
    assert len(_proxies(data)) == 1
    assert len(_stored(store)) == 1
    out = s.loads(data)
    assert out[0] == out[1]["again"] == out[2][0] == blob


def test_the_payload_itself_can_be_the_large_object(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    blob = os.urandom(2 * MB)
    data = s.dumps(blob)
    assert [e["path"] for e in _proxies(data)] == [""]
    assert s.loads(data) == blob


def test_explain_lists_every_proxied_object_with_path_and_size(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    payload = {"a": Frame("x", b"\0" * (3 * MB)), "b": ["s" * (2 * MB)]}
    with s.proxy_scope():
        report = s.explain(payload)
    rows = {(p["path"], p["size"], p["type"]) for p in report.to_dict()["proxies"]}
    assert rows == {("['a'].data", 3 * MB, "bytes"), ("['b'][0]", 2 * MB, "str")}
    text = str(report)
    assert "['a'].data" in text and "['b'][0]" in text and "3.0 MiB" in text
    assert _stored(store) == []  # the scope evicted what explain stored


def test_dry_run_plan_records_without_storing(store: Any) -> None:
    policy = ProxyPolicy(store)
    payload = {"k": b"z" * (2 * MB)}
    plan = policy.plan_after(payload, 2 * MB)  # a large first pass: walk for objects
    assert isinstance(plan, ProxyPlan)
    dry = plan.as_dry_run()
    assert dry.persistent_id(payload["k"]) is not None
    assert dry.persistent_id(payload) is None
    assert [(e.path, e.size, e.key) for e in dry.entries] == [("['k']", 2 * MB, "")]
    assert _stored(store) == []
    assert policy.estimate(payload) == [("['k']", 2 * MB, "bytes")]


# --------------------------------------------------------------------------- lifetimes


def test_scope_end_evicts_everything_it_stored(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    with s.proxy_scope() as scope:
        first = s.dumps({"a": os.urandom(2 * MB)})
        s.dumps([os.urandom(2 * MB), os.urandom(2 * MB)])
        assert len(_stored(store)) == 3 and len(scope) == 3
        assert s.loads(first)["a"][:1]  # resolvable while the scope lives
    assert os.listdir(store.connector.store_dir) == []
    assert len(scope) == 0


def test_nested_scopes_and_deferred_eviction(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    with proxy_scope() as outer:
        s.dumps(os.urandom(2 * MB))
        with s.proxy_scope() as inner:
            s.dumps(os.urandom(2 * MB))
            assert len(inner) == 1
        assert len(_stored(store)) == 1 and len(outer) == 1
        with ProxyPolicy(store).scope(evict=False) as later:
            kept = s.dumps({"k": os.urandom(2 * MB)})
        assert len(_stored(store)) == 2
        assert s.loads(kept)["k"][:1]
        assert later.evict() == []
        assert len(_stored(store)) == 1
    assert os.listdir(store.connector.store_dir) == []


def test_failed_dumps_can_discard_what_it_stored(store: Any) -> None:
    policy = ProxyPolicy(store)
    payload = [b"a" * (2 * MB), b"b" * (2 * MB)]
    plan = policy.plan_after(payload, 4 * MB)
    assert plan is not None
    plan.persistent_id(payload[0])
    assert len(_stored(store)) == 1
    plan.discard()
    assert _stored(store) == []


def test_evicted_object_fails_clearly_on_first_use(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    with s.proxy_scope():
        data = s.dumps({"p": os.urandom(2 * MB)})
    out = s.loads(data)  # loading itself is fine: proxies are lazy
    [entry] = _proxies(data)
    with pytest.raises(ProxyResolutionError) as info:
        len(out["p"])
    message = str(info.value)
    assert "test-store" in message and entry["key"] in message
    assert "evicted" in message


def test_deleted_store_directory_fails_clearly_and_is_not_recreated(tmp_path: Path) -> None:
    store = _store(tmp_path, "doomed")
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    data = s.dumps({"p": os.urandom(2 * MB)})
    [entry] = _proxies(data)
    shutil.rmtree(store.connector.store_dir)
    out = s.loads(data)
    start = time.monotonic()
    with pytest.raises(ProxyResolutionError) as info:
        out["p"].hex()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "'doomed'" in message and entry["key"] in message and "removed" in message
    assert not os.path.exists(store.connector.store_dir)


def test_put_into_unreachable_store_is_a_serialization_error() -> None:
    from _redis import free_port

    store = redis_store("127.0.0.1", free_port(), name="nowhere", timeout=1.0)
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    start = time.monotonic()
    with pytest.raises(SerializationError) as info:
        s.dumps({"p": b"x" * (2 * MB)})
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "could not put the bytes at ['p']" in message and "'nowhere'" in message


# --------------------------------------------------------------------------- proxies


def test_proxies_can_be_sent_on_without_resolving(store: Any) -> None:
    blob = os.urandom(2 * MB)
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    out = s.loads(s.dumps({"p": blob}))
    again = serdoctor.Serializer(proxy=ProxyPolicy(store)).dumps(out)  # second hop
    assert not is_resolved(out["p"])
    assert len(again) < 2048
    assert serdoctor.loads(again)["p"] == blob


def test_exact_builtin_proxies_pass_isinstance_without_resolving(store: Any) -> None:
    s = serdoctor.Serializer(proxy=ProxyPolicy(store))
    out = s.loads(s.dumps({"b": b"1" * (2 * MB), "s": "2" * (2 * MB)}))
    assert isinstance(out["b"], bytes) and isinstance(out["s"], str)
    assert not is_resolved(out["b"]) and not is_resolved(out["s"])
    assert out["s"].startswith("22") and is_resolved(out["s"])


def test_memo_gives_a_shared_object_one_proxy(store: Any) -> None:
    plan = ProxyPolicy(store).plan_after([b"m" * (2 * MB)], 2 * MB)
    assert plan is not None
    pid = plan.persistent_id(next(iter(plan._rec.candidates.values()))[0])
    memo: dict[Any, Any] = {}
    assert load_persistent(pid, memo) is load_persistent(pid, memo)
    assert load_persistent(pid) is not load_persistent(pid)


def test_malformed_pids_are_deserialization_errors() -> None:
    with pytest.raises(DeserializationError, match="malformed"):
        load_persistent(("sd:proxy", 1))
    with pytest.raises(DeserializationError, match="upgrade serdoctor"):
        load_persistent(("sd:proxy", 99, {}, None, None, "bytes", "bytes", 1, None, "new"))
    with pytest.raises(DeserializationError, match="store configuration"):
        load_persistent(("sd:proxy", 1, {"bogus": 1}, None, "k", "bytes", "bytes", 1, None))


# --------------------------------------------------------------------------- the walk


def test_walk_handles_cycles_depth_and_does_not_resolve_proxies() -> None:
    deep: Any = [b"d" * MB]
    for _ in range(100_000):
        deep = [deep]
    cyclic: dict[str, Any] = {"blob": b"c" * MB}
    cyclic["self"] = cyclic
    unresolved = Proxy(lambda: pytest.fail("the walk resolved a proxy"))
    found = find({"deep": deep, "cyclic": cyclic, "proxy": unresolved}, MB)
    paths = sorted(path for _, path in found.values())
    assert paths == ["['cyclic']['blob']", "['deep']" + "[0]" * 100_001]


def test_probe_is_shallow_and_cheap() -> None:
    assert probe(b"x" * MB, MB)
    assert probe({"a": [1, b"x" * MB]}, MB)
    assert not probe({"a": [[b"x" * MB]]}, MB)  # three levels down: left to plan_after
    assert not probe({"a": 1, "b": "s"}, MB)
    start = time.perf_counter()
    small = {"a": 1, "b": "text", "c": [1, 2, 3]}
    for _ in range(10_000):
        probe(small, MB)
    assert (time.perf_counter() - start) / 10_000 < 20e-6


def test_predicate_errors_name_the_object(store: Any) -> None:
    def boom(obj: Any) -> bool:
        if isinstance(obj, Marker):
            raise RuntimeError("nope")
        return False

    s = serdoctor.Serializer(proxy=ProxyPolicy(store, predicate=boom))
    with pytest.raises(SerializationError, match=r"predicate raised RuntimeError.*\['m'\]"):
        s.dumps({"m": Marker(1)})


def test_policy_validates_its_arguments(store: Any) -> None:
    with pytest.raises(ValueError, match="min_bytes"):
        ProxyPolicy(min_bytes=-1)
    with pytest.raises(TypeError, match="types"):
        ProxyPolicy(types=("bytes",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store"):
        ProxyPolicy(store="redis://x")  # type: ignore[arg-type]
    assert ProxyPolicy(types=bytes).types == (bytes,)  # type: ignore[arg-type]


def test_plan_before_looks_only_at_the_object_itself(store: Any) -> None:
    """Nested large objects are found after the first pass, which hands them over uncopied."""
    policy = ProxyPolicy(store)
    assert isinstance(policy.plan_before(b"q" * (2 * MB)), ProxyPlan)
    assert policy.plan_before({"nested": b"q" * (2 * MB)}) is None
    assert isinstance(policy.plan_after({"nested": b"q" * (2 * MB)}, 2 * MB), ProxyPlan)
