"""Exchanges from data (97 §1.3): the candle store, pandas DataFrames and CSV files.

Owns `add_store_exchange`, `add_frame_exchange` and `add_csv_exchange`, which register ordinary
exchanges (50) whose `get_candles` serves stored series, aggregating an interval that is not
stored from the finest stored one that divides it (first open, max high, min low, last close,
summed volume; only complete, UTC-aligned buckets); and the reading of user tables: column
lookup, time parsing (int ms, ISO-8601, datetime64, a DatetimeIndex; naive = UTC) and errors
naming the file or symbol, the column and the row. Must not validate candle rules itself: that
is `normalize_response` (core/candle_check.py), reused here.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ..core.candle_check import describe_request, normalize_response
from ..errors import ExchangeError, ValidationError
from ..intervals import INTERVAL_MS, MINUTE_MS, align, datetime_to_ms
from ..model.candles import FIELDS, Candles
from .store import CandleStore, arrow_to_numpy, require_pyarrow, symbol_key

if TYPE_CHECKING:
    from ..schema import ExchangeSchema

IntArray = npt.NDArray[np.int64]
AnyArray = npt.NDArray[Any]

VALUE_FIELDS: Final = FIELDS[1:]
# int times below this are seconds, above the next one micro- or nanoseconds: both are
# common mistakes, and as milliseconds they would be dates in 1973 or after the year 5000
_MIN_PLAUSIBLE_MS: Final = 100_000_000_000  # 1973-03-03
_MAX_PLAUSIBLE_MS: Final = 100_000_000_000_000  # 5138-11-16
_INTERVAL_BY_MS: Final = {ms: name for name, ms in INTERVAL_MS.items()}

Loader = Callable[[str, str, int, int], Candles]  # (symbol, interval, lo, hi) -> open in [lo, hi]


# -- public API -------------------------------------------------------------------------------


def add_store_exchange(
    exchange_name: str, root: str | os.PathLike[str], exchange_id: str, *, note: str = ""
) -> ExchangeSchema:
    """Register an exchange serving `get_candles` from a candle store (97 §1.3)::

        bk.data.download("binance", ["BTC/USDT"], "1m", "2024-01-01", "2025-01-01", "candles")
        bk.data.add_store_exchange("binance-store", "candles", "binance")

    Series are read from the Parquet files when asked (memory-mapped); an interval that is not
    stored is aggregated from the finest stored series that divides it (normally 1m).
    """
    from ..schema import add_exchange

    store = CandleStore(root)
    require_pyarrow()
    exchange_dir = store.root / exchange_id
    store.path(exchange_id, "X", "1m")  # validates the exchange id
    if not exchange_dir.is_dir():
        held = sorted(p.name for p in store.root.iterdir()) if store.root.is_dir() else []
        where = f"it holds: {', '.join(held)}" if held else "it is empty or missing"
        raise ExchangeError(
            f"candle store {str(store.root)!r} has no series of exchange id {exchange_id!r} "
            f"({where})"
        )

    def intervals(symbol: str) -> list[str]:
        series = exchange_dir / symbol_key(symbol)
        if not series.is_dir():
            stored = sorted({s.symbol for s in store.series() if s.exchange_id == exchange_id})
            raise ExchangeError(
                f"candle store {str(store.root)!r}: no {symbol!r} series of {exchange_id!r} "
                f"(stored symbols: {', '.join(stored) or 'none'})"
            )
        return [p.name for p in series.iterdir() if p.name in INTERVAL_MS and p.is_dir()]

    def load(symbol: str, interval: str, lo: int, hi: int) -> Candles:
        return store.read(exchange_id, symbol, interval, lo, hi + 1)

    label = f"candle store {str(store.root)!r} ({exchange_id})"
    return add_exchange(
        exchange_name,
        get_candles=_server(label, intervals, load),
        note=note or f"candle store {store.root} ({exchange_id})",
    )


def add_frame_exchange(
    exchange_name: str, frames: Mapping[str, Any], *, note: str = ""
) -> ExchangeSchema:
    """Register an exchange serving `get_candles` from pandas DataFrames, one per symbol::

        bk.data.add_frame_exchange("mine", {"BTCUSDT": frame})

    A frame needs the columns ``timestamp, open, high, low, close, volume`` (or a
    `DatetimeIndex` instead of `timestamp`); times are int ms, ISO-8601 strings or datetime64,
    naive = UTC. Each frame is read and checked now; its interval is the smallest step between
    two rows, and coarser intervals are aggregated from it.
    """
    if not isinstance(frames, Mapping) or not frames:
        raise ValidationError(
            "add_frame_exchange: frames must be a non-empty dict {symbol: pandas.DataFrame}"
        )
    series: dict[str, tuple[str, Candles]] = {}
    for symbol, frame in frames.items():
        where = f"frame {symbol!r}"
        if not isinstance(symbol, str) or not symbol:
            raise ValidationError(f"add_frame_exchange: symbol {symbol!r} must be a string")
        if not hasattr(frame, "columns") or not hasattr(frame, "index"):
            raise ValidationError(
                f"add_frame_exchange: {where} must be a pandas DataFrame, "
                f"got {type(frame).__name__}"
            )
        series[symbol] = _table_candles(_frame_columns(frame, where), where, _row)
    return _register_tables(exchange_name, series, "DataFrames", note)


def add_csv_exchange(
    exchange_name: str, files: Mapping[str, str | os.PathLike[str]], *, note: str = ""
) -> ExchangeSchema:
    """Register an exchange serving `get_candles` from CSV files, one per symbol::

        bk.data.add_csv_exchange("mine", {"BTCUSDT": "btc-1m.csv"})

    A file needs a header with ``timestamp, open, high, low, close, volume`` (any order, any
    case); times as for `add_frame_exchange`. Each file is read (pyarrow, extra ``data``) and
    checked now.
    """
    if not isinstance(files, Mapping) or not files:
        raise ValidationError("add_csv_exchange: files must be a non-empty dict {symbol: path}")
    series: dict[str, tuple[str, Candles]] = {}
    for symbol, path in files.items():
        if not isinstance(symbol, str) or not symbol:
            raise ValidationError(f"add_csv_exchange: symbol {symbol!r} must be a string")
        where = f"file {str(path)!r}"
        series[symbol] = _table_candles(_csv_columns(Path(path), where), where, _csv_row)
    return _register_tables(exchange_name, series, "CSV files", note)


# -- serving get_candles ----------------------------------------------------------------------


def _server(
    label: str, intervals: Callable[[str], list[str]], load: Loader
) -> Callable[[str, str, datetime, int], Candles]:
    """A `get_candles` over stored series, aggregating the intervals that are not stored."""

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Candles:
        step = INTERVAL_MS[interval]
        lo = datetime_to_ms(since)
        hi = lo + (limit - 1) * step
        stored = intervals(symbol)
        if interval in stored:
            return load(symbol, interval, lo, hi)
        bases = sorted(
            (INTERVAL_MS[s], s)
            for s in stored
            if INTERVAL_MS[s] < step and step % INTERVAL_MS[s] == 0
        )
        if not bases:
            held = ", ".join(sorted(stored, key=INTERVAL_MS.__getitem__))
            raise ExchangeError(
                f"{label}: {symbol!r} has no {interval} candles and no finer series to "
                f"aggregate them from (stored: {held})"
            )
        base_step, base = bases[0]
        first = -(-lo // step) * step  # the first bucket opening at or after lo
        last = align(hi, step)
        if last < first:
            return Candles.empty()
        return aggregate(load(symbol, base, first, last + step - base_step), step, base_step)

    return get_candles


def aggregate(candles: Candles, interval_ms: int, base_ms: int) -> Candles:
    """Candles of `interval_ms` from sorted unique candles of `base_ms`: open of the first,
    max high, min low, close of the last, sum of volume; only complete buckets (every `base_ms`
    slot present), aligned to UTC multiples of the interval."""
    width = interval_ms // base_ms
    ts = candles.timestamp
    if len(ts) < width:
        return Candles.empty()
    bucket = ts - ts % interval_ms
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
    counts = np.diff(np.concatenate((starts, [len(ts)])))
    firsts = starts[counts == width]
    n = len(firsts)
    # the same reshape-and-reduce as the sample market's aggregates, so sums agree bit for bit
    rows: Any = slice(None)
    if n * width != len(ts):  # some bucket incomplete: gather the complete ones
        rows = (firsts[:, None] + np.arange(width)).ravel()

    def blocks(column: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(column[rows]).reshape(n, width)

    out = (
        np.ascontiguousarray(bucket[firsts]),
        np.ascontiguousarray(candles.open[firsts]),
        blocks(candles.high).max(axis=1),
        blocks(candles.low).min(axis=1),
        np.ascontiguousarray(candles.close[firsts + width - 1]),
        blocks(candles.volume).sum(axis=1),
    )
    for column in out:
        column.flags.writeable = False
    return Candles._wrap(*out)


def _register_tables(
    exchange_name: str, series: dict[str, tuple[str, Candles]], kind: str, note: str
) -> ExchangeSchema:
    from ..schema import add_exchange

    def intervals(symbol: str) -> list[str]:
        found = series.get(symbol)
        if found is None:
            raise ExchangeError(
                f"exchange {exchange_name!r}: no candles for {symbol!r} "
                f"(symbols: {', '.join(series)})"
            )
        return [found[0]]

    def load(symbol: str, interval: str, lo: int, hi: int) -> Candles:
        candles = series[symbol][1]
        a = int(np.searchsorted(candles.timestamp, lo, "left"))
        b = int(np.searchsorted(candles.timestamp, hi, "right"))
        return candles[a:b]

    summary = ", ".join(f"{s} {interval}" for s, (interval, _) in series.items())
    return add_exchange(
        exchange_name,
        get_candles=_server(f"exchange {exchange_name!r}", intervals, load),
        note=note or f"{kind}: {summary}",
    )


# -- reading user tables ------------------------------------------------------------------------


def _row(k: int) -> str:
    return f"row {k}"


def _csv_row(k: int) -> str:
    return f"row {k} (line {k + 2})"


def _find(columns: list[str], name: str) -> str | None:
    """The column called `name`: exact, else ignoring case and surrounding spaces."""
    if name in columns:
        return name
    for column in columns:
        if column.strip().lower() == name:
            return column
    return None


def _missing(where: str, name: str, columns: list[str], extra: str = "") -> ExchangeError:
    shown = ", ".join(repr(c) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
    return ExchangeError(f"{where}: missing column {name!r}{extra} (columns: {shown or 'none'})")


def _frame_columns(frame: Any, where: str) -> dict[str, AnyArray]:
    """The six columns of a DataFrame; times become int64 ms (checked), values stay raw."""
    names = [str(c) for c in frame.columns]
    by_name = dict(zip(names, frame.columns, strict=True))
    out: dict[str, AnyArray] = {}
    column = _find(names, "timestamp")
    index = frame.index
    if column is not None:
        out["timestamp"] = _times(frame[by_name[column]], where, f"column {column!r}", _row)
    elif _is_datetime_like(index) or str(index.name).strip().lower() == "timestamp":
        out["timestamp"] = _times(index, where, "the index", _row)
    else:
        raise _missing(where, "timestamp", names, " (or a DatetimeIndex)")
    for field in VALUE_FIELDS:
        column = _find(names, field)
        if column is None:
            raise _missing(where, field, names)
        values = frame[by_name[column]]
        if getattr(values, "ndim", 1) != 1:
            raise ExchangeError(f"{where}: several columns are called {column!r}")
        out[field] = np.asarray(values.to_numpy())
    return out


def _is_datetime_like(index: Any) -> bool:
    dtype = getattr(index, "dtype", None)
    return getattr(dtype, "tz", None) is not None or getattr(dtype, "kind", "") == "M"


def _csv_columns(path: Path, where: str) -> dict[str, AnyArray]:
    """The six columns of a CSV file, read by pyarrow; times parsed and checked here."""
    pa, _ = require_pyarrow()
    import pyarrow.csv as pacsv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except OSError as exc:
        raise ExchangeError(f"{where}: cannot read it: {exc}") from None
    found = {name: _find(header, name) for name in FIELDS}
    for name, column in found.items():
        if column is None:
            raise _missing(where, name, header)
    time_column = found["timestamp"]
    assert time_column is not None
    types = {time_column: pa.string()} | {found[f]: pa.float64() for f in VALUE_FIELDS}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=[found[f] for f in FIELDS],
                null_values=[],  # "n/a" or an empty cell is an error, never a silent NaN
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_value_error(path, where, found) or ExchangeError(
            f"{where}: cannot read it: {exc}"
        ) from None
    out: dict[str, AnyArray] = {}
    times = table.column(time_column)
    column = f"column {time_column!r}"
    out["timestamp"] = _times(np.array(times.to_pylist(), dtype=object), where, column, _csv_row)
    for field in VALUE_FIELDS:
        out[field] = arrow_to_numpy(table.column(found[field]), np.float64, where)
    return out


def _csv_value_error(
    path: Path, where: str, found: Mapping[str, str | None]
) -> ExchangeError | None:
    """Name the column and row of the first value pyarrow could not read as a number."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for k, row in enumerate(reader):
            for field in VALUE_FIELDS:
                column = found[field]
                assert column is not None
                text = (row.get(column) or "").strip()
                try:
                    float(text)
                except ValueError:
                    return ExchangeError(
                        f"{where}: column {column!r}, {_csv_row(k)}: {text!r} is not a number"
                    )
    return None


