"""The formulas of `backtest_kit.report.stats` (80 §1.2, §2, §5.2, §6, §7) on small trade
lists whose every figure is computed by hand: no trades, one trade, zero standard deviation,
all losses, break-even trades, drawdown, streaks, percentiles and wait times."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.report.stats import (
    TradeLog,
    backtest_statistics,
    backtest_statistics_of,
    heatmap_row,
    heatmap_statistics,
    minutes_between,
    nearest_rank,
    performance_statistics,
    safe,
    schedule_statistics,
)
from support import BASE_MS, M

DAY = 86_400_000


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def closed(pnl: float, held_ms: int = DAY, *, symbol: str = "X", n: int = 0) -> bk.ClosedResult:
    """A closed long whose PnL is `pnl` percent, held `held_ms`."""
    opened = BASE_MS + n * DAY * 10
    row = bk.SignalRow(
        id=f"t{n}",
        position="long",
        price_open=100.0,
        price_take_profit=110.0,
        price_stop_loss=90.0,
        minute_estimated_time=60,
        note="",
        symbol=symbol,
        exchange_name="ex",
        strategy_name="s",
        scheduled_at=opened,
        pending_at=opened,
        is_scheduled=False,
    )
    return bk.ClosedResult(
        signal=row,
        current_price=100.0 + pnl,
        strategy_name="s",
        exchange_name="ex",
        symbol=symbol,
        backtest=True,
        close_reason="take_profit" if pnl > 0 else "stop_loss",
        close_timestamp=opened + held_ms,
        pnl=bk.PnL(pnl, 100.0, 100.0 + pnl),
    )


def stats_of(*pnls: float, held_ms: int = DAY) -> bk.BacktestStatistics:
    return backtest_statistics_of(closed(p, held_ms, n=i) for i, p in enumerate(pnls))


# -- BacktestStatistics (80 §2) ------------------------------------------------------------------


def test_no_trade_gives_none_everywhere() -> None:
    s = stats_of()
    assert s.to_dict() == {
        "signal_list": [],
        "total_signals": 0,
        "win_count": 0,
        "loss_count": 0,
        "win_rate": None,
        "avg_pnl": None,
        "total_pnl": None,
        "std_dev": None,
        "sharpe_ratio": None,
        "annualized_sharpe_ratio": None,
        "certainty_ratio": None,
        "expected_yearly_returns": None,
    }


def test_one_winning_trade() -> None:
    s = stats_of(3.0, held_ms=DAY // 2)
    assert (s.total_signals, s.win_count, s.loss_count, s.win_rate) == (1, 1, 0, 100.0)
    assert (s.avg_pnl, s.total_pnl, s.std_dev) == (3.0, 3.0, 0.0)
    assert (s.sharpe_ratio, s.annualized_sharpe_ratio) == (0.0, 0.0)  # std 0: 0, not None
    assert s.certainty_ratio == 0.0  # no loss
    assert s.expected_yearly_returns == 3.0 * 365 / 0.5  # held half a day


def test_two_trades() -> None:
    s = stats_of(3.0, -1.0)
    assert (s.win_count, s.loss_count, s.win_rate) == (1, 1, 50.0)
    assert (s.avg_pnl, s.total_pnl) == (1.0, 2.0)
    assert s.std_dev == 2.0  # sqrt((2^2 + 2^2) / 2): population
    assert s.sharpe_ratio == 0.5
    assert s.annualized_sharpe_ratio == 0.5 * math.sqrt(365)
    assert s.certainty_ratio == 3.0
    assert s.expected_yearly_returns == 365.0  # one day per trade
    assert [r.pnl.pnl_percentage for r in s.signal_list] == [-1.0, 3.0]  # newest first


def test_all_losses() -> None:
    s = stats_of(-1.0, -3.0)
    assert (s.win_count, s.loss_count, s.win_rate) == (0, 2, 0.0)
    assert (s.avg_pnl, s.total_pnl, s.std_dev, s.sharpe_ratio) == (-2.0, -4.0, 1.0, -2.0)
    assert s.certainty_ratio == 0.0  # avg win 0 / |avg loss 2|
    assert s.expected_yearly_returns == -730.0


def test_a_break_even_trade_is_neither_win_nor_loss() -> None:
    s = stats_of(2.0, 0.0, -2.0, 0.0)
    assert (s.total_signals, s.win_count, s.loss_count, s.win_rate) == (4, 1, 1, 25.0)
    assert (s.avg_pnl, s.std_dev, s.sharpe_ratio) == (0.0, math.sqrt(2.0), 0.0)


def test_equal_trades_have_zero_std_and_zero_sharpe() -> None:
    s = stats_of(0.5, 0.5, 0.5, 0.5)
    assert (s.std_dev, s.sharpe_ratio, s.annualized_sharpe_ratio) == (0.0, 0.0, 0.0)


def test_trades_closed_where_they_opened_give_zero_yearly_returns() -> None:
    assert stats_of(1.0, held_ms=0).expected_yearly_returns == 0.0


def test_an_infinite_figure_becomes_none() -> None:
    s = stats_of(math.inf, 1.0)
    assert (s.total_pnl, s.avg_pnl, s.std_dev, s.expected_yearly_returns) == (None,) * 4
    assert (s.win_count, s.win_rate) == (2, 100.0)
    assert [safe(x) for x in (math.nan, -math.inf, np.float64(2.5), None)] == [
        None,
        None,
        2.5,
        None,
    ]
    assert type(safe(np.float64(2.5))) is float


def test_cancelled_results_are_not_trades() -> None:
    row = closed(1.0).signal
    cancelled = bk.CancelledResult(
        signal=row,
        current_price=100.0,
        strategy_name="s",
        exchange_name="ex",
        symbol="X",
        backtest=True,
        close_timestamp=row.pending_at + M,
    )
    assert backtest_statistics_of([closed(1.0), cancelled]).total_signals == 1


def test_statistics_are_immutable_snapshots() -> None:
    log = TradeLog([closed(1.0)])
    s = backtest_statistics(log)
    log.add(closed(2.0, n=1))
    assert s.total_signals == 1 and isinstance(s.signal_list, tuple)
    with pytest.raises(AttributeError):
        s.total_signals = 5  # type: ignore[misc]


def test_minutes_round_half_up() -> None:
    assert [minutes_between(0, d) for d in (29_999, 30_000, 89_999, 90_000, 0)] == [0, 1, 1, 2, 0]


# -- Heatmap rows (80 §7) -------------------------------------------------------------------------


def row_of(*pnls: float, symbol: str = "X") -> bk.HeatmapRow:
    return heatmap_row(symbol, TradeLog(closed(p, n=i, symbol=symbol) for i, p in enumerate(pnls)))


def test_drawdown_is_peak_to_trough_in_time_order() -> None:
    # [deviation] 80 §7: cumulative 5, 2, -2, 0 -> peak 5, deepest trough -2: 7 points
    assert row_of(5.0, -3.0, -4.0, 2.0).max_drawdown == 7.0
    assert row_of(-1.0, -2.0).max_drawdown == 3.0  # the curve starts at 0
    assert row_of(1.0, 2.0).max_drawdown == 0.0


def test_break_even_trades_neither_extend_nor_break_streaks() -> None:
    r = row_of(1.0, 0.0, 1.0, -1.0, 0.0, -1.0, -1.0, 1.0)
    assert (r.max_win_streak, r.max_loss_streak) == (2, 3)
    assert (r.win_count, r.loss_count, r.total_trades) == (3, 3, 8)
    assert r.win_rate == 37.5


def test_heatmap_row_figures() -> None:
    r = row_of(3.0, -1.0, 4.0, -2.0)
    assert (r.total_pnl, r.avg_pnl) == (4.0, 1.0)
    assert r.std_dev == math.sqrt((4 + 4 + 9 + 9) / 4)
    assert r.sharpe_ratio == 1.0 / math.sqrt(6.5)
    assert r.profit_factor == 7.0 / 3.0
    assert (r.avg_win, r.avg_loss) == (3.5, -1.5)
    assert r.expectancy == 0.5 * 3.5 + 0.5 * -1.5
    assert r.max_drawdown == 2.0  # 3, 2, 6, 4


def test_single_trade_row_has_no_std_and_no_sharpe() -> None:
    r = row_of(2.0)
    assert (r.std_dev, r.sharpe_ratio, r.profit_factor, r.avg_loss, r.expectancy) == (None,) * 5
    assert (r.avg_win, r.max_win_streak, r.max_loss_streak) == (2.0, 1, 0)


def test_expectancy_weights_break_even_trades_into_the_loss_share() -> None:
    r = row_of(4.0, 0.0, -2.0, 0.0)
    assert r.win_rate == 25.0
    assert r.expectancy == 0.25 * 4.0 + 0.75 * -2.0


def test_portfolio_sharpe_is_diluted_by_rows_without_a_sharpe() -> None:
    logs = {
        "NOSHARPE": TradeLog([closed(1.0, symbol="NOSHARPE")]),  # one trade: no Sharpe
        "LOW": TradeLog(closed(p, n=i, symbol="LOW") for i, p in enumerate((1.0, -1.0, 3.0))),
        "HIGH": TradeLog(closed(p, n=i, symbol="HIGH") for i, p in enumerate((3.0, 1.0))),
        "EMPTY": TradeLog(),  # a symbol without trades has no row
    }
    h = heatmap_statistics(logs)
    low, high = row_of(1.0, -1.0, 3.0).sharpe_ratio, row_of(3.0, 1.0).sharpe_ratio
    assert (low, high) == (1.0 / math.sqrt(8 / 3), 2.0)
    assert [r.symbol for r in h.symbols] == ["HIGH", "LOW", "NOSHARPE"]
    assert (h.total_symbols, h.portfolio_total_trades, h.portfolio_total_pnl) == (3, 6, 8.0)
    assert h.portfolio_sharpe_ratio == pytest.approx((2.0 * 2 + low * 3) / 6)


def test_empty_heatmap() -> None:
    h = heatmap_statistics({})
    assert (h.symbols, h.total_symbols, h.portfolio_total_trades) == ((), 0, 0)
    assert (h.portfolio_total_pnl, h.portfolio_sharpe_ratio) == (None, None)


def test_heatmap_rows_without_any_sharpe() -> None:
    h = heatmap_statistics({"A": TradeLog([closed(1.0)]), "B": TradeLog([closed(2.0)])})
    assert [r.symbol for r in h.symbols] == ["A", "B"]  # stable: first-seen order
    assert h.portfolio_sharpe_ratio is None and h.portfolio_total_pnl == 3.0


# -- Performance (80 §6) --------------------------------------------------------------------------


def sample(kind: str, duration: float, at: int, previous: int | None) -> bk.PerformanceContract:
    return bk.PerformanceContract(
        timestamp=at,
        previous_timestamp=previous,
        metric_type=kind,
        duration=duration,
        strategy_name="s",
        exchange_name="ex",
        symbol="X",
        backtest=True,
    )


def test_nearest_rank_percentiles() -> None:
    values = np.arange(1.0, 11.0)
    assert [nearest_rank(values, q) for q in (50, 95, 99, 10, 0)] == [5.0, 10.0, 10.0, 1.0, 1.0]
    assert nearest_rank(np.array([7.0]), 99) == 7.0
    assert nearest_rank(np.array([]), 50) == 0.0


def test_performance_statistics_per_metric_type() -> None:
    # newest first, as the collector hands them out; durations 1..10 for backtest_timeframe
    events = [sample("backtest_total", 100.0, 1_000, 990)]
    events += [
        sample("backtest_timeframe", float(d), 900 + d * 10, 890 + d * 10) for d in range(10, 0, -1)
    ]
    events.append(sample("backtest_signal", 2.0, 800, None))
    p = performance_statistics("s", events)
    assert (p.total_events, p.total_duration) == (12, 157.0)
    assert list(p.metric_stats) == ["backtest_total", "backtest_timeframe", "backtest_signal"]
    tf = p.metric_stats["backtest_timeframe"]
    assert tf.to_dict() == {
        "metric_type": "backtest_timeframe",
        "count": 10,
        "total_duration": 55.0,
        "avg_duration": 5.5,
        "min_duration": 1.0,
        "max_duration": 10.0,
        "std_dev": math.sqrt(8.25),
        "median": 5.0,
        "p95": 10.0,
        "p99": 10.0,
        "avg_wait_time": 10.0,
        "min_wait_time": 10.0,
        "max_wait_time": 10.0,
    }
    sig = p.metric_stats["backtest_signal"]
    assert (sig.count, sig.median, sig.avg_wait_time, sig.max_wait_time) == (1, 2.0, 0.0, 0.0)
    assert p.metric_stats["backtest_total"].min_wait_time == 10.0


def test_empty_performance() -> None:
    p = performance_statistics("s", [])
    assert (p.total_events, p.total_duration, dict(p.metric_stats), p.events) == (0, 0.0, {}, ())


# -- Schedule (80 §5.2) ---------------------------------------------------------------------------


def test_schedule_rates_are_none_without_scheduled_rows() -> None:
    s = schedule_statistics(())
    assert (s.total_events, s.total_scheduled, s.cancellation_rate, s.activation_rate) == (
        0,
        0,
        None,
        None,
    )
    assert (s.avg_wait_time, s.avg_activation_time) == (None, None)
