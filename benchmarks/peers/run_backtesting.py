"""backtesting.py (kernc/backtesting.py) on the benchmark work (see common.py).

Configured to decide as backtest-kit does: ``trade_on_close=True`` (a market order placed in
bar b's ``next()`` fills at bar b's close, the last price seen), no commission, no spread,
one unit per trade (cash large enough never to refuse an order). Take profit and stop loss
are the order's ``tp``/``sl``, checked from the next bar on. At 240 bars the strategy drops
the bracket and closes at that bar's close: backtesting.py processes a bar's SL/TP orders
before a ``close()`` placed on the previous bar, so leaving them would let the following
bar's high/low pre-empt the time exit.

Where it still differs (compare_trades.py counts each): a bar through both levels exits by
stop loss (backtesting.py's SL orders go first; backtest-kit exits by take profit), the entry
price is the last close (backtest-kit: the VWAP of the last 5 candles) and the time exit is
the close of the 240th bar (backtest-kit: that VWAP). A signal backtest-kit rejects (take
profit or stop loss within 0.5 % of its VWAP entry) is taken here.
"""

from __future__ import annotations

import warnings

from common import (
    ASK_EVERY,
    HOLD_MINUTES,
    MINUTE_MS,
    Clock,
    Trade,
    gross_pnl_percent,
    load_window,
    parse_args,
    report,
    sma_decision,
)


def main() -> None:
    args = parse_args("backtesting.py")
    case, days, trades_out = args.case, args.days, args.trades_out
    clock = Clock()
    import pandas as pd
    from backtesting import Backtest, Strategy

    clock.mark("import")
    w = load_window(days, args.data)
    frame = pd.DataFrame(
        {"Open": w.open, "High": w.high, "Low": w.low, "Close": w.close, "Volume": w.volume},
        index=pd.to_datetime(w.ts, unit="ms", utc=True),
    )
    clock.mark("load")
    decisions: list[tuple[int, str, float, float]] = []  # (bar, side, tp, sl)
    time_exits: set[int] = set()  # decision bars of the trades closed by time
    asks = 0

    class Bench(Strategy):
        def init(self) -> None:
            self.last_ask = -(10**9)
            self.entry_bar = -1

        def next(self) -> None:
            nonlocal asks
            bar = len(self.data) - 1
            if self.position:
                if bar - self.entry_bar >= HOLD_MINUTES:
                    trade = self.trades[0]
                    trade.sl = None
                    trade.tp = None
                    trade.close()
                    time_exits.add(self.entry_bar)
                return
            if bar - self.last_ask < ASK_EVERY or not w.can_enter(bar):
                return
            self.last_ask = bar
            asks += 1
            if case == "trivial":
                return
            side, tp, sl = sma_decision(self.data.Close[-20:])
            decisions.append((bar, side, tp, sl))
            self.entry_bar = bar
            if side == "long":
                self.buy(size=1, tp=tp, sl=sl)
            else:
                self.sell(size=1, tp=tp, sl=sl)

    bt = Backtest(
        frame,
        Bench,
        cash=10_000_000,
        commission=0.0,
        spread=0.0,
        trade_on_close=True,
        finalize_trades=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run()
    clock.mark("run")
    trades = []
    for (bar, side, tp, sl), row in zip(decisions, stats["_trades"].itertuples(), strict=True):
        entry_bar, exit_bar = int(row.EntryBar), int(row.ExitBar)
        assert entry_bar == bar, (entry_bar, bar)
        exit_price = float(row.ExitPrice)
        if bar in time_exits:
            reason = "time_expired"
        else:
            reason = "take_profit" if abs(exit_price - tp) < abs(exit_price - sl) else "stop_loss"
        trades.append(
            Trade(
                side=side,
                entry_at=int(w.ts[bar]) + MINUTE_MS,
                entry_price=float(row.EntryPrice),
                take_profit=tp,
                stop_loss=sl,
                exit_candle=int(w.ts[exit_bar]),
                exit_at=int(w.ts[exit_bar]) + MINUTE_MS,
                exit_price=exit_price,
                reason=reason,
                pnl_percent=gross_pnl_percent(side, float(row.EntryPrice), exit_price),
            )
        )
    report("backtesting.py", case, days, trades, asks, clock, trades_out)


if __name__ == "__main__":
    main()