def _table_candles(
    columns: Mapping[str, AnyArray], where: str, row: Callable[[int], str]
) -> tuple[str, Candles]:
    """Infer the interval, then validate with the exchange rules (50 §3) naming the row."""
    ts = columns["timestamp"]
    if len(ts) == 0:
        raise ExchangeError(f"{where}: no rows")
    steps = np.diff(ts)
    forward = steps[steps > 0]
    step = int(forward.min()) if len(forward) else MINUTE_MS
    interval = _INTERVAL_BY_MS.get(step)
    if interval is None:
        k = int(np.flatnonzero(steps == step)[0])
        raise ExchangeError(
            f"{where}: cannot tell the candle interval: the smallest step between two rows is "
            f"{step} ms ({row(k)} to {row(k + 1)}); expected one of {', '.join(INTERVAL_MS)}"
        )
    array = np.empty(
        len(ts), dtype=[("timestamp", np.int64), *((f, columns[f].dtype) for f in VALUE_FIELDS)]
    )
    for field in FIELDS:
        array[field] = columns[field]
    from ..core.exchange import wall_clock_ms
    from ..runtime import current

    now = wall_clock_ms()
    since = min(0, int(ts.min()))
    since -= since % step
    limit = (align(now, step) - step - since) // step + 1
    config = current().config
    try:
        candles = normalize_response(
            array,
            exchange_name=where,
            symbol="",
            interval=interval,
            since=since,
            limit=max(limit, 1),
            now_ms=now,
            anomaly_factor=config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR,
            min_candles_for_median=config.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN,
        )
    except ExchangeError as exc:
        request = describe_request(where, "", interval, since, max(limit, 1))
        text = str(exc).removeprefix(request + ": ")
        raise ExchangeError(f"{where}: {_rows_named(text, row)}") from None
    return interval, candles


