"""The environment fingerprint, and what a difference between two of them means.

A payload made in one environment loads in another only if (a) by-value code
meets the same Python major.minor and implementation, (b) the library that
wrote it (cloudpickle, dill) reads its own format, and (c) every module it
imports is installed, ideally at the same version. :meth:`Environment.diff`
sorts the differences by those consequences.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from serdoctor.serialize._envelope import FORMAT_VERSION, python_minor

Severity = Literal["breaks", "may matter", "info"]

#: This interpreter's ``major.minor`` (``"3.11"``): by-value code loads only where it matches.
PYTHON_MINOR = "{}.{}".format(*sys.version_info[:2])
_TOOLING = frozenset({"pip", "setuptools", "wheel", "distribute"})


@dataclass(frozen=True)
class Environment:
    """Where payloads are made or loaded: Python, platform and installed distributions."""

    python: str
    implementation: str
    platform: str
    machine: str
    byteorder: str
    serdoctor: str
    format: int
    dill: str | None
    cloudpickle: str | None
    distributions: dict[str, str] = field(default_factory=dict)

    @property
    def python_minor(self) -> str:
        """``"3.11"`` for ``"3.11.7"``."""
        return python_minor(self.python)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``ser-doctor env --json`` prints)."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text, stable key order."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        """Rebuild from :meth:`to_dict` output; raise ValueError naming a missing field."""
        try:
            return cls(
                python=str(data["python"]),
                implementation=str(data["implementation"]),
                platform=str(data.get("platform", "?")),
                machine=str(data.get("machine", "?")),
                byteorder=str(data.get("byteorder", "?")),
                serdoctor=str(data["serdoctor"]),
                format=int(data.get("format", FORMAT_VERSION)),
                dill=data.get("dill"),
                cloudpickle=data.get("cloudpickle"),
                distributions={str(k): str(v) for k, v in dict(data["distributions"]).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an environment fingerprint (missing or bad field {exc}): write one with "
                "`ser-doctor env --json > env.json`"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> Environment:
        """Read a fingerprint written by ``ser-doctor env --json``."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:  # (RecursionError: nested too deep)
            raise ValueError(
                f"{path} is not JSON ({exc}): write it with `ser-doctor env --json`"
            ) from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        return cls.from_dict(data)

    def diff(self, other: Environment) -> EnvironmentDiff:
        """What differs between ``self`` (here) and ``other`` (there), and why it matters."""
        items: list[Difference] = []

        def add(what: str, here: Any, there: Any, severity: Severity, why: str) -> None:
            if here != there:
                items.append(Difference(what, here, there, severity, why))

        if self.python_minor != other.python_minor:
            add(
                "python",
                self.python,
                other.python,
                "breaks",
                "by-value code (cloudpickle, dill) made by one Python major.minor cannot load "
                "on the other; by-reference (pickle) payloads still work",
            )
        else:
            add("python", self.python, other.python, "info", "patch releases share bytecode")
        add(
            "implementation",
            self.implementation,
            other.implementation,
            "breaks",
            "by-value code is specific to one Python implementation",
        )
        add(
            "format",
            self.format,
            other.format,
            "breaks",
            "serdoctor envelope formats differ: upgrade the older side",
        )
        add(
            "cloudpickle",
            self.cloudpickle,
            other.cloudpickle,
            "breaks",
            "cloudpickle payloads with by-value code need the same cloudpickle on both sides",
        )
        add(
            "dill",
            self.dill,
            other.dill,
            "breaks",
            "dill payloads with by-value code need the same dill on both sides",
        )
        add(
            "serdoctor",
            self.serdoctor,
            other.serdoctor,
            "info",
            "same envelope format; both sides read each other's payloads",
        )
        add(
            "byteorder",
            self.byteorder,
            other.byteorder,
            "may matter",
            "raw buffers (e.g. numpy arrays) keep their byte order; pickle records it",
        )
        add(
            "platform",
            self.platform,
            other.platform,
            "info",
            "pickle is platform-independent, but paths, locks and OS objects are not",
        )
        add("machine", self.machine, other.machine, "info", "pickle is architecture-independent")
        names = sorted(set(self.distributions) | set(other.distributions))
        for name in names:
            here, there = self.distributions.get(name), other.distributions.get(name)
            if here == there or name.lower() in _TOOLING:
                continue
            if here is None or there is None:
                side = "here" if here is None else "there"
                add(
                    f"package {name}",
                    here,
                    there,
                    "may matter",
                    f"not installed {side}: payloads that import it fail to load {side}",
                )
            else:
                add(
                    f"package {name}",
                    here,
                    there,
                    "may matter",
                    "payloads that use it may load differently (objects, defaults, renamed names)",
                )
        return EnvironmentDiff(tuple(items))


@dataclass(frozen=True)
class Difference:
    """One difference between two environments."""

    what: str
    here: Any
    there: Any
    severity: Severity
    why: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class EnvironmentDiff:
    """The differences between two environments, most serious first."""

    differences: tuple[Difference, ...]

    def __post_init__(self) -> None:
        order = {"breaks": 0, "may matter": 1, "info": 2}
        object.__setattr__(
            self,
            "differences",
            tuple(sorted(self.differences, key=lambda d: (order[d.severity], d.what))),
        )

    @property
    def matters(self) -> bool:
        """True when some difference can break or change a payload."""
        return any(d.severity != "info" for d in self.differences)

    def __bool__(self) -> bool:
        return bool(self.differences)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"matters": self.matters, "differences": [d.to_dict() for d in self.differences]}

    def __str__(self) -> str:
        if not self.differences:
            return "the environments match"
        return "\n".join(
            f"[{d.severity}] {d.what}: {d.here} here, {d.there} there: {d.why}"
            for d in self.differences
        )


def environment() -> Environment:
    """The fingerprint of the running interpreter and its installed distributions."""
    from serdoctor._version import __version__
    from serdoctor.serialize._requirements import installed, local_version

    dists = installed()  # (from the .dist-info folders: no importlib.metadata, 2 MB, here)
    if dists is None:  # a layout only importlib.metadata reads (eggs, zip files)
        import importlib.metadata  # here: slow to import, seldom needed

        dists = {}
        for dist in importlib.metadata.distributions():
            name = dist.metadata["Name"] if dist.metadata else None
            if name and name not in dists:
                dists[str(name)] = str(dist.version)
    return Environment(
        python=platform.python_version(),
        implementation=sys.implementation.name,
        platform=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        byteorder=sys.byteorder,
        serdoctor=__version__,
        format=FORMAT_VERSION,
        dill=local_version("dill"),
        cloudpickle=local_version("cloudpickle"),
        distributions=dict(sorted(dists.items(), key=lambda kv: kv[0].lower())),
    )
