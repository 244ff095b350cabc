"""Candle validation: turn whatever a user's `get_candles` returned into validated `Candles`.

Owns the accepted return forms (50 §3), the cut to the requested, closed slots (rule 8), the
structural checks (rules 1-7) and the price-anomaly filter (50 §4), all as pure functions of one
response. It must not fetch, retry, cache, sleep or talk to the runtime: the exchange client does
that (dropped candles only reach the standard-library `backtest_kit` logger at DEBUG). It never
sorts, de-duplicates or repairs a candle; a response passes as given or raises `ExchangeError`.
Columnar inputs (`Candles`, numpy structured arrays, DataFrames) are checked with vectorised numpy;
lists are type-checked row by row, then converted to arrays once.

Order of the checks: rule 1 (shape) over every row, then every row's timestamp must be readable
(the range cut needs it), then the rows outside the window are dropped, then rules 2-7 and the
anomaly filter over the rows kept, rule by rule; within a rule the lowest row is reported, with
its index in the user's response.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..errors import ExchangeError
from ..intervals import INTERVAL_MS, datetime_to_ms, iso
from ..model.candles import FIELDS, Candle, Candles

AnyArray = npt.NDArray[Any]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

VALUE_FIELDS: Final = ("open", "high", "low", "close", "volume")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_MAX_SHOWN: Final = 60
_FORMS: Final = (
    "expected a list of candle dicts or 6-item sequences [timestamp, open, high, low, close, "
    "volume], a Candles, a numpy structured array or a pandas DataFrame"
)

_log = logging.getLogger("backtest_kit")


class _Problem(Exception):
    """A rule failed; the message is what follows the request description."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    candles: Candles  # the rows kept, in the user's order
    positions: IntArray | None  # index in the response of each row kept; None: all rows kept
    total: int  # rows in the response


# -- public API -------------------------------------------------------------------------------


def describe_request(exchange_name: str, symbol: str, interval: str, since: int, limit: int) -> str:
    """The request as error messages name it.

    >>> describe_request("bn", "BTCUSDT", "1m", 1704067200000, 5)
    "exchange 'bn': get_candles('BTCUSDT', '1m', since=2024-01-01T00:00:00Z, limit=5)"
    """
    return (
        f"exchange {exchange_name!r}: get_candles({symbol!r}, {interval!r}, "
        f"since={iso(since)}, limit={limit})"
    )


def normalize_response(
    raw: object,
    *,
    exchange_name: str,
    symbol: str,
    interval: str,
    since: int,
    limit: int,
    now_ms: int,
    anomaly_factor: int,
    min_candles_for_median: int,
) -> Candles:
    """Validate one response of `get_candles(symbol, interval, since, limit)` (50 §3-§4).

    Keeps the candles whose open time `t` is in ``[since, since + (limit - 1) * I]`` and closed
    at `now_ms` (``t + I <= now_ms``), checks them and returns them as read-only `Candles`, in
    the order given. The first failure raises `ExchangeError`::

        exchange 'bn': get_candles('BTCUSDT', '1m', since=2024-01-01T00:00:00Z, limit=5):
        candle[2] (2024-01-01T00:02:00Z) high 30100.0 < low 30200.0
    """
    interval_ms = INTERVAL_MS[interval]
    lo = since
    hi = min(since + (limit - 1) * interval_ms, now_ms - interval_ms)
    try:
        parsed = _parse(raw, lo, hi)
        _check_rules(parsed.candles, parsed.positions, interval, interval_ms)
        problem = _find_anomaly(
            parsed.candles, anomaly_factor, min_candles_for_median, parsed.positions
        )
        if problem is not None:
            raise _Problem(problem)
    except _Problem as problem:
        request = describe_request(exchange_name, symbol, interval, since, limit)
        raise ExchangeError(f"{request}: {problem}") from None
    dropped = parsed.total - len(parsed.candles)
    if dropped and _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s: dropped %d of %d candles opening outside [%s, %s] or not closed at %s",
            describe_request(exchange_name, symbol, interval, since, limit),
            dropped,
            parsed.total,
            iso(lo),
            iso(since + (limit - 1) * interval_ms),
            iso(now_ms),
        )
    return parsed.candles


