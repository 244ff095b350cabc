"""Clocks for live runs (40 §9): the wall clock in production, a simulated clock over recorded
candles in tests and replays, so a day of live trading runs in seconds.

A clock supplies `now_ms()` and `sleep(ms)`; a simulated one also says when it is exhausted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

from .errors import ValidationError
from .intervals import to_ms


@runtime_checkable
class Clock(Protocol):
    """What a live run needs from time: the current instant and a way to wait."""

    def now_ms(self) -> int: ...

    async def sleep(self, ms: int) -> None: ...


class WallClock:
    """Real time: `time.time_ns()` and `asyncio.sleep`."""

    exhausted = False

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, ms: int) -> None:
        await asyncio.sleep(max(ms, 0) / 1000)


class SimulatedClock:
    """Simulated time from `start`, moving `step_ms` per pause (40 §9).

    `sleep(ms)` yields to the event loop once, then advances ``(ms // step_ms) * step_ms``: a
    live pause of 60 001 ms is one step; shorter waits (retry delays) do not move time. Past
    `end` the clock is `exhausted` and a live run ends gracefully::

        clock = bk.SimulatedClock("2024-01-02", end="2024-01-03")
        bk.Live.run_sync("BTCUSDT", strategy_name="sma", exchange_name="sample", clock=clock)
    """

    def __init__(self, start: object, end: object = None, step_ms: int = 60_000) -> None:
        if isinstance(step_ms, bool) or not isinstance(step_ms, int) or step_ms <= 0:
            raise ValidationError(
                f"SimulatedClock: step_ms must be a positive int, got {step_ms!r}"
            )
        self._now = to_ms(start, "SimulatedClock: start")
        self.end = None if end is None else to_ms(end, "SimulatedClock: end")
        if self.end is not None and self.end < self._now:
            raise ValidationError("SimulatedClock: end must not be before start")
        self.step_ms = step_ms

    @property
    def exhausted(self) -> bool:
        return self.end is not None and self._now > self.end

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, ms: int) -> None:
        await asyncio.sleep(0)
        self._now += (max(ms, 0) // self.step_ms) * self.step_ms
