"""Tests for model/results.py: PnL and the six tick results (10 §5, §8)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from backtest_kit.core.pnl import to_pnl
from backtest_kit.model.results import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    PnL,
    ScheduledResult,
    TickResult,
)
from backtest_kit.model.signal import SignalRow

WHEN = 1_704_067_200_000
COMMON = [
    "action",
    "signal",
    "current_price",
    "strategy_name",
    "exchange_name",
    "symbol",
    "backtest",
]
ROW_KEYS = [
    "id",
    "position",
    "price_open",
    "price_take_profit",
    "price_stop_loss",
    "minute_estimated_time",
    "note",
    "symbol",
    "exchange_name",
    "strategy_name",
    "scheduled_at",
    "pending_at",
    "is_scheduled",
    "quantity",
    "cost",
]


def make_row(*, is_scheduled: bool = False) -> SignalRow:
    return SignalRow(
        id="3f1c",
        position="long",
        price_open=100.0,
        price_take_profit=110.0,
        price_stop_loss=95.0,
        minute_estimated_time=60,
        note="",
        symbol="BTCUSDT",
        exchange_name="ex",
        strategy_name="st",
        scheduled_at=WHEN,
        pending_at=WHEN,
        is_scheduled=is_scheduled,
    )


def ctx() -> dict[str, Any]:
    return {"strategy_name": "st", "exchange_name": "ex", "symbol": "BTCUSDT", "backtest": True}


def all_results() -> list[tuple[TickResult, list[str]]]:
    r = make_row()
    pnl = to_pnl(r, 110.0, slippage=0.1, fee=0.1)
    return [
        (IdleResult(signal=None, current_price=100.5, **ctx()), COMMON),
        (ScheduledResult(signal=make_row(is_scheduled=True), current_price=101.0, **ctx()), COMMON),
        (OpenedResult(signal=r, current_price=r.price_open, **ctx()), COMMON),
        (
            ActiveResult(signal=r, current_price=101.0, percent_tp=10.0, percent_sl=0.0, **ctx()),
            [*COMMON, "percent_tp", "percent_sl"],
        ),
        (
            ClosedResult(
                signal=r,
                current_price=110.0,
                close_reason="take_profit",
                close_timestamp=WHEN + 180_000,
                pnl=pnl,
                **ctx(),
            ),
            [*COMMON, "close_reason", "close_timestamp", "pnl"],
        ),
        (
            CancelledResult(
                signal=make_row(is_scheduled=True),
                current_price=99.0,
                close_timestamp=WHEN + 60_000,
                **ctx(),
            ),
            [*COMMON, "close_timestamp"],
        ),
    ]


@pytest.mark.parametrize(("result", "keys"), all_results(), ids=lambda x: getattr(x, "action", ""))
def test_to_dict_keys_and_json(result: TickResult, keys: list[str]) -> None:
    d = result.to_dict()
    assert list(d) == keys
    assert json.loads(json.dumps(d)) == d
    assert d["action"] == result.action
    if d["signal"] is not None:
        assert list(d["signal"]) == ROW_KEYS


@pytest.mark.parametrize(("result", "keys"), all_results(), ids=lambda x: getattr(x, "action", ""))
def test_results_are_frozen_slotted_and_action_is_first_field(
    result: TickResult, keys: list[str]
) -> None:
    assert [f.name for f in dataclasses.fields(result)] == keys
    assert not hasattr(result, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.current_price = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.action = "idle"  # type: ignore[misc]


def test_action_literals() -> None:
    actions = [r.action for r, _ in all_results()]
    assert actions == ["idle", "scheduled", "opened", "active", "closed", "cancelled"]


def test_action_cannot_be_passed() -> None:
    with pytest.raises(TypeError):
        IdleResult(action="closed", signal=None, current_price=1.0, **ctx())  # type: ignore[call-arg]


def test_idle_signal_is_none() -> None:
    idle = IdleResult(signal=None, current_price=100.0, **ctx())
    assert idle.signal is None
    assert idle.to_dict()["signal"] is None


def test_opened_current_price_is_price_open() -> None:
    opened = all_results()[2][0]
    assert isinstance(opened, OpenedResult)
    assert opened.current_price == opened.signal.price_open


def test_positional_construction_follows_table_order() -> None:
    r = make_row()
    active = ActiveResult(r, 101.0, "st", "ex", "BTCUSDT", False, 10.0, 0.0)
    assert (active.symbol, active.backtest, active.percent_tp) == ("BTCUSDT", False, 10.0)


def test_pnl_record() -> None:
    pnl = PnL(1.5, 100.0, 101.0)
    assert pnl.to_dict() == {"pnl_percentage": 1.5, "price_open": 100.0, "price_close": 101.0}
    assert list(pnl.to_dict()) == ["pnl_percentage", "price_open", "price_close"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pnl.pnl_percentage = 0.0  # type: ignore[misc]


def test_closed_result_example_of_10_8() -> None:
    r = make_row()
    closed = ClosedResult(
        signal=r,
        current_price=110.0,
        strategy_name="st",
        exchange_name="ex",
        symbol="BTCUSDT",
        backtest=True,
        close_reason="take_profit",
        close_timestamp=1704067380000,
        pnl=to_pnl(r, 110.0, slippage=0.1, fee=0.1),
    )
    expected = json.loads(
        """{"action": "closed",
 "signal": {"id": "3f1c", "position": "long", "price_open": 100.0, "price_take_profit": 110.0,
            "price_stop_loss": 95.0, "minute_estimated_time": 60, "note": "", "symbol": "BTCUSDT",
            "exchange_name": "ex", "strategy_name": "st", "scheduled_at": 1704067200000,
            "pending_at": 1704067200000, "is_scheduled": false,
            "quantity": null, "cost": null},
 "current_price": 110.0, "strategy_name": "st", "exchange_name": "ex", "symbol": "BTCUSDT",
 "backtest": true, "close_reason": "take_profit", "close_timestamp": 1704067380000,
 "pnl": {"pnl_percentage": 9.580219780219787, "price_open": 100.0, "price_close": 110.0}}"""
    )
    d = closed.to_dict()
    assert d == expected
    assert json.dumps(d) == json.dumps(expected)  # same key order throughout
