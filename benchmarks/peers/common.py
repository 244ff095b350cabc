"""What every peer runner shares: the candle file, the window of bars a run sees, the two
decision rules, the trade record and the JSON report. Imports numpy only: the peer processes
run in their own virtual environments and must not import backtest_kit.

The work, identical in every engine (see benchmarks/README.md):

- 1m candles of the sample BTCUSDT, exported once by ``bench.py`` to ``.data/BTCUSDT-1m.npy``.
- Ticks (decision instants) every minute from 2024-01-02T00:00Z for ``days`` days. The decision
  at the instant ``when`` sees the candles closed by then: bar ``b`` with ``ts[b] + 1m <= when``.
  In a bar-driven engine that is the bar's ``next()``/``on_bar``: bar ``b`` decides for
  ``when = ts[b] + 1m``.
- The strategy is asked when flat and at least 5 minutes after its previous ask.
- "sma": long if the last close is above the mean of the last 20 closes, else short; take
  profit and stop loss at +-1 % of that close; out after 240 minutes.
- "trivial": never trades (the engine's per-bar and per-ask overhead).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MINUTE_MS = 60_000
START_MS = 1_704_153_600_000  # 2024-01-02T00:00:00Z, the first tick
ASK_EVERY = 5  # minutes between asks (strategy interval 5m)
SMA_WINDOW = 20
BRACKET = 0.01  # take profit and stop loss at +-1 % of the last close
HOLD_MINUTES = 240
HISTORY_BARS = 60  # bars before the first tick: enough for the 20-close mean
TAIL_BARS = HOLD_MINUTES + 60  # bars after the last tick: the last position can finish

DATA_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".data", "BTCUSDT-1m.npy")


@dataclass
class Window:
    """The bars one run sees (numpy columns) and where its ticks are."""

    ts: np.ndarray  # int64 open times, ms UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    first_bar: int  # bar whose next() is the first tick (ts + 1m == START_MS)
    last_bar: int  # bar whose next() is the last tick

    def __len__(self) -> int:
        return len(self.ts)

    def can_enter(self, bar: int) -> bool:
        return self.first_bar <= bar <= self.last_bar


def load_window(days: int, path: str = DATA_FILE) -> Window:
    """The candles for a ``days``-day run: history, the ticks, and a tail for the last exit."""
    data = np.load(path, mmap_mode="r")
    ts_all = data["timestamp"]
    first = int(np.searchsorted(ts_all, START_MS - MINUTE_MS))
    lo = first - HISTORY_BARS
    ticks = days * 1440
    hi = first + ticks + TAIL_BARS
    if lo < 0 or hi > len(ts_all):
        raise SystemExit(f"{path} does not cover {days} days from 2024-01-02; re-export it")
    columns = {name: np.ascontiguousarray(data[name][lo:hi]) for name in data.dtype.names}
    ts = columns["timestamp"]
    if not np.all(np.diff(ts) == MINUTE_MS):
        raise SystemExit(f"{path}: the 1m candles are not contiguous")
    return Window(
        ts=ts,
        open=columns["open"],
        high=columns["high"],
        low=columns["low"],
        close=columns["close"],
        volume=columns["volume"],
        first_bar=HISTORY_BARS,
        last_bar=HISTORY_BARS + ticks - 1,
    )


def sma_decision(closes: np.ndarray) -> tuple[str, float, float]:
    """(side, take_profit, stop_loss) from the closes seen so far (the last 20 are used).

    The same expression as the backtest-kit strategy, so both compute identical floats.
    """
    window = closes[-SMA_WINDOW:]
    last = float(window[-1])
    side = "long" if last > window.mean() else "short"
    up, down = last * (1 + BRACKET), last * (1 - BRACKET)
    if side == "long":
        return side, up, down
    return side, down, up


@dataclass
class Trade:
    """One round trip, normalised across engines (all instants int ms UTC).

    ``entry_at``: the decision instant (``pending_at`` in backtest-kit). ``exit_candle``: the
    open time of the candle the exit was found in (for a time exit: the last candle held).
    ``exit_at``: the instant the exit is known, ``exit_candle + 1m``.
    """

    side: str
    entry_at: int
    entry_price: float
    take_profit: float
    stop_loss: float
    exit_candle: int
    exit_at: int
    exit_price: float
    reason: str  # "take_profit" | "stop_loss" | "time_expired"
    pnl_percent: float  # the engine's own figure (backtest-kit: net of its fees/slippage)


def gross_pnl_percent(side: str, entry: float, exit_: float) -> float:
    move = (exit_ - entry) / entry * 100
    return move if side == "long" else -move


class Clock:
    """Wall-clock marks inside the child process (the parent measures the whole process)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}
        self._last = self.started

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = now - self._last
        self._last = now


def report(
    engine: str,
    case: str,
    days: int,
    trades: list[Trade],
    asks: int,
    clock: Clock,
    trades_out: str | None,
    **extra: object,
) -> None:
    """Print the run's one-line JSON summary; write the trade list if asked."""
    if trades_out:
        with open(trades_out, "w") as f:
            json.dump([asdict(t) for t in trades], f)
    summary = {
        "peak_rss_mb": peak_rss_mb(),
        "engine": engine,
        "case": case,
        "days": days,
        "trades": len(trades),
        "get_signal_calls": asks,
        **{f"{k}_s": round(v, 4) for k, v in clock.marks.items()},
        **extra,
    }
    sys.stdout.write(json.dumps(summary) + "\n")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since its exec (VmHWM). The parent cannot use
    wait4's ru_maxrss: it also counts the parent's pages from before the exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def parse_args(engine: str, extra: Callable[[Any], None] | None = None) -> Any:
    """The runner's command line: --case, --days, --trades-out, --data (+ `extra` flags)."""
    import argparse

    parser = argparse.ArgumentParser(description=f"{engine} runner for benchmarks/bench.py")
    parser.add_argument("--case", choices=("sma", "trivial"), required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--trades-out", help="write the trade list (JSON) here")
    parser.add_argument("--data", default=DATA_FILE)
    if extra is not None:
        extra(parser)
    return parser.parse_args()
