"""Report columns (80 §1.4): the default sets, `set_columns` validation and rollback,
`get_columns` / `get_default_columns`, per-call selection and order by key, errors listing
the valid keys, visibility (the Note column and `is_visible`)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.report.columns import COLUMN_SETS
from support import BASE, SYMBOL, Market, minute_of


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def one_trade(note: str = "") -> None:
    """One long from 100 with TP 101 reached at minute 3 (fees and slippage 0)."""
    bk.set_config(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0)
    market = Market().take_profit_at(3)

    def get_signal(symbol: str, when: datetime) -> Any:
        if minute_of(when) == 0:
            return bk.Signal("long", 101.0, 99.0, 60, note=note, id="t1")
        return None

    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=get_signal)
    bk.add_frame(
        frame_name="f", interval="1m", start_date=BASE, end_date=BASE + timedelta(minutes=5)
    )
    bk.Backtest.run_sync(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")


def report(columns: Any = None) -> list[str]:
    return asyncio.run(bk.Backtest.get_report(SYMBOL, "s1", columns=columns)).splitlines()


def test_default_sets_have_the_keys_of_80_in_order() -> None:
    d = bk.get_default_columns()
    keys = {name: [c.key for c in getattr(d, name)] for name in COLUMN_SETS}
    assert keys == {
        "backtest_columns": [
            "signalId", "symbol", "position", "note", "openPrice", "closePrice", "takeProfit",
            "stopLoss", "pnl", "closeReason", "duration", "openTimestamp", "closeTimestamp",
        ],
        "heat_columns": [
            "symbol", "totalPnl", "sharpeRatio", "profitFactor", "expectancy", "winRate",
            "avgWin", "avgLoss", "maxDrawdown", "maxWinStreak", "maxLossStreak", "totalTrades",
        ],
        "live_columns": [
            "timestamp", "action", "symbol", "signalId", "position", "note", "currentPrice",
            "openPrice", "takeProfit", "stopLoss", "percentTp", "percentSl", "pnl",
            "closeReason", "duration",
        ],
        "partial_columns": [
            "action", "symbol", "strategyName", "signalId", "position", "level", "currentPrice",
            "timestamp", "mode",
        ],
        "performance_columns": [
            "metricType", "count", "totalDuration", "avgDuration", "minDuration", "maxDuration",
            "stdDev", "median", "p95", "p99", "avgWaitTime", "minWaitTime", "maxWaitTime",
        ],
        "risk_columns": [
            "symbol", "strategyName", "signalId", "position", "note", "exchangeName",
            "openPrice", "takeProfit", "stopLoss", "currentPrice", "activePositionCount",
            "comment", "timestamp",
        ],
        "schedule_columns": [
            "timestamp", "action", "symbol", "signalId", "position", "note", "currentPrice",
            "priceOpen", "takeProfit", "stopLoss", "duration",
        ],
        "walker_pnl_columns": [
            "strategy", "signalId", "symbol", "position", "pnl", "closeReason", "openTime",
            "closeTime",
        ],
        "walker_strategy_columns": [
            "rank", "strategy", "metric", "totalSignals", "winRate", "avgPnl", "totalPnl",
            "sharpeRatio", "stdDev",
        ],
    }  # fmt: skip
    assert bk.get_columns() == d


def test_columns_are_selected_and_ordered_by_key_per_call() -> None:
    one_trade()
    assert report(["pnl", "signalId"])[2:5] == [
        "| PNL (net) | Signal ID |",
        "| --- | --- |",
        "| +1.00% | t1 |",
    ]
    assert report()[2].startswith("| Signal ID | Symbol | Position | Open Price |")  # unchanged


def test_an_unknown_key_lists_the_valid_ones() -> None:
    one_trade()
    with pytest.raises(bk.ValidationError) as err:
        report(["pnL", "signalId", "signalId"])
    assert str(err.value) == (
        "Backtest.get_report: invalid columns:\n"
        "1. columns[0]: unknown column 'pnL'; valid keys: signalId, symbol, position, note,"
        " openPrice, closePrice, takeProfit, stopLoss, pnl, closeReason, duration,"
        " openTimestamp, closeTimestamp\n"
        "2. columns[2]: duplicate key 'signalId' (also columns[1])"
    )


def test_set_columns_replaces_a_set_for_every_later_report() -> None:
    one_trade()
    custom = bk.Column("held", "Held", lambda r, i: f"{r.close_timestamp - r.signal.pending_at}ms")
    bk.set_columns(
        backtest_columns=[
            "signalId",
            custom,
            {"key": "n", "label": "N", "format": lambda r, i: str(i)},
        ]
    )
    assert report()[2:5] == [
        "| Signal ID | Held | N |",
        "| --- | --- | --- |",
        "| t1 | 180000ms | 0 |",
    ]
    assert [c.key for c in bk.get_columns().backtest_columns] == ["signalId", "held", "n"]
    assert bk.get_default_columns().backtest_columns[0].key == "signalId"
    assert len(bk.get_default_columns().backtest_columns) == 13  # defaults untouched
    # a key of the configured set or of the defaults may be picked per call
    assert report(["held", "pnl"])[4] == "| 180000ms | +1.00% |"


def test_set_columns_rolls_back_and_numbers_every_problem() -> None:
    before = bk.get_columns()
    bad_format = bk.Column("x", "X", "not callable")  # type: ignore[arg-type]
    with pytest.raises(bk.ConfigError) as err:
        bk.set_columns(
            backtest_columns=["signalId", bad_format],
            heat_columns="symbol",
            risk_columns=[bk.Column("", "Empty", lambda r, i: "")],
            walker_columns=[],
        )
    assert str(err.value).splitlines() == [
        "set_columns: invalid column configuration:",
        "1. unknown column set 'walker_columns'; valid sets: backtest_columns, heat_columns,"
        " live_columns, partial_columns, performance_columns, risk_columns, schedule_columns,"
        " walker_pnl_columns, walker_strategy_columns",
        "2. backtest_columns[1].format must be callable, got 'not callable'",
        "3. heat_columns must be a list of columns, got str",
        "4. risk_columns[0].key must be a non-empty string, got ''",
    ]
    assert bk.get_columns() is before  # nothing changed


def test_unsafe_skips_validation_and_reset_restores_defaults() -> None:
    bk.set_columns(heat_columns=["nonsense"], _unsafe=True)
    assert bk.get_columns().heat_columns == ("nonsense",)
    saved = bk.get_default_columns()
    bk.set_columns(saved)  # a ColumnConfig restores every set
    assert bk.get_columns() == saved
    bk.set_columns(live_columns=["action"])
    bk.reset()
    assert bk.get_columns() == bk.get_default_columns()


def test_hidden_columns_lose_header_and_cells() -> None:
    one_trade()

    async def never() -> bool:
        return False

    hidden = bk.Column("h", "Hidden", lambda r, i: "x", never)
    assert report(["signalId", hidden, "pnl"])[2:5] == [
        "| Signal ID | PNL (net) |",
        "| --- | --- |",
        "| t1 | +1.00% |",
    ]


def test_the_note_column_follows_the_config_key_and_prints_plain_text() -> None:
    one_trade(note="## Breakout\n- **volume** up | [chart](http://x)")
    assert "Note" not in report()[2]  # hidden by default
    bk.set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)  # read at render time
    assert report(["signalId", "note"])[2:5] == [
        "| Signal ID | Note |",
        "| --- | --- |",
        "| t1 | Breakout • volume up \\| chart |",
    ]
