"""The Parquet candle store (97 §1): one dataset per exchange / symbol / interval on disk.

Owns the layout ``<root>/<exchange_id>/<symbol_key>/<interval>/year=YYYY/month=MM/<part>.parquet``,
the validated, append-only writes (a new part file per month touched, written to a hidden
temporary file and renamed, so a crash never leaves half a file where readers look), reads
sorted by open time, coverage with gaps and duplicates, the listing of stored series, and the
atomic compaction of a month's parts into one. Must not fetch from an exchange (download.py
does) nor register exchanges (sources.py does). pyarrow (extra ``data``) is imported on first
use, so ``import backtest_kit`` never needs it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..core.candle_check import describe_request, normalize_response
from ..errors import BacktestKitError, ExchangeError, ValidationError
from ..intervals import INTERVAL_MS, align, iso, to_ms
from ..model.candles import FIELDS, Candles

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

VALUE_FIELDS: Final = FIELDS[1:]
META_PREFIX: Final = "backtest_kit."
_FORMAT_VERSION: Final = "1"
_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MONTH_DIR: Final = re.compile(r"^year=(\d{4})$|^month=(\d{2})$")
_TEMP_SUFFIX: Final = ".tmp"


def require_pyarrow() -> tuple[Any, Any]:
    """`(pyarrow, pyarrow.parquet)`, or a `BacktestKitError` naming the extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BacktestKitError(
            'the candle store needs pyarrow: pip install "backtest-kit[data]"'
        ) from None
    return pa, pq


def symbol_key(symbol: str) -> str:
    """A symbol's directory name: ``/`` and ``:`` become ``-`` (``BTC/USDT`` → ``BTC-USDT``)."""
    key = symbol.replace("/", "-").replace(":", "-")
    if not _SAFE_NAME.match(key):
        raise ValidationError(
            f"symbol {symbol!r} cannot name a store directory: use letters, digits, '/', ':', "
            "'-', '_' and '.', starting with a letter or digit"
        )
    return key


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a stored series holds. Times are open times in int ms UTC; a gap ``(start, end)``
    is the half-open range ``[start, end)`` of missing interval steps between `first` and
    `last`; `duplicates` counts rows stored twice (identical), which `compact` removes."""

    exchange_id: str
    symbol: str
    interval: str
    first: int | None
    last: int | None
    count: int
    gaps: list[tuple[int, int]]
    duplicates: int = 0

    @property
    def missing(self) -> int:
        """Interval steps missing between `first` and `last`."""
        step = INTERVAL_MS[self.interval]
        return sum((end - start) // step for start, end in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange_id": self.exchange_id,
            "symbol": self.symbol,
            "interval": self.interval,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "gaps": [list(gap) for gap in self.gaps],
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One stored series, as `CandleStore.series()` lists it (from the Parquet footers)."""

    exchange_id: str
    symbol: str
    interval: str
    first: int | None
    last: int | None
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange_id": self.exchange_id,
            "symbol": self.symbol,
            "interval": self.interval,
            "first": self.first,
            "last": self.last,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class _Columns:
    """Sorted columns of some stored rows (timestamps int64 ms)."""

    ts: IntArray
    values: tuple[FloatArray, ...]  # open, high, low, close, volume

    @staticmethod
    def empty() -> _Columns:
        return _Columns(np.empty(0, np.int64), tuple(np.empty(0) for _ in VALUE_FIELDS))