def _rows_named(text: str, row: Callable[[int], str]) -> str:
    """``candle[3] ...`` -> ``row 3 ...`` (with the CSV line when there is one)."""
    if text.startswith("candle[") and "]" in text:
        index, rest = text[len("candle[") :].split("]", 1)
        if index.isdigit() and rest.startswith(".") and " " in rest:
            field, problem = rest[1:].split(" ", 1)  # "candle[3].open must be a number, ..."
            return f"column {field!r}, {row(int(index))}: {problem}"
        if index.isdigit():
            return row(int(index)) + rest
    return text


# -- times ----------------------------------------------------------------------------------------


def _times(values: Any, where: str, column: str, row: Callable[[int], str]) -> IntArray:
    """A column of times -> int64 ms UTC; the first bad row raises naming `column` and it."""

    def fail(k: int, problem: str) -> ExchangeError:
        return ExchangeError(f"{where}: {column}, {row(k)}: {problem}")

    dtype = getattr(values, "dtype", None)
    tz = getattr(dtype, "tz", None)
    if tz is not None:  # pandas tz-aware column or index
        series = hasattr(values, "dt")  # a Series, else an Index

        def naive(x: Any) -> AnyArray:
            return np.asarray((x.dt if series else x).tz_localize(None).to_numpy())

        local = naive(values)
        utc = naive((values.dt if series else values).tz_convert("UTC"))
        shifted = local != utc
        if shifted.any():
            k = int(np.argmax(shifted))
            return _raise(fail(k, f"time zone {tz} is not UTC (convert the times to UTC)"))
        values = utc
    array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    kind = array.dtype.kind
    if kind == "M":
        return _datetime64_ms(array, fail)
    if kind in "iu":
        return _int_ms(array.astype(np.int64), fail)
    if kind == "f":
        bad = ~np.isfinite(array) | (np.floor(array) != array)
        if bad.any():
            k = int(np.argmax(bad))
            return _raise(fail(k, f"cannot read {array[k]!r} as a time"))
        return _int_ms(array.astype(np.int64), fail)
    if kind in "OUS":
        return _object_times(array.astype(object) if kind != "O" else array, fail)
    return _raise(fail(0, f"cannot read times of type {array.dtype}"))


