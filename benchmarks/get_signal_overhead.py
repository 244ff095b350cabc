"""Engine overhead per `get_signal` call (issue 8's "< 5 us" goal).

The trivial strategy (always `None`, interval 5m) over 365 days of the sample market: the
backtest's wall time on a warm candle store, minus the time of the same number of direct
calls of `get_signal` (with the datetimes the engine passes), divided by the calls. Run on
demand: ``python benchmarks/get_signal_overhead.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import backtest_kit as bk
from backtest_kit.intervals import ms_to_datetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    calls: list[int] = []

    def trivial(symbol: str, when: datetime) -> None:
        calls.append(0)

    bk.data.add_sample_exchange("sample")
    bk.add_strategy("trivial", "5m", trivial)
    start = datetime(2024, 1, 2, tzinfo=UTC)
    bk.add_frame("year", "1m", start, start + timedelta(days=args.days) - timedelta(minutes=1))
    run = {"strategy_name": "trivial", "exchange_name": "sample", "frame_name": "year"}
    bk.Backtest.run_sync("BTCUSDT", **run)  # warm: the candle store and the VWAP cache
    overheads = []
    for _ in range(args.runs):
        calls.clear()
        started = time.perf_counter()
        bk.Backtest.run_sync("BTCUSDT", **run)
        engine = time.perf_counter() - started
        n = len(calls)
        whens = [ms_to_datetime(int(start.timestamp() * 1000) + k * 300_000) for k in range(n)]
        started = time.perf_counter()
        for when in whens:
            trivial("BTCUSDT", when)
        direct = time.perf_counter() - started
        overheads.append((engine - direct) / n * 1e6)
    print(f"get_signal calls per run: {n}")
    print(
        f"engine overhead per call: median {statistics.median(overheads):.2f} us "
        f"(min {min(overheads):.2f}, max {max(overheads):.2f}, {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