def check_anomaly(candles: Candles, *, factor: int, min_candles_for_median: int) -> None:
    """Reject a batch holding a candle priced below ``reference / factor`` (50 §4).

    The reference is the upper median of the positive OHLC prices when the batch has at least
    `min_candles_for_median` candles, else their mean. Raises `ExchangeError` naming the first
    offending candle, e.g. ``candle[3] has anomalously low price: OHLC [0.5, 0.5, 0.5, 0.5],
    reference 30000.0, threshold 30.0``.
    """
    problem = _find_anomaly(candles, factor, min_candles_for_median, None)
    if problem is not None:
        raise ExchangeError(problem)


# -- reading the response ---------------------------------------------------------------------


def _parse(raw: object, lo: int, hi: int) -> _Parsed:
    """Dispatch on the return form; rule 1, timestamps, the window cut and rule 2."""
    if raw is None:
        raise _Problem("returned None; return [] when there is no data")
    if isinstance(raw, Candles):
        return _from_candles(raw, lo, hi)
    if isinstance(raw, np.ndarray):
        if raw.dtype.names is not None:
            return _from_structured(raw, lo, hi)
        if raw.ndim == 2:
            return _from_matrix(raw, lo, hi)
        if raw.ndim == 1:
            return _from_rows(list(raw), lo, hi)
        raise _Problem(f"returned an array of shape {raw.shape}; {_FORMS}")
    pd = sys.modules.get("pandas")  # never import pandas ourselves: only users of it return frames
    if pd is not None and isinstance(raw, pd.DataFrame):
        return _from_frame(raw, pd, lo, hi)
    if isinstance(raw, Sequence) and not isinstance(raw, str | bytes | bytearray):
        return _from_rows(raw, lo, hi)
    raise _Problem(f"returned {type(raw).__name__}; {_FORMS}")


def _from_candles(candles: Candles, lo: int, hi: int) -> _Parsed:
    keep = _window_positions(candles.timestamp, lo, hi)
    if keep is None:
        return _Parsed(candles, None, len(candles))
    kept = _build(candles.timestamp[keep], {f: getattr(candles, f)[keep] for f in VALUE_FIELDS})
    return _Parsed(kept, keep, len(candles))


def _from_structured(array: AnyArray, lo: int, hi: int) -> _Parsed:
    if array.ndim != 1:
        raise _Problem(f"returned a structured array of shape {array.shape}, expected 1 dimension")
    if len(array) == 0:
        return _Parsed(Candles.empty(), None, 0)
    names = array.dtype.names or ()
    for field in FIELDS:
        if field not in names:
            raise _Problem(f"structured array misses field {field!r}")
    return _from_columns(array["timestamp"], {f: array[f] for f in VALUE_FIELDS}, lo, hi)


def _from_matrix(array: AnyArray, lo: int, hi: int) -> _Parsed:
    """A 2-D array: rows in ccxt order, like a list of 6-item sequences."""
    if array.shape[0] == 0:
        return _Parsed(Candles.empty(), None, 0)
    if array.shape[1] != len(FIELDS):
        raise _Problem(f"candle[0] has {array.shape[1]} values, expected {len(FIELDS)}")
    values = {f: array[:, j + 1] for j, f in enumerate(VALUE_FIELDS)}
    return _from_columns(array[:, 0], values, lo, hi)


def _from_frame(frame: Any, pd: Any, lo: int, hi: int) -> _Parsed:
    if len(frame) == 0:
        return _Parsed(Candles.empty(), None, 0)
    columns = frame.columns
    if "timestamp" in columns:
        timestamps = _frame_column(frame, "timestamp")
    elif isinstance(frame.index, pd.DatetimeIndex) or frame.index.name == "timestamp":
        index = frame.index
        if getattr(index, "tz", None) is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        timestamps = np.asarray(index.to_numpy())
    else:
        raise _Problem("DataFrame misses column 'timestamp' (or a DatetimeIndex)")
    for field in VALUE_FIELDS:
        if field not in columns:
            raise _Problem(f"DataFrame misses column {field!r}")
    return _from_columns(timestamps, {f: _frame_column(frame, f) for f in VALUE_FIELDS}, lo, hi)


def _frame_column(frame: Any, name: str) -> AnyArray:
    column = frame[name]
    if getattr(column, "ndim", 1) != 1:
        raise _Problem(f"DataFrame has several columns named {name!r}")
    if getattr(column.dtype, "tz", None) is not None:
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(column.to_numpy())


