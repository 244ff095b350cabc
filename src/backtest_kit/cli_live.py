"""The `backtest-kit live` command (97 §3): a strategy file traded live from the terminal.

Owns the command's flags, the signal handling (first SIGINT/SIGTERM: graceful stop; a second
one: the run is cancelled at once and the process exits 130 / 143 with the stored state as
it was, 40 §2.3), the one-line print of each opened, closed and cancelled signal, and the
exit codes. The live loop itself is `Live.background` (engine/live.py); the state is already
durable when a result is printed, so an abrupt exit loses nothing (40 §7).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.live import LiveCancel

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_live_parser(sub: Any) -> None:
    """The `live` subcommand on the `backtest-kit` parser's subparsers."""
    from .cli import _date

    live = sub.add_parser(
        "live",
        help="trade a strategy registered by FILE live (Ctrl-C stops gracefully)",
        description=(
            "Run a strategy live: a tick about once a minute on the wall clock, each opened, "
            "closed and cancelled signal printed as one line, its state stored (by default "
            "under ./dump/data) before it is reported. Ctrl-C or SIGTERM stops gracefully: no "
            "new signals, a waiting scheduled signal is cancelled and an open position is "
            "watched until it closes. A second Ctrl-C exits at once (exit code 130) with the "
            "stored state intact; the next start resumes it."
        ),
    )
    live.add_argument("file", help="Python file or module that registers the schemas")
    live.add_argument("--symbol", required=True)
    live.add_argument("--strategy", required=True)
    live.add_argument("--exchange", required=True)
    live.add_argument(
        "--simulate",
        metavar="START",
        type=_date,
        help=(
            "replay mode: run on a simulated clock from START (a minute per tick, as fast as "
            "the exchange answers) over the exchange's recorded candles; the state is stored "
            "as in a real run, so replay in another directory than a real bot's"
        ),
    )
    live.add_argument(
        "--until",
        metavar="END",
        type=_date,
        help="with --simulate: end the replay after END (default: run until stopped)",
    )


def run_live(args: argparse.Namespace) -> int:
    """`backtest-kit live FILE ...`: 0 after a graceful end, 1 when the run failed, 130 (or
    143 for SIGTERM) after a second signal."""
    from .cli import load_user_module

    load_user_module(args.file)
    code: int = asyncio.run(_live(args))
    return code


async def _live(args: argparse.Namespace) -> int:
    import backtest_kit as bk

    from .data.exchange_ccxt import close_ccxt_exchanges
    from .intervals import iso

    clock: bk.WallClock | bk.SimulatedClock = (
        bk.WallClock()
        if args.simulate is None
        else bk.SimulatedClock(args.simulate, end=args.until)
    )
    failures: list[BaseException] = []
    done: list[bk.DoneContract] = []
    bk.listen_signal_live(_print_result)
    bk.listen_exit(failures.append)
    bk.listen_done_live(done.append)
    try:
        await _check_symbol(args.exchange, args.symbol)
        cancel = bk.Live.background(
            args.symbol, strategy_name=args.strategy, exchange_name=args.exchange, clock=clock
        )
        signals = _Signals(cancel, args.symbol, args.strategy)
        signals.install()
        try:
            if isinstance(clock, bk.SimulatedClock):
                until = "" if clock.end is None else f" until {iso(clock.end)}"
                how = f"replaying from {iso(clock.now_ms())}{until} on a simulated clock"
            else:
                how = "on the wall clock"
            _status(
                f"live: {args.strategy!r} on {args.symbol} via {args.exchange!r} {how}; "
                "Ctrl-C stops gracefully, twice exits at once"
            )
            await asyncio.wait({cancel.task})
        finally:
            signals.uninstall()
    finally:
        await close_ccxt_exchanges()
    if signals.abrupt is not None:
        _status("live: exited at once; the stored state is intact and resumes on the next start")
        return 128 + signals.abrupt
    if failures:
        error = failures[0]
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    if done and not done[-1].stopped and isinstance(clock, bk.SimulatedClock):
        _status(f"live: the replay reached its end ({iso(clock.end or clock.now_ms())})")
    else:
        _status("live: stopped")
    return 0


async def _check_symbol(exchange_name: str, symbol: str) -> None:
    """A ccxt exchange must know the symbol: fail at start rather than at every tick."""
    from .data.exchange_ccxt import ccxt_source
    from .runtime import current

    schema = current().exchanges.get(exchange_name)
    source = ccxt_source(schema) if schema is not None else None
    if source is not None:
        source.market(await source.ready(), symbol)


class _Signals:
    """SIGINT and SIGTERM on the running loop: the first requests a graceful stop, a second
    cancels the run's task."""

    def __init__(self, cancel: LiveCancel, symbol: str, strategy_name: str) -> None:
        self.cancel = cancel
        self.symbol = symbol
        self.strategy_name = strategy_name
        self.loop = asyncio.get_running_loop()
        self.first: int | None = None
        self.abrupt: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in HANDLED_SIGNALS:
            try:
                self.loop.add_signal_handler(sig, self.received, int(sig))
            except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                self._previous[sig] = signal.signal(
                    sig, lambda n, _: self.loop.call_soon_threadsafe(self.received, n)
                )

    def uninstall(self) -> None:
        for sig in HANDLED_SIGNALS:
            if sig in self._previous:
                signal.signal(sig, self._previous.pop(sig))
            else:
                self.loop.remove_signal_handler(sig)

    def received(self, signum: int) -> None:
        if self.cancel.task.done():
            return
        if self.first is None:
            self.first = signum
            _status(f"live: stopping ({signal.Signals(signum).name}): {self._holding()}")
            self.cancel()
        elif self.abrupt is None:
            self.abrupt = signum
            self.cancel.task.cancel()

    def _holding(self) -> str:
        from .runtime import current

        client = current().strategy_clients.get((self.symbol, self.strategy_name, False))
        again = "Ctrl-C again to exit at once, the state is kept"
        if client is not None and client.pending is not None:
            return (
                f"no new signals; waiting for the open position {client.pending.id} to close "
                f"({again})"
            )
        if client is not None and client.scheduled is not None:
            return f"no new signals; the waiting signal {client.scheduled.id} is cancelled"
        return "no new signals; no position is open"


def _print_result(result: Any) -> None:
    """One line per opened, closed and cancelled signal (the other results are not shown)."""
    from .intervals import iso
    from .model.results import CancelledResult, ClosedResult, OpenedResult

    if isinstance(result, OpenedResult):
        row, at = result.signal, result.signal.pending_at
        tail = (
            f"open={row.price_open:.10g} tp={row.price_take_profit:.10g} "
            f"sl={row.price_stop_loss:.10g}"
        )
    elif isinstance(result, ClosedResult):
        row, at = result.signal, result.close_timestamp
        tail = (
            f"{result.close_reason} close={result.pnl.price_close:.10g} "
            f"pnl={result.pnl.pnl_percentage:+.2f}%"
        )
    elif isinstance(result, CancelledResult):
        row, at = result.signal, result.close_timestamp
        tail = f"entry={row.price_open:.10g} not reached"
    else:
        return
    print(
        f"{iso(at)}  {result.action:<9}  {result.symbol}  {row.position:<5}  id={row.id}  {tail}",
        flush=True,
    )


def _status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


__all__ = ["add_live_parser", "run_live"]
