"""Markdown text of the reports (80 §1.3–§1.4, §3–§9; 70 §10): number and time formats,
tables, escaping, and one builder per report.

Builders take a statistics record and the resolved columns and return the report text:
lines joined with ``"\\n"``, no trailing newline. No collecting, no statistics, no file
I/O; the column sets themselves live in `columns.py`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..intervals import ms_to_datetime
from ..jsnum import to_fixed
from .records import (
    BacktestStatistics,
    HeatmapStatistics,
    LiveStatistics,
    PartialStatistics,
    PerformanceStatistics,
    RiskStatistics,
    ScheduleStatistics,
    SignalData,
    WalkerStatistics,
)

NA = "N/A"

# -- number and time formats (80 §1.3) ----------------------------------------------------------


def fixed(x: float, digits: int) -> str:
    """JavaScript `toFixed`: `fixed(0.125, 2) == "0.13"`, `fixed(-0.0, 2) == "0.00"`."""
    return to_fixed(float(x), digits)


def signed(x: float, digits: int) -> str:
    """`+` only when `x > 0`: `signed(1.5, 2) == "+1.50"`, `signed(0, 2) == "0.00"`."""
    return ("+" if x > 0 else "") + fixed(x, digits)


def printf_signed(x: float, digits: int) -> str:
    """printf `%+.{digits}f`: a sign always, `+0.00` for zero."""
    text = fixed(x, digits)
    return text if text.startswith("-") else "+" + text


def price(x: float) -> str:
    """A price: 8 decimals and the reference's hard-coded currency, `"100.00000000 USD"`."""
    return fixed(x, 8) + " USD"


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds: `"2024-01-15T10:30:00.000Z"`."""
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def or_na(value: Any, fmt: Callable[[Any], str] = str) -> str:
    """`fmt(value)`, or `N/A` when `value` is `None`."""
    return NA if value is None else fmt(value)


def escape_cell(text: str) -> str:
    """**[deviation]** 80 §1.4: `|` becomes `\\|` and line breaks become spaces, so a cell
    can never break the table (the reference does not escape)."""
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


# -- tables (80 §1.4) ---------------------------------------------------------------------------


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True, slots=True)
class TableCells:
    """The visible labels and the cell texts (unescaped) of a table, row by row."""

    labels: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


async def table_cells(columns: Sequence[Any], rows: Sequence[Any]) -> TableCells:
    """Evaluate visibility once per column and each visible column's `format(row, index)`
    (sync or async) for every row; shared by the Markdown and HTML renderers."""
    visible = [c for c in columns if await _maybe_await(c.is_visible())]
    formats = [c.format for c in visible]
    out: list[tuple[str, ...]] = []
    for i, row in enumerate(rows):
        cells = []
        for fmt in formats:
            value = fmt(row, i)
            if inspect.isawaitable(value):
                value = await value
            cells.append(str(value))
        out.append(tuple(cells))
    return TableCells(tuple(c.label for c in visible), tuple(out))


async def render_table(columns: Sequence[Any], rows: Sequence[Any]) -> str:
    """A Markdown table: header, `---` separators, one line per row, cells escaped."""
    cells = await table_cells(columns, rows)
    lines = [
        "| " + " | ".join(escape_cell(label) for label in cells.labels) + " |",
        "| " + " | ".join("---" for _ in cells.labels) + " |",
    ]
    lines.extend("| " + " | ".join(escape_cell(c) for c in row) + " |" for row in cells.rows)
    return "\n".join(lines)


# -- the reports --------------------------------------------------------------------------------


def _metric_lines(s: BacktestStatistics | LiveStatistics) -> list[str]:
    """The eight metric lines shared by the backtest and live reports (80 §3, §4.3)."""
    win_rate = (
        NA
        if s.win_rate is None
        else f"{fixed(s.win_rate, 2)}% ({s.win_count}W / {s.loss_count}L) (higher is better)"
    )
    return [
        f"**Win rate:** {win_rate}",
        f"**Average PNL:** {or_na(s.avg_pnl, lambda v: f'{signed(v, 2)}% (higher is better)')}",
        f"**Total PNL:** {or_na(s.total_pnl, lambda v: f'{signed(v, 2)}% (higher is better)')}",
        "**Standard Deviation:** "
        + or_na(s.std_dev, lambda v: f"{fixed(v, 3)}% (lower is better)"),
        f"**Sharpe Ratio:** {or_na(s.sharpe_ratio, lambda v: f'{fixed(v, 3)} (higher is better)')}",
        "**Annualized Sharpe Ratio:** "
        + or_na(s.annualized_sharpe_ratio, lambda v: f"{fixed(v, 3)} (higher is better)"),
        "**Certainty Ratio:** "
        + or_na(s.certainty_ratio, lambda v: f"{fixed(v, 3)} (higher is better)"),
        "**Expected Yearly Returns:** "
        + or_na(s.expected_yearly_returns, lambda v: f"{signed(v, 2)}% (higher is better)"),
    ]


async def backtest_report(
    strategy_name: str, stats: BacktestStatistics, columns: Sequence[Any]
) -> str:
    """80 §3."""
    title = f"# Backtest Report: {strategy_name}"
    if stats.total_signals == 0:
        return "\n".join([title, "", "No signals closed yet."])
    table = await render_table(columns, stats.signal_list)
    return "\n".join(
        [
            title,
            "",
            table,
            "",
            f"**Total signals:** {stats.total_signals}",
            f"**Closed signals:** {stats.total_signals}",
            *_metric_lines(stats),
        ]
    )


async def live_report(strategy_name: str, stats: LiveStatistics, columns: Sequence[Any]) -> str:
    """80 §4.3."""
    title = f"# Live Trading Report: {strategy_name}"
    if stats.total_events == 0:
        return "\n".join([title, "", "No events recorded yet."])
    table = await render_table(columns, stats.event_list)
    return "\n".join(
        [
            title,
            "",
            table,
            "",
            f"**Total events:** {stats.total_events}",
            f"**Closed signals:** {stats.total_closed}",
            *_metric_lines(stats),
        ]
    )


async def schedule_report(
    strategy_name: str, stats: ScheduleStatistics, columns: Sequence[Any]
) -> str:
    """80 §5.3."""
    title = f"# Scheduled Signals Report: {strategy_name}"
    if stats.total_events == 0:
        return "\n".join([title, "", "No scheduled signals recorded yet."])
    table = await render_table(columns, stats.event_list)
    return "\n".join(
        [
            title,
            "",
            table,
            "",
            f"**Total events:** {stats.total_events}",
            f"**Scheduled signals:** {stats.total_scheduled}",
            f"**Opened signals:** {stats.total_opened}",
            f"**Cancelled signals:** {stats.total_cancelled}",
            "**Activation rate:** "
            + or_na(stats.activation_rate, lambda v: f"{fixed(v, 2)}% (higher is better)"),
            "**Cancellation rate:** "
            + or_na(stats.cancellation_rate, lambda v: f"{fixed(v, 2)}% (lower is better)"),
            "**Average activation time:** "
            + or_na(stats.avg_activation_time, lambda v: f"{fixed(v, 2)} minutes"),
            "**Average wait time (cancelled):** "
            + or_na(stats.avg_wait_time, lambda v: f"{fixed(v, 2)} minutes"),
        ]
    )


PERFORMANCE_NOTE = (
    "**Note:** All durations are in milliseconds. P95/P99 are the 95th/99th percentiles. "
    "Wait times are the gaps between a sample and the previous performance sample of the "
    "same run."
)


async def performance_report(
    strategy_name: str, stats: PerformanceStatistics, columns: Sequence[Any]
) -> str:
    """80 §6: metric types by total duration, largest first."""
    title = f"# Performance Report: {strategy_name}"
    if stats.total_events == 0:
        return "\n".join([title, "", "No performance metrics recorded yet."])
    metrics = list(stats.metric_stats.values())
    total = stats.total_duration
    lines = [
        title,
        "",
        f"**Total events:** {stats.total_events}",
        f"**Total execution time:** {fixed(total, 2)}ms",
        f"**Number of metric types:** {len(metrics)}",
        "",
        "## Time Distribution",
        "",
    ]
    for m in metrics:
        # [deviation] 80 §6: 0.0 when the overall total is 0 (the reference prints NaN%)
        share = m.total_duration / total * 100 if total else 0.0
        lines.append(
            f"- **{m.metric_type}**: {fixed(share, 1)}% ({fixed(m.total_duration, 2)}ms total)"
        )
    lines += ["", "## Detailed Metrics", "", await render_table(columns, metrics), ""]
    lines.append(PERFORMANCE_NOTE)
    return "\n".join(lines)


async def heat_report(strategy_name: str, stats: HeatmapStatistics, columns: Sequence[Any]) -> str:
    """80 §7."""
    title = f"# Portfolio Heatmap: {strategy_name}"
    if stats.total_symbols == 0:
        return "\n".join([title, "", "*No data available*"])
    pnl = or_na(stats.portfolio_total_pnl, lambda v: printf_signed(v, 2) + "%")
    sharpe = or_na(stats.portfolio_sharpe_ratio, lambda v: fixed(v, 2))
    summary = (
        f"**Total Symbols:** {stats.total_symbols} | **Portfolio PNL:** {pnl} | "
        f"**Portfolio Sharpe:** {sharpe} | **Total Trades:** {stats.portfolio_total_trades}"
    )
    return "\n".join([title, "", summary, "", await render_table(columns, stats.symbols)])


async def partial_report(
    symbol: str, strategy_name: str, stats: PartialStatistics, columns: Sequence[Any]
) -> str:
    """80 §8."""
    title = f"# Partial Profit/Loss Report: {symbol}:{strategy_name}"
    if stats.total_events == 0:
        return "\n".join([title, "", "No partial profit/loss events recorded yet."])
    return "\n".join(
        [
            title,
            "",
            await render_table(columns, stats.event_list),
            "",
            f"**Total events:** {stats.total_events}",
            f"**Profit events:** {stats.total_profit}",
            f"**Loss events:** {stats.total_loss}",
        ]
    )


async def risk_report(
    symbol: str, strategy_name: str, stats: RiskStatistics, columns: Sequence[Any]
) -> str:
    """80 §9."""
    title = f"# Risk Rejection Report: {symbol}:{strategy_name}"
    if stats.total_rejections == 0:
        return "\n".join([title, "", "No risk rejections recorded yet."])
    return "\n".join(
        [
            title,
            "",
            await render_table(columns, stats.event_list),
            "",
            f"**Total rejections:** {stats.total_rejections}",
            "",
            "## Rejections by Symbol",
            *(f"- {name}: {count}" for name, count in stats.by_symbol.items()),
            "",
            "## Rejections by Strategy",
            *(f"- {name}: {count}" for name, count in stats.by_strategy.items()),
        ]
    )


WALKER_NOTE = (
    "**Note:** Higher values are better for all metrics except Standard Deviation "
    "(lower is better)."
)


def walker_signal_rows(stats: WalkerStatistics) -> list[SignalData]:
    """Every closed signal of every tested strategy: strategies newest first, each
    strategy's signals newest first (70 §10)."""
    return [
        SignalData(
            strategy_name=result.strategy_name,
            signal_id=r.signal.id,
            symbol=r.symbol,
            position=r.signal.position,
            pnl=r.pnl.pnl_percentage,
            close_reason=r.close_reason,
            open_time=r.signal.pending_at,
            close_time=r.close_timestamp,
        )
        for result in stats.strategy_results
        for r in result.stats.signal_list
    ]


