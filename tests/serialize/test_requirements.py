"""Which distribution provides a module: by its name where it can be, by the full map otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serdoctor.serialize import _requirements as req


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    req.clear_caches()
    yield
    req.clear_caches()  # (the folders below are gone after the test)


def _no_full_map() -> dict[str, list[str]]:
    raise AssertionError("read every distribution's file list")


Distribution = Callable[[str, str, str], Path]


def test_a_distribution_named_like_its_module_is_found_by_its_name(
    distribution: Distribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(distribution("sdlike", "1.2.3", "")))
    monkeypatch.setattr(req, "_distributions_by_module", _no_full_map)
    assert req.distribution_of("sdlike") == ("sdlike", "1.2.3")
    assert req.requirements_for(["sdlike.sub"]) == ({"sdlike": "1.2.3"}, {"sdlike": "sdlike"})


def test_a_distribution_named_unlike_its_module_is_found_by_the_full_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "sdodd").mkdir(parents=True)
    (site / "sdodd" / "__init__.py").write_text("")
    info = site / "sd_odd_name-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sd-odd-name\nVersion: 2.0\n")
    (info / "top_level.txt").write_text("sdodd\n")
    (info / "RECORD").write_text("sdodd/__init__.py,,\n")
    monkeypatch.syspath_prepend(str(site))
    assert req._named_like("sdodd") is None
    assert req.distribution_of("sdodd") == ("sd-odd-name", "2.0")


def test_a_distribution_of_the_name_installed_elsewhere_is_not_taken_for_the_module(
    tmp_path: Path, distribution: Distribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the module imported is a folder of its own, first on the path; a distribution of
    # the same name sits further down: it is not what provides the module here
    own = tmp_path / "own"
    (own / "sdshadow").mkdir(parents=True)
    (own / "sdshadow" / "__init__.py").write_text("")
    other = distribution("sdshadow", "9.9", "")
    monkeypatch.syspath_prepend(str(other))
    monkeypatch.syspath_prepend(str(own))
    assert req._named_like("sdshadow") is None
    # (the full map, which reads top_level.txt, still names it, as it always did)
    assert req.distribution_of("sdshadow") == ("sdshadow", "9.9")


def test_namespace_packages_and_unknown_names_are_left_to_the_full_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part in ("a", "b"):
        (tmp_path / part / "sdspace").mkdir(parents=True)  # no __init__.py: a namespace
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    assert req._named_like("sdspace") is None
    assert req._named_like("sd_no_such_module") is None
    assert req.distribution_of("sd_no_such_module") is None


# -- versions read from .dist-info folders, without importlib.metadata -------------------


def test_every_installed_version_is_importlib_metadatas() -> None:
    import importlib.metadata

    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert len(names) > 10
    for name in sorted(names):
        assert req.local_version(name) == importlib.metadata.version(name), name
        spelled = name.upper().replace("-", "_")  # (any spelling PEP 503 deems the same)
        assert req.local_version(spelled) == importlib.metadata.version(name), spelled
    assert req.local_version("sd-no-such-distribution") is None


@pytest.mark.timeout(60)
def test_finding_a_version_does_not_import_importlib_metadata() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from serdoctor.serialize._requirements import local_version, requirements_for\n"
        "print(local_version('numpy'), requirements_for(['numpy.linalg'])[0],\n"
        "      'importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    import numpy

    assert out.stdout.split() == [numpy.__version__, "{'numpy':", f"'{numpy.__version__}'}}",
                                  "False"], out.stderr  # fmt: skip


def test_layouts_it_does_not_read_are_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    site = tmp_path / "site"
    (site / "sdegg.egg-info").mkdir(parents=True)  # an egg's metadata: PKG-INFO
    (site / "sdegg.egg-info" / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: sdegg\nVersion: 0.7\n"
    )
    for version in ("1.0", "2.0"):  # two of one distribution in one folder
        info = site / f"sdtwice-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: sdtwice\nVersion: {version}\n"
        )
    (site / "sdbroken-1.0.dist-info").mkdir()  # no METADATA at all
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    for name in ("sdegg", "sdtwice"):
        with pytest.raises(req._Unsure):
            req._in_folder(str(site), name)
        assert req.local_version(name) == importlib.metadata.version(name)
    with pytest.raises(req._Unsure):
        req._in_folder(str(site), "sdbroken")
    assert req.local_version("sdegg") == "0.7"


def _importlib_listing() -> dict[str, str]:
    import importlib.metadata

    listing: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name not in listing:
            listing[str(name)] = str(dist.version)
    return listing


def test_the_installed_distributions_are_importlib_metadatas_in_its_order() -> None:
    from serdoctor.serialize import environment

    mine = req.installed()
    assert mine is not None and len(mine) > 10
    assert list(mine.items()) == list(_importlib_listing().items())
    assert environment().distributions == dict(sorted(mine.items(), key=lambda kv: kv[0].lower()))


def test_an_egg_on_the_path_leaves_the_listing_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serdoctor.serialize import environment

    (tmp_path / "sdegg2.egg-info").mkdir()
    (tmp_path / "sdegg2.egg-info" / "PKG-INFO").write_text("Name: sdegg2\nVersion: 0.3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert req.installed() is None
    assert environment().distributions["sdegg2"] == "0.3"


@pytest.mark.timeout(60)
def test_an_environment_fingerprint_does_not_import_importlib_metadata() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from serdoctor.serialize import environment\n"
        "print(len(environment().distributions), 'importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    count, imported = out.stdout.split()
    assert int(count) > 10 and imported == "False", out.stderr
