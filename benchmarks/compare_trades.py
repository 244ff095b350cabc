"""Trade by trade: backtest-kit against each installed peer on the "sma" work.

The peers are configured to decide as backtest-kit does (benchmarks/peers/*.py: same asks,
same closes, same levels, no commission, fills at the last close). What is left differs by
design, and this script says how many trades each difference touches:

- validation: backtest-kit rejects a signal whose take profit or stop loss lies within 0.5 %
  of its entry (the VWAP), or beyond it; the peers have no such rule and trade it;
- entry price: backtest-kit opens at the VWAP of the last 5 closed candles, the peers at the
  last close (trade_on_close / next open; in this market open[i] == close[i-1]);
- time exit price: backtest-kit closes an expired position at the VWAP, the peers at the
  close of the 240th candle;
- TP/SL tie: on a candle through both levels backtest-kit exits by take profit; a peer may
  exit by stop loss;
- fees and slippage: backtest-kit charges 0.1 % + 0.1 % per side by default.

Where nothing of that applies the trades must be identical: same entry instant and side,
same levels, same exit candle and reason, and — with backtest-kit's entry price and exit
pricing put in — the same PnL. Anything else is reported as "unexplained" (a bug in one of
the engines or runners). Runs each engine in its own process (from bench.py's list):

    python benchmarks/compare_trades.py                 # 30 days
    python benchmarks/compare_trades.py --days 365 --engine backtesting.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass

import bench
import numpy as np

MINUTE_MS = 60_000


@dataclass
class Run:
    trades: list[dict[str, object]]
    rejected: list[dict[str, object]]
    summary: dict[str, object]


def run_engine(engine: bench.Engine, days: int, extra: tuple[str, ...] = ()) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trades.json")
        summary = bench.measure(engine, "sma", days, ("--trades-out", path, *extra))
        if "error" in summary:
            raise RuntimeError(f"{engine.name}: {summary['error']}")
        with open(path) as f:
            trades = json.load(f)
        rejected = []
        if os.path.exists(path + ".rejected.json"):
            with open(path + ".rejected.json") as f:
                rejected = json.load(f)
    return Run(trades, rejected, summary)


def gross(side: object, entry: float, exit_: float) -> float:
    move = (exit_ - entry) / entry * 100
    return move if side == "long" else -move


class Candles:
    """Lookup of a candle's high/low by open time, from the exported file."""

    def __init__(self) -> None:
        data = np.load(bench.DATA_FILE, mmap_mode="r")
        self.ts = data["timestamp"]
        self.high = data["high"]
        self.low = data["low"]

    def touches_both(self, at: int, tp: float, sl: float) -> bool:
        i = int(np.searchsorted(self.ts, at))
        lo, hi = float(self.low[i]), float(self.high[i])
        return lo <= min(tp, sl) and hi >= max(tp, sl)


def by_entry(trades: list[dict[str, object]]) -> dict[int, dict[str, object]]:
    return {int(t["entry_at"]): t for t in trades}  # type: ignore[call-overload]


