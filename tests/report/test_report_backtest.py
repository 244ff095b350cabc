"""Reports fed by real backtests on hand-made markets (80 §2, §3, §5, §6, §7, §8, §9; 30 §4):
two symbols of one strategy, every statistic and every cell computed by hand. Fees and
slippage are 0, so a long from 100 to 102 is exactly +2 %.

Market shapes: flat at 100 (volume 1) with single bars whose typical price stays 100, so
every entry price (the VWAP of the 5 previous closed 1m candles) is exactly 100:
a TP bar (high 102.5, low 97.5) reaches a 102 take profit (checked before the stop loss),
an SL bar (high 101.5, low 98.5) reaches a 99 stop loss but not the take profit.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import backtest_kit as bk
from support import BASE, Market, minute_of, ms

A, B = "AAAUSDT", "BBBUSDT"


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0, CC_GET_CANDLES_RETRY_DELAY_MS=0)


def tp_bar(market: Market, minute: int) -> None:
    market.bar(minute, 100, 102.5, 97.5, 100)


def sl_bar(market: Market, minute: int) -> None:
    market.bar(minute, 100, 101.5, 98.5, 100)


def long(minutes: int = 60, **kw: Any) -> bk.Signal:
    return bk.Signal("long", 102.0, 99.0, minutes, **kw)


class Plan:
    """`get_signal` answering from {symbol: {minute: signal}}."""

    def __init__(self, answers: dict[str, dict[int, Any]]) -> None:
        self.answers = answers

    def __call__(self, symbol: str, when: datetime) -> Any:
        return self.answers.get(symbol, {}).get(minute_of(when))


def register(markets: dict[str, Market], plan: Plan, *, last: int = 40, **strategy: Any) -> None:
    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        return markets[symbol].get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=plan, **strategy)
    bk.add_frame(
        frame_name="f", interval="1m", start_date=BASE, end_date=BASE + timedelta(minutes=last)
    )


def run(symbol: str) -> list[Any]:
    return bk.Backtest.run_sync(symbol, strategy_name="s1", exchange_name="ex", frame_name="f")


def two_symbols() -> None:
    """A: +2 (TP at 3), -1 (SL at 14), 0 (expiry at 30); B: +2 (TP at 5), +2 (TP at 12)."""
    a, b = Market(), Market()
    tp_bar(a, 3)
    sl_bar(a, 14)
    tp_bar(b, 5)
    tp_bar(b, 12)
    plan = Plan(
        {
            A: {0: long(id="a1"), 10: long(id="a2"), 20: long(10, id="a3")},
            B: {0: long(id="b1"), 10: long(id="b2")},
        }
    )
    register({A: a, B: b}, plan)
    run(B)  # B first: the heatmap still ranks A first (by Sharpe)
    run(A)


# -- Backtest statistics and report (80 §2, §3) -------------------------------------------------


def test_statistics_of_three_trades_by_hand() -> None:
    two_symbols()
    s = asyncio.run(bk.Backtest.get_data(A, "s1"))
    assert [r.signal.id for r in s.signal_list] == ["a3", "a2", "a1"]  # newest first
    assert [r.pnl.pnl_percentage for r in s.signal_list] == [0.0, -1.0, 2.0]
    assert (s.total_signals, s.win_count, s.loss_count) == (3, 1, 1)  # 0.0 is neither
    assert s.win_rate == pytest.approx(100 / 3)
    assert s.avg_pnl == pytest.approx(1 / 3)
    assert s.total_pnl == 1.0
    std = math.sqrt(((2 - 1 / 3) ** 2 + (-1 - 1 / 3) ** 2 + (1 / 3) ** 2) / 3)  # sqrt(14/9)
    assert s.std_dev == pytest.approx(math.sqrt(14 / 9)) == pytest.approx(std)
    assert s.sharpe_ratio == pytest.approx((1 / 3) / math.sqrt(14 / 9))
    assert s.annualized_sharpe_ratio == pytest.approx((1 / 3) / math.sqrt(14 / 9) * math.sqrt(365))
    assert s.certainty_ratio == 2.0  # avg win 2 / |avg loss -1|
    # held 3, 4 and 10 minutes: mean 17/3 minutes
    assert s.expected_yearly_returns == pytest.approx((1 / 3) * 365 / (17 / 3 / 1440))


def test_two_wins_of_equal_size_have_zero_std_and_sharpe_zero() -> None:
    two_symbols()
    s = asyncio.run(bk.Backtest.get_data(B, "s1"))
    assert (s.total_signals, s.win_count, s.loss_count, s.win_rate) == (2, 2, 0, 100.0)
    assert (s.avg_pnl, s.total_pnl, s.std_dev) == (2.0, 4.0, 0.0)
    assert (s.sharpe_ratio, s.annualized_sharpe_ratio) == (0.0, 0.0)  # not None
    assert s.certainty_ratio == 0.0  # no losing trade
    # held 5 and 2 minutes: mean 3.5 minutes
    assert s.expected_yearly_returns == pytest.approx(2 * 365 / (3.5 / 1440))


def test_a_symbol_without_trades_has_empty_statistics() -> None:
    two_symbols()
    s = asyncio.run(bk.Backtest.get_data("ZZZUSDT", "s1"))
    assert s == bk.BacktestStatistics((), 0, 0, 0, None, None, None, None, None, None, None, None)
    assert asyncio.run(bk.Backtest.get_report("ZZZUSDT", "s1")) == (
        "# Backtest Report: s1\n\nNo signals closed yet."
    )


def test_backtest_report_cell_by_cell() -> None:
    two_symbols()
    text = asyncio.run(bk.Backtest.get_report(A, "s1"))
    sharpe = (1 / 3) / math.sqrt(14 / 9)
    assert text == "\n".join(
        [
            "# Backtest Report: s1",
            "",
            "| Signal ID | Symbol | Position | Open Price | Close Price | Take Profit | Stop Loss"
            " | PNL (net) | Close Reason | Duration (min) | Open Time | Close Time |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| a3 | AAAUSDT | LONG | 100.00000000 USD | 100.00000000 USD | 102.00000000 USD"
            " | 99.00000000 USD | 0.00% | time_expired | 10 | 2024-01-01T00:20:00.000Z"
            " | 2024-01-01T00:30:00.000Z |",
            "| a2 | AAAUSDT | LONG | 100.00000000 USD | 99.00000000 USD | 102.00000000 USD"
            " | 99.00000000 USD | -1.00% | stop_loss | 4 | 2024-01-01T00:10:00.000Z"
            " | 2024-01-01T00:14:00.000Z |",
            "| a1 | AAAUSDT | LONG | 100.00000000 USD | 102.00000000 USD | 102.00000000 USD"
            " | 99.00000000 USD | +2.00% | take_profit | 3 | 2024-01-01T00:00:00.000Z"
            " | 2024-01-01T00:03:00.000Z |",
            "",
            "**Total signals:** 3",
            "**Closed signals:** 3",
            "**Win rate:** 33.33% (1W / 1L) (higher is better)",
            "**Average PNL:** +0.33% (higher is better)",
            "**Total PNL:** +1.00% (higher is better)",
            "**Standard Deviation:** 1.247% (lower is better)",
            "**Sharpe Ratio:** 0.267 (higher is better)",
            f"**Annualized Sharpe Ratio:** {sharpe * math.sqrt(365):.3f} (higher is better)",
            "**Certainty Ratio:** 2.000 (higher is better)",
            "**Expected Yearly Returns:** +30917.65% (higher is better)",
        ]
    )
    assert f"{sharpe * math.sqrt(365):.3f}" == "5.106"


def test_three_hundred_trades_are_all_counted() -> None:
    # [deviation] 80 §1.1: no 250 cap; one trade every 2 minutes, each expiring after 1 minute
    answers = {m: long(1, id=f"t{m}") for m in range(0, 600, 2)}
    register({A: Market(last=700)}, Plan({A: answers}), last=600)
    assert len(run(A)) == 300
    s = asyncio.run(bk.Backtest.get_data(A, "s1"))
    assert s.total_signals == 300 == len(s.signal_list)
    assert s.signal_list[-1].signal.id == "t0"
    assert asyncio.run(bk.Heat.get_data("s1", backtest=True)).symbols[0].total_trades == 300


def test_to_pandas_gives_one_typed_row_per_trade_oldest_first() -> None:
    two_symbols()
    df = asyncio.run(bk.Backtest.get_data(A, "s1")).to_pandas()
    assert list(df.columns) == [
        "signal_id",
        "symbol",
        "strategy_name",
        "exchange_name",
        "position",
        "note",
        "price_open",
        "price_close",
        "price_take_profit",
        "price_stop_loss",
        "pnl_percentage",
        "close_reason",
        "minute_estimated_time",
        "scheduled_at",
        "pending_at",
        "close_timestamp",
        "duration_minutes",
        "quantity",
        "cost",
    ]
    assert df.signal_id.tolist() == ["a1", "a2", "a3"]
    assert df.pnl_percentage.tolist() == [2.0, -1.0, 0.0]
    assert df.price_close.tolist() == [102.0, 99.0, 100.0]
    assert df.close_reason.tolist() == ["take_profit", "stop_loss", "time_expired"]
    assert df.duration_minutes.tolist() == [3, 4, 10]
    assert df.pnl_percentage.cumsum().tolist() == [2.0, 1.0, 1.0]
    assert df.close_timestamp.iloc[1] == pd.Timestamp("2024-01-01T00:14:00", tz="UTC")
    assert str(df.pending_at.dtype) == "datetime64[ms, UTC]"
    assert str(df.signal_id.dtype) == "string"
    assert list(df.position.cat.categories) == ["long", "short"]
    assert list(df.close_reason.cat.categories) == ["take_profit", "stop_loss", "time_expired"]
    assert df.minute_estimated_time.dtype == "int64"
    assert df.duration_minutes.dtype == "int64"
    assert df.quantity.isna().all() and df.cost.dtype == "float64"  # no sizing


def test_to_pandas_of_no_trades_keeps_the_columns_and_types() -> None:
    register({A: Market()}, Plan({}))
    run(A)
    df = asyncio.run(bk.Backtest.get_data(A, "s1")).to_pandas()
    assert len(df) == 0
    assert len(df.columns) == 19
    assert str(df.close_timestamp.dtype) == "datetime64[ms, UTC]"
    assert df.pnl_percentage.dtype == "float64"


# -- Heatmap (80 §7) ----------------------------------------------------------------------------


def test_heatmap_of_two_symbols_cell_by_cell() -> None:
    two_symbols()
    heat = asyncio.run(bk.Heat.get_data("s1", backtest=True))
    a, b = heat.symbols
    assert (a.symbol, b.symbol) == (A, B)  # Sharpe descending, None last
    sharpe_a = (1 / 3) / math.sqrt(14 / 9)
    assert a.to_dict() == {
        "symbol": A,
        "total_pnl": 1.0,
        "sharpe_ratio": pytest.approx(sharpe_a),
        "max_drawdown": 1.0,  # peak 2 after a1, trough 1 after a2
        "total_trades": 3,
        "win_count": 1,
        "loss_count": 1,
        "win_rate": pytest.approx(100 / 3),
        "avg_pnl": pytest.approx(1 / 3),
        "std_dev": pytest.approx(math.sqrt(14 / 9)),
        "profit_factor": 2.0,
        "avg_win": 2.0,
        "avg_loss": -1.0,
        "max_win_streak": 1,
        "max_loss_streak": 1,
        "expectancy": pytest.approx(0.0, abs=1e-12),  # 1/3 * 2 + 2/3 * -1
    }
    assert b.to_dict() == {
        "symbol": B,
        "total_pnl": 4.0,
        "sharpe_ratio": None,  # std 0
        "max_drawdown": 0.0,
        "total_trades": 2,
        "win_count": 2,
        "loss_count": 0,
        "win_rate": 100.0,
        "avg_pnl": 2.0,
        "std_dev": 0.0,
        "profit_factor": None,  # no loss
        "avg_win": 2.0,
        "avg_loss": None,
        "max_win_streak": 2,
        "max_loss_streak": 0,
        "expectancy": None,
    }
    assert (heat.total_symbols, heat.portfolio_total_trades, heat.portfolio_total_pnl) == (
        2,
        5,
        5.0,
    )
    # B has no Sharpe but its trades still count in the denominator
    assert heat.portfolio_sharpe_ratio == pytest.approx(sharpe_a * 3 / 5)


def test_heat_report_of_two_symbols() -> None:
    two_symbols()
    text = asyncio.run(bk.Heat.get_report("s1", backtest=True))
    assert text == "\n".join(
        [
            "# Portfolio Heatmap: s1",
            "",
            "**Total Symbols:** 2 | **Portfolio PNL:** +5.00% | **Portfolio Sharpe:** 0.16"
            " | **Total Trades:** 5",
            "",
            "| Symbol | Total PNL | Sharpe | PF | Expect | WR | Avg Win | Avg Loss | Max DD"
            " | W Streak | L Streak | Trades |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            # expectancy 33.33…/100 * 2 + 66.66…/100 * -1 is -1.1e-16 in floating point
            "| AAAUSDT | +1.00% | 0.27 | 2.00 | -0.00% | 33.3% | +2.00% | -1.00% | -1.00%"
            " | 1 | 1 | 3 |",
            "| BBBUSDT | +4.00% | N/A | N/A | N/A | 100.0% | +2.00% | N/A | 0.00% | 2 | 0 | 2 |",
        ]
    )
    assert asyncio.run(bk.Heat.get_report("s1")) == "# Portfolio Heatmap: s1\n\n*No data available*"


def test_a_new_run_clears_its_symbol_only() -> None:
    # 30 §4: Backtest.run empties (symbol, strategy, backtest) and the symbol's heat rows
    two_symbols()
    run(A)  # the same three trades again: replaced, not appended
    assert asyncio.run(bk.Backtest.get_data(A, "s1")).total_signals == 3
    assert asyncio.run(bk.Backtest.get_data(B, "s1")).total_signals == 2
    heat = asyncio.run(bk.Heat.get_data("s1", backtest=True))
    assert [(r.symbol, r.total_trades) for r in heat.symbols] == [(A, 3), (B, 2)]
    assert asyncio.run(bk.Heat.get_data("s1")).total_symbols == 0  # live heatmap untouched


# -- Schedule (80 §5) ---------------------------------------------------------------------------


def scheduled_plan() -> None:
    """Limit orders at 99: s1 activates at minute 4 (bar low 99), s2 times out at 30 (await
    10), s3 activates in the very candle opening at its scheduled_at (minute 40)."""
    a = Market()
    a.bar(4, 100, 101, 99, 100)  # typical 100
    tp_bar(a, 8)
    a.bar(40, 100, 101, 99, 100)
    bk.set_config(CC_SCHEDULE_AWAIT_MINUTES=10)
    plan = Plan(
        {
            A: {
                0: bk.Signal("long", 102.0, 97.0, 60, price_open=99.0, id="s1"),
                20: bk.Signal("long", 102.0, 97.0, 60, price_open=99.0, id="s2"),
                40: bk.Signal("long", 102.0, 97.0, 5, price_open=99.0, id="s3"),
            }
        }
    )
    register({A: a}, plan, last=50)
    run(A)


def test_schedule_counts_backtest_activations_and_cancellations() -> None:
    scheduled_plan()
    s = asyncio.run(bk.Schedule.get_data(A, "s1", backtest=True))
    assert [(e.action, e.signal_id, e.timestamp, e.duration) for e in s.event_list] == [
        ("opened", "s3", ms(40), 0),  # [deviation] 80 §5.1: activated at scheduled_at
        ("scheduled", "s3", ms(40), None),
        ("cancelled", "s2", ms(30), 10),
        ("scheduled", "s2", ms(20), None),
        ("opened", "s1", ms(4), 4),  # [deviation] 02 §3: backtest activations are counted
        ("scheduled", "s1", ms(0), None),
    ]
    assert s.event_list[2].close_timestamp == ms(30)
    assert [e.current_price for e in s.event_list] == [99.0, 100.0, 100.0, 100.0, 99.0, 100.0]
    assert (s.total_events, s.total_scheduled, s.total_opened, s.total_cancelled) == (6, 3, 2, 1)
    assert s.activation_rate == pytest.approx(200 / 3)
    assert s.cancellation_rate == pytest.approx(100 / 3)
    assert (s.avg_activation_time, s.avg_wait_time) == (2.0, 10.0)
    assert asyncio.run(bk.Schedule.get_data(A, "s1")).total_events == 0  # live: nothing


def test_schedule_report() -> None:
    scheduled_plan()
    text = asyncio.run(
        bk.Schedule.get_report(A, "s1", backtest=True, columns=["action", "signalId", "duration"])
    )
    assert text == "\n".join(
        [
            "# Scheduled Signals Report: s1",
            "",
            "| Action | Signal ID | Wait Time (min) |",
            "| --- | --- | --- |",
            "| OPENED | s3 | 0 |",
            "| SCHEDULED | s3 | N/A |",
            "| CANCELLED | s2 | 10 |",
            "| SCHEDULED | s2 | N/A |",
            "| OPENED | s1 | 4 |",
            "| SCHEDULED | s1 | N/A |",
            "",
            "**Total events:** 6",
            "**Scheduled signals:** 3",
            "**Opened signals:** 2",
            "**Cancelled signals:** 1",
            "**Activation rate:** 66.67% (higher is better)",
            "**Cancellation rate:** 33.33% (lower is better)",
            "**Average activation time:** 2.00 minutes",
            "**Average wait time (cancelled):** 10.00 minutes",
        ]
    )


def test_schedule_report_default_columns() -> None:
    scheduled_plan()
    lines = asyncio.run(bk.Schedule.get_report(A, "s1", backtest=True)).splitlines()
    assert lines[2:5] == [
        "| Timestamp | Action | Symbol | Signal ID | Position | Current Price | Entry Price"
        " | Take Profit | Stop Loss | Wait Time (min) |",
        "|" + " --- |" * 10,
        "| 2024-01-01T00:40:00.000Z | OPENED | AAAUSDT | s3 | LONG | 99.00000000 USD"
        " | 99.00000000 USD | 102.00000000 USD | 97.00000000 USD | 0 |",
    ]
    assert lines[-10] == (
        "| 2024-01-01T00:00:00.000Z | SCHEDULED | AAAUSDT | s1 | LONG | 100.00000000 USD"
        " | 99.00000000 USD | 102.00000000 USD | 97.00000000 USD | N/A |"
    )


def test_immediate_opens_are_not_schedule_events() -> None:
    two_symbols()
    s = asyncio.run(bk.Schedule.get_data(A, "s1", backtest=True))
    assert s.total_events == 0 and s.activation_rate is None and s.cancellation_rate is None
    assert asyncio.run(bk.Schedule.get_report(A, "s1", backtest=True)) == (
        "# Scheduled Signals Report: s1\n\nNo scheduled signals recorded yet."
    )


# -- Performance (80 §6) ------------------------------------------------------------------------


def test_performance_samples_of_a_backtest() -> None:
    two_symbols()
    p = asyncio.run(bk.Performance.get_data(A, "s1", backtest=True))
    assert p.strategy_name == "s1"
    total = p.metric_stats["backtest_total"]
    assert total.count == 1
    assert p.metric_stats["backtest_signal"].count == 3  # one per resolved signal
    assert sum(m.count for m in p.metric_stats.values()) == p.total_events == len(p.events)
    assert p.events[0].metric_type == "backtest_total"  # newest first: the last sample
    assert p.events[-1].previous_timestamp is None
    # the run's total covers every other sample
    assert total.total_duration >= p.metric_stats["backtest_signal"].total_duration
    durations = [m.total_duration for m in p.metric_stats.values()]
    assert durations == sorted(durations, reverse=True)
    assert p.total_duration == pytest.approx(sum(durations))
    report = asyncio.run(bk.Performance.get_report(A, "s1", backtest=True))
    assert report.startswith("# Performance Report: s1\n\n**Total events:** ")
    assert "| backtest_total | 1 | " in report
    assert asyncio.run(bk.Performance.get_data(A, "s1")).total_events == 0  # live


# -- Partial and Risk (80 §8, §9) ---------------------------------------------------------------


def test_partial_milestones_of_a_backtest() -> None:
    # long at 100, TP 110: bars at 105 from minute 1 lift the 5-candle VWAP by 1 per minute,
    # i.e. 10 % of the way to TP per minute, up to 50 % at minute 5; expiry at minute 10
    a = Market()
    for minute in range(1, 40):
        a.bar(minute, 105, 105, 105, 105)
    register({A: a}, Plan({A: {0: bk.Signal("long", 110.0, 99.0, 10, id="p1")}}))
    [closed] = run(A)
    assert (closed.close_reason, closed.pnl.pnl_percentage) == ("time_expired", 5.0)
    s = asyncio.run(bk.Partial.get_data(A, "s1", backtest=True))
    assert [(e.action, e.level, e.current_price, e.timestamp) for e in s.event_list] == [
        ("profit", 50, 105.0, ms(5)),
        ("profit", 40, 104.0, ms(4)),
        ("profit", 30, 103.0, ms(3)),
        ("profit", 20, 102.0, ms(2)),
        ("profit", 10, 101.0, ms(1)),
    ]
    assert (s.total_events, s.total_profit, s.total_loss) == (5, 5, 0)
    text = asyncio.run(bk.Partial.get_report(A, "s1", backtest=True))
    assert text.splitlines()[:5] == [
        "# Partial Profit/Loss Report: AAAUSDT:s1",
        "",
        "| Action | Symbol | Strategy | Signal ID | Position | Level % | Current Price"
        " | Timestamp | Mode |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| PROFIT | AAAUSDT | s1 | p1 | LONG | +50% | 105.00000000 USD"
        " | 2024-01-01T00:05:00.000Z | Backtest |",
    ]
    assert text.endswith("**Total events:** 5\n**Profit events:** 5\n**Loss events:** 0")


def test_risk_rejections_of_a_backtest() -> None:
    def no_second(payload: Any) -> None:
        if payload.timestamp >= ms(10):
            raise ValueError("late")

    bk.add_risk("late", validations=[{"validate": no_second, "note": "too late | after 10"}])
    a = Market()
    tp_bar(a, 3)
    register({A: a}, Plan({A: {0: long(id="r1"), 10: long(id="r2")}}), risk_name="late")
    assert [r.signal.id for r in run(A)] == ["r1"]
    s = asyncio.run(bk.Risk.get_data(A, "s1", backtest=True))
    [event] = s.event_list
    assert (event.timestamp, event.pending_signal.id) == (ms(10), "r2")
    assert event.comment == "too late | after 10"  # the validation's note
    assert (event.active_position_count, event.current_price, event.backtest) == (0, 100.0, True)
    assert (s.total_rejections, dict(s.by_symbol), dict(s.by_strategy)) == (1, {A: 1}, {"s1": 1})
    assert asyncio.run(bk.Risk.get_report(A, "s1", backtest=True)) == "\n".join(
        [
            "# Risk Rejection Report: AAAUSDT:s1",
            "",
            "| Symbol | Strategy | Signal ID | Position | Exchange | Open Price | Take Profit"
            " | Stop Loss | Current Price | Active Positions | Reason | Timestamp |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| AAAUSDT | s1 | r2 | LONG | ex | 100.00000000 USD | 102.00000000 USD"
            " | 99.00000000 USD | 100.00000000 USD | 0 | too late \\| after 10"
            " | 2024-01-01T00:10:00.000Z |",
            "",
            "**Total rejections:** 1",
            "",
            "## Rejections by Symbol",
            f"- {A}: 1",
            "",
            "## Rejections by Strategy",
            "- s1: 1",
        ]
    )


# -- dump file names (80 §1.5, §1.7) ------------------------------------------------------------


def test_dumps_of_two_symbols_never_overwrite_each_other(tmp_path: Path) -> None:
    two_symbols()

    async def dump_all() -> list[Path | None]:
        return [
            await bk.Backtest.dump(A, "s1", path=tmp_path / "bt"),
            await bk.Backtest.dump(B, "s1", path=tmp_path / "bt"),
            await bk.Heat.dump("s1", backtest=True, path=tmp_path / "heat"),
            await bk.Schedule.dump(A, "s1", backtest=True, path=tmp_path / "sc"),
            await bk.Performance.dump(A, "s1", backtest=True, path=tmp_path / "pf"),
            await bk.Partial.dump(A, "s1", backtest=True, path=tmp_path / "pa"),
            await bk.Risk.dump(A, "s1", backtest=True, path=tmp_path / "ri"),
        ]

    files = asyncio.run(dump_all())
    assert [f.relative_to(tmp_path).as_posix() if f else None for f in files] == [
        "bt/AAAUSDT_s1.md",
        "bt/BBBUSDT_s1.md",
        "heat/s1.md",
        "sc/AAAUSDT_s1.md",
        "pf/AAAUSDT_s1.md",
        "pa/AAAUSDT_s1.md",
        "ri/AAAUSDT_s1.md",
    ]
    assert (tmp_path / "bt/AAAUSDT_s1.md").read_text("utf-8") == asyncio.run(
        bk.Backtest.get_report(A, "s1")
    )
    assert "| b1 | BBBUSDT |" in (tmp_path / "bt/BBBUSDT_s1.md").read_text("utf-8")
