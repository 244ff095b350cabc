"""Scenario tests for `backtest_kit.core.strategy` (the signal state machine, 20) driven through
real backtests over hand-made 1m series, so every expected value is computed by hand: exits and
their prices (10 §6, 20 §5), PnL (10 §7), scheduled entries, the end of data (20 §5.5), the
throttle and the generation step (20 §3.3–§3.4), and the callback order of 20 §1.3."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import backtest_kit as bk
from support import BASE, SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def vwap(bars: list[tuple[float, float, float, float]]) -> float:
    """50 §7: sum(((h + l) + c) / 3 * v) / sum(v), oldest first."""
    num = 0.0
    vol = 0.0
    for h, lo, c, v in bars:
        num += ((h + lo) + c) / 3 * v
        vol += v
    return num / vol


def long_pnl(price_open: float, price_close: float, s: float = 0.1, f: float = 0.1) -> float:
    open_adj = price_open * (1 + s / 100)
    close_adj = price_close * (1 - s / 100)
    pct = (close_adj - open_adj) / open_adj * 100
    pct -= f * 2
    return pct


def short_pnl(price_open: float, price_close: float, s: float = 0.1, f: float = 0.1) -> float:
    open_adj = price_open * (1 - s / 100)
    close_adj = price_close * (1 + s / 100)
    pct = (open_adj - close_adj) / open_adj * 100
    pct -= f * 2
    return pct


class Script:
    """`get_signal` answering from a {minute: value} table and recording every call."""

    def __init__(self, answers: dict[int, Any] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[int] = []

    def __call__(self, symbol: str, when: datetime) -> Any:
        minute = minute_of(when)
        self.calls.append(minute)
        return self.answers.get(minute)


def register(
    market: Market,
    get_signal: Callable[..., Any],
    *,
    frame: tuple[int, int] = (0, 30),
    interval: str = "1m",
    callbacks: Any = None,
) -> None:
    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_strategy(
        strategy_name="s1", interval=interval, get_signal=get_signal, callbacks=callbacks
    )
    bk.add_frame(
        frame_name="f",
        interval="1m",
        start_date=BASE + timedelta(minutes=frame[0]),
        end_date=BASE + timedelta(minutes=frame[1]),
    )


def run() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")


def record_topics() -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"signal": [], "error": [], "validation": []}
    bk.listen_signal_backtest(seen["signal"].append)
    bk.listen_error(seen["error"].append)
    bk.listen_validation(seen["validation"].append)
    return seen


LONG = bk.Signal("long", 101.0, 99.0, 60)


# -- exits of an open position (20 §5.4, 10 §6–§7) ----------------------------------------------


def test_long_take_profit_pnl_with_default_fee_and_slippage() -> None:
    market = Market()
    market.bar(7, 100.0, 101.2, 100.0, 100.0)
    script = Script({0: LONG})
    register(market, script)

    results = run()

    assert len(results) == 1
    res = results[0]
    assert isinstance(res, bk.ClosedResult)
    assert res.action == "closed"
    assert res.close_reason == "take_profit"
    assert res.close_timestamp == ms(7)
    assert res.current_price == 101.0
    row = res.signal
    assert (row.position, row.price_open, row.price_take_profit, row.price_stop_loss) == (
        "long",
        100.0,
        101.0,
        99.0,
    )
    assert (row.scheduled_at, row.pending_at, row.is_scheduled) == (ms(0), ms(0), False)
    assert res.pnl == bk.PnL(long_pnl(100.0, 101.0), 100.0, 101.0)
    assert res.pnl.pnl_percentage == pytest.approx(0.5982017982017982, rel=1e-15)
    assert (res.symbol, res.strategy_name, res.exchange_name, res.backtest) == (
        SYMBOL,
        "s1",
        "ex",
        True,
    )
    # the exit candle of 00:07 has closed at 00:08: the next question is asked then
    assert script.calls[:2] == [0, 8]


def test_short_stop_loss() -> None:
    market = Market()
    market.bar(3, 100.0, 101.5, 100.0, 100.0)
    register(market, Script({0: bk.Signal("short", 99.0, 101.0, 60)}))

    [res] = run()

    assert res.close_reason == "stop_loss"
    assert res.close_timestamp == ms(3)
    assert res.current_price == 101.0
    assert res.signal.position == "short"
    assert res.pnl == bk.PnL(short_pnl(100.0, 101.0), 100.0, 101.0)
    assert res.pnl.pnl_percentage == pytest.approx(-1.4022022022022, rel=1e-12)


def test_time_expiry_at_pending_at_plus_lifetime_priced_with_the_closed_window() -> None:
    market = Market()
    bars = {
        -2: market.bar(-2, 100.0, 100.3, 99.9, 100.2, 2.0),
        -1: market.bar(-1, 100.2, 100.4, 100.0, 100.1, 1.5),
        0: market.bar(0, 100.1, 100.5, 99.8, 100.3, 3.0),
        1: market.bar(1, 100.3, 100.6, 100.2, 100.5, 0.5),
        2: market.bar(2, 100.5, 100.7, 100.4, 100.6, 4.0),
    }
    # the candle opening at E is still forming at E: it must not enter the price
    market.bar(3, 100.6, 100.9, 99.5, 99.6, 50.0)
    entry = vwap([market.hlcv(m) for m in (-5, -4, -3, -2, -1)])
    register(market, Script({0: bk.Signal("long", 101.0, 99.0, 3)}))

    [res] = run()

    expected_price = vwap([bars[m] for m in (-2, -1, 0, 1, 2)])
    assert res.close_reason == "time_expired"
    assert res.close_timestamp == ms(3)
    assert res.signal.price_open == entry
    assert res.current_price == expected_price
    assert res.pnl == bk.PnL(long_pnl(entry, expected_price), entry, expected_price)


def test_candle_through_take_profit_and_stop_loss_closes_by_take_profit() -> None:
    market = Market()
    market.bar(2, 100.0, 101.5, 98.5, 100.0)
    register(market, Script({0: LONG}))

    [res] = run()

    assert (res.close_reason, res.close_timestamp, res.current_price) == (
        "take_profit",
        ms(2),
        101.0,
    )
    assert res.pnl.price_close == 101.0


# -- scheduled entries (20 §5.2–§5.3) -----------------------------------------------------------

SCHEDULED = bk.Signal("long", 99.5, 97.0, 60, price_open=98.0)


def test_scheduled_long_cancelled_by_its_stop_loss_before_activation() -> None:
    market = Market()
    stop_bar = market.bar(4, 100.0, 100.0, 96.5, 97.0, 2.0)
    register(market, Script({0: SCHEDULED}))
    seen = record_topics()

    [res] = run()

    assert isinstance(res, bk.CancelledResult)
    assert res.action == "cancelled"
    assert res.close_timestamp == ms(4)
    flat = (100.0, 100.0, 100.0, 1.0)
    assert res.current_price == vwap([flat, flat, flat, flat, stop_bar])
    assert (res.signal.is_scheduled, res.signal.scheduled_at, res.signal.pending_at) == (
        True,
        ms(0),
        ms(0),
    )
    assert res.signal.price_open == 98.0
    assert not hasattr(res, "pnl")
    assert [r.action for r in seen["signal"] if r.action != "idle"] == ["scheduled", "cancelled"]


def test_scheduled_timeout_at_exactly_scheduled_at_plus_await() -> None:
    market = Market()
    bars = [
        market.bar(m, 100.0, 100.2 + m / 1000, 99.9, 100.1, 1.0 + m % 3) for m in range(115, 120)
    ]
    market.bar(120, 100.0, 100.9, 99.0, 99.1, 40.0)  # forming at T: not in the price
    script = Script({0: SCHEDULED})
    register(market, script, frame=(0, 200))

    results = run()

    assert len(results) == 1
    res = results[0]
    assert res.action == "cancelled"
    assert res.close_timestamp == ms(120)
    assert res.current_price == vwap(bars)
    assert script.calls[:2] == [0, 121]


def test_scheduled_timeout_beyond_the_frame_end() -> None:
    market = Market()
    bars = [market.bar(m, 100.0, 100.3, 99.8, 100.0 + m / 1000, 2.0) for m in range(115, 120)]
    script = Script({0: SCHEDULED})
    register(market, script, frame=(0, 10))

    [res] = run()

    assert res.action == "cancelled"
    assert res.close_timestamp == ms(120)
    assert res.current_price == vwap(bars)
    assert script.calls == [0]


def test_activation_then_take_profit_on_the_next_candle() -> None:
    market = Market()
    market.bar(10, 100.0, 100.0, 97.8, 99.8)  # reaches the entry; above TP, yet not a TP
    market.bar(11, 98.0, 99.6, 98.0, 99.0)
    register(market, Script({0: SCHEDULED}), frame=(0, 20))
    seen = record_topics()

    [res] = run()

    assert res.close_reason == "take_profit"
    assert res.close_timestamp == ms(11)
    assert res.current_price == 99.5
    row = res.signal
    assert (row.scheduled_at, row.pending_at, row.is_scheduled, row.price_open) == (
        ms(0),
        ms(10),
        False,
        98.0,
    )
    assert res.pnl == bk.PnL(long_pnl(98.0, 99.5), 98.0, 99.5)
    actions = [r.action for r in seen["signal"]]
    assert actions == ["scheduled", "opened", "closed"] + ["idle"] * 9
    scheduled, opened, closed = seen["signal"][:3]
    assert scheduled.current_price == 100.0
    assert scheduled.signal.is_scheduled is True
    assert opened.current_price == 98.0
    assert opened.signal == row
    assert closed is res
    assert seen["error"] == []


# -- end of data (20 §5.5) -----------------------------------------------------------------------


def test_open_position_expires_at_the_end_of_data() -> None:
    market = Market(first=-60, last=9)  # ten candles from the entry: 00:00 ... 00:09
    tail = [market.bar(m, 100.0, 100.4, 99.9, 100.0 + m / 100, float(m)) for m in range(5, 10)]
    register(market, Script({0: bk.Signal("long", 101.0, 99.0, 60)}), frame=(0, 5))
    seen = record_topics()

    results = run()

    assert len(results) == 1
    res = results[0]
    assert res.close_reason == "time_expired"
    assert res.close_timestamp == ms(10)
    assert res.current_price == vwap(tail)
    assert res.pnl == bk.PnL(long_pnl(100.0, vwap(tail)), 100.0, vwap(tail))
    assert "active" not in [r.action for r in seen["signal"]]
    assert [r.action for r in seen["signal"]] == ["opened", "closed"]


# -- throttle and the generation step (20 §3.3–§3.4) --------------------------------------------


def test_throttle_five_minutes_on_one_minute_frames() -> None:
    script = Script()
    register(Market(), script, frame=(0, 20), interval="5m")

    assert run() == []
    assert script.calls == [0, 5, 10, 15, 20]


def test_a_raising_get_signal_is_reported_and_the_next_attempt_comes_one_interval_later() -> None:
    boom = RuntimeError("no idea")
    calls: list[int] = []

    def get_signal(symbol: str, when: datetime) -> None:
        calls.append(minute_of(when))
        if minute_of(when) == 0:
            raise boom

    register(Market(), get_signal, frame=(0, 3))
    seen = record_topics()

    assert run() == []
    assert calls == [0, 1, 2, 3]
    assert seen["error"] == [boom]
    assert seen["error"][0] is boom
    assert seen["validation"] == []
    assert [r.action for r in seen["signal"]] == ["idle"] * 4


def test_async_get_signal_past_the_time_limit_is_cancelled_and_reported() -> None:
    bk.set_config(CC_MAX_SIGNAL_GENERATION_SECONDS=1)
    state = {"cancelled": False}
    calls: list[int] = []

    async def get_signal(symbol: str, when: datetime) -> Any:
        calls.append(minute_of(when))
        if minute_of(when) != 0:
            return None
        try:
            await asyncio.sleep(1.3)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return LONG

    register(Market(), get_signal, frame=(0, 2))
    seen = record_topics()

    assert run() == []
    assert calls == [0, 1, 2]
    assert len(seen["error"]) == 1
    err = seen["error"][0]
    assert isinstance(err, bk.BacktestKitError)
    assert str(err) == "Timeout for s1 symbol=BTCUSDT"
    assert state["cancelled"] is True
    assert [r.action for r in seen["signal"]] == ["idle"] * 3


def test_slow_sync_get_signal_result_is_discarded() -> None:
    bk.set_config(CC_MAX_SIGNAL_GENERATION_SECONDS=1)
    market = Market()
    market.bar(3, 100.0, 101.2, 100.0, 100.0)  # would take profit if the signal were kept

    def get_signal(symbol: str, when: datetime) -> Any:
        if minute_of(when) == 0:
            time.sleep(1.1)
            return LONG
        return None

    register(market, get_signal, frame=(0, 5))
    seen = record_topics()

    assert run() == []
    assert [str(e) for e in seen["error"]] == ["Timeout for s1 symbol=BTCUSDT"]
    assert [r.action for r in seen["signal"]] == ["idle"] * 6


def test_garbage_returns_are_rejections_not_errors() -> None:
    idle_prices: list[float] = []
    script = Script(
        {
            0: False,
            1: 5,
            2: {"priceOpen": 1},
            3: bk.Signal("long", 101.0, 99.0, 60, note=3),  # type: ignore[arg-type]
        }
    )
    register(
        Market(),
        script,
        frame=(0, 4),
        callbacks={"on_idle": lambda symbol, price, bt: idle_prices.append(price)},
    )
    seen = record_topics()

    assert run() == []
    assert seen["error"] == []
    assert all(type(e) is bk.ValidationError for e in seen["validation"])
    assert [e.errors for e in seen["validation"]] == [
        ("get_signal must return a Signal, a mapping or None, got bool False",),
        ("get_signal must return a Signal, a mapping or None, got int 5",),
        (
            "signal has unknown keys 'priceOpen' (allowed: position, price_take_profit, "
            "price_stop_loss, minute_estimated_time, price_open, note, id)",
        ),
        ("note must be a str, got int 3",),
    ]
    assert [e.signal for e in seen["validation"]][:3] == [False, 5, {"priceOpen": 1}]
    assert idle_prices == [100.0] * 5
    assert [r.action for r in seen["signal"]] == ["idle"] * 5


def test_invalid_signal_goes_to_listen_validation_with_the_rule_text() -> None:
    register(Market(), Script({0: bk.Signal("long", 100.4, 99.0, 60)}), frame=(0, 3))
    seen = record_topics()

    assert run() == []
    [err] = seen["validation"]
    assert isinstance(err, bk.ValidationError)
    assert err.errors == ("long: take_profit too close to price_open (0.400%), minimum 0.5%",)
    assert str(err) == (
        "Invalid signal for long position:\n"
        "long: take_profit too close to price_open (0.400%), minimum 0.5%"
    )
    assert err.signal.price_take_profit == 100.4
    assert seen["error"] == []


# -- callbacks (20 §1.2–§1.3) --------------------------------------------------------------------


def test_callback_and_event_order_of_every_transition() -> None:
    market = Market()
    market.bar(2, 100.0, 101.2, 100.0, 100.0)  # TP of the immediate trade opened at 0
    market.bar(6, 100.0, 100.0, 97.8, 99.8)  # activation of the scheduled signal of 4
    market.bar(7, 98.0, 99.6, 98.0, 99.0)  # its TP
    market.bar(10, 100.0, 100.0, 96.5, 97.0)  # SL before entry of the scheduled signal of 8
    log: list[tuple[Any, ...]] = []

    def on(name: str) -> Callable[..., None]:
        def callback(symbol: str, *args: Any) -> None:
            assert symbol == SYMBOL
            assert args[-1] is True  # backtest flag
            if name == "on_tick":
                log.append((name, args[0].action))
            elif name == "on_write":
                log.append((name, None if args[0] is None else args[0].pending_at))
            elif name == "on_idle":
                log.append((name, args[0]))
            else:
                log.append((name, args[0].pending_at, args[1]))

        return callback

    names = ("on_tick", "on_idle", "on_schedule", "on_open", "on_close", "on_cancel", "on_write")
    callbacks = bk.StrategyCallbacks(**{n: on(n) for n in names})
    register(
        market, Script({0: LONG, 4: SCHEDULED, 8: SCHEDULED}), frame=(0, 11), callbacks=callbacks
    )
    bk.listen_signal_backtest(lambda r: log.append(("signal_backtest", r.action)))
    bk.listen_signal(lambda r: log.append(("signal", r.action)))

    results = run()

    assert [r.action for r in results] == ["closed", "closed", "cancelled"]

    def price(*minutes: int) -> float:
        return vwap([market.hlcv(m) for m in minutes])

    def events(action: str) -> list[tuple[Any, ...]]:
        return [("signal_backtest", action), ("signal", action)]

    assert log == [
        # 00:00 open (immediate)
        ("on_write", ms(0)),
        ("on_open", ms(0), 100.0),
        ("on_tick", "opened"),
        *events("opened"),
        # close in the candle of 00:02
        ("on_close", ms(0), 101.0),
        ("on_write", None),
        ("on_tick", "closed"),
        *events("closed"),
        # 00:03 idle
        ("on_idle", price(-2, -1, 0, 1, 2)),
        ("on_tick", "idle"),
        *events("idle"),
        # 00:04 schedule, activation at 00:06, close at 00:07
        ("on_schedule", ms(4), price(-1, 0, 1, 2, 3)),
        ("on_tick", "scheduled"),
        *events("scheduled"),
        ("on_write", ms(6)),
        ("on_open", ms(6), 98.0),
        ("on_tick", "opened"),
        *events("opened"),
        ("on_close", ms(6), 99.5),
        ("on_write", None),
        ("on_tick", "closed"),
        *events("closed"),
        # 00:08 schedule, cancelled by the stop loss in the candle of 00:10
        ("on_schedule", ms(8), price(3, 4, 5, 6, 7)),
        ("on_tick", "scheduled"),
        *events("scheduled"),
        ("on_cancel", ms(8), price(6, 7, 8, 9, 10)),
        ("on_tick", "cancelled"),
        *events("cancelled"),
        # 00:11 idle
        ("on_idle", price(6, 7, 8, 9, 10)),
        ("on_tick", "idle"),
        *events("idle"),
    ]
    writes = [entry for entry in log if entry[0] == "on_write"]
    assert writes == [
        ("on_write", ms(0)),
        ("on_write", None),
        ("on_write", ms(6)),
        ("on_write", None),
    ]


def test_a_raising_strategy_callback_is_reported_and_the_transition_continues() -> None:
    market = Market()
    market.bar(3, 100.0, 101.2, 100.0, 100.0)
    boom = ValueError("on_open broke")
    closes: list[float] = []

    def on_open(symbol: str, row: Any, price: float, bt: bool) -> None:
        raise boom

    callbacks = {"on_open": on_open, "on_close": lambda s, row, price, bt: closes.append(price)}
    register(market, Script({0: LONG}), frame=(0, 5), callbacks=callbacks)
    seen = record_topics()

    results = run()

    assert seen["error"] == [boom]
    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(3))]
    assert closes == [101.0]
    assert [r.action for r in seen["signal"]] == ["opened", "closed", "idle", "idle"]


def test_waiting_row_cancelled_at_the_end_of_data() -> None:
    market = Market(first=-60, last=30)
    tail = [market.bar(m, 100.0, 100.2, 99.9, 100.0 + m / 1000, 1.0 + m % 4) for m in range(26, 31)]
    register(market, Script({0: SCHEDULED}), frame=(0, 5))
    seen = record_topics()

    [res] = run()

    assert res.action == "cancelled"
    assert res.close_timestamp == ms(31)
    assert res.current_price == vwap(tail)
    assert [r.action for r in seen["signal"]] == ["scheduled", "cancelled"]


def test_activation_on_the_last_candle_closes_the_activated_row() -> None:
    market = Market(first=-60, last=10)
    market.bar(10, 100.0, 100.0, 97.8, 99.0, 3.0)
    register(market, Script({0: SCHEDULED}), frame=(0, 5))
    seen = record_topics()

    [res] = run()

    expected = vwap([market.hlcv(m) for m in (6, 7, 8, 9, 10)])
    assert res.close_reason == "time_expired"
    assert res.close_timestamp == ms(11)
    assert res.current_price == expected
    assert (res.signal.is_scheduled, res.signal.pending_at, res.signal.scheduled_at) == (
        False,
        ms(10),
        ms(0),
    )
    assert res.pnl == bk.PnL(long_pnl(98.0, expected), 98.0, expected)
    assert [r.action for r in seen["signal"]] == ["scheduled", "opened", "closed"]


def test_no_candle_after_the_entry_resolves_at_the_entry_with_its_window() -> None:
    market = Market(first=-60, last=-1)
    market.bar(-1, 100.0, 100.5, 99.5, 100.2, 2.0)
    entry = vwap([market.hlcv(m) for m in (-5, -4, -3, -2, -1)])
    register(market, Script({0: LONG}), frame=(0, 0))

    [res] = run()

    assert res.close_reason == "time_expired"
    assert res.close_timestamp == ms(0)
    assert res.signal.price_open == entry
    assert res.current_price == entry
    assert res.pnl == bk.PnL(long_pnl(entry, entry), entry, entry)
