"""Tests for the partial profit/loss milestones of `backtest_kit.core.strategy` (60 §9, 20 §5.4,
§7, §9), driven through real backtests: hand-made series whose every progress value is computed
by hand (long/short, profit/loss, several levels in one jump, no re-emission, the 100 cap,
candle-time timestamps, the activation candle skipped, state cleared on close,
`on_partial_*` on every evaluation), then the vectorised milestone path (listeners only)
against the per-candle path (an `on_partial_profit` callback registered) on seeded random
markets and on a week of the sample market: identical event streams, field by field."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.runtime import current
from support import BASE, BASE_MS, SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def typical(h: float, lo: float, c: float) -> float:
    return ((h + lo) + c) / 3


def vwap(bars: list[tuple[float, float, float, float]]) -> float:
    """50 §7: sum(((h + l) + c) / 3 * v) / sum(v), oldest first."""
    num = 0.0
    vol = 0.0
    for h, lo, c, v in bars:
        num += typical(h, lo, c) * v
        vol += v
    return num / vol


def flat(market: Market, minute: int, x: float, v: float = 1.0) -> float:
    """A bar at one price; returns its typical price (the VWAP when N = 1)."""
    market.bar(minute, x, x, x, x, v)
    return typical(x, x, x)


def progress(d: float, distance: float) -> float:
    """60 §9.1: (d / distance) * 100, capped at 100."""
    return min(d / distance * 100, 100.0)


class Recorder:
    """Everything partial-related in one ordered trace: milestone events, the progress
    callbacks (when registered), closes, and the milestone state seen at `on_close`."""

    def __init__(self, *, callbacks: bool) -> None:
        self.trace: list[tuple[Any, ...]] = []
        self.events: list[Any] = []
        self.state_at_close: list[dict[str, Any]] = []
        bk.listen_partial_profit(self._profit)
        bk.listen_partial_loss(self._loss)
        self.callbacks: dict[str, Any] = {
            "on_close": lambda symbol, row, price, bt: self._close(row, price),
        }
        if callbacks:
            self.callbacks["on_partial_profit"] = lambda s, row, price, pct, bt: self.trace.append(
                ("on_partial_profit", price, pct)
            )
            self.callbacks["on_partial_loss"] = lambda s, row, price, pct, bt: self.trace.append(
                ("on_partial_loss", price, pct)
            )

    def _profit(self, e: Any) -> None:
        self.events.append(e)
        self.trace.append(("profit", e.level, e.current_price, e.timestamp))

    def _loss(self, e: Any) -> None:
        self.events.append(e)
        self.trace.append(("loss", e.level, e.current_price, e.timestamp))

    def _close(self, row: Any, price: float) -> None:
        self.trace.append(("on_close", price))
        levels = current().partial_levels[True]
        self.state_at_close.append({k: (set(p), set(lo)) for k, (p, lo) in levels.items()})

    def milestones(self) -> list[tuple[Any, ...]]:
        return [t for t in self.trace if t[0] in ("profit", "loss")]


def register(market: Market, signals: dict[int, Any], callbacks: Any, last: int = 12) -> None:
    bk.add_exchange("ex", get_candles=market.get_candles)
    bk.add_strategy(
        "s1", "1m", lambda symbol, when: signals.get(minute_of(when)), callbacks=callbacks
    )
    bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=last))


def run() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")


# -- hand-made series (60 §9.1–§9.5) ----------------------------------------------------------


@pytest.mark.parametrize("callbacks", [False, True], ids=["vectorised", "per-candle"])
def test_long_profit_and_loss_milestones(callbacks: bool) -> None:
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1)  # the price of candle j is its typical price
    market = Market()
    p = {m: flat(market, m, x) for m, x in ((1, 103.5), (2, 102.0), (4, 97.5), (5, 103.5))}
    p |= {m: flat(market, m, x) for m, x in ((6, 104.5), (7, 96.5))}
    market.bar(8, 100.0, 110.5, 100.0, 100.0)  # take profit at 110: no evaluation
    rec = Recorder(callbacks=callbacks)
    register(market, {0: bk.Signal("long", 110.0, 90.0, 60)}, rec.callbacks)

    (result,) = run()

    assert (result.close_reason, result.close_timestamp) == ("take_profit", ms(8))
    row = result.signal
    assert row.price_open == 100.0

    def pct(m: int) -> float:
        d = p[m] - 100.0
        return progress(d, 10.0) if d > 0 else progress(-d, 10.0)

    milestones = [
        # 00:01 jumps from 0 to 35 %: 10, 20, 30 in order, same price and candle time
        ("profit", 10, p[1], ms(1)),
        ("profit", 20, p[1], ms(1)),
        ("profit", 30, p[1], ms(1)),
        # 00:02 (20 %) and 00:03 (at the entry price) add nothing; the loss side is separate
        ("loss", 10, p[4], ms(4)),
        ("loss", 20, p[4], ms(4)),
        # 00:05 is back at 35 %: no re-emission; 00:06 reaches 45 %
        ("profit", 40, p[6], ms(6)),
        ("loss", 30, p[7], ms(7)),
    ]
    assert rec.milestones() == milestones
    if callbacks:
        # every evaluation with d > 0 / d < 0, right after that candle's milestone events
        assert rec.trace == [
            *milestones[:3],
            ("on_partial_profit", p[1], pct(1)),
            ("on_partial_profit", p[2], pct(2)),
            *milestones[3:5],
            ("on_partial_loss", p[4], pct(4)),
            ("on_partial_profit", p[5], pct(5)),
            milestones[5],
            ("on_partial_profit", p[6], pct(6)),
            milestones[6],
            ("on_partial_loss", p[7], pct(7)),
            ("on_close", 110.0),
        ]
        assert [round(t[2], 9) for t in rec.trace if t[0].startswith("on_partial")] == [
            35.0,
            20.0,
            25.0,
            35.0,
            45.0,
            35.0,
        ]
    for e in rec.events:
        assert (e.symbol, e.strategy_name, e.exchange_name, e.backtest) == (
            SYMBOL,
            "s1",
            "ex",
            True,
        )
        assert e.data == row
    assert [type(e) for e in rec.events] == [bk.PartialProfitContract] * 3 + [
        bk.PartialLossContract
    ] * 2 + [bk.PartialProfitContract, bk.PartialLossContract]
    # the state lives until the close (read in on_close), then it is cleared
    assert rec.state_at_close == [{row.id: ({10, 20, 30, 40}, {10, 20, 30})}]
    assert current().partial_levels[True] == {}


@pytest.mark.parametrize("callbacks", [False, True], ids=["vectorised", "per-candle"])
def test_short_profit_and_loss_milestones(callbacks: bool) -> None:
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1)
    market = Market()
    p1, p2 = flat(market, 1, 96.5), flat(market, 2, 102.5)
    market.bar(4, 100.0, 100.0, 89.5, 100.0)  # take profit at 90
    rec = Recorder(callbacks=callbacks)
    register(market, {0: bk.Signal("short", 90.0, 110.0, 60)}, rec.callbacks)

    (result,) = run()

    assert (result.close_reason, result.close_timestamp) == ("take_profit", ms(4))
    expected = [
        ("profit", 10, p1, ms(1)),
        ("profit", 20, p1, ms(1)),
        ("profit", 30, p1, ms(1)),
        ("loss", 10, p2, ms(2)),
        ("loss", 20, p2, ms(2)),
    ]
    assert rec.milestones() == expected
    if callbacks:
        assert rec.trace == [
            *expected[:3],
            ("on_partial_profit", p1, progress(100.0 - p1, 10.0)),
            *expected[3:],
            ("on_partial_loss", p2, progress(p2 - 100.0, 10.0)),
            ("on_close", 90.0),
        ]
    assert rec.state_at_close == [{result.signal.id: ({10, 20, 30}, {10, 20})}]
    assert current().partial_levels[True] == {}


@pytest.mark.parametrize("callbacks", [False, True], ids=["vectorised", "per-candle"])
@pytest.mark.parametrize("side", ["profit", "loss"])
def test_progress_is_capped_at_100_and_a_jump_emits_every_level(callbacks: bool, side: str) -> None:
    """The VWAP window of the first evaluated candle still holds a warm-up candle far beyond
    the target, so the progress passes 100 % without any candle touching TP or SL."""
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=2)
    market = Market()
    far = 125.0 if side == "profit" else 80.0
    market.bar(-2, 100.0, 100.0, 100.0, 100.0, 1000.0)
    market.bar(-1, far, far, far, far, 10.0)
    near = 105.0 if side == "profit" else 95.0
    flat(market, 0, near)
    flat(market, 1, near)
    if side == "profit":  # long, limit 101 reached by the entry VWAP (100.25): opens at 101
        signal = bk.Signal("long", 111.0, 91.0, 60, price_open=101.0)
        market.bar(2, near, 111.5, near, near)
    else:  # long, limit 100 reached by the entry VWAP (99.80): opens at 100
        signal = bk.Signal("long", 110.0, 90.0, 60, price_open=100.0)
        market.bar(2, near, near, 89.0, near)
    rec = Recorder(callbacks=callbacks)
    register(market, {0: signal}, rec.callbacks)

    (result,) = run()

    assert result.close_reason == ("take_profit" if side == "profit" else "stop_loss")
    assert result.signal.price_open == signal.price_open
    first = vwap([market.hlcv(-1), market.hlcv(0)])
    assert first == (far * 10 + near) / 11
    assert rec.milestones() == [(side, level, first, ms(0)) for level in range(10, 101, 10)]
    if callbacks:
        second = near
        distance = 10.0
        d2 = abs(second - signal.price_open)
        assert [t for t in rec.trace if t[0].startswith("on_partial")] == [
            (f"on_partial_{side}", first, 100.0),
            (f"on_partial_{side}", second, progress(d2, distance)),
        ]


def test_scheduled_activation_candle_is_not_evaluated() -> None:
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=1)
    market = Market()
    # the activating candle's own price would be 19.7 % of the way to TP: not evaluated
    market.bar(3, 102.0, 102.0, 98.9, 102.0)
    p4 = flat(market, 4, 101.5)
    flat(market, 5, 101.5)
    market.bar(6, 101.5, 109.5, 101.5, 101.5)  # take profit at 109
    rec = Recorder(callbacks=True)
    register(market, {0: bk.Signal("long", 109.0, 89.0, 60, price_open=99.0)}, rec.callbacks)

    (result,) = run()

    assert (result.signal.pending_at, result.close_timestamp) == (ms(3), ms(6))
    pct4 = progress(p4 - 99.0, 10.0)
    assert rec.trace == [
        ("profit", 10, p4, ms(4)),
        ("profit", 20, p4, ms(4)),
        ("on_partial_profit", p4, pct4),
        ("on_partial_profit", p4, pct4),  # 00:05 holds the same price: callback, no event
        ("on_close", 109.0),
    ]


def test_milestones_use_the_vwap_of_the_last_candles_and_time_expiry_clears_state() -> None:
    market = Market()
    h, lo, c, _ = market.bar(3, 100.3, 101.9, 100.3, 101.3)
    rec = Recorder(callbacks=False)
    register(market, {0: bk.Signal("long", 102.0, 98.0, 8)}, rec.callbacks)

    (result,) = run()

    price = vwap([market.hlcv(m) for m in range(-1, 4)])
    assert price == (400.0 + typical(h, lo, c)) / 5
    assert rec.milestones() == [("profit", 10, price, ms(3))]
    assert (result.close_reason, result.close_timestamp) == ("time_expired", ms(8))
    assert rec.state_at_close == [{result.signal.id: ({10}, set())}]
    assert current().partial_levels[True] == {}


# -- vectorised path == per-candle path (20 §7) -----------------------------------------------


GRID = 0.5


def random_market(seed: int) -> tuple[Any, dict[int, tuple[Any, ...]], int]:
    """A seeded random walk of 1m candles from minute -40 (a few zero-volume candles) and a
    table of random signal specs by minute; returns (get_candles, specs, last frame minute).

    Every fourth market lives on a 0.5 price grid near 100 with limit orders whose entry,
    take profit and stop loss are on the grid too: with a one-candle VWAP the progress then
    often lands exactly on a level (the `>=` boundary, bit for bit)."""
    rng = np.random.default_rng(seed)
    grid = seed % 4 == 0
    first, count = -40, 420
    ts = BASE_MS + np.arange(first, first + count, dtype=np.int64) * 60_000
    sigma = rng.uniform(0.0008, 0.004)
    start = 100.0 if grid else rng.uniform(20.0, 300.0)
    close = start * np.exp(np.cumsum(rng.normal(0.0, sigma, count)))
    if grid:
        close = np.round(close / GRID) * GRID
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, sigma / 2, count)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, sigma / 2, count)))
    if grid:
        high = np.maximum(np.round(high / GRID) * GRID, np.maximum(open_, close))
        low = np.minimum(np.round(low / GRID) * GRID, np.minimum(open_, close))
    volume = rng.uniform(0.1, 3.0, count)
    volume[rng.random(count) < 0.05] = 0.0
    columns = bk.Candles(timestamp=ts, open=open_, high=high, low=low, close=close, volume=volume)

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        lo = int(since.timestamp() * 1000)
        a = int(np.searchsorted(ts, lo, "left"))
        b = int(np.searchsorted(ts, lo + (limit - 1) * 60_000, "right"))
        return columns[a:b]

    last = 200
    specs: dict[int, tuple[Any, ...]] = {}
    for minute in range(last + 1):
        if rng.random() < 0.3:
            position = "long" if rng.random() < 0.5 else "short"
            lifetime = int(rng.integers(3, 90))
            if grid:  # distances and entry offset in grid steps
                steps = (int(rng.integers(2, 12)), int(rng.integers(2, 12)))
                specs[minute] = (position, *steps, lifetime, int(rng.integers(-2, 3)), True)
                continue
            scale = sigma * 100  # distances of a few typical candle moves, in percent
            tp = float(rng.uniform(0.5, 0.5 + 8 * scale))
            sl = float(rng.uniform(0.5, 0.5 + 8 * scale))
            offset = float(rng.uniform(-3 * scale, 3 * scale)) if rng.random() < 0.3 else None
            specs[minute] = (position, tp, sl, lifetime, offset, False)
    return get_candles, specs, last


def spec_signal(spec: tuple[Any, ...], price: float, minute: int) -> bk.Signal:
    position, tp, sl, lifetime, offset, grid = spec
    sign = 1 if position == "long" else -1
    if grid:
        entry = round(price / GRID) * GRID + offset * GRID
        return bk.Signal(
            position,
            entry + sign * tp * GRID,
            entry - sign * sl * GRID,
            lifetime,
            price_open=entry,
            id=f"sig-{minute}",
        )
    entry = price if offset is None else price * (1 + offset / 100)
    return bk.Signal(
        position,
        entry * (1 + sign * tp / 100),
        entry * (1 - sign * sl / 100),
        lifetime,
        price_open=None if offset is None else entry,
        id=f"sig-{minute}",
    )


def partial_streams(
    setup: Any, *, per_candle: bool, config: dict[str, Any]
) -> tuple[list[Any], list[Any]]:
    """One run with only milestone listeners (vectorised) or with a no-op `on_partial_profit`
    (per-candle); returns (milestone events as dicts, results as dicts)."""
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0, **config)
    events: list[Any] = []
    bk.listen_partial_profit(lambda e: events.append(("profit", e.to_dict())))
    bk.listen_partial_loss(lambda e: events.append(("loss", e.to_dict())))
    symbol, strategy_args, frame_args = setup()
    callbacks = {"on_partial_profit": lambda *a: None} if per_candle else None
    bk.add_strategy(*strategy_args, callbacks=callbacks)
    bk.add_frame(*frame_args)
    results = bk.Backtest.run_sync(symbol, strategy_name="s", exchange_name="ex", frame_name="f")
    return events, [r.to_dict() for r in results]


def event_progress(topic: str, event: dict[str, Any]) -> float:
    """The progress an event was emitted at, recomputed from its fields (60 §9.1)."""
    row, price = event["data"], event["current_price"]
    sign = 1 if row["position"] == "long" else -1
    d = sign * (price - row["price_open"])
    if topic == "profit":
        return progress(d, sign * (row["price_take_profit"] - row["price_open"]))
    return progress(-d, sign * (row["price_open"] - row["price_stop_loss"]))


def test_vectorised_milestones_equal_the_per_candle_path_on_random_markets() -> None:
    totals = {"markets": 0, "profit": 0, "loss": 0, "results": 0, "jumps": 0, "exact": 0}
    for seed in range(200):
        get_candles, specs, last = random_market(seed)
        config = {
            "CC_AVG_PRICE_CANDLES_COUNT": 1
            if seed % 4 == 0
            else random.Random(seed).choice((2, 5)),
            "CC_SCHEDULE_AWAIT_MINUTES": 30,
        }

        def setup(get_candles: Any = get_candles, specs: Any = specs, last: int = last) -> Any:
            bk.add_exchange("ex", get_candles=get_candles)

            async def get_signal(symbol: str, when: datetime) -> Any:
                spec = specs.get(minute_of(when))
                if spec is None:
                    return None
                return spec_signal(spec, await bk.get_average_price(symbol), minute_of(when))

            return (
                SYMBOL,
                ("s", "1m", get_signal),
                ("f", "1m", BASE, BASE + timedelta(minutes=last)),
            )

        fast, fast_results = partial_streams(setup, per_candle=False, config=config)
        slow, slow_results = partial_streams(setup, per_candle=True, config=config)
        assert fast == slow, f"seed {seed}"
        assert fast_results == slow_results, f"seed {seed}"
        totals["markets"] += 1
        totals["profit"] += sum(1 for t, _ in fast if t == "profit")
        totals["loss"] += sum(1 for t, _ in fast if t == "loss")
        totals["results"] += len(fast_results)
        stamps = [(e["data"]["id"], e["timestamp"]) for _, e in fast]
        totals["jumps"] += len(stamps) - len(set(stamps))  # several levels at one candle
        totals["exact"] += sum(1 for t, e in fast if event_progress(t, e) == e["level"])
    # the comparison is not vacuous: many trades, many events of both kinds, multi-level jumps
    assert totals["markets"] == 200
    assert min(totals["profit"], totals["loss"]) > 2000, totals
    assert totals["results"] > 1500 and totals["jumps"] > 500, totals
    assert totals["exact"] > 100, totals  # progress exactly on a level fires that level


def test_vectorised_milestones_equal_the_per_candle_path_on_the_sample_market() -> None:
    rng = random.Random(7)
    specs = {
        bucket: (
            rng.choice(("long", "short")),
            rng.uniform(0.6, 2.5),
            rng.uniform(0.6, 2.5),
            rng.randrange(20, 240),
            rng.uniform(-0.4, 0.4) if rng.random() < 0.3 else None,
            False,
        )
        for bucket in range(7 * 24 * 4)  # one spec per quarter hour
    }
    start = datetime(2024, 3, 4, tzinfo=UTC)
    start_minute = minute_of(start)

    def setup() -> Any:
        bk.data.add_sample_exchange("ex")

        async def get_signal(symbol: str, when: datetime) -> Any:
            minute = minute_of(when) - start_minute
            spec = specs.get(minute // 15)
            if spec is None:
                return None
            return spec_signal(spec, await bk.get_average_price(symbol), minute)

        return "BTCUSDT", ("s", "15m", get_signal), ("f", "1m", start, start + timedelta(days=7))

    fast, fast_results = partial_streams(setup, per_candle=False, config={})
    slow, slow_results = partial_streams(setup, per_candle=True, config={})

    assert fast == slow
    assert fast_results == slow_results
    assert len(fast_results) > 80
    levels = {(t, e["level"]) for t, e in fast}
    assert {("profit", 80), ("loss", 90)} <= levels
    assert sum(1 for t, _ in fast if t == "profit") > 150
    assert sum(1 for t, _ in fast if t == "loss") > 150
