"""Lazy attributes for package ``__init__`` modules: one way, used everywhere.

``import serdoctor`` must stay light (no ProxyStore, hypothesis, ZeroMQ or the
doctor until they are used), so a package names where each heavy attribute
lives and :func:`lazy_attributes` builds the module-level ``__getattr__`` and
``__dir__`` that import it on first access (PEP 562)::

    __getattr__, __dir__ = lazy_attributes(__name__, {"ProxyPolicy": ".proxy"}, __all__)

A value is cached in the package's namespace after the first look-up, so the
cost is paid once. ``requires`` maps a module that may be missing to the
install hint shown when it is (``{"hypothesis": "pip install 'serdoctor[testing]'"}``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str,
    homes: Mapping[str, str],
    names: Iterable[str] = (),
    *,
    requires: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        homes: attribute name -> module that defines it (absolute, or relative
            to ``package`` when it starts with a dot).
        names: the package's public names (its ``__all__``), listed by ``dir()``.
        requires: optional top-level module -> install hint, for attributes whose
            module needs an optional dependency.
    """
    hints = dict(requires or {})
    public = tuple(names)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(home, package)
        except ModuleNotFoundError as exc:
            hint = hints.get((exc.name or "").split(".")[0])
            if hint is None:
                raise
            raise ModuleNotFoundError(
                f"{package}.{name} needs {exc.name}, which is not installed: {hint}",
                name=exc.name,
            ) from exc
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public, *homes})

    return __getattr__, __dir__
