"""The live facade's reports (80 §4) after a simulated live run, and their reset at start."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

import backtest_kit as bk
from support import SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def fresh_runtime(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the live file backend writes ./dump/data
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def register() -> None:
    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        # one market order at minute 1, lifetime 10: expires at 11 at the flat price
        return bk.Signal("long", 101.0, 99.0, 10) if minute_of(when) == 1 else None

    bk.add_exchange("ex", Market().get_candles)
    bk.add_strategy("s", "1m", get_signal)


def test_live_report_counts_the_closed_trade_and_starts_empty_on_the_next_run() -> None:
    register()
    results = bk.Live.run_sync(
        SYMBOL, strategy_name="s", exchange_name="ex", clock=bk.SimulatedClock(ms(0), ms(20))
    )
    assert [r.action for r in results] == ["opened", "closed"]
    stats = asyncio.run(bk.Live.get_data(SYMBOL, "s"))
    assert stats.total_closed == 1
    # flat market at 100, fee and slippage 0.1: the long expires at 100
    assert stats.total_pnl == results[1].pnl.pnl_percentage
    report = asyncio.run(bk.Live.get_report(SYMBOL, "s"))
    assert report.splitlines()[0] == "# Live Trading Report: s"
    # rows are stamped with the run's clock, not the wall clock (40 §2.5)
    assert "| 2024-01-01T00:00:00.000Z | IDLE |" in report
    assert "| 2024-01-01T00:11:00.000Z | CLOSED | BTCUSDT |" in report
    # a new run clears the collectors of (symbol, strategy, live) before its first tick
    bk.Live.run_sync(
        SYMBOL, strategy_name="s", exchange_name="ex", clock=bk.SimulatedClock(ms(30), ms(31))
    )
    assert asyncio.run(bk.Live.get_data(SYMBOL, "s")).total_closed == 0
