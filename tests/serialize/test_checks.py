"""The checks ``loads`` makes before unpickling anything."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import warnings
from pathlib import Path

import pytest

import serdoctor
from serdoctor.errors import (
    DeserializationError,
    EnvironmentMismatchError,
    IncompatiblePythonError,
    SignatureError,
    UnsafePayloadError,
)
from serdoctor.serialize import _envelope as env

KEY = b"k" * 32


class Touch:
    """Loading this object creates a file: proof that unpickling ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _rewrite_header(data: bytes, **changes: object) -> bytes:
    header, size = env.read_head(data)
    fields = header.to_dict()
    fields.update(changes)
    text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    flags = data[6]
    return (
        env.MAGIC
        + bytes([env.FORMAT_VERSION, flags])
        + len(text).to_bytes(4, "big")
        + text
        + data[size:]
    )


# --- signatures --------------------------------------------------------------------------


def test_signed_payload_round_trips(tmp_path: Path) -> None:
    s = serdoctor.Serializer(key=KEY)
    marker = tmp_path / "ran"
    s.loads(s.dumps(Touch(marker)))
    assert marker.exists()  # the control: a valid payload does run its reduce


@pytest.mark.parametrize("damage", ["tamper_body", "tamper_header", "truncate", "drop_tag"])
def test_damaged_signed_payload_is_refused_before_unpickling(tmp_path: Path, damage: str) -> None:
    s = serdoctor.Serializer(key=KEY)
    marker = tmp_path / "ran"
    data = bytearray(s.dumps(Touch(marker)))
    _header, size = env.read_head(bytes(data))
    if damage == "tamper_body":
        # rewrite the file name inside the body: still a valid pickle, different effect
        at = data.index(b"ran", size)
        data[at : at + 3] = b"RAN"
    elif damage == "tamper_header":
        data = bytearray(_rewrite_header(bytes(data), method="pickle", python="3.11.0"))
    elif damage == "truncate":
        data = data[:-5]
    else:
        data = data[: -env.TAG_SIZE]
    with pytest.raises(SignatureError) as info:
        s.loads(bytes(data))
    assert "nothing was unpickled" in str(info.value) or "signature" in str(info.value)
    assert not marker.exists()
    assert not (tmp_path / "RAN").exists()


def test_foreign_key_and_unsigned_payloads_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    other = serdoctor.Serializer(key=b"x" * 32).dumps(Touch(marker))
    unsigned = serdoctor.Serializer().dumps(Touch(marker))
    s = serdoctor.Serializer(key=KEY)
    with pytest.raises(SignatureError, match="does not match"):
        s.loads(other)
    with pytest.raises(SignatureError, match="not signed"):
        s.loads(unsigned)
    with pytest.raises(SignatureError, match="raw pickle"):
        s.loads(pickle.dumps(Touch(marker)), raw=True)
    assert not marker.exists()


def test_signed_frames_verify_without_joining() -> None:
    import numpy as np

    s = serdoctor.Serializer(key=KEY)
    frames = s.dumps_frames(np.arange(100_000))
    assert len(frames) == 4  # head, body, buffer, tag
    assert (s.loads_frames(frames) == np.arange(100_000)).all()
    damaged = list(frames)
    damaged[2] = bytes(damaged[2])[:-1] + b"\x01"
    with pytest.raises(SignatureError):
        s.loads_frames(damaged)
    with pytest.raises(SignatureError, match="missing"):
        s.loads_frames(frames[:-1])


def test_key_must_be_bytes_of_sensible_length() -> None:
    with pytest.raises(TypeError, match="bytes"):
        serdoctor.Serializer(key="secret")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too short"):
        serdoctor.Serializer(key=b"short")


# --- allow-list --------------------------------------------------------------------------


def test_method_outside_allow_list_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    def make() -> Touch:
        return Touch(marker)

    payload = serdoctor.dumps([make, Touch(marker)])  # the local function forces cloudpickle
    assert serdoctor.Serializer().read_header(payload).method == "cloudpickle"
    strict = serdoctor.Serializer(allow=("pickle",))
    with pytest.raises(UnsafePayloadError, match="cloudpickle"):
        strict.loads(payload)
    assert not marker.exists()
    assert strict.loads(serdoctor.dumps([1, 2])) == [1, 2]


# --- Python version ----------------------------------------------------------------------


def test_by_value_payload_from_another_python_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = serdoctor.dumps([lambda: 1, Touch(marker)])
    forged = _rewrite_header(payload, python="3.9.18")
    with pytest.raises(IncompatiblePythonError) as info:
        serdoctor.loads(forged)
    text = str(info.value)
    assert "3.9.18" in text and serdoctor.serialize._checks.PYTHON in text
    assert "importable" in text and "by reference" in text
    assert not marker.exists()


def test_by_reference_payload_from_another_python_loads() -> None:
    forged = _rewrite_header(serdoctor.dumps({"a": (1, 2.5)}), python="3.9.18")
    assert serdoctor.loads(forged) == {"a": (1, 2.5)}


# --- modules and versions ----------------------------------------------------------------

