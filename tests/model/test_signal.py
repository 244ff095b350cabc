"""Tests for model/signal.py: Signal, SignalRow, to_plain, new_signal_id (10 §3, §4, §8)."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from backtest_kit.errors import PersistError, ValidationError
from backtest_kit.model.signal import Signal, SignalRow, new_signal_id, to_plain

WHEN = 1_704_067_200_000

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


def make_row(**overrides: object) -> SignalRow:
    values: dict[str, object] = {
        "id": "my-id",
        "position": "long",
        "price_open": 100.0,
        "price_take_profit": 110.0,
        "price_stop_loss": 95.0,
        "minute_estimated_time": 60,
        "note": "",
        "symbol": "BTCUSDT",
        "exchange_name": "ex",
        "strategy_name": "st",
        "scheduled_at": WHEN,
        "pending_at": WHEN,
        "is_scheduled": False,
    }
    values.update(overrides)
    return SignalRow(**values)  # type: ignore[arg-type]


# --- Signal -------------------------------------------------------------------------------


def test_signal_accepts_garbage_without_raising() -> None:
    s = Signal(position="up", price_take_profit="x", price_stop_loss=None, minute_estimated_time=-1)
    assert s.position == "up"
    assert s.price_open is None and s.note == "" and s.id is None


def test_signal_positional_order_and_defaults() -> None:
    s = Signal("long", 110, 95, 60)
    assert (s.position, s.price_take_profit, s.price_stop_loss, s.minute_estimated_time) == (
        "long",
        110,
        95,
        60,
    )
    assert (s.price_open, s.note, s.id) == (None, "", None)


def test_signal_to_dict_keys_and_json() -> None:
    s = Signal("short", 90.0, 105.0, 30, price_open=100.0, note="hi", id="a")
    d = s.to_dict()
    assert list(d) == [
        "position",
        "price_take_profit",
        "price_stop_loss",
        "minute_estimated_time",
        "price_open",
        "note",
        "id",
    ]
    assert json.loads(json.dumps(d)) == d
    assert Signal("long", 1, 2, 3).to_dict()["price_open"] is None


def test_signal_is_frozen_and_slotted() -> None:
    s = Signal("long", 110, 95, 60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.position = "short"  # type: ignore[misc]
    assert not hasattr(s, "__dict__")


# --- SignalRow ------------------------------------------------------------------------------


def test_signal_row_has_exactly_the_fifteen_fields_in_order() -> None:
    assert [f.name for f in dataclasses.fields(SignalRow)] == ROW_KEYS
    row = make_row()
    assert row.quantity is None and row.cost is None


def test_signal_row_is_frozen() -> None:
    row = make_row()
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.pending_at = 0  # type: ignore[misc]


def test_signal_row_to_dict_keys_and_json() -> None:
    row = make_row(quantity=0.5, cost=50.0)
    d = row.to_dict()
    assert list(d) == ROW_KEYS
    assert json.loads(json.dumps(d)) == d
    assert d["quantity"] == 0.5 and d["cost"] == 50.0
    plain = make_row().to_dict()
    assert plain["quantity"] is None and plain["cost"] is None


def test_market_order_row_creation_contract() -> None:
    # What the strategy client does for a market order at tick `when` with VWAP 101.5 (10 §4).
    vwap = 101.5
    row = make_row(id=new_signal_id(), price_open=vwap, scheduled_at=WHEN, pending_at=WHEN)
    assert row.price_open == vwap
    assert row.scheduled_at == row.pending_at == WHEN
    assert str(uuid.UUID(row.id)) == row.id


def test_user_id_kept_verbatim() -> None:
    assert make_row(id="my-id").id == "my-id"


def test_activation_copy_changes_only_pending_at_and_is_scheduled() -> None:
    scheduled = make_row(is_scheduled=True)
    active = dataclasses.replace(scheduled, pending_at=WHEN + 120_000, is_scheduled=False)
    assert active is not scheduled
    assert scheduled.is_scheduled and scheduled.pending_at == WHEN
    before, after = scheduled.to_dict(), active.to_dict()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"pending_at", "is_scheduled"}


def test_from_dict_round_trip() -> None:
    row = make_row(quantity=2.0, cost=200.0, note="x")
    assert SignalRow.from_dict(row.to_dict()) == row


def test_from_dict_camel_case_equals_snake_case() -> None:
    camel = {
        "id": "abc",
        "position": "short",
        "priceOpen": 100,
        "priceTakeProfit": 90,
        "priceStopLoss": 105.5,
        "minuteEstimatedTime": 120,
        "note": "n",
        "symbol": "ETHUSDT",
        "exchangeName": "binance",
        "strategyName": "st",
        "scheduledAt": WHEN,
        "pendingAt": WHEN + 60_000,
        "_isScheduled": False,
        "someStrayDtoKey": 1,
    }
    snake = {
        "id": "abc",
        "position": "short",
        "price_open": 100.0,
        "price_take_profit": 90.0,
        "price_stop_loss": 105.5,
        "minute_estimated_time": 120,
        "note": "n",
        "symbol": "ETHUSDT",
        "exchange_name": "binance",
        "strategy_name": "st",
        "scheduled_at": WHEN,
        "pending_at": WHEN + 60_000,
        "is_scheduled": False,
        "unknown": "ignored",
    }
    a, b = SignalRow.from_dict(camel), SignalRow.from_dict(snake)
    assert a == b
    assert type(a.price_open) is float and a.quantity is None and a.cost is None


def test_from_dict_integral_float_minutes_become_int() -> None:
    d = make_row().to_dict()
    d["minute_estimated_time"] = 60.0
    assert type(SignalRow.from_dict(d).minute_estimated_time) is int


def test_from_dict_missing_field_raises_persist_error() -> None:
    d = make_row().to_dict()
    del d["pending_at"]
    with pytest.raises(PersistError, match="pending_at"):
        SignalRow.from_dict(d)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("position", "up"),
        ("price_open", "100"),
        ("price_open", True),
        ("is_scheduled", "false"),
        ("scheduled_at", 1.5),
    ],
)
def test_from_dict_bad_value_raises_persist_error(key: str, value: object) -> None:
    d = make_row().to_dict()
    d[key] = value
    with pytest.raises(PersistError, match=key):
        SignalRow.from_dict(d)


# --- ids ----------------------------------------------------------------------------------


def test_new_signal_id_is_uuid4_string() -> None:
    a, b = new_signal_id(), new_signal_id()
    assert isinstance(a, str) and a != b
    assert uuid.UUID(a).version == 4 and str(uuid.UUID(a)) == a


# --- to_plain -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("**Buy** [here](http://x) `now`", "Buy here now"),
        ("# Title\n- a\n- b", "Title • a • b"),
        ("a_b_c", "abc"),
        (None, ""),
        ("", ""),
        ("plain text", "plain text"),
        ("before\n```\ncode\n```\nafter", "before after"),
        ("![alt](img.png) and [link](u)", "alt and link"),
        ("***x*** **y** *z* ___u___ __v__ ~~w~~", "x y z u v w"),
        ("1. one\n2. two", "• one • two"),
        ("> quoted", "quoted"),
        ("a\n\n---\n\nb", "a b"),
        ("<b>bold</b>  \t spaced", "bold spaced"),
        ("  line1\n\n\n  line2  ", "line1 line2"),
    ],
)
def test_to_plain(note: str | None, expected: str) -> None:
    assert to_plain(note) == expected


def test_to_plain_rejects_non_string() -> None:
    with pytest.raises(ValidationError):
        to_plain(42)  # type: ignore[arg-type]