def compare(
    ours: Run, peer: Run, name: str, candles: Candles, show: int
) -> tuple[Counter[str], list[str]]:
    """Classify every trade of the two lists; returns the counts and the report lines."""
    counts: Counter[str] = Counter()
    lines: list[str] = []
    a, b = by_entry(ours.trades), by_entry(peer.trades)
    rejected_at = {int(r["at"]) for r in ours.rejected if r.get("at") is not None}  # type: ignore[call-overload]
    unexplained: list[str] = []
    entry_bps: list[float] = []
    pnl = Counter[str]()
    # unmatched trades: a rejection, or the knock-on of an earlier difference
    timeline = sorted({*a, *b})
    knock_on = False
    for at in timeline:
        if at in a and at in b:
            knock_on = False
            continue
        if at in b and at in rejected_at:
            counts["peer trade, rejected by backtest-kit's validation"] += 1
            knock_on = True
        elif knock_on:
            counts[f"knock-on: only in {'backtest-kit' if at in a else name}"] += 1
        else:
            counts[f"unexplained: only in {'backtest-kit' if at in a else name}"] += 1
            unexplained.append(
                f"only in {'backtest-kit' if at in a else name}: {a.get(at) or b.get(at)}"
            )
    for at in sorted(set(a) & set(b)):
        x, y = a[at], b[at]
        counts["matched (same entry instant)"] += 1
        same_order = (x["side"], x["take_profit"], x["stop_loss"]) == (
            y["side"],
            y["take_profit"],
            y["stop_loss"],
        )
        if not same_order:
            counts["unexplained: different side or levels"] += 1
            unexplained.append(f"levels differ:\n    ours {x}\n    peer {y}")
            continue
        entry_x, entry_y = float(x["entry_price"]), float(y["entry_price"])  # type: ignore[arg-type]
        exit_x, exit_y = float(x["exit_price"]), float(y["exit_price"])  # type: ignore[arg-type]
        if entry_x != entry_y:
            counts["entry price differs (VWAP vs last close)"] += 1
            entry_bps.append(abs(entry_x - entry_y) / entry_y * 1e4)
        if x["exit_candle"] != y["exit_candle"]:
            counts["unexplained: different exit candle"] += 1
            unexplained.append(f"exit candle differs:\n    ours {x}\n    peer {y}")
            continue
        kind = "same exit"
        if x["reason"] != y["reason"]:
            tp, sl = float(x["take_profit"]), float(x["stop_loss"])  # type: ignore[arg-type]
            if candles.touches_both(int(x["exit_candle"]), tp, sl):  # type: ignore[call-overload]
                kind = "tie"
                counts[f"TP/SL tie candle: backtest-kit {x['reason']}, {name} {y['reason']}"] += 1
            else:
                counts["unexplained: different exit reason"] += 1
                unexplained.append(f"exit reason differs:\n    ours {x}\n    peer {y}")
                continue
        elif x["reason"] == "time_expired" and exit_x != exit_y:
            kind = "expiry"
            counts["time exit price differs (VWAP vs close)"] += 1
        elif exit_x != exit_y and abs(exit_x - exit_y) < 0.01 + 1e-9:
            kind = "tick"
            counts["TP/SL filled at the level rounded to the 0.01 price tick"] += 1
        elif exit_x != exit_y:
            counts["unexplained: TP/SL exit at a different price"] += 1
            unexplained.append(f"exit price differs:\n    ours {x}\n    peer {y}")
            continue
        # PnL: the peer's figure, then backtest-kit's entry, then backtest-kit's exit
        side = x["side"]
        peer_pnl = gross(side, entry_y, exit_y)
        with_entry = gross(side, entry_x, exit_y)
        with_exit = gross(side, entry_x, exit_x)
        pnl["peer"] += peer_pnl
        pnl["entry"] += with_entry - peer_pnl
        pnl[kind] += with_exit - with_entry
        pnl["residual"] += float(x["pnl_percent"]) - with_exit  # type: ignore[arg-type]
        pnl["ours"] += float(x["pnl_percent"])  # type: ignore[arg-type]
    lines.append(f"backtest-kit {len(a)} trades, {name} {len(b)} trades")
    width = max((len(k) for k in counts), default=10)
    for key, value in sorted(
        counts.items(), key=lambda kv: (kv[0].startswith("unexplained"), kv[0])
    ):
        lines.append(f"  {key:<{width}}  {value:>6}")
    if entry_bps:
        lines.append(
            f"  entry price gap: median {np.median(entry_bps):.2f} bp, "
            f"max {max(entry_bps):.1f} bp of the close"
        )
    if pnl:
        lines.append(
            "  sum of matched trades' PnL (percent points, no fees): "
            f"{name} {pnl['peer']:+.2f}; + entry at the VWAP {pnl['entry']:+.2f}; "
            f"+ time exits at the VWAP {pnl['expiry']:+.2f}; + tie candles {pnl['tie']:+.2f}; "
            f"+ unrounded levels {pnl['tick']:+.2f}; "
            f"= {pnl['peer'] + pnl['entry'] + pnl['expiry'] + pnl['tie'] + pnl['tick']:+.2f} "
            f"(backtest-kit {pnl['ours']:+.2f}, residual {pnl['residual']:+.1e})"
        )
    for item in unexplained[:show]:
        lines.append("  " + item)
    return counts, lines


