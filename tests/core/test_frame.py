"""Tests for core/frame.py and `add_frame`: frame timestamps, the clamp to today, memoisation
and `on_timeframe`, registration rules (30 §1, §2, §10)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.core.frame import frame_timestamps, get_frame_timestamps
from backtest_kit.intervals import datetime_to_ms

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
H = 3_600_000
DAY = 86_400_000
FAR_FUTURE = T0 + 3650 * DAY


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


def ticks(interval: str, start: object, end: object, now: int = FAR_FUTURE) -> list[int]:
    frame = bk.add_frame(f"f{len(bk.list_frames())}", interval, start, end)
    times = frame_timestamps(frame, now)
    assert times.dtype == np.int64
    return [int(t) for t in times]


def utc(*args: int) -> int:
    return datetime_to_ms(datetime(*args, tzinfo=UTC))


def today_ms() -> int:
    now = time.time_ns() // 1_000_000
    return now - now % DAY


# -- the table of 30 §2 ---------------------------------------------------------------------


def test_1m_from_0000_to_0020_gives_21_ticks() -> None:
    assert ticks("1m", T0, T0 + 20 * M) == [T0 + k * M for k in range(21)]


def test_1d_over_three_days_gives_3_ticks() -> None:
    assert ticks("1d", "2024-01-01", "2024-01-03") == [T0, T0 + DAY, T0 + 2 * DAY]


def test_1h_to_0230_gives_3_ticks() -> None:
    assert ticks("1h", T0, T0 + 2 * H + 30 * M) == [T0, T0 + H, T0 + 2 * H]


def test_3d_from_jan_1_to_jan_10_gives_4_ticks() -> None:
    got = ticks("3d", "2024-01-01", "2024-01-10")
    assert got == [utc(2024, 1, 1), utc(2024, 1, 4), utc(2024, 1, 7), utc(2024, 1, 10)]


def test_start_equal_to_end_gives_one_tick() -> None:
    assert ticks("1d", T0, T0) == [T0]
    assert ticks("1m", T0 + 7 * M, T0 + 7 * M) == [T0 + 7 * M]


# -- grid and end ---------------------------------------------------------------------------


def test_ticks_are_not_aligned_to_the_interval() -> None:
    start = T0 + 10 * H + 30 * M
    assert ticks("1h", start, start + 2 * H) == [start, start + H, start + 2 * H]


def test_off_grid_end_is_not_a_tick() -> None:
    assert ticks("1m", T0, T0 + 4 * M + 30_000) == [T0 + k * M for k in range(5)]
    assert ticks("15m", T0, T0 + 44 * M) == [T0, T0 + 15 * M, T0 + 30 * M]


@pytest.mark.parametrize(
    ("interval", "step"),
    [("3m", 3 * M), ("5m", 5 * M), ("30m", 30 * M), ("2h", 2 * H), ("12h", 12 * H)],
)
def test_every_frame_interval_steps_by_its_length(interval: str, step: int) -> None:
    got = ticks(interval, T0, T0 + 10 * step)
    assert got == [T0 + k * step for k in range(11)]


def test_end_in_the_future_is_clamped_to_today_midnight() -> None:
    today = today_ms()
    got = ticks("1d", today - 3 * DAY, today + 5 * DAY, now=time.time_ns() // 1_000_000)
    assert got[-1] == today
    assert got == [today - 3 * DAY + k * DAY for k in range(4)]


def test_end_later_the_same_day_is_clamped_to_midnight() -> None:
    now = T0 + 15 * H + 7 * M
    got = ticks("1h", T0 - DAY, T0 + 20 * H, now=now)
    assert got[-1] == T0
    assert len(got) == 25


def test_clamp_before_start_gives_no_tick() -> None:
    # only reachable through the clamp: a frame starting later today
    assert ticks("1m", T0 + 10 * H, T0 + 11 * H, now=T0 + 12 * H) == []


def test_timestamps_are_read_only() -> None:
    frame = bk.add_frame("f", "1m", T0, T0 + 5 * M)
    times = frame_timestamps(frame, FAR_FUTURE)
    with pytest.raises(ValueError):
        times[0] = 0


# -- memoisation and on_timeframe -----------------------------------------------------------


def test_on_timeframe_receives_datetimes_start_effective_end_and_interval() -> None:
    seen: list[tuple[Any, ...]] = []
    bk.add_frame(
        "f", "1h", T0, T0 + 2 * H + 30 * M, callbacks={"on_timeframe": lambda *a: seen.append(a)}
    )
    frame = bk.list_frames()[0]
    runtime = bk.runtime.current()
    times = asyncio.run(get_frame_timestamps(runtime, frame))
    assert [int(t) for t in times] == [T0, T0 + H, T0 + 2 * H]
    assert len(seen) == 1
    stamps, start, end, interval = seen[0]
    assert stamps == [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(3)]
    assert all(s.tzinfo is not None for s in stamps)
    assert start == datetime(2024, 1, 1, tzinfo=UTC)
    assert end == datetime(2024, 1, 1, 2, 30, tzinfo=UTC)  # the given end: not clamped
    assert interval == "1h"
    again = asyncio.run(get_frame_timestamps(runtime, frame))
    assert again is times
    assert len(seen) == 1


def test_on_timeframe_gets_the_clamped_end_and_is_awaited() -> None:
    seen: list[tuple[Any, ...]] = []

    async def on_timeframe(*args: Any) -> None:
        await asyncio.sleep(0)
        seen.append(args)

    today = today_ms()
    start = datetime.fromtimestamp((today - 2 * DAY) / 1000, UTC)
    bk.add_frame(
        "f", "1d", start, start + timedelta(days=10), callbacks={"on_timeframe": on_timeframe}
    )
    times = asyncio.run(get_frame_timestamps(bk.runtime.current(), bk.list_frames()[0]))
    assert int(times[-1]) == today
    assert len(seen) == 1
    assert datetime_to_ms(seen[0][2]) == today
    assert [datetime_to_ms(d) for d in seen[0][0]] == [int(t) for t in times]


def source(symbol: str, interval: str, since: datetime, limit: int) -> list[list[float]]:
    start = datetime_to_ms(since)
    step = bk.INTERVAL_MS[interval]
    return [[start + k * step, 100.0, 100.5, 99.5, 100.0, 1.0] for k in range(limit)]


def test_on_timeframe_runs_once_for_two_backtests_and_again_after_reset() -> None:
    def register(seen: list[tuple[Any, ...]]) -> None:
        bk.add_exchange("ex", source)
        bk.add_strategy("s", "1m", lambda symbol, when: None)
        bk.add_frame(
            "f", "1m", T0, T0 + 20 * M, callbacks={"on_timeframe": lambda *a: seen.append(a)}
        )

    def backtest() -> list[Any]:
        return bk.Backtest.run_sync(
            "BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="f"
        )

    seen: list[tuple[Any, ...]] = []
    register(seen)
    assert backtest() == []
    assert backtest() == []
    bk.add_strategy("other", "5m", lambda symbol, when: None)
    bk.Backtest.run_sync("ETHUSDT", strategy_name="other", exchange_name="ex", frame_name="f")
    assert len(seen) == 1
    stamps, start, end, interval = seen[0]
    assert len(stamps) == 21 and stamps[-1] == datetime(2024, 1, 1, 0, 20, tzinfo=UTC)
    assert (start, end, interval) == (stamps[0], stamps[-1], "1m")
    bk.reset()
    seen_after: list[tuple[Any, ...]] = []
    register(seen_after)
    backtest()
    assert len(seen_after) == 1


def test_on_timeframe_exception_fails_the_run() -> None:
    def on_timeframe(*args: Any) -> None:
        raise RuntimeError("no frames today")

    bk.add_exchange("ex", source)
    bk.add_strategy("s", "1m", lambda symbol, when: None)
    bk.add_frame("f", "1m", T0, T0 + 5 * M, callbacks={"on_timeframe": on_timeframe})
    with pytest.raises(RuntimeError, match="no frames today"):
        bk.Backtest.run_sync("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="f")
    assert "f" not in bk.runtime.current().frame_times


def test_get_signal_is_asked_at_every_tick_of_the_frame() -> None:
    asked: list[datetime] = []
    bk.add_exchange("ex", source)
    bk.add_strategy("s", "1m", lambda symbol, when: asked.append(when))
    bk.add_frame("f", "1h", T0 + 10 * H + 30 * M, T0 + 13 * H)
    bk.Backtest.run_sync("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="f")
    assert asked == [datetime(2024, 1, 1, h, 30, tzinfo=UTC) for h in (10, 11, 12)]


# -- registration (30 §1) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"interval": "2d"}, "interval"),
        ({"interval": "1w"}, "interval"),
        ({"interval": "4m"}, "interval"),
        ({"interval": None}, "interval"),
        ({"start_date": T0 + DAY, "end_date": T0}, "start_date"),
        ({"start_date": T0 + 10 * H + 30_000}, "whole UTC minute"),
        ({"start_date": "2024-01-01T10:00:30Z"}, "whole UTC minute"),
        ({"start_date": "not a date"}, "start_date"),
        ({"end_date": object()}, "end_date"),
        ({"start_date": True}, "start_date"),
        ({"frame_name": ""}, "frame_name"),
        ({"frame_name": 7}, "frame_name"),
        ({"note": 3}, "note"),
        ({"callbacks": {"on_timeframe": 5}}, "on_timeframe"),
        ({"callbacks": {"on_time_frame": print}}, "on_time_frame"),
        ({"callbacks": 5}, "callbacks"),
    ],
)
def test_invalid_frame_is_rejected_and_nothing_registered(
    kwargs: dict[str, Any], fragment: str
) -> None:
    args: dict[str, Any] = {
        "frame_name": "f",
        "interval": "1m",
        "start_date": T0,
        "end_date": T0 + DAY,
    }
    args.update(kwargs)
    with pytest.raises(bk.ValidationError, match=fragment):
        bk.add_frame(**args)
    assert bk.list_frames() == []
    retry = bk.add_frame("f", "1m", T0, T0 + DAY)
    assert bk.list_frames() == [retry]


def test_end_date_may_be_off_the_minute_grid() -> None:
    frame = bk.add_frame("f", "1m", T0, T0 + 4 * M + 30_000)
    assert frame.end_date == T0 + 4 * M + 30_000


def test_duplicate_frame_is_a_registry_error() -> None:
    first = bk.add_frame("f", "1m", T0, T0 + DAY)
    with pytest.raises(bk.RegistryError, match="'f'"):
        bk.add_frame("f", "1h", T0, T0 + 2 * DAY)
    assert bk.list_frames() == [first]


def test_frame_schema_is_frozen_and_keeps_int_ms() -> None:
    frame = bk.add_frame("f", "4h", "2024-01-01", datetime(2024, 1, 2), note="jan")
    assert (frame.start_date, frame.end_date, frame.interval, frame.note) == (
        T0,
        T0 + DAY,
        "4h",
        "jan",
    )
    with pytest.raises(AttributeError):
        frame.interval = "1m"  # type: ignore[misc]
