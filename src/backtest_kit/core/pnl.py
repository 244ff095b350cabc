"""Profit and loss of a closed position (`to_pnl`, 10 §7) and the progress of an open one
toward take profit or stop loss (`percent_progress`, 10 §5 / 60 §9.1).

Pure arithmetic on a `SignalRow`: no I/O, no config lookups (the caller passes the slippage
and fee it read at close time), no decisions about when a position closes.
"""

from __future__ import annotations

from ..model.results import PnL
from ..model.signal import SignalRow


def to_pnl(row: SignalRow, price_close: float, *, slippage: float, fee: float) -> PnL:
    """Net PnL of ``row`` closed at ``price_close``.

    ``slippage`` (``CC_PERCENT_SLIPPAGE``) and ``fee`` (``CC_PERCENT_FEE``) are in percent.
    Slippage moves both fills against the trader; the fee is charged twice, in points::

        to_pnl(long_at_100, 110.0, slippage=0.1, fee=0.1).pnl_percentage  # 9.580219780219787

    The returned `PnL` carries the raw (unslipped) open and close prices.
    """
    # The order of operations is the reference's (toProfitLossDto.ts); results must match it
    # bit for bit, so do not simplify algebraically.
    if row.position == "long":
        open_adj = row.price_open * (1 + slippage / 100)
        close_adj = price_close * (1 - slippage / 100)
        pct = (close_adj - open_adj) / open_adj * 100
    else:
        open_adj = row.price_open * (1 - slippage / 100)
        close_adj = price_close * (1 + slippage / 100)
        pct = (open_adj - close_adj) / open_adj * 100
    pct -= fee * 2
    return PnL(pnl_percentage=pct, price_open=row.price_open, price_close=price_close)


def percent_progress(row: SignalRow, price: float) -> tuple[float, float]:
    """``(percent_tp, percent_sl)``: progress of ``price`` from ``row.price_open`` toward the
    take profit or the stop loss, in percent of that distance, capped at 100; the other is 0.

    Long, open 100, TP 110, SL 95: price 101 -> ``(10.0, 0.0)``; price 97.5 -> ``(0.0, 50.0)``.
    Both are 0 at ``price_open`` and for a scheduled row still waiting for its entry.
    """
    if row.is_scheduled:
        return 0.0, 0.0
    if row.position == "long":
        d = price - row.price_open
        if d > 0:
            return min(d / (row.price_take_profit - row.price_open) * 100, 100.0), 0.0
        if d < 0:
            return 0.0, min(-d / (row.price_open - row.price_stop_loss) * 100, 100.0)
    else:
        d = row.price_open - price
        if d > 0:
            return min(d / (row.price_open - row.price_take_profit) * 100, 100.0), 0.0
        if d < 0:
            return 0.0, min(-d / (row.price_stop_loss - row.price_open) * 100, 100.0)
    return 0.0, 0.0


__all__ = ["percent_progress", "to_pnl"]
