"""The risk gate (60 §2–§6): one `RiskClient` per (profile, mode) holding the registry of
active positions shared by every strategy that names the profile, and the `RiskGate` a
strategy uses (none, one or several profiles, checked in list order).

No signal lifecycle here: the strategy client decides when to check, add and remove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import RISK, VALIDATION, call_user
from ..model.events import RiskContract
from ..model.risk import RiskActivePosition, RiskCheckArgs, RiskValidationPayload

if TYPE_CHECKING:
    from ..model.signal import SignalRow
    from ..runtime import Runtime
    from ..schema import RiskSchema


class RiskClient:
    """One profile in one mode: its validations and its active positions."""

    def __init__(self, schema: RiskSchema, runtime: Runtime, *, backtest: bool) -> None:
        self.schema = schema
        self.runtime = runtime
        self.backtest = backtest
        # key f"{strategy_name}:{symbol}" (the reference's key), in insertion order
        self.positions: dict[str, RiskActivePosition] = {}
        self.loaded = False

    async def check(self, args: RiskCheckArgs) -> bool:
        """Run the validations in order; the first that raises rejects (60 §3.3)."""
        await self.load()
        schema = self.schema
        positions = tuple(self.positions.values())
        payload = RiskValidationPayload(
            symbol=args.symbol,
            pending_signal=args.pending_signal,
            strategy_name=args.strategy_name,
            exchange_name=args.exchange_name,
            current_price=args.current_price,
            timestamp=args.timestamp,
            active_position_count=len(positions),
            active_positions=positions,
        )
        comment: str | None = None
        for rule in schema.validations:
            try:
                await call_user(rule.validate, payload)
            except Exception as exc:
                self.runtime.logger.alert(
                    "RiskClient.validation raised",
                    {"risk_name": schema.risk_name, "error": f"{type(exc).__name__}: {exc}"},
                )
                await self.runtime.bus.emit(VALIDATION, exc)
                comment = rule.note or "N/A"
                break
        limit = schema.max_concurrent_positions
        if comment is None and limit is not None and len(positions) >= limit:
            comment = f"max_concurrent_positions ({limit}) reached"
        callbacks = schema.callbacks
        if comment is not None:
            self.runtime.logger.info(
                "RiskClient.rejected", {"risk_name": schema.risk_name, "comment": comment}
            )
            await self.runtime.bus.emit(
                RISK,
                RiskContract(
                    symbol=args.symbol,
                    pending_signal=args.pending_signal,
                    strategy_name=args.strategy_name,
                    exchange_name=args.exchange_name,
                    current_price=args.current_price,
                    active_position_count=len(positions),
                    comment=comment,
                    timestamp=args.timestamp,
                    backtest=self.backtest,
                ),
            )
            if callbacks.on_rejected is not None:
                await call_user(callbacks.on_rejected, args.symbol, args)
            return False
        if callbacks.on_allowed is not None:
            await call_user(callbacks.on_allowed, args.symbol, args)
        return True

    async def load(self) -> None:
        """Live: read the stored registry once (40 §5); entries of strategies that are not
        registered are kept and logged (nothing prunes them, 60 §4.3)."""
        if self.backtest or self.loaded:
            return
        from ..persist import PersistRiskAdapter

        stored = await PersistRiskAdapter.read_position_data(self.schema.risk_name)
        self.positions = dict(stored)
        for key, position in self.positions.items():
            if position.strategy_name not in self.runtime.strategies:
                self.runtime.logger.warn(
                    "RiskClient.load: position of an unregistered strategy",
                    {"risk_name": self.schema.risk_name, "key": key},
                )
        self.loaded = True

    async def _save(self) -> None:
        if self.backtest:
            return
        from ..persist import PersistRiskAdapter

        try:
            await PersistRiskAdapter.write_position_data(
                list(self.positions.items()), self.schema.risk_name
            )
        except Exception as exc:  # derived state: reported, repaired at the next restore
            self.runtime.logger.alert(
                "RiskClient.save failed", {"risk_name": self.schema.risk_name, "error": str(exc)}
            )
            from ..events import ERROR

            await self.runtime.bus.emit(ERROR, exc)

    async def add(self, row: SignalRow, timestamp: int) -> None:
        key = f"{row.strategy_name}:{row.symbol}"
        self.positions[key] = RiskActivePosition(
            signal=row,
            strategy_name=row.strategy_name,
            exchange_name=row.exchange_name,
            open_timestamp=timestamp,
        )
        self.runtime.logger.debug(
            "RiskClient.add", {"risk_name": self.schema.risk_name, "key": key}
        )
        await self._save()

    async def remove(self, row: SignalRow) -> None:
        await self.remove_key(f"{row.strategy_name}:{row.symbol}")

    async def remove_key(self, key: str) -> None:
        if self.positions.pop(key, None) is None:
            return  # removing a missing key is a no-op
        self.runtime.logger.debug(
            "RiskClient.remove", {"risk_name": self.schema.risk_name, "key": key}
        )
        await self._save()


class RiskGate:
    """The profiles one strategy uses; every one is checked (no short-circuit), in order."""

    def __init__(self, clients: list[RiskClient]) -> None:
        self.clients = clients

    async def check(self, args: RiskCheckArgs) -> bool:
        allowed = True
        for client in self.clients:  # [deviation] 60 §2: sequential, deterministic order
            if not await client.check(args):
                allowed = False
        return allowed

    async def add(self, row: SignalRow, timestamp: int) -> None:
        for client in self.clients:
            await client.add(row, timestamp)

    async def remove(self, row: SignalRow) -> None:
        for client in self.clients:
            await client.remove(row)


def risk_client(runtime: Runtime, risk_name: str, *, backtest: bool) -> RiskClient:
    """The shared client of a profile in one mode (created on first use)."""
    key = (risk_name, backtest)
    client: RiskClient | None = runtime.risk_clients.get(key)
    if client is None:
        client = RiskClient(runtime.risks[risk_name], runtime, backtest=backtest)
        runtime.risk_clients[key] = client
    return client


def risk_gate(runtime: Runtime, risk_names: tuple[str, ...], *, backtest: bool) -> RiskGate | None:
    """The gate of a strategy naming `risk_names`; None when it names no profile."""
    if not risk_names:
        return None
    return RiskGate([risk_client(runtime, name, backtest=backtest) for name in risk_names])


def reset_risk(runtime: Runtime, risk_names: tuple[str, ...], *, backtest: bool) -> None:
    """Empty these profiles' registries in one mode (60 §4.4): a backtest starts empty, a live
    run reloads from the store. The client objects stay, so runs sharing a profile keep
    sharing one registry (a strategy already running sees what a new one opens)."""
    for name in risk_names:
        client: RiskClient | None = runtime.risk_clients.get((name, backtest))
        if client is not None:
            client.positions.clear()
            client.loaded = False
