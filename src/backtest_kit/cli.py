"""The `backtest-kit` command line (97 §3): `demo` and `backtest`.

Exit codes: 0 success, 1 a runtime failure (one line `error: ...`; `--debug` prints the
traceback), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import BacktestKitError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backtest-kit",
        description="Backtest trading strategies on history without look-ahead.",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="backtest the example strategy on the sample market")
    demo.add_argument("--days", type=int, default=30, help="length of the backtest (default 30)")
    demo.add_argument("--symbol", default="BTCUSDT", help="sample symbol (default BTCUSDT)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    backtest = sub.add_parser("backtest", help="backtest a strategy registered by FILE")
    backtest.add_argument("file", help="Python file or module that registers the schemas")
    backtest.add_argument("--symbol", required=True)
    backtest.add_argument("--strategy", required=True)
    backtest.add_argument("--exchange", required=True)
    backtest.add_argument("--frame", required=True)
    backtest.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        return _backtest(args)
    except (BacktestKitError, OSError, ImportError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    import backtest_kit as bk

    from .data.sample import SAMPLE_END, SAMPLE_START, SAMPLE_SYMBOLS
    from .demo import trend_follow

    if args.symbol not in SAMPLE_SYMBOLS:
        raise BacktestKitError(
            f"--symbol {args.symbol!r} is not in the sample market ({', '.join(SAMPLE_SYMBOLS)})"
        )
    if not 1 <= args.days <= (SAMPLE_END - SAMPLE_START) // 86_400_000 - 7:
        raise BacktestKitError("--days must be between 1 and 723 (the sample market's length)")
    start = datetime(2024, 1, 8, tzinfo=UTC)  # a week of history for the 120-hour mean
    end = start + timedelta(days=args.days) - timedelta(minutes=1)
    bk.data.add_sample_exchange("sample")
    bk.add_strategy("trend-follow", "15m", trend_follow, note="example strategy")
    bk.add_frame("demo", "1m", start, end)
    print(
        f"Backtesting 'trend-follow' on the sample {args.symbol} market, "
        f"{start:%Y-%m-%d} .. {end:%Y-%m-%d %H:%M} UTC ({args.days} days of 1m candles)"
    )
    results = _run_with_progress(
        args.symbol, "trend-follow", "sample", "demo", show=not args.no_progress
    )
    _print_summary(results)
    return 0


def _backtest(args: argparse.Namespace) -> int:
    load_user_module(args.file)
    results = _run_with_progress(
        args.symbol, args.strategy, args.exchange, args.frame, show=not args.no_progress
    )
    _print_summary(results)
    return 0


def load_user_module(target: str) -> Any:
    """Import a Python file or an importable module name (it registers the schemas)."""
    path = Path(target)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise BacktestKitError(f"strategy file {target!r} not found")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise BacktestKitError(f"cannot import {target!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _run_with_progress(
    symbol: str, strategy: str, exchange: str, frame: str, *, show: bool
) -> list[Any]:
    import backtest_kit as bk

    async def run() -> list[Any]:
        bar: Any = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=0, unit=" frames", unit_scale=True, leave=True)

            def on_progress(event: bk.ProgressBacktestContract) -> None:
                # frames the engine jumps over (idle time, open positions) arrive in one step
                bar.total = event.total_frames
                bar.update(event.processed_frames - bar.n)

            bk.listen_backtest_progress(on_progress)
        try:
            return [
                r
                async for r in bk.Backtest.run(
                    symbol, strategy_name=strategy, exchange_name=exchange, frame_name=frame
                )
            ]
        finally:
            if bar is not None:
                bar.close()

    return asyncio.run(run())


def _print_summary(results: list[Any]) -> None:
    from .demo import format_table, summarize

    print(format_table(summarize(results).rows()))
