"""The `backtest-kit` command line (97 §3): `demo`, `backtest`, `report`, `live`, `walker` and
`download`.

Exit codes: 0 success, 1 a runtime failure (one line `error: ...`; `--debug` prints the
traceback), 2 a usage error; `live` exits 130 (143) when a second SIGINT (SIGTERM) ends it at
once (cli_live.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .cli_live import add_live_parser, run_live
from .cli_walker import add_walker_parser, run_walker
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
    demo.add_argument(
        "--symbol", default=None, help="symbol (default BTCUSDT, or the store's only symbol)"
    )
    demo.add_argument("--store", metavar="ROOT", help="run on a candle store instead")
    demo.add_argument("--exchange-id", metavar="ID", help="the store's exchange id (with --store)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    backtest = sub.add_parser("backtest", help="backtest a strategy registered by FILE")
    backtest.add_argument("file", help="Python file or module that registers the schemas")
    backtest.add_argument("--symbol", required=True)
    backtest.add_argument("--strategy", required=True)
    backtest.add_argument("--exchange", required=True)
    backtest.add_argument("--frame", required=True)
    backtest.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    backtest.add_argument("--md", metavar="DIR", help="write the Markdown report into DIR")
    backtest.add_argument("--html", metavar="DIR", help="write the HTML report into DIR")

    report = sub.add_parser("report", help="backtest a strategy and write its reports")
    report.add_argument("file", help="Python file or module that registers the schemas")
    report.add_argument("--symbol", required=True)
    report.add_argument("--strategy", required=True)
    report.add_argument("--exchange", required=True)
    report.add_argument("--frame", required=True)
    report.add_argument("--out", required=True, metavar="DIR", help="directory of the reports")
    report.add_argument(
        "--format",
        type=_report_formats,
        default=["md", "html"],
        metavar="md,html",
        help="comma-separated report formats (default md,html)",
    )
    report.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    add_live_parser(sub)
    add_walker_parser(sub)

    download = sub.add_parser(
        "download", help="download candles from a ccxt exchange into a candle store"
    )
    download.add_argument(
        "--exchange-id", required=True, metavar="ID", help="ccxt id, e.g. binance"
    )
    download.add_argument(
        "--symbols",
        required=True,
        type=_symbol_list,
        help="comma-separated, e.g. BTC/USDT,ETH/USDT",
    )
    download.add_argument("--interval", default="1m", help="candle interval (default 1m)")
    download.add_argument("--start", required=True, type=_date, help="YYYY-MM-DD or ISO-8601 (UTC)")
    download.add_argument("--end", required=True, type=_date, help="exclusive, like --start")
    download.add_argument("--store", required=True, metavar="ROOT", help="candle store directory")
    download.add_argument(
        "--ccxt-config",
        type=_ccxt_config,
        default=None,
        metavar="JSON",
        help="ccxt exchange config as JSON, or @file.json",
    )
    download.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _symbol_list(text: str) -> list[str]:
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("expected comma-separated symbols, e.g. BTC/USDT,ETH/USDT")
    return symbols


def _date(text: str) -> int:
    from .intervals import to_ms

    try:
        return to_ms(text, "date")
    except BacktestKitError:
        raise argparse.ArgumentTypeError(
            f"invalid date {text!r}: expected YYYY-MM-DD or ISO-8601"
        ) from None


def _ccxt_config(text: str) -> dict[str, Any]:
    source = "ccxt config"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {source}: {exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise argparse.ArgumentTypeError(f"{source} must be a JSON object")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and (args.store is None) != (args.exchange_id is None):
        parser.error("demo: --store and --exchange-id go together")
    if args.command == "live" and args.until is not None and args.simulate is None:
        parser.error("live: --until goes with --simulate")
    try:
        if args.command == "demo":
            return _demo_store(args) if args.store is not None else _demo(args)
        if args.command == "download":
            return _download(args)
        if args.command == "report":
            return _report(args)
        if args.command == "live":
            return run_live(args)
        if args.command == "walker":
            return run_walker(args)
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

    args.symbol = args.symbol or "BTCUSDT"
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


def _demo_store(args: argparse.Namespace) -> int:
    """The demo on a stored 1m series: the last `--days` days, after a week of history."""
    import backtest_kit as bk

    from .demo import trend_follow
    from .intervals import MINUTE_MS, iso

    store = bk.data.CandleStore(args.store)
    stored = [s for s in store.series() if s.exchange_id == args.exchange_id and s.interval == "1m"]
    if not stored:
        raise BacktestKitError(
            f"the candle store {args.store!r} has no 1m series of {args.exchange_id!r}; "
            f"fill it with: backtest-kit download --exchange-id {args.exchange_id} ..."
        )
    symbols = [s.symbol for s in stored]
    if args.symbol is None and len(stored) > 1:
        raise BacktestKitError(f"--symbol is needed: the store holds {', '.join(symbols)}")
    info = (
        stored[0]
        if args.symbol is None
        else next((s for s in stored if s.symbol == args.symbol), None)
    )
    if info is None or info.first is None or info.last is None:
        raise BacktestKitError(
            f"--symbol {args.symbol!r} is not in the store for {args.exchange_id!r} "
            f"({', '.join(symbols)})"
        )
    if args.days < 1:
        raise BacktestKitError("--days must be at least 1")
    end = info.last  # the last stored minute: its candle closes one minute later
    start = max(info.first + 7 * 86_400_000, end - args.days * 86_400_000 + MINUTE_MS)
    if start > end:
        raise BacktestKitError(
            f"the stored {info.symbol} series ({iso(info.first)} .. {iso(info.last)}) is too "
            "short: the demo needs a week of history before the backtest"
        )
    bk.data.add_store_exchange("store", args.store, args.exchange_id)
    bk.add_strategy("trend-follow", "15m", trend_follow, note="example strategy")
    bk.add_frame("demo", "1m", start, end)
    days = (end - start + MINUTE_MS) / 86_400_000
    print(
        f"Backtesting 'trend-follow' on {info.symbol} of {args.exchange_id} from the store "
        f"{args.store}, {iso(start)[:16]} .. {iso(end)[:16]} UTC ({days:g} days of 1m candles)"
    )
    results = _run_with_progress(
        info.symbol, "trend-follow", "store", "demo", show=not args.no_progress
    )
    _print_summary(results)
    return 0


def _download(args: argparse.Namespace) -> int:
    from .data.download import download

    report = download(
        args.exchange_id,
        args.symbols,
        args.interval,
        args.start,
        args.end,
        args.store,
        ccxt_config=args.ccxt_config,
        progress=not args.no_progress,
    )
    print(report.format())
    failed = [r for r in report.symbols if r.error is not None]
    if failed:
        print(
            f"error: {len(failed)} of {len(report.symbols)} symbols failed: "
            + "; ".join(f"{r.symbol}: {r.error}" for r in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def _backtest(args: argparse.Namespace) -> int:
    load_user_module(args.file)
    results = _run_with_progress(
        args.symbol, args.strategy, args.exchange, args.frame, show=not args.no_progress
    )
    _print_summary(results)
    for fmt, directory in (("md", args.md), ("html", args.html)):
        if directory is not None:
            _dump_report(args.symbol, args.strategy, directory, fmt)
    return 0


def _report(args: argparse.Namespace) -> int:
    load_user_module(args.file)
    results = _run_with_progress(
        args.symbol, args.strategy, args.exchange, args.frame, show=not args.no_progress
    )
    _print_summary(results)
    for fmt in args.format:
        _dump_report(args.symbol, args.strategy, args.out, fmt)
    return 0


def _report_formats(text: str) -> list[str]:
    formats = list(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in ("md", "html")]
    if not formats or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown report format {', '.join(unknown) or text!r}: use md, html or md,html"
        )
    return formats


def _dump_report(symbol: str, strategy: str, directory: str, fmt: str) -> None:
    """`Backtest.dump` in one format; says where the file went (a failed write is an error)."""
    import backtest_kit as bk

    file = asyncio.run(bk.Backtest.dump(symbol, strategy, path=directory, format=fmt))
    if file is None:
        raise BacktestKitError(f"could not write the {fmt} report into {directory!r}")
    print(f"{'HTML' if fmt == 'html' else 'Markdown'} report: {file}")


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
        bars: list[Any] = []  # created at the first event, when the frame count is known
        if show:
            from tqdm import tqdm

            def on_progress(event: bk.ProgressBacktestContract) -> None:
                if not bars:
                    bars.append(tqdm(total=event.total_frames, unit=" frames", unit_scale=True))
                # frames the engine jumps over (idle time, open positions) arrive in one step
                bars[0].update(event.processed_frames - bars[0].n)

            bk.listen_backtest_progress(on_progress)
        try:
            return [
                r
                async for r in bk.Backtest.run(
                    symbol, strategy_name=strategy, exchange_name=exchange, frame_name=frame
                )
            ]
        finally:
            for bar in bars:
                bar.close()

    return asyncio.run(run())


def _print_summary(results: list[Any]) -> None:
    from .demo import format_table, summarize

    print(format_table(summarize(results).rows()))
