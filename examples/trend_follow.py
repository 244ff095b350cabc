"""Trend following on hourly closes, backtested on the built-in sample market.

Copy this file and change `get_signal`. Run it with

    python examples/trend_follow.py
or
    backtest-kit backtest examples/trend_follow.py --symbol BTCUSDT \\
        --strategy trend-follow --exchange sample --frame jan-2024
"""

from __future__ import annotations

from datetime import datetime

import backtest_kit as bk


async def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
    """Long when the 24-hour mean is 1 % above the 120-hour mean, short when 1 % below."""
    hourly = (await bk.get_candles(symbol, "1h", 120)).close  # closed candles only
    if len(hourly) < 120:
        return None
    fast, slow = hourly[-24:].mean(), hourly.mean()
    last = float((await bk.get_candles(symbol, "1m", 1)).close[-1])
    if fast > slow * 1.01:
        return bk.Signal("long", last * 1.05, last * 0.975, minute_estimated_time=1440)
    if fast < slow * 0.99:
        return bk.Signal("short", last * 0.95, last * 1.025, minute_estimated_time=1440)
    return None


bk.data.add_sample_exchange("sample")
bk.add_strategy("trend-follow", interval="15m", get_signal=get_signal)
bk.add_frame("jan-2024", "1m", "2024-01-08", "2024-02-06T23:59")

if __name__ == "__main__":
    results = bk.Backtest.run_sync(
        "BTCUSDT", strategy_name="trend-follow", exchange_name="sample", frame_name="jan-2024"
    )
    for r in results:
        if isinstance(r, bk.ClosedResult):
            opened = bk.intervals.ms_to_datetime(r.signal.pending_at)
            print(
                f"{opened:%Y-%m-%d %H:%M} {r.signal.position:<5} {r.close_reason:<12} "
                f"{r.pnl.pnl_percentage:+.2f}%"
            )
    total = sum(r.pnl.pnl_percentage for r in results if isinstance(r, bk.ClosedResult))
    print(f"{len(results)} trades, total PnL {total:+.2f}%")
