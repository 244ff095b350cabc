"""The report accessors (80 §1.7): `get_data` / `get_report` / `dump` of every report, as
`bk.Schedule`, `bk.Performance`, `bk.Heat`, `bk.Partial`, `bk.Risk`, the functions behind
`bk.Backtest.get_data/get_report/dump`, and `LiveReports`, the trio that `bk.Live` gets by
inheriting it.

Each call validates its arguments (the strategy and its risk profiles must be registered),
reads the runtime's collectors and column configuration at call time, and renders with
`markdown.py`. `dump` writes `path/<file name>` (directories created, UTF-8, overwritten);
write failures are logged and swallowed (80 §1.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Final, Generic, TypeVar

from ..errors import ValidationError
from ..runtime import Runtime, current
from ..schema import StrategySchema, require
from . import markdown
from .columns import resolve_columns
from .records import (
    BacktestStatistics,
    HeatmapStatistics,
    LiveStatistics,
    PartialStatistics,
    PerformanceStatistics,
    RiskStatistics,
    ScheduleStatistics,
)

Columns = Iterable[Any] | None
S = TypeVar("S")

DUMP_FORMATS: Final = ("md",)
HTML_FORMATS: Final = ("md", "html")  # reports with an HTML page (97 §5, html.py)


def validate_call(method: str, strategy_name: str, symbol: str | None = None) -> Runtime:
    """Check a report call's arguments; returns the runtime. The strategy and each of its
    risk profiles must be registered (80 §1.7); an unknown symbol just has no data."""
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise ValidationError(f"{method}: symbol must be a non-empty string, got {symbol!r}")
    schema: StrategySchema = require("strategy", strategy_name, method)
    for risk in schema.risk_names():
        require("risk", risk, method)
    return current()


def check_format(method: str, format: str, allowed: tuple[str, ...] = DUMP_FORMATS) -> None:
    """`format` must be one of `allowed` (Markdown everywhere; HTML where 97 §5 has a page)."""
    if format not in allowed:
        raise ValidationError(
            f"{method}: format must be one of {', '.join(map(repr, allowed))}, got {format!r}"
        )


def file_part(text: str) -> str:
    """A symbol or name usable inside one file name: path separators are percent-escaped
    (`BTC/USDT` -> `BTC%2FUSDT`), so a dump never lands in another directory."""
    return text.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")


def report_file(path: str | Path, *names: str, suffix: str = ".md") -> Path:
    """`path/<names joined by _><suffix>`; a relative `path` is taken from the working
    directory, an absolute one as given (**[deviation]** 80 §1.5)."""
    base = Path(path)
    if not base.is_absolute():
        base = Path.cwd() / base
    return base / ("_".join(file_part(n) for n in names) + suffix)


def write_report(kind: str, method: str, file: Path, text: str) -> Path | None:
    """Write `text` to `file` (directories created, UTF-8, overwritten) and log
    `"<Kind> report saved: <path>"`; an OS error is logged and swallowed (`None`)."""
    runtime = current()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        runtime.logger.alert(
            f"{method} failed to write the report",
            {"path": str(file), "error": f"{type(exc).__name__}: {exc}"},
        )
        return None
    runtime.logger.saved(kind, str(file))
    return file


# -- Backtest (used by BacktestUtils in engine/backtest.py) -------------------------------------


async def backtest_get_data(symbol: str, strategy_name: str) -> BacktestStatistics:
    runtime = validate_call("Backtest.get_data", strategy_name, symbol)
    return runtime.reports.backtest_data(symbol, strategy_name)


async def backtest_get_report(symbol: str, strategy_name: str, columns: Columns = None) -> str:
    method = "Backtest.get_report"
    runtime = validate_call(method, strategy_name, symbol)
    cols = resolve_columns("backtest_columns", columns, method)
    stats = runtime.reports.backtest_data(symbol, strategy_name)
    return await markdown.backtest_report(strategy_name, stats, cols)


async def backtest_dump(
    symbol: str,
    strategy_name: str,
    path: str | Path = "./dump/backtest",
    columns: Columns = None,
    format: str = "md",
) -> Path | None:
    check_format("Backtest.dump", format, HTML_FORMATS)
    if format == "html":
        from .html import backtest_html

        page = await backtest_html(symbol, strategy_name, columns)
        file = report_file(path, symbol, strategy_name, suffix=".html")
        return write_report("Backtest", "Backtest.dump", file, page)
    text = await backtest_get_report(symbol, strategy_name, columns)
    return write_report("Backtest", "Backtest.dump", report_file(path, symbol, strategy_name), text)


# -- Live ---------------------------------------------------------------------------------------


class LiveReports:
    """The live reports (80 §4): rows of live tick results per `(symbol, strategy)`.
    The live facade inherits these three methods (`class LiveUtils(LiveReports)`)."""

    async def get_data(self, symbol: str, strategy_name: str) -> LiveStatistics:
        """`LiveStatistics` of the 250 newest rows (idle/opened/active/closed)."""
        runtime = validate_call("Live.get_data", strategy_name, symbol)
        return runtime.reports.live_data(symbol, strategy_name)

    async def get_report(self, symbol: str, strategy_name: str, columns: Columns = None) -> str:
        """The live report as Markdown (80 §4.3)."""
        method = "Live.get_report"
        runtime = validate_call(method, strategy_name, symbol)
        cols = resolve_columns("live_columns", columns, method)
        stats = runtime.reports.live_data(symbol, strategy_name)
        return await markdown.live_report(strategy_name, stats, cols)

    async def dump(
        self,
        symbol: str,
        strategy_name: str,
        path: str | Path = "./dump/live",
        columns: Columns = None,
        format: str = "md",
    ) -> Path | None:
        """Write the report to `path/{symbol}_{strategy_name}.md` (or `.html` with
        `format="html"`, 97 §5); returns the file."""
        check_format("Live.dump", format, HTML_FORMATS)
        if format == "html":
            from .html import live_html

            page = await live_html(symbol, strategy_name, columns)
            file = report_file(path, symbol, strategy_name, suffix=".html")
            return write_report("Live", "Live.dump", file, page)
        text = await self.get_report(symbol, strategy_name, columns)
        return write_report("Live", "Live.dump", report_file(path, symbol, strategy_name), text)


# -- Schedule, Performance, Partial, Risk ------------------------------------------------------


class _ModeReports(Generic[S]):
    """The `get_data` / `get_report` / `dump` trio of a report kept per
    `(symbol, strategy, mode)`; `backtest` defaults to `False` (live), as in the reference.
    A subclass names its report and says where its data and its Markdown come from."""

    _kind: ClassVar[str]  # "Schedule": the facade's name in messages and file logs
    _columns: ClassVar[str]  # its column set (80 §1.4)
    _path: ClassVar[str]  # the default dump folder

    def _data(self, runtime: Runtime, symbol: str, strategy_name: str, backtest: bool) -> S:
        raise NotImplementedError

    async def _render(self, symbol: str, strategy_name: str, stats: S, cols: Any) -> str:
        raise NotImplementedError

    async def get_data(self, symbol: str, strategy_name: str, backtest: bool = False) -> S:
        """The statistics of `(symbol, strategy_name)` in one mode."""
        runtime = validate_call(f"{self._kind}.get_data", strategy_name, symbol)
        return self._data(runtime, symbol, strategy_name, backtest)

    async def get_report(
        self, symbol: str, strategy_name: str, backtest: bool = False, columns: Columns = None
    ) -> str:
        """The report as Markdown; `columns` selects and orders the table's columns."""
        method = f"{self._kind}.get_report"
        runtime = validate_call(method, strategy_name, symbol)
        cols = resolve_columns(self._columns, columns, method)
        stats = self._data(runtime, symbol, strategy_name, backtest)
        return await self._render(symbol, strategy_name, stats, cols)

    async def dump(
        self,
        symbol: str,
        strategy_name: str,
        backtest: bool = False,
        path: str | Path | None = None,
        columns: Columns = None,
        format: str = "md",
    ) -> Path | None:
        """Write the report to `path/{symbol}_{strategy_name}.md` (default folder per report);
        returns the file, or None when writing failed (logged)."""
        method = f"{self._kind}.dump"
        check_format(method, format)
        text = await self.get_report(symbol, strategy_name, backtest, columns)
        file = report_file(self._path if path is None else path, symbol, strategy_name)
        return write_report(self._kind, method, file, text)


