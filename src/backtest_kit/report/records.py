"""The records of the reports (80): collected rows (`TickEvent`, `ScheduledEvent`,
`PartialEvent`, `RiskEvent`, `SignalData`) and statistics (`BacktestStatistics` …
`WalkerStatistics`).

Records only: frozen, immutable snapshots with `to_dict()` (JSON-ready builtins, 10 §8). No
formulas (`stats.py`), no collecting (`collectors.py`), no text (`markdown.py`). A statistic
that is not a finite number is `None` (80 §1.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BacktestKitError
from ..model.events import PerformanceContract
from ..model.results import ClosedResult

if TYPE_CHECKING:
    import pandas as pd


# -- Backtest (80 §2) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestStatistics:
    """`Backtest.get_data`: the closed trades of one `(symbol, strategy)` backtest and their
    statistics (80 §2). PnL figures are percent, net of fees and slippage; `signal_list` is
    newest first; with no trade every float is `None`::

        stats = await bk.Backtest.get_data("BTCUSDT", "sma")
        stats.sharpe_ratio, stats.total_signals
        stats.to_pandas()          # one row per trade, oldest first
    """

    signal_list: tuple[ClosedResult, ...]
    total_signals: int
    win_count: int
    loss_count: int
    win_rate: float | None
    avg_pnl: float | None
    total_pnl: float | None
    std_dev: float | None
    sharpe_ratio: float | None
    annualized_sharpe_ratio: float | None
    certainty_ratio: float | None
    expected_yearly_returns: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal_list": [r.to_dict() for r in self.signal_list],
            "total_signals": self.total_signals,
            "win_count": self.win_count,
            "loss_count": self.loss_count,
            "win_rate": self.win_rate,
            "avg_pnl": self.avg_pnl,
            "total_pnl": self.total_pnl,
            "std_dev": self.std_dev,
            "sharpe_ratio": self.sharpe_ratio,
            "annualized_sharpe_ratio": self.annualized_sharpe_ratio,
            "certainty_ratio": self.certainty_ratio,
            "expected_yearly_returns": self.expected_yearly_returns,
        }

    def to_pandas(self) -> pd.DataFrame:
        """The trades as a DataFrame, one row per closed signal, **oldest first** (the
        reverse of `signal_list`, so `df.pnl_percentage.cumsum()` is the equity curve).

        Columns and dtypes: `signal_id`, `symbol`, `strategy_name`, `exchange_name`, `note`
        (`string`); `position` (category long/short); `price_open`, `price_close`,
        `price_take_profit`, `price_stop_loss`, `pnl_percentage` (`float64`); `close_reason`
        (category); `minute_estimated_time`, `duration_minutes` (`int64`); `scheduled_at`,
        `pending_at`, `close_timestamp` (`datetime64[ms, UTC]`); `quantity`, `cost`
        (`float64`, NaN without sizing). Needs pandas (extra `pandas`).
        """
        from .stats import trades_frame

        return trades_frame(self.signal_list[::-1])


# -- Live (80 §4) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickEvent:
    """One row of the live report (80 §4.1): `action` is `idle`, `opened`, `active` or
    `closed`; `timestamp` int ms; `pnl` percent; `duration` whole minutes."""

    timestamp: int
    action: str
    current_price: float
    symbol: str | None = None
    signal_id: str | None = None
    position: str | None = None
    note: str | None = None
    open_price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    percent_tp: float | None = None
    percent_sl: float | None = None
    pnl: float | None = None
    close_reason: str | None = None
    duration: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "action": self.action,
            "symbol": self.symbol,
            "signal_id": self.signal_id,
            "position": self.position,
            "note": self.note,
            "current_price": self.current_price,
            "open_price": self.open_price,
            "take_profit": self.take_profit,
            "stop_loss": self.stop_loss,
            "percent_tp": self.percent_tp,
            "percent_sl": self.percent_sl,
            "pnl": self.pnl,
            "close_reason": self.close_reason,
            "duration": self.duration,
        }


@dataclass(frozen=True, slots=True)
class LiveStatistics:
    """`Live.get_data` (80 §4.2): the rows (newest first, the 250 newest) and the statistics
    of the `closed` rows among them."""

    event_list: tuple[TickEvent, ...]
    total_events: int
    total_closed: int
    win_count: int
    loss_count: int
    win_rate: float | None
    avg_pnl: float | None
    total_pnl: float | None
    std_dev: float | None
    sharpe_ratio: float | None
    annualized_sharpe_ratio: float | None
    certainty_ratio: float | None
    expected_yearly_returns: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_list": [e.to_dict() for e in self.event_list],
            "total_events": self.total_events,
            "total_closed": self.total_closed,
            "win_count": self.win_count,
            "loss_count": self.loss_count,
            "win_rate": self.win_rate,
            "avg_pnl": self.avg_pnl,
            "total_pnl": self.total_pnl,
            "std_dev": self.std_dev,
            "sharpe_ratio": self.sharpe_ratio,
            "annualized_sharpe_ratio": self.annualized_sharpe_ratio,
            "certainty_ratio": self.certainty_ratio,
            "expected_yearly_returns": self.expected_yearly_returns,
        }


# -- Schedule (80 §5) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """One row of the schedule report (80 §5.1): `action` is `scheduled`, `opened` (an
    activation) or `cancelled`; `duration` is the wait in whole minutes (not for
    `scheduled`); `close_timestamp` only for `cancelled`."""

    timestamp: int
    action: str
    symbol: str
    signal_id: str
    position: str
    note: str | None
    current_price: float
    price_open: float
    take_profit: float
    stop_loss: float
    close_timestamp: int | None = None
    duration: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "action": self.action,
            "symbol": self.symbol,
            "signal_id": self.signal_id,
            "position": self.position,
            "note": self.note,
            "current_price": self.current_price,
            "price_open": self.price_open,
            "take_profit": self.take_profit,
            "stop_loss": self.stop_loss,
            "close_timestamp": self.close_timestamp,
            "duration": self.duration,
        }


@dataclass(frozen=True, slots=True)
class ScheduleStatistics:
    """`Schedule.get_data` (80 §5.2): rates in percent (`None` when nothing was scheduled),
    average waits in minutes (`None` when there is no such row)."""

    event_list: tuple[ScheduledEvent, ...]
    total_events: int
    total_scheduled: int
    total_opened: int
    total_cancelled: int
    cancellation_rate: float | None
    activation_rate: float | None
    avg_wait_time: float | None
    avg_activation_time: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_list": [e.to_dict() for e in self.event_list],
            "total_events": self.total_events,
            "total_scheduled": self.total_scheduled,
            "total_opened": self.total_opened,
            "total_cancelled": self.total_cancelled,
            "cancellation_rate": self.cancellation_rate,
            "activation_rate": self.activation_rate,
            "avg_wait_time": self.avg_wait_time,
            "avg_activation_time": self.avg_activation_time,
        }


# -- Performance (80 §6) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricStats:
    """Timing statistics of one metric type (80 §6), all in milliseconds; percentiles by
    nearest rank; wait times are gaps to the previous sample of the same run."""

    metric_type: str
    count: int
    total_duration: float
    avg_duration: float
    min_duration: float
    max_duration: float
    std_dev: float
    median: float
    p95: float
    p99: float
    avg_wait_time: float
    min_wait_time: float
    max_wait_time: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_type": self.metric_type,
            "count": self.count,
            "total_duration": self.total_duration,
            "avg_duration": self.avg_duration,
            "min_duration": self.min_duration,
            "max_duration": self.max_duration,
            "std_dev": self.std_dev,
            "median": self.median,
            "p95": self.p95,
            "p99": self.p99,
            "avg_wait_time": self.avg_wait_time,
            "min_wait_time": self.min_wait_time,
            "max_wait_time": self.max_wait_time,
        }


@dataclass(frozen=True, slots=True)
class PerformanceStatistics:
    """`Performance.get_data` (80 §6): `metric_stats` ordered by total duration, largest
    first; `events` newest first (the 10 000 newest samples)."""

    strategy_name: str
    total_events: int
    total_duration: float
    metric_stats: Mapping[str, MetricStats]
    events: tuple[PerformanceContract, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy_name": self.strategy_name,
            "total_events": self.total_events,
            "total_duration": self.total_duration,
            "metric_stats": {k: v.to_dict() for k, v in self.metric_stats.items()},
            "events": [e.to_dict() for e in self.events],
        }


# -- Heatmap (80 §7) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeatmapRow:
    """One symbol of a strategy's heatmap (80 §7): PnL figures in percent (points),
    `max_drawdown` >= 0 peak-to-trough of the cumulative PnL; `None` where undefined."""

    symbol: str
    total_pnl: float | None
    sharpe_ratio: float | None
    max_drawdown: float | None
    total_trades: int
    win_count: int
    loss_count: int
    win_rate: float | None
    avg_pnl: float | None
    std_dev: float | None
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None
    max_win_streak: int
    max_loss_streak: int
    expectancy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "total_pnl": self.total_pnl,
            "sharpe_ratio": self.sharpe_ratio,
            "max_drawdown": self.max_drawdown,
            "total_trades": self.total_trades,
            "win_count": self.win_count,
            "loss_count": self.loss_count,
            "win_rate": self.win_rate,
            "avg_pnl": self.avg_pnl,
            "std_dev": self.std_dev,
            "profit_factor": self.profit_factor,
            "avg_win": self.avg_win,
            "avg_loss": self.avg_loss,
            "max_win_streak": self.max_win_streak,
            "max_loss_streak": self.max_loss_streak,
            "expectancy": self.expectancy,
        }


@dataclass(frozen=True, slots=True)
class HeatmapStatistics:
    """`Heat.get_data` (80 §7): one row per symbol, best Sharpe first, and portfolio totals."""

    symbols: tuple[HeatmapRow, ...]
    total_symbols: int
    portfolio_total_pnl: float | None
    portfolio_sharpe_ratio: float | None
    portfolio_total_trades: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbols": [row.to_dict() for row in self.symbols],
            "total_symbols": self.total_symbols,
            "portfolio_total_pnl": self.portfolio_total_pnl,
            "portfolio_sharpe_ratio": self.portfolio_sharpe_ratio,
            "portfolio_total_trades": self.portfolio_total_trades,
        }


# -- Partial (80 §8) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartialEvent:
    """One partial milestone (80 §8): `action` is `profit` or `loss`, `level` 10…100."""

    timestamp: int
    action: str
    symbol: str
    strategy_name: str
    signal_id: str
    position: str
    current_price: float
    level: int
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "action": self.action,
            "symbol": self.symbol,
            "strategy_name": self.strategy_name,
            "signal_id": self.signal_id,
            "position": self.position,
            "current_price": self.current_price,
            "level": self.level,
            "backtest": self.backtest,
        }


@dataclass(frozen=True, slots=True)
class PartialStatistics:
    """`Partial.get_data` (80 §8): the 250 newest milestones, newest first, and counts."""

    event_list: tuple[PartialEvent, ...]
    total_events: int
    total_profit: int
    total_loss: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_list": [e.to_dict() for e in self.event_list],
            "total_events": self.total_events,
            "total_profit": self.total_profit,
            "total_loss": self.total_loss,
        }


# -- Risk (80 §9) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One risk rejection (80 §9): the `RiskContract` fields; `pending_signal` is the
    `SignalRow` (or `Signal`) that was refused."""

    timestamp: int
    symbol: str
    pending_signal: Any
    strategy_name: str
    exchange_name: str
    current_price: float
    active_position_count: int
    comment: str
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        signal = self.pending_signal
        return {
            "timestamp": self.timestamp,
            "symbol": self.symbol,
            "pending_signal": signal.to_dict() if hasattr(signal, "to_dict") else signal,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "current_price": self.current_price,
            "active_position_count": self.active_position_count,
            "comment": self.comment,
            "backtest": self.backtest,
        }


