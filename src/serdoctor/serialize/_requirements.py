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
    import importlib.metadata

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
    for name in dict.fromkeys((top, top.replace("_", "-"))):
        try:
            dist = importlib.metadata.distribution(name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
        if os.path.realpath(str(dist.locate_file(""))) != os.path.realpath(folder):
            continue  # a distribution of that name, but not the one installed there
        meta = dist.metadata
        if meta["Name"] and meta["Version"]:
            return meta["Name"], meta["Version"]
    return None


@functools.lru_cache(maxsize=1024)
def distribution_of(top: str) -> tuple[str, str] | None:
    """The (distribution name, version) that provides top-level module ``top``.

    Any name is accepted (the inspector asks about names read from untrusted
    pickles): one no distribution could have gives None.
    """
    import importlib.metadata  # here: slow to import, seldom needed

    if not top or not top.isidentifier():
        return None
    found = _named_like(top)
    if found is not None:
        return found
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
    """The installed version of distribution ``dist``, or None."""
    import importlib.metadata  # here: slow to import, seldom needed

    try:
        return importlib.metadata.version(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):  # ValueError: an empty name
        return None


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
