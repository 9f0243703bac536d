"""Settings the client hands to the processes it starts (on stdin, never on a command line)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Secrets:
    """What a pool needs to join: the HMAC key and, off loopback, the CURVE server key."""

    key: bytes
    curve_server_public: bytes | None = None

    def to_json(self) -> str:
        """JSON for a key file or a child's stdin."""
        return json.dumps(
            {
                "key": self.key.hex(),
                "curve_server_public": (
                    self.curve_server_public.decode() if self.curve_server_public else None
                ),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Secrets:
        """Parse :meth:`to_json`'s output; ValueError with what is wrong otherwise."""
        try:
            data = json.loads(text)
            key = bytes.fromhex(data["key"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValueError(
                f"not a serdoctor key file ({type(exc).__name__}: {exc}): use the file that "
                "executor.worker_command() wrote"
            ) from None
        if len(key) < 16:
            raise ValueError("the key in the key file is too short (fewer than 16 bytes)")
        public = data.get("curve_server_public")
        return cls(key, public.encode() if public else None)

    def write(self, path: Path) -> Path:
        """Write a key file readable by its owner only (0600)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        return path

    @classmethod
    def read(cls, path: str | Path) -> Secrets:
        """Read a key file, refusing one that others may read."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
            text = p.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read key file {p}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(
                f"key file {p} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 {p}"
            )
        return cls.from_json(text)


@dataclass
class InterchangeConfig:
    """How the interchange runs (sent as JSON on its stdin)."""

    key: str
    address: str
    #: the interchange's end of the socket pair to your process (inherited)
    client_fd: int
    pool_port: int
    heartbeat: float
    heartbeat_threshold: float
    on_mismatch: str
    python_minor: str
    grace: float
    client_pid: int | None = None
    curve_secret: str | None = None
    curve_public: str | None = None
    #: workers of the local pool the interchange runs itself (0: none)
    local_workers: int = 0
    #: modules the interchange imports before it forks the local pool's workers
    preload: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON for the interchange's stdin."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> InterchangeConfig:
        """Parse :meth:`to_json`'s output."""
        return cls(**json.loads(text))
