"""Tests for data/exchange_ccxt.py: `add_ccxt_exchange` with the real `ccxt.binance` class
against the Binance-shaped server on 127.0.0.1 (binance_stub.py): paging, gaps, rate limits,
the market's precision, unknown symbols, instance life cycle, and a live run on a simulated
clock that trades exactly like the same candles served by a plain function."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from binance_stub import M, Stub, StubServer

import backtest_kit as bk
from backtest_kit.core.exchange import wall_clock_ms
from backtest_kit.data.exchange_ccxt import ccxt_source

MARCH = 1_709_251_200_000  # 2024-03-01T00:00Z
PRECISION = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
]


@pytest.fixture(autouse=True)
def _fresh_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    monkeypatch.chdir(tmp_path)


def wave_rows(minutes: int, gaps: tuple[tuple[int, int], ...] = ()) -> list[list[Any]]:
    """Binance kline rows (strings, twelve fields) of a 4-hour sine wave of ±3 % around 100,
    so that take profits and stop losses of 1 % are hit."""
    rows: list[list[Any]] = []
    for k in range(minutes):
        if any(a <= k < b for a, b in gaps):
            continue
        t = MARCH + k * M
        o = 100 * (1 + 0.03 * math.sin(2 * math.pi * k / 240))
        c = 100 * (1 + 0.03 * math.sin(2 * math.pi * (k + 1) / 240))
        values = (o, max(o, c) * 1.0005, min(o, c) * 0.9995, c, 10 + k % 7)
        rows.append([t, *(f"{x:.8f}" for x in values), t + M - 1, "0", 10, "0", "0", "0"])
    return rows


def served(rows: list[list[Any]]) -> list[list[Any]]:
    """What ccxt makes of the rows: int times and floats."""
    return [[int(r[0]), *(float(x) for x in r[1:6])] for r in rows]


def register(server: StubServer, name: str = "bn", **kw: Any) -> bk.ExchangeSchema:
    kw.setdefault("retry_delay", 0.01)
    return bk.data.add_ccxt_exchange(name, "binance", ccxt_config=server.ccxt_config(), **kw)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def run(coro: Any) -> Any:
    async def guarded() -> Any:
        try:
            return await asyncio.wait_for(coro, 20)
        finally:
            await bk.data.close_ccxt_exchanges()

    return asyncio.run(guarded())


def test_candles_are_paged_across_page_limits_gaps_and_repeats() -> None:
    # 3600 minutes; minutes 1000..2099 missing (a whole page of nothing); one candle repeated
    rows = wave_rows(3600, gaps=((1000, 2100),))
    stub = Stub({"BTCUSDT": rows}, repeated={MARCH + 2500 * M})
    with StubServer(stub) as server:
        schema = register(server)
        got = run(schema.get_candles("BTC/USDT", "1m", at(MARCH), 3600))
    assert got == served(rows)  # every candle once, oldest first, the gap left out
    klines = stub.klines()
    asked = [(int(r.query["startTime"]), int(r.query["limit"])) for r in klines]
    assert asked == [
        (MARCH, 1000),
        (MARCH + 1000 * M, 1000),  # answered with nothing: the next window starts after it
        (MARCH + 2000 * M, 1000),
        (MARCH + 3000 * M, 600),  # no more than the range asks for
    ]
    assert [r.rows for r in klines] == [1000, 0, 901, 600]  # 900 candles and the repeat


def test_candles_stop_at_the_range_the_data_and_the_wall_clock() -> None:
    rows = wave_rows(100)
    stub = Stub({"BTCUSDT": rows})
    with StubServer(stub) as server:
        schema = register(server)
        middle = run(schema.get_candles("BTCUSDT", "1m", at(MARCH + 10 * M), 5))
        past_the_end = run(schema.get_candles("BTCUSDT", "1m", at(MARCH + 90 * M), 50))
        stub.requests.clear()
        now = wall_clock_ms()
        recent = run(schema.get_candles("BTCUSDT", "1m", at(now - now % M - 3 * M), 10))
    assert middle == served(rows[10:15])
    assert past_the_end == served(rows[90:])
    assert recent == []
    # only the three slots that have closed at the wall clock are asked for
    assert [int(r.query["limit"]) for r in stub.klines()] == [3]


def test_a_rate_limit_answer_is_retried_and_a_lasting_one_reported() -> None:
    rows = wave_rows(2500)
    stub = Stub({"BTCUSDT": rows}, rate_limited={2}, always_limited={"ETHUSDT"})
    with StubServer(stub) as server:
        schema = register(server, attempts=3)
        got = run(schema.get_candles("BTC/USDT", "1m", at(MARCH), 2500))
        assert got == served(rows)
        statuses = [(r.status, r.query["startTime"]) for r in stub.klines()]
        assert statuses == [
            (200, str(MARCH)),
            (429, str(MARCH + 1000 * M)),
            (200, str(MARCH + 1000 * M)),  # the same page again
            (200, str(MARCH + 2000 * M)),
        ]
        with pytest.raises(bk.ExchangeError, match="429 Too Many Requests") as caught:
            run(schema.get_candles("ETH/USDT", "1m", at(MARCH), 10))
    assert "fetch_ohlcv('ETH/USDT', '1m', since=2024-03-01T00:00:00Z, limit=10)" in str(
        caught.value
    )
    assert [r.status for r in stub.klines()[4:]] == [429, 429, 429]  # `attempts` tries


def test_prices_and_quantities_use_the_market_precision() -> None:
    stub = Stub(
        {"BTCUSDT": wave_rows(10), "ETHUSDT": wave_rows(10)}, filters={"BTCUSDT": PRECISION}
    )
    with StubServer(stub) as server:
        schema = register(server)
        assert schema.format_price is not None and schema.format_quantity is not None

        async def formats() -> list[str]:
            return [
                await schema.format_price("BTC/USDT", 40123.456789),
                await schema.format_price("BTCUSDT", 40123.4),
                await schema.format_quantity("BTC/USDT", 0.123456789),  # truncated, not rounded
                await schema.format_quantity("BTCUSDT", 2.0),
                await schema.format_price("ETH/USDT", 3000.123456789),  # no precision listed
            ]

        assert run(formats()) == ["40123.46", "40123.4", "0.12345", "2", "3000.12345679"]
        with pytest.raises(bk.ExchangeError, match="cannot format 1e-06 for BTC/USDT"):
            run(schema.format_quantity("BTC/USDT", 0.000001))
    markets = [r for r in stub.requests if r.path.endswith("/exchangeInfo")]
    assert len(markets) == 1  # loaded once, across event loops too


def test_an_unknown_symbol_is_named_with_the_nearest_markets() -> None:
    stub = Stub({"BTCUSDT": wave_rows(10)})
    with StubServer(stub) as server:
        schema = register(server)
        with pytest.raises(bk.ExchangeError) as caught:
            run(schema.get_candles("BTC/USDX", "1m", at(MARCH), 5))
        assert str(caught.value) == (
            "exchange 'bn': ccxt binance has no market 'BTC/USDX' (2 markets, e.g. "
            "BTC/USDT, FOO/USDT); did you mean 'BTC/USDT', 'BTCUSDT'?"
        )
        # listed by the exchange, refused by its candles endpoint: reported at once
        with pytest.raises(bk.ExchangeError, match=r"fetch_ohlcv\('FOO/USDT'.*BadSymbol"):
            run(schema.get_candles("FOO/USDT", "1m", at(MARCH), 5))
        assert [r.status for r in stub.klines()] == [400]
        with pytest.raises(bk.BacktestKitError, match="unknown ccxt exchange id 'binanse'"):
            bk.data.add_ccxt_exchange("typo", "binanse")
        with pytest.raises(bk.ValidationError, match="ccxt_config must be a dict, got list"):
            bk.data.add_ccxt_exchange("odd", "binance", ccxt_config=["rateLimit", 1])  # type: ignore[arg-type]
    assert [s.exchange_name for s in bk.list_exchanges()] == ["bn"]


def test_one_instance_per_event_loop_closed_when_done() -> None:
    stub = Stub({"BTCUSDT": wave_rows(10)})
    with StubServer(stub) as server:
        schema = register(server)
        source = ccxt_source(schema)
        assert source is not None

        async def twice() -> tuple[Any, Any]:
            await schema.get_candles("BTCUSDT", "1m", at(MARCH), 2)
            first = source.exchange
            assert first.session is not None
            await bk.data.close_ccxt_exchanges()
            assert first.session is None
            await schema.get_candles("BTCUSDT", "1m", at(MARCH), 2)  # opened again
            return first, source.exchange

        first, second = run(twice())
        assert first is not second and second.session is None
        # without close_ccxt_exchanges the instance is closed when asyncio.run ends
        asyncio.run(schema.get_candles("BTCUSDT", "1m", at(MARCH), 2))
        assert source.exchange is not second and source.exchange.session is None
    assert len([r for r in stub.requests if r.path.endswith("/exchangeInfo")]) == 1


# -- a live run ---------------------------------------------------------------------------------


async def wave_signal(symbol: str, when: datetime) -> bk.Signal | None:
    """Long every 15 minutes: 1 % take profit and stop loss, an hour at most; the note is
    the last close formatted by the exchange."""
    if when.minute % 15:
        return None
    last = float((await bk.get_candles(symbol, "1m", 1)).close[-1])
    return bk.Signal(
        id=f"wave-{when:%H%M}",
        position="long",
        price_take_profit=last * 1.01,
        price_stop_loss=last * 0.99,
        minute_estimated_time=60,
        note=await bk.format_price(symbol, last),
    )


def test_a_live_run_on_a_simulated_clock_trades_like_the_same_candles_served_directly() -> None:
    rows = wave_rows(8 * 60)
    stub = Stub({"BTCUSDT": rows}, filters={"BTCUSDT": PRECISION})
    candles = served(rows)

    def direct(symbol: str, interval: str, since: datetime, limit: int) -> list[list[Any]]:
        lo = int(since.timestamp() * 1000)
        return [c for c in candles if lo <= c[0] <= lo + (limit - 1) * M]

    bk.add_exchange("direct", get_candles=direct)
    bk.add_strategy("wave-ccxt", "1m", wave_signal)
    bk.add_strategy("wave-direct", "1m", wave_signal)

    def live(strategy: str, exchange: str) -> list[Any]:
        clock = bk.SimulatedClock(MARCH + 60 * M, end=MARCH + 7 * 60 * M)
        return bk.Live.run_sync(
            "BTCUSDT", strategy_name=strategy, exchange_name=exchange, clock=clock
        )

    with StubServer(stub) as server:
        register(server)
        on_ccxt = live("wave-ccxt", "bn")
    on_direct = live("wave-direct", "direct")

    closed = [r for r in on_ccxt if r.action == "closed"]
    assert len(closed) >= 8
    assert {r.close_reason for r in closed} >= {"take_profit", "stop_loss"}

    def comparable(result: Any) -> dict[str, Any]:
        data = result.to_dict()
        for key in ("strategy_name", "exchange_name"):
            data.pop(key)
            data["signal"].pop(key)
        data["signal"].pop("note")
        return data

    assert [comparable(r) for r in on_ccxt] == [comparable(r) for r in on_direct]
    # the note was formatted by the exchange: the market's tick size 0.01, vs the default 8
    assert all(len(r.signal.note.partition(".")[2]) <= 2 for r in on_ccxt)
    assert all(len(r.signal.note.partition(".")[2]) == 8 for r in on_direct)
    stored = json.loads(Path("dump/data/signal/BTCUSDT_wave-ccxt/BTCUSDT.json").read_text())
    last = on_ccxt[-1]
    assert stored["phase"] == ("open" if last.action == "opened" else None)
