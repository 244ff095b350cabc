"""Walker schemas and their registration: `add_walker`, `list_walkers`, `WalkerCallbacks` (70 §1).

Like every `add_*` (schema.py): every argument is validated first and nothing is registered on
failure. Referenced exchange, frame and strategies are checked when the walker runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import RegistryError, ValidationError
from .runtime import current
from .schema import _callbacks, _name, _note

Fn = Callable[..., Any]

# canonical metric -> reference literal (70 §2); every metric is maximised
WALKER_METRICS: Final[dict[str, str]] = {
    "sharpe_ratio": "sharpeRatio",
    "annualized_sharpe_ratio": "annualizedSharpeRatio",
    "win_rate": "winRate",
    "total_pnl": "totalPnl",
    "certainty_ratio": "certaintyRatio",
    "avg_pnl": "avgPnl",
    "expected_yearly_returns": "expectedYearlyReturns",
}
_ALIASES: Final = {alias: name for name, alias in WALKER_METRICS.items()}


@dataclass(frozen=True, slots=True)
class WalkerCallbacks:
    """Optional walker callbacks (70 §6); each may be sync or `async def`.

    `on_strategy_start(strategy_name, symbol)`, `on_strategy_complete(strategy_name, symbol,
    stats, metric_value)`, `on_strategy_error(strategy_name, symbol, error)`,
    `on_complete(results)`."""

    on_strategy_start: Fn | None = None
    on_strategy_complete: Fn | None = None
    on_strategy_error: Fn | None = None
    on_complete: Fn | None = None


@dataclass(frozen=True, slots=True)
class WalkerSchema:
    walker_name: str
    exchange_name: str
    frame_name: str
    strategies: tuple[str, ...]
    metric: str = "sharpe_ratio"
    note: str = ""
    callbacks: WalkerCallbacks = WalkerCallbacks()


def canonical_metric(metric: object, owner: str) -> str:
    """The canonical (snake_case) metric name; camelCase reference literals are accepted."""
    if isinstance(metric, str):
        if metric in WALKER_METRICS:
            return metric
        if metric in _ALIASES:
            return _ALIASES[metric]
    raise ValidationError(
        f"{owner}: unknown metric {metric!r}; valid metrics: {', '.join(WALKER_METRICS)}"
    )


def add_walker(
    walker_name: str,
    exchange_name: str,
    frame_name: str,
    strategies: Sequence[str],
    metric: str = "sharpe_ratio",
    note: str = "",
    callbacks: WalkerCallbacks | Mapping[str, Fn | None] | None = None,
) -> WalkerSchema:
    """Register a walker: backtest `strategies` in order on one exchange and frame and keep
    the best by `metric` (70 §1)::

        bk.add_walker("cmp", "sample", "jan", ["sma-fast", "sma-slow"], metric="total_pnl")
        bk.Walker.run_sync("BTCUSDT", walker_name="cmp")
    """
    name = _name(walker_name, "walker_name")
    owner = f"walker {name!r}"
    exchange = _name(exchange_name, "exchange_name")
    frame = _name(frame_name, "frame_name")
    if not isinstance(strategies, list | tuple):
        raise ValidationError(
            f"{owner}: strategies must be a list, got {type(strategies).__name__}"
        )
    if not strategies:
        raise ValidationError(f"{owner}: strategies must not be empty")
    if len(set(map(repr, strategies))) != len(strategies):
        raise ValidationError(f"{owner}: found duplicate strategies {list(strategies)!r}")
    for entry in strategies:
        if not isinstance(entry, str) or not entry:
            raise ValidationError(
                f"{owner}: every strategy must be a non-empty string, got {entry!r}"
            )
    registry = current().walkers
    if name in registry:
        raise RegistryError(f"walker {name!r} already exist")
    schema = WalkerSchema(
        walker_name=name,
        exchange_name=exchange,
        frame_name=frame,
        strategies=tuple(strategies),
        metric=canonical_metric(metric, owner),
        note=_note(note, owner),
        callbacks=_callbacks(WalkerCallbacks, callbacks, owner),  # type: ignore[type-var]
    )
    current().logger.info("add.add_walker", {"walker_name": name})
    registry[name] = schema
    return schema


def list_walkers() -> list[WalkerSchema]:
    """Registered walkers, in registration order."""
    return list(current().walkers.values())


__all__ = [
    "WALKER_METRICS",
    "WalkerCallbacks",
    "WalkerSchema",
    "add_walker",
    "canonical_metric",
    "list_walkers",
]
