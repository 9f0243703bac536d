"""Which distributions a payload needs, and whether they are here.

The sender records the top-level modules its payload imports (from the
globals the pickler wrote) with the version of the distribution that provides
each. The receiver checks them with :func:`importlib.util.find_spec`, which
locates a top-level module without importing it, so nothing runs before the
checks pass.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
from collections.abc import Iterable

_ALWAYS_HERE = frozenset({"builtins", "__main__", "__mp_main__", "serdoctor", "_io", "_abc"})


def _stdlib_names() -> frozenset[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # pragma: no cover - Python < 3.10 is not supported
        return frozenset(sys.builtin_module_names)
    return frozenset(names) | frozenset(sys.builtin_module_names)


STDLIB = _stdlib_names()


def top_level(module: str) -> str:
    """``"a"`` for ``"a.b.c"``."""
    return module.split(".", 1)[0]


def is_stdlib(top: str) -> bool:
    """True for modules of the standard library (and serdoctor itself)."""
    return top in STDLIB or top in _ALWAYS_HERE


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    import importlib.metadata  # here: slow to import, seldom needed

    return {k: list(v) for k, v in importlib.metadata.packages_distributions().items()}


def _named_like(top: str) -> tuple[str, str] | None:
    """The distribution named like module ``top``, if it is installed where ``top`` is.

    Most distributions are named like their module (numpy, scipy, pandas). This
    finds one by its name alone, where mapping every module to its distribution
    reads the file lists of every installed distribution: megabytes kept in each
    process that asks (an executor's every worker sending a numpy result).
    Anything else (a module in a namespace package, one named unlike its
    distribution, an editable install) is None: the full map decides it.
    """
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or ())
    if len(locations) == 1:  # a package (a namespace package has none, or several)
        folder = os.path.dirname(locations[0])
    elif not locations and spec.has_location and spec.origin:  # a module of one file
        folder = os.path.dirname(spec.origin)
    else:
        return None
    try:
        return _in_folder(folder, _normal(top))
    except _Unsure:
        return None


@functools.lru_cache(maxsize=1024)
def distribution_of(top: str) -> tuple[str, str] | None:
    """The (distribution name, version) that provides top-level module ``top``.

    Any name is accepted (the inspector asks about names read from untrusted
    pickles): one no distribution could have gives None.
    """
    if not top or not top.isidentifier():
        return None
    found = _named_like(top)
    if found is not None:
        return found
    import importlib.metadata  # here: slow to import, seldom needed

    for dist in _distributions_by_module().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    # Python 3.10 maps modules to distributions only through top_level.txt, which
    # many wheels (numpy among them) do not ship; most name the module like the dist.
    for candidate in (top, top.replace("_", "-")):
        try:
            return candidate, importlib.metadata.version(candidate)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    return None


@functools.lru_cache(maxsize=1024)
def local_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None.

    ``importlib.metadata.version``'s answer. Where every folder on ``sys.path``
    holds distributions as ``.dist-info`` folders, it is read from there
    directly (the first folder that has ``dist`` wins, as for importlib.metadata),
    without importing importlib.metadata: with the email, zipfile and csv modules
    it imports, that is 2 MB in each process that asks, such as every worker
    that loads a task with a numpy argument. Other layouts (eggs, zip files,
    finders of their own) are left to importlib.metadata.
    """
    if dist and _plain_finders():
        want = _normal(dist)
        try:
            for folder in sys.path:
                found = _in_folder(folder, want)
                if found is not None:
                    return found[1]
            return None
        except _Unsure:
            pass
    import importlib.metadata  # here: slow to import, seldom needed

    try:
        return importlib.metadata.version(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):  # ValueError: an empty name
        return None


class _Unsure(Exception):
    """A layout importlib.metadata reads and :func:`_in_folder` does not."""


def _normal(name: str) -> str:
    """A distribution's name as its ``.dist-info`` folder spells it, lower case (PEP 503)."""
    return _SEPARATORS.sub("_", name).lower()


_SEPARATORS = re.compile(r"[-_.]+")


def _listing(folder: str) -> list[tuple[str, str, bool]] | None:
    """``(normal name, path, is a .dist-info)`` of each distribution's metadata in ``folder``.

    None when ``folder`` does not exist; :class:`_Unsure` when it is a zip file.
    """
    try:
        entries = os.listdir(folder or ".")
    except NotADirectoryError:  # a zip file on sys.path
        raise _Unsure from None
    except OSError:
        return None
    found = []
    for entry in entries:
        low = entry.lower()
        if low.endswith((".dist-info", ".egg-info")):
            name = _normal(low.rpartition(".")[0].partition("-")[0])
            found.append((name, os.path.join(folder or ".", entry), low.endswith(".dist-info")))
    return found


def _in_folder(folder: str, want: str) -> tuple[str, str] | None:
    """(name, version) of distribution ``want`` (:func:`_normal`) installed in ``folder``.

    None when ``folder`` holds no such distribution (or does not exist).
    :class:`_Unsure` when it holds one in a form left to importlib.metadata: an
    ``.egg-info``, two of them, no readable ``METADATA``, or a zip file.
    """
    matches = [
        (path, dist_info) for name, path, dist_info in _listing(folder) or () if name == want
    ]
    if not matches:
        return None
    if len(matches) > 1 or not matches[0][1]:
        raise _Unsure
    return _metadata(os.path.join(matches[0][0], "METADATA"))


def _metadata(path: str) -> tuple[str, str]:
    """The Name and Version headers of a METADATA file (they come before its body)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if not line.strip():
                    break  # the end of the headers
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("name", "version"):
                    fields.setdefault(key.strip().lower(), value.strip())
                if len(fields) == 2:
                    break
    except OSError:
        raise _Unsure from None
    if not fields.get("name") or not fields.get("version"):
        raise _Unsure
    return fields["name"], fields["version"]


def installed() -> dict[str, str] | None:
    """Name and version of every distribution on ``sys.path``, from its ``.dist-info``.

    What ``importlib.metadata.distributions()`` lists (the first of a name wins,
    in ``sys.path`` order), read without importing importlib.metadata; None where
    a layout is left to it (see :func:`_in_folder`).
    """
    if not _plain_finders():
        return None
    found: dict[str, str] = {}
    try:
        for folder in sys.path:
            for _, path, dist_info in _listing(folder) or ():
                if not dist_info:
                    return None  # an egg
                name, version = _metadata(os.path.join(path, "METADATA"))
                found.setdefault(name, version)
    except _Unsure:
        return None
    return found


def _plain_finders() -> bool:
    """Whether only the standard path finder says where distributions are.

    (Or the ``importlib_metadata`` backport's, which many libraries import and
    which reads the same ``sys.path`` folders the same way.)
    """
    import importlib.machinery

    return all(
        finder is importlib.machinery.PathFinder
        or not hasattr(finder, "find_distributions")
        or (
            type(finder).__module__ == "importlib_metadata"
            and type(finder).__name__ == "MetadataPathFinder"
        )
        for finder in sys.meta_path
    )


def requirements_for(modules: Iterable[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """Return ``({top: version}, {top: distribution})`` for non-stdlib modules."""
    return _requirements(frozenset(modules))


@functools.lru_cache(maxsize=512)
def _requirements(modules: frozenset[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    requires: dict[str, str | None] = {}
    dists: dict[str, str] = {}
    for module in modules:
        top = top_level(module)
        if top in requires or is_stdlib(top):
            continue
        found = distribution_of(top)
        if found is None:
            requires[top] = None
        else:
            dists[top], requires[top] = found
    return dict(sorted(requires.items())), dict(sorted(dists.items()))


def importable(top: str) -> bool:
    """True when top-level module ``top`` can be imported here (without importing it)."""
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def clear_caches() -> None:
    """Forget cached distribution look-ups (after installing packages at run time)."""
    _distributions_by_module.cache_clear()
    distribution_of.cache_clear()
    _requirements.cache_clear()
    local_version.cache_clear()
    importlib.invalidate_caches()
