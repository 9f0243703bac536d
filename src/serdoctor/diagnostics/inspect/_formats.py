"""Files that are not pickles, recognised from their first bytes."""

from __future__ import annotations

from typing import Final

_FORMAT_HINTS: Final = {
    0x1F: "; a gzip stream starts with 0x1f: decompress it first",
    0x42: "; 'BZh' starts a bzip2 stream: decompress it first",
    0xFD: "; 0xfd starts an xz stream: decompress it first",
    0x50: "; 'PK' starts a zip archive (torch.save, .npz): inspect the pickle inside it",
    0x93: "; \\x93NUMPY starts a .npy file: read it with numpy.load(allow_pickle=False)",
    0x7B: "; '{' may start JSON text",
    0x22: "; this looks like text",
    0x23: "; this looks like text",
}


def _guess_format(code: int) -> str:
    """A hint for files that are something else."""
    return _FORMAT_HINTS.get(code, "")


def _sniff(head: bytes) -> str | None:
    """Name common non-pickle formats from their first bytes."""
    known = (
        (b"\x1f\x8b", "a gzip stream: decompress it, then inspect the result"),
        (b"BZh", "a bzip2 stream: decompress it, then inspect the result"),
        (b"\xfd7zXZ\x00", "an xz stream: decompress it, then inspect the result"),
        (b"\x28\xb5\x2f\xfd", "a zstandard stream: decompress it, then inspect the result"),
        (
            b"PK\x03\x04",
            "a zip archive (torch.save and numpy .npz write these): extract the "
            "pickle inside it (e.g. */data.pkl) and inspect that",
        ),
        (b"\x93NUMPY", "a numpy .npy file: read it with numpy.load(allow_pickle=False)"),
        (b"\x89HDF", "an HDF5 file"),
        (b"PAR1", "a Parquet file"),
        (b"\x7fELF", "an executable (ELF)"),
    )
    for magic, what in known:
        if head.startswith(magic):
            return what
    return None
