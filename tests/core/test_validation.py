"""Tests for `backtest_kit.core.validation`: row construction, garbage rejection, the
immediate-vs-scheduled decision and every rule of 20 §4, with exact texts."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from backtest_kit.core.validation import (
    SignalLimits,
    build_signal_row,
    format_js_number,
    validate_row,
)
from backtest_kit.errors import ValidationError
from backtest_kit.model.signal import Signal, SignalRow

WHEN = 1_700_000_000_000
LIMITS = SignalLimits(
    min_take_profit_percent=0.5,
    min_stop_loss_percent=0.5,
    max_stop_loss_percent=20,
    max_lifetime_minutes=1440,
)
NO_LIMITS = SignalLimits(0, 0, 0, 0)
NAN = float("nan")
INF = float("inf")


def build(raw: object, cp: float = 100.0, limits: SignalLimits = LIMITS) -> SignalRow:
    return build_signal_row(
        raw,
        current_price=cp,
        when=WHEN,
        symbol="BTCUSDT",
        exchange_name="binance",
        strategy_name="s1",
        limits=limits,
    )


def reject(raw: object, cp: float = 100.0, limits: SignalLimits = LIMITS) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        build(raw, cp, limits)
    return info.value


def lines(raw: object, cp: float = 100.0, limits: SignalLimits = LIMITS) -> list[str]:
    return list(reject(raw, cp, limits).errors)


def make_row(**changes: Any) -> SignalRow:
    row = SignalRow(
        id="r1",
        position="long",
        price_open=100.0,
        price_take_profit=110.0,
        price_stop_loss=95.0,
        minute_estimated_time=60,
        note="",
        symbol="BTCUSDT",
        exchange_name="binance",
        strategy_name="s1",
        scheduled_at=WHEN,
        pending_at=WHEN,
        is_scheduled=False,
    )
    return dataclasses.replace(row, **changes)


def long(**kw: Any) -> Signal:
    args: dict[str, Any] = {
        "price_take_profit": 110,
        "price_stop_loss": 95,
        "minute_estimated_time": 60,
    }
    args.update(kw)
    return Signal("long", **args)


def short(**kw: Any) -> Signal:
    args: dict[str, Any] = {
        "price_take_profit": 90,
        "price_stop_loss": 105,
        "minute_estimated_time": 60,
    }
    args.update(kw)
    return Signal("short", **args)


# --- happy path and row construction -------------------------------------------------------


def test_market_order_opens_at_current_price() -> None:
    row = build(long(note="**Buy** [here](http://x)"), cp=101.5)
    assert row == SignalRow(
        id=row.id,
        position="long",
        price_open=101.5,
        price_take_profit=110.0,
        price_stop_loss=95.0,
        minute_estimated_time=60,
        note="Buy here",
        symbol="BTCUSDT",
        exchange_name="binance",
        strategy_name="s1",
        scheduled_at=WHEN,
        pending_at=WHEN,
        is_scheduled=False,
    )
    assert isinstance(row.id, str) and len(row.id) == 36
    assert type(row.price_take_profit) is float
    assert row.quantity is None and row.cost is None


def test_long_price_open_below_vwap_is_scheduled() -> None:
    row = build(long(price_open=95, price_stop_loss=90), cp=100.0)
    assert row.is_scheduled is True
    assert row.price_open == 95.0
    assert row.scheduled_at == row.pending_at == WHEN


def test_long_price_open_reached_is_immediate_at_price_open() -> None:
    row = build(long(price_open=95, price_stop_loss=90), cp=94.0)
    assert row.is_scheduled is False
    assert row.price_open == 95.0


def test_long_price_open_equal_to_vwap_is_immediate() -> None:
    row = build(long(price_open=100), cp=100.0)
    assert row.is_scheduled is False and row.price_open == 100.0


def test_short_price_open_above_vwap_is_scheduled_and_reached_is_immediate() -> None:
    scheduled = build(short(price_open=102, price_stop_loss=106), cp=100.0)
    assert scheduled.is_scheduled is True and scheduled.price_open == 102.0
    immediate = build(short(price_open=102, price_stop_loss=106), cp=103.0)
    assert immediate.is_scheduled is False and immediate.price_open == 102.0


def test_short_market_order() -> None:
    row = build(short(), cp=100.0)
    assert (row.position, row.price_open, row.is_scheduled) == ("short", 100.0, False)


def test_user_id_is_kept_and_empty_id_generated() -> None:
    assert build(long(id="my-id")).id == "my-id"
    generated = build(long(id=""))
    assert generated.id and generated.id != "my-id"
    assert build(long(id=None)).id != generated.id


def test_integral_float_lifetime_stored_as_int() -> None:
    row = build(long(minute_estimated_time=60.0))
    assert row.minute_estimated_time == 60
    assert type(row.minute_estimated_time) is int


def test_dict_is_equivalent_to_signal() -> None:
    raw = {
        "position": "long",
        "price_open": 95,
        "price_take_profit": 110,
        "price_stop_loss": 90,
        "minute_estimated_time": 60,
        "note": "n",
        "id": "d1",
    }
    from_dict = build(raw, cp=100.0)
    from_signal = build(Signal(**raw), cp=100.0)
    assert from_dict == from_signal
    assert from_dict.is_scheduled is True


def test_dict_with_only_required_keys_is_a_market_order() -> None:
    raw = {
        "position": "short",
        "price_take_profit": 90,
        "price_stop_loss": 105,
        "minute_estimated_time": 5,
    }
    row = build(raw)
    assert (row.price_open, row.note, row.is_scheduled) == (100.0, "", False)


def test_none_note_is_empty() -> None:
    assert build(long(note=None)).note == ""


def test_numpy_scalars_are_numbers_and_stored_as_python_types() -> None:
    row = build(
        long(
            price_take_profit=np.float64(110),
            price_stop_loss=np.float64(95),
            minute_estimated_time=np.int64(60),
        ),
        cp=100.0,
    )
    assert type(row.price_take_profit) is float
    assert type(row.minute_estimated_time) is int and row.minute_estimated_time == 60


# --- garbage (20 §3.4) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (False, "get_signal must return a Signal, a mapping or None, got bool False"),
        (5, "get_signal must return a Signal, a mapping or None, got int 5"),
        (0, "get_signal must return a Signal, a mapping or None, got int 0"),
        ("", "get_signal must return a Signal, a mapping or None, got str ''"),
        ([1, 2], "get_signal must return a Signal, a mapping or None, got list [1, 2]"),
    ],
)
def test_garbage_is_rejected(raw: object, line: str) -> None:
    error = reject(raw)
    assert error.errors == (line,)
    assert str(error) == "Invalid signal for unknown position:\n" + line
    assert error.signal is raw


def test_unknown_keys_rejected_naming_them() -> None:
    raw = {
        "position": "long",
        "priceOpen": 95,
        "price_take_profit": 110,
        "price_stop_loss": 90,
        "minute_estimated_time": 60,
        "tp": 1,
    }
    error = reject(raw)
    assert error.errors == (
        "signal has unknown keys 'priceOpen', 'tp' (allowed: position, price_take_profit, "
        "price_stop_loss, minute_estimated_time, price_open, note, id)",
    )
    assert str(error).startswith("Invalid signal for long position:\n")
    assert error.signal is raw


def test_non_str_note_rejected() -> None:
    error = reject(long(note=3))
    assert error.errors == ("note must be a str, got int 3",)
    assert str(error) == "Invalid signal for long position:\nnote must be a str, got int 3"


def test_non_str_id_rejected() -> None:
    assert lines(short(id=7)) == ["id must be a str or None, got int 7"]


def test_shape_errors_are_reported_together() -> None:
    raw = {"position": "short", "note": 1.5, "id": b"x", "x": 1}
    assert lines(raw) == [
        "signal has unknown keys 'x' (allowed: position, price_take_profit, price_stop_loss, "
        "minute_estimated_time, price_open, note, id)",
        "note must be a str, got float 1.5",
        "id must be a str or None, got bytes b'x'",
    ]


def test_wrong_type_values_are_not_coerced() -> None:
    assert lines(long(price_take_profit="110", price_stop_loss=True)) == [
        "price_take_profit must be a number type, got '110' (str)",
        "price_take_profit must be a finite number, got '110'",
        "price_stop_loss must be a number type, got True (bool)",
        "price_stop_loss must be a finite number, got True",
    ]


def test_non_number_price_open_is_scheduled_then_rejected() -> None:
    error = reject(long(price_open="95"))
    assert isinstance(error.signal, SignalRow)
    assert error.signal.is_scheduled is True
    assert error.errors == (
        "price_open must be a number type, got '95' (str)",
        "price_open must be a finite number, got '95'",
    )


def test_empty_mapping_rejected_by_the_rules() -> None:
    error = reject({})
    assert str(error).startswith("Invalid signal for unknown position:\n")
    assert error.errors == (
        'position is required and must be "long" or "short"',
        'position must be "long" or "short", got "None"',
        "price_take_profit must be a number type, got None (NoneType)",
        "price_take_profit must be a finite number, got None",
        "price_stop_loss must be a number type, got None (NoneType)",
        "price_stop_loss must be a finite number, got None",
        "minute_estimated_time must be a number type, got None (NoneType)",
        "minute_estimated_time must be an integer (whole number), got None",
        "minute_estimated_time must be a finite number, got None",
    )


# --- validation rules (20 §4) ------------------------------------------------------------


def test_required_text_fields_and_is_scheduled() -> None:
    row = make_row(id="", exchange_name="", strategy_name=None, symbol="", is_scheduled=None)
    assert validate_row(row, 100.0, LIMITS) == [
        "id is required",
        "exchange_name is required",
        "strategy_name is required",
        "symbol is required",
        "is_scheduled is required",
    ]


def test_invalid_position() -> None:
    error = reject(Signal("sideways", 110, 95, 60))
    assert error.errors == ('position must be "long" or "short", got "sideways"',)
    assert str(error).startswith("Invalid signal for sideways position:\n")
    assert isinstance(error.signal, SignalRow) and error.signal.is_scheduled is False


def test_invalid_position_with_limit_price_is_scheduled() -> None:
    error = reject(Signal("LONG", 110, 95, 60, price_open=100))
    assert isinstance(error.signal, SignalRow) and error.signal.is_scheduled is True
    assert error.errors == ('position must be "long" or "short", got "LONG"',)


@pytest.mark.parametrize(
    ("cp", "expected"),
    [
        (
            "100",
            [
                "current_price must be a number type, got '100' (str)",
                "current_price must be a finite number, got '100'",
            ],
        ),
        (NAN, ["current_price must be a finite number, got NaN"]),
        (INF, ["current_price must be a finite number, got Infinity"]),
        (0, ["current_price must be positive, got 0"]),
        (-2.5, ["current_price must be positive, got -2.5"]),
    ],
)
def test_current_price_rules(cp: object, expected: list[str]) -> None:
    # a scheduled row, so that the immediate checks (which read a finite cp) stay silent
    assert validate_row(make_row(is_scheduled=True), cp, NO_LIMITS) == expected


def test_non_positive_current_price_still_runs_the_immediate_checks() -> None:
    assert validate_row(make_row(), 0, NO_LIMITS) == [
        "current_price must be positive, got 0",
        "long immediate: current_price (0) <= price_stop_loss (95), stopped out at once",
    ]


@pytest.mark.parametrize("field", ["price_open", "price_take_profit", "price_stop_loss"])
def test_price_number_and_finite_rules(field: str) -> None:
    assert validate_row(make_row(**{field: None}), 100.0, NO_LIMITS) == [
        f"{field} must be a number type, got None (NoneType)",
        f"{field} must be a finite number, got None",
    ]
    assert validate_row(make_row(**{field: NAN}), 100.0, NO_LIMITS) == [
        f"{field} must be a finite number, got NaN",
    ]


def test_prices_must_be_positive() -> None:
    row = make_row(position="sideways", price_open=0.0, price_take_profit=-1.0, price_stop_loss=0)
    assert validate_row(row, 100.0, NO_LIMITS) == [
        'position must be "long" or "short", got "sideways"',
        "price_open must be positive, got 0",
        "price_take_profit must be positive, got -1",
        "price_stop_loss must be positive, got 0",
    ]


def test_nan_and_inf_prices_rejected_in_a_signal() -> None:
    assert lines(long(price_take_profit=NAN, price_stop_loss=-INF)) == [
        "price_take_profit must be a finite number, got NaN",
        "price_stop_loss must be a finite number, got -Infinity",
        "long: stop_loss too far from price_open (Infinity%), maximum 20%",
    ]


def test_long_take_profit_and_stop_loss_on_the_wrong_side() -> None:
    row = make_row(price_take_profit=100.0, price_stop_loss=100.0)
    assert validate_row(row, 99.0, NO_LIMITS) == [
        "long: price_take_profit (100) must be > price_open (100)",
        "long: price_stop_loss (100) must be < price_open (100)",
        "long immediate: current_price (99) <= price_stop_loss (100), stopped out at once",
    ]


def test_long_immediate_current_price_at_stop_loss_rejected() -> None:
    assert lines(long(price_open=100, price_stop_loss=95), cp=95.0) == [
        "long immediate: current_price (95) <= price_stop_loss (95), stopped out at once",
    ]


def test_long_immediate_current_price_past_take_profit() -> None:
    row = make_row()
    assert validate_row(row, 110.0, NO_LIMITS) == [
        "long immediate: current_price (110) >= price_take_profit (110), profit already passed",
    ]


def test_long_scheduled_price_open_outside_the_levels() -> None:
    below_sl = make_row(is_scheduled=True, price_open=94.0)
    assert validate_row(below_sl, 100.0, NO_LIMITS) == [
        "long: price_stop_loss (95) must be < price_open (94)",
        "long scheduled: price_open (94) <= price_stop_loss (95), cancelled at activation",
    ]
    above_tp = make_row(is_scheduled=True, price_open=110.0)
    assert validate_row(above_tp, 100.0, NO_LIMITS) == [
        "long: price_take_profit (110) must be > price_open (110)",
        "long scheduled: price_open (110) >= price_take_profit (110), closed at activation",
    ]


def test_scheduled_row_skips_immediate_checks() -> None:
    # cp 120 is past TP, but a scheduled row is judged by its price_open
    assert validate_row(make_row(is_scheduled=True), 120.0, LIMITS) == []


def test_long_take_profit_too_close() -> None:
    error = reject(long(price_open=100, price_take_profit=100.4))
    assert error.errors == ("long: take_profit too close to price_open (0.400%), minimum 0.5%",)
    assert str(error) == (
        "Invalid signal for long position:\n"
        "long: take_profit too close to price_open (0.400%), minimum 0.5%"
    )
    assert isinstance(error.signal, SignalRow) and error.signal.price_take_profit == 100.4


def test_long_stop_loss_too_close_and_too_far() -> None:
    assert lines(long(price_stop_loss=99.6)) == [
        "long: stop_loss too close to price_open (0.400%), minimum 0.5%",
    ]
    assert lines(long(price_stop_loss=79.9)) == [
        "long: stop_loss too far from price_open (20.100%), maximum 20%",
    ]


def test_distances_exactly_at_the_limits_are_accepted() -> None:
    row = build(long(price_take_profit=100.5, price_stop_loss=80), cp=100.0)
    assert (row.price_take_profit, row.price_stop_loss) == (100.5, 80.0)
    assert build(long(price_stop_loss=99.5), cp=100.0).price_stop_loss == 99.5
    row = build(short(price_take_profit=99.5, price_stop_loss=120), cp=100.0)
    assert (row.price_take_profit, row.price_stop_loss) == (99.5, 120.0)


def test_zero_limits_skip_their_rules() -> None:
    signal = long(price_take_profit=100.1, price_stop_loss=50, minute_estimated_time=100_000)
    assert lines(signal) == [
        "long: take_profit too close to price_open (0.100%), minimum 0.5%",
        "long: stop_loss too far from price_open (50.000%), maximum 20%",
        "minute_estimated_time too large (100000 minutes = 69.4 days), "
        "maximum 1440 minutes (1 days)",
    ]
    assert (
        build(long(price_stop_loss=99.9), limits=SignalLimits(0.5, 0, 20, 1440)).price_stop_loss
        == 99.9
    )
    assert build(signal, limits=NO_LIMITS).minute_estimated_time == 100_000


def test_short_mirrors_long() -> None:
    row = make_row(position="short", price_take_profit=100.0, price_stop_loss=100.0)
    assert validate_row(row, 101.0, NO_LIMITS) == [
        "short: price_take_profit (100) must be < price_open (100)",
        "short: price_stop_loss (100) must be > price_open (100)",
        "short immediate: current_price (101) >= price_stop_loss (100), stopped out at once",
    ]
    past_tp = make_row(position="short", price_take_profit=90.0, price_stop_loss=105.0)
    assert validate_row(past_tp, 90.0, NO_LIMITS) == [
        "short immediate: current_price (90) <= price_take_profit (90), profit already passed",
    ]
    assert lines(short(price_open=100, price_stop_loss=105), cp=105.0) == [
        "short immediate: current_price (105) >= price_stop_loss (105), stopped out at once",
    ]


def test_short_scheduled_price_open_outside_the_levels() -> None:
    above_sl = make_row(
        position="short",
        is_scheduled=True,
        price_open=106.0,
        price_take_profit=90.0,
        price_stop_loss=105.0,
    )
    assert validate_row(above_sl, 100.0, NO_LIMITS) == [
        "short: price_stop_loss (105) must be > price_open (106)",
        "short scheduled: price_open (106) >= price_stop_loss (105), cancelled at activation",
    ]
    below_tp = dataclasses.replace(above_sl, price_open=90.0)
    assert validate_row(below_tp, 100.0, NO_LIMITS) == [
        "short: price_take_profit (90) must be < price_open (90)",
        "short scheduled: price_open (90) <= price_take_profit (90), closed at activation",
    ]


def test_short_distances() -> None:
    assert lines(short(price_take_profit=99.6, price_stop_loss=100.4)) == [
        "short: take_profit too close to price_open (0.400%), minimum 0.5%",
        "short: stop_loss too close to price_open (0.400%), minimum 0.5%",
    ]
    assert lines(short(price_stop_loss=120.1)) == [
        "short: stop_loss too far from price_open (20.100%), maximum 20%",
    ]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        ("60", [
            "minute_estimated_time must be a number type, got '60' (str)",
            "minute_estimated_time must be an integer (whole number), got '60'",
            "minute_estimated_time must be a finite number, got '60'",
        ]),
        (True, [
            "minute_estimated_time must be a number type, got True (bool)",
            "minute_estimated_time must be an integer (whole number), got True",
            "minute_estimated_time must be a finite number, got True",
        ]),
        (0, ["minute_estimated_time must be positive, got 0"]),
        (-5.0, ["minute_estimated_time must be positive, got -5"]),
        (10.5, ["minute_estimated_time must be an integer (whole number), got 10.5"]),
        (NAN, [
            "minute_estimated_time must be an integer (whole number), got NaN",
            "minute_estimated_time must be a finite number, got NaN",
        ]),
        (INF, [
            "minute_estimated_time must be an integer (whole number), got Infinity",
            "minute_estimated_time must be a finite number, got Infinity",
            "minute_estimated_time too large (Infinity minutes = Infinity days), "
            "maximum 1440 minutes (1 days)",
        ]),
        (-INF, [
            "minute_estimated_time must be positive, got -Infinity",
            "minute_estimated_time must be an integer (whole number), got -Infinity",
            "minute_estimated_time must be a finite number, got -Infinity",
        ]),
        (2000, [
            "minute_estimated_time too large (2000 minutes = 1.4 days), "
            "maximum 1440 minutes (1 days)",
        ]),
    ],
)  # fmt: skip
def test_lifetime_rules(minutes: object, expected: list[str]) -> None:
    error = reject(long(minute_estimated_time=minutes))
    assert list(error.errors) == expected
    assert isinstance(error.signal, SignalRow)


def test_lifetime_exactly_at_the_maximum_is_accepted() -> None:
    assert build(long(minute_estimated_time=1440)).minute_estimated_time == 1440


def test_timestamp_rules() -> None:
    row = make_row(scheduled_at="t", pending_at=0)
    assert validate_row(row, 100.0, LIMITS) == [
        "scheduled_at must be a number type, got 't' (str)",
        "pending_at must be positive, got 0",
    ]


def test_all_lines_in_one_error_in_table_order() -> None:
    signal = long(price_take_profit=90, price_stop_loss=110, minute_estimated_time=10.5)
    error = reject(signal)
    expected = (
        "long: price_take_profit (90) must be > price_open (100)",
        "long: price_stop_loss (110) must be < price_open (100)",
        "long immediate: current_price (100) <= price_stop_loss (110), stopped out at once",
        "long immediate: current_price (100) >= price_take_profit (90), profit already passed",
        "long: take_profit too close to price_open (-10.000%), minimum 0.5%",
        "long: stop_loss too close to price_open (-10.000%), minimum 0.5%",
        "minute_estimated_time must be an integer (whole number), got 10.5",
    )
    assert error.errors == expected
    assert str(error) == "Invalid signal for long position:\n" + "\n".join(expected)
    assert isinstance(error.signal, SignalRow)
    assert error.signal.minute_estimated_time == 10.5


def test_valid_row_has_no_lines() -> None:
    assert validate_row(make_row(), 100.0, LIMITS) == []


# --- number formatting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (100.0, "100"),
        (100, "100"),
        (0.5, "0.5"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (-0.0, "0"),
        (NAN, "NaN"),
        (INF, "Infinity"),
        (-INF, "-Infinity"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1.5e16, "15000000000000000"),
        (2.0**60, "1152921504606847000"),
        (1e-7, "1e-7"),
        (1.23e-7, "1.23e-7"),
        (0.000001, "0.000001"),
        (123456.789, "123456.789"),
        (10**400, "Infinity"),
        (np.float64(2.5), "2.5"),
        (np.int64(7), "7"),
        (True, "True"),
        (None, "None"),
        ("x", "'x'"),
    ],
)
def test_format_js_number(value: object, text: str) -> None:
    assert format_js_number(value) == text


def test_distance_rounds_half_away_from_zero_like_to_fixed() -> None:
    # 0.0625 is exact in binary: JS toFixed(3) gives 0.063 where Python's format gives 0.062.
    row = make_row(price_open=100.0, price_take_profit=100.0625)
    assert validate_row(row, 100.0, LIMITS) == [
        "long: take_profit too close to price_open (0.063%), minimum 0.5%",
    ]
    assert (100.0625 - 100.0) / 100.0 * 100 == 0.0625
    assert f"{0.0625:.3f}" == "0.062"