async def walker_report(
    stats: WalkerStatistics, strategy_columns: Sequence[Any], pnl_columns: Sequence[Any]
) -> str:
    """70 §10: header, best strategy, top-10 comparison, every closed signal."""
    best_metric = or_na(stats.best_metric, lambda v: fixed(v, 2))
    best_signals = stats.best_stats.total_signals if stats.best_stats is not None else 0
    lines = [
        f"# Walker Comparison Report: {stats.walker_name}",
        "",
        f"**Symbol:** {stats.symbol}",
        f"**Exchange:** {stats.exchange_name}",
        f"**Frame:** {stats.frame_name}",
        f"**Optimization Metric:** {stats.metric}",
        f"**Strategies Tested:** {stats.total_strategies}",
        "",
        f"## Best Strategy: {or_na(stats.best_strategy)}",  # [deviation] 70 §10: not "null"
        "",
        f"**Best {stats.metric}:** {best_metric}",
        f"**Total Signals:** {best_signals}",
        "",
        "## Top Strategies Comparison",
        "",
    ]
    if not stats.strategy_results:
        lines.append("No strategy results available.")
    else:
        # metric descending, None as -inf; sorted() is stable
        ranked = sorted(
            stats.strategy_results,
            key=lambda r: -r.metric_value if r.metric_value is not None else float("inf"),
        )[:10]
        lines.append(await render_table(strategy_columns, ranked))
    lines += ["", "## All Signals (PNL Table)", ""]
    signals = walker_signal_rows(stats)
    if not stats.strategy_results:
        lines.append("No strategy results available.")
    elif not signals:
        lines.append("No closed signals available.")
    else:
        lines.append(await render_table(pnl_columns, signals))
    lines += ["", WALKER_NOTE]
    return "\n".join(lines)


__all__ = [
    "NA",
    "TableCells",
    "backtest_report",
    "escape_cell",
    "fixed",
    "heat_report",
    "iso_ms",
    "live_report",
    "or_na",
    "partial_report",
    "performance_report",
    "price",
    "printf_signed",
    "render_table",
    "risk_report",
    "schedule_report",
    "signed",
    "table_cells",
    "walker_report",
    "walker_signal_rows",
]
