"""The report collectors (80 §1.1, §4.1, §5.1, §8, §9; 70 §9) fed by records emitted on the
event bus: live rows (idle collapse, in-place active rows, the 250 cap), schedule activations
by id, partial and risk rows, performance keys, the walker record, resets, and the rule that
collectors see an event before any user listener."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit import events
from backtest_kit.context import ExecutionContext, execution_context
from backtest_kit.report import markdown
from backtest_kit.report.columns import WALKER_PNL_COLUMNS, WALKER_STRATEGY_COLUMNS
from backtest_kit.report.facades import LiveReports
from backtest_kit.report.stats import backtest_statistics_of
from backtest_kit.runtime import current
from support import BASE, Market, minute_of, ms

SYM, STRAT = "BTCUSDT", "s1"


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.add_strategy(strategy_name=STRAT, interval="1m", get_signal=lambda s, w: None)


def row(
    sid: str = "x1",
    *,
    scheduled_at: int = ms(2),
    pending_at: int | None = None,
    scheduled: bool = False,
    price_open: float = 100.0,
    note: str = "",
) -> bk.SignalRow:
    return bk.SignalRow(
        id=sid,
        position="long",
        price_open=price_open,
        price_take_profit=110.0,
        price_stop_loss=95.0,
        minute_estimated_time=60,
        note=note,
        symbol=SYM,
        exchange_name="ex",
        strategy_name=STRAT,
        scheduled_at=scheduled_at,
        pending_at=scheduled_at if pending_at is None else pending_at,
        is_scheduled=scheduled,
    )


COMMON: dict[str, Any] = {"strategy_name": STRAT, "exchange_name": "ex", "symbol": SYM}


def idle(price: float, backtest: bool = False) -> bk.IdleResult:
    return bk.IdleResult(signal=None, current_price=price, backtest=backtest, **COMMON)


def opened(r: bk.SignalRow, backtest: bool = False) -> bk.OpenedResult:
    return bk.OpenedResult(signal=r, current_price=r.price_open, backtest=backtest, **COMMON)


def active(r: bk.SignalRow, price: float, tp: float, sl: float = 0.0) -> bk.ActiveResult:
    return bk.ActiveResult(
        signal=r, current_price=price, backtest=False, percent_tp=tp, percent_sl=sl, **COMMON
    )


def closed(r: bk.SignalRow, at: int, pnl: float, backtest: bool = False) -> bk.ClosedResult:
    return bk.ClosedResult(
        signal=r,
        current_price=110.0,
        backtest=backtest,
        close_reason="take_profit",
        close_timestamp=at,
        pnl=bk.PnL(pnl, r.price_open, 110.0),
        **COMMON,
    )


def scheduled(r: bk.SignalRow, backtest: bool = False) -> bk.ScheduledResult:
    return bk.ScheduledResult(signal=r, current_price=101.0, backtest=backtest, **COMMON)


def cancelled(r: bk.SignalRow, at: int, backtest: bool = False) -> bk.CancelledResult:
    return bk.CancelledResult(
        signal=r, current_price=101.0, backtest=backtest, close_timestamp=at, **COMMON
    )


def emit_live(*steps: tuple[int | None, Any]) -> None:
    """Emit tick results on the live topics, each inside an execution context at `minute`."""

    async def main() -> None:
        bus = current().bus
        for minute, result in steps:
            token = None
            if minute is not None:
                token = execution_context.set(ExecutionContext(SYM, ms(minute), False))
            try:
                await bus.emit(events.SIGNAL_LIVE, result)
                await bus.emit(events.SIGNAL, result)  # as the engine does: mode topic first
            finally:
                if token is not None:
                    execution_context.reset(token)

    asyncio.run(main())


def emit(topic: str, *payloads: Any) -> None:
    async def main() -> None:
        for payload in payloads:
            await current().bus.emit(topic, payload)

    asyncio.run(main())


def live() -> bk.LiveStatistics:
    return current().reports.live_data(SYM, STRAT)


# -- Live (80 §4) -------------------------------------------------------------------------------


def test_live_rows_collapse_idle_periods_and_replace_active_rows_in_place() -> None:
    r = row("x1", scheduled_at=ms(2))
    emit_live(
        (0, idle(100.0)),
        (1, idle(101.0)),  # refreshes the idle row
        (2, opened(r)),
        (3, active(r, 101.0, 10.0)),
        (4, active(r, 102.0, 20.0)),  # replaces the active row, keeps its place
        (5, closed(r, ms(5), 4.0)),
        (6, idle(103.0)),  # a position event is newer than the idle row: a new row
        (7, idle(104.0)),
        (7, scheduled(row("x2", scheduled=True))),  # not a live row
        (8, cancelled(row("x2", scheduled=True), ms(8))),
    )
    s = live()
    assert [(e.action, e.timestamp, e.current_price) for e in s.event_list] == [
        ("idle", ms(7), 104.0),
        ("closed", ms(5), 110.0),
        ("active", ms(4), 102.0),
        ("opened", ms(2), 100.0),
        ("idle", ms(1), 101.0),
    ]
    act = s.event_list[2]
    assert (act.percent_tp, act.percent_sl, act.signal_id, act.open_price) == (
        20.0,
        0.0,
        "x1",
        100.0,
    )
    done = s.event_list[1]
    assert (done.pnl, done.close_reason, done.duration, done.take_profit) == (
        4.0,
        "take_profit",
        3,
        110.0,
    )
    assert s.event_list[0].symbol is None  # idle rows carry the price only
    assert (s.total_events, s.total_closed, s.win_count, s.loss_count) == (5, 1, 1, 0)
    assert (s.win_rate, s.avg_pnl, s.total_pnl, s.std_dev, s.sharpe_ratio) == (
        100.0,
        4.0,
        4.0,
        0.0,
        0.0,
    )
    assert s.certainty_ratio == 0.0
    assert s.expected_yearly_returns == pytest.approx(4.0 * 365 / (3 / 1440))


def test_live_idle_rows_use_the_wall_clock_outside_a_run() -> None:
    emit_live((None, idle(100.0)))
    assert live().event_list[0].timestamp > ms(0)


def test_live_statistics_with_events_but_no_closed_trade() -> None:
    r = row()
    emit_live((0, idle(100.0)), (2, opened(r)), (3, active(r, 99.0, 0.0, 20.0)))
    s = live()
    assert s.to_dict() | {"event_list": None} == {
        "event_list": None,
        "total_events": 3,
        "total_closed": 0,
        "win_count": 0,
        "loss_count": 0,
        "win_rate": None,  # 0 / 0 (reference; kept)
        "avg_pnl": 0.0,
        "total_pnl": 0.0,
        "std_dev": 0.0,
        "sharpe_ratio": 0.0,
        "annualized_sharpe_ratio": 0.0,
        "certainty_ratio": 0.0,
        "expected_yearly_returns": 0.0,
    }


def test_live_statistics_of_nothing() -> None:
    s = live()
    assert (s.event_list, s.total_events, s.total_closed, s.win_rate, s.avg_pnl) == (
        (),
        0,
        0,
        None,
        None,
    )


def test_live_keeps_the_250_newest_rows() -> None:
    emit_live(*((None, opened(row(f"o{i}"))) for i in range(260)))
    s = live()
    assert s.total_events == 250
    assert (s.event_list[0].signal_id, s.event_list[-1].signal_id) == ("o259", "o10")


def test_live_report() -> None:
    r = row("x1", note="**buy** now")
    emit_live((0, idle(100.0)), (2, opened(r)), (5, closed(r, ms(5), -1.5)))
    bk.set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)
    text = asyncio.run(LiveReports().get_report(SYM, STRAT))
    assert text == "\n".join(
        [
            "# Live Trading Report: s1",
            "",
            "| Timestamp | Action | Symbol | Signal ID | Position | Note | Current Price"
            " | Open Price | Take Profit | Stop Loss | % to TP | % to SL | PNL (net)"
            " | Close Reason | Duration (min) |",
            "|" + " --- |" * 15,
            "| 2024-01-01T00:05:00.000Z | CLOSED | BTCUSDT | x1 | LONG | buy now"
            " | 110.00000000 USD | 100.00000000 USD | 110.00000000 USD | 95.00000000 USD"
            " | N/A | N/A | -1.50% | take_profit | 3 |",
            "| 2024-01-01T00:02:00.000Z | OPENED | BTCUSDT | x1 | LONG | buy now"
            " | 100.00000000 USD | 100.00000000 USD | 110.00000000 USD | 95.00000000 USD"
            " | N/A | N/A | N/A | N/A | N/A |",
            "| 2024-01-01T00:00:00.000Z | IDLE | N/A | N/A | N/A | N/A | 100.00000000 USD"
            " | N/A | N/A | N/A | N/A | N/A | N/A | N/A | N/A |",
            "",
            "**Total events:** 3",
            "**Closed signals:** 1",
            "**Win rate:** 0.00% (0W / 1L) (higher is better)",
            "**Average PNL:** -1.50% (higher is better)",
            "**Total PNL:** -1.50% (higher is better)",
            "**Standard Deviation:** 0.000% (lower is better)",
            "**Sharpe Ratio:** 0.000 (higher is better)",
            "**Annualized Sharpe Ratio:** 0.000 (higher is better)",
            "**Certainty Ratio:** 0.000 (higher is better)",
            "**Expected Yearly Returns:** -262800.00% (higher is better)",
        ]
    )
    assert asyncio.run(LiveReports().get_report("ETHUSDT", STRAT)) == (
        "# Live Trading Report: s1\n\nNo events recorded yet."
    )


def test_live_start_clears_its_pair_only() -> None:
    emit_live((0, idle(100.0)))
    current().reports.clear_run(SYM, STRAT, backtest=True)
    assert live().total_events == 1
    current().reports.clear_run(SYM, STRAT, backtest=False)
    assert live().total_events == 0


# -- Schedule (80 §5.1) -------------------------------------------------------------------------


def test_schedule_activation_is_told_by_id_not_by_timestamps() -> None:
    waiting = row("w1", scheduled_at=ms(3), scheduled=True)
    same_candle = row("w1", scheduled_at=ms(3), pending_at=ms(3))  # activated at once
    immediate = row("i1", scheduled_at=ms(4))
    emit(events.SIGNAL_LIVE, scheduled(waiting), opened(same_candle), opened(immediate))
    s = current().reports.schedule_data(SYM, STRAT, False)
    assert [(e.action, e.signal_id, e.duration) for e in s.event_list] == [
        ("opened", "w1", 0),
        ("scheduled", "w1", None),
    ]
    assert (s.activation_rate, s.avg_activation_time) == (100.0, 0.0)
    assert s.event_list[0].current_price == 100.0  # opened at price_open


def test_schedule_modes_are_separate_and_cancellations_are_rows() -> None:
    w = row("w1", scheduled_at=ms(0), scheduled=True)
    emit(events.SIGNAL_BACKTEST, scheduled(w, backtest=True), cancelled(w, ms(7), backtest=True))
    back = current().reports.schedule_data(SYM, STRAT, True)
    assert [(e.action, e.timestamp, e.close_timestamp, e.duration) for e in back.event_list] == [
        ("cancelled", ms(7), ms(7), 7),
        ("scheduled", ms(0), None, None),
    ]
    assert (back.cancellation_rate, back.activation_rate, back.avg_wait_time) == (100.0, 0.0, 7.0)
    assert current().reports.schedule_data(SYM, STRAT, False).total_events == 0


def test_schedule_rates_can_exceed_100_when_the_window_lost_scheduled_rows() -> None:
    rows = [row(f"w{i}", scheduled_at=ms(i), scheduled=True) for i in range(126)]
    emit(events.SIGNAL_LIVE, *(scheduled(r) for r in rows))
    emit(events.SIGNAL_LIVE, *(cancelled(r, ms(200)) for r in rows))  # 252 rows: 2 trimmed
    s = current().reports.schedule_data(SYM, STRAT, False)
    assert (s.total_events, s.total_scheduled, s.total_cancelled) == (250, 124, 126)
    assert s.cancellation_rate == pytest.approx(126 / 124 * 100)


# -- Partial, Risk, Performance (80 §6, §8, §9) -------------------------------------------------


def partial(kind: type, level: int, price: float, at: int, backtest: bool = False) -> Any:
    return kind(
        symbol=SYM,
        strategy_name=STRAT,
        exchange_name="ex",
        data=row("p1"),
        current_price=price,
        level=level,
        backtest=backtest,
        timestamp=at,
    )


def test_partial_rows_and_report() -> None:
    emit(events.PARTIAL_PROFIT, partial(bk.PartialProfitContract, 10, 101.0, ms(3)))
    emit(events.PARTIAL_LOSS, partial(bk.PartialLossContract, 20, 99.0, ms(4)))
    emit(events.PARTIAL_LOSS, partial(bk.PartialLossContract, 10, 99.0, ms(5), backtest=True))
    s = current().reports.partial_data(SYM, STRAT, False)
    assert [(e.action, e.level, e.signal_id) for e in s.event_list] == [
        ("loss", 20, "p1"),
        ("profit", 10, "p1"),
    ]
    assert (s.total_events, s.total_profit, s.total_loss) == (2, 1, 1)
    assert asyncio.run(bk.Partial.get_report(SYM, STRAT)) == "\n".join(
        [
            "# Partial Profit/Loss Report: BTCUSDT:s1",
            "",
            "| Action | Symbol | Strategy | Signal ID | Position | Level % | Current Price"
            " | Timestamp | Mode |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| LOSS | BTCUSDT | s1 | p1 | LONG | -20% | 99.00000000 USD"
            " | 2024-01-01T00:04:00.000Z | Live |",
            "| PROFIT | BTCUSDT | s1 | p1 | LONG | +10% | 101.00000000 USD"
            " | 2024-01-01T00:03:00.000Z | Live |",
            "",
            "**Total events:** 2",
            "**Profit events:** 1",
            "**Loss events:** 1",
        ]
    )
    assert asyncio.run(bk.Partial.get_data(SYM, STRAT, backtest=True)).total_loss == 1


def test_partial_keeps_the_250_newest() -> None:
    emit(
        events.PARTIAL_PROFIT,
        *(partial(bk.PartialProfitContract, 10, 100.0 + i, ms(i)) for i in range(255)),
    )
    s = asyncio.run(bk.Partial.get_data(SYM, STRAT))
    assert (s.total_events, s.event_list[0].current_price, s.event_list[-1].current_price) == (
        250,
        354.0,
        105.0,
    )


def risk(signal: Any, at: int, strategy: str = STRAT) -> bk.RiskContract:
    return bk.RiskContract(
        symbol=SYM,
        pending_signal=signal,
        strategy_name=strategy,
        exchange_name="ex",
        current_price=100.5,
        active_position_count=2,
        comment="N/A",
        timestamp=at,
        backtest=False,
    )


def test_risk_rows_and_report_of_a_raw_signal_without_id() -> None:
    raw = bk.Signal("short", 90.0, 105.0, 60, note="n")
    emit(events.RISK, risk(raw, ms(1)), risk(row("r2"), ms(2)), risk(row("r3"), ms(3), "other"))
    s = asyncio.run(bk.Risk.get_data(SYM, STRAT))
    assert [e.timestamp for e in s.event_list] == [ms(2), ms(1)]
    assert (s.total_rejections, dict(s.by_symbol), dict(s.by_strategy)) == (2, {SYM: 2}, {STRAT: 2})
    text = asyncio.run(
        bk.Risk.get_report(SYM, STRAT, columns=["signalId", "position", "openPrice", "comment"])
    )
    assert text.splitlines()[2:6] == [
        "| Signal ID | Position | Open Price | Reason |",
        "| --- | --- | --- | --- |",
        "| r2 | LONG | 100.00000000 USD | N/A |",
        "| N/A | SHORT | N/A | N/A |",  # a raw signal: no id, no price_open
    ]
    assert asyncio.run(bk.Risk.get_report(SYM, STRAT, backtest=True)) == (
        "# Risk Rejection Report: BTCUSDT:s1\n\nNo risk rejections recorded yet."
    )


def test_performance_samples_without_symbol_or_strategy_go_to_global() -> None:
    sample = bk.PerformanceContract(
        timestamp=5,
        previous_timestamp=None,
        metric_type="live_tick",
        duration=1.5,
        strategy_name="",
        exchange_name="ex",
        symbol="",
        backtest=False,
    )
    emit(events.PERFORMANCE, sample)
    hub = current().reports
    assert hub.performance_data("global", "global", False).total_events == 1
    assert hub.performance_data(SYM, STRAT, False).total_events == 0


def test_payloads_of_other_types_are_ignored() -> None:
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    for topic in (
        events.SIGNAL,
        events.SIGNAL_LIVE,
        events.SIGNAL_BACKTEST,
        events.PERFORMANCE,
        events.PARTIAL_PROFIT,
        events.PARTIAL_LOSS,
        events.RISK,
        events.WALKER,
    ):
        emit(topic, "not a record", None)
    assert errors == []
    assert (current().reports.live, current().reports.risk, current().reports.walker) == (
        {},
        {},
        {},
    )


# -- ordering: collectors before user listeners (80 §1.1) ---------------------------------------


def test_a_user_listener_finds_its_event_already_collected() -> None:
    market = Market().take_profit_at(3, 9)
    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_strategy(
        strategy_name="s2",
        interval="1m",
        get_signal=lambda s, w: (
            bk.Signal("long", 101.0, 99.0, 60) if minute_of(w) in (0, 5) else None
        ),
    )
    bk.add_frame(frame_name="f", interval="1m", start_date=BASE, end_date=ms(12))
    seen: list[tuple[int, int]] = []

    async def on_closed(result: Any) -> None:
        if result.action == "closed":
            stats = await bk.Backtest.get_data(SYM, "s2")
            heat = await bk.Heat.get_data("s2", backtest=True)
            seen.append((stats.total_signals, heat.portfolio_total_trades))

    bk.listen_signal_backtest(on_closed)
    bk.Backtest.run_sync(SYM, strategy_name="s2", exchange_name="ex", frame_name="f")
    assert seen == [(1, 1), (2, 2)]


# -- Walker (70 §9, §10) ------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeWalkerContract:
    """The fields of 85 §3.7 the walker collector reads (the walker engine defines the record)."""

    walker_name: str
    symbol: str
    strategy_name: str
    stats: bk.BacktestStatistics
    metric_value: float | None
    best_metric: float | None
    best_strategy: str | None
    total_strategies: int


def test_walker_record_and_report() -> None:
    first = backtest_statistics_of([closed(row("a1"), ms(10), 2.0, backtest=True)])
    second = backtest_statistics_of([])
    emit(
        events.WALKER,
        FakeWalkerContract("w", SYM, "alpha", first, 0.0, 0.0, "alpha", 3),
        FakeWalkerContract("w", SYM, "beta", second, None, 0.0, "alpha", 3),
        FakeWalkerContract("w", "ETHUSDT", "beta", second, None, None, None, 3),
    )
    hub = current().reports
    s = hub.walker_data(SYM, "w", exchange_name="ex", frame_name="f", metric="sharpe_ratio")
    assert (s.best_strategy, s.best_metric, s.best_stats, s.total_strategies) == (
        "alpha",
        0.0,
        first,
        3,
    )
    assert [(r.strategy_name, r.metric_value) for r in s.strategy_results] == [
        ("beta", None),
        ("alpha", 0.0),
    ]
    text = asyncio.run(markdown.walker_report(s, WALKER_STRATEGY_COLUMNS, WALKER_PNL_COLUMNS))
    assert text == "\n".join(
        [
            "# Walker Comparison Report: w",
            "",
            "**Symbol:** BTCUSDT",
            "**Exchange:** ex",
            "**Frame:** f",
            "**Optimization Metric:** sharpe_ratio",
            "**Strategies Tested:** 3",
            "",
            "## Best Strategy: alpha",
            "",
            "**Best sharpe_ratio:** 0.00",
            "**Total Signals:** 1",
            "",
            "## Top Strategies Comparison",
            "",
            "| Rank | Strategy | Metric | Total Signals | Win Rate | Avg PNL | Total PNL"
            " | Sharpe Ratio | Std Dev |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| 1 | alpha | 0.00 | 1 | 100.00% | +2.00% | +2.00% | 0.000 | 0.000% |",
            "| 2 | beta | N/A | 0 | N/A | N/A | N/A | N/A | N/A |",
            "",
            "## All Signals (PNL Table)",
            "",
            "| Strategy | Signal ID | Symbol | Position | PNL (net) | Close Reason | Open Time"
            " | Close Time |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            "| alpha | a1 | BTCUSDT | LONG | +2.00% | take_profit | 2024-01-01T00:02:00.000Z"
            " | 2024-01-01T00:10:00.000Z |",
            "",
            "**Note:** Higher values are better for all metrics except Standard Deviation"
            " (lower is better).",
        ]
    )
    other = hub.walker_data("ETHUSDT", "w", exchange_name="ex", frame_name="f", metric="m")
    assert other.best_strategy is None  # [deviation] 02 §4: symbols never mix
    lines = asyncio.run(markdown.walker_report(other, WALKER_STRATEGY_COLUMNS, WALKER_PNL_COLUMNS))
    assert "## Best Strategy: N/A" in lines and "\nNo closed signals available.\n" in lines
    hub.clear_walker(SYM, "w")
    with pytest.raises(bk.BacktestKitError, match="No walker data available"):
        hub.walker_data(SYM, "w", exchange_name="ex", frame_name="f", metric="m")
