"""The statistics of the reports (80 §2, §4.2, §5.2, §6, §7, §8, §9; 70 §9): pure functions
from collected rows to the frozen records of `records.py`.

Trade figures are computed with numpy over columnar arrays (`TradeLog` keeps every closed
trade's PnL and times as plain lists, turned into arrays in one C-level call), never with a
Python loop over trades. Every float goes through `safe` (80 §1.2: NaN and ±inf become
`None`). No collecting, no text, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..intervals import DAY_MS, MINUTE_MS
from ..model.events import PerformanceContract
from ..model.results import ClosedResult
from .records import (
    BacktestStatistics,
    HeatmapRow,
    HeatmapStatistics,
    LiveStatistics,
    MetricStats,
    PartialEvent,
    PartialStatistics,
    PerformanceStatistics,
    RiskEvent,
    RiskStatistics,
    ScheduledEvent,
    ScheduleStatistics,
    StrategyResult,
    TickEvent,
    WalkerStatistics,
    require_pandas,
)

if TYPE_CHECKING:
    import pandas as pd

_SQRT_365 = math.sqrt(365)
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def safe(x: float | np.floating[Any] | None) -> float | None:
    """A finite number as a Python float, else `None` (80 §1.2)."""
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def minutes_between(t0: int, t1: int) -> int:
    """Whole minutes from `t0` to `t1` (ms), rounded half up like JavaScript `Math.round`."""
    return math.floor((t1 - t0) / MINUTE_MS + 0.5)


class TradeLog:
    """Closed trades in arrival order (chronological for one run), with their PnL and
    times kept as columns, so statistics are array operations. Keeps every trade
    (**[deviation]** 80 §1.1: the reference keeps the newest 250)."""

    __slots__ = ("closed_at", "pending_at", "pnl", "results")

    def __init__(self, results: Iterable[ClosedResult] = ()) -> None:
        self.results: list[ClosedResult] = []
        self.pnl: list[float] = []
        self.pending_at: list[int] = []
        self.closed_at: list[int] = []
        for result in results:
            self.add(result)

    def add(self, result: ClosedResult) -> None:
        self.results.append(result)
        self.pnl.append(result.pnl.pnl_percentage)
        self.pending_at.append(result.signal.pending_at)
        self.closed_at.append(result.close_timestamp)

    def __len__(self) -> int:
        return len(self.results)


# -- Backtest and Live (80 §2, §4.2) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PnlFigures:
    """The trade figures shared by the backtest and live statistics (80 §2)."""

    win_count: int
    loss_count: int
    total: float
    avg: float
    std: float
    sharpe: float
    certainty: float


@np.errstate(all="ignore")  # a non-finite figure becomes None (80 §1.2), not a warning
def _pnl_figures(p: FloatArray) -> _PnlFigures:
    n = len(p)
    wins, losses = p > 0, p < 0
    win_count, loss_count = int(np.count_nonzero(wins)), int(np.count_nonzero(losses))
    total = float(p.sum())
    avg = total / n
    std = math.sqrt(float(np.mean((p - avg) ** 2)))  # population standard deviation
    avg_win = float(p[wins].mean()) if win_count else 0.0
    avg_loss = float(p[losses].mean()) if loss_count else 0.0
    return _PnlFigures(
        win_count=win_count,
        loss_count=loss_count,
        total=total,
        avg=avg,
        std=std,
        sharpe=avg / std if std > 0 else 0.0,
        certainty=avg_win / abs(avg_loss) if avg_loss < 0 else 0.0,
    )


def backtest_statistics(log: TradeLog) -> BacktestStatistics:
    """`BacktestStatistics` of every trade in `log` (80 §2); `signal_list` newest first."""
    n = len(log)
    if n == 0:
        return BacktestStatistics((), 0, 0, 0, None, None, None, None, None, None, None, None)
    p = np.asarray(log.pnl, dtype=np.float64)
    f = _pnl_figures(p)
    held = np.asarray(log.closed_at, dtype=np.int64) - np.asarray(log.pending_at, dtype=np.int64)
    days = float(held.mean()) / DAY_MS
    return BacktestStatistics(
        signal_list=tuple(reversed(log.results)),
        total_signals=n,
        win_count=f.win_count,
        loss_count=f.loss_count,
        win_rate=safe(f.win_count / n * 100),
        avg_pnl=safe(f.avg),
        total_pnl=safe(f.total),
        std_dev=safe(f.std),
        sharpe_ratio=safe(f.sharpe),
        annualized_sharpe_ratio=safe(f.sharpe * _SQRT_365),
        certainty_ratio=safe(f.certainty),
        expected_yearly_returns=safe(f.avg * (365 / days) if days > 0 else 0.0),
    )


def backtest_statistics_of(results: Iterable[ClosedResult]) -> BacktestStatistics:
    """`BacktestStatistics` of closed results given oldest first (e.g. a list from
    `Backtest.run_sync`, cancelled results filtered out)."""
    return backtest_statistics(TradeLog(r for r in results if r.action == "closed"))


def live_statistics(events: Sequence[TickEvent]) -> LiveStatistics:
    """`LiveStatistics` of the rows `events` (newest first) (80 §4.2)."""
    if not events:
        return LiveStatistics((), 0, 0, 0, 0, None, None, None, None, None, None, None, None)
    closed = [e for e in events if e.action == "closed"]
    c = len(closed)
    if c == 0:
        # reference: win rate is 0/0 (NaN -> None), the other figures 0
        return LiveStatistics(
            tuple(events), len(events), 0, 0, 0, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        )
    p = np.array([e.pnl for e in closed], dtype=np.float64)
    f = _pnl_figures(p)
    minutes = np.array([e.duration for e in closed], dtype=np.float64)
    days = float(minutes.mean()) / 1440
    return LiveStatistics(
        event_list=tuple(events),
        total_events=len(events),
        total_closed=c,
        win_count=f.win_count,
        loss_count=f.loss_count,
        win_rate=safe(f.win_count / c * 100),
        avg_pnl=safe(f.avg),
        total_pnl=safe(f.total),
        std_dev=safe(f.std),
        sharpe_ratio=safe(f.sharpe),
        annualized_sharpe_ratio=safe(f.sharpe * _SQRT_365),
        certainty_ratio=safe(f.certainty),
        expected_yearly_returns=safe(f.avg * (365 / days) if days > 0 else 0.0),
    )


# -- Schedule (80 §5.2) -------------------------------------------------------------------------


def schedule_statistics(events: Sequence[ScheduledEvent]) -> ScheduleStatistics:
    """`ScheduleStatistics` of the rows `events` (newest first)."""
    scheduled = sum(1 for e in events if e.action == "scheduled")
    opened = [e.duration for e in events if e.action == "opened" and e.duration is not None]
    cancelled = [e.duration for e in events if e.action == "cancelled" and e.duration is not None]
    total_opened = sum(1 for e in events if e.action == "opened")
    total_cancelled = sum(1 for e in events if e.action == "cancelled")
    return ScheduleStatistics(
        event_list=tuple(events),
        total_events=len(events),
        total_scheduled=scheduled,
        total_opened=total_opened,
        total_cancelled=total_cancelled,
        cancellation_rate=safe(total_cancelled / scheduled * 100) if scheduled else None,
        activation_rate=safe(total_opened / scheduled * 100) if scheduled else None,
        avg_wait_time=safe(np.mean(cancelled)) if cancelled else None,
        avg_activation_time=safe(np.mean(opened)) if opened else None,
    )


# -- Performance (80 §6) ------------------------------------------------------------------------


def nearest_rank(sorted_values: FloatArray, q: float) -> float:
    """The `q`-th percentile by nearest rank of ascending values (0.0 when empty)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    index = max(0, math.ceil(n * q / 100) - 1)
    return float(sorted_values[min(index, n - 1)])


