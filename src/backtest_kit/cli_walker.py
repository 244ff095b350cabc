"""`backtest-kit walker FILE --symbol S --walker W [--workers N] [--ray ADDRESS] [--md DIR]
[--html DIR]` (97 §3): runs `Walker` with a progress bar over strategies and prints the
comparison report."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from .errors import BacktestKitError


def add_walker_parser(sub: Any) -> None:
    """The `walker` subcommand on the `backtest-kit` parser's subparsers."""
    walker = sub.add_parser("walker", help="compare the strategies of a walker registered by FILE")
    walker.add_argument("file", help="Python file or module that registers the schemas")
    walker.add_argument("--symbol", required=True)
    walker.add_argument("--walker", required=True)
    walker.add_argument(
        "--workers", type=int, default=None, metavar="N", help="backtest in N processes"
    )
    walker.add_argument(
        "--ray", metavar="ADDRESS", default=None, help="run on a Ray cluster (extra 'ray')"
    )
    walker.add_argument("--md", metavar="DIR", help="write the Markdown report into DIR")
    walker.add_argument("--html", metavar="DIR", help="write the HTML report into DIR")
    walker.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_walker(args: argparse.Namespace) -> int:
    import backtest_kit as bk

    from .cli import load_user_module

    if args.workers is not None and args.ray is not None:
        raise BacktestKitError("--workers and --ray exclude each other")
    if args.workers is not None and args.workers < 1:
        raise BacktestKitError("--workers must be at least 1")
    load_user_module(args.file)
    # a worker imports the same file (or module) to register the schemas
    module = str(Path(args.file).resolve()) if Path(args.file).exists() else args.file
    executor: str | None = None
    if args.ray is not None:
        os.environ["RAY_ADDRESS"] = args.ray
        executor = "ray"
    parallel = args.workers is not None or executor is not None
    schema = next((w for w in bk.list_walkers() if w.walker_name == args.walker), None)
    total = len(schema.strategies) if schema is not None else 0

    async def run() -> None:
        bar: Any = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit=" strategies", leave=True)

        def on_walker(contract: bk.WalkerContract) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"best {contract.best_strategy}", refresh=True)

        off = bk.listen_walker(on_walker)
        try:
            async for _ in bk.Walker.run(
                args.symbol,
                walker_name=args.walker,
                workers=args.workers,
                executor=executor,
                module=module if parallel else None,
            ):
                pass
        finally:
            off()
            if bar is not None:
                bar.close()

    asyncio.run(run())
    print(asyncio.run(bk.Walker.get_report(args.symbol, args.walker)))
    if args.md is not None:
        file = asyncio.run(bk.Walker.dump(args.symbol, args.walker, path=args.md))
        if file is None:
            raise BacktestKitError(f"could not write the Markdown report into {args.md!r}")
        print(f"Markdown report: {file}")
    if args.html is not None:
        page = asyncio.run(bk.Walker.dump(args.symbol, args.walker, path=args.html, format="html"))
        if page is None:
            raise BacktestKitError(f"could not write the HTML report into {args.html!r}")
        print(f"HTML report: {page}")
    return 0


__all__ = ["add_walker_parser", "run_walker"]
