"""Query parameters of the read routes: ISO 8601 times and short text filters, checked into 422s."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import HTTPException

from adrcs.errors import InputError


def utc_param(value: str | None, name: str) -> datetime | None:
    """`value` as an aware UTC time (naive = UTC); 422 when not ISO 8601 or out of range once in UTC."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):  # not ISO 8601, or out of range once in UTC (0001-01-01T00:00+14:00)
        raise HTTPException(422, f"{name}: not an ISO 8601 time in 0001..9999 UTC ({value[:64]!r})") from None


def text_param(value: str | None, name: str) -> str | None:
    """A filter text of at most 255 characters without NUL (else 422)."""
    if value is not None and (len(value) > 255 or "\x00" in value):
        raise InputError(None, f"{name} must be at most 255 characters, without NUL")
    return value
