"""Time the sample market's generation: one symbol's two years of 1m candles, and the first
aggregation to a coarser interval. Run on demand (``PYTHONPATH=src python
benchmarks/sample_gen.py``); prints, asserts nothing.
"""

from __future__ import annotations

import time

from backtest_kit.data.sample import SAMPLE_SYMBOLS, _interval_series, sample_series

REPEATS = 5


def main() -> None:
    print(f"{'symbol':<9} {'candles':>9} {'first ms':>9} {'best ms':>8} {'1h agg ms':>10}")
    for symbol in SAMPLE_SYMBOLS:
        timings = []
        for _ in range(REPEATS):
            sample_series.cache_clear()
            _interval_series.cache_clear()
            started = time.perf_counter()
            series = sample_series(symbol)
            timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        _interval_series(symbol, "1h")
        aggregate = time.perf_counter() - started
        print(
            f"{symbol:<9} {len(series):>9,} {timings[0] * 1e3:>9.1f} {min(timings) * 1e3:>8.1f} "
            f"{aggregate * 1e3:>10.1f}"
        )


if __name__ == "__main__":
    main()
