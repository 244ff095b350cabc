"""Tests for data/sources.py: exchanges from the candle store, DataFrames and CSV files."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtest_kit as bk
from backtest_kit.data.sample import sample_candles, sample_series
from backtest_kit.data.sources import aggregate
from backtest_kit.demo import trend_follow
from backtest_kit.intervals import INTERVAL_MS, ms_to_datetime

M = 60_000
JAN = 1_704_067_200_000  # 2024-01-01T00:00Z
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def sample_minutes(start: int, count: int) -> bk.Candles:
    series = sample_series("BTCUSDT")
    a = int(np.searchsorted(series.timestamp, start))
    return series[a : a + count]


def ask(schema: Any, symbol: str, interval: str, since: int, limit: int) -> bk.Candles:
    """One `get_candles` call of a registered exchange, as the exchange client makes it."""
    return bk.Candles.from_records(
        schema.get_candles(symbol, interval, ms_to_datetime(since), limit)
    )


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 days of sample BTCUSDT: 1m only under 'minutes'; 1m, 15m and 1h under 'full'."""
    root = tmp_path_factory.mktemp("store")
    bk.reset()
    store = bk.data.CandleStore(root)
    days = 20 * 1440
    store.write("minutes", "BTCUSDT", "1m", sample_minutes(JAN, days))
    store.write("full", "BTCUSDT", "1m", sample_minutes(JAN, days))
    for interval in ("15m", "1h"):
        count = days * M // INTERVAL_MS[interval]
        store.write("full", "BTCUSDT", interval, sample_candles("BTCUSDT", interval, JAN, count))
    return root


