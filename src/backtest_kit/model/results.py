"""`PnL` and the six tick results (`IdleResult` … `CancelledResult`) discriminated by
``action`` (10 §5–§8).

Records only: no I/O, no engine logic, no computation (PnL is computed in `core/pnl.py`).
These records are built on every tick, so construction stays a plain frozen-slots
``__init__`` with no ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from .signal import SignalRow

CloseReason = Literal["take_profit", "stop_loss", "time_expired"]


@dataclass(frozen=True, slots=True)
class PnL:
    """Result of a closed position: ``pnl_percentage`` net of slippage and fees (percent of
    the slipped entry value), with the **raw** open and close prices (10 §7)."""

    pnl_percentage: float
    price_open: float
    price_close: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "pnl_percentage": self.pnl_percentage,
            "price_open": self.price_open,
            "price_close": self.price_close,
        }


# `action` is a real dataclass field (init=False, fixed default) so that it is the first
# field, shows in repr/asdict and narrows the `TickResult` union for type checkers; callers
# never pass it.


@dataclass(frozen=True, slots=True)
class IdleResult:
    """No signal: ``signal`` is ``None``; ``current_price`` is the tick VWAP."""

    action: Literal["idle"] = field(default="idle", init=False)
    signal: None
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": None,
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
        }


@dataclass(frozen=True, slots=True)
class ScheduledResult:
    """A limit order is waiting for its entry: ``signal`` is the new scheduled row;
    ``current_price`` is the tick VWAP."""

    action: Literal["scheduled"] = field(default="scheduled", init=False)
    signal: SignalRow
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": self.signal.to_dict(),
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
        }


@dataclass(frozen=True, slots=True)
class OpenedResult:
    """A position opened: ``signal`` is the open row; ``current_price`` is
    ``signal.price_open`` (not the VWAP)."""

    action: Literal["opened"] = field(default="opened", init=False)
    signal: SignalRow
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": self.signal.to_dict(),
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
        }


@dataclass(frozen=True, slots=True)
class ActiveResult:
    """A position (or a waiting scheduled row) is still being monitored; ``percent_tp`` /
    ``percent_sl`` are the progress toward TP / SL in percent (capped at 100, the other 0)."""

    action: Literal["active"] = field(default="active", init=False)
    signal: SignalRow
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool
    percent_tp: float
    percent_sl: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": self.signal.to_dict(),
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
            "percent_tp": self.percent_tp,
            "percent_sl": self.percent_sl,
        }


@dataclass(frozen=True, slots=True)
class ClosedResult:
    """A position closed: ``current_price`` is the close price (10 §6), ``close_timestamp``
    int ms UTC, ``pnl`` the net result."""

    action: Literal["closed"] = field(default="closed", init=False)
    signal: SignalRow
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool
    close_reason: CloseReason
    close_timestamp: int
    pnl: PnL

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": self.signal.to_dict(),
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
            "close_reason": self.close_reason,
            "close_timestamp": self.close_timestamp,
            "pnl": self.pnl.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class CancelledResult:
    """A scheduled row was cancelled before entry (timeout or stop loss first); no PnL.
    ``current_price`` is the VWAP at cancellation, ``close_timestamp`` int ms UTC."""

    action: Literal["cancelled"] = field(default="cancelled", init=False)
    signal: SignalRow
    current_price: float
    strategy_name: str
    exchange_name: str
    symbol: str
    backtest: bool
    close_timestamp: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "signal": self.signal.to_dict(),
            "current_price": self.current_price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
            "close_timestamp": self.close_timestamp,
        }


TickResult: TypeAlias = (
    IdleResult | ScheduledResult | OpenedResult | ActiveResult | ClosedResult | CancelledResult
)

__all__ = [
    "ActiveResult",
    "CancelledResult",
    "CloseReason",
    "ClosedResult",
    "IdleResult",
    "OpenedResult",
    "PnL",
    "ScheduledResult",
    "TickResult",
]