class ScheduleReports(_ModeReports[ScheduleStatistics]):
    """`bk.Schedule`: scheduled (limit) signals, their activations and cancellations (80 §5).

    `backtest` defaults to `False` (live), as in the reference: after a backtest pass
    `backtest=True`::

        stats = await bk.Schedule.get_data("BTCUSDT", "sma", backtest=True)
    """

    _kind, _columns, _path = "Schedule", "schedule_columns", "./dump/schedule"

    def _data(
        self, runtime: Runtime, symbol: str, strategy_name: str, backtest: bool
    ) -> ScheduleStatistics:
        return runtime.reports.schedule_data(symbol, strategy_name, backtest)

    async def _render(
        self, symbol: str, strategy_name: str, stats: ScheduleStatistics, cols: Any
    ) -> str:
        return await markdown.schedule_report(strategy_name, stats, cols)


class PerformanceReports(_ModeReports[PerformanceStatistics]):
    """`bk.Performance`: timing samples of the engines per metric type (80 §6).

    `backtest` defaults to `False` (live): after a backtest pass `backtest=True`.
    """

    _kind, _columns, _path = "Performance", "performance_columns", "./dump/performance"

    def _data(
        self, runtime: Runtime, symbol: str, strategy_name: str, backtest: bool
    ) -> PerformanceStatistics:
        return runtime.reports.performance_data(symbol, strategy_name, backtest)

    async def _render(
        self, symbol: str, strategy_name: str, stats: PerformanceStatistics, cols: Any
    ) -> str:
        return await markdown.performance_report(strategy_name, stats, cols)


