"""Tests for data/sample.py: the built-in deterministic sample market."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from backtest_kit.data.sample import (
    SAMPLE_END,
    SAMPLE_START,
    SAMPLE_SYMBOLS,
    _generate,
    get_sample_candles,
    sample_candles,
    sample_series,
)
from backtest_kit.intervals import CANDLE_INTERVALS, INTERVAL_MS, datetime_to_ms
from backtest_kit.model.candles import FIELDS, Candles

SRC = Path(__file__).resolve().parents[2] / "src"
MINUTE = 60_000
DAY_MINUTES = 1440


def checksum(candles: Candles) -> str:
    digest = hashlib.sha256()
    for field in FIELDS:
        digest.update(np.ascontiguousarray(getattr(candles, field)).tobytes())
    return digest.hexdigest()


def test_span_and_symbols() -> None:
    assert SAMPLE_SYMBOLS == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
    assert datetime_to_ms(datetime(2024, 1, 1, tzinfo=UTC)) == SAMPLE_START
    assert datetime_to_ms(datetime(2026, 1, 1, tzinfo=UTC)) == SAMPLE_END
    series = sample_series("BTCUSDT")
    assert len(series) == (SAMPLE_END - SAMPLE_START) // MINUTE == 1_052_640
    assert series.timestamp[0] == SAMPLE_START
    assert series.timestamp[-1] == SAMPLE_END - MINUTE


@pytest.mark.parametrize(
    ("symbol", "price"),
    [("BTCUSDT", 42_000), ("ETHUSDT", 2_300), ("SOLUSDT", 100), ("BNBUSDT", 310)],
)
def test_realistic_starting_prices(symbol: str, price: float) -> None:
    series = sample_series(symbol)
    assert series.open[0] == pytest.approx(price, rel=0.01)
    # Two years of crypto: big moves, but within an order of magnitude of the start.
    assert price / 10 < series.low.min() < series.high.max() < price * 10


def test_memoised_and_identical_on_regeneration() -> None:
    first = sample_series("ETHUSDT")
    assert sample_series("ETHUSDT") is first
    again = _generate("ETHUSDT")
    assert again is not first
    assert checksum(again) == checksum(first)


def test_identical_in_a_fresh_process() -> None:
    code = (
        "import hashlib, numpy as np\n"
        "from backtest_kit.data.sample import SAMPLE_SYMBOLS, sample_series\n"
        "for s in SAMPLE_SYMBOLS:\n"
        "    c = sample_series(s); d = hashlib.sha256()\n"
        "    for f in ('timestamp', 'open', 'high', 'low', 'close', 'volume'):\n"
        "        d.update(np.ascontiguousarray(getattr(c, f)).tobytes())\n"
        "    print(s, d.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    child = dict(line.split() for line in result.stdout.splitlines())
    assert child == {s: checksum(sample_series(s)) for s in SAMPLE_SYMBOLS}


def test_symbols_differ() -> None:
    closes = [sample_series(s).close for s in SAMPLE_SYMBOLS]
    returns = [np.diff(np.log(c)) for c in closes]
    vols = [float(r.std()) for r in returns]
    assert len({round(v, 6) for v in vols}) == len(SAMPLE_SYMBOLS)
    # SOL is the wildest, BTC calmer than ETH.
    assert vols[2] == max(vols)
    assert vols[0] < vols[1]


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_series_obeys_the_validation_rules(symbol: str) -> None:
    c = sample_series(symbol)
    ts = c.timestamp
    assert ts.dtype == np.int64
    assert np.all(ts % MINUTE == 0)
    assert np.all(np.diff(ts) > 0)
    for field in FIELDS[1:]:
        column = getattr(c, field)
        assert column.dtype == np.float64
        assert len(column) == len(ts)
        assert np.isfinite(column).all(), field
        assert not column.flags.writeable, field
    assert not ts.flags.writeable
    assert (c.low > 0).all()
    assert (c.volume > 0).all()
    assert (c.high >= c.low).all()
    assert (c.high >= np.maximum(c.open, c.close)).all()
    assert (c.low <= np.minimum(c.open, c.close)).all()
    # Continuous trading: every open is the previous close.
    assert np.array_equal(c.open[1:], c.close[:-1])


def test_window_is_the_inclusive_open_time_range() -> None:
    since = SAMPLE_START + 10 * MINUTE
    window = sample_candles("BTCUSDT", "1m", since, 5)
    assert window.timestamp.tolist() == [since + k * MINUTE for k in range(5)]
    # An unaligned `since` starts at the next open time and gets one candle fewer.
    window = sample_candles("BTCUSDT", "1m", since + 1, 5)
    assert window.timestamp.tolist() == [since + k * MINUTE for k in range(1, 5)]
    hours = sample_candles("BTCUSDT", "1h", SAMPLE_START + 30 * MINUTE, 3)
    assert hours.timestamp.tolist() == [SAMPLE_START + 3_600_000, SAMPLE_START + 7_200_000]


def test_window_outside_the_span() -> None:
    assert len(sample_candles("BTCUSDT", "1m", SAMPLE_START - 100 * MINUTE, 50)) == 0
    assert len(sample_candles("BTCUSDT", "1m", SAMPLE_END, 10)) == 0
    assert (
        len(sample_candles("BTCUSDT", "1h", 0, 10**15))
        == len(sample_candles("BTCUSDT", "1h", SAMPLE_START, 731 * 24))
        == 731 * 24
    )
    head = sample_candles("BTCUSDT", "1m", SAMPLE_START - 2 * MINUTE, 5)
    assert head.timestamp.tolist() == [SAMPLE_START + k * MINUTE for k in range(3)]
    tail = sample_candles("BTCUSDT", "5m", SAMPLE_END - 10 * MINUTE, 5)
    assert tail.timestamp.tolist() == [SAMPLE_END - 10 * MINUTE, SAMPLE_END - 5 * MINUTE]


@pytest.mark.parametrize("interval", ["1m", "15m", "4h"])
def test_source_is_a_pure_function_of_time(interval: str) -> None:
    step = INTERVAL_MS[interval]
    base = SAMPLE_START + 400 * 86_400_000
    wide = sample_candles("SOLUSDT", interval, base, 500)
    narrow = sample_candles("SOLUSDT", interval, base + 123 * step, 40)
    late = sample_candles("SOLUSDT", interval, base + 450 * step, 200)
    assert narrow == wide[123:163]
    assert late[:50] == wide[450:]
    assert len(late) == 200


def test_window_is_a_read_only_view() -> None:
    window = sample_candles("ETHUSDT", "1m", SAMPLE_START, 100)
    assert isinstance(window, Candles)
    assert np.shares_memory(window.close, sample_series("ETHUSDT").close)
    with pytest.raises(ValueError):
        window.close[0] = 1.0


@pytest.mark.parametrize("interval", [i for i in CANDLE_INTERVALS if i != "1m"] + ["1d"])
def test_aggregates_are_their_minutes(interval: str) -> None:
    step = INTERVAL_MS[interval]
    width = step // MINUTE
    series = sample_candles("BNBUSDT", interval, SAMPLE_START, 10**9)
    assert len(series) == (SAMPLE_END - SAMPLE_START) // step
    assert np.all(series.timestamp % step == 0)
    for k in (0, 1, len(series) // 2, len(series) - 1):
        candle = series[k]
        minutes = sample_candles("BNBUSDT", "1m", candle.timestamp, width)
        assert len(minutes) == width
        assert candle.open == minutes.open[0]
        assert candle.high == minutes.high.max()
        assert candle.low == minutes.low.min()
        assert candle.close == minutes.close[-1]
        assert candle.volume == pytest.approx(minutes.volume.sum(), rel=1e-12)


def test_only_complete_utc_aligned_buckets() -> None:
    # 3-day buckets are epoch aligned: the first starts on 2024-01-03, and the span's first two
    # days belong to an incomplete bucket that is left out.
    step = INTERVAL_MS["3d"]
    series = sample_candles("BTCUSDT", "3d", 0, 10**9)
    assert series.timestamp[0] == datetime_to_ms(datetime(2024, 1, 3, tzinfo=UTC))
    assert np.all(series.timestamp % step == 0)
    assert series.timestamp[-1] + step <= SAMPLE_END
    minutes = sample_candles("BTCUSDT", "1m", int(series.timestamp[0]), step // MINUTE)
    assert series.open[0] == minutes.open[0]
    assert series.close[0] == minutes.close[-1]


def test_one_hour_candle_equals_its_sixty_minutes() -> None:
    start = datetime_to_ms(datetime(2025, 3, 14, 15, tzinfo=UTC))
    (hour,) = sample_candles("BTCUSDT", "1h", start, 1)
    minutes = sample_candles("BTCUSDT", "1m", start, 60)
    assert hour.timestamp == start
    assert (hour.open, hour.high, hour.low, hour.close) == (
        minutes.open[0],
        minutes.high.max(),
        minutes.low.min(),
        minutes.close[-1],
    )
    assert hour.volume == pytest.approx(minutes.volume.sum(), rel=1e-12)


def test_aggregated_series_is_memoised_and_valid() -> None:
    first = sample_candles("ETHUSDT", "4h", SAMPLE_START, 10)
    again = sample_candles("ETHUSDT", "4h", SAMPLE_START, 10)
    assert np.shares_memory(first.close, again.close)
    c = sample_candles("ETHUSDT", "4h", SAMPLE_START, 10**9)
    assert not c.high.flags.writeable
    assert (c.high >= np.maximum(c.open, c.close)).all()
    assert (c.low <= np.minimum(c.open, c.close)).all()
    assert np.array_equal(c.open[1:], c.close[:-1])


def test_get_sample_candles_takes_an_aware_datetime() -> None:
    since = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    got = get_sample_candles("SOLUSDT", "5m", since, 12)
    assert got == sample_candles("SOLUSDT", "5m", datetime_to_ms(since), 12)
    assert len(got) == 12


def test_errors_name_the_valid_values() -> None:
    with pytest.raises(ValueError, match="BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT"):
        sample_candles("DOGEUSDT", "1m", SAMPLE_START, 1)
    with pytest.raises(ValueError, match="BTCUSDT"):
        sample_series("btcusdt")
    with pytest.raises(ValueError, match="1m, 3m"):
        sample_candles("BTCUSDT", "7m", SAMPLE_START, 1)
    with pytest.raises(ValueError, match="limit"):
        sample_candles("BTCUSDT", "1m", SAMPLE_START, 0)


# -- realism -------------------------------------------------------------------------------


def minute_returns(symbol: str) -> np.ndarray:
    series = sample_series(symbol)
    return np.log(series.close / series.open)


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_volatility_regimes(symbol: str) -> None:
    squared = np.concatenate(([0.0], np.cumsum(minute_returns(symbol) ** 2)))
    # Rolling 1-day realised volatility, sampled every hour.
    ends = np.arange(DAY_MINUTES, len(squared), 60)
    rolling = np.sqrt(squared[ends] - squared[ends - DAY_MINUTES])
    p10, p90 = np.percentile(rolling, [10, 90])
    assert p90 / p10 > 2


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_volume_follows_absolute_returns(symbol: str) -> None:
    moves = np.abs(minute_returns(symbol))
    volume = sample_series(symbol).volume
    assert np.corrcoef(volume, moves)[0, 1] > 0.2


def test_intraday_and_weekly_seasonality() -> None:
    series = sample_series("BTCUSDT")
    moves = np.abs(minute_returns("BTCUSDT")).reshape(-1, DAY_MINUTES)
    us_session = moves[:, 14 * 60 : 16 * 60].mean()
    asia_lull = moves[:, 4 * 60 : 6 * 60].mean()
    assert us_session > 1.3 * asia_lull
    daily_volume = series.volume.reshape(-1, DAY_MINUTES).sum(axis=1)
    weekday = (series.timestamp[::DAY_MINUTES] // 86_400_000 + 3) % 7
    assert daily_volume[weekday < 5].mean() > daily_volume[weekday >= 5].mean()


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_trends_up_and_down(symbol: str) -> None:
    daily_close = sample_series(symbol).close[DAY_MINUTES - 1 :: DAY_MINUTES]
    weekly = np.log(daily_close[7:] / daily_close[:-7])
    assert weekly.max() > 0.08
    assert weekly.min() < -0.08
    # Fat tails: minute returns are far from normal.
    r = minute_returns(symbol)
    kurtosis = float(np.mean((r - r.mean()) ** 4) / r.var() ** 2)
    assert kurtosis > 6
