"""Tests for core/exchange.py: backward windows, VWAP, attempts, the forward view, the backtest
candle store with read-ahead, formatting (50 §2, §5-§8, §12)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.core.exchange import ExchangeClient, first_empty_vwap_window
from backtest_kit.engine.backtest import exchange_client
from backtest_kit.intervals import INTERVAL_MS, datetime_to_ms

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
H = 3_600_000
DAY = 86_400_000
SYMBOL = "BTCUSDT"


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


@dataclass(frozen=True)
class Call:
    symbol: str
    interval: str
    since: int  # ms
    limit: int


def price_at(t: int) -> float:
    """A smooth, deterministic price path (a pure function of time)."""
    return 100.0 + 3.0 * math.sin(2 * math.pi * (t - T0) / (90 * M))


def build(ts: np.ndarray, step: int) -> bk.Candles:
    opens = np.array([price_at(int(t)) for t in ts.tolist()], dtype=np.float64)
    closes = np.array([price_at(int(t) + step) for t in ts.tolist()], dtype=np.float64)
    highs = np.maximum(opens, closes) + 0.05
    lows = np.minimum(opens, closes) - 0.05
    volumes = 1.0 + (ts // step % 7).astype(np.float64)
    return bk.Candles(timestamp=ts, open=opens, high=highs, low=lows, close=closes, volume=volumes)


class Source:
    """A pure data source (a candle depends only on its open time) that records its calls.

    `end`: first open time with no data (exclusive); `gaps`: missing open times; `cap`: at most
    this many candles per response (the first ones, like a paginated API); `live_edge`: also
    return the still-forming candle at the wall clock (candles up to `now`).
    """

    def __init__(
        self,
        *,
        start: int = T0 - DAY,
        end: int | None = T0 + 3 * DAY,
        gaps: Callable[[np.ndarray], np.ndarray] | None = None,
        cap: int | None = None,
    ) -> None:
        self.start, self.end, self.gaps, self.cap = start, end, gaps, cap
        self.calls: list[Call] = []

    def __call__(self, symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        assert since.tzinfo is not None
        s = datetime_to_ms(since)
        self.calls.append(Call(symbol, interval, s, limit))
        step = INTERVAL_MS[interval]
        end = self.end if self.end is not None else time.time_ns() // 1_000_000 + 1
        first = s if s >= self.start else s + -(-(self.start - s) // step) * step
        last = min(s + (limit - 1) * step, end - 1)
        ts = np.arange(first, max(first, last + 1), step, dtype=np.int64)
        if self.gaps is not None and len(ts):
            ts = ts[~self.gaps(ts)]
        if self.cap is not None:
            ts = ts[: self.cap]
        return build(ts, step)


def table_source(rows: list[tuple[int, float, float, float, float, float]]) -> Any:
    """A source holding a fixed table; it returns the whole table on every call (the client
    must drop what lies outside the request)."""
    calls: list[Call] = []

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> list[Any]:
        calls.append(Call(symbol, interval, datetime_to_ms(since), limit))
        return [list(r) for r in rows]

    get_candles.calls = calls  # type: ignore[attr-defined]
    return get_candles


def client_for(
    get_candles: Any, *, read_ahead: bool = True, name: str = "ex", **kwargs: Any
) -> ExchangeClient:
    runtime = bk.runtime.current()
    runtime.extensions["read_ahead"] = read_ahead
    schema = bk.add_exchange(name, get_candles, **kwargs)
    return exchange_client(runtime, schema, backtest=True)


def opens(candles: bk.Candles) -> list[int]:
    return [int(t) for t in candles.timestamp]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class RecordingLogger:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, tuple[object, ...]]] = []

    def _rec(self, level: str) -> Callable[..., None]:
        return lambda topic, *args: self.records.append((level, topic, args))

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in ("log", "debug", "info", "warn"):
            return self._rec(name)
        raise AttributeError(name)

    def warnings(self) -> list[str]:
        return [topic for level, topic, _ in self.records if level == "warn"]


MODES = pytest.mark.parametrize("read_ahead", [True, False], ids=["store", "exact"])


# -- windows (50 §2) ----------------------------------------------------------------------


@MODES
def test_1m_window_at_0020_is_the_five_closed_candles(read_ahead: bool) -> None:
    client = client_for(Source(), read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert opens(candles) == [T0 + k * M for k in range(15, 20)]


@MODES
@pytest.mark.parametrize("when", [T0 + 10 * H, T0 + 10 * H + 30 * M])
def test_1h_window_excludes_the_forming_hour(read_ahead: bool, when: int) -> None:
    client = client_for(Source(), read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "1h", 3, when))
    assert opens(candles) == [T0 + 7 * H, T0 + 8 * H, T0 + 9 * H]


def test_exact_mode_requests_exactly_the_window() -> None:
    source = Source()
    client = client_for(source, read_ahead=False)
    run(client.get_candles(SYMBOL, "1h", 3, T0 + 10 * H + 30 * M))
    assert source.calls == [Call(SYMBOL, "1h", T0 + 7 * H, 3)]


def test_exact_mode_vwap_requests_the_n_closed_minutes() -> None:
    source = Source()
    client = client_for(source, read_ahead=False)
    run(client.vwap(SYMBOL, T0 + 20 * M + 30_000))
    assert source.calls == [Call(SYMBOL, "1m", T0 + 15 * M, 5)]


@MODES
@pytest.mark.parametrize(
    ("interval", "when"),
    [
        ("1m", T0 + 20 * M),
        ("1m", T0 + 20 * M + 59_999),
        ("5m", T0 + 20 * M),
        ("5m", T0 + 24 * M),
        ("15m", T0 + 45 * M + 1),
        ("4h", T0 + 8 * H),
    ],
)
def test_a_candle_is_returned_only_once_closed(read_ahead: bool, interval: str, when: int) -> None:
    step = INTERVAL_MS[interval]
    client = client_for(Source(), read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, interval, 4, when))
    assert len(candles) == 4
    assert all(t + step <= when for t in opens(candles))
    forming = when - when % step
    assert opens(candles)[-1] == forming - step  # the last closed one, never the forming one
    assert np.all(np.diff(candles.timestamp) == step)


@MODES
def test_limit_one_returns_the_last_closed_candle(read_ahead: bool) -> None:
    source = Source()
    client = client_for(source, read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "1m", 1, T0 + 20 * M))
    assert opens(candles) == [T0 + 19 * M]
    if not read_ahead:
        assert source.calls == [Call(SYMBOL, "1m", T0 + 19 * M, 1)]


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "5", None])
def test_invalid_limit_is_a_validation_error(limit: Any) -> None:
    source = Source()
    client = client_for(source)
    with pytest.raises(bk.ValidationError, match="limit"):
        run(client.get_candles(SYMBOL, "1m", limit, T0 + 20 * M))
    assert source.calls == []


@pytest.mark.parametrize("interval", ["7m", "12h", "1d", "", "1M"])
def test_invalid_interval_is_a_validation_error_listing_the_valid_ones(interval: str) -> None:
    source = Source()
    client = client_for(source)
    with pytest.raises(bk.ValidationError) as info:
        run(client.get_candles(SYMBOL, interval, 5, T0 + 20 * M))
    assert "1m" in str(info.value) and "8h" in str(info.value)
    assert source.calls == []


@MODES
def test_a_gap_gives_fewer_candles_never_older_ones(read_ahead: bool) -> None:
    gap = {T0 + 16 * M, T0 + 17 * M}
    source = Source(gaps=lambda ts: np.isin(ts, list(gap)))
    client = client_for(source, read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert opens(candles) == [T0 + 15 * M, T0 + 18 * M, T0 + 19 * M]


@MODES
def test_window_values_come_from_the_source(read_ahead: bool) -> None:
    client = client_for(Source(), read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "5m", 3, T0 + H))
    expected = build(np.array([T0 + 45 * M, T0 + 50 * M, T0 + 55 * M]), 5 * M)
    for field in ("timestamp", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(candles, field), getattr(expected, field)), field


# -- VWAP (50 §7) ---------------------------------------------------------------------------


def flat(t: int, price: float, volume: float) -> tuple[int, float, float, float, float, float]:
    return (t, price, price, price, price, volume)


@MODES
def test_vwap_weights_typical_price_by_volume(read_ahead: bool) -> None:
    rows = [flat(T0 + k * M, 100.0 + k, v) for k, v in enumerate([1, 1, 1, 1, 6])]
    client = client_for(table_source(rows), read_ahead=read_ahead)
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == 103.0


def test_vwap_typical_price_is_high_low_close_over_three() -> None:
    rows = [(T0 + k * M, 100.0, 103.0, 97.0, 102.0, 1.0) for k in range(5)]
    client = client_for(table_source(rows))
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == pytest.approx((103 + 97 + 102) / 3)


@MODES
def test_vwap_with_zero_volume_is_the_mean_close(read_ahead: bool) -> None:
    rows = [flat(T0 + k * M, 10.0 * (k + 1), 0.0) for k in range(5)]
    client = client_for(table_source(rows), read_ahead=read_ahead)
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == 30.0


@MODES
def test_vwap_over_a_window_holding_two_candles_warns(read_ahead: bool) -> None:
    logger = RecordingLogger()
    bk.set_logger(logger)
    rows = [flat(T0 + 3 * M, 100.0, 1.0), flat(T0 + 4 * M, 110.0, 3.0)]
    client = client_for(table_source(rows), read_ahead=read_ahead)
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == (100.0 + 330.0) / 4
    assert any("vwap" in topic.lower() for topic in logger.warnings())


@MODES
def test_vwap_of_an_empty_window_is_an_exchange_error(read_ahead: bool) -> None:
    rows = [flat(T0 + k * M, 100.0, 1.0) for k in range(5)]
    client = client_for(table_source(rows), read_ahead=read_ahead)
    with pytest.raises(bk.ExchangeError, match="no closed 1m candles for BTCUSDT"):
        run(client.vwap(SYMBOL, T0 + 30 * M))


@MODES
@pytest.mark.parametrize("offset", [0, 30_000, 59_999])
def test_candle_opening_at_when_does_not_move_the_vwap(read_ahead: bool, offset: int) -> None:
    rows = [flat(T0 + k * M, 100.0 + k, v) for k, v in enumerate([1, 1, 1, 1, 6])]
    rows.append(flat(T0 + 5 * M, 1000.0, 1e9))
    client = client_for(table_source(rows), read_ahead=read_ahead)
    assert run(client.vwap(SYMBOL, T0 + 5 * M + offset)) == 103.0


def test_vwap_window_follows_cc_avg_price_candles_count() -> None:
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=2)
    rows = [flat(T0 + k * M, 100.0 + k, v) for k, v in enumerate([1, 1, 1, 1, 6])]
    client = client_for(table_source(rows))
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == (103.0 + 104.0 * 6) / 7


def test_vwap_with_a_window_of_one_candle() -> None:
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1)
    rows = [flat(T0 + k * M, 100.0 + k, 1.0) for k in range(5)]
    client = client_for(table_source(rows), read_ahead=False)
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == 104.0


# -- attempts and retries (50 §5) -----------------------------------------------------------


def flaky(fail_times: int, message: str = "boom 503") -> Any:
    calls: list[float] = []
    good = Source()

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(time.perf_counter())
        if len(calls) <= fail_times:
            raise ConnectionError(message)
        return good(symbol, interval, since, limit)

    get_candles.calls = calls  # type: ignore[attr-defined]
    return get_candles


def test_two_failures_then_success_takes_three_calls_and_two_delays() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=100)
    source = flaky(2)
    client = client_for(source, read_ahead=False)
    started = time.perf_counter()
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    elapsed = time.perf_counter() - started
    assert opens(candles) == [T0 + k * M for k in range(15, 20)]
    assert len(source.calls) == 3
    assert elapsed >= 0.2
    assert source.calls[1] - source.calls[0] >= 0.1
    assert source.calls[2] - source.calls[1] >= 0.1


def test_always_failing_source_raises_exchange_error_after_the_last_delay() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=2, CC_GET_CANDLES_RETRY_DELAY_MS=100)
    source = flaky(10**9, "upstream said 503 Service Unavailable")
    client = client_for(source, read_ahead=False)
    started = time.perf_counter()
    with pytest.raises(bk.ExchangeError) as info:
        run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    elapsed = time.perf_counter() - started
    assert len(source.calls) == 2
    assert elapsed >= 0.2  # a delay after the last failure too
    message = str(info.value)
    assert "upstream said 503 Service Unavailable" in message
    assert "'ex'" in message and "BTCUSDT" in message and "2 attempts" in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_a_response_failing_validation_is_a_failed_attempt() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    good = Source()
    calls: list[int] = []

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(limit)
        if len(calls) == 1:
            return None
        return good(symbol, interval, since, limit)

    client = client_for(get_candles, read_ahead=False)
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert len(candles) == 5
    assert len(calls) == 2


def test_cancelled_error_is_not_retried() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=100)
    calls: list[int] = []

    async def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(limit)
        raise asyncio.CancelledError

    client = client_for(get_candles, read_ahead=False)

    async def scenario() -> str:
        try:
            await client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M)
        except asyncio.CancelledError:
            return "cancelled"
        return "returned"

    started = time.perf_counter()
    assert run(scenario()) == "cancelled"
    assert calls == [5]
    assert time.perf_counter() - started < 0.1


def test_async_source_is_awaited() -> None:
    good = Source()

    async def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        await asyncio.sleep(0)
        return good(symbol, interval, since, limit)

    client = client_for(get_candles, read_ahead=False)
    assert opens(run(client.get_candles(SYMBOL, "1m", 2, T0 + 20 * M))) == [
        T0 + 18 * M,
        T0 + 19 * M,
    ]


# -- forward view (50 §6.2) -----------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@MODES
def test_forward_view_past_wall_clock_ends_with_the_last_closed_candle(read_ahead: bool) -> None:
    # the source returns candles up to the present instant, the still-forming one included
    source = Source(start=0, end=None)
    client = client_for(source, read_ahead=read_ahead)
    before = now_ms()
    since = before - before % M - 30 * M
    view = run(client.forward_view(SYMBOL, since, since + 90 * M))
    after = now_ms()
    last = opens(view)[-1]
    assert before - before % M - M <= last <= after - after % M - M
    assert opens(view)[0] == since
    assert np.all(np.diff(view.timestamp) == M)


@MODES
def test_forward_view_on_gap_free_data_ends_at_the_horizon(read_ahead: bool) -> None:
    client = client_for(Source(), read_ahead=read_ahead)
    view = run(client.forward_view(SYMBOL, T0, T0 + 20 * M))
    assert opens(view) == [T0 + k * M for k in range(21)]


@MODES
@pytest.mark.parametrize("cap", [None, 7])
def test_forward_view_continues_past_a_gap_at_the_horizon(
    read_ahead: bool, cap: int | None
) -> None:
    # minutes 18..25 missing: the horizon (minute 20) lies in the gap
    def gaps(ts: np.ndarray) -> np.ndarray:
        return (ts >= T0 + 18 * M) & (ts <= T0 + 25 * M)

    client = client_for(Source(gaps=gaps, cap=cap), read_ahead=read_ahead)
    view = run(client.forward_view(SYMBOL, T0, T0 + 20 * M))
    assert opens(view) == [T0 + k * M for k in [*range(18), 26]]


@MODES
def test_forward_view_gap_right_before_the_horizon_does_not_end_it(read_ahead: bool) -> None:
    def gaps(ts: np.ndarray) -> np.ndarray:
        return (ts >= T0 + 7 * M) & (ts <= T0 + 9 * M)

    client = client_for(Source(gaps=gaps), read_ahead=read_ahead)
    view = run(client.forward_view(SYMBOL, T0, T0 + 10 * M))
    assert opens(view) == [T0 + k * M for k in [0, 1, 2, 3, 4, 5, 6, 10]]


@MODES
def test_forward_view_stops_at_the_end_of_data(read_ahead: bool) -> None:
    client = client_for(Source(end=T0 + 15 * M), read_ahead=read_ahead)
    view = run(client.forward_view(SYMBOL, T0, T0 + 60 * M))
    assert opens(view) == [T0 + k * M for k in range(15)]


@MODES
def test_forward_view_shorter_than_the_horizon_is_logged(read_ahead: bool) -> None:
    logger = RecordingLogger()
    bk.set_logger(logger)
    client = client_for(Source(end=T0 + 15 * M), read_ahead=read_ahead)
    run(client.forward_view(SYMBOL, T0, T0 + 10 * M))
    assert logger.warnings() == []  # complete: nothing to say
    run(client.forward_view(SYMBOL, T0, T0 + 60 * M))
    assert logger.warnings(), "a view shorter than the horizon is logged (warn), 50 §6.2"


def test_exact_forward_view_first_request_spans_since_to_horizon() -> None:
    source = Source()
    client = client_for(source, read_ahead=False)
    run(client.forward_view(SYMBOL, T0, T0 + 20 * M))
    assert source.calls[0] == Call(SYMBOL, "1m", T0, 21)


def test_forward_view_is_read_only() -> None:
    client = client_for(Source())
    view = run(client.forward_view(SYMBOL, T0, T0 + 20 * M))
    with pytest.raises(ValueError):
        view.close[0] = 1.0


# -- the store and read-ahead (50 §8) -------------------------------------------------------


def test_store_serves_many_windows_from_one_page() -> None:
    source = Source()
    client = client_for(source)

    async def scenario() -> list[float]:
        return [await client.vwap(SYMBOL, T0 + k * M) for k in range(10, 600)]

    prices = run(scenario())
    assert len(source.calls) == 1
    assert source.calls[0].since == T0 + 5 * M  # never earlier than the window
    assert source.calls[0].limit >= 5
    exact = client_for(Source(), read_ahead=False, name="exact")

    async def exact_scenario() -> list[float]:
        return [await exact.vwap(SYMBOL, T0 + k * M) for k in range(10, 600)]

    assert prices == run(exact_scenario())


@MODES
def test_served_arrays_are_read_only(read_ahead: bool) -> None:
    client = client_for(Source(), read_ahead=read_ahead)
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    for field in ("timestamp", "open", "high", "low", "close", "volume"):
        column = getattr(candles, field)
        with pytest.raises(ValueError):
            column[0] = 1
    again = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert opens(again) == [T0 + k * M for k in range(15, 20)]


def broken_at(bad: int) -> Any:
    """A source whose candle at `bad` has high < low (rule 5 of 50 §3)."""
    good = Source()
    calls: list[Call] = []

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(Call(symbol, interval, datetime_to_ms(since), limit))
        candles = good(symbol, interval, since, limit)
        rows = [c.to_dict() for c in candles]
        for row in rows:
            if row["timestamp"] == bad:
                row["high"], row["low"] = row["low"] - 1, row["high"] + 1
        return rows

    get_candles.calls = calls  # type: ignore[attr-defined]
    return get_candles


def test_bad_candle_outside_the_window_does_not_fail_the_store() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=2, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    source = broken_at(T0 + 100 * M)
    client = client_for(source)
    candles = run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert opens(candles) == [T0 + k * M for k in range(15, 20)]
    # the page failed (not an attempt); the window was then requested exactly
    assert len(source.calls) == 2
    assert source.calls[0].since == T0 + 15 * M and source.calls[0].limit > 100
    assert source.calls[1] == Call(SYMBOL, "1m", T0 + 15 * M, 5)
    # the series now serves exact requests: still correct
    later = run(client.get_candles(SYMBOL, "1m", 3, T0 + 50 * M))
    assert opens(later) == [T0 + k * M for k in range(47, 50)]


def test_bad_candle_outside_the_exact_request_is_dropped_not_checked() -> None:
    rows = [flat(T0 + k * M, 100.0, 1.0) for k in range(10)]
    rows.append((T0 + 10 * M, 100.0, 90.0, 110.0, 100.0, 1.0))  # high < low
    client = client_for(table_source(rows), read_ahead=False)
    assert run(client.vwap(SYMBOL, T0 + 5 * M)) == 100.0


@MODES
def test_bad_candle_inside_the_window_fails_the_request(read_ahead: bool) -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=2, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    source = broken_at(T0 + 17 * M)
    client = client_for(source, read_ahead=read_ahead)
    with pytest.raises(bk.ExchangeError) as info:
        run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert "2024-01-01T00:17:00Z" in str(info.value)
    assert "high" in str(info.value)


def test_a_source_capped_at_1000_candles_still_gives_complete_windows() -> None:
    source = Source(cap=1000)
    client = client_for(source)
    when = T0 + 2 * DAY
    candles = run(client.get_candles(SYMBOL, "1m", 2500, when))
    assert opens(candles) == [when - (2500 - k) * M for k in range(2500)]
    assert len(source.calls) >= 3
    view = run(client.forward_view(SYMBOL, T0, T0 + 2600 * M))
    assert opens(view) == [T0 + k * M for k in range(2601)]


def test_store_does_not_refetch_a_gap_it_knows() -> None:
    def gaps(ts: np.ndarray) -> np.ndarray:
        return (ts >= T0 + 30 * M) & (ts < T0 + 40 * M)

    source = Source(gaps=gaps)
    client = client_for(source)
    run(client.vwap(SYMBOL, T0 + 10 * M))
    calls = len(source.calls)
    with pytest.raises(bk.ExchangeError):
        run(client.vwap(SYMBOL, T0 + 38 * M))
    assert len(source.calls) == calls


def test_store_is_shared_by_runs_and_dropped_by_reset() -> None:
    source = Source()
    client = client_for(source)
    run(client.vwap(SYMBOL, T0 + 10 * M))
    assert exchange_client(bk.runtime.current(), bk.list_exchanges()[0], backtest=True) is client
    bk.reset()
    client = client_for(source)
    run(client.vwap(SYMBOL, T0 + 10 * M))
    assert len(source.calls) == 2


@MODES
def test_on_candle_data_once_per_successful_source_call(read_ahead: bool) -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    seen: list[tuple[Any, ...]] = []
    calls: list[Call] = []
    good = Source()

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(Call(symbol, interval, datetime_to_ms(since), limit))
        if len(calls) == 1 and not read_ahead:
            raise ConnectionError("first attempt fails")
        return good(symbol, interval, since, limit)

    async def on_candle_data(*args: Any) -> None:
        seen.append(args)

    client = client_for(
        get_candles, read_ahead=read_ahead, callbacks={"on_candle_data": on_candle_data}
    )
    run(client.get_candles(SYMBOL, "1h", 3, T0 + 10 * H))
    successful = calls[1:] if not read_ahead else calls
    assert len(seen) == len(successful) >= 1
    for args, call in zip(seen, successful, strict=True):
        symbol, interval, since, limit, data = args
        assert (symbol, interval, limit) == (call.symbol, call.interval, call.limit)
        assert isinstance(since, datetime) and since.tzinfo is not None
        assert datetime_to_ms(since) == call.since
        assert isinstance(data, bk.Candles)
        assert len(data) > 0
        assert all(call.since <= t <= call.since + (call.limit - 1) * H for t in opens(data))


def test_on_candle_data_exception_fails_the_request_without_retry() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=3, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    source = Source()

    def on_candle_data(*args: Any) -> None:
        raise RuntimeError("callback broke")

    client = client_for(source, read_ahead=False, callbacks={"on_candle_data": on_candle_data})
    with pytest.raises(RuntimeError, match="callback broke"):
        run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert len(source.calls) == 1


# -- a one-day backtest: store vs exact (50 §8.2 equivalence) -------------------------------


def run_day(read_ahead: bool) -> tuple[list[dict[str, Any]], int, int]:
    bk.reset()
    bk.runtime.current().extensions["read_ahead"] = read_ahead
    source = Source()
    asked: list[datetime] = []

    async def get_signal(symbol: str, when: datetime) -> Any:
        asked.append(when)
        if when.minute % 20:
            return None
        price = await bk.get_average_price(symbol)
        if when.minute == 0:
            return bk.Signal("long", price * 1.01, price * 0.99, 45)
        if when.minute == 20:
            return bk.Signal("short", price * 0.99, price * 1.01, 45, price_open=price * 1.002)
        return bk.Signal("long", price * 1.10, price * 0.92, 15)  # expires by time

    bk.add_exchange("ex", source)
    bk.add_strategy("s", "1m", get_signal)
    bk.add_frame("day", "1m", T0, T0 + DAY)
    results = bk.Backtest.run_sync(SYMBOL, strategy_name="s", exchange_name="ex", frame_name="day")
    rows = [r.to_dict() for r in results]
    for row in rows:
        row["signal"].pop("id")  # random per run
    return rows, len(source.calls), len(asked)


def test_one_day_backtest_store_matches_exact_with_far_fewer_calls() -> None:
    stored, stored_calls, stored_ticks = run_day(True)
    exact, exact_calls, exact_ticks = run_day(False)
    assert len(stored) >= 10
    assert {r.get("close_reason") for r in stored} >= {"take_profit", "stop_loss", "time_expired"}
    assert stored == exact
    assert stored_ticks == exact_ticks > 300
    assert stored_calls * 100 < stored_ticks
    assert exact_calls >= exact_ticks


# -- the fast path's question (30 §8) -------------------------------------------------------


def test_first_empty_vwap_window() -> None:
    def gaps(ts: np.ndarray) -> np.ndarray:
        return (ts >= T0 + 30 * M) & (ts < T0 + 40 * M)  # minutes 30..39 missing

    client = client_for(Source(gaps=gaps))
    whens = T0 + np.arange(10, 60, dtype=np.int64) * M
    # with N = 5 the window at minute w is [w-5, w-1]: empty first at w = 35
    assert run(first_empty_vwap_window(client, SYMBOL, whens)) == 35 - 10
    assert run(first_empty_vwap_window(client, SYMBOL, whens[:25])) == 25
    assert run(first_empty_vwap_window(client, SYMBOL, whens[:0])) == 0
    off_grid = whens + 30_000
    assert run(first_empty_vwap_window(client, SYMBOL, off_grid)) == 35 - 10


def test_first_empty_vwap_window_without_a_store_evaluates_everything() -> None:
    client = client_for(Source(), read_ahead=False)
    whens = T0 + np.arange(10, 20, dtype=np.int64) * M
    assert run(first_empty_vwap_window(client, SYMBOL, whens)) == 0


# -- formatting (50 §1) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.56789, "1234.56789000"),
        (0.000123456789, "0.00012346"),
        (42, "42.00000000"),
        (-1.5, "-1.50000000"),
        (2.5e-9, "0.00000000"),  # tiny values stay in fixed notation
        (0.0, "0.00000000"),
        (-0.0, "0.00000000"),  # -0.0 normalised (80 §1.3)
        (1e-8, "0.00000001"),
        (1e-7, "0.00000010"),
        (1.000000005, "1.00000000"),  # exact binary 1.0000000049999...: JS toFixed rounds down
    ],
)
def test_default_formatters_use_eight_decimals(value: float, text: str) -> None:
    client = client_for(Source())
    assert run(client.format_price(SYMBOL, value)) == text
    assert run(client.format_quantity(SYMBOL, value)) == text


def test_user_formatters_sync_and_async() -> None:
    async def fmt_quantity(symbol: str, quantity: float) -> str:
        return f"{symbol}:{quantity:.3f}"

    client = client_for(
        Source(), format_price=lambda s, p: f"{p:.2f}", format_quantity=fmt_quantity
    )
    assert run(client.format_price(SYMBOL, 1234.5678)) == "1234.57"
    assert run(client.format_quantity(SYMBOL, 0.5)) == "BTCUSDT:0.500"


@pytest.mark.parametrize("kind", ["format_price", "format_quantity"])
def test_formatter_returning_non_str_is_an_exchange_error(kind: str) -> None:
    client = client_for(Source(), **{kind: lambda s, v: v * 2})
    with pytest.raises(bk.ExchangeError) as info:
        run(getattr(client, kind)(SYMBOL, 1.5))
    assert kind in str(info.value) and "float" in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, "1.5", True, None])
def test_formatting_a_non_finite_or_non_number_is_a_validation_error(value: Any) -> None:
    client = client_for(Source())
    with pytest.raises(bk.ValidationError):
        run(client.format_price(SYMBOL, value))


def test_exchange_client_is_memoised_per_mode() -> None:
    runtime = bk.runtime.current()
    schema = bk.add_exchange("ex", Source())
    backtest = exchange_client(runtime, schema, backtest=True)
    assert exchange_client(runtime, schema, backtest=True) is backtest
    live = exchange_client(runtime, schema, backtest=False)
    assert live is not backtest
    assert live.read_ahead is False
    assert backtest.read_ahead is True


def test_since_handed_to_the_source_is_aware_utc() -> None:
    seen: list[datetime] = []
    good = Source()

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        seen.append(since)
        return good(symbol, interval, since, limit)

    client = client_for(get_candles, read_ahead=False)
    run(client.get_candles(SYMBOL, "1m", 5, T0 + 20 * M))
    assert seen == [datetime(2024, 1, 1, 0, 15, tzinfo=UTC)]
