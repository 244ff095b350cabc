"""Backtest speed: 365 days of 1m sample candles (from 2024-01-02), strategy interval 5m.

"sma":     long if the last closed 1m close is above the mean of the last 20 closes, else
           short; TP and SL at +-1 % of that close; minute_estimated_time = 240.
"trivial": get_signal always returns None.

Each case runs in a fresh process; the parent prints whole-process wall time, peak memory
(max RSS of the child), trades and get_signal calls. Run on demand:

    python benchmarks/backtest_speed.py            # both cases, 3 runs each, median
    python benchmarks/backtest_speed.py --case sma --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

DAYS = 365


def child(case: str, days: int, partial_listener: bool = False) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    import backtest_kit as bk

    calls = 0

    async def sma(symbol: str, when: datetime) -> bk.Signal | None:
        nonlocal calls
        calls += 1
        closes = (await bk.get_candles(symbol, "1m", 20)).close
        last = float(closes[-1])
        position = "long" if last > closes.mean() else "short"
        up, down = last * 1.01, last * 0.99
        return bk.Signal(
            position=position,
            price_take_profit=up if position == "long" else down,
            price_stop_loss=down if position == "long" else up,
            minute_estimated_time=240,
        )

    def trivial(symbol: str, when: datetime) -> None:
        nonlocal calls
        calls += 1
        return None

    milestones = 0

    def on_milestone(event: object) -> None:
        nonlocal milestones
        milestones += 1

    if partial_listener:
        bk.listen_partial_profit(on_milestone)
        bk.listen_partial_loss(on_milestone)
    bk.data.add_sample_exchange("sample")
    bk.add_strategy(case, "5m", sma if case == "sma" else trivial)
    start = datetime(2024, 1, 2, tzinfo=UTC)  # one day of history before the first tick
    bk.add_frame("year", "1m", start, start + timedelta(days=days) - timedelta(minutes=1))

    async def run() -> int:
        trades = 0
        async for _ in bk.Backtest.run(
            "BTCUSDT", strategy_name=case, exchange_name="sample", frame_name="year"
        ):
            trades += 1
        return trades

    trades = asyncio.run(run())
    print(json.dumps({"trades": trades, "get_signal_calls": calls, "milestones": milestones}))


def measure(case: str, days: int, partial_listener: bool) -> dict[str, float]:
    started = time.perf_counter()
    extra = ["--partial-listener"] if partial_listener else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--days", str(days), *extra],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")},
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, **data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("sma", "trivial"), action="append")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument(
        "--partial-listener",
        action="store_true",
        help="attach partial profit/loss milestone listeners (60 §9)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.days, args.partial_listener)
        return
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"{'case':<8} {'wall s (median)':>16} {'peak MB':>8} {'trades':>7} {'get_signal':>11}"
        f" {'milestones':>11}"
    )
    for case in args.case or ["sma", "trivial"]:
        runs = [measure(case, args.days, args.partial_listener) for _ in range(args.runs)]
        wall = statistics.median(r["wall_s"] for r in runs)
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: report the last reading
        peak = runs[-1]["peak_mb"]
        print(
            f"{case:<8} {wall:>16.3f} {peak:>8.1f} {int(runs[0]['trades']):>7} "
            f"{int(runs[0]['get_signal_calls']):>11} {int(runs[0]['milestones']):>11}"
        )


if __name__ == "__main__":
    main()
