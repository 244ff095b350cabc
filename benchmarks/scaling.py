"""How backtest-kit's cost grows: with candles, with trades, with symbols; and its memory.

Each case is a fresh process that backtests the "sma" strategy (a trade after nearly every
ask) or the "trivial" one (never trades) of benchmarks/backtest_speed.py over N symbols one
after the other, D days each from 2024-01-02, from the exported sample candles
(benchmarks/.data, memory-mapped: the process holds only what the engine fetched). Prints,
per case: whole-process wall time, backtest time, peak memory (VmHWM), the 1m candles in the
frames, trades, asks, microseconds per candle and per ask, and MB per million candles.

The sample market has four symbols and two years (2024-2025). Symbols 5 to 10 are derived:
symbol k replays series k mod 4 shifted by 120 days x (k div 4) (e.g. "BTCUSDT+120d" at
2024-01-02 shows BTCUSDT's candles of 2024-05-01), so each has its own path at each instant.
The derived ones leave room for 489 days; the four real ones for 729.

    python benchmarks/scaling.py                 # the default grid (about a minute)
    python benchmarks/scaling.py --symbols 10 --days 365 --case sma
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import bench

SAMPLE = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
SHIFT_DAYS = 120
DAY_MS = 86_400_000
START_MS = 1_704_153_600_000  # 2024-01-02T00:00:00Z
GRID = (
    # (symbols, days): cost against candles on one symbol, then more symbols
    *((1, d) for d in (30, 91, 182, 365, 729)),
    (4, 365),
    (4, 729),
    (10, 365),
)


def symbol_names(count: int) -> list[str]:
    names = []
    for k in range(count):
        base, shift = SAMPLE[k % 4], SHIFT_DAYS * (k // 4)
        names.append(base if shift == 0 else f"{base}+{shift}d")
    return names


def data_file(base: str) -> str:
    return os.path.join(bench.DATA_DIR, f"{base}-1m.npy")


def child(case: str, count: int, days: int) -> None:
    clock = {"start": time.perf_counter()}
    import asyncio
    from datetime import UTC, datetime, timedelta

    import numpy as np

    import backtest_kit as bk

    clock["import"] = time.perf_counter()
    tables = {base: np.load(data_file(base), mmap_mode="r") for base in SAMPLE}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> object:
        base, _, shift = symbol.partition("+")
        offset = int(shift[:-1]) * DAY_MS if shift else 0
        table = tables[base]
        first = (since - epoch) // timedelta(milliseconds=1) + offset
        lo = int(np.searchsorted(table["timestamp"], first))
        hi = int(np.searchsorted(table["timestamp"], first + (limit - 1) * 60_000, "right"))
        page = np.array(table[lo:hi])  # a copy: the engine keeps what it needs
        page["timestamp"] -= offset
        return page

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

    bk.add_exchange("file", get_candles=get_candles)
    bk.add_strategy(case, "5m", sma if case == "sma" else trivial)
    start = datetime(2024, 1, 2, tzinfo=UTC)
    bk.add_frame("bench", "1m", start, start + timedelta(days=days) - timedelta(minutes=1))

    async def run() -> int:
        trades = 0
        for symbol in symbol_names(count):
            async for _ in bk.Backtest.run(
                symbol, strategy_name=case, exchange_name="file", frame_name="bench"
            ):
                trades += 1
        return trades

    clock["load"] = time.perf_counter()
    trades = asyncio.run(run())
    clock["run"] = time.perf_counter()
    peak = None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    print(
        json.dumps(
            {
                "trades": trades,
                "get_signal_calls": calls,
                "run_s": clock["run"] - clock["load"],
                "peak_rss_mb": peak,
            }
        )
    )


def measure(case: str, count: int, days: int) -> dict[str, object]:
    command = [sys.executable, os.path.abspath(__file__), "--child", case]
    command += ["--symbols", str(count), "--days", str(days)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": " | ".join(done.stderr.strip().splitlines()[-2:])}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--days", type=int)
    parser.add_argument("--case", choices=("sma", "trivial"), action="append")
    parser.add_argument("--runs", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--child", choices=("sma", "trivial"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.symbols, args.days)
        return
    bench.ensure_data(symbols=SAMPLE)
    grid = [(args.symbols or 1, args.days or 365)] if args.symbols or args.days else GRID
    for count, days in grid:
        if days > (729 if count <= 4 else 729 - SHIFT_DAYS * ((count - 1) // 4)):
            raise SystemExit(f"{count} symbols leave room for fewer than {days} days")
    print(f"machine: {bench.machine()}")
    print(
        f"{'symbols':>7} {'days':>5} {'case':<8} {'candles':>10} {'wall s':>7} {'run s':>7} "
        f"{'peak MB':>8} {'trades':>7} {'asks':>7} {'us/candle':>10} {'us/ask':>7} "
        f"{'MB/Mcandle':>10}"
    )
    for count, days in grid:
        for case in args.case or ["sma", "trivial"]:
            runs = [measure(case, count, days) for _ in range(args.runs)]
            good = sorted((r for r in runs if "error" not in r), key=lambda r: r["wall_s"])  # type: ignore[arg-type, return-value]
            if not good:
                print(f"{count:>7} {days:>5} {case:<8} failed: {runs[0]['error']}")
                continue
            r = good[len(good) // 2]
            candles = count * days * 1440
            run_s, peak = float(r["run_s"]), float(r["peak_rss_mb"])  # type: ignore[arg-type]
            asks = int(r["get_signal_calls"])  # type: ignore[call-overload]
            print(
                f"{count:>7} {days:>5} {case:<8} {candles:>10,} {float(r['wall_s']):>7.2f} "  # type: ignore[arg-type]
                f"{run_s:>7.2f} {peak:>8.0f} {r['trades']:>7} {asks:>7} "
                f"{run_s / candles * 1e6:>10.3f} {run_s / asks * 1e6:>7.1f} "
                f"{peak / candles * 1e6:>10.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
