"""Records of the risk gate (60 §3, §4): check arguments, the validation payload and the
active positions. Records only: the gate itself lives in core/risk.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .signal import SignalRow


@dataclass(frozen=True, slots=True)
class RiskActivePosition:
    """An open position registered with a risk profile (60 §4.1)."""

    signal: SignalRow
    strategy_name: str
    exchange_name: str
    open_timestamp: int  # execution time of the opening, int ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal.to_dict(),
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "open_timestamp": self.open_timestamp,
        }


@dataclass(frozen=True, slots=True)
class RiskCheckArgs:
    """What a strategy asks the gate about (60 §3.1)."""

    symbol: str
    pending_signal: SignalRow
    strategy_name: str
    exchange_name: str
    current_price: float
    timestamp: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "pending_signal": self.pending_signal.to_dict(),
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "current_price": self.current_price,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True, slots=True)
class RiskValidationPayload:
    """What a risk validation sees (60 §3.2): the check plus this profile's open positions."""

    symbol: str
    pending_signal: SignalRow
    strategy_name: str
    exchange_name: str
    current_price: float
    timestamp: int
    active_position_count: int
    active_positions: tuple[RiskActivePosition, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "pending_signal": self.pending_signal.to_dict(),
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "current_price": self.current_price,
            "timestamp": self.timestamp,
            "active_position_count": self.active_position_count,
            "active_positions": [p.to_dict() for p in self.active_positions],
        }