class PartialReports(_ModeReports[PartialStatistics]):
    """`bk.Partial`: partial profit/loss milestones of open positions (80 §8).

    `backtest` defaults to `False` (live): after a backtest pass `backtest=True`.
    """

    _kind, _columns, _path = "Partial", "partial_columns", "./dump/partial"

    def _data(
        self, runtime: Runtime, symbol: str, strategy_name: str, backtest: bool
    ) -> PartialStatistics:
        return runtime.reports.partial_data(symbol, strategy_name, backtest)

    async def _render(
        self, symbol: str, strategy_name: str, stats: PartialStatistics, cols: Any
    ) -> str:
        return await markdown.partial_report(symbol, strategy_name, stats, cols)


class RiskReports(_ModeReports[RiskStatistics]):
    """`bk.Risk`: signals rejected by risk profiles (80 §9).

    `backtest` defaults to `False` (live): after a backtest pass `backtest=True`.
    """

    _kind, _columns, _path = "Risk", "risk_columns", "./dump/risk"

    def _data(
        self, runtime: Runtime, symbol: str, strategy_name: str, backtest: bool
    ) -> RiskStatistics:
        return runtime.reports.risk_data(symbol, strategy_name, backtest)

    async def _render(
        self, symbol: str, strategy_name: str, stats: RiskStatistics, cols: Any
    ) -> str:
        return await markdown.risk_report(symbol, strategy_name, stats, cols)


# -- Heat ---------------------------------------------------------------------------------------


class HeatReports:
    """`bk.Heat`: one row per symbol of a strategy's closed trades, and portfolio figures
    (80 §7). `backtest` defaults to `False` (live): after backtests pass `backtest=True`::

        print(await bk.Heat.get_report("sma", backtest=True))
    """

    async def get_data(self, strategy_name: str, backtest: bool = False) -> HeatmapStatistics:
        runtime = validate_call("Heat.get_data", strategy_name)
        return runtime.reports.heat_data(strategy_name, backtest)

    async def get_report(
        self, strategy_name: str, backtest: bool = False, columns: Columns = None
    ) -> str:
        method = "Heat.get_report"
        runtime = validate_call(method, strategy_name)
        cols = resolve_columns("heat_columns", columns, method)
        stats = runtime.reports.heat_data(strategy_name, backtest)
        return await markdown.heat_report(strategy_name, stats, cols)

    async def dump(
        self,
        strategy_name: str,
        backtest: bool = False,
        path: str | Path = "./dump/heatmap",
        columns: Columns = None,
        format: str = "md",
        metric: str = "sharpe_ratio",
    ) -> Path | None:
        """Write `path/{strategy_name}.md` (every symbol of the strategy in one file); with
        `format="html"`, `{strategy_name}.html` whose tiles are coloured by `metric` (a
        numeric `HeatmapRow` field, e.g. `"total_pnl"`)."""
        check_format("Heat.dump", format, HTML_FORMATS)
        if format == "html":
            from .html import heat_html

            page = await heat_html(strategy_name, backtest, columns, metric)
            file = report_file(path, strategy_name, suffix=".html")
            return write_report("Heatmap", "Heat.dump", file, page)
        text = await self.get_report(strategy_name, backtest, columns)
        return write_report("Heatmap", "Heat.dump", report_file(path, strategy_name), text)


Schedule = ScheduleReports()
Performance = PerformanceReports()
Partial = PartialReports()
Risk = RiskReports()
Heat = HeatReports()

__all__ = [
    "HeatReports",
    "LiveReports",
    "PartialReports",
    "PerformanceReports",
    "RiskReports",
    "ScheduleReports",
    "backtest_dump",
    "backtest_get_data",
    "backtest_get_report",
    "check_format",
    "report_file",
    "validate_call",
    "write_report",
]
