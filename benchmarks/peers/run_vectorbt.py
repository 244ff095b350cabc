"""vectorbt on the benchmark work (see common.py).

The strategy is path-dependent (when it may ask depends on when the last trade ended), which
vectorbt's signal arrays cannot express, so it runs the way vectorbt documents for such
strategies: ``Portfolio.from_order_func(flexible=True)`` with a numba order function called
bar by bar, several times a bar (an exit, then a new entry on the same bar). The 20-close
mean is precomputed with numpy, vectorbt style. Fills: entries at the bar's close, exits at
the level (take profit / stop loss) or at the 240th bar's close, no fees, one unit.

A bar through both levels exits by stop loss, as vectorbt's own ``from_signals`` stops do
(it checks the stop loss first). Whole-process time includes importing vectorbt and numba
and loading (or compiling, on the very first run) the numba functions; "run s" is the
simulation call alone (``--warm``: a second one in the same process, compiled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import (
    ASK_EVERY,
    HOLD_MINUTES,
    MINUTE_MS,
    SMA_WINDOW,
    Clock,
    Trade,
    gross_pnl_percent,
    load_window,
    parse_args,
    report,
)

REASONS = ("", "take_profit", "stop_loss", "time_expired")
nb: Any = None  # vectorbt.portfolio.nb, set by main()
NoOrder: Any = None


def order_func(c, high, low, close, go_long, first, last, trivial, state, log):  # type: ignore[no-untyped-def]
    # state: last ask bar, entry bar, asks, trades, bar of the last time exit; log row: entry
    # bar, side, tp, sl, exit bar, exit price, reason
    i = c.i
    position = c.last_position[c.from_col]
    if position != 0.0:
        entry = int(state[1])
        if i <= entry:
            return -1, NoOrder
        n = int(state[3])
        tp, sl = log[n, 2], log[n, 3]
        if position > 0:
            hit_sl, hit_tp = low[i] <= sl, high[i] >= tp
        else:
            hit_sl, hit_tp = high[i] >= sl, low[i] <= tp
        if hit_sl:
            price, reason = sl, 2.0
        elif hit_tp:
            price, reason = tp, 1.0
        elif i - entry >= HOLD_MINUTES:
            price, reason = close[i], 3.0
        else:
            return -1, NoOrder
        log[n, 4], log[n, 5], log[n, 6] = i, price, reason
        state[3] += 1
        if reason == 3.0:
            state[4] = i  # a time exit uses up its bar's tick: no ask before the next bar
        return c.from_col, nb.order_nb(size=-position, price=price)
    if i - state[0] < ASK_EVERY or i == state[4] or i < first or i > last:
        return -1, NoOrder
    state[0] = i
    state[2] += 1
    if trivial:
        return -1, NoOrder
    n = int(state[3])
    price = close[i]
    up, down = price * 1.01, price * 0.99
    side = 1.0 if go_long[i] else -1.0
    log[n, 0], log[n, 1] = i, side
    log[n, 2], log[n, 3] = (up, down) if side > 0 else (down, up)
    state[1] = i
    return c.from_col, nb.order_nb(size=side, price=price)


def main() -> None:
    def flags(parser: Any) -> None:
        parser.add_argument("--warm", action="store_true", help="time a second simulation")

    args = parse_args("vectorbt", flags)
    case, days, trades_out = args.case, args.days, args.trades_out
    clock = Clock()
    # module globals: the numba function reads them (imported here to time the import)
    global nb, NoOrder
    import vectorbt as vbt
    from numba import njit
    from vectorbt.portfolio import nb
    from vectorbt.portfolio.enums import NoOrder

    order_nb = njit(cache=True)(order_func)
    clock.mark("import")
    w = load_window(days, args.data)
    clock.mark("load")

    sma = np.full(len(w), np.nan)
    sma[SMA_WINDOW - 1 :] = np.lib.stride_tricks.sliding_window_view(w.close, SMA_WINDOW).mean(-1)
    go_long = w.close > sma

    def simulate() -> tuple[np.ndarray, np.ndarray, int]:
        state = np.array([-1e9, -1.0, 0.0, 0.0, -1.0])
        log = np.zeros((len(w) // ASK_EVERY + 1, 7))
        portfolio = vbt.Portfolio.from_order_func(
            w.close,
            order_nb,
            w.high,
            w.low,
            w.close,
            go_long,
            w.first_bar,
            w.last_bar,
            case == "trivial",
            state,
            log,
            flexible=True,
            init_cash=10_000_000.0,
            max_orders=len(w) // ASK_EVERY * 2 + 2,
        )
        return state, log, len(portfolio.orders.records)

    state, log, orders = simulate()
    clock.mark("run")
    if args.warm:
        simulate()
        clock.mark("warm_run")
    count = int(state[3])
    assert orders == 2 * count, (orders, count)
    trades = []
    for row in log[:count]:
        entry_bar, exit_bar = int(row[0]), int(row[4])
        side = "long" if row[1] > 0 else "short"
        entry_price, exit_price = float(w.close[entry_bar]), float(row[5])
        trades.append(
            Trade(
                side=side,
                entry_at=int(w.ts[entry_bar]) + MINUTE_MS,
                entry_price=entry_price,
                take_profit=float(row[2]),
                stop_loss=float(row[3]),
                exit_candle=int(w.ts[exit_bar]),
                exit_at=int(w.ts[exit_bar]) + MINUTE_MS,
                exit_price=exit_price,
                reason=REASONS[int(row[6])],
                pnl_percent=gross_pnl_percent(side, entry_price, exit_price),
            )
        )
    report("vectorbt", case, days, trades, int(state[2]), clock, trades_out)


if __name__ == "__main__":
    main()
