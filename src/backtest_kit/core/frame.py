"""Frame timestamps: the ticks of a backtest period (30 §2).

Pure generation plus the `on_timeframe` callback; memoisation lives on the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..events import call_user
from ..intervals import DAY_MS, INTERVAL_MS, ms_to_datetime
from .exchange import wall_clock_ms

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..schema import FrameSchema


def frame_timestamps(frame: FrameSchema, now_ms: int) -> npt.NDArray[np.int64]:
    """``start + k * interval`` up to the end (inclusive), the end clamped to today 00:00 UTC."""
    today = now_ms - now_ms % DAY_MS
    end = min(frame.end_date, today)
    step = INTERVAL_MS[frame.interval]
    if end < frame.start_date:
        return np.empty(0, np.int64)
    count = (end - frame.start_date) // step + 1
    times = frame.start_date + np.arange(count, dtype=np.int64) * step
    times.flags.writeable = False
    return times


async def get_frame_timestamps(runtime: Runtime, frame: FrameSchema) -> npt.NDArray[np.int64]:
    """The memoised timestamps of `frame`; the first call runs `on_timeframe` (30 §2)."""
    times = runtime.frame_times.get(frame.frame_name)
    if times is not None:
        result: npt.NDArray[np.int64] = times
        return result
    now = wall_clock_ms()
    times = frame_timestamps(frame, now)
    on_timeframe = frame.callbacks.on_timeframe
    if on_timeframe is not None:
        today = now - now % DAY_MS
        await call_user(
            on_timeframe,
            [ms_to_datetime(t) for t in times.tolist()],
            ms_to_datetime(frame.start_date),
            ms_to_datetime(min(frame.end_date, today)),
            frame.interval,
        )
    runtime.frame_times[frame.frame_name] = times
    return times
