"""Backtest edges around the frame: a frame clamped to nothing still finishes at 1.0."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import backtest_kit as bk


@pytest.fixture(autouse=True)
def fresh_runtime() -> None:
    bk.reset()


def test_frame_in_the_future_has_no_ticks_and_finishes_at_one() -> None:
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    calls: list[datetime] = []

    def get_signal(symbol: str, when: datetime) -> None:
        calls.append(when)

    bk.data.add_sample_exchange("sample")
    bk.add_strategy("s", "1m", get_signal)
    bk.add_frame("future", "1m", tomorrow, tomorrow + timedelta(hours=1))
    progress: list[tuple[int, int, float]] = []
    done: list[Any] = []
    bk.listen_backtest_progress(
        lambda p: progress.append((p.processed_frames, p.total_frames, p.progress))
    )
    bk.listen_done_backtest(done.append)

    async def main() -> None:
        cancel = bk.Backtest.background(
            "BTCUSDT", strategy_name="s", exchange_name="sample", frame_name="future"
        )
        await cancel.task

    asyncio.run(main())
    assert calls == []
    assert progress == [(0, 0, 1.0)]
    assert [d.stopped for d in done] == [False]


def test_a_stop_during_the_forward_fetch_drops_the_scheduled_signal_silently() -> None:
    from support import SYMBOL, Market, ms

    bk.runtime.current().extensions["read_ahead"] = False  # every fetch reaches the source
    market = Market()
    asked: list[datetime] = []
    errors: list[BaseException] = []

    async def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        if limit > 100:  # the forward view of the scheduled signal (30 §5.2)
            await bk.Backtest.stop(SYMBOL, "s")
        return market.get_candles(symbol, interval, since, limit)

    def get_signal(symbol: str, when: datetime) -> bk.Signal:
        asked.append(when)
        return bk.Signal("long", 101.0, 98.0, 60, price_open=99.0)  # waits for 99: scheduled

    bk.add_exchange("ex", get_candles)
    bk.add_strategy("s", "1m", get_signal)
    bk.add_frame("f", "1m", ms(0), ms(30))
    bk.listen_error(errors.append)
    actions: list[str] = []
    bk.listen_signal_backtest(lambda r: actions.append(r.action))
    results = bk.Backtest.run_sync(SYMBOL, strategy_name="s", exchange_name="ex", frame_name="f")
    assert results == []
    assert errors == []
    assert len(asked) == 1
    assert actions == ["scheduled"]
