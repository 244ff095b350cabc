"""backtest-kit for Python on the benchmark work (see common.py), from the exported candle
file like every peer. Runs in the project's .venv. The strategy is the one of
benchmarks/backtest_speed.py, word for word; the exchange serves slices of the loaded window.

    .venv/bin/python benchmarks/peers/run_backtest_kit.py --case sma --days 30

compare_trades.py also uses ``--no-fees`` (CC_PERCENT_FEE = CC_PERCENT_SLIPPAGE = 0) and
``--min-distance P`` (CC_MIN_TAKEPROFIT/STOPLOSS_DISTANCE_PERCENT = P, e.g. 1e-9: the
"too close to price_open" rules then reject nothing a peer would take). ``--overhead``
(with ``--case trivial``): also time the strategy's own calls and report the engine's
overhead per ask in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from common import MINUTE_MS, Clock, Trade, load_window, parse_args, report


def main() -> None:
    def flags(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-fees", action="store_true")
        parser.add_argument("--min-distance", type=float)
        parser.add_argument("--overhead", action="store_true", help="trivial: us per ask")

    args = parse_args("backtest-kit", flags)
    case, days, trades_out = args.case, args.days, args.trades_out
    clock = Clock()
    import backtest_kit as bk

    clock.mark("import")
    window = load_window(days, args.data)
    series = bk.Candles(
        timestamp=window.ts,
        open=window.open,
        high=window.high,
        low=window.low,
        close=window.close,
        volume=window.volume,
    )
    clock.mark("load")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        first = (since - epoch) // timedelta(milliseconds=1)
        lo = int(np.searchsorted(series.timestamp, first))
        hi = int(np.searchsorted(series.timestamp, first + (limit - 1) * MINUTE_MS, "right"))
        return series[lo:hi]

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

    rejected: list[dict[str, object]] = []

    def on_validation(error: bk.ValidationError) -> None:
        row = error.signal
        at = row.pending_at if isinstance(row, bk.SignalRow) else None
        rejected.append({"at": at, "errors": list(error.errors)})

    config: dict[str, float] = {}
    if args.no_fees:
        config.update(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0)
    if args.min_distance is not None:
        config.update(
            CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=args.min_distance,
            CC_MIN_STOPLOSS_DISTANCE_PERCENT=args.min_distance,
        )
    if config:
        bk.set_config(config)
    if trades_out:
        bk.listen_validation(on_validation)
    bk.add_exchange("file", get_candles=get_candles)
    bk.add_strategy(case, "5m", sma if case == "sma" else trivial)
    start = datetime(2024, 1, 2, tzinfo=UTC)
    bk.add_frame("bench", "1m", start, start + timedelta(days=days) - timedelta(minutes=1))

    async def run() -> list[bk.ClosedResult]:
        closed = []
        async for result in bk.Backtest.run(
            "BTCUSDT", strategy_name=case, exchange_name="file", frame_name="bench"
        ):
            if result.action == "closed":
                closed.append(result)
        return closed

    closed = asyncio.run(run())
    clock.mark("run")
    asks = calls
    extra: dict[str, object] = {}
    if args.overhead and case == "trivial" and asks:
        # engine overhead per ask: the run minus the strategy's own cost (the same calls,
        # made directly), divided by the asks
        started = time.perf_counter()
        for _ in range(asks):
            trivial("BTCUSDT", start)
        baseline = time.perf_counter() - started
        extra["overhead_us_per_ask"] = round((clock.marks["run"] - baseline) / asks * 1e6, 3)
    trades = []
    for r in closed:
        row = r.signal
        # a time exit closes at the instant `pending_at + 240 min`: its last candle opened 1m
        # earlier; a TP/SL exit's close_timestamp is the open time of the candle that hit it
        at = r.close_timestamp
        candle = at - MINUTE_MS if r.close_reason == "time_expired" else at
        trades.append(
            Trade(
                side=row.position,
                entry_at=row.pending_at,
                entry_price=row.price_open,
                take_profit=row.price_take_profit,
                stop_loss=row.price_stop_loss,
                exit_candle=candle,
                exit_at=candle + MINUTE_MS,
                exit_price=r.current_price,
                reason=r.close_reason,
                pnl_percent=r.pnl.pnl_percentage,
            )
        )
    report(
        "backtest-kit", case, days, trades, asks, clock, trades_out, rejected=len(rejected), **extra
    )
    if trades_out:
        with open(trades_out + ".rejected.json", "w") as f:
            json.dump(rejected, f)


if __name__ == "__main__":
    main()