class CandleStore:
    """Candles on disk as Parquet, one dataset per (exchange id, symbol, interval)::

        store = bk.data.CandleStore("candles")
        store.write("binance", "BTC/USDT", "1m", candles)      # rows added
        year = store.read("binance", "BTC/USDT", "1m", "2024-01-01", "2025-01-01")
        store.coverage("binance", "BTC/USDT", "1m").gaps       # [(start_ms, end_ms), ...]

    Times (`start`, `end`) accept a datetime (naive = UTC), an ISO-8601 string or int ms.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"CandleStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------

    def path(self, exchange_id: str, symbol: str, interval: str) -> Path:
        """The directory of one series (it may not exist yet)."""
        if not isinstance(exchange_id, str) or not _SAFE_NAME.match(exchange_id):
            raise ValidationError(
                f"exchange_id {exchange_id!r} cannot name a store directory: use letters, "
                "digits, '-', '_' and '.', starting with a letter or digit"
            )
        _check_interval(interval)
        return self.root / exchange_id / symbol_key(symbol) / interval

    def _month_dirs(self, series: Path) -> list[tuple[int, Path]]:
        """(first ms of the month, directory) of every month partition, oldest first."""
        months: list[tuple[int, Path]] = []
        if not series.is_dir():
            return months
        for year_dir in series.iterdir():
            match = _MONTH_DIR.match(year_dir.name)
            if match is None or match.group(1) is None or not year_dir.is_dir():
                continue
            for month_dir in year_dir.iterdir():
                m = _MONTH_DIR.match(month_dir.name)
                if m is None or m.group(2) is None or not month_dir.is_dir():
                    continue
                month = int(m.group(2))
                if 1 <= month <= 12:
                    start = _month_start_ms(int(match.group(1)), month)
                    months.append((start, month_dir))
        months.sort(key=lambda item: item[0])
        return months

    @staticmethod
    def _parts(month_dir: Path) -> list[Path]:
        # hidden files (temporary writes) and `_`-prefixed ones are not data, as for pyarrow
        return sorted(
            p
            for p in month_dir.iterdir()
            if p.suffix == ".parquet" and not p.name.startswith((".", "_")) and p.is_file()
        )

    # -- write ----------------------------------------------------------------------------

    def write(self, exchange_id: str, symbol: str, interval: str, candles: object) -> int:
        """Append candles; returns the rows added (rows already stored are skipped).

        `candles` may be anything an exchange's `get_candles` may return (50 §3) and is
        validated the same way; candles not closed at the wall clock are not stored. A row
        whose open time is stored with different values raises `ExchangeError` ("conflicting
        candle at ...") and nothing is written.
        """
        series = self.path(exchange_id, symbol, interval)
        fresh = self._validate(exchange_id, symbol, interval, candles)
        if len(fresh) == 0:
            return 0
        self._check_symbol(series, symbol)
        # sorted and unique: normalize_response checked it
        new = _Columns(fresh.timestamp, tuple(getattr(fresh, f) for f in VALUE_FIELDS))
        months = _month_starts(new.ts)
        bounds = np.flatnonzero(np.diff(months)) + 1
        starts = [0, *bounds.tolist()]
        stops = [*bounds.tolist(), len(new.ts)]
        pending: list[tuple[Path, _Columns]] = []
        for a, b in zip(starts, stops, strict=True):
            month_dir = series / _month_path(int(months[a]))
            chunk = _Columns(new.ts[a:b], tuple(v[a:b] for v in new.values))
            stored = _read_dir(month_dir, dedupe=True) if month_dir.is_dir() else None
            if stored is not None and len(stored.ts):
                chunk = _without_stored(chunk, stored, exchange_id, symbol, interval)
            if len(chunk.ts):
                pending.append((month_dir, chunk))
        # every month checked before any file is written: a conflict writes nothing
        for month_dir, chunk in pending:
            _write_part(month_dir, chunk, exchange_id, symbol, interval)
        return sum(len(chunk.ts) for _, chunk in pending)

    def _validate(self, exchange_id: str, symbol: str, interval: str, candles: object) -> Candles:
        from ..core.exchange import wall_clock_ms
        from ..runtime import current

        step = INTERVAL_MS[interval]
        now = wall_clock_ms()
        since, limit = 0, (align(now, step) - step) // step + 1
        config = current().config
        try:
            return normalize_response(
                candles,
                exchange_name=exchange_id,
                symbol=symbol,
                interval=interval,
                since=since,
                limit=limit,
                now_ms=now,
                anomaly_factor=config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR,
                min_candles_for_median=config.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN,
            )
        except ExchangeError as exc:
            request = describe_request(exchange_id, symbol, interval, since, limit)
            text = str(exc).removeprefix(request + ": ")
            raise ExchangeError(
                f"candle store {str(self.root)!r}: write({exchange_id!r}, {symbol!r}, "
                f"{interval!r}): {text}"
            ) from None

    def _check_symbol(self, series: Path, symbol: str) -> None:
        """Two symbols with one key (``BTC/USDT`` and ``BTC-USDT``) must not share a series."""
        for _, month_dir in self._month_dirs(series):
            for part in self._parts(month_dir):
                stored = _file_metadata(part).get("symbol")
                if stored is not None and stored != symbol:
                    raise ExchangeError(
                        f"candle store {str(self.root)!r}: {series} holds {stored!r}, "
                        f"not {symbol!r} (both map to the directory {series.parent.name!r})"
                    )
                return

    # -- read -----------------------------------------------------------------------------

    def read(
        self,
        exchange_id: str,
        symbol: str,
        interval: str,
        start: object = None,
        end: object = None,
    ) -> Candles:
        """The stored candles opening in ``[start, end)``, sorted, as read-only `Candles`."""
        series = self.path(exchange_id, symbol, interval)
        lo = None if start is None else to_ms(start, "start")
        hi = None if end is None else to_ms(end, "end")
        columns = self._read_range(series, lo, hi)
        return Candles._wrap(columns.ts, *columns.values)

    def _read_range(self, series: Path, lo: int | None, hi: int | None) -> _Columns:
        chunks: list[_Columns] = []
        for month_start, month_dir in self._month_dirs(series):
            if lo is not None and _next_month_ms(month_start) <= lo:
                continue
            if hi is not None and month_start >= hi:
                break
            chunk = _read_dir(month_dir, dedupe=True)
            if lo is not None or hi is not None:
                a = 0 if lo is None else int(np.searchsorted(chunk.ts, lo, "left"))
                b = len(chunk.ts) if hi is None else int(np.searchsorted(chunk.ts, hi, "left"))
                if a > 0 or b < len(chunk.ts):
                    chunk = _Columns(chunk.ts[a:b], tuple(v[a:b] for v in chunk.values))
            chunks.append(chunk)
        columns = _concat(chunks)
        for array in (columns.ts, *columns.values):
            array.flags.writeable = False
        return columns

    # -- coverage and listing -------------------------------------------------------------

    def coverage(self, exchange_id: str, symbol: str, interval: str) -> Coverage:
        """First and last open time, row count, gaps and duplicates of one series."""
        series = self.path(exchange_id, symbol, interval)
        parts: list[IntArray] = []
        duplicates = 0
        for _, month_dir in self._month_dirs(series):
            ts = np.sort(np.concatenate([np.empty(0, np.int64), *_read_timestamps(month_dir)]))
            if len(ts) > 1:
                repeated = ts[1:] == ts[:-1]
                duplicates += int(repeated.sum())
                ts = ts[np.concatenate(([True], ~repeated))]
            parts.append(ts)
        ts = np.concatenate([np.empty(0, np.int64), *parts])
        if len(ts) == 0:
            return Coverage(exchange_id, symbol, interval, None, None, 0, [], 0)
        return Coverage(
            exchange_id,
            symbol,
            interval,
            int(ts[0]),
            int(ts[-1]),
            len(ts),
            find_gaps(ts, INTERVAL_MS[interval]),
            duplicates,
        )

    def series(self) -> list[SeriesInfo]:
        """Every stored series, sorted by exchange id, symbol and interval.

        Read from the Parquet footers only (fast on a large store); `count` includes any
        duplicated rows, which `coverage` reports exactly.
        """
        found: list[SeriesInfo] = []
        if not self.root.is_dir():
            return found
        for exchange_dir in sorted(self.root.iterdir()):
            if not exchange_dir.is_dir() or not _SAFE_NAME.match(exchange_dir.name):
                continue
            for symbol_dir in sorted(exchange_dir.iterdir()):
                if not symbol_dir.is_dir():
                    continue
                for interval_dir in sorted(symbol_dir.iterdir()):
                    if interval_dir.name not in INTERVAL_MS or not interval_dir.is_dir():
                        continue
                    info = self._series_info(exchange_dir.name, interval_dir)
                    if info is not None:
                        found.append(info)
        found.sort(key=lambda s: (s.exchange_id, s.symbol, INTERVAL_MS[s.interval]))
        return found

    def _series_info(self, exchange_id: str, series: Path) -> SeriesInfo | None:
        symbol: str | None = None
        first: int | None = None
        last: int | None = None
        count = 0
        for _, month_dir in self._month_dirs(series):
            for part in self._parts(month_dir):
                meta = _file_metadata(part)
                symbol = symbol or meta.get("symbol")
                try:
                    lo, hi, rows = int(meta["first"]), int(meta["last"]), int(meta["count"])
                except (KeyError, ValueError):  # a file another tool wrote: read its times
                    ts = _read_timestamps_file(part)
                    if len(ts) == 0:
                        continue
                    lo, hi, rows = int(ts.min()), int(ts.max()), len(ts)
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
                count += rows
        if count == 0:
            return None
        return SeriesInfo(
            exchange_id, symbol or series.parent.name, series.name, first, last, count
        )

    # -- compaction -----------------------------------------------------------------------

    def compact(self, exchange_id: str, symbol: str, interval: str) -> None:
        """Merge each month's parts into one file, dropping duplicated rows.

        Atomic per month: the merged file is written under a temporary name, renamed, and only
        then are the old parts deleted (a crash in between leaves duplicates that reads skip
        and the next `compact` removes). Do not run it while another process writes the same
        series.
        """
        series = self.path(exchange_id, symbol, interval)
        for _, month_dir in self._month_dirs(series):
            for stale in month_dir.glob(f".*{_TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)
            parts = self._parts(month_dir)
            if len(parts) <= 1 and not _has_duplicates(parts):
                continue
            merged = _read_dir(month_dir, dedupe=True)
            if len(merged.ts):
                _write_part(month_dir, merged, exchange_id, symbol, interval)
            for part in parts:
                part.unlink(missing_ok=True)


# -- helpers: time and layout ---------------------------------------------------------------


def _check_interval(interval: str) -> None:
    if interval not in INTERVAL_MS:
        raise ValidationError(f"invalid interval {interval!r}; valid: {', '.join(INTERVAL_MS)}")


def _month_starts(ts: IntArray) -> IntArray:
    """First ms of the UTC month of each timestamp."""
    months = ts.astype("datetime64[ms]").astype("datetime64[M]")
    starts: IntArray = months.astype("datetime64[ms]").astype(np.int64)
    return starts


def _month_start_ms(year: int, month: int) -> int:
    return int(np.datetime64(f"{year:04d}-{month:02d}", "M").astype("datetime64[ms]").astype(int))


def _next_month_ms(month_start: int) -> int:
    month = np.datetime64(month_start, "ms").astype("datetime64[M]") + 1
    return int(month.astype("datetime64[ms]").astype(np.int64))


def _month_path(month_start: int) -> str:
    text = str(np.datetime64(month_start, "ms").astype("datetime64[M]"))  # "2024-01"
    return f"year={text[:4]}/month={text[5:7]}"


def find_gaps(ts: IntArray, step: int) -> list[tuple[int, int]]:
    """Half-open ranges ``[start, end)`` of missing steps between sorted unique times."""
    if len(ts) < 2:
        return []
    jumps = np.flatnonzero(np.diff(ts) != step)
    return [(int(ts[k]) + step, int(ts[k + 1])) for k in jumps.tolist()]


# -- helpers: Parquet files -------------------------------------------------------------------


def _file_metadata(path: Path) -> dict[str, str]:
    """The ``backtest_kit.*`` key-value metadata of a part file (prefix stripped)."""
    _, pq = require_pyarrow()
    try:
        raw = pq.ParquetFile(path, memory_map=True).schema_arrow.metadata or {}
    except Exception as exc:
        raise ExchangeError(f"candle store: cannot read {path}: {exc}") from exc
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = key.decode("utf-8", "replace")
        if name.startswith(META_PREFIX):
            out[name[len(META_PREFIX) :]] = value.decode("utf-8", "replace")
    return out


def _read_table(path: Path, columns: list[str]) -> Any:
    # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset (a tenth of a second)
    _, pq = require_pyarrow()
    try:
        return pq.ParquetFile(path, memory_map=True).read(columns=columns)
    except Exception as exc:
        raise ExchangeError(f"candle store: cannot read {path}: {exc}") from exc


def _read_file(path: Path) -> _Columns:
    table = _read_table(path, list(FIELDS))
    ts = _timestamp_array(table.column("timestamp"), path)
    values = tuple(
        arrow_to_numpy(table.column(f), np.float64, f"{path} column {f!r}") for f in VALUE_FIELDS
    )
    return _Columns(ts, values)


def arrow_to_numpy(column: Any, dtype: type[np.generic], where: str) -> npt.NDArray[Any]:
    """A pyarrow (chunked) column of numbers as a read-only numpy array, without nulls.

    Reads the value buffers directly: pyarrow's own ``to_numpy`` imports pandas on first use,
    which would cost a cold read most of its time.
    """
    pa, _ = require_pyarrow()
    target = pa.from_numpy_dtype(np.dtype(dtype))
    if column.type != target:
        try:
            column = column.cast(target)
        except pa.ArrowInvalid as exc:
            raise ExchangeError(f"candle store: {where} is not {target}: {exc}") from None
    if column.null_count:
        raise ExchangeError(f"candle store: {where} has an empty value")
    size = np.dtype(dtype).itemsize
    chunks = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * size)
        for c in getattr(column, "chunks", [column])
        if len(c)
    ]
    if not chunks:
        return np.empty(0, dtype=dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _timestamp_array(column: Any, path: Path) -> IntArray:
    pa, _ = require_pyarrow()
    if pa.types.is_timestamp(column.type):
        if column.type.unit != "ms":
            column = column.cast(pa.timestamp("ms", tz=column.type.tz))
        column = column.cast(pa.int64())
    array: IntArray = arrow_to_numpy(column, np.int64, f"{path} column 'timestamp'")
    return array


def _read_timestamps_file(path: Path) -> IntArray:
    return _timestamp_array(_read_table(path, ["timestamp"]).column("timestamp"), path)


def _read_timestamps(month_dir: Path) -> Iterator[IntArray]:
    for part in CandleStore._parts(month_dir):
        yield _read_timestamps_file(part)


def _has_duplicates(parts: list[Path]) -> bool:
    if not parts:
        return False
    ts = _read_timestamps_file(parts[0])
    return bool(len(ts) > 1 and (np.diff(ts) <= 0).any())


def _read_dir(month_dir: Path, *, dedupe: bool) -> _Columns:
    """Every row of a month partition, sorted; identical repeats dropped, conflicts raised."""
    chunks = [_read_file(part) for part in CandleStore._parts(month_dir)]
    columns = _concat(chunks)
    ts = columns.ts
    if len(ts) < 2 or bool((ts[1:] > ts[:-1]).all()):
        return columns
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    values = tuple(v[order] for v in columns.values)
    repeated = ts[1:] == ts[:-1]
    if repeated.any():
        for k in np.flatnonzero(repeated).tolist():
            if any(v[k] != v[k + 1] for v in values):
                raise ExchangeError(
                    f"candle store: {month_dir} holds two different candles at {iso(int(ts[k]))}"
                )
        if dedupe:
            keep = np.concatenate(([True], ~repeated))
            ts = ts[keep]
            values = tuple(v[keep] for v in values)
    return _Columns(ts, values)


def _concat(chunks: list[_Columns]) -> _Columns:
    if not chunks:
        return _Columns.empty()
    if len(chunks) == 1:
        return chunks[0]
    return _Columns(
        np.concatenate([c.ts for c in chunks]),
        tuple(np.concatenate([c.values[j] for c in chunks]) for j in range(len(VALUE_FIELDS))),
    )


def _without_stored(
    chunk: _Columns, stored: _Columns, exchange_id: str, symbol: str, interval: str
) -> _Columns:
    """The rows of `chunk` not stored yet; a stored time with other values raises."""
    index = np.searchsorted(stored.ts, chunk.ts)
    index = np.minimum(index, len(stored.ts) - 1)
    known = stored.ts[index] == chunk.ts
    if not known.any():
        return chunk
    rows = np.flatnonzero(known)
    for j, field in enumerate(VALUE_FIELDS):
        differ = chunk.values[j][rows] != stored.values[j][index[rows]]
        if differ.any():
            k = int(rows[int(np.argmax(differ))])
            at = int(index[k])
            new = [float(v[k]) for v in chunk.values]
            old = [float(v[at]) for v in stored.values]
            raise ExchangeError(
                f"conflicting candle at {iso(int(chunk.ts[k]))} for {exchange_id} {symbol} "
                f"{interval}: {field} differs (stored OHLCV {old}, new {new}); the store never "
                "overwrites a candle"
            )
    keep = ~known
    return _Columns(chunk.ts[keep], tuple(v[keep] for v in chunk.values))


def _write_part(
    month_dir: Path, chunk: _Columns, exchange_id: str, symbol: str, interval: str
) -> Path:
    """Write one part file atomically (temporary hidden file, then rename)."""
    pa, pq = require_pyarrow()
    first, last = int(chunk.ts[0]), int(chunk.ts[-1])
    metadata = {
        f"{META_PREFIX}symbol": symbol,
        f"{META_PREFIX}exchange_id": exchange_id,
        f"{META_PREFIX}interval": interval,
        f"{META_PREFIX}first": str(first),
        f"{META_PREFIX}last": str(last),
        f"{META_PREFIX}count": str(len(chunk.ts)),
        f"{META_PREFIX}format": _FORMAT_VERSION,
    }
    schema = pa.schema(
        [pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False)]
        + [pa.field(f, pa.float64(), nullable=False) for f in VALUE_FIELDS],
        metadata=metadata,
    )
    table = pa.Table.from_arrays(
        [pa.array(chunk.ts, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))]
        + [pa.array(v, type=pa.float64()) for v in chunk.values],
        schema=schema,
    )
    month_dir.mkdir(parents=True, exist_ok=True)
    name = f"part-{_stamp(first)}-{_stamp(last)}-{uuid.uuid4().hex[:8]}.parquet"
    final = month_dir / name
    temp = month_dir / f".{name}{_TEMP_SUFFIX}"
    try:
        pq.write_table(table, temp, compression="zstd")
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    return final


def _stamp(ms: int) -> str:
    """``20240101T0002`` for 2024-01-01T00:02Z: part names sort by time."""
    return iso(ms).replace("-", "").replace(":", "")[:13]


__all__ = [
    "CandleStore",
    "Coverage",
    "SeriesInfo",
    "arrow_to_numpy",
    "find_gaps",
    "require_pyarrow",
    "symbol_key",
]
