"""Candle store load time: 365 days of 1m candles (525,600 rows, the sample BTCUSDT market from
2024-01-01) written to a Parquet store, then read back.

"cold": a fresh process reads the year once: the first open of every file included, Python's
        start and the imports not (the pyarrow import, paid once per process, is printed
        apart); the files are in the OS page cache, as after a download.
"warm": the same read repeated in one process (median).
"exchange": the same year through `add_store_exchange` and the exchange client's read-ahead,
        as a backtest loads it (fresh process).

Run on demand (never pass/fail):

    python benchmarks/store_load.py              # 5 runs of each, median
    python benchmarks/store_load.py --store DIR  # keep the store in DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAYS = 365
START = 1_704_067_200_000  # 2024-01-01T00:00Z
MINUTE = 60_000


def build(root: str) -> float:
    """Write the year into the store (skipped when it is there); returns seconds spent."""
    import backtest_kit as bk
    from backtest_kit.data.sample import sample_series

    store = bk.data.CandleStore(root)
    coverage = store.coverage("sample", "BTCUSDT", "1m")
    if coverage.count == DAYS * 1440:
        return 0.0
    started = time.perf_counter()
    store.write("sample", "BTCUSDT", "1m", sample_series("BTCUSDT")[: DAYS * 1440])
    return time.perf_counter() - started


def child(root: str, case: str, repeats: int) -> None:
    import asyncio

    import backtest_kit as bk

    if case == "exchange":
        from backtest_kit.core.exchange import ExchangeClient
        from backtest_kit.runtime import current

        schema = bk.data.add_store_exchange("store", root, "sample")
        started = time.perf_counter()
        client = ExchangeClient(schema, current(), backtest=True)
        end = START + DAYS * 1440 * MINUTE
        candles = asyncio.run(client.window("BTCUSDT", "1m", START, end - MINUTE))
        times = [time.perf_counter() - started]
    else:
        started = time.perf_counter()
        import pyarrow.parquet  # noqa: F401

        imported = time.perf_counter() - started
        store = bk.data.CandleStore(root)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            candles = store.read("sample", "BTCUSDT", "1m")
            times.append(time.perf_counter() - started)
        times.append(imported)
    assert len(candles) == DAYS * 1440, len(candles)
    print(json.dumps({"times": times, "rows": len(candles)}))


def measure(root: str, case: str, repeats: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, "--store", root, "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    times: list[float] = json.loads(done.stdout)["times"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", choices=["cold", "warm", "exchange"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        child(args.store, args.child, args.repeats)
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = args.store or scratch
        written = build(root)
        files = sorted(Path(root).rglob("*.parquet"))
        size = sum(p.stat().st_size for p in files) / 2**20
        if written:
            print(f"wrote {DAYS} days of 1m candles in {written:.2f} s")
        print(f"store: {len(files)} files, {size:.1f} MiB")
        colds = [measure(root, "cold", 1) for _ in range(args.runs)]
        cold = [c[0] for c in colds]
        imports = [c[-1] for c in colds]
        warm = measure(root, "warm", args.runs + 1)[1:-1]  # the first read is the cold one
        exchange = [measure(root, "exchange", 1)[0] for _ in range(args.runs)]
        print(f"| case | median | min | max |  ({DAYS * 1440:,} rows, {args.runs} runs)")
        print("| --- | ---: | ---: | ---: |")
        cases = (("cold", cold), ("warm", warm), ("exchange", exchange), ("import", imports))
        for name, values in cases:
            print(
                f"| {name} | {statistics.median(values) * 1000:.0f} ms | "
                f"{min(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
