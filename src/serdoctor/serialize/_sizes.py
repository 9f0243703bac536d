"""Human-readable byte counts: the one formatter every report uses."""

from __future__ import annotations


def format_size(n: int) -> str:
    """``"512 B"``, ``"1.5 KiB"``, ``"50.0 MiB"``: binary units, one decimal above bytes."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
