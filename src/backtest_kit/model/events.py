"""Event payloads emitted on the listener channels: `DoneContract`, `ProgressBacktestContract`
and `PerformanceContract` (85 §3.2, §3.3, §3.6).

Records only: no I/O, no emitting, no engine logic; the engines build these and the runtime
delivers them. Timestamps are int ms UTC, durations float ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DoneContract:
    """A run finished or was stopped (85 §3.2).

    For walker runs ``strategy_name`` is the walker name and ``walker_name`` is set;
    ``stopped`` is ``True`` when a stop or cancel ended the run.
    """

    exchange_name: str
    strategy_name: str
    backtest: bool
    symbol: str
    walker_name: str | None = None
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange_name": self.exchange_name,
            "strategy_name": self.strategy_name,
            "backtest": self.backtest,
            "symbol": self.symbol,
            "walker_name": self.walker_name,
            "stopped": self.stopped,
        }


@dataclass(frozen=True, slots=True)
class ProgressBacktestContract:
    """Backtest progress (85 §3.3): ``progress = processed_frames / total_frames`` as a 0–1
    fraction (0.0 when there are no frames)."""

    exchange_name: str
    strategy_name: str
    symbol: str
    total_frames: int
    processed_frames: int
    progress: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange_name": self.exchange_name,
            "strategy_name": self.strategy_name,
            "symbol": self.symbol,
            "total_frames": self.total_frames,
            "processed_frames": self.processed_frames,
            "progress": self.progress,
        }


@dataclass(frozen=True, slots=True)
class PerformanceContract:
    """One timing sample (85 §3.6). ``timestamp`` / ``previous_timestamp`` are int ms
    (``previous_timestamp`` is ``None`` for a run's first sample); ``duration`` is float ms
    from a monotonic clock; ``metric_type`` is ``backtest_total``, ``backtest_timeframe``,
    ``backtest_signal`` or ``live_tick``."""

    timestamp: int
    previous_timestamp: int | None
    metric_type: str
    duration: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "previous_timestamp": self.previous_timestamp,
            "metric_type": self.metric_type,
            "duration": self.duration,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
        }


__all__ = ["DoneContract", "PerformanceContract", "ProgressBacktestContract"]


@dataclass(frozen=True, slots=True)
class _PartialContract:
    """The fields of a milestone event (60 §9.3): `data` is the active `SignalRow`;
    `timestamp` is the tick (live) or the candle's open time (backtest)."""

    symbol: str
    strategy_name: str
    exchange_name: str
    data: Any
    current_price: float
    level: int
    backtest: bool
    timestamp: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "data": self.data.to_dict(),
            "current_price": self.current_price,
            "level": self.level,
            "backtest": self.backtest,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True, slots=True)
class PartialProfitContract(_PartialContract):
    """A position reached a new profit milestone `level` (10 ... 100 % of the way to TP)."""


@dataclass(frozen=True, slots=True)
class PartialLossContract(_PartialContract):
    """A position reached a new loss milestone `level` (10 ... 100 % of the way to SL); the
    level is positive."""


@dataclass(frozen=True, slots=True)
class RiskContract:
    """A risk profile rejected a signal (60 §5); `timestamp` is the execution time."""

    symbol: str
    pending_signal: Any
    strategy_name: str
    exchange_name: str
    current_price: float
    active_position_count: int
    comment: str
    timestamp: int
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        signal = self.pending_signal
        return {
            "symbol": self.symbol,
            "pending_signal": signal.to_dict() if hasattr(signal, "to_dict") else signal,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "current_price": self.current_price,
            "active_position_count": self.active_position_count,
            "comment": self.comment,
            "timestamp": self.timestamp,
            "backtest": self.backtest,
        }
