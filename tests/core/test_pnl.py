"""Tests for core/pnl.py: to_pnl (10 §7, bit-exact) and percent_progress (60 §9.1)."""

from __future__ import annotations

import pytest

from backtest_kit.core.pnl import percent_progress, to_pnl
from backtest_kit.model.results import PnL
from backtest_kit.model.signal import SignalRow

WHEN = 1_704_067_200_000


def row(
    position: str = "long",
    price_open: float = 100.0,
    tp: float = 110.0,
    sl: float = 95.0,
    *,
    is_scheduled: bool = False,
) -> SignalRow:
    return SignalRow(
        id="r",
        position=position,  # type: ignore[arg-type]
        price_open=price_open,
        price_take_profit=tp,
        price_stop_loss=sl,
        minute_estimated_time=60,
        note="",
        symbol="BTCUSDT",
        exchange_name="ex",
        strategy_name="st",
        scheduled_at=WHEN,
        pending_at=WHEN,
        is_scheduled=is_scheduled,
    )


@pytest.mark.parametrize(
    ("position", "close", "slippage", "fee", "expected"),
    [
        ("long", 110.0, 0.1, 0.1, 9.580219780219787),
        ("short", 90.0, 0.1, 0.1, 9.619819819819837),
        ("short", 105.0, 0.1, 0.1, -5.410210210210194),
        ("long", 95.0, 0.1, 0.1, -5.389810189810183),
        ("long", 100.0, 0.05, 0.1, -0.29995002498750056),
        ("long", 110.0, 0.0, 0.0, 10.0),
    ],
)
def test_to_pnl_bit_exact(
    position: str, close: float, slippage: float, fee: float, expected: float
) -> None:
    r = row(
        position, tp=110.0 if position == "long" else 90.0, sl=95.0 if position == "long" else 105.0
    )
    pnl = to_pnl(r, close, slippage=slippage, fee=fee)
    assert pnl.pnl_percentage == expected
    assert pnl.price_open == 100.0
    assert pnl.price_close == close


def test_to_pnl_keeps_raw_prices() -> None:
    pnl = to_pnl(row(price_open=123.45), 130.5, slippage=0.3, fee=0.2)
    assert pnl == PnL(pnl.pnl_percentage, 123.45, 130.5)


def test_to_pnl_accepts_int_prices() -> None:
    pnl = to_pnl(row(), 110, slippage=0, fee=0)
    assert pnl.pnl_percentage == 10.0


@pytest.mark.parametrize(
    ("position", "tp", "sl", "price", "expected"),
    [
        ("long", 110.0, 95.0, 101.0, (10.0, 0.0)),
        ("long", 110.0, 95.0, 97.5, (0.0, 50.0)),
        ("long", 110.0, 95.0, 100.0, (0.0, 0.0)),
        ("long", 110.0, 95.0, 120.0, (100.0, 0.0)),
        ("long", 110.0, 95.0, 80.0, (0.0, 100.0)),
        ("short", 90.0, 105.0, 95.0, (50.0, 0.0)),
        ("short", 90.0, 105.0, 102.0, (0.0, 40.0)),
        ("short", 90.0, 105.0, 100.0, (0.0, 0.0)),
        ("short", 90.0, 105.0, 50.0, (100.0, 0.0)),
        ("short", 90.0, 105.0, 200.0, (0.0, 100.0)),
    ],
)
def test_percent_progress(
    position: str, tp: float, sl: float, price: float, expected: tuple[float, float]
) -> None:
    assert percent_progress(row(position, 100.0, tp, sl), price) == expected


def test_percent_progress_formula_order() -> None:
    # d / dist * 100, evaluated left to right (60 §9.1).
    assert percent_progress(row(), 101.0)[0] == (101.0 - 100.0) / (110.0 - 100.0) * 100


def test_percent_progress_scheduled_row_is_zero() -> None:
    assert percent_progress(row(is_scheduled=True), 105.0) == (0.0, 0.0)