def _from_columns(
    timestamps: AnyArray, values: Mapping[str, AnyArray], lo: int, hi: int
) -> _Parsed:
    """Vectorised path shared by every columnar form; arrays may be views of the user's data."""
    total = len(timestamps)
    for field, column in (("timestamp", timestamps), *values.items()):
        if column.ndim != 1 or len(column) != total:
            raise _Problem(f"column {field!r} has shape {column.shape}, expected ({total},)")
    ts = _timestamp_column(timestamps)
    keep = _window_positions(ts, lo, hi)
    columns = _value_columns(values, keep)
    kept_ts = ts if keep is None else ts[keep]
    return _Parsed(_build(kept_ts, columns), keep, total)


def _from_rows(rows: Sequence[object], lo: int, hi: int) -> _Parsed:
    """Per-row path for lists: rule 1 on every row, timestamps, then rule 2 on the rows kept."""
    timestamps: list[int] = []
    columns: tuple[list[object], ...] = ([], [], [], [], [])
    positions: list[int] = []
    timestamp_problem: str | None = None
    type_problem: str | None = None
    for k, row in enumerate(rows):
        values = _row_values(row, k)  # rule 1 outranks everything: raise at once
        if timestamp_problem is not None:
            continue
        try:
            t = _read_timestamp(values[0], k)
        except _Problem as problem:
            timestamp_problem = str(problem)
            continue
        if not lo <= t <= hi or type_problem is not None:
            continue
        for field, value in zip(VALUE_FIELDS, values[1:], strict=True):
            if not _is_number(value):
                type_problem = f"candle[{k}].{field} must be a number, got {_show(value)}"
                break
        else:
            timestamps.append(t)
            positions.append(k)
            for column, value in zip(columns, values[1:], strict=True):
                column.append(value)
    if timestamp_problem is not None:
        raise _Problem(timestamp_problem)
    if type_problem is not None:
        raise _Problem(type_problem)
    keep = None if len(positions) == len(rows) else np.array(positions, dtype=np.int64)
    floats = {f: _to_float64(c) for f, c in zip(VALUE_FIELDS, columns, strict=True)}
    return _Parsed(_build(np.array(timestamps, dtype=np.int64), floats), keep, len(rows))


def _row_values(row: object, k: int) -> Sequence[object]:
    """The six values of one row in `FIELDS` order (rule 1)."""
    if type(row) is tuple or type(row) is list:
        if len(row) != len(FIELDS):
            raise _Problem(f"candle[{k}] has {len(row)} values, expected {len(FIELDS)}")
        return row
    if isinstance(row, Candle):
        return (row.timestamp, row.open, row.high, row.low, row.close, row.volume)
    if isinstance(row, Mapping):
        for field in FIELDS:
            if field not in row:
                raise _Problem(f"candle[{k}] misses {field!r}")
        return tuple(row[f] for f in FIELDS)
    is_sequence = isinstance(row, Sequence) and not isinstance(row, str | bytes | bytearray)
    if isinstance(row, np.ndarray) and row.ndim == 1:
        is_sequence = True
    if not is_sequence:
        raise _Problem(
            f"candle[{k}] must be a dict, a Candle or a 6-item sequence, got {_show(row)}"
        )
    sequence: Sequence[object] = row  # type: ignore[assignment]
    if len(sequence) != len(FIELDS):
        raise _Problem(f"candle[{k}] has {len(sequence)} values, expected {len(FIELDS)}")
    return sequence


# -- timestamps and values --------------------------------------------------------------------


def _read_timestamp(value: object, k: int) -> int:
    """One timestamp as int ms: int, whole float, datetime (naive = UTC) or datetime64."""
    if type(value) is int:
        ms = value
    elif isinstance(value, bool | np.bool_):
        raise _Problem(_timestamp_type_problem(value, k))
    elif isinstance(value, int | np.integer):
        ms = int(value)
    elif isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            raise _Problem(f"candle[{k}].timestamp is NaN")
        if math.isinf(number):
            raise _Problem(f"candle[{k}].timestamp is {number}")
        if not number.is_integer():
            raise _Problem(
                f"candle[{k}].timestamp must be a whole number of ms, got float {number!r}"
            )
        ms = int(number)
    elif isinstance(value, datetime):
        if value != value:  # pandas.NaT is a datetime that differs from itself
            raise _Problem(f"candle[{k}].timestamp is NaT")
        if value.microsecond % 1000 or getattr(value, "nanosecond", 0):
            raise _Problem(
                f"candle[{k}].timestamp must be a whole number of ms, got {_show(value)}"
            )
        ms = datetime_to_ms(value)
    elif isinstance(value, np.datetime64):
        if np.isnat(value):
            raise _Problem(f"candle[{k}].timestamp is NaT")
        whole = value.astype("datetime64[ms]")
        if whole != value:
            raise _Problem(
                f"candle[{k}].timestamp must be a whole number of ms, got datetime64 {value}"
            )
        ms = int(whole.astype(np.int64))
    else:
        raise _Problem(_timestamp_type_problem(value, k))
    if not _INT64_MIN <= ms <= _INT64_MAX:
        raise _Problem(f"candle[{k}].timestamp {ms} is out of range")
    return ms