# -- the store exchange -------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "1d"])
def test_aggregates_from_1m_equal_the_coarser_series(sample_store: Path, interval: str) -> None:
    minutes = bk.data.add_store_exchange("minutes", sample_store, "minutes")
    step = INTERVAL_MS[interval]
    count = 20 * 1440 * M // step
    expected = sample_candles("BTCUSDT", interval, JAN, count)
    assert ask(minutes, "BTCUSDT", interval, JAN, count) == expected  # bit for bit
    # an unaligned window: the buckets opening inside it only
    since = JAN + 7 * M
    first = -(-since // step) * step
    last = since + 4 * step
    expected = sample_candles("BTCUSDT", interval, first, (last - last % step - first) // step + 1)
    assert ask(minutes, "BTCUSDT", interval, since, 5) == expected
    assert len(expected) == 4


def test_stored_coarser_series_are_served_as_stored(sample_store: Path) -> None:
    full = bk.data.add_store_exchange("full", sample_store, "full")
    minutes = bk.data.add_store_exchange("minutes", sample_store, "minutes")
    for interval in ("15m", "1h"):
        stored = bk.data.CandleStore(sample_store).read("full", "BTCUSDT", interval)
        assert ask(full, "BTCUSDT", interval, JAN, len(stored)) == stored
        # the check the issue asks for: aggregating the 1m candles gives the stored series
        assert ask(minutes, "BTCUSDT", interval, JAN, len(stored)) == stored


def test_a_stored_coarser_series_wins_over_the_aggregate(tmp_path: Path) -> None:
    store = bk.data.CandleStore(tmp_path)
    store.write("x", "BTCUSDT", "1m", sample_minutes(JAN, 180))
    hours = sample_candles("BTCUSDT", "1h", JAN, 3).to_list()
    hours[1]["volume"] *= 2  # not what the minutes add up to
    store.write("x", "BTCUSDT", "1h", hours)
    schema = bk.data.add_store_exchange("x", tmp_path, "x")
    assert ask(schema, "BTCUSDT", "1h", JAN, 3).to_list() == hours
    assert ask(schema, "BTCUSDT", "30m", JAN, 6) == sample_candles("BTCUSDT", "30m", JAN, 6)


def test_incomplete_buckets_are_not_aggregated(tmp_path: Path) -> None:
    minutes = sample_minutes(JAN, 240)
    keep = np.ones(240, bool)
    keep[75] = False  # one minute of the second hour is missing
    bk.data.CandleStore(tmp_path).write("x", "BTCUSDT", "1m", minutes[keep])
    schema = bk.data.add_store_exchange("x", tmp_path, "x")
    hours = ask(schema, "BTCUSDT", "1h", JAN, 4)
    assert hours.timestamp.tolist() == [JAN, JAN + 120 * M, JAN + 180 * M]
    assert hours == sample_candles("BTCUSDT", "1h", JAN, 4)[np.array([True, False, True, True])]


def test_aggregate_takes_first_open_extremes_last_close_and_summed_volume() -> None:
    rows = [
        [JAN + 0 * M, 10.0, 12.0, 9.0, 11.0, 1.0],
        [JAN + 1 * M, 11.0, 15.0, 10.0, 14.0, 2.0],
        [JAN + 2 * M, 14.0, 14.5, 8.0, 9.0, 3.5],
        [JAN + 3 * M, 9.0, 9.5, 8.5, 9.2, 1.0],  # a bucket of 3m with one candle: incomplete
    ]
    three = aggregate(bk.Candles.from_records(rows), 3 * M, M)
    assert three.to_list() == [
        {"timestamp": JAN, "open": 10.0, "high": 15.0, "low": 8.0, "close": 9.0, "volume": 6.5}
    ]


def test_errors_name_what_is_missing(tmp_path: Path) -> None:
    store = bk.data.CandleStore(tmp_path)
    store.write("x", "BTC/USDT", "1h", sample_candles("BTCUSDT", "1h", JAN, 5))
    with pytest.raises(bk.ExchangeError, match=r"no series of exchange id 'y' \(it holds: x\)"):
        bk.data.add_store_exchange("y", tmp_path, "y")
    schema = bk.data.add_store_exchange("x", tmp_path, "x")
    with pytest.raises(bk.ExchangeError, match=r"no 'ETH/USDT' series .*stored symbols: BTC/USDT"):
        ask(schema, "ETH/USDT", "1h", JAN, 5)
    with pytest.raises(bk.ExchangeError, match=r"no 1m candles and no finer series .*stored: 1h"):
        ask(schema, "BTC/USDT", "1m", JAN, 5)
    # five hours stored: one complete 4h bucket, two complete 2h ones
    assert ask(schema, "BTC/USDT", "4h", JAN, 2).timestamp.tolist() == [JAN]
    assert ask(schema, "BTC/USDT", "2h", JAN, 3).timestamp.tolist() == [JAN, JAN + 7_200_000]


def fingerprint(results: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r.action,
            r.signal.position,
            r.signal.price_open,
            r.signal.pending_at,
            getattr(r, "close_reason", None),
            r.close_timestamp,
            r.pnl.pnl_percentage if hasattr(r, "pnl") else None,
        )
        for r in results
    ]


def run_demo(exchange: str, start: str, end: str) -> list[Any]:
    if "trend-follow" not in [s.strategy_name for s in bk.list_strategies()]:
        bk.add_strategy("trend-follow", "15m", trend_follow)
    frame = f"{exchange}-frame"
    bk.add_frame(frame, "1m", start, end)
    return bk.Backtest.run_sync(
        "BTCUSDT", strategy_name="trend-follow", exchange_name=exchange, frame_name=frame
    )


def test_a_backtest_on_the_store_equals_the_one_on_the_sample_market(sample_store: Path) -> None:
    bk.data.add_sample_exchange("sample")
    bk.data.add_store_exchange("store", sample_store, "minutes")
    on_sample = run_demo("sample", "2024-01-08", "2024-01-19T23:59")
    on_store = run_demo("store", "2024-01-08", "2024-01-19T23:59")
    assert len(on_sample) > 3
    assert fingerprint(on_store) == fingerprint(on_sample)


# -- DataFrames -----------------------------------------------------------------------------------


def frame_of(candles: bk.Candles) -> pd.DataFrame:
    return candles.to_pandas()


def test_frames_with_every_time_form_give_the_same_candles() -> None:
    candles = sample_minutes(JAN, 300)
    base = frame_of(candles)
    stamps = pd.to_datetime(base["timestamp"], unit="ms")
    forms = {
        "int": base,
        "iso": base.assign(timestamp=stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
        "iso-offset": base.assign(timestamp=stamps.dt.strftime("%Y-%m-%d %H:%M:%S+00:00")),
        "naive": base.assign(timestamp=stamps),
        "utc": base.assign(timestamp=stamps.dt.tz_localize("UTC")),
        "index": base.drop(columns="timestamp").set_index(stamps.rename(None)),
        "Upper": base.rename(columns=str.title),
    }
    for name, frame in forms.items():
        bk.reset()
        schema = bk.data.add_frame_exchange("frames", {"BTCUSDT": frame})
        assert ask(schema, "BTCUSDT", "1m", JAN, 300) == candles, name
        assert ask(schema, "BTCUSDT", "1h", JAN, 5) == sample_candles("BTCUSDT", "1h", JAN, 5)


def test_a_backtest_on_frames_equals_the_one_on_the_sample_market() -> None:
    bk.data.add_sample_exchange("sample")
    frame = frame_of(sample_minutes(JAN, 12 * 1440))
    bk.data.add_frame_exchange("frames", {"BTCUSDT": frame})
    on_sample = run_demo("sample", "2024-01-08", "2024-01-11T23:59")
    on_frames = run_demo("frames", "2024-01-08", "2024-01-11T23:59")
    assert fingerprint(on_frames) == fingerprint(on_sample)


def bad_frame_error(frame: pd.DataFrame) -> str:
    with pytest.raises(bk.ExchangeError) as info:
        bk.data.add_frame_exchange("frames", {"BTCUSDT": frame})
    assert "frames" not in [e.exchange_name for e in bk.list_exchanges()]
    return str(info.value)


def test_frame_errors_name_the_symbol_the_column_and_the_row() -> None:
    base = frame_of(sample_minutes(JAN, 10))
    text = bad_frame_error(base.drop(columns="volume"))
    assert text.startswith("frame 'BTCUSDT': missing column 'volume' (columns: 'timestamp'")

    text = bad_frame_error(base.drop(columns="timestamp"))
    assert "missing column 'timestamp' (or a DatetimeIndex)" in text

    iso = pd.to_datetime(base["timestamp"], unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S")
    garbled = iso.copy()
    garbled[4] = "2024-01-01 oops"
    text = bad_frame_error(base.assign(timestamp=garbled))
    assert text == (
        "frame 'BTCUSDT': column 'timestamp', row 4: cannot read '2024-01-01 oops' as an "
        "ISO-8601 time"
    )

    shifted = iso + "+00:00"
    shifted[6] = "2024-01-01T02:06:00+02:00"
    text = bad_frame_error(base.assign(timestamp=shifted))
    assert text == (
        "frame 'BTCUSDT': column 'timestamp', row 6: '2024-01-01T02:06:00+02:00' has a "
        "non-UTC offset +02:00"
    )

    paris = pd.to_datetime(base["timestamp"], unit="ms").dt.tz_localize("Europe/Paris")
    text = bad_frame_error(base.assign(timestamp=paris))
    assert text == (
        "frame 'BTCUSDT': column 'timestamp', row 0: time zone Europe/Paris is not UTC "
        "(convert the times to UTC)"
    )

    text = bad_frame_error(base.assign(timestamp=base["timestamp"] // 1000))
    assert "row 9: 1704067740 looks like seconds; times must be int milliseconds" in text

    broken = base.copy()
    broken.loc[3, "high"] = broken.loc[3, "low"] - 1
    text = bad_frame_error(broken)
    assert text.startswith("frame 'BTCUSDT': row 3 (2024-01-01T00:03:00Z) high ")

    text = bad_frame_error(
        base.assign(open=base["open"].astype(object).where(base.index != 7, "x"))
    )
    assert text == "frame 'BTCUSDT': column 'open', row 7: must be a number, got str 'x'"

    text = bad_frame_error(base.assign(timestamp=base["timestamp"] + 30_000 * (base.index % 2)))
    assert "cannot tell the candle interval: the smallest step between two rows is 30000 ms" in (
        text
    )


def test_frames_must_be_a_dict_of_dataframes() -> None:
    with pytest.raises(bk.ValidationError, match="non-empty dict"):
        bk.data.add_frame_exchange("frames", {})
    with pytest.raises(bk.ValidationError, match="must be a pandas DataFrame, got list"):
        bk.data.add_frame_exchange("frames", {"BTCUSDT": [[JAN, 1, 1, 1, 1, 1]]})


def test_a_frame_of_hours_serves_hours_and_coarser_but_not_minutes() -> None:
    hours = sample_candles("BTCUSDT", "1h", JAN, 48)
    schema = bk.data.add_frame_exchange("frames", {"ETHUSDT": frame_of(hours)})
    assert ask(schema, "ETHUSDT", "1h", JAN, 48) == hours
    four = ask(schema, "ETHUSDT", "4h", JAN, 12)
    expected = sample_candles("BTCUSDT", "4h", JAN, 12)
    for field in ("timestamp", "open", "high", "low", "close"):
        assert np.array_equal(getattr(four, field), getattr(expected, field))
    assert np.allclose(four.volume, expected.volume, rtol=1e-12)  # 4 sums of 60 vs 240 values
    with pytest.raises(bk.ExchangeError, match="no 1m candles and no finer series"):
        ask(schema, "ETHUSDT", "1m", JAN, 10)
    with pytest.raises(bk.ExchangeError, match=r"no candles for 'BTCUSDT' \(symbols: ETHUSDT\)"):
        ask(schema, "BTCUSDT", "1h", JAN, 10)


# -- CSV files ------------------------------------------------------------------------------------


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def csv_rows(candles: bk.Candles, time: Any = None) -> list[str]:
    def text(t: int) -> str:
        return str(t) if time is None else time(t)

    return [
        f"{text(c.timestamp)},{c.open!r},{c.high!r},{c.low!r},{c.close!r},{c.volume!r}"
        for c in candles
    ]


def iso_z(t: int) -> str:
    return datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_csv_files_with_int_or_iso_times_give_the_candles(tmp_path: Path) -> None:
    candles = sample_minutes(JAN, 240)
    a = write_csv(tmp_path / "a.csv", "timestamp,open,high,low,close,volume", csv_rows(candles))
    b = write_csv(
        tmp_path / "b.csv", "Timestamp,Open,High,Low,Close,Volume", csv_rows(candles, iso_z)
    )
    schema = bk.data.add_csv_exchange("csv", {"BTCUSDT": a, "ETHUSDT": str(b)})
    assert ask(schema, "BTCUSDT", "1m", JAN, 240) == candles
    assert ask(schema, "ETHUSDT", "1m", JAN, 240) == candles
    assert ask(schema, "ETHUSDT", "1h", JAN, 4) == sample_candles("BTCUSDT", "1h", JAN, 4)
    assert "CSV files: BTCUSDT 1m, ETHUSDT 1m" in schema.note


def csv_error(path: Path) -> str:
    with pytest.raises(bk.ExchangeError) as info:
        bk.data.add_csv_exchange("csv", {"BTCUSDT": path})
    return str(info.value)


def test_csv_errors_name_the_file_the_column_the_row_and_the_line(tmp_path: Path) -> None:
    candles = sample_minutes(JAN, 5)
    header = "timestamp,open,high,low,close,volume"
    path = write_csv(tmp_path / "x.csv", "timestamp,open,high,low,close", ["1,2,3,4,5"])
    assert csv_error(path) == (
        f"file {str(path)!r}: missing column 'volume' "
        "(columns: 'timestamp', 'open', 'high', 'low', 'close')"
    )
    rows = csv_rows(candles, iso_z)
    rows[2] = rows[2].replace("Z,", "+05:30,", 1)
    assert csv_error(write_csv(path, header, rows)) == (
        f"file {str(path)!r}: column 'timestamp', row 2 (line 4): '2024-01-01T00:02:00+05:30' "
        "has a non-UTC offset +05:30"
    )
    rows = csv_rows(candles, iso_z)
    rows[3] = "yesterday" + rows[3][20:]
    assert csv_error(write_csv(path, header, rows)) == (
        f"file {str(path)!r}: column 'timestamp', row 3 (line 5): cannot read 'yesterday' as "
        "an ISO-8601 time"
    )
    rows = csv_rows(candles)
    fields = rows[1].split(",")
    fields[4] = "n/a"
    rows[1] = ",".join(fields)
    assert csv_error(write_csv(path, header, rows)) == (
        f"file {str(path)!r}: column 'close', row 1 (line 3): 'n/a' is not a number"
    )
    rows = csv_rows(candles)
    rows[4] = rows[0]
    assert csv_error(write_csv(path, header, rows)).startswith(
        f"file {str(path)!r}: row 4 (line 6) (2024-01-01T00:00:00Z) not sorted"
    )
    missing = tmp_path / "nope.csv"
    assert csv_error(missing).startswith(f"file {str(missing)!r}: cannot read it:")


# -- command line ---------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "backtest_kit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def summary(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| "):
            key, value = (cell.strip() for cell in line.strip("|").split("|"))
            rows[key] = value
    return rows


def test_demo_and_backtest_run_on_the_store(sample_store: Path, tmp_path: Path) -> None:
    demo = run_cli(
        "demo", "--store", str(sample_store), "--exchange-id", "minutes", "--days", "5",
        "--no-progress",
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert (
        f"Backtesting 'trend-follow' on BTCUSDT of minutes from the store {sample_store}, "
        "2024-01-16T00:00 .. 2024-01-20T23:59 UTC (5 days of 1m candles)"
    ) in demo.stdout
    on_store = summary(demo.stdout)
    assert int(on_store["Trades"]) >= 0 and on_store["Total PnL"].endswith("%")

    strategy = tmp_path / "on_store.py"
    strategy.write_text(
        "import backtest_kit as bk\n"
        "from backtest_kit.demo import trend_follow\n"
        f"bk.data.add_store_exchange('store', {str(sample_store)!r}, 'minutes')\n"
        "bk.add_strategy('trend-follow', '15m', trend_follow)\n"
        "bk.add_frame('five', '1m', '2024-01-16', '2024-01-20T23:59')\n",
        encoding="utf-8",
    )
    backtest = run_cli(
        "backtest", str(strategy), "--symbol", "BTCUSDT", "--strategy", "trend-follow",
        "--exchange", "store", "--frame", "five", "--no-progress",
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    assert summary(backtest.stdout) == on_store


def test_demo_on_the_store_reports_usage_and_missing_data(sample_store: Path) -> None:
    alone = run_cli("demo", "--store", str(sample_store))
    assert alone.returncode == 2
    assert "--store and --exchange-id go together" in alone.stderr
    wrong = run_cli("demo", "--store", str(sample_store), "--exchange-id", "nope")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(f"error: the candle store {str(sample_store)!r} has no 1m")
    symbol = run_cli(
        "demo", "--store", str(sample_store), "--exchange-id", "minutes", "--symbol", "ETH"
    )
    assert symbol.returncode == 1
    assert "error: --symbol 'ETH' is not in the store for 'minutes' (BTCUSDT)" in symbol.stderr