@dataclass(frozen=True, slots=True)
class RiskStatistics:
    """`Risk.get_data` (80 §9): the 250 newest rejections, newest first, and counts per
    symbol and per strategy (in order of first appearance, newest first)."""

    event_list: tuple[RiskEvent, ...]
    total_rejections: int
    by_symbol: Mapping[str, int]
    by_strategy: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_list": [e.to_dict() for e in self.event_list],
            "total_rejections": self.total_rejections,
            "by_symbol": dict(self.by_symbol),
            "by_strategy": dict(self.by_strategy),
        }


# -- Walker (80 §10, 70 §9) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """One tested strategy of a walker: its backtest statistics and metric value (`None`
    when not finite)."""

    strategy_name: str
    stats: BacktestStatistics
    metric_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy_name": self.strategy_name,
            "stats": self.stats.to_dict(),
            "metric_value": self.metric_value,
        }


@dataclass(frozen=True, slots=True)
class SignalData:
    """A row of the walker's PnL table (70 §10): one closed signal of one strategy;
    `pnl` percent, `open_time` = `pending_at`, `close_time` = `close_timestamp` (int ms)."""

    strategy_name: str
    signal_id: str
    symbol: str
    position: str
    pnl: float
    close_reason: str
    open_time: int
    close_time: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy_name": self.strategy_name,
            "signal_id": self.signal_id,
            "symbol": self.symbol,
            "position": self.position,
            "pnl": self.pnl,
            "close_reason": self.close_reason,
            "open_time": self.open_time,
            "close_time": self.close_time,
        }


@dataclass(frozen=True, slots=True)
class WalkerStatistics:
    """`Walker.get_data` (70 §9): the walker's schema facts, the best strategy so far and one
    `StrategyResult` per tested strategy, newest first."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    metric: str
    total_strategies: int
    best_strategy: str | None
    best_metric: float | None
    best_stats: BacktestStatistics | None
    strategy_results: tuple[StrategyResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "walker_name": self.walker_name,
            "symbol": self.symbol,
            "exchange_name": self.exchange_name,
            "frame_name": self.frame_name,
            "metric": self.metric,
            "total_strategies": self.total_strategies,
            "best_strategy": self.best_strategy,
            "best_metric": self.best_metric,
            "best_stats": None if self.best_stats is None else self.best_stats.to_dict(),
            "strategy_results": [r.to_dict() for r in self.strategy_results],
        }


def require_pandas(what: str) -> Any:
    """Import pandas or raise a `BacktestKitError` naming the extra."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise BacktestKitError(f'{what} needs pandas: pip install "backtest-kit[pandas]"') from None
    return pandas


__all__ = [
    "BacktestStatistics",
    "HeatmapRow",
    "HeatmapStatistics",
    "LiveStatistics",
    "MetricStats",
    "PartialEvent",
    "PartialStatistics",
    "PerformanceStatistics",
    "RiskEvent",
    "RiskStatistics",
    "ScheduleStatistics",
    "ScheduledEvent",
    "SignalData",
    "StrategyResult",
    "TickEvent",
    "WalkerStatistics",
]
