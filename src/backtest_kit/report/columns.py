"""Report columns (80 §1.4): the `Column` record, the default column set of every report,
and `set_columns` / `get_columns` / `get_default_columns`.

A column is a key, a label, `format(record, index) -> str` and `is_visible() -> bool` (either
may be `async`). The configured sets live on the runtime (`bk.reset()` restores the defaults)
and are read when a report is rendered. Anywhere a column list is accepted, a string selects
a column of that report by key, so `columns=["signalId", "pnl"]` picks and orders columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ValidationError
from ..model.signal import to_plain
from .markdown import NA, fixed, iso_ms, or_na, price, printf_signed, signed
from .records import HeatmapRow, MetricStats, PartialEvent, SignalData, StrategyResult, TickEvent
from .stats import minutes_between


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Column:
    """One report column::

        bk.Column("pnl", "PnL", lambda r, i: f"{r.pnl.pnl_percentage:.1f}%")

    `format(record, index)` returns the cell text; `is_visible()` hides the column (header
    and cells) when false. Both may be `async def`.
    """

    key: str
    label: str
    format: Callable[[Any, int], str | Awaitable[str]]
    is_visible: Callable[[], bool | Awaitable[bool]] = _always


def _note_visible() -> bool:
    from ..runtime import current

    return current().config.CC_REPORT_SHOW_SIGNAL_NOTE


def _note(note: str | None) -> str:
    return NA if note is None else to_plain(note)


def _note_column(get: Callable[[Any], str | None]) -> Column:
    """The Note column: plain-text note, shown only with `CC_REPORT_SHOW_SIGNAL_NOTE`."""
    return Column("note", "Note", lambda r, i: _note(get(r)), _note_visible)


def _pct(x: float) -> str:
    return signed(x, 2) + "%"


# -- the default sets ---------------------------------------------------------------------------

BACKTEST_COLUMNS: tuple[Column, ...] = (
    Column("signalId", "Signal ID", lambda r, i: r.signal.id),
    Column("symbol", "Symbol", lambda r, i: r.signal.symbol),
    Column("position", "Position", lambda r, i: r.signal.position.upper()),
    _note_column(lambda r: r.signal.note),
    Column("openPrice", "Open Price", lambda r, i: price(r.signal.price_open)),
    Column("closePrice", "Close Price", lambda r, i: price(r.current_price)),
    Column("takeProfit", "Take Profit", lambda r, i: price(r.signal.price_take_profit)),
    Column("stopLoss", "Stop Loss", lambda r, i: price(r.signal.price_stop_loss)),
    Column("pnl", "PNL (net)", lambda r, i: _pct(r.pnl.pnl_percentage)),
    Column("closeReason", "Close Reason", lambda r, i: r.close_reason),
    Column(
        "duration",
        "Duration (min)",
        lambda r, i: str(minutes_between(r.signal.pending_at, r.close_timestamp)),
    ),
    Column("openTimestamp", "Open Time", lambda r, i: iso_ms(r.signal.pending_at)),
    Column("closeTimestamp", "Close Time", lambda r, i: iso_ms(r.close_timestamp)),
)


def _live(get: Callable[[TickEvent], Any], fmt: Callable[[Any], str] = str) -> Any:
    return lambda e, i: or_na(get(e), fmt)


def _pct_plain(x: float) -> str:
    return fixed(x, 2) + "%"


LIVE_COLUMNS: tuple[Column, ...] = (
    Column("timestamp", "Timestamp", lambda e, i: iso_ms(e.timestamp)),
    Column("action", "Action", lambda e, i: e.action.upper()),
    Column("symbol", "Symbol", _live(lambda e: e.symbol)),
    Column("signalId", "Signal ID", _live(lambda e: e.signal_id)),
    Column("position", "Position", _live(lambda e: e.position, str.upper)),
    _note_column(lambda e: e.note),
    Column("currentPrice", "Current Price", lambda e, i: price(e.current_price)),
    Column("openPrice", "Open Price", _live(lambda e: e.open_price, price)),
    Column("takeProfit", "Take Profit", _live(lambda e: e.take_profit, price)),
    Column("stopLoss", "Stop Loss", _live(lambda e: e.stop_loss, price)),
    Column("percentTp", "% to TP", _live(lambda e: e.percent_tp, _pct_plain)),
    Column("percentSl", "% to SL", _live(lambda e: e.percent_sl, _pct_plain)),
    Column("pnl", "PNL (net)", _live(lambda e: e.pnl, _pct)),
    Column("closeReason", "Close Reason", _live(lambda e: e.close_reason)),
    Column("duration", "Duration (min)", _live(lambda e: e.duration)),
)

SCHEDULE_COLUMNS: tuple[Column, ...] = (
    Column("timestamp", "Timestamp", lambda e, i: iso_ms(e.timestamp)),
    Column("action", "Action", lambda e, i: e.action.upper()),
    Column("symbol", "Symbol", lambda e, i: e.symbol),
    Column("signalId", "Signal ID", lambda e, i: e.signal_id),
    Column("position", "Position", lambda e, i: e.position.upper()),
    _note_column(lambda e: e.note),
    Column("currentPrice", "Current Price", lambda e, i: price(e.current_price)),
    Column("priceOpen", "Entry Price", lambda e, i: price(e.price_open)),
    Column("takeProfit", "Take Profit", lambda e, i: price(e.take_profit)),
    Column("stopLoss", "Stop Loss", lambda e, i: price(e.stop_loss)),
    Column("duration", "Wait Time (min)", lambda e, i: or_na(e.duration)),
)


def _ms(get: Callable[[MetricStats], float]) -> Any:
    return lambda m, i: fixed(get(m), 2)


PERFORMANCE_COLUMNS: tuple[Column, ...] = (
    Column("metricType", "Metric Type", lambda m, i: m.metric_type),
    Column("count", "Count", lambda m, i: str(m.count)),
    Column("totalDuration", "Total (ms)", _ms(lambda m: m.total_duration)),
    Column("avgDuration", "Avg (ms)", _ms(lambda m: m.avg_duration)),
    Column("minDuration", "Min (ms)", _ms(lambda m: m.min_duration)),
    Column("maxDuration", "Max (ms)", _ms(lambda m: m.max_duration)),
    Column("stdDev", "Std Dev (ms)", _ms(lambda m: m.std_dev)),
    Column("median", "Median (ms)", _ms(lambda m: m.median)),
    Column("p95", "P95 (ms)", _ms(lambda m: m.p95)),
    Column("p99", "P99 (ms)", _ms(lambda m: m.p99)),
    Column("avgWaitTime", "Avg Wait (ms)", _ms(lambda m: m.avg_wait_time)),
    Column("minWaitTime", "Min Wait (ms)", _ms(lambda m: m.min_wait_time)),
    Column("maxWaitTime", "Max Wait (ms)", _ms(lambda m: m.max_wait_time)),
)


def _heat(get: Callable[[HeatmapRow], Any], fmt: Callable[[Any], str]) -> Any:
    return lambda r, i: or_na(get(r), fmt)


def _heat_pct(x: float) -> str:
    return printf_signed(x, 2) + "%"


def _two(x: float) -> str:
    return fixed(x, 2)


# [deviation] 80 §7: the printf formats are applied (the reference prints them literally)
HEAT_COLUMNS: tuple[Column, ...] = (
    Column("symbol", "Symbol", lambda r, i: r.symbol),
    Column("totalPnl", "Total PNL", _heat(lambda r: r.total_pnl, _heat_pct)),
    Column("sharpeRatio", "Sharpe", _heat(lambda r: r.sharpe_ratio, _two)),
    Column("profitFactor", "PF", _heat(lambda r: r.profit_factor, _two)),
    Column("expectancy", "Expect", _heat(lambda r: r.expectancy, _heat_pct)),
    Column("winRate", "WR", _heat(lambda r: r.win_rate, lambda v: fixed(v, 1) + "%")),
    Column("avgWin", "Avg Win", _heat(lambda r: r.avg_win, _heat_pct)),
    Column("avgLoss", "Avg Loss", _heat(lambda r: r.avg_loss, _heat_pct)),
    Column("maxDrawdown", "Max DD", _heat(lambda r: r.max_drawdown, lambda v: _two(-v) + "%")),
    Column("maxWinStreak", "W Streak", lambda r, i: str(r.max_win_streak)),
    Column("maxLossStreak", "L Streak", lambda r, i: str(r.max_loss_streak)),
    Column("totalTrades", "Trades", lambda r, i: str(r.total_trades)),
)


def _level(e: PartialEvent) -> str:
    return f"{'+' if e.action == 'profit' else '-'}{e.level}%"


PARTIAL_COLUMNS: tuple[Column, ...] = (
    Column("action", "Action", lambda e, i: e.action.upper()),
    Column("symbol", "Symbol", lambda e, i: e.symbol),
    Column("strategyName", "Strategy", lambda e, i: e.strategy_name),
    Column("signalId", "Signal ID", lambda e, i: e.signal_id),
    Column("position", "Position", lambda e, i: e.position.upper()),
    Column("level", "Level %", lambda e, i: _level(e)),
    Column("currentPrice", "Current Price", lambda e, i: price(e.current_price)),
    Column("timestamp", "Timestamp", lambda e, i: iso_ms(e.timestamp)),
    Column("mode", "Mode", lambda e, i: "Backtest" if e.backtest else "Live"),
)


def _pending(name: str, fmt: Callable[[Any], str] = str) -> Any:
    """A cell from a field of the rejected signal, `N/A` when absent."""
    return lambda e, i: or_na(getattr(e.pending_signal, name, None), fmt)


RISK_COLUMNS: tuple[Column, ...] = (
    Column("symbol", "Symbol", lambda e, i: e.symbol),
    Column("strategyName", "Strategy", lambda e, i: e.strategy_name),
    Column("signalId", "Signal ID", _pending("id")),
    Column("position", "Position", _pending("position", lambda v: str(v).upper())),
    _note_column(lambda e: getattr(e.pending_signal, "note", None)),
    Column("exchangeName", "Exchange", lambda e, i: e.exchange_name),
    Column("openPrice", "Open Price", _pending("price_open", price)),
    Column("takeProfit", "Take Profit", _pending("price_take_profit", price)),
    Column("stopLoss", "Stop Loss", _pending("price_stop_loss", price)),
    Column("currentPrice", "Current Price", lambda e, i: price(e.current_price)),
    Column("activePositionCount", "Active Positions", lambda e, i: str(e.active_position_count)),
    Column("comment", "Reason", lambda e, i: e.comment),
    Column("timestamp", "Timestamp", lambda e, i: iso_ms(e.timestamp)),
)


def _three(x: float) -> str:
    return fixed(x, 3)


def _stat(get: Callable[[StrategyResult], float | None], fmt: Callable[[float], str]) -> Any:
    return lambda r, i: or_na(get(r), fmt)


WALKER_STRATEGY_COLUMNS: tuple[Column, ...] = (
    Column("rank", "Rank", lambda r, i: str(i + 1)),
    Column("strategy", "Strategy", lambda r, i: r.strategy_name),
    Column("metric", "Metric", _stat(lambda r: r.metric_value, _two)),
    Column("totalSignals", "Total Signals", lambda r, i: str(r.stats.total_signals)),
    Column("winRate", "Win Rate", _stat(lambda r: r.stats.win_rate, _pct_plain)),
    Column("avgPnl", "Avg PNL", _stat(lambda r: r.stats.avg_pnl, _pct)),
    Column("totalPnl", "Total PNL", _stat(lambda r: r.stats.total_pnl, _pct)),
    Column("sharpeRatio", "Sharpe Ratio", _stat(lambda r: r.stats.sharpe_ratio, _three)),
    Column("stdDev", "Std Dev", _stat(lambda r: r.stats.std_dev, lambda v: _three(v) + "%")),
)


def _signal(get: Callable[[SignalData], str]) -> Any:
    return lambda s, i: get(s)


WALKER_PNL_COLUMNS: tuple[Column, ...] = (
    Column("strategy", "Strategy", _signal(lambda s: s.strategy_name)),
    Column("signalId", "Signal ID", _signal(lambda s: s.signal_id)),
    Column("symbol", "Symbol", _signal(lambda s: s.symbol)),
    Column("position", "Position", _signal(lambda s: s.position.upper())),
    Column("pnl", "PNL (net)", lambda s, i: _pct(s.pnl)),
    Column("closeReason", "Close Reason", _signal(lambda s: s.close_reason)),
    Column("openTime", "Open Time", lambda s, i: iso_ms(s.open_time)),
    Column("closeTime", "Close Time", lambda s, i: iso_ms(s.close_time)),
)


# -- the configuration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnConfig:
    """The column set of every report (80 §1.4); `bk.get_columns()` returns the current one."""

    backtest_columns: tuple[Any, ...] = BACKTEST_COLUMNS
    heat_columns: tuple[Any, ...] = HEAT_COLUMNS
    live_columns: tuple[Any, ...] = LIVE_COLUMNS
    partial_columns: tuple[Any, ...] = PARTIAL_COLUMNS
    performance_columns: tuple[Any, ...] = PERFORMANCE_COLUMNS
    risk_columns: tuple[Any, ...] = RISK_COLUMNS
    schedule_columns: tuple[Any, ...] = SCHEDULE_COLUMNS
    walker_pnl_columns: tuple[Any, ...] = WALKER_PNL_COLUMNS
    walker_strategy_columns: tuple[Any, ...] = WALKER_STRATEGY_COLUMNS

    def to_dict(self) -> dict[str, tuple[Any, ...]]:
        """Set name -> columns (the column objects themselves, not JSON)."""
        return {name: getattr(self, name) for name in COLUMN_SETS}


DEFAULT_COLUMNS = ColumnConfig()
COLUMN_SETS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ColumnConfig))


def _column_problems(where: str, column: Any) -> list[str]:
    """What is wrong with one column object (80 §1.4 rules)."""
    problems = []
    for name in ("key", "label"):
        value = getattr(column, name, None)
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.{name} must be a non-empty string, got {value!r}")
    for name in ("format", "is_visible"):
        value = getattr(column, name, None)
        if not callable(value):
            problems.append(f"{where}.{name} must be callable, got {value!r}")
    return problems


def _as_column(item: Any) -> Any:
    """A mapping with the column fields becomes a `Column` (`is_visible` optional)."""
    if isinstance(item, Mapping):
        return Column(
            key=item.get("key"),  # type: ignore[arg-type]  # checked by _column_problems
            label=item.get("label"),  # type: ignore[arg-type]
            format=item.get("format"),  # type: ignore[arg-type]
            is_visible=item.get("is_visible", _always),
        )
    return item


def _check_set(
    set_name: str, value: Any, lookup: Mapping[str, Any], problems: list[str]
) -> tuple[Any, ...]:
    """Normalise one column list; strings select from `lookup` by key; problems appended."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        problems.append(f"{set_name} must be a list of columns, got {type(value).__name__}")
        return ()
    out: list[Any] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        where = f"{set_name}[{i}]"
        if isinstance(item, str):
            column = lookup.get(item)
            if column is None:
                valid = ", ".join(lookup) or "none"
                problems.append(f"{where}: unknown column {item!r}; valid keys: {valid}")
                continue
        else:
            column = _as_column(item)
            found = _column_problems(where, column)
            if found:
                problems.extend(found)
                continue
        if column.key in seen:
            problems.append(
                f"{where}: duplicate key {column.key!r} (also {set_name}[{seen[column.key]}])"
            )
            continue
        seen[column.key] = i
        out.append(column)
    return tuple(out)


