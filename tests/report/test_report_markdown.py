"""Markdown text of the reports (80 §1.3, §1.4, §6): number and time formats, escaping, the
table syntax, and the performance report's exact layout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit import events
from backtest_kit.report.markdown import (
    escape_cell,
    fixed,
    iso_ms,
    or_na,
    price,
    printf_signed,
    render_table,
    signed,
    table_cells,
)
from backtest_kit.runtime import current


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def test_fixed_rounds_half_away_from_zero_on_the_binary_value() -> None:
    assert fixed(0.125, 2) == "0.13"  # an exact binary tie: Python's format gives 0.12
    assert format(0.125, ".2f") == "0.12"
    assert fixed(1.005, 2) == "1.00"  # 1.005 is just below the tie in binary
    assert fixed(-0.0, 2) == "0.00"
    assert fixed(-0.001, 2) == "-0.00"
    assert fixed(2.5, 0) == "3"
    assert fixed(1234.56789, 3) == "1234.568"


def test_signed_adds_plus_only_above_zero() -> None:
    assert [signed(x, 2) for x in (1.5, 0.0, -0.0, -0.001, -2.0)] == [
        "+1.50",
        "0.00",
        "0.00",
        "-0.00",
        "-2.00",
    ]


def test_printf_signed_always_has_a_sign() -> None:
    assert [printf_signed(x, 2) for x in (12.345, 0.0, -0.0, -3.1)] == [
        "+12.35",  # 12.345 is just above the tie in binary
        "+0.00",
        "+0.00",
        "-3.10",
    ]


def test_price_and_time_formats() -> None:
    assert price(100) == "100.00000000 USD"
    assert price(1234.5) == "1234.50000000 USD"
    assert iso_ms(1_705_314_600_000) == "2024-01-15T10:30:00.000Z"
    assert iso_ms(1_705_314_600_123) == "2024-01-15T10:30:00.123Z"
    assert or_na(None) == "N/A" and or_na(3) == "3" and or_na(0.5, lambda v: fixed(v, 1)) == "0.5"


def test_cells_escape_pipes_and_line_breaks() -> None:
    # [deviation] 80 §1.4: the reference writes cells verbatim and breaks the table
    assert escape_cell("a|b\nc\r\nd\re") == "a\\|b c d e"


def col(key: str, label: str, fmt: Any, visible: Any = None) -> bk.Column:
    if visible is None:
        return bk.Column(key, label, fmt)
    return bk.Column(key, label, fmt, visible)


def test_table_layout_escaping_and_async_columns() -> None:
    async def upper(r: str, i: int) -> str:
        await asyncio.sleep(0)
        return r.upper()

    async def hidden() -> bool:
        return False

    columns = [
        col("i", "#", lambda r, i: str(i + 1)),
        col("v", "Value | raw", lambda r, i: r),
        col("u", "Upper", upper),
        col("h", "Hidden", lambda r, i: "never", hidden),
    ]
    text = asyncio.run(render_table(columns, ["a|b", "line\nbreak"]))
    assert text == "\n".join(
        [
            "| # | Value \\| raw | Upper |",
            "| --- | --- | --- |",
            "| 1 | a\\|b | A\\|B |",
            "| 2 | line break | LINE BREAK |",
        ]
    )
    cells = asyncio.run(table_cells(columns, ["x"]))
    assert (cells.labels, cells.rows) == (("#", "Value | raw", "Upper"), (("1", "x", "X"),))


def test_a_table_without_rows_is_its_header() -> None:
    assert asyncio.run(render_table([col("a", "A", str)], [])) == "| A |\n| --- |"


def perf(kind: str, duration: float, at: int, previous: int | None) -> bk.PerformanceContract:
    return bk.PerformanceContract(
        timestamp=at,
        previous_timestamp=previous,
        metric_type=kind,
        duration=duration,
        strategy_name="s1",
        exchange_name="ex",
        symbol="BTCUSDT",
        backtest=False,
    )


def test_performance_report_layout() -> None:
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=lambda s, w: None)
    samples = [
        perf("live_tick", 10.0, 1_000, None),
        perf("live_tick", 30.0, 61_000, 1_000),
        perf("live_tick", 20.0, 121_000, 61_000),
        perf("backtest_total", 60.0, 122_000, 121_000),
    ]

    async def main() -> str:
        for s in samples:
            await current().bus.emit(events.PERFORMANCE, s)
        return await bk.Performance.get_report("BTCUSDT", "s1")

    assert asyncio.run(main()) == "\n".join(
        [
            "# Performance Report: s1",
            "",
            "**Total events:** 4",
            "**Total execution time:** 120.00ms",
            "**Number of metric types:** 2",
            "",
            "## Time Distribution",
            "",
            "- **backtest_total**: 50.0% (60.00ms total)",  # ties keep the newest first
            "- **live_tick**: 50.0% (60.00ms total)",
            "",
            "## Detailed Metrics",
            "",
            "| Metric Type | Count | Total (ms) | Avg (ms) | Min (ms) | Max (ms) | Std Dev (ms)"
            " | Median (ms) | P95 (ms) | P99 (ms) | Avg Wait (ms) | Min Wait (ms)"
            " | Max Wait (ms) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| backtest_total | 1 | 60.00 | 60.00 | 60.00 | 60.00 | 0.00 | 60.00 | 60.00"
            " | 60.00 | 1000.00 | 1000.00 | 1000.00 |",
            "| live_tick | 3 | 60.00 | 20.00 | 10.00 | 30.00 | 8.16 | 20.00 | 30.00 | 30.00"
            " | 60000.00 | 60000.00 | 60000.00 |",
            "",
            "**Note:** All durations are in milliseconds. P95/P99 are the 95th/99th"
            " percentiles. Wait times are the gaps between a sample and the previous"
            " performance sample of the same run.",
        ]
    )
    assert asyncio.run(bk.Performance.get_report("ETHUSDT", "s1")) == (
        "# Performance Report: s1\n\nNo performance metrics recorded yet."
    )


def test_performance_shares_are_zero_when_nothing_took_time() -> None:
    # [deviation] 80 §6: the reference prints NaN%
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=lambda s, w: None)

    async def main() -> str:
        await current().bus.emit(events.PERFORMANCE, perf("live_tick", 0.0, 5, None))
        return await bk.Performance.get_report("BTCUSDT", "s1")

    assert "- **live_tick**: 0.0% (0.00ms total)" in asyncio.run(main()).splitlines()
