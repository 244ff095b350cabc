"""Tests for data/store.py: the Parquet candle store on real files in tmp_path."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.data.sample import sample_series
from backtest_kit.data.store import CandleStore, symbol_key
from backtest_kit.intervals import iso

M = 60_000
MARCH = 1_709_251_200_000  # 2024-03-01T00:00Z


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def minutes(start: int, count: int) -> bk.Candles:
    """`count` sample 1m candles of BTCUSDT from `start` (int ms)."""
    series = sample_series("BTCUSDT")
    a = int(np.searchsorted(series.timestamp, start))
    return series[a : a + count]


def parts(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet"))


def test_layout_columns_and_metadata(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = CandleStore(tmp_path)
    candles = minutes(MARCH - 30 * M, 60)  # straddles February and March
    assert store.write("binance", "BTC/USDT:USDT", "1m", candles) == 60
    files = parts(tmp_path)
    relative = [str(p.parent.relative_to(tmp_path)) for p in files]
    assert relative == [
        "binance/BTC-USDT-USDT/1m/year=2024/month=02",
        "binance/BTC-USDT-USDT/1m/year=2024/month=03",
    ]
    schema = pq.read_schema(files[0])
    assert schema.names == ["timestamp", "open", "high", "low", "close", "volume"]
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert all(schema.field(f).type == pa.float64() for f in schema.names[1:])
    assert schema.metadata[b"backtest_kit.symbol"] == b"BTC/USDT:USDT"
    february = pq.read_table(files[0]).column("timestamp").cast(pa.int64()).to_pylist()
    assert february == [MARCH - 30 * M + k * M for k in range(30)]  # sorted, unique


def test_read_returns_the_written_candles_sorted_in_a_half_open_range(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    candles = minutes(MARCH, 3000)
    store.write("binance", "BTC/USDT", "1m", candles[1500:])  # later rows first
    store.write("binance", "BTC/USDT", "1m", candles[:1500])
    assert store.read("binance", "BTC/USDT", "1m") == candles
    window = store.read("binance", "BTC/USDT", "1m", MARCH + 10 * M, "2024-03-01T00:20:00Z")
    assert window == candles[10:20]
    assert not window.close.flags.writeable
    assert len(store.read("binance", "BTC/USDT", "1m", "2030-01-01")) == 0
    assert len(store.read("binance", "ETH/USDT", "1m")) == 0


def test_appending_never_rewrites_stored_files(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    candles = minutes(MARCH, 200)
    store.write("binance", "BTC/USDT", "1m", candles[:100])
    before = {p: p.read_bytes() for p in parts(tmp_path)}
    added = store.write("binance", "BTC/USDT", "1m", candles[50:200])  # 50 already stored
    assert added == 100
    after = parts(tmp_path)
    assert len(after) == 2
    assert all(p.read_bytes() == data for p, data in before.items())
    assert store.read("binance", "BTC/USDT", "1m") == candles
    assert store.write("binance", "BTC/USDT", "1m", candles) == 0
    assert len(parts(tmp_path)) == 2


def test_a_conflicting_candle_raises_and_writes_nothing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    candles = minutes(MARCH, 10)
    store.write("binance", "BTC/USDT", "1m", candles)
    rows = candles.to_list()
    rows[4]["volume"] += 1.0
    new = [*rows, {**rows[-1], "timestamp": rows[-1]["timestamp"] + M}]
    with pytest.raises(bk.ExchangeError, match="conflicting candle at 2024-03-01T00:04:00Z"):
        store.write("binance", "BTC/USDT", "1m", new)
    assert len(parts(tmp_path)) == 1
    assert store.read("binance", "BTC/USDT", "1m") == candles


def test_writes_are_validated_like_get_candles(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    rows = [[MARCH + k * M, 100.0, 101.0, 99.0, 100.5, 1.0] for k in range(5)]
    rows[2][2] = 98.0  # high < low
    with pytest.raises(bk.ExchangeError, match=r"candle\[2\] \(2024-03-01T00:02:00Z\) high"):
        store.write("binance", "BTC/USDT", "1m", rows)
    rows[2][2] = 101.0
    rows[3][0] += 1  # misaligned
    with pytest.raises(bk.ExchangeError, match=r"candle\[3\] .* not aligned to 1m"):
        store.write("binance", "BTC/USDT", "1m", rows)
    rows[3][0] -= 1
    rows.append(list(rows[-1]))
    with pytest.raises(bk.ExchangeError, match=r"candle\[5\] .* duplicate timestamp"):
        store.write("binance", "BTC/USDT", "1m", rows)
    assert parts(tmp_path) == []
    with pytest.raises(bk.ValidationError, match="invalid interval '7m'"):
        store.write("binance", "BTC/USDT", "7m", rows[:5])
    with pytest.raises(bk.ValidationError, match=r"exchange_id '\.\./x'"):
        store.write("../x", "BTC/USDT", "1m", rows[:5])


def test_candles_not_closed_at_the_wall_clock_are_not_stored(tmp_path: Path) -> None:
    from backtest_kit.core.exchange import wall_clock_ms

    now = wall_clock_ms()
    current = now - now % M  # the minute still forming
    rows = [[current + k * M, 100.0, 101.0, 99.0, 100.5, 1.0] for k in range(-3, 3)]
    store = CandleStore(tmp_path)
    assert store.write("binance", "BTC/USDT", "1m", rows) == 3
    stored = store.read("binance", "BTC/USDT", "1m")
    assert stored.timestamp.tolist() == [current - 3 * M, current - 2 * M, current - M]


def test_coverage_reports_gaps_and_duplicates_and_compact_removes_them(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    candles = minutes(MARCH, 100)
    keep = np.ones(100, bool)
    keep[10:13] = False  # a gap of three minutes
    keep[50] = False  # and one of one minute
    store.write("binance", "BTC/USDT", "1m", candles[keep])
    coverage = store.coverage("binance", "BTC/USDT", "1m")
    assert (coverage.first, coverage.last, coverage.count) == (MARCH, MARCH + 99 * M, 96)
    assert coverage.gaps == [(MARCH + 10 * M, MARCH + 13 * M), (MARCH + 50 * M, MARCH + 51 * M)]
    assert coverage.missing == 4
    assert coverage.duplicates == 0

    # a part file copied by hand (or a crash inside compact): rows stored twice
    original = parts(tmp_path)[0]
    shutil.copy(original, original.with_name("part-copy.parquet"))
    coverage = store.coverage("binance", "BTC/USDT", "1m")
    assert (coverage.count, coverage.duplicates) == (96, 96)
    assert store.read("binance", "BTC/USDT", "1m") == candles[keep]  # read skips the repeats

    store.write("binance", "BTC/USDT", "1m", candles[10:13])
    assert len(parts(tmp_path)) == 3
    store.compact("binance", "BTC/USDT", "1m")
    files = parts(tmp_path)
    assert len(files) == 1 and files[0].name.startswith("part-20240301T0000-20240301T0139")
    after = store.coverage("binance", "BTC/USDT", "1m")
    assert (after.count, after.duplicates, after.missing) == (99, 0, 1)
    keep[10:13] = True
    assert store.read("binance", "BTC/USDT", "1m") == candles[keep]


def test_readers_ignore_temporary_files_and_compact_deletes_them(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1m", minutes(MARCH, 10))
    month = parts(tmp_path)[0].parent
    (month / ".part-interrupted.parquet.tmp").write_bytes(b"half a file")
    assert len(store.read("binance", "BTC/USDT", "1m")) == 10
    store.compact("binance", "BTC/USDT", "1m")
    assert sorted(p.name for p in month.iterdir()) == [parts(tmp_path)[0].name]


def test_conflicting_rows_stored_twice_are_reported(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1m", minutes(MARCH, 5))
    original = parts(tmp_path)[0]
    table = pq.read_table(original)
    changed = table.set_column(5, "volume", [[9.0] * 5])
    pq.write_table(changed, original.with_name("part-other.parquet"))
    with pytest.raises(bk.ExchangeError, match="two different candles at 2024-03-01T00:00:00Z"):
        store.read("binance", "BTC/USDT", "1m")


def test_series_lists_every_stored_series(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    assert store.series() == []
    store.write("binance", "BTC/USDT", "1m", minutes(MARCH, 90))
    store.write("binance", "BTC/USDT", "1m", minutes(MARCH + 200 * M, 10))
    store.write("binance", "ETH/USDT", "1h", [[MARCH, 3000.0, 3010.0, 2990.0, 3005.0, 2.5]])
    store.write("bybit", "BTC/USDT", "5m", [[MARCH, 3000.0, 3010.0, 2990.0, 3005.0, 2.5]])
    listed = [s.to_dict() for s in store.series()]
    assert listed == [
        {
            "exchange_id": "binance",
            "symbol": "BTC/USDT",
            "interval": "1m",
            "first": MARCH,
            "last": MARCH + 209 * M,
            "count": 100,
        },
        {
            "exchange_id": "binance",
            "symbol": "ETH/USDT",
            "interval": "1h",
            "first": MARCH,
            "last": MARCH,
            "count": 1,
        },
        {
            "exchange_id": "bybit",
            "symbol": "BTC/USDT",
            "interval": "5m",
            "first": MARCH,
            "last": MARCH,
            "count": 1,
        },
    ]


def test_two_symbols_with_one_directory_name_do_not_mix(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1m", minutes(MARCH, 5))
    assert symbol_key("BTC/USDT") == symbol_key("BTC-USDT") == "BTC-USDT"
    with pytest.raises(bk.ExchangeError, match="holds 'BTC/USDT', not 'BTC-USDT'"):
        store.write("binance", "BTC-USDT", "1m", minutes(MARCH + 5 * M, 5))


def test_pandas_polars_and_duckdb_read_a_series_as_is(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    store = CandleStore(tmp_path)
    candles = minutes(MARCH - 60 * M, 120)  # two months
    store.write("binance", "BTC/USDT", "1m", candles)
    series = tmp_path / "binance" / "BTC-USDT" / "1m"
    expected_ts = candles.timestamp.tolist()

    frame = pd.read_parquet(series).sort_values("timestamp")
    assert frame.columns[:6].tolist() == ["timestamp", "open", "high", "low", "close", "volume"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    epoch = pd.Timestamp(0, tz="UTC")
    assert ((frame["timestamp"] - epoch) // pd.Timedelta(milliseconds=1)).tolist() == expected_ts
    assert frame["close"].tolist() == candles.close.tolist()
    assert sorted(frame["month"].astype(int).unique().tolist()) == [2, 3]

    lazy = pl.scan_parquet(str(series) + "/**/*.parquet", hive_partitioning=True)
    polars_frame = lazy.sort("timestamp").collect()
    assert polars_frame["close"].to_list() == candles.close.tolist()
    assert polars_frame["timestamp"].dt.epoch("ms").to_list() == expected_ts
    assert sorted(polars_frame["month"].unique().to_list()) == [2, 3]

    query = (
        f"SELECT epoch_ms(timestamp) AS t, close, year, month FROM read_parquet("
        f"'{series}/**/*.parquet', hive_partitioning = true) ORDER BY timestamp"
    )
    rows = duckdb.sql(query).fetchall()
    assert [r[0] for r in rows] == expected_ts
    assert [r[1] for r in rows] == candles.close.tolist()
    assert {(int(r[2]), int(r[3])) for r in rows} == {(2024, 2), (2024, 3)}


def test_a_missing_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(bk.BacktestKitError, match=r'pip install "backtest-kit\[data\]"'):
        CandleStore(tmp_path).write("binance", "BTC/USDT", "1m", minutes(MARCH, 5))


def test_a_year_of_minutes_round_trips(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    year = minutes(1_704_067_200_000, 366 * 1440)  # 2024, a leap year
    assert store.write("sample", "BTCUSDT", "1m", year) == len(year)
    assert len(parts(tmp_path)) == 12
    assert store.read("sample", "BTCUSDT", "1m") == year
    coverage = store.coverage("sample", "BTCUSDT", "1m")
    assert (iso(coverage.first or 0), iso(coverage.last or 0)) == (
        "2024-01-01T00:00:00Z",
        "2024-12-31T23:59:00Z",
    )
    assert coverage.gaps == []