def _numbered(head: str, problems: list[str]) -> str:
    return head + "\n" + "\n".join(f"{n}. {p}" for n, p in enumerate(problems, 1))


def _by_key(*sets: Iterable[Any]) -> dict[str, Any]:
    """Key -> column over the given sets; the first set wins on a shared key."""
    out: dict[str, Any] = {}
    for columns in sets:
        for column in columns:
            key = getattr(column, "key", None)
            if isinstance(key, str):
                out.setdefault(key, column)
    return out


def set_columns(
    config: ColumnConfig | Mapping[str, Any] | None = None,
    /,
    *,
    _unsafe: bool = False,
    **sets: Any,
) -> None:
    """Replace report column sets (80 §1.4); sets not named keep their columns::

        bk.set_columns(backtest_columns=["signalId", "pnl", "closeReason"])
        bk.set_columns(backtest_columns=[*bk.get_default_columns().backtest_columns, my_col])

    Names: `backtest_columns`, `heat_columns`, `live_columns`, `partial_columns`,
    `performance_columns`, `risk_columns`, `schedule_columns`, `walker_pnl_columns`,
    `walker_strategy_columns`. A column is a `bk.Column`, a mapping with its fields, or the
    key of a default column of that set. Every set is validated; on any problem nothing
    changes and one `ConfigError` lists them all, numbered. `_unsafe=True` skips validation.
    A `ColumnConfig` (from `get_columns`) may be passed positionally to restore it.
    """
    from ..runtime import current

    hub = current().reports
    updates: dict[str, Any] = {}
    if isinstance(config, ColumnConfig):
        updates.update(config.to_dict())
    elif config is not None:
        updates.update(config)
    updates.update(sets)
    if _unsafe:
        known = {k: tuple(v) for k, v in updates.items() if k in COLUMN_SETS}
        hub.columns = dataclasses.replace(hub.columns, **known)
        return
    problems = [
        f"unknown column set {name!r}; valid sets: {', '.join(COLUMN_SETS)}"
        for name in updates
        if name not in COLUMN_SETS
    ]
    values = {}
    for name in COLUMN_SETS:
        value = updates.get(name, getattr(hub.columns, name))
        values[name] = _check_set(name, value, _by_key(getattr(DEFAULT_COLUMNS, name)), problems)
    if problems:
        raise ConfigError(_numbered("set_columns: invalid column configuration:", problems))
    hub.columns = ColumnConfig(**values)


