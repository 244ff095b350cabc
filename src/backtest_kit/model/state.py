"""The live state records persisted for crash safety (40 §4.2): a position's or a waiting
signal's phase, its row, the result not yet delivered, and the `when` of the writing tick.

Records and their JSON shape only: no I/O (persist.py) and no decisions (core/strategy.py).
`from_dict` raises `PersistError` for any shape it cannot read; the caller adds the location.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from ..errors import PersistError
from .results import (
    CancelledResult,
    ClosedResult,
    OpenedResult,
    PnL,
    ScheduledResult,
)
from .signal import SignalRow

StateKind = Literal["signal", "schedule"]
FORMAT: Final = 1

# phase -> the result a transitional phase carries
_TRANSITIONAL: Final[dict[str, str]] = {
    "opening": "opened",
    "closing": "closed",
    "scheduling": "scheduled",
    "cancelling": "cancelled",
}
_PHASES: Final[dict[StateKind, tuple[str, ...]]] = {
    "signal": ("opening", "open", "closing"),
    "schedule": ("scheduling", "waiting", "cancelling"),
}

StoredResult = OpenedResult | ClosedResult | ScheduledResult | CancelledResult


@dataclass(frozen=True, slots=True)
class SignalState:
    """One stored record of the signal or the schedule store.

    `phase` is None for the empty state; `signal` is set iff `phase` is; `result` is set iff
    the phase is transitional (`opening`, `closing`, `scheduling`, `cancelling`).
    """

    phase: str | None
    signal: SignalRow | None
    result: StoredResult | None
    tick_at: int

    @classmethod
    def empty(cls, tick_at: int = 0) -> SignalState:
        return cls(None, None, None, tick_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "phase": self.phase,
            "signal": self.signal.to_dict() if self.signal is not None else None,
            "result": self.result.to_dict() if self.result is not None else None,
            "tick_at": self.tick_at,
        }

    @classmethod
    def from_dict(cls, data: object, kind: StateKind) -> SignalState:
        """Read a record, also the reference's forms: JSON null (empty) and a bare row."""
        if data is None:
            return cls.empty()
        if not isinstance(data, dict):
            raise PersistError(
                f"{kind} record must be an object or null, got {type(data).__name__}"
            )
        if "format" not in data and "id" in data and "position" in data:
            row = SignalRow.from_dict(data)  # the reference's bare row
            return cls("open" if kind == "signal" else "waiting", row, None, 0)
        if data.get("format") != FORMAT:
            raise PersistError(f"{kind} record has unknown format {data.get('format')!r}")
        phase = data.get("phase")
        tick_at = data.get("tick_at", data.get("tickAt"))
        if isinstance(tick_at, bool) or not isinstance(tick_at, int):
            raise PersistError(f"{kind} record: tick_at must be an int, got {tick_at!r}")
        if phase is None:
            if data.get("signal") is not None or data.get("result") is not None:
                raise PersistError(f"{kind} record: an empty phase carries no signal or result")
            return cls.empty(tick_at)
        if phase not in _PHASES[kind]:
            raise PersistError(
                f"{kind} record: unknown phase {phase!r}; valid: {', '.join(_PHASES[kind])}"
            )
        raw_signal = data.get("signal")
        if not isinstance(raw_signal, dict):
            raise PersistError(f"{kind} record in phase {phase!r} needs a signal")
        row = SignalRow.from_dict(raw_signal)
        raw_result = data.get("result")
        expected = _TRANSITIONAL.get(phase)
        if expected is None:
            if raw_result is not None:
                raise PersistError(f"{kind} record in phase {phase!r} carries no result")
            return cls(phase, row, None, tick_at)
        if not isinstance(raw_result, dict) or raw_result.get("action") != expected:
            raise PersistError(f"{kind} record in phase {phase!r} needs a {expected!r} result")
        return cls(phase, row, result_from_dict(raw_result), tick_at)


def result_from_dict(data: dict[str, Any]) -> StoredResult:
    """Rebuild an opened/closed/scheduled/cancelled result from its `to_dict()` form."""
    try:
        action = data["action"]
        common: dict[str, Any] = {
            "signal": SignalRow.from_dict(data["signal"]),
            "current_price": float(data["current_price"]),
            "strategy_name": str(data["strategy_name"]),
            "exchange_name": str(data["exchange_name"]),
            "symbol": str(data["symbol"]),
            "backtest": bool(data["backtest"]),
        }
        if action == "opened":
            return OpenedResult(**common)
        if action == "scheduled":
            return ScheduledResult(**common)
        if action == "cancelled":
            return CancelledResult(**common, close_timestamp=int(data["close_timestamp"]))
        if action == "closed":
            pnl = data["pnl"]
            if data["close_reason"] not in ("take_profit", "stop_loss", "time_expired"):
                raise ValueError(f"unknown close_reason {data['close_reason']!r}")
            return ClosedResult(
                **common,
                close_reason=data["close_reason"],
                close_timestamp=int(data["close_timestamp"]),
                pnl=PnL(
                    pnl_percentage=float(pnl["pnl_percentage"]),
                    price_open=float(pnl["price_open"]),
                    price_close=float(pnl["price_close"]),
                ),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise PersistError(f"stored result is malformed: {type(exc).__name__}: {exc}") from None
    raise PersistError(f"stored result has unknown action {action!r}")
