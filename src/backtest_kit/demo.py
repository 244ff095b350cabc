"""The demo: an example strategy backtested on the built-in sample market.

`backtest-kit demo` and `make demo` run it; `examples/trend_follow.py` is the same strategy
as a file to copy. The summary figures follow 80 §2 (per-trade Sharpe, population std).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .model.results import CancelledResult, ClosedResult
from .model.signal import Signal


async def trend_follow(symbol: str, when: datetime) -> Signal | None:
    """Follow the trend of hourly closes: the 24-hour mean against the 120-hour mean.

    Enters at the market when the fast mean is 1 % above (long) or below (short) the slow
    one; take profit 5 %, stop loss 2.5 %, at most one day in the trade.
    """
    from . import get_candles

    hourly = (await get_candles(symbol, "1h", 120)).close
    if len(hourly) < 120:
        return None  # not enough history yet
    fast, slow = hourly[-24:].mean(), hourly.mean()
    last = float((await get_candles(symbol, "1m", 1)).close[-1])
    if fast > slow * 1.01:
        return Signal(
            position="long",
            price_take_profit=last * 1.05,
            price_stop_loss=last * 0.975,
            minute_estimated_time=1440,
            note="hourly uptrend",
        )
    if fast < slow * 0.99:
        return Signal(
            position="short",
            price_take_profit=last * 0.95,
            price_stop_loss=last * 1.025,
            minute_estimated_time=1440,
            note="hourly downtrend",
        )
    return None


@dataclass(frozen=True, slots=True)
class Summary:
    """Headline figures of a backtest (closed trades only)."""

    trades: int
    cancelled: int
    win_rate: float | None
    total_pnl: float
    avg_pnl: float | None
    sharpe_ratio: float | None
    max_drawdown: float

    def rows(self) -> list[tuple[str, str]]:
        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{x:+.2f}%"

        return [
            ("Trades", str(self.trades)),
            ("Cancelled", str(self.cancelled)),
            ("Win rate", "n/a" if self.win_rate is None else f"{self.win_rate:.1f}%"),
            ("Total PnL", pct(self.total_pnl)),
            ("Average PnL", pct(self.avg_pnl)),
            (
                "Sharpe (per trade)",
                "n/a" if self.sharpe_ratio is None else f"{self.sharpe_ratio:.3f}",
            ),
            ("Max drawdown", f"{self.max_drawdown:.2f}%"),
        ]


def summarize(results: Sequence[ClosedResult | CancelledResult]) -> Summary:
    """Trades, win rate, total and average PnL %, per-trade Sharpe, max drawdown of PnL sum."""
    pnl = np.array(
        [r.pnl.pnl_percentage for r in results if isinstance(r, ClosedResult)], dtype=np.float64
    )
    cancelled = sum(isinstance(r, CancelledResult) for r in results)
    if len(pnl) == 0:
        return Summary(0, cancelled, None, 0.0, None, None, 0.0)
    avg = float(pnl.mean())
    std = float(pnl.std())
    equity = np.cumsum(pnl)
    drawdown = float((np.maximum.accumulate(np.maximum(equity, 0.0)) - equity).max())
    return Summary(
        trades=len(pnl),
        cancelled=cancelled,
        win_rate=float((pnl > 0).mean() * 100),
        total_pnl=float(pnl.sum()),
        avg_pnl=avg,
        sharpe_ratio=avg / std if std > 0 else 0.0,
        max_drawdown=drawdown if math.isfinite(drawdown) else 0.0,
    )


def format_table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    value_width = max(len(v) for _, v in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * (value_width + 2) + "+"
    body = [f"| {k.ljust(width)} | {v.rjust(value_width)} |" for k, v in rows]
    return "\n".join([line, *body, line])
