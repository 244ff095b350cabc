"""Tests for schema.py: `add_exchange`, `add_strategy`, `add_frame` dates, `list_*` and
`bk.reset()` (20 §1.1, 50 §1, 30 §1, 00-api §1 and §3, 02 §4)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.engine.backtest import exchange_client

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
DAY = 86_400_000


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


def source(symbol: str, interval: str, since: datetime, limit: int) -> list[list[float]]:
    start = int(since.timestamp() * 1000)
    step = bk.INTERVAL_MS[interval]
    return [[start + k * step, 100.0, 100.5, 99.5, 100.0, 1.0] for k in range(limit)]


def no_signal(symbol: str, when: datetime) -> None:
    return None


# -- add_exchange (50 §1) -------------------------------------------------------------------


def test_add_exchange_returns_the_frozen_schema_with_none_formatters() -> None:
    schema = bk.add_exchange("ex", source, note="csv files")
    assert isinstance(schema, bk.ExchangeSchema)
    assert schema.exchange_name == "ex"
    assert schema.get_candles is source
    assert schema.format_price is None and schema.format_quantity is None
    assert schema.note == "csv files"
    assert schema.callbacks == bk.ExchangeCallbacks()
    assert bk.list_exchanges() == [schema]
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.note = "x"  # type: ignore[misc]


def test_exchange_callbacks_as_dict_or_record() -> None:
    def on_candle_data(*args: Any) -> None:
        return None

    a = bk.add_exchange("a", source, callbacks={"on_candle_data": on_candle_data})
    b = bk.add_exchange("b", source, callbacks=bk.ExchangeCallbacks(on_candle_data=on_candle_data))
    assert a.callbacks == b.callbacks == bk.ExchangeCallbacks(on_candle_data=on_candle_data)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"exchange_name": ""}, bk.ValidationError, "exchange_name"),
        ({"exchange_name": None}, bk.ValidationError, "exchange_name"),
        ({"exchange_name": 3}, bk.ValidationError, "exchange_name"),
        ({"get_candles": None}, bk.ValidationError, "get_candles"),
        ({"get_candles": "binance"}, bk.ValidationError, "get_candles"),
        ({"format_price": 2}, bk.ValidationError, "format_price"),
        ({"format_quantity": "8"}, bk.ValidationError, "format_quantity"),
        ({"note": None}, bk.ValidationError, "note"),
        ({"callbacks": {"on_candle_data": 1}}, bk.ValidationError, "on_candle_data"),
        ({"callbacks": bk.ExchangeCallbacks(on_candle_data=1)}, bk.ValidationError, "on_candle"),
        ({"callbacks": {"on_candles": print}}, bk.ValidationError, "on_candles"),
        ({"callbacks": [print]}, bk.ValidationError, "callbacks"),
    ],
)
def test_invalid_exchange_raises_and_registers_nothing(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    args: dict[str, Any] = {"exchange_name": "ex", "get_candles": source}
    args.update(kwargs)
    with pytest.raises(error, match=fragment):
        bk.add_exchange(**args)
    assert bk.list_exchanges() == []
    assert bk.add_exchange("ex", source).exchange_name == "ex"


def test_duplicate_exchange_is_a_registry_error_and_keeps_the_first() -> None:
    first = bk.add_exchange("ex", source)
    with pytest.raises(bk.RegistryError, match="'ex'"):
        bk.add_exchange("ex", lambda *a: [])
    assert bk.list_exchanges() == [first]


def test_registry_errors_are_backtest_kit_errors() -> None:
    bk.add_exchange("ex", source)
    with pytest.raises(bk.BacktestKitError):
        bk.add_exchange("ex", source)
    with pytest.raises(bk.BacktestKitError):
        bk.add_exchange("", source)


# -- add_strategy (20 §1.1) -----------------------------------------------------------------


STRATEGY_RULES = [
    ({"strategy_name": ""}, "strategy_name"),
    ({"strategy_name": None}, "strategy_name"),
    ({"risk_name": ""}, "risk_name"),
    ({"risk_name": 5}, "risk_name"),
    ({"risk_list": "r1"}, "risk_list"),
    ({"risk_list": ["r1", 2]}, "risk_list"),
    ({"risk_list": ["r1", ""]}, "risk_list"),
    ({"risk_list": ["r1", "r2", "r1"]}, "duplicate"),
    ({"interval": "2h"}, "interval"),
    ({"interval": "7m"}, "interval"),
    ({"interval": None}, "interval"),
    ({"get_signal": None}, "get_signal"),
    ({"get_signal": "buy"}, "get_signal"),
    ({"callbacks": {"on_opne": print}}, "on_opne"),
    ({"callbacks": {"on_open": 3}}, "on_open"),
    ({"callbacks": bk.StrategyCallbacks(on_close="x")}, "on_close"),
    ({"callbacks": "on_open"}, "callbacks"),
    ({"note": 1}, "note"),
    ({"sizing_name": ""}, "sizing_name"),
    ({"sizing_name": 3}, "sizing_name"),
]


@pytest.mark.parametrize(("kwargs", "fragment"), STRATEGY_RULES)
def test_invalid_strategy_raises_and_registers_nothing(
    kwargs: dict[str, Any], fragment: str
) -> None:
    args: dict[str, Any] = {"strategy_name": "s", "interval": "5m", "get_signal": no_signal}
    args.update(kwargs)
    with pytest.raises(bk.ValidationError, match=fragment):
        bk.add_strategy(**args)
    assert bk.list_strategies() == []
    schema = bk.add_strategy("s", "5m", no_signal)
    assert bk.list_strategies() == [schema]


def test_duplicate_name_is_checked_before_the_shape() -> None:
    bk.add_strategy("s", "5m", no_signal)
    with pytest.raises(bk.RegistryError, match="'s'"):
        bk.add_strategy("s", "2h", None)  # type: ignore[arg-type]
    assert len(bk.list_strategies()) == 1


def test_strategy_rules_apply_in_table_order() -> None:
    with pytest.raises(bk.ValidationError, match="risk_name"):
        bk.add_strategy("s", "2h", None, risk_name="")  # type: ignore[arg-type]
    with pytest.raises(bk.ValidationError, match="interval"):
        bk.add_strategy("s", "2h", None)  # type: ignore[arg-type]
    with pytest.raises(bk.ValidationError, match="get_signal"):
        bk.add_strategy("s", "5m", None, note=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", bk.STRATEGY_INTERVALS)
def test_every_strategy_interval_is_accepted(interval: str) -> None:
    assert bk.add_strategy("s", interval, no_signal).interval == interval


def test_strategy_schema_fields() -> None:
    async def on_open(*args: Any) -> None:
        return None

    schema = bk.add_strategy(
        "s",
        "15m",
        no_signal,
        risk_name="r0",
        risk_list=["r1", "r2"],
        sizing_name="fixed",
        note="doc",
        callbacks={"on_open": on_open, "on_close": None},
    )
    assert schema.risk_list == ("r1", "r2")
    assert schema.risk_name == "r0" and schema.sizing_name == "fixed" and schema.note == "doc"
    assert schema.callbacks == bk.StrategyCallbacks(on_open=on_open)
    assert schema.risk_names() == ("r0", "r1", "r2")
    # risk and sizing profiles need not exist at registration
    assert bk.list_strategies() == [schema]


# -- add_frame dates (00-api §1) ------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        T0,
        float(T0),
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T03:00:00+03:00",
        "2023-12-31T19:00:00-05:00",
        datetime(2024, 1, 1),  # naive = UTC
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    ],
    ids=repr,
)
def test_frame_dates_in_every_accepted_form(start: object) -> None:
    frame = bk.add_frame("f", "1m", start, "2024-01-02T00:00:00Z")
    assert frame.start_date == T0
    assert isinstance(frame.start_date, int)
    assert frame.end_date == T0 + DAY


def test_naive_datetime_is_utc_not_local_time() -> None:
    frame = bk.add_frame("f", "1m", datetime(2024, 1, 1, 12, 30), datetime(2024, 1, 1, 13))
    assert frame.start_date == T0 + 12 * 3_600_000 + 30 * M


# -- list_* and reset -----------------------------------------------------------------------


def test_list_functions_keep_registration_order() -> None:
    for name in ("c", "a", "b"):
        bk.add_exchange(name, source)
        bk.add_strategy(name, "1m", no_signal)
        bk.add_frame(name, "1m", T0, T0 + M)
    assert [s.exchange_name for s in bk.list_exchanges()] == ["c", "a", "b"]
    assert [s.strategy_name for s in bk.list_strategies()] == ["c", "a", "b"]
    assert [s.frame_name for s in bk.list_frames()] == ["c", "a", "b"]


def test_list_returns_a_copy() -> None:
    bk.add_exchange("ex", source)
    listed = bk.list_exchanges()
    listed.clear()
    assert len(bk.list_exchanges()) == 1


def test_reset_forgets_every_registration_setting_listener_and_cache() -> None:
    calls: list[int] = []

    def counting(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        calls.append(limit)
        return source(symbol, interval, since, limit)

    seen: list[Any] = []
    schema = bk.add_exchange("ex", counting)
    bk.add_strategy("s", "1m", no_signal)
    bk.add_frame("f", "1m", T0, T0 + 10 * M)
    bk.set_config(CC_AVG_PRICE_CANDLES_COUNT=3)
    bk.listen_error(seen.append)
    runtime = bk.runtime.current()
    asyncio.run(exchange_client(runtime, schema, backtest=True).vwap("BTCUSDT", T0 + 10 * M))
    bk.Backtest.run_sync("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="f")
    assert runtime.frame_times and calls

    bk.reset()

    assert bk.list_exchanges() == [] and bk.list_strategies() == [] and bk.list_frames() == []
    assert bk.get_config().CC_AVG_PRICE_CANDLES_COUNT == 5
    fresh = bk.runtime.current()
    assert fresh is not runtime
    assert fresh.frame_times == {} and fresh.exchange_clients == {}
    asyncio.run(fresh.bus.emit("error", RuntimeError("after reset")))
    assert seen == []
    # the same names register again; the candle store starts empty
    calls.clear()
    schema = bk.add_exchange("ex", counting)
    bk.add_strategy("s", "1m", no_signal)
    bk.add_frame("f", "1m", T0, T0 + 10 * M)
    asyncio.run(exchange_client(fresh, schema, backtest=True).vwap("BTCUSDT", T0 + 10 * M))
    assert len(calls) == 1


def test_run_needs_registered_names() -> None:
    bk.add_exchange("ex", source)
    bk.add_frame("f", "1m", T0, T0 + 10 * M)
    with pytest.raises(bk.RegistryError, match="'missing'"):
        bk.Backtest.run_sync("BTCUSDT", strategy_name="missing", exchange_name="ex", frame_name="f")