def _raise(error: ExchangeError) -> IntArray:
    raise error


def _datetime64_ms(array: AnyArray, fail: Callable[[int, str], ExchangeError]) -> IntArray:
    nat = np.isnat(array)
    if nat.any():
        return _raise(fail(int(np.argmax(nat)), "the time is missing (NaT)"))
    whole = array.astype("datetime64[ms]")
    inexact = whole != array
    if inexact.any():
        k = int(np.argmax(inexact))
        return _raise(fail(k, f"{array[k]} is not a whole millisecond"))
    out: IntArray = whole.astype(np.int64)
    return out


def _int_ms(array: IntArray, fail: Callable[[int, str], ExchangeError]) -> IntArray:
    if len(array) and int(array.max()) < _MIN_PLAUSIBLE_MS:
        return _raise(
            fail(
                int(np.argmax(array)),
                f"{int(array.max())} looks like seconds; times must be int milliseconds",
            )
        )
    huge = array >= _MAX_PLAUSIBLE_MS
    if huge.any():
        k = int(np.argmax(huge))
        return _raise(
            fail(k, f"{int(array[k])} looks like micro- or nanoseconds; times must be int ms")
        )
    return array


def _object_times(array: AnyArray, fail: Callable[[int, str], ExchangeError]) -> IntArray:
    items = array.tolist()
    if all(type(v) is str for v in items):
        return _iso_times(items, fail)
    out = np.empty(len(items), dtype=np.int64)
    for k, value in enumerate(items):
        if isinstance(value, datetime):
            offset = value.utcoffset()
            if offset is not None and offset != timedelta(0):
                raise fail(k, f"{value.isoformat()} has a non-UTC offset {_offset(offset)}")
            out[k] = datetime_to_ms(value.replace(tzinfo=None))
        elif isinstance(value, str):
            out[k] = _iso_one(value, k, fail)
        elif (isinstance(value, int | np.integer) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        ):
            out[k] = int(value)
        else:
            raise fail(k, f"cannot read {value!r} as a time")
    if any(isinstance(v, datetime | str) for v in items):
        return out
    return _int_ms(out, fail)


