"""Risk and partial state of a live position survive a restart (issue 5 with 40 §5):
the restored position is in its risk profile again, and milestone levels reached before the
restart are not reported a second time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.runtime import current
from support import SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the live file backend writes ./dump/data


def rising_market() -> Market:
    """Flat at 100 until minute 0, then +0.02 a minute: a long opened at 100 with TP 101 is
    10 % of the way after 5 minutes and reaches TP after about 50."""
    market = Market(first=-60, last=300)
    for minute in range(0, 301):
        price = 100 + 0.02 * minute
        market.bar(minute, price, price, price, price)
    return market


def start(levels: list[int], seen_risk: list[list[str]]) -> None:
    """A fresh runtime (a restarted process) with the same registrations."""
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)

    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        return bk.Signal("long", 101.0, 99.0, 240, id="pos-1") if minute_of(when) == 0 else None

    def on_active(symbol: str, signal: Any, price: float, backtest: bool) -> None:
        seen_risk.append(list(current().risk_clients[("portfolio", False)].positions))

    bk.add_exchange("ex", rising_market().get_candles)
    bk.add_risk("portfolio")
    bk.add_strategy(
        "s1", "1m", get_signal, risk_name="portfolio", callbacks={"on_active": on_active}
    )
    bk.listen_partial_profit(lambda event: levels.append(event.level))


def test_a_restarted_position_keeps_its_risk_entry_and_its_milestones() -> None:
    first_levels: list[int] = []
    seen_risk: list[list[str]] = []
    start(first_levels, seen_risk)
    first = bk.Live.run_sync(
        SYMBOL, strategy_name="s1", exchange_name="ex", clock=bk.SimulatedClock(ms(0), ms(20))
    )
    assert [r.action for r in first] == ["opened"]  # the clock ran out with the position open
    assert first_levels == [10, 20, 30]
    stored_risk = json.loads(Path("dump/data/risk/portfolio/positions.json").read_text())
    assert [key for key, _ in stored_risk] == ["s1:BTCUSDT"]
    levels_file = Path("dump/data/partial/BTCUSDT_s1/levels.json")
    stored_levels = json.loads(levels_file.read_text())
    assert stored_levels == {"pos-1": {"profit_levels": [10, 20, 30], "loss_levels": []}}

    second_levels: list[int] = []
    start(second_levels, seen_risk)  # a new process: nothing in memory
    second = bk.Live.run_sync(
        SYMBOL, strategy_name="s1", exchange_name="ex", clock=bk.SimulatedClock(ms(21), ms(120))
    )
    assert seen_risk == [["s1:BTCUSDT"]]  # restored before the first tick (on_active)
    assert [(r.action, r.signal.id) for r in second] == [("closed", "pos-1")]
    assert second[0].close_reason == "take_profit"
    assert second_levels == [40, 50, 60, 70, 80, 90]  # 10-30 are not reported again
    assert json.loads(Path("dump/data/risk/portfolio/positions.json").read_text()) == []
    assert json.loads(levels_file.read_text()) == {}
