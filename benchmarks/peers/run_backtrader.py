"""backtrader on the benchmark work (see common.py).

Configured to decide as backtest-kit does: cheat-on-close (a market order placed in bar b's
``next()`` fills at bar b's close), no commission, one unit per trade. The take profit
(limit) and stop loss (stop) are sent with the entry as an OCO pair rather than with
``buy_bracket``: backtrader activates a bracket's children one bar after the parent fills,
so the first candle of every position would go unchecked, while backtest-kit checks it.
Sent together, all three are live on the next bar: the entry fills first, then the stop,
then the limit. At 240 bars the strategy cancels the pair and closes at that bar's close.

Where it still differs (compare_trades.py counts each): a bar through both levels exits by
stop loss (the stop is checked first), the entry price is the last close and the time exit
is the close of the 240th bar (backtest-kit: the VWAP of the last 5 candles for both).
"""

from __future__ import annotations

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
    sma_decision,
)


def main() -> None:
    args = parse_args("backtrader")
    case, days, trades_out = args.case, args.days, args.trades_out
    clock = Clock()
    import backtrader as bt
    import pandas as pd

    clock.mark("import")
    w = load_window(days, args.data)
    frame = pd.DataFrame(
        {"open": w.open, "high": w.high, "low": w.low, "close": w.close, "volume": w.volume},
        index=pd.to_datetime(w.ts, unit="ms"),
    )
    clock.mark("load")
    trades: list[Trade] = []
    asks = 0

    class Bench(bt.Strategy):
        def __init__(self) -> None:
            self.last_ask = -(10**9)
            self.entry_bar = -1
            self.entry: bt.Order | None = None
            self.exits: tuple[bt.Order, bt.Order] | None = None
            self.timed_out = False
            self.pending: dict[str, object] = {}

        def notify_order(self, order: bt.Order) -> None:
            if order.status != order.Completed:
                return
            price = float(order.executed.price)
            # notifications carry clones of the orders: compare references
            if self.entry is not None and order.ref == self.entry.ref:
                self.pending["entry_price"] = price
                return
            # an exit: the stop, the limit or the time-exit close, notified before next() of
            # the bar the broker just processed (len(self) - 1); the time-exit close filled
            # there at the close of the bar before (cheat-on-close)
            bar = len(self) - 2 if self.timed_out else len(self) - 1
            if self.exits is not None and order.ref == self.exits[0].ref:
                reason = "stop_loss"
            elif self.exits is not None and order.ref == self.exits[1].ref:
                reason = "take_profit"
            else:
                reason = "time_expired"
            p = self.pending
            candle = int(w.ts[bar])
            trades.append(
                Trade(
                    side=str(p["side"]),
                    entry_at=int(w.ts[self.entry_bar]) + MINUTE_MS,
                    entry_price=float(p["entry_price"]),  # type: ignore[arg-type]
                    take_profit=float(p["tp"]),  # type: ignore[arg-type]
                    stop_loss=float(p["sl"]),  # type: ignore[arg-type]
                    exit_candle=candle,
                    exit_at=candle + MINUTE_MS,
                    exit_price=price,
                    reason=reason,
                    pnl_percent=gross_pnl_percent(
                        str(p["side"]),
                        float(p["entry_price"]),  # type: ignore[arg-type]
                        price,
                    ),
                )
            )
            self.entry = None
            self.exits = None
            self.timed_out = False

        def next(self) -> None:
            nonlocal asks
            bar = len(self) - 1
            if self.entry is not None:
                if not self.timed_out and bar - self.entry_bar >= HOLD_MINUTES:
                    assert self.exits is not None
                    self.cancel(self.exits[0])  # the OCO partner goes with it
                    self.exits = None
                    self.close()
                    self.timed_out = True
                return
            if bar - self.last_ask < ASK_EVERY or not w.can_enter(bar):
                return
            self.last_ask = bar
            asks += 1
            if case == "trivial":
                return
            closes = np.array(self.data.close.get(size=SMA_WINDOW))
            side, tp, sl = sma_decision(closes)
            self.entry_bar = bar
            self.pending = {"side": side, "tp": tp, "sl": sl}
            if side == "long":
                self.entry = self.buy(size=1)
                stop = self.sell(size=1, exectype=bt.Order.Stop, price=sl)
                limit = self.sell(size=1, exectype=bt.Order.Limit, price=tp, oco=stop)
            else:
                self.entry = self.sell(size=1)
                stop = self.buy(size=1, exectype=bt.Order.Stop, price=sl)
                limit = self.buy(size=1, exectype=bt.Order.Limit, price=tp, oco=stop)
            self.exits = (stop, limit)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(Bench)
    cerebro.broker.setcash(10_000_000)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.broker.set_coc(True)
    cerebro.run()
    clock.mark("run")
    report("backtrader", case, days, trades, asks, clock, trades_out)


if __name__ == "__main__":
    main()