MYLAB = """
class Sample:
    def __init__(self, v):
        self.v = v
"""


def test_missing_module_is_named_with_senders_version(
    run_python, distribution, tmp_path: Path
) -> None:
    site = distribution("mylab", "2.1", MYLAB)
    out = tmp_path / "sample.sdoc"
    run_python(
        "import sys, serdoctor, mylab\n"
        "open(sys.argv[1], 'wb').write(serdoctor.dumps({'s': mylab.Sample(3)}))\n",
        str(out),
        path=[site],
    )
    header = serdoctor.Serializer().read_header(out.read_bytes())
    assert header.requires == {"mylab": "2.1"}
    with pytest.raises(serdoctor.MissingModuleError) as info:
        serdoctor.loads(out.read_bytes())
    err = info.value
    assert err.module == "mylab" and err.sender_version == "2.1"
    assert isinstance(err, ImportError)
    assert "mylab 2.1" in str(err) and "install it where the payload is loaded" in str(err)
    assert "by_value_modules=('mylab',)" in str(err)


def test_distribution_version_difference_warns_or_raises(
    run_python, distribution, tmp_path: Path
) -> None:
    old = distribution("mylab", "2.1", MYLAB)
    new = distribution("mylab", "2.2", MYLAB)
    out = tmp_path / "sample.sdoc"
    run_python(
        "import sys, serdoctor, mylab\n"
        "open(sys.argv[1], 'wb').write(serdoctor.dumps(mylab.Sample(3)))\n",
        str(out),
        path=[old],
    )
    result = run_python(
        """
        import sys, warnings, serdoctor
        data = open(sys.argv[1], 'rb').read()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(serdoctor.loads(data).v)
        print(caught[0].category.__name__, caught[0].message)
        try:
            serdoctor.Serializer(on_mismatch="error").loads(data)
        except serdoctor.errors.EnvironmentMismatchError as exc:
            print("ERROR", exc)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            print(serdoctor.Serializer(on_mismatch="ignore").loads(data).v)
        """,
        str(out),
        path=[new],
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "3"
    assert lines[1].startswith("EnvironmentMismatchWarning") and "mylab 2.1" in lines[1]
    assert "mylab 2.2" in lines[1]
    assert lines[2].startswith("ERROR") and "mylab==2.1" in lines[2]
    assert lines[3] == "3"
    assert issubclass(EnvironmentMismatchError, DeserializationError)


# --- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no magic"),
        (b"hello world, not a pickle", "neither a serdoctor payload nor a pickle"),
        (pickle.dumps([1, 2]), "raw=True"),
        (env.MAGIC + b"\x01", "truncated"),
        (env.MAGIC + b"\x09\x00\x00\x00\x00\x02{}", "format 9"),
        (env.MAGIC + b"\x01\x00\x00\x00\x00\x05{bad}", "not valid JSON"),
        (env.MAGIC + b"\x01\x00\x00\x00\x00\x02{}", "malformed"),
        (env.MAGIC + b"\x01\x00\xff\xff\xff\xff{}", "truncated"),
    ],
)
def test_garbage_is_a_clear_deserialization_error(data: bytes, message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        serdoctor.loads(data)


def test_truncated_payloads_fail_cleanly_at_every_length() -> None:
    import numpy as np

    payload = serdoctor.dumps({"a": np.arange(2000), "b": "x" * 100})
    for n in range(len(payload) - 1, -1, -97):
        with pytest.raises(DeserializationError):
            serdoctor.loads(payload[:n])
    with pytest.raises(DeserializationError, match="unexpected bytes"):
        serdoctor.loads(payload + b"\x00")


def test_corrupt_body_is_wrapped() -> None:
    payload = bytearray(serdoctor.dumps([1, 2, 3]))
    _header, size = env.read_head(bytes(payload))
    payload[size] = 0xFE  # not a pickle opcode
    with pytest.raises(DeserializationError, match="pickle body failed to load"):
        serdoctor.loads(bytes(payload))


def test_raw_pickles_load_only_on_request() -> None:
    data = pickle.dumps({"x": 1})
    with pytest.raises(DeserializationError, match="raw=True"):
        serdoctor.loads(data)
    assert serdoctor.loads(data, raw=True) == {"x": 1}
    with pytest.raises(TypeError, match="bytes"):
        serdoctor.loads("text")  # type: ignore[arg-type]


def test_errors_share_one_root() -> None:
    for name in serdoctor.errors.__all__:
        assert issubclass(getattr(serdoctor.errors, name), serdoctor.SerdoctorError)
    assert issubclass(serdoctor.SerializationError, pickle.PicklingError)
    assert issubclass(serdoctor.DeserializationError, pickle.UnpicklingError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert serdoctor.loads(serdoctor.dumps(os.sep)) == os.sep


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_a_raw_pickle_of_any_protocol_is_named_a_pickle_and_never_run(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "ran"

    class Touch:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps(Touch(), protocol=protocol)
    with pytest.raises(DeserializationError, match="looks like a plain pickle") as info:
        serdoctor.loads(data)
    assert "ser-doctor inspect" in str(info.value)
    assert not marker.exists()
