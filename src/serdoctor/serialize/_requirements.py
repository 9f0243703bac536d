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


@functools.lru_cache(maxsize=1024)
def distribution_of(top: str) -> tuple[str, str] | None:
    """The (distribution name, version) that provides top-level module ``top``.

    Any name is accepted (the inspector asks about names read from untrusted
    pickles): one no distribution could have gives None.
    """
    import importlib.metadata  # here: slow to import, seldom needed

    if not top or not top.isidentifier():
        return None
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
