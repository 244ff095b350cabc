"""Interval names, their length in milliseconds, and conversions between ms and datetimes.

Pure functions only: no engine logic, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

MINUTE_MS: Final = 60_000
DAY_MS: Final = 86_400_000

INTERVAL_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
}

STRATEGY_INTERVALS: Final = ("1m", "3m", "5m", "15m", "30m", "1h")
FRAME_INTERVALS: Final = tuple(INTERVAL_MS)
CANDLE_INTERVALS: Final = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h")

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def ms_to_datetime(ms: int) -> datetime:
    """Int milliseconds since the epoch -> aware UTC datetime (exact, no float seconds)."""
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(dt: datetime) -> int:
    """Datetime -> int milliseconds since the epoch; a naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _ONE_MS


def to_ms(value: object, field: str = "date") -> int:
    """Accept a datetime (naive = UTC), an ISO-8601 string or int ms; return int ms.

    Raises `ValidationError` naming `field` when the value cannot be read as a date.
    """
    from .errors import ValidationError

    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a datetime, an ISO-8601 string or int ms, got bool")
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return datetime_to_ms(datetime.fromisoformat(text))
        except ValueError:
            raise ValidationError(
                f"{field} must be a datetime, an ISO-8601 string or int ms, got {value!r}"
            ) from None
    raise ValidationError(
        f"{field} must be a datetime, an ISO-8601 string or int ms, got {type(value).__name__}"
    )


def iso(ms: int) -> str:
    """Int ms -> compact ISO-8601 UTC text, e.g. ``2024-01-01T00:02:00Z`` (for messages)."""
    dt = ms_to_datetime(ms)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def align(ms: int, interval_ms: int) -> int:
    """Open time of the interval-long candle containing instant `ms` (epoch aligned)."""
    return ms - ms % interval_ms
