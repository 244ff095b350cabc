"""The report collectors (80 §1.1): one `ReportHub` per runtime keeps what the engines
publish, per key, for the statistics of `stats.py`.

The hub subscribes to the event bus as an *internal* subscriber when the runtime is created,
so it runs before any user listener and a user listener always finds its event already
collected. Backtest and heatmap trades are kept in full (**[deviation]** 80 §1.1); the other
collectors keep the reference's caps (250 rows, 10 000 performance samples), newest last in
memory and handed out newest first. Handlers are plain functions: no I/O, no awaiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..context import execution_context
from ..core.exchange import wall_clock_ms
from ..errors import BacktestKitError
from ..events import (
    PARTIAL_LOSS,
    PARTIAL_PROFIT,
    PERFORMANCE,
    RISK,
    SIGNAL_BACKTEST,
    SIGNAL_LIVE,
    WALKER,
)
from ..model.events import (
    PartialLossContract,
    PartialProfitContract,
    PerformanceContract,
    RiskContract,
)
from ..model.results import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    ScheduledResult,
    TickResult,
)
from .columns import DEFAULT_COLUMNS, ColumnConfig
from .records import (
    BacktestStatistics,
    HeatmapStatistics,
    LiveStatistics,
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
)
from .stats import (
    TradeLog,
    backtest_statistics,
    heatmap_statistics,
    live_statistics,
    minutes_between,
    partial_statistics,
    performance_statistics,
    risk_statistics,
    safe,
    schedule_statistics,
    walker_statistics,
)

if TYPE_CHECKING:
    from ..runtime import Runtime

Key = tuple[str, str, bool]  # (symbol, strategy_name, backtest)
ROW_CAP = 250
PERFORMANCE_CAP = 10_000
# (timestamp, previous_timestamp, metric_type, duration, backtest, strategy, exchange, symbol)
PerformanceFields = tuple[int, int | None, str, float, bool, str, str, str]


def _performance_contract(fields: PerformanceFields) -> PerformanceContract:
    timestamp, previous, metric_type, duration, backtest, strategy, exchange, symbol = fields
    return PerformanceContract(
        timestamp=timestamp,
        previous_timestamp=previous,
        metric_type=metric_type,
        duration=duration,
        strategy_name=strategy,
        exchange_name=exchange,
        symbol=symbol,
        backtest=backtest,
    )


T = TypeVar("T")


def _newest_first(rows: deque[T] | None) -> tuple[T, ...]:
    return () if rows is None else tuple(reversed(rows))


@dataclass(slots=True)
class WalkerRecord:
    """What the walker collector keeps for one `(symbol, walker_name)` (70 §9)."""

    total_strategies: int = 0
    best_strategy: str | None = None
    best_metric: float | None = None
    best_stats: BacktestStatistics | None = None
    results: list[StrategyResult] = field(default_factory=list)


class ReportHub:
    """Every report collector of one runtime, and the report column configuration.

    Each handler ignores payloads that are not the record its topic carries."""

    def __init__(self, runtime: Runtime) -> None:
        self.columns: ColumnConfig = DEFAULT_COLUMNS
        self.backtest: dict[Key, TradeLog] = {}
        self.live: dict[Key, deque[TickEvent]] = {}
        self.schedule: dict[Key, deque[ScheduledEvent]] = {}
        self.awaiting: dict[Key, set[str]] = {}  # ids recorded as scheduled, per key
        self.performance: dict[Key, deque[PerformanceContract]] = {}
        self.heat: dict[tuple[str, bool], dict[str, TradeLog]] = {}
        self.partial: dict[Key, deque[PartialProfitContract | PartialLossContract]] = {}
        self.risk: dict[Key, deque[RiskEvent]] = {}
        self.walker: dict[tuple[str, str], WalkerRecord] = {}
        bus = runtime.bus
        bus.subscribe(SIGNAL_BACKTEST, self._on_backtest_signal, internal=True)
        bus.subscribe(SIGNAL_LIVE, self._on_live_signal, internal=True)
        bus.subscribe(PERFORMANCE, self._on_performance, internal=True)
        bus.subscribe(PARTIAL_PROFIT, self._on_partial, internal=True)
        bus.subscribe(PARTIAL_LOSS, self._on_partial, internal=True)
        bus.subscribe(RISK, self._on_risk, internal=True)
        bus.subscribe(WALKER, self._on_walker, internal=True)

    # -- resets (30 §4, 40 §2.5, 70 §4.1) --------------------------------------------------------

    def clear_run(self, symbol: str, strategy_name: str, backtest: bool) -> None:
        """Empty every collector of `(symbol, strategy_name, backtest)` and the symbol's rows
        of the strategy's heatmap in that mode (**[deviation]** 80 §1.7: the reference never
        clears heat data)."""
        key = (symbol, strategy_name, backtest)
        for store in (
            self.backtest,
            self.live,
            self.schedule,
            self.awaiting,
            self.performance,
            self.partial,
            self.risk,
        ):
            store.pop(key, None)
        self.heat.get((strategy_name, backtest), {}).pop(symbol, None)

    def clear_walker(self, symbol: str, walker_name: str) -> None:
        """Forget the walker results of `(symbol, walker_name)` (a walker run starts)."""
        self.walker.pop((symbol, walker_name), None)

    # -- handlers (subscribed in __init__) -----------------------------------------------------

    # The schedule and heatmap collectors read the mode topics too (every result is published
    # there before the general `signal` topic), so they are complete when a user listener of
    # any signal topic runs (80 §1.1).

    def _on_backtest_signal(self, result: TickResult) -> None:
        if isinstance(result, ClosedResult):
            key = (result.symbol, result.strategy_name, True)
            log = self.backtest.get(key)
            if log is None:
                log = self.backtest[key] = TradeLog()
            log.add(result)
            self._add_heat(result)
        elif isinstance(result, ScheduledResult | OpenedResult | CancelledResult):
            self._add_schedule(result)

    def _add_heat(self, result: ClosedResult) -> None:
        symbols = self.heat.setdefault((result.strategy_name, result.backtest), {})
        log = symbols.get(result.symbol)
        if log is None:
            log = symbols[result.symbol] = TradeLog()
        log.add(result)

    def _add_schedule(self, result: ScheduledResult | OpenedResult | CancelledResult) -> None:
        row = result.signal
        key = (result.symbol, result.strategy_name, result.backtest)
        awaiting = self.awaiting.setdefault(key, set())
        if isinstance(result, ScheduledResult):
            awaiting.add(row.id)
            event = _scheduled_event(result, row.scheduled_at, None, None)
        elif isinstance(result, OpenedResult):
            # [deviation] 80 §5.1: an activation is an `opened` of an id recorded as
            # scheduled (the reference compares scheduled_at with pending_at)
            if row.id not in awaiting:
                return
            awaiting.discard(row.id)
            wait = minutes_between(row.scheduled_at, row.pending_at)
            event = _scheduled_event(result, row.pending_at, None, wait)
        else:
            awaiting.discard(row.id)
            at = result.close_timestamp
            event = _scheduled_event(result, at, at, minutes_between(row.scheduled_at, at))
        rows = self.schedule.get(key)
        if rows is None:
            rows = self.schedule[key] = deque(maxlen=ROW_CAP)
        rows.append(event)

    def _on_live_signal(self, result: TickResult) -> None:
        if isinstance(result, ClosedResult):
            self._add_heat(result)
        if isinstance(result, ScheduledResult | OpenedResult | CancelledResult):
            self._add_schedule(result)
        if not isinstance(result, IdleResult | OpenedResult | ActiveResult | ClosedResult):
            return  # scheduled and cancelled results are not live rows (80 §4.1)
        key = (result.symbol, result.strategy_name, False)
        rows = self.live.get(key)
        if rows is None:
            rows = self.live[key] = deque(maxlen=ROW_CAP)
        if isinstance(result, IdleResult):
            event = TickEvent(timestamp=_now(), action="idle", current_price=result.current_price)
            # [deviation] 80 §4.1: refresh the newest idle row unless a position event is
            # newer, so one idle row stands for one idle period
            for k in range(len(rows) - 1, -1, -1):
                newer = rows[k].action
                if newer == "idle":
                    rows[k] = event
                    return
                if newer == "opened" or newer == "active":
                    break
            rows.append(event)
            return
        row = result.signal
        common: dict[str, Any] = {
            "symbol": row.symbol,
            "signal_id": row.id,
            "position": row.position,
            "note": row.note,
            "current_price": result.current_price,
            "open_price": row.price_open,
            "take_profit": row.price_take_profit,
            "stop_loss": row.price_stop_loss,
        }
        if isinstance(result, OpenedResult):
            rows.append(TickEvent(timestamp=row.pending_at, action="opened", **common))
        elif isinstance(result, ActiveResult):
            event = TickEvent(
                timestamp=_now(),
                action="active",
                percent_tp=result.percent_tp,
                percent_sl=result.percent_sl,
                **common,
            )
            for k in range(len(rows) - 1, -1, -1):
                if rows[k].action == "active" and rows[k].signal_id == row.id:
                    rows[k] = event  # replaced in place: keeps its position
                    return
            rows.append(event)
        else:
            rows.append(
                TickEvent(
                    timestamp=result.close_timestamp,
                    action="closed",
                    pnl=result.pnl.pnl_percentage,
                    close_reason=result.close_reason,
                    duration=minutes_between(row.pending_at, result.close_timestamp),
                    **common,
                )
            )

    def _on_performance(self, sample: PerformanceContract) -> None:
        if not isinstance(sample, PerformanceContract):
            return
        key = (sample.symbol or "global", sample.strategy_name or "global", sample.backtest)
        rows = self.performance.get(key)
        if rows is None:
            rows = self.performance[key] = deque(maxlen=PERFORMANCE_CAP)
        rows.append(sample)

    def performance_sink(self, symbol: str, strategy_name: str, backtest: bool) -> deque[Any]:
        """The deque `record_performance` appends to for this run: a hot loop may append the
        sample fields to it directly."""
        key = (symbol or "global", strategy_name or "global", backtest)
        rows = self.performance.get(key)
        if rows is None:
            rows = self.performance[key] = deque(maxlen=PERFORMANCE_CAP)
        return rows

    def record_performance(self, fields: PerformanceFields) -> None:
        """The engine's shortcut when no user listens to `performance`: the sample's fields,
        made a `PerformanceContract` only if it is still among the newest when read."""
        key = (fields[7] or "global", fields[5] or "global", fields[4])
        rows = self.performance.get(key)
        if rows is None:
            rows = self.performance[key] = deque(maxlen=PERFORMANCE_CAP)
        rows.append(fields)  # type: ignore[arg-type]

    def _on_partial(self, contract: PartialProfitContract | PartialLossContract) -> None:
        # the contract is kept as is (a milestone can fire many times per trade); the
        # 250 rows handed out are converted by `partial_data`
        if not isinstance(contract, PartialProfitContract | PartialLossContract):
            return
        key = (contract.symbol, contract.data.strategy_name, contract.backtest)
        rows = self.partial.get(key)
        if rows is None:
            rows = self.partial[key] = deque(maxlen=ROW_CAP)
        rows.append(contract)

    def _on_risk(self, contract: RiskContract) -> None:
        if not isinstance(contract, RiskContract):
            return
        key = (contract.symbol, contract.strategy_name, contract.backtest)
        rows = self.risk.get(key)
        if rows is None:
            rows = self.risk[key] = deque(maxlen=ROW_CAP)
        rows.append(
            RiskEvent(
                timestamp=contract.timestamp,
                symbol=contract.symbol,
                pending_signal=contract.pending_signal,
                strategy_name=contract.strategy_name,
                exchange_name=contract.exchange_name,
                current_price=contract.current_price,
                active_position_count=contract.active_position_count,
                comment=contract.comment,
                backtest=contract.backtest,
            )
        )

    def _on_walker(self, contract: Any) -> None:
        # duck-typed: the walker's `WalkerContract` (85 §3.7) is defined by the walker engine
        if not hasattr(contract, "walker_name") or not hasattr(contract, "stats"):
            return
        record = self.walker.setdefault((contract.symbol, contract.walker_name), WalkerRecord())
        record.total_strategies = contract.total_strategies
        record.best_metric = contract.best_metric
        record.best_strategy = contract.best_strategy
        if contract.strategy_name == contract.best_strategy:
            record.best_stats = contract.stats
        record.results.append(
            StrategyResult(contract.strategy_name, contract.stats, safe(contract.metric_value))
        )

    # -- statistics ------------------------------------------------------------------------------

    def backtest_data(self, symbol: str, strategy_name: str) -> BacktestStatistics:
        return backtest_statistics(self.backtest.get((symbol, strategy_name, True), TradeLog()))

    def live_data(self, symbol: str, strategy_name: str) -> LiveStatistics:
        return live_statistics(_newest_first(self.live.get((symbol, strategy_name, False))))

    def schedule_data(self, symbol: str, strategy_name: str, backtest: bool) -> ScheduleStatistics:
        rows = self.schedule.get((symbol, strategy_name, backtest))
        return schedule_statistics(_newest_first(rows))

    def performance_data(
        self, symbol: str, strategy_name: str, backtest: bool
    ) -> PerformanceStatistics:
        rows = self.performance.get((symbol, strategy_name, backtest))
        samples = tuple(
            row if isinstance(row, PerformanceContract) else _performance_contract(row)
            for row in _newest_first(rows)
        )
        return performance_statistics(strategy_name, samples)

    def heat_data(self, strategy_name: str, backtest: bool) -> HeatmapStatistics:
        return heatmap_statistics(self.heat.get((strategy_name, backtest), {}))

    def partial_data(self, symbol: str, strategy_name: str, backtest: bool) -> PartialStatistics:
        rows = self.partial.get((symbol, strategy_name, backtest))
        return partial_statistics([_partial_event(c) for c in _newest_first(rows)])

    def risk_data(self, symbol: str, strategy_name: str, backtest: bool) -> RiskStatistics:
        return risk_statistics(_newest_first(self.risk.get((symbol, strategy_name, backtest))))

    def walker_data(
        self, symbol: str, walker_name: str, *, exchange_name: str, frame_name: str, metric: str
    ) -> WalkerStatistics:
        """Raises `BacktestKitError` when no strategy result is recorded (70 §9)."""
        record = self.walker.get((symbol, walker_name))
        if record is None:
            raise BacktestKitError(
                f"No walker data available - no results added yet "
                f"(walker_name={walker_name}, symbol={symbol})"
            )
        return walker_statistics(
            walker_name=walker_name,
            symbol=symbol,
            exchange_name=exchange_name,
            frame_name=frame_name,
            metric=metric,
            total_strategies=record.total_strategies,
            best_strategy=record.best_strategy,
            best_metric=record.best_metric,
            best_stats=record.best_stats,
            results_oldest_first=record.results,
        )


def _partial_event(contract: PartialProfitContract | PartialLossContract) -> PartialEvent:
    row = contract.data
    return PartialEvent(
        timestamp=contract.timestamp,
        action="profit" if isinstance(contract, PartialProfitContract) else "loss",
        symbol=contract.symbol,
        strategy_name=row.strategy_name,
        signal_id=row.id,
        position=row.position,
        current_price=contract.current_price,
        level=contract.level,
        backtest=contract.backtest,
    )


def _scheduled_event(
    result: ScheduledResult | OpenedResult | CancelledResult,
    timestamp: int,
    close_timestamp: int | None,
    duration: int | None,
) -> ScheduledEvent:
    row = result.signal
    return ScheduledEvent(
        timestamp=timestamp,
        action=result.action,
        symbol=row.symbol,
        signal_id=row.id,
        position=row.position,
        note=row.note,
        current_price=result.current_price,
        price_open=row.price_open,
        take_profit=row.price_take_profit,
        stop_loss=row.price_stop_loss,
        close_timestamp=close_timestamp,
        duration=duration,
    )


def _now() -> int:
    """The run's clock: the execution context's instant inside a tick (40 §2.5, §9)."""
    ctx = execution_context.get()
    return ctx.when if ctx is not None else wall_clock_ms()


__all__ = ["ROW_CAP", "ReportHub", "WalkerRecord"]
