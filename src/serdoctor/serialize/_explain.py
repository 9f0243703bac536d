"""``explain()``: which method, and why, object by object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serdoctor.serialize._classify import CodeDecision
from serdoctor.serialize._sizes import format_size


@dataclass(frozen=True)
class Attempt:
    """A method that was tried and passed over, with the reason."""

    method: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"method": self.method, "reason": self.reason}


@dataclass(frozen=True)
class Explanation:
    """How an object would be serialized: method, code decisions, requirements, size."""

    method: str
    by_value: bool
    python: str
    decisions: tuple[CodeDecision, ...]
    requires: dict[str, str | None]
    size: int
    body_size: int
    buffers: tuple[int, ...]
    attempts: tuple[Attempt, ...] = ()
    proxies: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: objects sent by an opt-in reducer: (type, what they become where loaded)
    reduced: tuple[tuple[str, str], ...] = ()

    @property
    def by_value_code(self) -> list[CodeDecision]:
        """Functions and classes that travel by value."""
        return [d for d in self.decisions if d.how == "value"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole report."""
        return {
            "method": self.method,
            "by_value": self.by_value,
            "python": self.python,
            "code": [d.to_dict() for d in self.decisions],
            "requires": dict(self.requires),
            "size": self.size,
            "body_size": self.body_size,
            "buffers": list(self.buffers),
            "attempts": [a.to_dict() for a in self.attempts],
            "proxies": [dict(p) for p in self.proxies],
            "reduced": [{"type": t, "becomes": what} for t, what in self.reduced],
        }

    def __str__(self) -> str:
        lines = [f"method: {self.method}"]
        for attempt in self.attempts:
            lines.append(f"  passed over {attempt.method}: {attempt.reason}")
        if self.by_value:
            lines.append(f"  code travels by value: the payload loads only on Python {self.python}")
        code = [d for d in self.decisions if d.kind in ("function", "class")]
        if code:
            lines.append("code:")
            for d in code:
                lines.append(f"  {d.kind} {d.name}: by {d.how} ({d.reason})")
        if self.reduced:
            lines.append("not data, sent by opt-in reducers (new objects where loaded):")
            for type_name, what in self.reduced:
                lines.append(f"  {type_name} -> {what}")
        if self.requires:
            lines.append("requires:")
            for module, version in self.requires.items():
                lines.append(f"  {module} {version or '(version unknown)'}")
        else:
            lines.append("requires: only the standard library")
        if self.proxies:
            lines.append("proxied:")
            for p in self.proxies:
                size = format_size(int(p.get("size", 0)))
                lines.append(
                    f"  {p.get('path', '?')}: {p.get('type', '?')}, {size} -> {p.get('store', '?')}"
                )
        extra = ""
        if self.buffers:
            extra = f", {len(self.buffers)} out-of-band buffer(s) {format_size(sum(self.buffers))}"
        lines.append(f"size: {format_size(self.size)} (body {format_size(self.body_size)}{extra})")
        return "\n".join(lines)
