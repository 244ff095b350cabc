"""The engine against a slow reference stepper on random markets (20 §5, §7; 30 §5, §8; 50 §7).

The core promise (spec README, core line 11; 20 §7; 30 §8): trades, timestamps, events and
their order equal stepping frame by frame. `reference_run` below is that stepping, written
from the spec with plain Python loops over plain lists, independent of `core/strategy.py`
and `engine/backtest.py`: it ticks every frame, and while a signal is held it walks every
1m candle. Random markets (seeded random walks, with gaps and zero-volume candles) and random
strategies (market orders, limit orders that fill at once or wait, rejected and raising
`get_signal` calls) are run through the reference, through the engine's fast path (idle-frame
jump, read-ahead store, vectorised fast-forward) and through the engine with both switches off
and every idle observer registered; every result field, callback, event and `get_signal`
instant must be equal, floats bit for bit. A hypothesis property checks the time model: no
strategy ever sees a candle that has not closed (02 §1, 50 §2, §7).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtest_kit as bk
from backtest_kit.core.pnl import to_pnl
from backtest_kit.core.validation import SignalLimits, build_signal_row
from backtest_kit.intervals import datetime_to_ms, ms_to_datetime
from backtest_kit.model.results import (
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    ScheduledResult,
)
from backtest_kit.model.signal import SignalRow
from backtest_kit.runtime import current

M = 60_000
BASE = 1_704_067_200_000  # 2024-01-01 00:00 UTC: in the past, on a day boundary
SYMBOL = "EQUSDT"
EXCHANGE = "eq-exchange"
STRATEGY = "eq-strategy"
FRAME = "eq-frame"

# Trace entries only an idle observer sees (30 §8): absent from a run without observers.
OBSERVER_ONLY = frozenset({"on_idle", "on_tick", "signal_backtest", "signal"})


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


# -- random markets -----------------------------------------------------------------------------


@dataclass
class Market:
    """Candles of one interval as plain Python lists, ascending open times (gaps: missing
    slots); `get_candles` is the source an exchange is registered with (a pure function)."""

    ts: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    step: int = M  # the interval of the series, ms
    index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {t: k for k, t in enumerate(self.ts)}
        self._columns = bk.Candles(
            timestamp=self.ts,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
        )

    def get_candles(self, symbol: str, interval: str, since: Any, limit: int) -> bk.Candles:
        """The source: candles with open time in [since, since + (limit - 1) * interval]."""
        assert symbol == SYMBOL and bk.INTERVAL_MS[interval] == self.step, (symbol, interval)
        lo = datetime_to_ms(since)
        a = bisect.bisect_left(self.ts, lo)
        b = bisect.bisect_right(self.ts, lo + (limit - 1) * self.step)
        return self._columns[a:b]


def random_market(
    rng: random.Random,
    start: int,
    count: int,
    *,
    gaps: bool,
    zero_volume: bool,
    step: int = M,
) -> Market:
    """`count` candles of a seeded random walk from `start`, `step` apart, on a 0.01 price
    grid (ties with TP/SL levels happen); gaps remove runs of candles."""
    sigma = rng.uniform(0.0008, 0.005)
    price = rng.uniform(40.0, 250.0)
    ts: list[int] = []
    o: list[float] = []
    h: list[float] = []
    lo: list[float] = []
    c: list[float] = []
    v: list[float] = []
    zero_run = 0
    for k in range(count):
        op = round(price, 2)
        cl = round(op * (1.0 + rng.gauss(0.0, sigma)), 2)
        wick = sigma * (5.0 if rng.random() < 0.03 else 0.6)  # a few wide bars
        hi = round(max(op, cl) * (1.0 + abs(rng.gauss(0.0, wick))), 2)
        lw = round(min(op, cl) * (1.0 - abs(rng.gauss(0.0, wick))), 2)
        vol = round(rng.lognormvariate(2.0, 1.0), 3)
        if zero_volume:
            if zero_run == 0 and rng.random() < 0.02:
                zero_run = rng.randint(1, 12)  # long runs make whole windows volume-free
            if zero_run > 0 or rng.random() < 0.15:
                vol = 0.0
            zero_run = max(0, zero_run - 1)
        ts.append(start + k * step)
        o.append(op)
        h.append(hi)
        lo.append(lw)
        c.append(cl)
        v.append(vol)
        price = cl
    if gaps:
        keep = [True] * count
        for _ in range(rng.randint(1, max(1, count // 60))):
            a = rng.randrange(count)
            for j in range(a, min(count, a + rng.randint(1, 14))):
                keep[j] = False
        rows = [k for k in range(count) if keep[k]]
        ts = [ts[k] for k in rows]
        o, h, lo, c, v = ([col[k] for k in rows] for col in (o, h, lo, c, v))
    return Market(ts, o, h, lo, c, v, step)


def brute_vwap(market: Market, when: int, n: int) -> float | None:
    """VWAP of the 1m candles open in [when - n min, when - 1 min] (50 §7), or None."""
    rows = [market.index[t] for t in range(when - n * M, when, M) if t in market.index]
    return vwap_of(market, rows)


def vwap_of(market: Market, rows: list[int]) -> float | None:
    """Sums oldest first; typical ((h + l) + c) / 3; mean of closes when the volume is 0."""
    if not rows:
        return None
    num = 0.0
    vol = 0.0
    for k in rows:
        num += (market.high[k] + market.low[k] + market.close[k]) / 3 * market.volume[k]
        vol += market.volume[k]
    if vol != 0:
        return num / vol
    total = 0.0
    for k in rows:
        total += market.close[k]
    return total / len(rows)


# -- random strategies ----------------------------------------------------------------------------


def random_strategy(seed: int, market: Market, n: int) -> Callable[[str, Any], Any]:
    """`get_signal` as a pure function of `when` (its RNG is keyed by the instant)."""

    def get_signal(symbol: str, when_dt: Any) -> dict[str, Any] | None:
        when = datetime_to_ms(when_dt)
        r = random.Random(seed * 1_000_003 + when // M)
        u = r.random()
        if u < 0.35:
            return None
        if u < 0.38:
            raise RuntimeError(f"get_signal failed at {when}")
        v = brute_vwap(market, when, n)
        assert v is not None  # the tick read a VWAP before asking
        long = r.random() < 0.5
        kind = r.choice(("market", "market", "now", "wait", "wait"))
        tp = r.uniform(0.0055, 0.03)
        sl = r.uniform(0.0055, 0.04)
        if r.random() < 0.04:
            tp = r.uniform(0.001, 0.004)  # too close: rejected (20 §4 L7/S7)
        sign = 1.0 if long else -1.0
        if kind == "market":
            base = v
            price_open = None
        else:
            d = r.uniform(0.0, 0.003) if kind == "now" else r.uniform(0.0003, 0.012)
            # "now": long above / short below the VWAP -> immediate; "wait": the other side
            base = round(v * (1.0 + sign * d if kind == "now" else 1.0 - sign * d), 2)
            price_open = base
        signal: dict[str, Any] = {
            "position": "long" if long else "short",
            "price_take_profit": round(base * (1.0 + sign * tp), 2),
            "price_stop_loss": round(base * (1.0 - sign * sl), 2),
            "minute_estimated_time": r.choice((1, 2, 3, 5, 8, 13, 30, 60, 90, 150)),
            "id": f"sig-{when}",
            "note": r.choice(("", "**entry** at `vwap`")),
        }
        if price_open is not None:
            signal["price_open"] = price_open
        return signal

    return get_signal


# -- the reference stepper ------------------------------------------------------------------------


@dataclass(frozen=True)
class RefConfig:
    n: int  # CC_AVG_PRICE_CANDLES_COUNT
    await_minutes: int  # CC_SCHEDULE_AWAIT_MINUTES
    slippage: float
    fee: float
    limits: SignalLimits


@dataclass
class Reference:
    results: list[dict[str, Any]]  # closed / cancelled, to_dict()
    asks: list[int]  # `when` of every get_signal call
    opened: list[dict[str, Any]]  # every opened event (tick opens and activations)
    trace: list[tuple[Any, ...]]  # every callback and event, in order
    evaluated: list[int]  # frame indices ticked when stepping every frame
    essential: list[int]  # frames the idle jump may not skip: decision or error frames
    idle: list[int]  # `when` of every idle result


def reference_run(
    market: Market,
    times: list[int],
    interval_ms: int,
    get_signal: Callable[[str, Any], Any],
    cfg: RefConfig,
) -> Reference:
    """Step every frame (30 §5) and, while a signal is held, every 1m candle (20 §5).

    Per frame: the throttle (20 §3.3), the tick VWAP over the N 1m candles closed at `when`
    (time window, 50 §7; empty -> an error event), `get_signal`, validation, then for a
    signal its resolution over the forward view (20 §5.2-§5.5) and the jump to the first
    frame >= close_timestamp + 1m. Returns every result, `get_signal` instant, opened event
    and the full ordered trace of callbacks and events an all-observing run would see.
    """
    n = cfg.n
    ref = Reference([], [], [], [], [], [], [])
    trace = ref.trace
    names = {"strategy_name": STRATEGY, "exchange_name": EXCHANGE, "symbol": SYMBOL}

    def emit(when: int, result: Any) -> None:  # on_tick, then both signal topics (20 §1.3)
        d = result.to_dict()
        trace.append(("on_tick", when, d))
        trace.append(("signal_backtest", when, d))
        trace.append(("signal", when, d))
        if d["action"] == "opened":
            ref.opened.append(d)

    def idle(when: int, v: float) -> None:
        ref.idle.append(when)
        trace.append(("on_idle", when, v))
        emit(when, IdleResult(signal=None, current_price=v, backtest=True, **names))

    last_ask: int | None = None
    i = 0
    while i < len(times):
        when = times[i]
        ref.evaluated.append(i)
        due = last_ask is None or when - last_ask >= interval_ms  # 20 §3.3, from the attempt
        if due:
            last_ask = when  # consumed before anything can fail
        v = brute_vwap(market, when, n)
        if v is None:  # the tick fails: one error event, next frame (30 §5.4)
            trace.append(("error", when, "ExchangeError", None))
            ref.essential.append(i)
            i += 1
            continue
        if not due:
            idle(when, v)
            i += 1
            continue
        ref.essential.append(i)
        ref.asks.append(when)
        trace.append(("get_signal", when, v))
        try:
            raw = get_signal(SYMBOL, ms_to_datetime(when))
        except RuntimeError as exc:
            trace.append(("error", when, "RuntimeError", str(exc)))
            raw = None
        if raw is None:
            idle(when, v)
            i += 1
            continue
        try:
            row = build_signal_row(raw, current_price=v, when=when, limits=cfg.limits, **names)
        except bk.ValidationError as exc:
            trace.append(("validation", when, exc.errors))
            idle(when, v)
            i += 1
            continue
        if row.is_scheduled:
            trace.append(("on_schedule", when, row.to_dict(), v))
            emit(when, ScheduledResult(signal=row, current_price=v, backtest=True, **names))
        else:
            open_position(trace, row, when)
            emit(
                when, OpenedResult(signal=row, current_price=row.price_open, backtest=True, **names)
            )
        view = forward_view(market, when - n * M, when + horizon(row, cfg) * M)
        out = resolve(market, view, row, when, cfg, trace, emit)
        ref.results.append(out.to_dict())
        # the next frame ticked: the first one >= close_timestamp + 1m (02 §1)
        i += 1
        while i < len(times) and times[i] < out.close_timestamp + M:
            i += 1
    return ref


def open_position(trace: list[tuple[Any, ...]], row: SignalRow, when: int) -> None:
    trace.append(("on_write", when, row.to_dict()))
    trace.append(("on_open", when, row.to_dict(), row.price_open))


def horizon(row: SignalRow, cfg: RefConfig) -> int:
    met = int(row.minute_estimated_time)
    return cfg.await_minutes + met if row.is_scheduled else met


def forward_view(market: Market, since: int, until: int) -> list[int]:
    """Market indices from `since` through the first candle at or after `until`, or the end."""
    out: list[int] = []
    for k in range(bisect.bisect_left(market.ts, since), len(market.ts)):
        out.append(k)
        if market.ts[k] >= until:
            break
    return out


def resolve(
    market: Market,
    view: list[int],
    row: SignalRow,
    start: int,
    cfg: RefConfig,
    trace: list[tuple[Any, ...]],
    emit: Callable[[int, Any], None],
) -> ClosedResult | CancelledResult:
    """The fast-forward of 20 §5, one candle at a time."""
    n = cfg.n
    ts = [market.ts[k] for k in view]
    end = ts[-1] + M  # D: end of data or just past the horizon
    names = {"strategy_name": STRATEGY, "exchange_name": EXCHANGE, "symbol": SYMBOL}

    def vwap_upto(j: int) -> float:  # the N candles present ending with j (20 §5.1)
        price = vwap_of(market, view[max(0, j - n + 1) : j + 1])
        assert price is not None
        return price

    def vwap_closed_at(x: int) -> float:
        k = len(ts) - 1
        while k >= 0 and ts[k] + M > x:
            k -= 1
        assert k >= 0
        return vwap_upto(k)

    first = 0
    while first < len(ts) and ts[first] < start:
        first += 1
    long = row.position == "long"
    po, tp, sl = row.price_open, row.price_take_profit, row.price_stop_loss
    lo = first
    if row.is_scheduled:  # 20 §5.2: SL-cancel, then activation, per candle before T
        timeout = row.scheduled_at + cfg.await_minutes * M
        activated = -1
        for j in range(first, len(ts)):
            if ts[j] >= timeout:
                break
            k = view[j]
            if (market.low[k] <= sl) if long else (market.high[k] >= sl):
                return cancel(trace, emit, row, vwap_upto(j), ts[j], start, names)
            if (market.low[k] <= po) if long else (market.high[k] >= po):
                activated = j
                break
        if activated < 0:
            at = max(row.scheduled_at, min(timeout, end))
            return cancel(trace, emit, row, vwap_closed_at(at), at, start, names)
        row = dataclasses.replace(row, pending_at=ts[activated], is_scheduled=False)
        open_position(trace, row, start)
        emit(start, OpenedResult(signal=row, current_price=po, backtest=True, **names))
        lo = activated + 1  # the activation candle gets no TP/SL test (20 §5.3)
    expires = row.pending_at + int(row.minute_estimated_time) * M
    for j in range(lo, len(ts)):  # 20 §5.4: TP, then SL, per candle before E
        if ts[j] >= expires:
            break
        k = view[j]
        if (market.high[k] >= tp) if long else (market.low[k] <= tp):
            return close(trace, emit, row, tp, "take_profit", ts[j], start, cfg, names)
        if (market.low[k] <= sl) if long else (market.high[k] >= sl):
            return close(trace, emit, row, sl, "stop_loss", ts[j], start, cfg, names)
        price = vwap_upto(j)  # partial evaluation of a candle that did not exit (60 §9)
        d = price - po if long else po - price
        if d > 0:
            pct = min(d / (tp - po if long else po - tp) * 100, 100.0)
            trace.append(("on_partial_profit", start, row.to_dict(), price, pct))
        elif d < 0:
            pct = min(-d / (po - sl if long else sl - po) * 100, 100.0)
            trace.append(("on_partial_loss", start, row.to_dict(), price, pct))
    at = max(row.pending_at, min(expires, end))
    return close(trace, emit, row, vwap_closed_at(at), "time_expired", at, start, cfg, names)


def cancel(
    trace: list[tuple[Any, ...]],
    emit: Callable[[int, Any], None],
    row: SignalRow,
    price: float,
    at: int,
    start: int,
    names: dict[str, str],
) -> CancelledResult:
    trace.append(("on_cancel", start, row.to_dict(), price))
    out = CancelledResult(
        signal=row, current_price=price, backtest=True, close_timestamp=at, **names
    )
    emit(start, out)
    return out


def close(
    trace: list[tuple[Any, ...]],
    emit: Callable[[int, Any], None],
    row: SignalRow,
    price: float,
    reason: Any,
    at: int,
    start: int,
    cfg: RefConfig,
    names: dict[str, str],
) -> ClosedResult:
    trace.append(("on_close", start, row.to_dict(), price))
    trace.append(("on_write", start, None))
    pnl = to_pnl(row, price, slippage=cfg.slippage, fee=cfg.fee)
    out = ClosedResult(
        signal=row,
        current_price=price,
        backtest=True,
        close_reason=reason,
        close_timestamp=at,
        pnl=pnl,
        **names,
    )
    emit(start, out)
    return out


# -- the engine, instrumented ---------------------------------------------------------------------


@dataclass
class EngineRun:
    results: list[dict[str, Any]]
    asks: list[int]
    trace: list[tuple[Any, ...]]
    progress: list[int]
    stats: Any  # `Backtest.get_data` once the reports exist (80 §2), else None


def now_ms() -> int:
    return datetime_to_ms(bk.get_date())


def engine_run(
    market: Market,
    start: int,
    end: int,
    interval: str,
    get_signal: Callable[[str, Any], Any],
    config: dict[str, Any],
    *,
    observers: frozenset[str],
    stepping: bool,
) -> EngineRun:
    """One `Backtest.run_sync` recording every callback and event in one trace.

    `observers`: the idle observers registered (a subset of `OBSERVER_ONLY`); `stepping`:
    both internal switches off (no idle-frame jump, no read-ahead store).
    """
    bk.reset()
    bk.set_config(**config)
    if stepping:
        current().extensions["skip_idle_frames"] = False
        current().extensions["read_ahead"] = False
    trace: list[tuple[Any, ...]] = []
    asks: list[int] = []
    progress: list[int] = []

    async def ask(symbol: str, when_dt: Any) -> Any:
        when = datetime_to_ms(when_dt)
        assert symbol == SYMBOL and now_ms() == when
        asks.append(when)
        trace.append(("get_signal", when, await bk.get_average_price(symbol)))
        return get_signal(symbol, when_dt)

    def record(name: str) -> Callable[..., None]:
        def callback(symbol: str, *args: Any) -> None:
            assert symbol == SYMBOL and args[-1] is True
            shown = [a.to_dict() if hasattr(a, "to_dict") else a for a in args[:-1]]
            trace.append((name, now_ms(), *shown))

        return callback

    names = ["on_schedule", "on_open", "on_close", "on_cancel", "on_write"]
    names += ["on_partial_profit", "on_partial_loss"]
    names += [n for n in ("on_idle", "on_tick") if n in observers]
    bk.add_exchange(EXCHANGE, market.get_candles)
    bk.add_strategy(STRATEGY, interval, ask, callbacks={n: record(n) for n in names})
    bk.add_frame(FRAME, "1m", start, end)

    def on_error(exc: Exception) -> None:
        message = str(exc) if isinstance(exc, RuntimeError) else None
        trace.append(("error", now_ms(), type(exc).__name__, message))

    bk.listen_error(on_error)
    bk.listen_validation(lambda exc: trace.append(("validation", now_ms(), exc.errors)))
    bk.listen_backtest_progress(lambda p: progress.append(p.processed_frames))
    if "signal_backtest" in observers:
        bk.listen_signal_backtest(
            lambda r: trace.append(("signal_backtest", now_ms(), r.to_dict()))
        )
    if "signal" in observers:
        bk.listen_signal(lambda r: trace.append(("signal", now_ms(), r.to_dict())))
    results = bk.Backtest.run_sync(
        SYMBOL, strategy_name=STRATEGY, exchange_name=EXCHANGE, frame_name=FRAME
    )
    stats = None
    if hasattr(bk.Backtest, "get_data"):  # reports (80) are not built yet
        stats = asyncio.run(bk.Backtest.get_data(SYMBOL, STRATEGY))
    return EngineRun([r.to_dict() for r in results], asks, trace, progress, stats)


# -- the comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    interval: str
    gaps: bool
    zero_volume: bool
    n: int
    await_minutes: int


CASES = [
    Case("1m", False, False, 5, 120),
    Case("1m", True, False, 5, 120),
    Case("5m", False, False, 5, 120),
    Case("5m", True, True, 5, 120),
    Case("1m", False, True, 3, 30),
    Case("5m", True, False, 3, 30),
    Case("1m", True, True, 1, 45),
    Case("5m", False, True, 1, 15),
    Case("1m", True, False, 8, 20),
    Case("5m", True, True, 8, 60),
]
SERIES_PER_CASE = 104  # 10 cases: 1 040 random series against the reference
# One idle observer of each kind suffices to disable the idle-frame jump (30 §8 (a)).
OBSERVER_SETS = [frozenset({name}) for name in sorted(OBSERVER_ONLY)] + [OBSERVER_ONLY]


def observed(trace: list[tuple[Any, ...]], observers: frozenset[str]) -> list[tuple[Any, ...]]:
    """The part of a full trace that a run with only `observers` registered sees."""
    hidden = OBSERVER_ONLY - observers
    return [entry for entry in trace if entry[0] not in hidden]


def compare_one(case: Case, seed: int, span: tuple[int, int] = (150, 450)) -> int:
    """One random series of `span` minutes through the reference and the engine; returns
    the number of trades."""
    rng = random.Random(seed)
    minutes = rng.randint(*span)
    market = random_market(rng, BASE, minutes, gaps=case.gaps, zero_volume=case.zero_volume)
    start = BASE + rng.randint(0, case.n + 3) * M  # sometimes before N candles exist
    end = start + rng.randint(60, minutes + 10) * M  # sometimes past the end of the data
    slippage, fee = rng.choice(((0.1, 0.1), (0.0, 0.0), (0.05, 0.2)))
    config = {
        "CC_AVG_PRICE_CANDLES_COUNT": case.n,
        "CC_SCHEDULE_AWAIT_MINUTES": case.await_minutes,
        "CC_PERCENT_SLIPPAGE": slippage,
        "CC_PERCENT_FEE": fee,
        "CC_GET_CANDLES_RETRY_DELAY_MS": 0,
    }
    cfg = RefConfig(case.n, case.await_minutes, slippage, fee, SignalLimits(0.5, 0.5, 20.0, 1440))
    get_signal = random_strategy(seed, market, case.n)
    times = list(range(start, end + 1, M))
    ref = reference_run(market, times, bk.INTERVAL_MS[case.interval], get_signal, cfg)
    where = f"case={case} seed={seed}"

    def run(observers: frozenset[str], *, stepping: bool = False) -> EngineRun:
        return engine_run(
            market,
            start,
            end,
            case.interval,
            get_signal,
            config,
            observers=observers,
            stepping=stepping,
        )

    # the fast path proper: nothing observes idle frames, so they are jumped
    fast = run(frozenset())
    assert fast.results == ref.results, where
    assert fast.asks == ref.asks, where
    assert fast.trace == observed(ref.trace, frozenset()), where
    # 30 §8: only decision frames and frames whose VWAP read fails are evaluated
    assert fast.progress == [*ref.essential, len(times)], where

    # an idle observer makes the same engine evaluate every frame
    observers = OBSERVER_SETS[seed % len(OBSERVER_SETS)]
    seen = run(observers)
    assert seen.results == ref.results, where
    assert seen.trace == observed(ref.trace, observers), where
    assert seen.progress == [*ref.evaluated, len(times)], where

    # fast path ON vs OFF, directly: no idle jump, no read-ahead, every observer
    slow = run(OBSERVER_ONLY, stepping=True)
    assert slow.results == fast.results, where
    assert slow.asks == fast.asks, where
    assert observed(slow.trace, frozenset()) == fast.trace, where
    assert observed(slow.trace, observers) == seen.trace, where
    assert slow.stats == seen.stats == fast.stats, where
    assert slow.trace == ref.trace, where
    assert slow.progress == [*ref.evaluated, len(times)], where
    opened = [e[2] for e in slow.trace if e[0] == "signal_backtest" and e[2]["action"] == "opened"]
    assert opened == ref.opened, where  # tick opens and activations (02 §3)
    idle_ticks = [e[1] for e in slow.trace if e[0] == "on_tick" and e[2]["action"] == "idle"]
    assert idle_ticks == ref.idle, where  # one idle callback per evaluated idle frame
    return len(ref.results)


def case_id(c: Case) -> str:
    return f"{c.interval}-gaps{c.gaps:d}-zerovol{c.zero_volume:d}-n{c.n}-await{c.await_minutes}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_engine_equals_reference_stepper(case: Case) -> None:
    trades = 0
    for k in range(SERIES_PER_CASE):
        seed = CASES.index(case) * 100_000 + k
        trades += compare_one(case, seed)
    assert trades > 3 * SERIES_PER_CASE  # the series do trade (several trades a series)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_engine_equals_reference_stepper_soak(case: Case) -> None:
    """Longer series (up to two days), more seeds: the same comparison as above."""
    for k in range(200):
        seed = 10_000_000 + CASES.index(case) * 100_000 + k
        compare_one(case, seed, span=(1000, 3000))


# -- no look-ahead, anywhere (02 §1, 50 §2, §7) ------------------------------------------------

SPAN_MINUTES = 3 * 1440  # three days of data for every candle interval


@dataclass
class Seen:
    """One `get_candles` answer or VWAP read inside user code, with the instant it saw."""

    when: int
    interval: str  # "vwap" for `get_average_price`
    limit: int
    rows: list[tuple[float, ...]]  # (timestamp, open, high, low, close, volume)
    price: float | None = None


def brute_window(market: Market, when: int, limit: int) -> list[tuple[float, ...]]:
    """Every candle closed at `when` among the last `limit` interval slots (50 §2)."""
    step = market.step
    oldest = when - when % step - limit * step
    return [
        (t, market.open[k], market.high[k], market.low[k], market.close[k], market.volume[k])
        for k, t in enumerate(market.ts)
        if t + step <= when and t >= oldest
    ]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    gaps=st.booleans(),
    zero_volume=st.booleans(),
    n=st.sampled_from((1, 3, 5)),
    read_ahead=st.booleans(),
    offset=st.integers(0, SPAN_MINUTES - 60),
    length=st.integers(5, 45),
    limits=st.lists(st.integers(1, 40), min_size=10, max_size=10),
)
def test_no_strategy_sees_an_unclosed_candle(
    seed: int,
    gaps: bool,
    zero_volume: bool,
    n: int,
    read_ahead: bool,
    offset: int,
    length: int,
    limits: list[int],
) -> None:
    rng = random.Random(seed)
    markets = {
        interval: random_market(
            rng,
            BASE,
            SPAN_MINUTES * M // bk.INTERVAL_MS[interval],
            gaps=gaps,
            zero_volume=zero_volume,
            step=bk.INTERVAL_MS[interval],
        )
        for interval in bk.CANDLE_INTERVALS
    }
    bk.reset()
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=n, CC_GET_CANDLES_RETRY_DELAY_MS=0)
    current().extensions["read_ahead"] = read_ahead
    seen: list[Seen] = []
    plan = list(zip(bk.CANDLE_INTERVALS, limits, strict=True))

    async def look() -> None:
        when = now_ms()
        for interval, limit in random.Random(seed + when).sample(plan, len(plan)):
            candles = await bk.get_candles(SYMBOL, interval, limit)
            seen.append(Seen(when, interval, limit, [tuple(c.to_dict().values()) for c in candles]))
        seen.append(Seen(when, "vwap", n, [], await bk.get_average_price(SYMBOL)))

    async def get_signal(symbol: str, when_dt: Any) -> dict[str, Any] | None:
        await look()
        if random.Random(seed ^ datetime_to_ms(when_dt)).random() < 0.7:
            return None
        v = seen[-1].price
        assert v is not None
        return {  # a market order: the fast-forward runs, and its callbacks look too
            "position": "long",
            "price_take_profit": v * 1.006,
            "price_stop_loss": v * 0.99,
            "minute_estimated_time": 7,
        }

    async def callback(*args: Any) -> None:
        await look()

    bk.add_exchange(
        EXCHANGE,
        lambda symbol, interval, since, limit: markets[interval].get_candles(
            symbol, interval, since, limit
        ),
    )
    bk.add_strategy(
        STRATEGY, "1m", get_signal, callbacks={"on_open": callback, "on_close": callback}
    )
    start = BASE + offset * M
    bk.add_frame(FRAME, "1m", start, start + length * M)
    errors: list[Exception] = []
    bk.listen_error(errors.append)
    bk.Backtest.run_sync(SYMBOL, strategy_name=STRATEGY, exchange_name=EXCHANGE, frame_name=FRAME)

    assert seen
    assert all(isinstance(e, bk.ExchangeError) for e in errors), errors  # VWAP reads only
    for s in seen:
        if s.interval == "vwap":
            assert s.price == brute_vwap(markets["1m"], s.when, n), s
            continue
        market = markets[s.interval]
        assert all(row[0] + market.step <= s.when for row in s.rows), s
        expected = brute_window(market, s.when, s.limit)
        assert s.rows == expected, s
        if not gaps:  # gap-free: exactly the last `limit` closed candles
            closed = brute_window(market, s.when, len(market.ts))
            assert s.rows == closed[-s.limit :], s
