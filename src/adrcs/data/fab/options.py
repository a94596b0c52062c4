"""How fab files are turned into pass/fail maps (the CLI's --good-bins, --retest, --min-defects)."""
from __future__ import annotations

from dataclasses import dataclass

from adrcs.errors import InputError

RETEST_CHOICES = ("last", "first")


@dataclass(frozen=True)
class FabOptions:
    """good_bins: bins that pass (STDF hard bins, SINF / E142 bin codes); None = the file's own pass flags
    (STDF PRR PART_FLG, HBR/SBR pass flags; SINF BCEQU; E142 BinDefinitions).
    retest: which result counts for a die tested more than once (``last`` | ``first``).
    min_defects: KLARF: a die with at least this many defects fails."""

    good_bins: tuple[int, ...] | None = None
    retest: str = "last"
    min_defects: int = 1

    def __post_init__(self) -> None:
        if self.retest not in RETEST_CHOICES:
            raise InputError(None, f"--retest must be one of {', '.join(RETEST_CHOICES)} (got {self.retest!r})")
        if int(self.min_defects) < 1:
            raise InputError(None, f"--min-defects must be >= 1 (got {self.min_defects})")

    @classmethod
    def from_cli(cls, good_bins: str | None = None, retest: str = "last", min_defects: int = 1) -> "FabOptions":
        """Options from CLI text: ``--good-bins 1,2,5`` (commas or spaces)."""
        bins = None
        if good_bins is not None and str(good_bins).strip():
            try:
                bins = tuple(sorted({int(b) for b in str(good_bins).replace(",", " ").split()}))
            except ValueError:
                raise InputError(None, f"--good-bins must be bin numbers like 1,2,5 (got {good_bins!r})") from None
        return cls(good_bins=bins, retest=retest, min_defects=int(min_defects))


DEFAULT_FAB_OPTIONS = FabOptions()