def _timestamp_problem_message(value: object, k: int) -> str:
    try:
        _read_timestamp(value, k)
    except _Problem as problem:
        return str(problem)
    raise AssertionError("the vectorised timestamp check and _read_timestamp disagree")


def _timestamp_type_problem(value: object, k: int) -> str:
    return (
        f"candle[{k}].timestamp must be int ms, a whole float, a datetime or a numpy "
        f"datetime64, got {_show(value)}"
    )


def _timestamp_column(column: AnyArray) -> IntArray:
    """Every row's timestamp as int64 ms (a new array); the first unreadable one raises."""
    kind = column.dtype.kind
    if kind in "iu":
        return column.astype(np.int64)
    if kind == "f":
        readable = np.isfinite(column)
        readable[readable] = (np.floor(column[readable]) == column[readable]) & (
            np.abs(column[readable]) < 2.0**63
        )
        if not readable.all():
            k = int(np.argmin(readable))
            raise _Problem(_timestamp_problem_message(float(column[k]), k))
        return column.astype(np.int64)
    if kind == "M":
        whole = column.astype("datetime64[ms]")
        readable = ~np.isnat(column) & (whole == column)
        if not readable.all():
            k = int(np.argmin(readable))
            raise _Problem(_timestamp_problem_message(column[k], k))
        return whole.astype(np.int64)
    # object, bool, strings...: the scalar reader accepts or names each value
    return np.array(
        [_read_timestamp(value, k) for k, value in enumerate(column.tolist())], dtype=np.int64
    )


def _window_positions(ts: IntArray, lo: int, hi: int) -> IntArray | None:
    """Positions of the rows opening in [lo, hi]; None when every row does (no copy needed)."""
    inside = (ts >= lo) & (ts <= hi)
    if inside.all():
        return None
    return np.flatnonzero(inside).astype(np.int64)


def _is_number(value: object) -> bool:
    kind = type(value)
    if kind is float or kind is int:
        return True
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _value_columns(values: Mapping[str, AnyArray], keep: IntArray | None) -> dict[str, FloatArray]:
    """Rule 2 over the rows kept, then float64 copies owned by us."""
    first: tuple[int, str, object] | None = None  # (position among the rows kept, field, value)
    out: dict[str, FloatArray] = {}
    for field in VALUE_FIELDS:
        column = values[field] if keep is None else values[field][keep]
        kind = column.dtype.kind
        if kind in "iuf":
            # fancy indexing already copied; otherwise copy so the user's frame can change later
            out[field] = (
                np.array(column, dtype=np.float64)
                if keep is None
                else np.asarray(column, dtype=np.float64)
            )
            continue
        bad: int | None
        if kind == "O":
            items = column.tolist()
            bad = next((p for p, v in enumerate(items) if not _is_number(v)), None)
            if bad is None:
                out[field] = _to_float64(items)
                continue
        else:  # bool, str, bytes, datetime64, complex...: never a price or a volume
            bad = 0 if len(column) else None
            if bad is None:
                out[field] = np.empty(0, dtype=np.float64)
                continue
        if first is None or bad < first[0]:
            first = (bad, field, column[bad])
    if first is not None:
        position, field, value = first
        k = position if keep is None else int(keep[position])
        raise _Problem(f"candle[{k}].{field} must be a number, got {_show(value)}")
    return out


def _to_float64(values: Sequence[object]) -> FloatArray:
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an int beyond float range: rule 3 reports it as infinite
        return np.array([_float_or_inf(v) for v in values], dtype=np.float64)


