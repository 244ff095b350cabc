"""Execution and method contexts (50 §9), carried by `contextvars`.

The execution context says *where and when* the engine is (`symbol`, `when`, `backtest`);
the method context says *which* schemas a run uses. Helpers such as `get_candles` read them,
so user code never passes time around and can never see the future.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    symbol: str
    when: int  # int ms UTC
    backtest: bool

    def to_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "when": self.when, "backtest": self.backtest}


@dataclass(frozen=True, slots=True)
class MethodContext:
    strategy_name: str
    exchange_name: str
    frame_name: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "exchange_name": self.exchange_name,
            "strategy_name": self.strategy_name,
            "frame_name": self.frame_name,
        }


execution_context: ContextVar[ExecutionContext | None] = ContextVar(
    "backtest_kit_execution_context", default=None
)
method_context: ContextVar[MethodContext | None] = ContextVar(
    "backtest_kit_method_context", default=None
)
