"""What every run does before its loop (30 §3–§4, 40 §1, §2.5): check the symbol and the
schemas it needs, and build a fresh strategy client whose risk profiles start over.
Shared by Backtest and Live; no loop here."""

from __future__ import annotations

from ..core.exchange import ExchangeClient
from ..core.risk import reset_risk, risk_gate
from ..core.strategy import StrategyClient
from ..errors import BacktestKitError
from ..runtime import Runtime
from ..schema import ExchangeSchema, SizingSchema, StrategySchema, require


def require_strategy(method: str, strategy_name: str) -> StrategySchema:
    """The strategy schema and every risk profile it names, or a `RegistryError`."""
    schema: StrategySchema = require("strategy", strategy_name, method)
    for risk in schema.risk_names():
        require("risk", risk, method)
    return schema


def require_run(
    method: str, symbol: str, strategy_name: str, exchange_name: str
) -> tuple[StrategySchema, ExchangeSchema, SizingSchema | None]:
    """Everything a run needs registered, checked at the call: the symbol, the strategy and
    its risk profiles, the exchange, the sizing profile it names."""
    if not isinstance(symbol, str) or not symbol:
        raise BacktestKitError(f"{method}: symbol must be a non-empty string, got {symbol!r}")
    schema = require_strategy(method, strategy_name)
    exchange: ExchangeSchema = require("exchange", exchange_name, method)
    sizing: SizingSchema | None = (
        require("sizing", schema.sizing_name, method) if schema.sizing_name else None
    )
    return schema, exchange, sizing


def fresh_strategy(
    runtime: Runtime,
    schema: StrategySchema,
    exchange: ExchangeClient,
    sizing: SizingSchema | None,
    *,
    symbol: str,
    backtest: bool,
) -> StrategyClient:
    """A new client for `(symbol, strategy, mode)`, memoised on the runtime; the mode's
    registries of its risk profiles are emptied first (backtest: start empty; live: reloaded
    from the store)."""
    reset_risk(runtime, schema.risk_names(), backtest=backtest)
    client = StrategyClient(
        schema,
        exchange,
        runtime,
        symbol=symbol,
        backtest=backtest,
        risk=risk_gate(runtime, schema.risk_names(), backtest=backtest),
        sizing=sizing,
    )
    runtime.strategy_clients[(symbol, schema.strategy_name, backtest)] = client
    return client
