"""Walker scaling: 16 strategies on 90 days of the sample market, sequential against a pool
of 2 worker processes (97 §4). Prints the wall time of each run, the speed-up and whether
both runs agree (same best strategy, same metric values).

    python benchmarks/walker_scaling.py
    python benchmarks/walker_scaling.py --workers 4

The strategies are registered at import, so each worker process rebuilds them by importing
this file (the default module when the walker runs from `__main__`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import backtest_kit as bk

START = "2024-01-08"
GRID = [(fast, threshold) for fast in (6, 12, 24, 48) for threshold in (0.002, 0.005, 0.01, 0.02)]


def trend(fast: int, threshold: float) -> Callable[..., Any]:
    """Long/short when the `fast`-hour mean leaves the 120-hour mean by `threshold`."""

    async def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        hourly = (await bk.get_candles(symbol, "1h", 120)).close
        if len(hourly) < 120:
            return None
        quick, slow = hourly[-fast:].mean(), hourly.mean()
        last = float((await bk.get_candles(symbol, "1m", 1)).close[-1])
        if quick > slow * (1 + threshold):
            return bk.Signal("long", last * 1.03, last * 0.985, minute_estimated_time=1440)
        if quick < slow * (1 - threshold):
            return bk.Signal("short", last * 0.97, last * 1.015, minute_estimated_time=1440)
        return None

    return get_signal


def register(days: int) -> list[str]:
    bk.data.add_sample_exchange("sample")
    start = datetime.fromisoformat(START).replace(tzinfo=UTC)
    end_ms = int(start.timestamp() * 1000) + days * 86_400_000 - 60_000
    bk.add_frame("bench", "1m", start, end_ms)
    names = [f"trend-{fast}h-{threshold:g}" for fast, threshold in GRID]
    for name, (fast, threshold) in zip(names, GRID, strict=True):
        bk.add_strategy(name, interval=INTERVAL, get_signal=trend(fast, threshold))
    bk.add_walker("bench", "sample", "bench", names, metric="sharpe_ratio")
    return names


DAYS = 90
INTERVAL = "5m"
register(DAYS)


def timed(**kwargs: object) -> tuple[float, list[bk.WalkerContract]]:
    started = time.perf_counter()
    results = bk.Walker.run_sync("BTCUSDT", walker_name="bench", **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sequential, one = timed()
    parallel, two = timed(workers=args.workers)
    # a pool kept across runs: the workers have imported this file and built the sample
    # market once, the second run measures the backtests and the re-emission only
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        timed(executor=pool)
        warm, three = timed(executor=pool)
    same = [(r.strategy_name, r.metric_value) for r in one] == [
        (r.strategy_name, r.metric_value) for r in two
    ]
    trades = sum(r.stats.total_signals for r in one)
    print(f"walker: {len(GRID)} strategies x {DAYS} days of 1m BTCUSDT, {trades} trades")
    print(f"sequential           {sequential:7.2f} s")
    print(f"{args.workers} workers (new pool) {parallel:7.2f} s  (x{sequential / parallel:.2f})")
    print(f"{args.workers} workers (warm pool){warm:7.2f} s  (x{sequential / warm:.2f})")
    same = same and [r.metric_value for r in three] == [r.metric_value for r in one]
    print(f"best: {one[-1].best_strategy} (sharpe {one[-1].best_metric}); runs agree: {same}")


if __name__ == "__main__":
    main()
