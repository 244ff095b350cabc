"""`Candle` (one OHLCV bar) and `Candles` (an immutable, numpy-backed columnar batch).

Records only: no I/O, no validation of market rules (the exchange client does that, 50 §3).
`Candles` never sorts or de-duplicates; order is kept as given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, overload

import numpy as np
import numpy.typing as npt

from ..intervals import datetime_to_ms

if TYPE_CHECKING:
    import pandas as pd

FIELDS: Final = ("timestamp", "open", "high", "low", "close", "volume")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; `timestamp` is the bar's open time in int ms UTC."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


def _readonly(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array


class Candles:
    """Immutable columnar batch of candles, oldest first.

    Columns are read-only numpy arrays: ``timestamp`` (int64 ms) and ``open``, ``high``,
    ``low``, ``close``, ``volume`` (float64). Slicing shares memory::

        last = candles[-20:]            # Candles view, no copy
        mean = last.close.mean()
    """

    __slots__ = ("close", "high", "low", "open", "timestamp", "volume")

    timestamp: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __init__(
        self,
        *,
        timestamp: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
    ) -> None:
        columns = (
            np.array(timestamp, dtype=np.int64, copy=True),
            np.array(open, dtype=np.float64, copy=True),
            np.array(high, dtype=np.float64, copy=True),
            np.array(low, dtype=np.float64, copy=True),
            np.array(close, dtype=np.float64, copy=True),
            np.array(volume, dtype=np.float64, copy=True),
        )
        lengths = {len(c) for c in columns}
        if len(lengths) != 1 or any(c.ndim != 1 for c in columns):
            raise ValueError("Candles columns must be one-dimensional and of equal length")
        for name, column in zip(FIELDS, columns, strict=True):
            column.flags.writeable = False
            object.__setattr__(self, name, column)

    @classmethod
    def _wrap(
        cls,
        timestamp: IntArray,
        open: FloatArray,
        high: FloatArray,
        low: FloatArray,
        close: FloatArray,
        volume: FloatArray,
    ) -> Candles:
        """Internal: wrap arrays that are already typed, aligned and read-only (no copy)."""
        self = object.__new__(cls)
        set_ = object.__setattr__
        set_(self, "timestamp", timestamp)
        set_(self, "open", open)
        set_(self, "high", high)
        set_(self, "low", low)
        set_(self, "close", close)
        set_(self, "volume", volume)
        return self

    @classmethod
    def empty(cls) -> Candles:
        """A batch with no candles."""
        return cls(timestamp=[], open=[], high=[], low=[], close=[], volume=[])

    @classmethod
    def from_records(cls, records: Any) -> Candles:
        """Build from a list of dicts, a list of 6-tuples ``(timestamp, o, h, l, c, v)``,
        a list of `Candle`, a numpy structured array or a pandas DataFrame.

        Timestamps may be int ms, datetimes (naive = UTC) or numpy datetime64. No market
        validation happens here; the exchange client checks what a data source returns.
        """
        if isinstance(records, Candles):
            return records
        if isinstance(records, np.ndarray) and records.dtype.names is not None:
            return cls(
                timestamp=_timestamps(records["timestamp"]),
                **{f: records[f] for f in FIELDS[1:]},
            )
        if _is_dataframe(records):
            frame = records
            if "timestamp" in frame.columns:
                ts = frame["timestamp"].to_numpy()
            else:
                ts = frame.index.to_numpy()
            return cls(
                timestamp=_timestamps(ts),
                **{f: frame[f].to_numpy(dtype=np.float64) for f in FIELDS[1:]},
            )
        rows = list(records)
        if not rows:
            return cls.empty()
        first = rows[0]
        if isinstance(first, Candle):
            table = [(c.timestamp, c.open, c.high, c.low, c.close, c.volume) for c in rows]
        elif isinstance(first, Mapping):
            table = [tuple(row[f] for f in FIELDS) for row in rows]
        else:
            table = [tuple(row) for row in rows]
        columns = list(zip(*table, strict=True))
        return cls(
            timestamp=_timestamps(columns[0]),
            open=columns[1],
            high=columns[2],
            low=columns[3],
            close=columns[4],
            volume=columns[5],
        )

    def __len__(self) -> int:
        return len(self.timestamp)

    @overload
    def __getitem__(self, index: int | np.integer[Any]) -> Candle: ...

    @overload
    def __getitem__(self, index: slice | npt.NDArray[np.bool_]) -> Candles: ...

    def __getitem__(
        self, index: int | np.integer[Any] | slice | npt.NDArray[np.bool_]
    ) -> Candle | Candles:
        if isinstance(index, bool | np.bool_):
            raise TypeError("Candles index must be an int, a slice or a boolean mask, not bool")
        if isinstance(index, int | np.integer):
            return Candle(
                int(self.timestamp[index]),
                float(self.open[index]),
                float(self.high[index]),
                float(self.low[index]),
                float(self.close[index]),
                float(self.volume[index]),
            )
        return Candles._wrap(
            _readonly(self.timestamp[index]),
            _readonly(self.open[index]),
            _readonly(self.high[index]),
            _readonly(self.low[index]),
            _readonly(self.close[index]),
            _readonly(self.volume[index]),
        )

    def __iter__(self) -> Iterator[Candle]:
        for row in zip(
            self.timestamp.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            strict=True,
        ):
            yield Candle(*row)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Candles is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candles):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f), getattr(other, f), equal_nan=f != "timestamp")
            for f in FIELDS
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if len(self) == 0:
            return "Candles(0 candles)"
        return f"Candles({len(self)} candles, {int(self.timestamp[0])}..{int(self.timestamp[-1])})"

    def to_dict(self) -> dict[str, list[Any]]:
        """Columnar JSON-ready dict: ``{"timestamp": [...], "open": [...], ...}``."""
        return {f: getattr(self, f).tolist() for f in FIELDS}

    def to_list(self) -> list[dict[str, Any]]:
        """One `Candle` dict per row, oldest first."""
        return [c.to_dict() for c in self]

    def to_pandas(self) -> pd.DataFrame:
        """The six columns as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            from ..errors import BacktestKitError

            raise BacktestKitError(
                'Candles.to_pandas() needs pandas: pip install "backtest-kit[pandas]"'
            ) from None
        return pd.DataFrame({f: getattr(self, f) for f in FIELDS})


def _is_dataframe(value: object) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")


def _timestamps(values: Any) -> IntArray:
    """Normalise timestamps (int ms, datetime, datetime64) to an int64 ms array."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        if getattr(array.dtype, "tz", None) is not None:  # pragma: no cover
            array = np.asarray(values, dtype="datetime64[ns]")
        return array.astype("datetime64[ms]").astype(np.int64)
    if array.dtype == object:
        out = [datetime_to_ms(v) if isinstance(v, datetime) else v for v in array.tolist()]
        return np.asarray(out, dtype=np.int64)
    return array.astype(np.int64)


__all__ = ["FIELDS", "Candle", "Candles"]