def fees_effect(with_fees: Run, without: Run) -> list[str]:
    a, b = by_entry(with_fees.trades), by_entry(without.trades)
    same = [
        at
        for at in a
        if at in b
        and (a[at]["exit_candle"], a[at]["reason"], a[at]["entry_price"])
        == (b[at]["exit_candle"], b[at]["reason"], b[at]["entry_price"])
    ]
    deltas = [float(a[at]["pnl_percent"]) - float(b[at]["pnl_percent"]) for at in same]  # type: ignore[arg-type]
    changed = sum(1 for d in deltas if d != 0)
    return [
        f"fees and slippage (0.1 % + 0.1 % a side, backtest-kit's defaults): {changed} of "
        f"{len(a)} trades change PnL, none changes an entry or exit "
        f"({len(same)} identical, {len(a) - len(same)} not); "
        f"mean {np.mean(deltas) if deltas else 0:+.3f} pp a trade, "
        f"sum {sum(deltas):+.1f} pp"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--engine", action="append", help="only these peers (repeatable)")
    parser.add_argument("--show", type=int, default=5, help="unexplained trades to print")
    args = parser.parse_args()
    bench.ensure_data()
    status = bench.load_status()
    ours = next(e for e in bench.ENGINES if e.venv is None)
    print(f"machine: {bench.machine()}; sma, {args.days} days from 2024-01-02")
    strict = run_engine(ours, args.days)
    no_fees = run_engine(ours, args.days, ("--no-fees",))
    loose = run_engine(ours, args.days, ("--no-fees", "--min-distance", "1e-9"))
    print()
    print("backtest-kit against itself")
    for line in fees_effect(strict, no_fees):
        print("  " + line)
    changed, _ = compare(loose, no_fees, "default validation", Candles(), 0)
    print(
        f"  validation (TP/SL at least 0.5 % from the VWAP entry): {len(no_fees.rejected)} of "
        f"{int(no_fees.summary['get_signal_calls'])} signals rejected "  # type: ignore[call-overload]
        f"({len(loose.rejected)} with the distance rules off: the VWAP already beyond a level); "
        f"{sum(v for k, v in changed.items() if not k.startswith('matched'))} trades, of both "
        "runs, are not in the other (each rejection shifts the asks that follow)"
    )
    candles = Candles()
    failures = 0
    for engine in bench.ENGINES:
        if engine.venv is None or (args.engine and engine.name not in args.engine):
            continue
        if not status.get(engine.name, {}).get("ok"):
            print(f"\n{engine.name}: not installed, skipped")
            continue
        try:
            peer = run_engine(engine, args.days)
        except RuntimeError as exc:
            print(f"\n{engine.name}: failed: {exc}")
            continue
        print()
        print(f"{engine.name} against backtest-kit (no fees, distance rules off)")
        counts, lines = compare(loose, peer, engine.name, candles, args.show)
        for line in lines:
            print("  " + line)
        failures += sum(v for k, v in counts.items() if k.startswith("unexplained"))
        print(f"{engine.name} against backtest-kit with its default validation (no fees)")
        counts, lines = compare(no_fees, peer, engine.name, candles, 0)
        for line in lines[:1] + [x for x in lines[1:] if "validation" in x or "knock" in x]:
            print("  " + line)
    print()
    print(f"unexplained differences: {failures}")
    sys.exit(0)


if __name__ == "__main__":
    main()