def _float_or_inf(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _build(ts: IntArray, columns: Mapping[str, FloatArray]) -> Candles:
    arrays = (ts, *(columns[f] for f in VALUE_FIELDS))
    for array in arrays:
        array.flags.writeable = False
    return Candles._wrap(ts, *(columns[f] for f in VALUE_FIELDS))


def _show(value: object) -> str:
    """`str '30000.5'`: the type and a bounded repr, numpy scalars shown as Python values."""
    if value is None:
        return "None"
    if isinstance(value, np.bool_ | np.number | np.str_ | np.bytes_):
        value = value.item()
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"{type(value).__name__} {text}"


# -- rules 3-7 and the anomaly filter (kept rows, vectorised) ---------------------------------


def _first_row(masks: Sequence[BoolArray]) -> tuple[int, int] | None:
    """(row, mask) of the first True: lowest row, then the first mask true there."""
    any_bad = np.logical_or.reduce(masks)
    if not any_bad.any():
        return None
    row = int(np.argmax(any_bad))
    return row, next(j for j, mask in enumerate(masks) if mask[row])


def _check_rules(
    candles: Candles, positions: IntArray | None, interval: str, interval_ms: int
) -> None:
    """Rules 3-7 of 50 §3 over the rows kept."""
    if len(candles) == 0:
        return
    ts = candles.timestamp

    def index(p: int) -> int:
        return p if positions is None else int(positions[p])

    def at(p: int) -> str:
        return f"candle[{index(p)}] ({iso(int(ts[p]))})"

    columns = [getattr(candles, f) for f in VALUE_FIELDS]

    found = _first_row([~np.isfinite(c) for c in columns])
    if found is not None:
        p, j = found
        value = float(columns[j][p])
        shown = "NaN" if math.isnan(value) else str(value)
        raise _Problem(f"{at(p)} {VALUE_FIELDS[j]} is {shown}")

    found = _first_row([*(c <= 0 for c in columns[:4]), columns[4] < 0])
    if found is not None:
        p, j = found
        limit = "< 0" if VALUE_FIELDS[j] == "volume" else "<= 0"
        raise _Problem(f"{at(p)} {VALUE_FIELDS[j]} {float(columns[j][p])!r} {limit}")

    opens, highs, lows, closes = columns[:4]
    found = _first_row(
        [highs < lows, (opens < lows) | (opens > highs), (closes < lows) | (closes > highs)]
    )
    if found is not None:
        p, j = found
        high, low = float(highs[p]), float(lows[p])
        if j == 0:
            raise _Problem(f"{at(p)} high {high!r} < low {low!r}")
        name = "open" if j == 1 else "close"
        price = float(opens[p] if j == 1 else closes[p])
        raise _Problem(f"{at(p)} {name} {price!r} outside [low {low!r}, high {high!r}]")

    misaligned = ts % interval_ms != 0
    if misaligned.any():
        raise _Problem(f"{at(int(np.argmax(misaligned)))} not aligned to {interval}")

    if len(ts) > 1:
        backwards = ts[1:] <= ts[:-1]
        if backwards.any():
            p = int(np.argmax(backwards)) + 1
            if ts[p] == ts[p - 1]:
                raise _Problem(f"{at(p)} duplicate timestamp of candle[{index(p - 1)}]")
            raise _Problem(f"{at(p)} not sorted: it comes after {at(p - 1)}")


def _find_anomaly(
    candles: Candles, factor: int, min_candles_for_median: int, positions: IntArray | None
) -> str | None:
    """The message tail of 50 §4 for the first anomalous candle, or None."""
    if len(candles) == 0:
        return None
    # candle by candle, open-high-low-close: the order of the reference's price list
    prices = np.stack((candles.open, candles.high, candles.low, candles.close), axis=1).ravel()
    positive = prices[prices > 0]
    if positive.size == 0:
        reference = 0.0
    elif len(candles) >= min_candles_for_median:
        middle = positive.size // 2
        reference = float(np.partition(positive, middle)[middle])  # upper median
    else:
        # sequential left-to-right sum (the reference's reduce); np.sum is pairwise
        reference = float(np.add.accumulate(positive)[-1]) / positive.size
    if reference == 0:
        return "cannot calculate reference price (all prices are zero)"
    threshold = reference / factor
    lowest = np.minimum(
        np.minimum(candles.open, candles.high), np.minimum(candles.low, candles.close)
    )
    below = lowest < threshold
    if not below.any():
        return None
    p = int(np.argmax(below))
    k = p if positions is None else int(positions[p])
    ohlc = ", ".join(repr(float(getattr(candles, f)[p])) for f in ("open", "high", "low", "close"))
    return (
        f"candle[{k}] has anomalously low price: OHLC [{ohlc}], reference {reference!r}, "
        f"threshold {threshold!r}"
    )


__all__ = ["check_anomaly", "describe_request", "normalize_response"]