def performance_statistics(
    strategy_name: str, events: Sequence[PerformanceContract]
) -> PerformanceStatistics:
    """`PerformanceStatistics` of the samples `events` (newest first)."""
    if not events:
        return PerformanceStatistics(strategy_name, 0, 0.0, MappingProxyType({}), ())
    kinds = np.array([e.metric_type for e in events])
    durations = np.array([e.duration for e in events], dtype=np.float64)
    stamps = np.array([e.timestamp for e in events], dtype=np.int64)
    previous = np.array(
        [-1 if e.previous_timestamp is None else e.previous_timestamp for e in events],
        dtype=np.int64,
    )
    has_previous = np.array([e.previous_timestamp is not None for e in events])
    stats: list[MetricStats] = []
    for kind in dict.fromkeys(kinds.tolist()):  # first appearance order, for stable ties
        mask = kinds == kind
        d = np.sort(durations[mask])
        count = len(d)
        total = float(d.sum())
        avg = total / count
        waits = (stamps - previous)[mask & has_previous].astype(np.float64)
        stats.append(
            MetricStats(
                metric_type=kind,
                count=count,
                total_duration=total,
                avg_duration=avg,
                min_duration=float(d[0]),
                max_duration=float(d[-1]),
                std_dev=math.sqrt(float(np.mean((d - avg) ** 2))),
                median=nearest_rank(d, 50),
                p95=nearest_rank(d, 95),
                p99=nearest_rank(d, 99),
                avg_wait_time=float(waits.mean()) if len(waits) else 0.0,
                min_wait_time=float(waits.min()) if len(waits) else 0.0,
                max_wait_time=float(waits.max()) if len(waits) else 0.0,
            )
        )
    stats.sort(key=lambda m: -m.total_duration)
    return PerformanceStatistics(
        strategy_name=strategy_name,
        total_events=len(events),
        total_duration=float(durations.sum()),
        metric_stats=MappingProxyType({m.metric_type: m for m in stats}),
        events=tuple(events),
    )


