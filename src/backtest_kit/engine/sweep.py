"""`bk.sweep`: a parameter grid as strategies, compared by a walker (97 §4)."""

from __future__ import annotations

import concurrent.futures
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from ..report.records import BacktestStatistics
from ..runtime import current
from ..schema import add_strategy
from ..schema_walker import add_walker, canonical_metric
from .walker import Walker

if TYPE_CHECKING:
    import pandas as pd


def _numeric_fields() -> list[str]:
    names = []
    for f in fields(BacktestStatistics):
        annotation = str(f.type)
        if ("float" in annotation or "int" in annotation) and "list" not in annotation:
            names.append(f.name)
    return names


def sweep(
    strategy_name_prefix: str,
    factory: Callable[..., Callable[..., Any]],
    grid: Mapping[str, Sequence[Any]],
    *,
    symbol: str,
    exchange_name: str,
    frame_name: str,
    metric: str = "sharpe_ratio",
    workers: int | None = None,
    executor: concurrent.futures.Executor | str | None = None,
    module: str | Path | None = None,
) -> pd.DataFrame:
    """Backtest one strategy per combination of `grid` and return a DataFrame sorted by
    `metric` (best first, missing values last)::

        def make(fast, slow):
            async def get_signal(symbol, when): ...
            return get_signal
        df = bk.sweep("sma", make, {"fast": [5, 10], "slow": [50, 100]}, symbol="BTCUSDT",
                      exchange_name="sample", frame_name="q1", metric="total_pnl")

    Registers strategies `f"{prefix}-{i}"` (interval `factory.interval` or `"1m"`) and the
    walker `f"{prefix}-sweep"`. With `workers`/`executor` the workers import `module`, which
    must register the same strategies (the factory must be importable at module level)."""
    import pandas as pd

    owner = "sweep"
    if not isinstance(strategy_name_prefix, str) or not strategy_name_prefix:
        raise ValidationError(f"{owner}: strategy_name_prefix must be a non-empty string")
    if not callable(factory):
        raise ValidationError(f"{owner}: factory must be callable, got {factory!r}")
    if not isinstance(grid, Mapping) or not grid:
        raise ValidationError(f"{owner}: grid must be a non-empty dict of lists")
    for key, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise ValidationError(f"{owner}: grid[{key!r}] must be a non-empty list")
    canonical = canonical_metric(metric, owner)
    keys = list(grid)
    combos = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]
    interval = getattr(factory, "interval", "1m")
    names = []
    builds = current().extensions.setdefault("sweep_builds", {})
    for i, params in enumerate(combos):
        name = f"{strategy_name_prefix}-{i}"
        add_strategy(name, interval, factory(**params), note=repr(params))
        names.append(name)
        # a worker of a parallel sweep registers the strategy from the factory (97 §4)
        builds[name] = (
            getattr(factory, "__module__", "__main__"),
            getattr(factory, "__qualname__", ""),
            params,
            interval,
        )
    walker_name = f"{strategy_name_prefix}-sweep"
    add_walker(walker_name, exchange_name, frame_name, names, metric=canonical)
    contracts = Walker.run_sync(
        symbol, walker_name=walker_name, workers=workers, executor=executor, module=module
    )
    numeric = _numeric_fields()
    rows = []
    for params, name in zip(combos, names, strict=True):
        row: dict[str, Any] = dict(params)
        row["strategy_name"] = name
        stats = next((c.stats for c in contracts if c.strategy_name == name), None)
        for f in numeric:
            value = getattr(stats, f) if stats is not None else None
            row[f] = math.nan if value is None else value
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*keys, "strategy_name", *numeric])
    return frame.sort_values(canonical, ascending=False, na_position="last", kind="stable")


__all__ = ["sweep"]
