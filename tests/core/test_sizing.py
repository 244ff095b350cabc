"""Tests for `backtest_kit.core.sizing` (position sizing, 60 §7–§8): `add_sizing` registration
rules, the three formulas and their caps against hand-computed values, every calculator error,
the `PositionSize` helpers, Wilder's ATR, and the engine-applied sizing of 60 §7.4 through real
backtests over the hand-made market of `support.py` (quantity and cost on the opened row,
compounding balance, Kelly history, ATR at the open instant, sizing failures rejected on
`listen_validation`, risk validations seeing the size)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.core.sizing import wilder_atr
from support import BASE, SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


PS = bk.PositionSize
FP, KC, AB = PS.fixed_percentage, PS.kelly_criterion, PS.atr_based


def long_pnl(price_open: float, price_close: float, s: float = 0.1, f: float = 0.1) -> float:
    """10 §7 with the default slippage and fee (percent)."""
    open_adj = price_open * (1 + s / 100)
    close_adj = price_close * (1 - s / 100)
    return (close_adj - open_adj) / open_adj * 100 - f * 2


# -- registration (60 §7.1) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((None, "fixed-percentage"), {"risk_percentage": 1}, bk.ValidationError,
         "missing sizing_name: must be a non-empty string, got None"),
        (("", "fixed-percentage"), {"risk_percentage": 1}, bk.ValidationError,
         "missing sizing_name: must be a non-empty string, got ''"),
        (("z", "linear"), {}, bk.ValidationError,
         "sizing 'z': unknown method 'linear'; valid methods: fixed-percentage, "
         "kelly-criterion, atr-based"),
        (("z", None), {}, bk.ValidationError,
         "sizing 'z': unknown method None; valid methods: fixed-percentage, "
         "kelly-criterion, atr-based"),
        (("z", "fixed-percentage"), {}, bk.ValidationError,
         "sizing 'z': method 'fixed-percentage' needs risk_percentage"),
        (("z", "atr-based"), {"atr_multiplier": 3}, bk.ValidationError,
         "sizing 'z': method 'atr-based' needs risk_percentage"),
        (("z", "kelly-criterion"), {"risk_percentage": 1}, bk.ValidationError,
         "sizing 'z': parameter 'risk_percentage' does not belong to method 'kelly-criterion'; "
         "valid parameters: kelly_multiplier, max_position_percentage, min_position_size, "
         "max_position_size"),
        (("z", "fixed-percentage"), {"risk_percentage": 1, "atr_multiplier": 2}, bk.ValidationError,
         "sizing 'z': parameter 'atr_multiplier' does not belong to method 'fixed-percentage'; "
         "valid parameters: risk_percentage, max_position_percentage, min_position_size, "
         "max_position_size"),
        (("z", "atr-based"), {"risk_percentage": 1, "kelly_multiplier": 1, "stop": 2},
         bk.ValidationError,
         "sizing 'z': parameter 'kelly_multiplier', 'stop' does not belong to method "
         "'atr-based'; valid parameters: risk_percentage, atr_multiplier, "
         "max_position_percentage, min_position_size, max_position_size"),
        *[
            (("z", "fixed-percentage"), {"risk_percentage": bad}, bk.ValidationError,
             f"sizing 'z': risk_percentage must be a finite number > 0, got {bad!r}")
            for bad in (0, -1.5, math.inf, math.nan, True, "1")
        ],
        (("z", "kelly-criterion"), {"kelly_multiplier": -0.1}, bk.ValidationError,
         "sizing 'z': kelly_multiplier must be a finite number >= 0, got -0.1"),
        (("z", "kelly-criterion"), {"kelly_multiplier": math.inf}, bk.ValidationError,
         "sizing 'z': kelly_multiplier must be a finite number >= 0, got inf"),
        (("z", "atr-based"), {"risk_percentage": 1, "atr_multiplier": 0}, bk.ValidationError,
         "sizing 'z': atr_multiplier must be a finite number > 0, got 0"),
        *[
            (("z", "kelly-criterion"), {cap: bad}, bk.ValidationError,
             f"sizing 'z': {cap} must be a finite number > 0, got {bad!r}")
            for cap in ("max_position_percentage", "min_position_size", "max_position_size")
            for bad in (0, -2, math.nan)
        ],
        (("z", "kelly-criterion"), {"min_position_size": 5, "max_position_size": 2},
         bk.ValidationError, "sizing 'z': min_position_size 5.0 must be <= max_position_size 2.0"),
        (("z", "kelly-criterion"), {"note": 3}, bk.ValidationError,
         "sizing 'z': note must be a string, got int"),
        (("z", "kelly-criterion"), {"callbacks": {"on_calc": print}}, bk.ValidationError,
         "sizing 'z': unknown callback 'on_calc'; valid callbacks: on_calculate"),
        (("z", "kelly-criterion"), {"callbacks": {"on_calculate": 1}}, bk.ValidationError,
         "sizing 'z': callbacks.on_calculate must be callable"),
        (("z", "kelly-criterion"), {"callbacks": [print]}, bk.ValidationError,
         "sizing 'z': callbacks must be a SizingCallbacks, a dict or None"),
    ],
)  # fmt: skip
def test_add_sizing_rejects_bad_schemas_and_registers_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        bk.add_sizing(*args, **kwargs)
    assert str(info.value) == message
    assert bk.list_sizings() == []
    assert bk.add_sizing("z", "kelly-criterion").sizing_name == "z"  # the name is still free


def test_add_sizing_duplicate_name_keeps_the_first() -> None:
    first = bk.add_sizing("s", "kelly-criterion")
    with pytest.raises(bk.RegistryError) as info:
        bk.add_sizing("s", "fixed-percentage", risk_percentage=1)
    assert str(info.value) == "sizing 's' already exist"
    assert bk.list_sizings() == [first]


def test_add_sizing_stores_defaults_and_lists_in_order() -> None:
    kelly = bk.add_sizing("k", "kelly-criterion")
    atr = bk.add_sizing("a", "atr-based", risk_percentage=2, max_position_size=7, note="doc")
    fixed = bk.add_sizing("f", "fixed-percentage", risk_percentage=1, min_position_size=3)
    assert kelly == bk.SizingSchema("k", "kelly-criterion", kelly_multiplier=0.25)
    assert atr == bk.SizingSchema(
        "a", "atr-based", risk_percentage=2.0, atr_multiplier=2.0, max_position_size=7.0, note="doc"
    )
    assert fixed == bk.SizingSchema(
        "f", "fixed-percentage", risk_percentage=1.0, min_position_size=3.0
    )
    assert bk.add_sizing("k0", "kelly-criterion", kelly_multiplier=0).kelly_multiplier == 0.0
    assert [s.sizing_name for s in bk.list_sizings()] == ["k", "a", "f", "k0"]


# -- formulas and caps (60 §7.3) through the helpers (60 §8) ----------------------------------


def size(coro: Any) -> float:
    value: float = asyncio.run(coro)
    return value


def test_fixed_percentage_formula() -> None:
    bk.add_sizing("fp", "fixed-percentage", risk_percentage=2)
    # risk 2 % of 10 000 = 200 over a 5-point stop -> 40 units; a stop above the entry counts too
    assert size(PS.fixed_percentage(SYMBOL, 10_000, 100, 95, sizing_name="fp")) == 40.0
    assert size(PS.fixed_percentage(SYMBOL, 10_000, 100, 104, sizing_name="fp")) == 50.0
    assert size(PS.fixed_percentage(SYMBOL, 5_000, 50, 49.5, sizing_name="fp")) == 200.0


def test_kelly_formula() -> None:
    bk.add_sizing("k", "kelly-criterion")  # default multiplier 0.25
    bk.add_sizing("k1", "kelly-criterion", kelly_multiplier=1)
    # kelly = (0.75 * 2 - 0.25) / 2 = 0.625; 10 000 * 0.625 * 0.25 / 100 = 15.625 units
    assert size(PS.kelly_criterion(SYMBOL, 10_000, 100, 0.75, 2, sizing_name="k")) == 15.625
    # kelly = (0.5 * 3 - 0.5) / 3 = 1/3, full Kelly: 9 000 / 3 / 30 = 100 units
    assert size(PS.kelly_criterion(SYMBOL, 9_000, 30, 0.5, 3, sizing_name="k1")) == pytest.approx(
        100.0, rel=1e-15
    )


def test_atr_formula() -> None:
    bk.add_sizing("a", "atr-based", risk_percentage=1)  # default multiplier 2
    bk.add_sizing("a3", "atr-based", risk_percentage=3, atr_multiplier=1.5)
    # risk 100 over a stop of 2 ATR = 5 -> 20 units; 300 / (4 * 1.5) = 50 units
    assert size(PS.atr_based(SYMBOL, 10_000, 100, 2.5, sizing_name="a")) == 20.0
    assert size(PS.atr_based(SYMBOL, 10_000, 100, 4, sizing_name="a3")) == 50.0


def test_caps_apply_in_order_percentage_min_max() -> None:
    bk.add_sizing("pct", "fixed-percentage", risk_percentage=2, max_position_percentage=30)
    bk.add_sizing(
        "pct-min",
        "fixed-percentage",
        risk_percentage=2,
        max_position_percentage=30,
        min_position_size=35,
    )
    bk.add_sizing(
        "max", "fixed-percentage", risk_percentage=2, min_position_size=1, max_position_size=12.5
    )
    bk.add_sizing(
        "same", "fixed-percentage", risk_percentage=2, min_position_size=8, max_position_size=8
    )
    fp = PS.fixed_percentage
    # uncapped 40; notional cap 30 % of 10 000 at price 100 -> 30 units
    assert size(fp(SYMBOL, 10_000, 100, 95, sizing_name="pct")) == 30.0
    # the floor comes after the notional cap: 30 -> 35
    assert size(fp(SYMBOL, 10_000, 100, 95, sizing_name="pct-min")) == 35.0
    # under the notional cap it changes nothing: 200 / 40 = 5 (30 % cap = 30) -> floor 35
    assert size(fp(SYMBOL, 10_000, 100, 60, sizing_name="pct-min")) == 35.0
    assert size(fp(SYMBOL, 10_000, 100, 95, sizing_name="max")) == 12.5
    assert size(fp(SYMBOL, 10_000, 100, 99.5, sizing_name="max")) == 12.5  # 400 -> 12.5
    assert size(fp(SYMBOL, 10_000, 100, 20, sizing_name="max")) == 2.5  # inside [1, 12.5]
    assert size(fp(SYMBOL, 10_000, 100, 0.0, sizing_name="max")) == 2.0
    assert size(fp(SYMBOL, 100, 100, 50, sizing_name="max")) == 1.0  # 0.04 -> floor 1
    assert size(fp(SYMBOL, 10_000, 100, 95, sizing_name="same")) == 8.0
    assert size(fp(SYMBOL, 10, 100, 95, sizing_name="same")) == 8.0


def test_kelly_edge_cases_zero_multiplier_and_negative_edge() -> None:
    bk.add_sizing("k0", "kelly-criterion", kelly_multiplier=0, max_position_size=5)
    bk.add_sizing("k", "kelly-criterion", kelly_multiplier=1)
    bk.add_sizing("k-min", "kelly-criterion", kelly_multiplier=1, min_position_size=2)
    kc = PS.kelly_criterion
    assert size(kc(SYMBOL, 10_000, 100, 0.75, 2, sizing_name="k0")) == 0.0
    # negative edge: (0.25 * 1 - 0.75) / 1 < 0 -> 0, before the floor
    assert size(kc(SYMBOL, 10_000, 100, 0.25, 1, sizing_name="k")) == 0.0
    assert size(kc(SYMBOL, 10_000, 100, 0.25, 1, sizing_name="k-min")) == 2.0
    # break-even edge: (0.5 * 1 - 0.5) / 1 == 0
    assert size(kc(SYMBOL, 10_000, 100, 0.5, 1, sizing_name="k")) == 0.0


@pytest.mark.parametrize(
    ("method", "call", "message"),
    [
        ("fixed-percentage", lambda n: FP(SYMBOL, 10_000, 100, 100, sizing_name=n),
         "Stop-loss distance cannot be zero"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 0, 2, sizing_name=n),
         "winRate must be between 0 and 1"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 1, 2, sizing_name=n),
         "winRate must be between 0 and 1"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 1.5, 2, sizing_name=n),
         "winRate must be between 0 and 1"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 0.5, 0, sizing_name=n),
         "winLossRatio must be positive"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 0.5, -1, sizing_name=n),
         "winLossRatio must be positive"),
        ("atr-based", lambda n: AB(SYMBOL, 10_000, 100, 0, sizing_name=n),
         "ATR must be positive"),
        ("atr-based", lambda n: AB(SYMBOL, 10_000, 100, -0.5, sizing_name=n),
         "ATR must be positive"),
        # [deviation] 60 §7.3: balance, price and method inputs must be finite (and > 0)
        ("atr-based", lambda n: AB(SYMBOL, 0, 100, 1, sizing_name=n),
         "sizing: account_balance must be > 0, got 0"),
        ("atr-based", lambda n: AB(SYMBOL, -5.5, 100, 1, sizing_name=n),
         "sizing: account_balance must be > 0, got -5.5"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 0, 0.5, 2, sizing_name=n),
         "sizing: price_open must be > 0, got 0"),
        ("fixed-percentage", lambda n: FP(SYMBOL, math.inf, 100, 99, sizing_name=n),
         "sizing: account_balance must be a finite number, got inf"),
        ("fixed-percentage", lambda n: FP(SYMBOL, 10_000, math.nan, 99, sizing_name=n),
         "sizing: price_open must be a finite number, got nan"),
        ("fixed-percentage", lambda n: FP(SYMBOL, 10_000, 100, None, sizing_name=n),
         "sizing: price_stop_loss must be a finite number, got None"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, math.nan, 2, sizing_name=n),
         "sizing: win_rate must be a finite number, got nan"),
        ("kelly-criterion", lambda n: KC(SYMBOL, 10_000, 100, 0.5, math.inf, sizing_name=n),
         "sizing: win_loss_ratio must be a finite number, got inf"),
        ("atr-based", lambda n: AB(SYMBOL, 10_000, 100, "2", sizing_name=n),
         "sizing: atr must be a finite number, got '2'"),
    ],
)  # fmt: skip
def test_calculator_errors(method: str, call: Callable[[str], Any], message: str) -> None:
    calls: list[float] = []
    params = {"risk_percentage": 1} if method != "kelly-criterion" else {}
    bk.add_sizing("x", method, callbacks={"on_calculate": lambda q, p: calls.append(q)}, **params)
    with pytest.raises(bk.ValidationError) as info:
        size(call("x"))
    assert str(info.value) == message
    assert calls == []  # nothing is reported for a failed calculation


def test_helpers_reject_unknown_names_and_method_mismatch() -> None:
    bk.add_sizing("fp", "fixed-percentage", risk_percentage=1)
    bk.add_sizing("k", "kelly-criterion")
    with pytest.raises(bk.RegistryError) as info:
        size(PS.atr_based(SYMBOL, 10_000, 100, 2, sizing_name="nope"))
    assert str(info.value) == "sizing 'nope' not found"
    with pytest.raises(bk.ValidationError) as info:
        size(PS.kelly_criterion(SYMBOL, 10_000, 100, 0.5, 2, sizing_name="fp"))
    assert str(info.value) == (
        'Sizing method mismatch: sizing "fp" is configured as "fixed-percentage" but '
        '"kelly-criterion" was requested'
    )
    with pytest.raises(bk.ValidationError) as info:
        size(PS.fixed_percentage(SYMBOL, 10_000, 100, 99, sizing_name="k"))
    assert str(info.value) == (
        'Sizing method mismatch: sizing "k" is configured as "kelly-criterion" but '
        '"fixed-percentage" was requested'
    )
    with pytest.raises(bk.ValidationError) as info:
        size(PS.atr_based(SYMBOL, 10_000, 100, 2, sizing_name="k"))
    assert str(info.value) == (
        'Sizing method mismatch: sizing "k" is configured as "kelly-criterion" but '
        '"atr-based" was requested'
    )


def test_on_calculate_receives_the_capped_quantity_and_params_and_is_awaited() -> None:
    seen: list[tuple[float, Any]] = []

    async def on_calculate(quantity: float, params: Any) -> None:
        await asyncio.sleep(0)
        seen.append((quantity, params))

    bk.add_sizing(
        "a",
        "atr-based",
        risk_percentage=1,
        max_position_size=10,
        callbacks=bk.SizingCallbacks(on_calculate=on_calculate),
    )
    assert size(PS.atr_based("ETHUSDT", 10_000, 100, 2, sizing_name="a")) == 10.0
    assert seen == [
        (
            10.0,
            bk.SizingCalculateParams(
                symbol="ETHUSDT",
                account_balance=10_000,
                price_open=100,
                method="atr-based",
                atr=2,
            ),
        )
    ]


# -- Wilder's ATR --------------------------------------------------------------------------


def candles(rows: list[tuple[float, float, float]]) -> bk.Candles:
    n = len(rows)
    high, low, close = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return bk.Candles(
        timestamp=np.arange(n, dtype=np.int64) * 60_000,
        open=close.copy(),
        high=high,
        low=low,
        close=close,
        volume=np.ones(n),
    )


def test_wilder_atr_is_the_mean_true_range_of_the_last_14_of_15_candles() -> None:
    # the first candle only lends its close: its own huge range does not count
    rows = [(130.0, 70.0, 100.0)] + [(100.0 + r, 100.0 - r, 100.0) for r in (0.5,) * 14]
    assert wilder_atr(candles(rows)) == 1.0
    # a gap: true range = max(h - l, |h - prev close|, |l - prev close|)
    rows[5] = (106.0, 105.0, 105.5)  # prev close 100: TR = 6
    rows[6] = (100.5, 99.5, 100.0)  # prev close 105.5: TR = 6
    assert wilder_atr(candles(rows)) == (12 * 1.0 + 6.0 + 6.0) / 14
    # more candles than needed: only the last 15 are read
    assert wilder_atr(candles([(500.0, 1.0, 250.0)] * 3 + rows)) == (12 * 1.0 + 6.0 + 6.0) / 14
    with pytest.raises(bk.ValidationError) as info:
        wilder_atr(candles(rows[1:]))
    assert str(info.value) == "ATR(14) needs 15 closed candles, got 14"


# -- engine-applied sizing (60 §7.4) ------------------------------------------------------------


LONG = bk.Signal("long", 101.0, 99.0, 60)


class Script:
    """`get_signal` answering from a {minute: value} table and recording every call."""

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.calls: list[int] = []

    def __call__(self, symbol: str, when: datetime) -> Any:
        self.calls.append(minute_of(when))
        return self.answers.get(minute_of(when))


def register(
    market: Market,
    get_signal: Callable[..., Any],
    *,
    sizing_name: str | None,
    frame: tuple[int, int] = (0, 30),
    risk_name: str | None = None,
) -> None:
    bk.add_exchange("ex", get_candles=market.get_candles)
    bk.add_strategy("s1", "1m", get_signal, sizing_name=sizing_name, risk_name=risk_name)
    bk.add_frame("f", "1m", BASE + timedelta(minutes=frame[0]), BASE + timedelta(minutes=frame[1]))


def run() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")


def record() -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"opened": [], "validation": [], "error": [], "risk": []}
    bk.listen_signal_backtest(
        lambda r: seen["opened"].append(r.signal) if r.action == "opened" else None
    )
    bk.listen_validation(seen["validation"].append)
    bk.listen_error(seen["error"].append)
    bk.listen_risk(seen["risk"].append)
    return seen


def test_no_sizing_profile_leaves_money_fields_empty() -> None:
    seen = record()
    register(Market().take_profit_at(3), Script({0: LONG}), sizing_name=None, frame=(0, 4))
    (result,) = run()
    assert (result.signal.quantity, result.signal.cost) == (None, None)
    assert [(r.quantity, r.cost) for r in seen["opened"]] == [(None, None)]


def test_unknown_sizing_profile_raises_at_run_start() -> None:
    bk.add_sizing("known", "kelly-criterion")
    register(Market(), Script({}), sizing_name="gone")
    with pytest.raises(bk.RegistryError) as info:
        bk.Backtest.run(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")
    assert str(info.value) == "Backtest.run: sizing 'gone' not found (registered: 'known')"


def test_fixed_percentage_sizes_each_open_and_compounds_the_balance() -> None:
    seen = record()
    balances: list[tuple[float, float, float | None, str]] = []
    bk.add_sizing(
        "risk-1",
        "fixed-percentage",
        risk_percentage=1,
        callbacks={
            "on_calculate": lambda q, p: balances.append(
                (q, p.account_balance, p.price_stop_loss, p.method)
            )
        },
    )
    market = Market().take_profit_at(5, 16)
    script = Script({0: LONG, 12: LONG})  # the entry window of 00:12 (7 .. 11) is flat
    register(market, script, sizing_name="risk-1", frame=(0, 17))

    results = run()

    assert [(r.close_reason, r.close_timestamp) for r in results] == [
        ("take_profit", ms(5)),
        ("take_profit", ms(16)),
    ]
    pnl = long_pnl(100.0, 101.0)
    assert results[0].pnl.pnl_percentage == pnl
    # trade 1: 1 % of 10 000 over a 1-point stop = 100 units, cost 10 000
    q1 = 100.0
    c1 = q1 * 100.0
    # trade 2: the balance grew by trade 1's money PnL = cost * pnl % / 100
    balance2 = 10_000.0 + c1 * pnl / 100
    q2 = balance2 * 1.0 / 100 / 1.0
    assert balance2 == pytest.approx(10_059.820179820180, rel=1e-15)
    assert [(r.signal.quantity, r.signal.cost) for r in results] == [(q1, c1), (q2, q2 * 100.0)]
    assert [(r.quantity, r.cost) for r in seen["opened"]] == [(q1, c1), (q2, q2 * 100.0)]
    assert balances == [
        (q1, 10_000.0, 99.0, "fixed-percentage"),
        (q2, balance2, 99.0, "fixed-percentage"),
    ]
    assert seen["validation"] == seen["error"] == []


def test_a_loss_shrinks_the_next_position() -> None:
    bk.add_sizing("risk-2", "fixed-percentage", risk_percentage=2)
    market = Market()
    market.bar(3, 100.0, 100.0, 98.5, 100.0)  # stop loss at 99
    register(
        market,
        Script({0: LONG, 10: bk.Signal("short", 98.0, 101.0, 60)}),
        sizing_name="risk-2",
        frame=(0, 12),
    )

    results = run()

    assert [r.close_reason for r in results] == ["stop_loss", "time_expired"]
    loss = long_pnl(100.0, 99.0)
    q1 = 10_000.0 * 2.0 / 100 / 1.0  # 200 units
    balance2 = 10_000.0 + q1 * 100.0 * loss / 100
    assert balance2 == pytest.approx(9_720.439560439561, rel=1e-14)
    q2 = balance2 * 2.0 / 100 / 1.0  # short: stop 1 point above the entry
    assert [r.signal.quantity for r in results] == [q1, q2]
    assert results[1].signal.cost == q2 * 100.0


def test_kelly_needs_a_win_and_a_loss_then_sizes_from_this_runs_history() -> None:
    seen_params: list[Any] = []
    bk.add_sizing(
        "kelly", "kelly-criterion", callbacks={"on_calculate": lambda q, p: seen_params.append(p)}
    )
    market = Market()
    market.bar(3, 100.0, 103.5, 100.0, 100.0)  # trade 1: take profit at 103
    market.bar(13, 100.0, 100.0, 98.5, 100.0)  # trade 2: stop loss at 99
    market.bar(23, 100.0, 103.5, 100.0, 100.0)  # trade 3: take profit
    market.bar(33, 100.0, 103.5, 100.0, 100.0)  # trade 4: take profit
    wide = bk.Signal("long", 103.0, 99.0, 60)
    register(
        market, Script({0: wide, 10: wide, 20: wide, 30: wide}), sizing_name="kelly", frame=(0, 34)
    )

    results = run()

    assert [r.close_reason for r in results] == [
        "take_profit",
        "stop_loss",
        "take_profit",
        "take_profit",
    ]
    win, loss = long_pnl(100.0, 103.0), long_pnl(100.0, 99.0)
    # until one win and one loss exist the quantity is 0 (no calculation is made)
    assert [(r.signal.quantity, r.signal.cost) for r in results[:2]] == [(0.0, 0.0), (0.0, 0.0)]
    # trade 3: win rate 1/2, ratio = avg win % / |avg loss %|; the balance is still 10 000
    ratio3 = win / -loss
    kelly3 = (0.5 * ratio3 - 0.5) / ratio3
    q3 = 10_000.0 * kelly3 * 0.25 / 100.0
    assert kelly3 == pytest.approx(0.23059149722735828, rel=1e-14)
    # trade 4: win rate 2/3, and trade 3's money PnL has compounded into the balance
    balance4 = 10_000.0 + q3 * 100.0 * win / 100
    ratio4 = (win + win) / 2 / -loss
    kelly4 = (2 / 3 * ratio4 - (1 - 2 / 3)) / ratio4
    q4 = balance4 * kelly4 * 0.25 / 100.0
    assert [r.signal.quantity for r in results[2:]] == [
        pytest.approx(q3, rel=1e-14),
        pytest.approx(q4, rel=1e-14),
    ]
    assert [r.signal.cost for r in results[2:]] == [
        pytest.approx(q3 * 100, rel=1e-14),
        pytest.approx(q4 * 100, rel=1e-14),
    ]
    assert [(p.win_rate, p.account_balance) for p in seen_params] == [
        (0.5, 10_000.0),
        (pytest.approx(2 / 3, rel=1e-15), pytest.approx(balance4, rel=1e-14)),
    ]
    assert [p.win_loss_ratio for p in seen_params] == [
        pytest.approx(ratio3, rel=1e-14),
        pytest.approx(ratio4, rel=1e-14),
    ]


def atr_market() -> tuple[Market, float]:
    """Candles -15 .. -1 with known true ranges and typical price 100 (entry VWAP 100); the
    ATR(14) at 00:00 over the last 14 of them (candle -15 only lends its close)."""
    market = Market()
    market.bar(-15, 100.0, 130.0, 70.0, 100.0)  # its range must not count
    ranges = []
    for k, r in enumerate((0.5, 1.0, 1.5, 2.0, 0.5, 1.0, 1.5, 2.0, 0.5, 1.0, 1.5, 2.0, 1.0, 1.5)):
        market.bar(-14 + k, 100.0, 100.0 + r, 100.0 - r, 100.0)
        ranges.append(2 * r)
    return market, sum(ranges) / 14


def test_atr_based_uses_wilder_atr_of_candles_closed_at_the_open() -> None:
    seen = record()
    bk.add_sizing("atr", "atr-based", risk_percentage=1, atr_multiplier=1.5)
    market, atr = atr_market()
    assert atr == 2.5
    register(market, Script({0: LONG}), sizing_name="atr", frame=(0, 3))

    results = run()

    q = 10_000.0 * 1.0 / 100 / (2.5 * 1.5)  # 26.666... units
    assert [r.signal.quantity for r in results] == [q]
    assert [r.signal.cost for r in results] == [q * 100.0]
    assert [r.quantity for r in seen["opened"]] == [q]


def test_scheduled_signal_is_sized_at_activation_with_the_atr_then() -> None:
    seen = record()
    bk.add_sizing("atr", "atr-based", risk_percentage=1)
    market = Market()
    for m in range(-10, 5):
        market.bar(m, 100.0, 101.0, 99.25, 100.0)  # TR 1.75 until the activation at 00:05
    market.bar(5, 100.0, 100.0, 98.9, 100.0)
    market.take_profit_at(8)
    register(
        market,
        Script({0: bk.Signal("long", 101.0, 98.0, 60, price_open=99.0)}),
        sizing_name="atr",
        frame=(0, 9),
    )

    results = run()

    # candles closed at 00:05 are -10 .. 04: ATR 1.75 (at 00:00 it would be 1.75 * 10 / 14)
    q = 10_000.0 * 1.0 / 100 / (1.75 * 2.0)
    assert [(r.close_reason, r.signal.pending_at) for r in results] == [("take_profit", ms(5))]
    assert [(r.signal.quantity, r.signal.cost) for r in results] == [(q, q * 99.0)]
    assert [(r.is_scheduled, r.quantity) for r in seen["opened"]] == [(False, q)]


def sizing_rejection(seen: dict[str, list[Any]], position: str, line: str) -> Any:
    (exc,) = seen["validation"]
    assert isinstance(exc, bk.ValidationError)
    assert exc.errors == (line,)
    assert str(exc) == f"Invalid signal for {position} position:\n{line}"
    assert seen["error"] == [] and seen["risk"] == [] and seen["opened"] == []
    return exc.signal


def test_flat_market_atr_of_zero_rejects_the_signal() -> None:
    seen = record()
    checked: list[Any] = []
    bk.add_risk("p", validations=[checked.append])
    bk.add_sizing("atr", "atr-based", risk_percentage=1)
    script = Script({0: LONG})
    register(Market(), script, sizing_name="atr", risk_name="p", frame=(0, 2))

    assert run() == []

    rejected = sizing_rejection(seen, "long", "sizing: ATR must be positive")
    assert (rejected.price_open, rejected.quantity, rejected.pending_at) == (100.0, None, ms(0))
    assert checked == []  # sizing comes before the risk check: nothing else ran
    assert script.calls == [0, 1, 2]


def test_too_few_candles_for_the_atr_rejects_the_signal() -> None:
    seen = record()
    bk.add_sizing("atr", "atr-based", risk_percentage=1)
    market = Market(first=-10)
    for m in range(-10, 12):
        market.bar(m, 100.0, 100.5, 99.5, 100.0)  # TR 1
    register(market, Script({0: LONG, 12: LONG}), sizing_name="atr", frame=(0, 12))

    (result,) = run()  # at 00:12 twenty-two candles have closed: sized and opened

    sizing_rejection(
        {**seen, "opened": []}, "long", "sizing: ATR(14) needs 15 closed candles, got 10"
    )
    assert result.signal.pending_at == ms(12)
    assert result.signal.quantity == 10_000.0 * 1.0 / 100 / (1.0 * 2.0)


def test_sizing_failure_at_activation_drops_the_scheduled_signal() -> None:
    seen = record()
    bk.add_sizing("atr", "atr-based", risk_percentage=1)
    market = Market()
    market.bar(5, 100.0, 100.0, 99.4, 100.0)  # activation of a flat market: ATR 0
    script = Script({0: bk.Signal("long", 101.0, 98.5, 60, price_open=99.5)})
    register(market, script, sizing_name="atr", frame=(0, 8))

    assert run() == []

    rejected = sizing_rejection(seen, "long", "sizing: ATR must be positive")
    assert (rejected.is_scheduled, rejected.scheduled_at) == (True, ms(0))
    assert script.calls == [0, 6, 7, 8]  # resumes at the activating candle + 1 minute


def test_a_balance_wiped_out_rejects_the_next_signal() -> None:
    seen = record()
    bk.add_sizing("all-in", "fixed-percentage", risk_percentage=100)
    market = Market()
    market.bar(2, 100.0, 100.0, 99.0, 100.0)
    tight = bk.Signal("long", 101.0, 99.5, 60)
    register(market, Script({0: tight, 10: tight}), sizing_name="all-in", frame=(0, 10))

    (result,) = run()

    q1 = 10_000.0 * 100.0 / 100 / 0.5  # 20 000 units, cost 2 000 000
    assert (result.close_reason, result.signal.quantity) == ("stop_loss", q1)
    balance = 10_000.0 + q1 * 100.0 * long_pnl(100.0, 99.5) / 100
    assert balance == pytest.approx(-7_976.023976023986, rel=1e-12)
    (exc,) = seen["validation"]
    assert len(exc.errors) == 1
    assert exc.errors[0].startswith("sizing: ")
    assert exc.errors[0].endswith(f"account_balance must be > 0, got {balance!r}")
    assert exc.signal.pending_at == ms(10)


def test_risk_validations_see_the_sized_row() -> None:
    seen: list[tuple[float | None, float | None]] = []
    bk.add_risk(
        "p",
        validations=[lambda pl: seen.append((pl.pending_signal.quantity, pl.pending_signal.cost))],
    )
    bk.add_sizing("risk-1", "fixed-percentage", risk_percentage=1)
    register(
        Market().take_profit_at(3),
        Script({0: LONG}),
        sizing_name="risk-1",
        risk_name="p",
        frame=(0, 3),
    )

    (result,) = run()

    assert seen == [(100.0, 10_000.0)]
    assert (result.signal.quantity, result.signal.cost) == (100.0, 10_000.0)
