"""Size limits applied while reading wafer-map and image files (CLI and service)."""
from __future__ import annotations

from dataclasses import dataclass, replace

MIB = 1024 * 1024


@dataclass(frozen=True)
class InputLimits:
    """What one input file may expand to.

    max_uncompressed_bytes: bytes after decompression (pickle stream, or all npz members together).
    max_map_side: largest height or width of one wafer map.
    max_maps: most maps in one file.
    max_image_pixels: largest width x height of one inspection image.
    flag: the option that sets the byte cap, named in "too large" messages.
    """

    max_uncompressed_bytes: int = 4 * 1024 * MIB
    max_map_side: int = 1024
    max_maps: int = 5_000_000
    max_image_pixels: int = 40_000_000
    flag: str = "--max-uncompressed-mb"  # the option that raises the byte cap, named in errors

    @classmethod
    def for_service(cls, max_request_bytes: int, max_maps: int = 100_000) -> "InputLimits":
        """Limits for uploads: an upload may expand to 4x the request limit (at least 1 MiB)."""
        return cls(max_uncompressed_bytes=max(4 * int(max_request_bytes), MIB), max_maps=int(max_maps),
                   flag="--max-request-mb")

    @classmethod
    def from_cli(cls, max_uncompressed_mb: float | None = None) -> "InputLimits":
        """CLI limits: the defaults, with ``--max-uncompressed-mb`` when given."""
        if max_uncompressed_mb is None:
            return cls()
        from adrcs.errors import InputError

        if not max_uncompressed_mb > 0:
            raise InputError(None, f"--max-uncompressed-mb must be > 0 (got {max_uncompressed_mb})")
        return replace(cls(), max_uncompressed_bytes=int(max_uncompressed_mb * MIB))


DEFAULT_LIMITS = InputLimits()


def describe_bytes(n: int) -> str:
    """`n` bytes as a short human string (``"4 GiB"``, ``"1.5 MiB"``, ``"812 bytes"``)."""
    for unit, size in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"