def _iso_times(items: list[str], fail: Callable[[int, str], ExchangeError]) -> IntArray:
    """ISO-8601 strings (or digit strings of int ms) -> int64 ms; fast path through numpy."""
    stripped = [t.strip() for t in items]
    if all(t.isdigit() for t in stripped):
        return _int_ms(np.array([int(t) for t in stripped], dtype=np.int64), fail)
    utc = [
        t[:-1] if t.endswith(("Z", "z")) else t[:-6] if t.endswith(("+00:00", "-00:00")) else t
        for t in stripped
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy parses and drops other offsets with a warning
            parsed = np.array(utc, dtype="datetime64[ms]")
    except (ValueError, Warning, OverflowError):
        return np.array([_iso_one(t, k, fail) for k, t in enumerate(stripped)], dtype=np.int64)
    if np.isnat(parsed).any():
        return np.array([_iso_one(t, k, fail) for k, t in enumerate(stripped)], dtype=np.int64)
    out: IntArray = parsed.astype(np.int64)
    return out


def _iso_one(text: str, k: int, fail: Callable[[int, str], ExchangeError]) -> int:
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise fail(k, f"cannot read {text!r} as an ISO-8601 time") from None
    offset = parsed.utcoffset()
    if offset is not None and offset != timedelta(0):
        raise fail(k, f"{text!r} has a non-UTC offset {_offset(offset)}")
    return datetime_to_ms(parsed.replace(tzinfo=None))


def _offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


__all__ = ["add_csv_exchange", "add_frame_exchange", "add_store_exchange", "aggregate"]
