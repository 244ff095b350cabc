"""nautilus_trader on the benchmark work (see common.py).

A ``BacktestEngine`` with one simulated venue (netting, margin account, no fees), the
candles as 1-minute bars stamped at their close (``ts_event = open + 1m``: ``on_bar`` is the
decision instant), and a strategy that sends a bracket order (market entry, limit take profit,
stop-market stop loss) and, after 240 bars, cancels it and closes at market. The venue fills
a market order at the last price (the bar's close) and walks each later bar open, high, low,
close, so the bracket is checked from the next bar on.

Where it differs from backtest-kit (compare_trades.py counts each): the levels must sit on
the instrument's 0.01 price tick (rounded outward, so they trigger on exactly the candles
backtest-kit's unrounded levels do, and fill up to a cent away); with high walked before low,
a bar through both levels exits a long by take profit and a short by stop loss; the entry
price is the last close and the time exit the close of the 240th bar. The bar volume is set
to 1e6 so that liquidity never splits a one-unit fill.
"""

from __future__ import annotations

import math

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
    args = parse_args("nautilus_trader")
    case, days, trades_out = args.case, args.days, args.trades_out
    clock = Clock()
    from decimal import Decimal

    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, OrderType
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.trading.strategy import Strategy

    clock.mark("import")
    w = load_window(days, args.data)
    venue = Venue("BINANCE")
    instrument = CurrencyPair(
        instrument_id=InstrumentId(Symbol("BTCUSDT"), venue),
        raw_symbol=Symbol("BTCUSDT"),
        base_currency=BTC,
        quote_currency=USDT,
        price_precision=2,
        size_precision=6,
        price_increment=Price(0.01, precision=2),
        size_increment=Quantity(1e-06, precision=6),
        lot_size=None,
        max_quantity=Quantity(9000, precision=6),
        min_quantity=Quantity(1e-06, precision=6),
        max_notional=None,
        min_notional=None,
        max_price=Price(1000000, precision=2),
        min_price=Price(0.01, precision=2),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
        ts_event=0,
        ts_init=0,
    )
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    # the venue sizes its simulated book from the bar volume (a quarter at each of O, H, L,
    # C): with the real volume a one-unit order can fill in parts a tick apart
    frame = pd.DataFrame(
        {"open": w.open, "high": w.high, "low": w.low, "close": w.close, "volume": 1e6},
        index=pd.to_datetime(w.ts + MINUTE_MS, unit="ms", utc=True),
    )
    bars = BarDataWrangler(bar_type, instrument).process(frame)
    clock.mark("load")
    index = {int(ts) + MINUTE_MS: i for i, ts in enumerate(w.ts.tolist())}  # close ms -> bar
    trades: list[Trade] = []
    asks = 0

    def tick(price: float, up: bool) -> Price:
        # outward to the 0.01 tick: a cent-priced candle reaches the rounded level iff it
        # reaches the exact one
        cents = math.ceil(price * 100 - 1e-9) if up else math.floor(price * 100 + 1e-9)
        return Price(cents / 100, precision=2)

    class Bench(Strategy):
        def __init__(self) -> None:
            super().__init__(StrategyConfig(strategy_id="Bench-001"))
            self.bar = -1
            self.last_ask = -(10**9)
            self.entry_bar = -1
            self.open: dict[str, object] | None = None

        def on_start(self) -> None:
            self.subscribe_bars(bar_type)

        def on_order_filled(self, event) -> None:  # type: ignore[no-untyped-def]
            assert self.open is not None and float(event.last_qty) == 1.0, event
            price = float(event.last_px)
            order = self.cache.order(event.client_order_id)
            if event.client_order_id == self.open["entry_id"]:
                self.open["entry_price"] = price
                return
            kind = order.order_type
            reason = (
                "take_profit"
                if kind == OrderType.LIMIT
                else "stop_loss"
                if kind == OrderType.STOP_MARKET
                else "time_expired"
            )
            at = event.ts_event // 1_000_000  # the close of the bar being processed
            side = str(self.open["side"])
            entry_price = float(self.open["entry_price"])  # type: ignore[arg-type]
            trades.append(
                Trade(
                    side=side,
                    entry_at=int(w.ts[self.entry_bar]) + MINUTE_MS,
                    entry_price=entry_price,
                    take_profit=float(self.open["tp"]),  # type: ignore[arg-type]
                    stop_loss=float(self.open["sl"]),  # type: ignore[arg-type]
                    exit_candle=at - MINUTE_MS,
                    exit_at=at,
                    exit_price=price,
                    reason=reason,
                    pnl_percent=gross_pnl_percent(side, entry_price, price),
                )
            )
            self.open = None

        def on_bar(self, bar: Bar) -> None:
            nonlocal asks
            b = index[bar.ts_event // 1_000_000]
            if self.open is not None:
                if b - self.entry_bar >= HOLD_MINUTES:
                    self.cancel_all_orders(instrument.id)
                    self.close_all_positions(instrument.id)
                return
            if b - self.last_ask < ASK_EVERY or not w.can_enter(b):
                return
            self.last_ask = b
            asks += 1
            if case == "trivial":
                return
            side, tp, sl = sma_decision(w.close[b - SMA_WINDOW + 1 : b + 1])
            long = side == "long"
            order_list = self.order_factory.bracket(
                instrument_id=instrument.id,
                order_side=OrderSide.BUY if long else OrderSide.SELL,
                quantity=instrument.make_qty(1),
                tp_price=tick(tp, up=long),
                sl_trigger_price=tick(sl, up=not long),
            )
            self.entry_bar = b
            self.open = {
                "side": side,
                "tp": tp,
                "sl": sl,
                "entry_id": order_list.first.client_order_id,
            }
            self.submit_order_list(order_list)

    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"),
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
        )
    )
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(10_000_000, USDT)],
        default_leverage=Decimal(1),
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.add_strategy(Bench())
    clock.mark("load")
    engine.run()
    clock.mark("run")
    engine.dispose()
    report("nautilus_trader", case, days, trades, asks, clock, trades_out, bars=len(bars))


if __name__ == "__main__":
    main()
