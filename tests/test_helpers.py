"""Tests for helpers.py and context.py: the context-aware helpers inside and outside runs,
`has_trade_context`, and `dump_signal` (50 §9-§10, 00-api §5, 95 §7)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.context import ExecutionContext, MethodContext
from backtest_kit.intervals import datetime_to_ms

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
SYMBOL = "BTCUSDT"


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


def price(t: int) -> float:
    return 100.0 + (t - T0) // M * 0.01


class Source:
    """Flat candles (o = h = l = c) whose price rises 0.01 a minute; records the symbols."""

    def __init__(self) -> None:
        self.symbols: list[str] = []

    def __call__(self, symbol: str, interval: str, since: datetime, limit: int) -> Any:
        self.symbols.append(symbol)
        start = datetime_to_ms(since)
        step = bk.INTERVAL_MS[interval]
        base = 0.0 if symbol == SYMBOL else 1000.0
        rows = []
        for k in range(limit):
            t = start + k * step
            p = base + price(t)
            rows.append((t, p, p, p, p, 1.0))
        return rows


def setup_run(get_signal: Any, *, end_minutes: int = 10, **frame_kwargs: Any) -> Source:
    source = Source()
    bk.add_exchange("ex", source)
    bk.add_strategy("s", "1m", get_signal)
    bk.add_frame("f", "1m", T0 + 10 * M, T0 + (10 + end_minutes) * M, **frame_kwargs)
    return source


def backtest() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, strategy_name="s", exchange_name="ex", frame_name="f")


# -- outside any run ------------------------------------------------------------------------


def test_candle_helpers_need_an_execution_context() -> None:
    bk.add_exchange("ex", Source())
    with pytest.raises(bk.BacktestKitError, match=r"get_candles\(\) needs an execution context"):
        asyncio.run(bk.get_candles(SYMBOL, "1m", 5))
    with pytest.raises(
        bk.BacktestKitError, match=r"get_average_price\(\) needs an execution context"
    ):
        asyncio.run(bk.get_average_price(SYMBOL))


def test_time_helpers_need_an_execution_context() -> None:
    with pytest.raises(bk.BacktestKitError, match=r"get_date\(\) needs an execution context"):
        bk.get_date()
    with pytest.raises(bk.BacktestKitError, match=r"get_mode\(\) needs an execution context"):
        bk.get_mode()


def test_formatters_need_a_method_context() -> None:
    bk.add_exchange("ex", Source())
    with pytest.raises(bk.BacktestKitError, match=r"format_price\(\) needs a method context"):
        asyncio.run(bk.format_price(SYMBOL, 1.0))
    with pytest.raises(bk.BacktestKitError, match=r"format_quantity\(\) needs a method context"):
        asyncio.run(bk.format_quantity(SYMBOL, 1.0))


def test_the_error_tells_where_to_call_the_helper() -> None:
    with pytest.raises(bk.BacktestKitError) as info:
        bk.get_date()
    assert "get_signal" in str(info.value)


def test_has_trade_context_is_false_outside_runs() -> None:
    assert bk.has_trade_context() is False


def test_contexts_are_frozen_records() -> None:
    ctx = ExecutionContext(SYMBOL, T0, True)
    assert ctx.to_dict() == {"symbol": SYMBOL, "when": T0, "backtest": True}
    method = MethodContext("s", "ex", "f")
    assert method.to_dict() == {"exchange_name": "ex", "strategy_name": "s", "frame_name": "f"}
    with pytest.raises(AttributeError):
        ctx.when = 0  # type: ignore[misc]


# -- inside get_signal ----------------------------------------------------------------------


def test_helpers_inside_get_signal_see_the_tick() -> None:
    seen: list[dict[str, Any]] = []

    async def get_signal(symbol: str, when: datetime) -> None:
        candles = await bk.get_candles(symbol, "1m", 3)
        seen.append(
            {
                "when": when,
                "date": bk.get_date(),
                "mode": bk.get_mode(),
                "trade": bk.has_trade_context(),
                "candles": [int(t) for t in candles.timestamp],
                "vwap": await bk.get_average_price(symbol),
                "five": [int(t) for t in (await bk.get_candles(symbol, "5m", 2)).timestamp],
                "price": await bk.format_price(symbol, 1234.56789),
                "quantity": await bk.format_quantity(symbol, 0.000123456789),
            }
        )

    setup_run(get_signal, end_minutes=3)
    assert backtest() == []
    assert [row["when"] for row in seen] == [
        datetime(2024, 1, 1, 0, m, tzinfo=UTC) for m in (10, 11, 12, 13)
    ]
    for row in seen:
        w = datetime_to_ms(row["when"])
        assert row["date"] == row["when"] and row["date"].tzinfo is not None
        assert row["mode"] == "backtest"
        assert row["trade"] is True
        assert row["candles"] == [w - 3 * M, w - 2 * M, w - M]
        expected = sum(price(w - k * M) for k in range(1, 6)) / 5
        assert row["vwap"] == pytest.approx(expected, abs=1e-12)
        forming = w - w % (5 * M)
        assert row["five"] == [forming - 10 * M, forming - 5 * M]
        assert row["price"] == "1234.56789000"
        assert row["quantity"] == "0.00012346"


def test_helpers_read_another_symbol_at_the_same_instant() -> None:
    seen: list[float] = []

    async def get_signal(symbol: str, when: datetime) -> None:
        candles = await bk.get_candles("ETHUSDT", "1m", 1)
        seen.append(float(candles.close[0]))
        seen.append(await bk.get_average_price("ETHUSDT"))

    source = setup_run(get_signal, end_minutes=0)
    backtest()
    assert "ETHUSDT" in source.symbols
    assert seen[0] == 1000.0 + price(T0 + 9 * M)
    assert seen[1] == pytest.approx(1000.0 + sum(price(T0 + k * M) for k in range(5, 10)) / 5)


def test_invalid_helper_arguments_are_validation_errors() -> None:
    errors: list[Exception] = []

    async def get_signal(symbol: str, when: datetime) -> None:
        for call in (
            lambda: bk.get_candles(symbol, "7m", 5),
            lambda: bk.get_candles(symbol, "1m", 0),
            lambda: bk.format_price(symbol, float("nan")),
            lambda: bk.format_quantity(symbol, float("inf")),
        ):
            try:
                await call()
            except Exception as exc:
                errors.append(exc)

    setup_run(get_signal, end_minutes=0)
    backtest()
    assert len(errors) == 4
    assert all(isinstance(e, bk.ValidationError) for e in errors)


def test_listeners_during_a_tick_see_its_execution_context() -> None:
    dates: list[tuple[str, datetime]] = []
    opened_at: list[datetime] = []

    def get_signal(symbol: str, when: datetime) -> Any:
        if when.minute != 10:
            return None
        opened_at.append(when)
        return bk.Signal("long", 110.0, 95.0, 5)

    setup_run(get_signal, end_minutes=20)
    bk.listen_signal_backtest(lambda r: dates.append((r.action, bk.get_date())))
    results = backtest()
    assert [r.action for r in results] == ["closed"]
    assert results[0].close_reason == "time_expired"
    opened = [d for a, d in dates if a == "opened"]
    closed = [d for a, d in dates if a == "closed"]
    assert opened == opened_at
    assert closed == opened_at  # the fast-forward runs in the opening tick's context


def test_format_price_works_in_on_timeframe_but_get_candles_does_not() -> None:
    seen: dict[str, Any] = {}

    async def on_timeframe(*args: Any) -> None:
        seen["price"] = await bk.format_price(SYMBOL, 1.5)
        seen["trade"] = bk.has_trade_context()
        try:
            await bk.get_candles(SYMBOL, "1m", 5)
        except bk.BacktestKitError as exc:
            seen["candles"] = str(exc)
        try:
            bk.get_date()
        except bk.BacktestKitError as exc:
            seen["date"] = str(exc)

    source = Source()
    bk.add_exchange("ex", source, format_price=lambda symbol, p: f"{symbol}={p:.1f}")
    bk.add_strategy("s", "1m", lambda symbol, when: None)
    bk.add_frame("f", "1m", T0 + 10 * M, T0 + 12 * M, callbacks={"on_timeframe": on_timeframe})
    backtest()
    assert seen["price"] == "BTCUSDT=1.5"
    assert seen["trade"] is False
    assert "needs an execution context" in seen["candles"]
    assert "needs an execution context" in seen["date"]


def test_the_consumer_loop_body_sees_no_run_context() -> None:
    def get_signal(symbol: str, when: datetime) -> Any:
        if when.minute in (10, 20):
            return bk.Signal("long", 110.0, 95.0, 3)
        return None

    setup_run(get_signal, end_minutes=20)
    body: list[tuple[bool, str]] = []

    async def consume() -> None:
        async for _result in bk.Backtest.run(
            SYMBOL, strategy_name="s", exchange_name="ex", frame_name="f"
        ):
            trade = bk.has_trade_context()
            try:
                await bk.format_price(SYMBOL, 1.0)
                outcome = "method context leaked"
            except bk.BacktestKitError as exc:
                outcome = str(exc)
            body.append((trade, outcome))
        assert bk.has_trade_context() is False

    asyncio.run(consume())
    assert len(body) == 2
    for trade, outcome in body:
        assert trade is False
        assert "needs a method context" in outcome
    with pytest.raises(bk.BacktestKitError):
        bk.get_date()


# -- dump_signal (95 §7) --------------------------------------------------------------------


MESSAGES = [
    {"role": "system", "content": "You are a trader."},
    {"role": "system", "content": "Answer in JSON."},
    {"role": "user", "content": "BTCUSDT 1h candles: ..."},
    {"role": "assistant", "content": "1h trend analysed."},
    {"role": "user", "content": "Produce a signal."},
]


def test_dump_signal_writes_the_folder_layout(tmp_path: Path) -> None:
    signal = bk.Signal("long", 110.0, 95.0, 60, price_open=100.0, note="breakout")
    asyncio.run(bk.dump_signal("abc123", MESSAGES, signal, output_dir=tmp_path))
    folder = tmp_path / "abc123"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00_system_prompt.md",
        "01_user_message.md",
        "02_user_message.md",
        "03_llm_output.md",
    ]
    system = (folder / "00_system_prompt.md").read_text(encoding="utf-8")
    assert "Outline Result Summary" in system
    assert "abc123" in system
    assert "You are a trader." in system and "Answer in JSON." in system
    assert system.index("You are a trader.") < system.index("Answer in JSON.")
    block = system.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == signal.to_dict()
    assert '\n  "position": "long"' in block  # 2-space indent
    first = (folder / "01_user_message.md").read_text(encoding="utf-8")
    assert "User Input 1" in first and "BTCUSDT 1h candles: ..." in first and "abc123" in first
    second = (folder / "02_user_message.md").read_text(encoding="utf-8")
    assert "User Input 2" in second and "Produce a signal." in second
    assert "1h trend analysed." not in first + second + system
    output = (folder / "03_llm_output.md").read_text(encoding="utf-8")
    assert "Full Outline Result" in output and "abc123" in output
    assert json.loads(output.split("```json\n", 1)[1].split("\n```", 1)[0]) == signal.to_dict()


def test_dump_signal_accepts_a_dict_and_skips_an_existing_folder(tmp_path: Path) -> None:
    result = {"position": "short", "price_take_profit": 90.0}
    asyncio.run(bk.dump_signal("id1", MESSAGES[2:3], result, output_dir=str(tmp_path)))
    folder = tmp_path / "id1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00_system_prompt.md",
        "01_user_message.md",
        "02_llm_output.md",
    ]
    before = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
    asyncio.run(bk.dump_signal("id1", MESSAGES, {"position": "long"}, output_dir=tmp_path))
    after = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
    assert after == before


def test_dump_signal_needs_no_context_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dump"
    asyncio.run(bk.dump_signal("x", [], None, output_dir=target))
    assert sorted(p.name for p in (target / "x").iterdir()) == [
        "00_system_prompt.md",
        "01_llm_output.md",
    ]