def get_columns() -> ColumnConfig:
    """The current column sets (an immutable snapshot)."""
    from ..runtime import current

    return current().reports.columns


def get_default_columns() -> ColumnConfig:
    """The default column sets of 80 (frozen)."""
    return DEFAULT_COLUMNS


def resolve_columns(set_name: str, columns: Iterable[Any] | None, method: str) -> tuple[Any, ...]:
    """The columns of one report call: the configured set (read now) when `columns` is
    `None`, else `columns` validated, strings selecting configured or default columns by key.
    Raises `ValidationError` naming every problem and the valid keys."""
    from ..runtime import current

    configured: tuple[Any, ...] = getattr(current().reports.columns, set_name)
    if columns is None:
        return configured
    problems: list[str] = []
    lookup = _by_key(configured, getattr(DEFAULT_COLUMNS, set_name))
    out = _check_set("columns", columns, lookup, problems)
    if problems:
        raise ValidationError(_numbered(f"{method}: invalid columns:", problems))
    return out


__all__ = [
    "BACKTEST_COLUMNS",
    "COLUMN_SETS",
    "DEFAULT_COLUMNS",
    "HEAT_COLUMNS",
    "LIVE_COLUMNS",
    "PARTIAL_COLUMNS",
    "PERFORMANCE_COLUMNS",
    "RISK_COLUMNS",
    "SCHEDULE_COLUMNS",
    "WALKER_PNL_COLUMNS",
    "WALKER_STRATEGY_COLUMNS",
    "Column",
    "ColumnConfig",
    "get_columns",
    "get_default_columns",
    "resolve_columns",
    "set_columns",
]