# -- Heatmap (80 §7) ----------------------------------------------------------------------------


def _longest_run(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> int:
    """Length of the longest run of `True` in `mask`."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


@np.errstate(all="ignore")
def heatmap_row(symbol: str, log: TradeLog) -> HeatmapRow:
    """The heatmap row of one symbol's trades, evaluated in chronological order
    (**[deviation]** 80 §7: the reference iterates newest first)."""
    p = np.asarray(log.pnl, dtype=np.float64)
    n = len(p)
    wins, losses = p > 0, p < 0
    win_count, loss_count = int(np.count_nonzero(wins)), int(np.count_nonzero(losses))
    win_rate = win_count / n * 100
    total = float(p.sum())
    avg = total / n
    std = math.sqrt(float(np.mean((p - avg) ** 2))) if n > 1 else None
    sharpe = avg / std if std is not None and std != 0 else None
    # [deviation] 80 §7: peak-to-trough of the cumulative PnL curve starting at 0
    cum = np.cumsum(p)
    peak = np.maximum.accumulate(np.maximum(cum, 0.0))
    max_drawdown = max(0.0, float((peak - cum).max()))
    gross_win, gross_loss = float(p[wins].sum()), float(p[losses].sum())
    avg_win = gross_win / win_count if win_count else None
    avg_loss = gross_loss / loss_count if loss_count else None
    decided = p[p != 0]  # a break-even trade neither extends nor breaks a streak
    expectancy = (
        win_rate / 100 * avg_win + (100 - win_rate) / 100 * avg_loss
        if avg_win is not None and avg_loss is not None
        else None
    )
    return HeatmapRow(
        symbol=symbol,
        total_pnl=safe(total),
        sharpe_ratio=safe(sharpe),
        max_drawdown=safe(max_drawdown),
        total_trades=n,
        win_count=win_count,
        loss_count=loss_count,
        win_rate=safe(win_rate),
        avg_pnl=safe(avg),
        std_dev=safe(std),
        profit_factor=safe(gross_win / abs(gross_loss)) if win_count and loss_count else None,
        avg_win=safe(avg_win),
        avg_loss=safe(avg_loss),
        max_win_streak=_longest_run(decided > 0),
        max_loss_streak=_longest_run(decided < 0),
        expectancy=safe(expectancy),
    )


def heatmap_statistics(logs: Mapping[str, TradeLog]) -> HeatmapStatistics:
    """`HeatmapStatistics` of per-symbol trade logs (symbols in first-seen order)."""
    rows = [heatmap_row(symbol, log) for symbol, log in logs.items() if len(log)]
    # best Sharpe first, None last; sorted() is stable, so ties keep first-seen order
    rows.sort(key=lambda r: (r.sharpe_ratio is None, -(r.sharpe_ratio or 0.0)))
    trades = sum(r.total_trades for r in rows)
    rated = [r for r in rows if r.sharpe_ratio is not None]
    weighted = sum((r.sharpe_ratio or 0.0) * r.total_trades for r in rated)
    return HeatmapStatistics(
        symbols=tuple(rows),
        total_symbols=len(rows),
        portfolio_total_pnl=safe(sum(r.total_pnl or 0.0 for r in rows)) if rows else None,
        # the denominator counts every trade, so rows without a Sharpe dilute it (80 §7)
        portfolio_sharpe_ratio=safe(weighted / trades) if rated and trades > 0 else None,
        portfolio_total_trades=trades,
    )


# -- Partial and Risk (80 §8, §9) ---------------------------------------------------------------


def partial_statistics(events: Sequence[PartialEvent]) -> PartialStatistics:
    """`PartialStatistics` of the milestones `events` (newest first)."""
    profit = sum(1 for e in events if e.action == "profit")
    return PartialStatistics(
        event_list=tuple(events),
        total_events=len(events),
        total_profit=profit,
        total_loss=sum(1 for e in events if e.action == "loss"),
    )


def risk_statistics(events: Sequence[RiskEvent]) -> RiskStatistics:
    """`RiskStatistics` of the rejections `events` (newest first)."""
    by_symbol: dict[str, int] = {}
    by_strategy: dict[str, int] = {}
    for e in events:
        by_symbol[e.symbol] = by_symbol.get(e.symbol, 0) + 1
        by_strategy[e.strategy_name] = by_strategy.get(e.strategy_name, 0) + 1
    return RiskStatistics(
        event_list=tuple(events),
        total_rejections=len(events),
        by_symbol=MappingProxyType(by_symbol),
        by_strategy=MappingProxyType(by_strategy),
    )


# -- Walker (70 §9) -----------------------------------------------------------------------------


def walker_statistics(
    *,
    walker_name: str,
    symbol: str,
    exchange_name: str,
    frame_name: str,
    metric: str,
    total_strategies: int,
    best_strategy: str | None,
    best_metric: float | None,
    best_stats: BacktestStatistics | None,
    results_oldest_first: Sequence[StrategyResult],
) -> WalkerStatistics:
    """`WalkerStatistics` from what the walker collector recorded."""
    return WalkerStatistics(
        walker_name=walker_name,
        symbol=symbol,
        exchange_name=exchange_name,
        frame_name=frame_name,
        metric=metric,
        total_strategies=total_strategies,
        best_strategy=best_strategy,
        best_metric=safe(best_metric),
        best_stats=best_stats,
        strategy_results=tuple(reversed(results_oldest_first)),
    )


# -- pandas (issue 4 item 4) --------------------------------------------------------------------

POSITIONS = ("long", "short")
CLOSE_REASONS = ("take_profit", "stop_loss", "time_expired")


def trades_frame(results: Sequence[ClosedResult]) -> pd.DataFrame:
    """Closed results (in the given order) as a typed DataFrame; see
    `BacktestStatistics.to_pandas`."""
    pandas = require_pandas("BacktestStatistics.to_pandas()")
    rows = [r.signal for r in results]

    def times(values: list[int]) -> Any:
        array = np.asarray(values, dtype=np.int64).astype("datetime64[ms]")
        return pandas.Series(array, dtype="datetime64[ms]").dt.tz_localize("UTC")

    def floats(values: Iterable[float | None]) -> FloatArray:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    pending = [row.pending_at for row in rows]
    closed = [r.close_timestamp for r in results]
    held = np.asarray(closed, dtype=np.int64) - np.asarray(pending, dtype=np.int64)
    frame: pd.DataFrame = pandas.DataFrame(
        {
            "signal_id": pandas.array([row.id for row in rows], dtype="string"),
            "symbol": pandas.array([r.symbol for r in results], dtype="string"),
            "strategy_name": pandas.array([r.strategy_name for r in results], dtype="string"),
            "exchange_name": pandas.array([r.exchange_name for r in results], dtype="string"),
            "position": pandas.Categorical([row.position for row in rows], categories=POSITIONS),
            "note": pandas.array([row.note for row in rows], dtype="string"),
            "price_open": floats(row.price_open for row in rows),
            "price_close": floats(r.current_price for r in results),
            "price_take_profit": floats(row.price_take_profit for row in rows),
            "price_stop_loss": floats(row.price_stop_loss for row in rows),
            "pnl_percentage": floats(r.pnl.pnl_percentage for r in results),
            "close_reason": pandas.Categorical(
                [r.close_reason for r in results], categories=CLOSE_REASONS
            ),
            "minute_estimated_time": np.array(
                [row.minute_estimated_time for row in rows], dtype=np.int64
            ),
            "scheduled_at": times([row.scheduled_at for row in rows]),
            "pending_at": times(pending),
            "close_timestamp": times(closed),
            "duration_minutes": np.floor(held / MINUTE_MS + 0.5).astype(np.int64),
            "quantity": floats(row.quantity for row in rows),
            "cost": floats(row.cost for row in rows),
        }
    )
    return frame


__all__ = [
    "TradeLog",
    "backtest_statistics",
    "backtest_statistics_of",
    "heatmap_row",
    "heatmap_statistics",
    "live_statistics",
    "minutes_between",
    "nearest_rank",
    "partial_statistics",
    "performance_statistics",
    "risk_statistics",
    "safe",
    "schedule_statistics",
    "walker_statistics",
]
