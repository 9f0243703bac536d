"""The checks ``loads`` makes on a payload's header before unpickling anything.

The header is JSON (see ``docs/format.md``), so everything here runs on plain
data: nothing from the payload executes until every check has passed.
"""

from __future__ import annotations

import platform
import sys
import warnings
from typing import Literal

from serdoctor.errors import (
    DeserializationError,
    EnvironmentMismatchError,
    IncompatiblePythonError,
    MissingModuleError,
    SerdoctorError,
    UnsafePayloadError,
)
from serdoctor.serialize import _envelope as env
from serdoctor.serialize._environment import PYTHON_MINOR
from serdoctor.serialize._methods import Method, registry
from serdoctor.serialize._requirements import importable, local_version

OnMismatch = Literal["warn", "error", "ignore"]
PYTHON = platform.python_version()
IMPLEMENTATION = sys.implementation.name


class EnvironmentMismatchWarning(UserWarning):
    """A distribution the payload needs has another version here than where it was made."""


def check_header(
    header: env.Header,
    *,
    allow: tuple[str, ...],
    on_mismatch: OnMismatch,
    mismatches: list[str] | None = None,
) -> Method:
    """Check a payload's header before anything is unpickled; return its method.

    Order: allowed method, Python version for by-value code, required modules,
    distribution versions, and the method being installed here. Version
    mismatches are also appended to ``mismatches`` when it is given (the
    serializer only remembers headers that passed without one).
    """
    if header.method not in allow:
        raise UnsafePayloadError(
            f"payload was made with method {header.method!r}, which this serializer does "
            f"not accept (allow={allow!r}); nothing was unpickled. Add it to allow= "
            "only if you trust the payload's source"
        )
    if header.by_value and (
        header.python_minor != PYTHON_MINOR or header.implementation != IMPLEMENTATION
    ):
        raise IncompatiblePythonError(
            f"payload holds code sent by value (bytecode) by {header.implementation} "
            f"{header.python}, but this is {IMPLEMENTATION} {PYTHON}: bytecode only runs on "
            f"the Python major.minor that made it. Load it with Python "
            f"{'.'.join(header.python.split('.')[:2])}, or make the function importable on "
            "both sides (define it in a module installed there, not in __main__, a closure "
            "or a lambda) so it travels by reference"
        )
    dists: dict[str, str] = header.extra.get("dists", {}) or {}
    for module, version in header.requires.items():
        if not importable(module):
            made = f"{dists.get(module, module)} {version}" if version else "version unknown"
            raise MissingModuleError(
                f"payload needs module {module!r} ({made} where it was made), which is not "
                f"installed here: install it where the payload is loaded, or send its code "
                f"by value with by_value_modules=({module!r},)",
                module=module,
                sender_version=version,
            )
    if on_mismatch != "ignore":
        for module, version in header.requires.items():
            dist = dists.get(module)
            here = local_version(dist) if dist else None
            if version and here and here != version:
                _mismatch(
                    on_mismatch,
                    mismatches,
                    f"payload was made with {dist} {version}; this environment has {dist} "
                    f"{here}: objects may load differently (install {dist}=={version} here "
                    "to match, or pass on_mismatch='ignore')",
                )
    try:
        method = registry.get(header.method)
    except SerdoctorError:
        raise DeserializationError(
            f"payload was made with method {header.method!r}, which is not installed here: "
            "install the package that registers it (entry-point group 'serdoctor.methods')"
        ) from None
    if header.by_value and on_mismatch != "ignore":
        for lib, version in header.libraries.items():
            if lib not in header.requires:
                continue  # the payload does not call into this library
            here = method.versions().get(lib)
            if here and here != version:
                _mismatch(
                    on_mismatch,
                    mismatches,
                    f"payload holds by-value code made with {lib} {version}; this environment "
                    f"has {lib} {here}, which may not read it: install {lib}=={version}",
                )
    return method


def _mismatch(on_mismatch: OnMismatch, mismatches: list[str] | None, message: str) -> None:
    if mismatches is not None:
        mismatches.append(message)
    if on_mismatch == "error":
        raise EnvironmentMismatchError(message)
    warnings.warn(message, EnvironmentMismatchWarning, stacklevel=4)
