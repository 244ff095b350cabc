"""Walker event payloads (70 §8, 85 §3.7): `WalkerContract`, `ProgressWalkerContract`,
`WalkerCompleteContract` and the internal `WalkerStopContract`.

Records only; the walker engine (engine/walker.py) builds and emits them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..report.records import BacktestStatistics


@dataclass(frozen=True, slots=True)
class WalkerContract:
    """One strategy of a walker was tested (`listen_walker`, the walker collector)."""

    walker_name: str
    exchange_name: str
    frame_name: str
    symbol: str
    strategy_name: str
    stats: BacktestStatistics
    metric_value: float | None
    metric: str
    best_metric: float | None
    best_strategy: str | None
    strategies_tested: int
    total_strategies: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "walker_name": self.walker_name,
            "exchange_name": self.exchange_name,
            "frame_name": self.frame_name,
            "symbol": self.symbol,
            "strategy_name": self.strategy_name,
            "stats": self.stats.to_dict(),
            "metric_value": self.metric_value,
            "metric": self.metric,
            "best_metric": self.best_metric,
            "best_strategy": self.best_strategy,
            "strategies_tested": self.strategies_tested,
            "total_strategies": self.total_strategies,
        }


@dataclass(frozen=True, slots=True)
class ProgressWalkerContract:
    """Walker progress (`listen_walker_progress`): ``progress = processed / total``."""

    walker_name: str
    exchange_name: str
    frame_name: str
    symbol: str
    total_strategies: int
    processed_strategies: int
    progress: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "walker_name": self.walker_name,
            "exchange_name": self.exchange_name,
            "frame_name": self.frame_name,
            "symbol": self.symbol,
            "total_strategies": self.total_strategies,
            "processed_strategies": self.processed_strategies,
            "progress": self.progress,
        }


@dataclass(frozen=True, slots=True)
class WalkerCompleteContract:
    """The walker's final result (`listen_walker_complete`, `on_complete`)."""

    walker_name: str
    symbol: str
    exchange_name: str
    frame_name: str
    metric: str
    total_strategies: int
    best_strategy: str | None
    best_metric: float | None
    best_stats: BacktestStatistics | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "walker_name": self.walker_name,
            "symbol": self.symbol,
            "exchange_name": self.exchange_name,
            "frame_name": self.frame_name,
            "metric": self.metric,
            "total_strategies": self.total_strategies,
            "best_strategy": self.best_strategy,
            "best_metric": self.best_metric,
            "best_stats": None if self.best_stats is None else self.best_stats.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class WalkerStopContract:
    """A stop request for one strategy of a walker (internal, 70 §5)."""

    symbol: str
    strategy_name: str
    walker_name: str


__all__ = [
    "ProgressWalkerContract",
    "WalkerCompleteContract",
    "WalkerContract",
    "WalkerStopContract",
]
