"""The built-in sample market: two years of synthetic, deterministic 1-minute candles for a few
symbols, so that the demo, the tests and the benchmarks run offline.

Owns the price model (trend and volatility regimes, volatility clustering, UTC intraday and
weekday seasonality, jumps, volume), the memoised 1m series and their UTC-aligned aggregates, and
the `get_candles`-shaped accessors over them. Must not do I/O, read the clock or depend on the
request: every candle is a pure function of (symbol, open time) (50-exchange §3), identical bit
for bit in every process (seeded from the symbol name, never from `hash()`). It is a fixture,
not market data: it says nothing about a strategy's real-world edge.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

from ..intervals import DAY_MS, INTERVAL_MS, MINUTE_MS, datetime_to_ms
from ..model.candles import Candles

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SAMPLE_START: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SAMPLE_END: Final = 1_767_225_600_000  # 2026-01-01T00:00:00Z, exclusive

_MINUTES: Final = (SAMPLE_END - SAMPLE_START) // MINUTE_MS  # 1_052_640
_HOURS: Final = _MINUTES // 60
_DAYS: Final = _MINUTES // 1440
_MINUTES_PER_YEAR: Final = 525_960.0  # 365.25 days: crypto trades around the clock
# Salted into every seed: the symbol name alone would give BTCUSDT the stream of any other tool
# that seeds PCG64 with crc32("BTCUSDT"). Bump it when the model changes.
_MODEL_VERSION: Final = b"backtest-kit/sample/v1"


@dataclass(frozen=True, slots=True)
class _Profile:
    start_price: float
    anchor_end_price: float  # the long-run level the trends wander around, reached at SAMPLE_END
    annual_vol: float
    usd_volume_per_minute: float
    volume_decimals: int  # the exchange's lot size, 10**-volume_decimals


_PROFILES: Final[dict[str, _Profile]] = {
    "BTCUSDT": _Profile(42_000.0, 90_000.0, 0.50, 1_500_000.0, 5),
    "ETHUSDT": _Profile(2_300.0, 3_000.0, 0.65, 800_000.0, 4),
    "SOLUSDT": _Profile(100.0, 130.0, 0.90, 400_000.0, 3),
    "BNBUSDT": _Profile(310.0, 800.0, 0.55, 120_000.0, 3),
}

SAMPLE_SYMBOLS: Final[tuple[str, ...]] = tuple(_PROFILES)

_PRICE_DECIMALS: Final = 2  # tick 0.01, as on Binance for all four symbols

# Volatility regimes alternate calm / stormy; durations in hours are min + exponential(mean - min).
_CALM_HOURS: Final = (12, 168.0)
_STORMY_HOURS: Final = (4, 48.0)
_CALM_LEVEL: Final = (math.log(0.6), 0.15)  # (mean, sd) of the log multiplier
_STORMY_LEVEL: Final = (math.log(1.5), 0.2)
# Volatility clustering inside a regime: hourly AR(1) log-volatility, applied as a finite
# convolution so it stays vectorised (0.95**300 is negligible).
_CLUSTER_PHI: Final = 0.95
_CLUSTER_SD: Final = 0.3
_CLUSTER_TAPS: Final = 300
_WEEKEND_VOL: Final = 0.75
# Trend regimes: min 2 days + exponential, mean 10 days; their drift is annualised N(0, scale·vol).
_TREND_HOURS: Final = (48, 240.0)
_TREND_SCALE: Final = 3.0
_TREND_REVERSION: Final = 0.08  # share of the gap to the anchor closed by each trend regime
_JUMPS_PER_DAY: Final = 0.4
# |jump| = min + exponential(mean), in the symbol's average minute sigma: not in the local one,
# or jumps in an already volatile hour would compound into implausible minutes.
_JUMP_SIGMAS: Final = (4.0, 10.0)
_JUMP_DOWN_SHARE: Final = 0.6
_WICK: Final = 0.6  # mean wick beyond the body, in local minute sigmas
_VOLUME_NOISE: Final = 0.45  # sd of the log-normal volume noise
_VOLUME_SHOCK: Final = 0.65  # weight of |standardised return| in volume (rest is flat)


def _intraday_profiles() -> tuple[FloatArray, FloatArray]:
    """Per minute of the UTC day: (volatility multiplier, volume multiplier).

    Bumps at the Asian, European and US sessions and a quiet early-Asia / late-US lull, plus a
    busier first minute of every hour (bots trading on hourly closes). The volatility profile has
    a mean square of 1, so it redistributes variance over the day without changing it.
    """
    hour = np.arange(1440, dtype=np.float64) / 60.0

    def bump(centre: float, width: float) -> FloatArray:
        distance = np.abs(hour - centre)
        distance = np.minimum(distance, 24.0 - distance)
        result: FloatArray = np.exp(-0.5 * (distance / width) ** 2)
        return result

    vol = 0.7 + 0.2 * bump(1.0, 1.5) + 0.3 * bump(8.0, 1.5) + 0.6 * bump(14.5, 1.8)
    vol += 0.2 * bump(20.0, 2.0)
    vol[::60] *= 1.25
    vol /= np.sqrt(np.mean(vol**2))
    volume = vol**1.5
    volume /= volume.mean()
    return vol, volume


_VOL_PROFILE, _VOLUME_PROFILE = _intraday_profiles()


def _trim(lengths: IntArray, total: int) -> IntArray:
    """Keep the first lengths that cover `total`, the last one cut to end exactly there."""
    ends = np.cumsum(lengths)
    count = int(np.searchsorted(ends, total)) + 1
    kept = lengths[:count].copy()
    kept[-1] -= int(ends[count - 1]) - total
    return kept


def _durations(rng: np.random.Generator, bounds: tuple[int, float], count: int) -> IntArray:
    minimum, mean = bounds
    return minimum + np.rint(rng.exponential(mean - minimum, count)).astype(np.int64)


def _volatility_hourly(rng: np.random.Generator) -> FloatArray:
    """Hourly volatility multiplier: Markov-switching calm/stormy regimes x clustering x weekday."""
    # Enough regime pairs to cover the span even if every regime had its minimum length.
    pairs = _HOURS // (_CALM_HOURS[0] + _STORMY_HOURS[0]) + 1
    lengths = np.empty(2 * pairs, dtype=np.int64)
    levels = np.empty(2 * pairs)
    calm, stormy = slice(0, None, 2), slice(1, None, 2)
    if rng.integers(2):
        calm, stormy = stormy, calm
    lengths[calm] = _durations(rng, _CALM_HOURS, pairs)
    lengths[stormy] = _durations(rng, _STORMY_HOURS, pairs)
    levels[calm] = rng.normal(*_CALM_LEVEL, pairs)
    levels[stormy] = rng.normal(*_STORMY_LEVEL, pairs)
    lengths = _trim(lengths, _HOURS)
    log_vol = np.repeat(levels[: len(lengths)], lengths)

    kernel = _CLUSTER_PHI ** np.arange(_CLUSTER_TAPS, dtype=np.float64)
    kernel *= _CLUSTER_SD * math.sqrt(1.0 - _CLUSTER_PHI**2)
    shocks = rng.standard_normal(_HOURS + _CLUSTER_TAPS - 1)
    log_vol += np.convolve(shocks, kernel, mode="valid")

    vol = np.exp(log_vol)
    weekday = (SAMPLE_START // DAY_MS + 3 + np.arange(_DAYS)) % 7  # 1970-01-01 was a Thursday
    vol.reshape(_DAYS, 24)[weekday >= 5] *= _WEEKEND_VOL
    return vol


def _add_jumps(
    rng: np.random.Generator,
    shocks: FloatArray,
    sigma: FloatArray,
    vol_hourly: FloatArray,
    minute_sigma: float,
) -> None:
    """Add jumps to the standardised minute shocks, more of them in volatile hours."""
    count = int(rng.poisson(_JUMPS_PER_DAY * _DAYS))
    hours = rng.choice(_HOURS, size=count, p=vol_hourly / vol_hourly.sum())
    minutes = hours * 60 + rng.integers(0, 60, count)
    size = _JUMP_SIGMAS[0] + rng.exponential(_JUMP_SIGMAS[1], count)
    size[rng.random(count) < _JUMP_DOWN_SHARE] *= -1.0
    np.add.at(shocks, minutes, size * minute_sigma / sigma[minutes])


def _trend_drift(rng: np.random.Generator, returns: FloatArray, profile: _Profile) -> FloatArray:
    """Hourly drift (log return per minute) of trend regimes that wander around the anchor."""
    lengths = _durations(rng, _TREND_HOURS, _HOURS // _TREND_HOURS[0] + 1)
    lengths = _trim(lengths, _HOURS)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    noise = np.add.reduceat(returns, starts * 60)
    trend = rng.standard_normal(len(lengths)) * (
        _TREND_SCALE * profile.annual_vol / _MINUTES_PER_YEAR
    )
    log_start = math.log(profile.start_price)
    anchor = log_start + math.log(profile.anchor_end_price / profile.start_price) * (ends / _HOURS)
    drift = np.empty(len(lengths))
    level = log_start
    # Sequential over the regimes (tens of them), never over candles: the pull towards the
    # anchor depends on where the previous regimes left the price.
    for k in range(len(lengths)):
        minutes = int(lengths[k]) * 60
        drift[k] = trend[k] + _TREND_REVERSION * (float(anchor[k]) - level) / minutes
        level += float(noise[k]) + drift[k] * minutes
    return np.repeat(drift, lengths)


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.flags.writeable = False


def _generate(symbol: str) -> Candles:
    profile = _PROFILES[symbol]
    seed = zlib.crc32(_MODEL_VERSION + b":" + symbol.encode())
    rng = np.random.Generator(np.random.PCG64(seed))

    vol_hourly = _volatility_hourly(rng)
    minute_sigma = profile.annual_vol / math.sqrt(_MINUTES_PER_YEAR)
    vol_hourly *= minute_sigma / math.sqrt(float(np.mean(vol_hourly**2)))
    sigma = np.repeat(vol_hourly, 60)
    sigma.reshape(_DAYS, 1440)[:] *= _VOL_PROFILE

    shocks = rng.standard_normal(_MINUTES)
    _add_jumps(rng, shocks, sigma, vol_hourly, minute_sigma)

    # Volume in USD first: flat part + |standardised return| (jumps included), x activity of the
    # hour, x intraday profile, x log-normal noise. Divided by price below (volume is in coins).
    volume = np.abs(shocks)
    volume *= _VOLUME_SHOCK
    volume += 1.0 - _VOLUME_SHOCK
    noise = rng.standard_normal(_MINUTES)
    noise *= _VOLUME_NOISE
    noise -= 0.5 * _VOLUME_NOISE**2
    np.exp(noise, out=noise)
    volume *= noise
    del noise
    volume.reshape(_HOURS, 60)[:] *= (vol_hourly / vol_hourly.mean())[:, None]
    volume.reshape(_DAYS, 1440)[:] *= _VOLUME_PROFILE
    volume *= profile.usd_volume_per_minute

    returns = shocks
    returns *= sigma
    returns.reshape(_HOURS, 60)[:] += _trend_drift(rng, returns, profile)[:, None]

    # open[i] = close[i-1] exactly: both are views of one price path of _MINUTES + 1 points.
    path = np.empty(_MINUTES + 1)
    path[0] = 0.0
    np.cumsum(returns, out=path[1:])
    del returns, shocks
    path += math.log(profile.start_price)
    np.exp(path, out=path)
    # Rounding is monotonic, so high >= max(open, close) and low <= min(open, close) survive it.
    np.round(path, _PRICE_DECIMALS, out=path)
    open_, close = path[:-1], path[1:]

    sigma *= _WICK
    wick = rng.standard_exponential(_MINUTES)
    wick *= sigma
    np.exp(wick, out=wick)
    high = np.maximum(open_, close)
    high *= wick
    np.round(high, _PRICE_DECIMALS, out=high)
    rng.standard_exponential(out=wick)
    wick *= sigma
    np.negative(wick, out=wick)
    np.exp(wick, out=wick)
    low = np.minimum(open_, close)
    low *= wick
    np.round(low, _PRICE_DECIMALS, out=low)
    del wick, sigma

    volume /= close
    np.round(volume, profile.volume_decimals, out=volume)
    np.maximum(volume, 10.0**-profile.volume_decimals, out=volume)

    timestamp = np.arange(SAMPLE_START, SAMPLE_END, MINUTE_MS, dtype=np.int64)
    for array in (timestamp, path, high, low, volume):
        _readonly(array)
    return Candles._wrap(timestamp, path[:-1], high, low, path[1:], volume)


def _check_symbol(symbol: str) -> None:
    if symbol not in _PROFILES:
        raise ValueError(
            f"unknown sample symbol {symbol!r}; the sample market has: {', '.join(SAMPLE_SYMBOLS)}"
        )


@cache
def sample_series(symbol: str) -> Candles:
    """The full 1m series of a sample symbol, 2024-01-01 to 2025-12-31 23:59 UTC (read-only).

    Generated on first use (well under 0.1 s) and memoised; identical in every process::

        btc = sample_series("BTCUSDT")
        len(btc)                        # 1_052_640
    """
    _check_symbol(symbol)
    return _generate(symbol)


@cache
def _interval_series(symbol: str, interval: str) -> Candles:
    """All complete UTC-aligned candles of `interval`, aggregated from the 1m series."""
    minute = sample_series(symbol)
    step = INTERVAL_MS[interval]
    width = step // MINUTE_MS
    first = -(-SAMPLE_START // step) * step  # first bucket that starts inside the series
    count = (SAMPLE_END - first) // step
    lo = (first - SAMPLE_START) // MINUTE_MS
    hi = lo + count * width
    columns = (
        np.arange(first, first + count * step, step, dtype=np.int64),
        np.ascontiguousarray(minute.open[lo:hi:width]),
        minute.high[lo:hi].reshape(count, width).max(axis=1),
        minute.low[lo:hi].reshape(count, width).min(axis=1),
        np.ascontiguousarray(minute.close[lo + width - 1 : hi : width]),
        minute.volume[lo:hi].reshape(count, width).sum(axis=1),
    )
    for column in columns:
        _readonly(column)
    return Candles._wrap(*columns)


def sample_candles(symbol: str, interval: str, since: int, limit: int) -> Candles:
    """The sample candles of `interval` whose open time is in ``[since, since + (limit-1)·I]``.

    `since` is int ms UTC; the result is a read-only view, oldest first, and is empty outside
    2024-01-01 .. 2026-01-01. Coarser intervals aggregate the 1m series over UTC-aligned buckets
    (first open, max high, min low, last close, summed volume)::

        hours = sample_candles("ETHUSDT", "1h", 1_704_067_200_000, 24)   # 2024-01-01, 24 candles
    """
    _check_symbol(symbol)
    if interval not in INTERVAL_MS:
        raise ValueError(f"unknown interval {interval!r}; valid: {', '.join(INTERVAL_MS)}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    step = INTERVAL_MS[interval]
    series = sample_series(symbol) if step == MINUTE_MS else _interval_series(symbol, interval)
    # Clamp before searching: the timestamps are int64 and Python ints are not.
    first = min(max(since, SAMPLE_START - 1), SAMPLE_END)
    last = min(max(since + (limit - 1) * step, SAMPLE_START - 1), SAMPLE_END)
    lo = int(np.searchsorted(series.timestamp, first, side="left"))
    hi = int(np.searchsorted(series.timestamp, last, side="right"))
    return series[lo:hi]


def get_sample_candles(symbol: str, interval: str, since: datetime, limit: int) -> Candles:
    """`sample_candles` with the `get_candles` signature of an exchange schema (50-exchange §3).

    `since` is an aware UTC datetime (naive is taken as UTC)::

        bk.add_exchange("sample", get_candles=get_sample_candles)
    """
    return sample_candles(symbol, interval, datetime_to_ms(since), limit)


__all__ = [
    "SAMPLE_END",
    "SAMPLE_START",
    "SAMPLE_SYMBOLS",
    "get_sample_candles",
    "sample_candles",
    "sample_series",
]
