"""StrategyClient: the signal state machine of one (symbol, strategy, mode) (20).

Reads top to bottom: the tick (both modes), the generation step, the transitions and their
callbacks, then the backtest fast-forward. Backtest and live drive this same object; they
differ only in where time and prices come from. No loops over frames here (engines own
them), no I/O besides the exchange client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..context import ExecutionContext, execution_context
from ..errors import BacktestKitError, ExchangeError, PersistError, ValidationError
from ..events import (
    ERROR,
    PARTIAL_LOSS,
    PARTIAL_PROFIT,
    SIGNAL,
    SIGNAL_BACKTEST,
    SIGNAL_LIVE,
    VALIDATION,
    call_user,
)
from ..intervals import INTERVAL_MS, MINUTE_MS, iso, ms_to_datetime
from ..model.events import PartialLossContract, PartialProfitContract
from ..model.results import (
    ActiveResult,
    CancelledResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    ScheduledResult,
    TickResult,
)
from ..model.risk import RiskCheckArgs
from .exchange import compute_vwap, rolling_vwap
from .pnl import percent_progress, to_pnl
from .sizing import SizingCalculateParams, calculate, wilder_atr
from .validation import SignalLimits, build_signal_row

if TYPE_CHECKING:
    from ..model.candles import Candles
    from ..model.results import CloseReason
    from ..model.signal import SignalRow
    from ..runtime import Runtime
    from ..schema import SizingSchema, StrategySchema
    from .exchange import ExchangeClient
    from .risk import RiskGate

ForwardResult = ClosedResult | CancelledResult


@dataclass(frozen=True, slots=True)
class ActivationDropped:
    """Internal: a backtest activation refused by risk or blocked by a stop (20 §5.3).

    Never emitted or yielded; the loop resumes at the first frame >= timestamp + 1m.
    """

    timestamp: int


class StrategyClient:
    """The signal lifecycle: idle -> scheduled -> opened -> closed / cancelled."""

    def __init__(
        self,
        schema: StrategySchema,
        exchange: ExchangeClient,
        runtime: Runtime,
        *,
        symbol: str,
        backtest: bool,
        risk: RiskGate | None = None,
        sizing: SizingSchema | None = None,
    ) -> None:
        self.schema = schema
        self.risk = risk
        self.sizing = sizing
        # closed positions of this run, for engine-applied sizing (60 §7.4)
        self.closed_money_pnl = 0.0
        self.closed_count = 0
        self.wins: list[float] = []
        self.losses: list[float] = []
        self.exchange = exchange
        self.runtime = runtime
        self.symbol = symbol
        self.backtest = backtest
        self.strategy_name = schema.strategy_name
        self.exchange_name = exchange.name
        self.interval_ms = INTERVAL_MS[schema.interval]
        self.callbacks = schema.callbacks
        self.mode_topic = SIGNAL_BACKTEST if backtest else SIGNAL_LIVE
        self.pending: SignalRow | None = None
        self.scheduled: SignalRow | None = None
        self.last_signal_at: int | None = None
        self.stopped = False
        # live only (40): the tick being evaluated, what restore() found, the pending ack
        self.tick_when = 0
        self.guard = 0
        self.replay: TickResult | None = None
        self.restored_callback: str | None = None
        self.unacknowledged: TickResult | None = None
        self.stop_requested = asyncio.Event()

    # -- members the engines use (20 §2) ------------------------------------------------------

    def holds_signal(self) -> bool:
        return self.pending is not None or self.scheduled is not None

    @property
    def next_ask_at(self) -> int | None:
        """Instant from which `get_signal` is due; None when never asked (due at once)."""
        if self.last_signal_at is None:
            return None
        return self.last_signal_at + self.interval_ms

    def stop(self) -> None:
        """No `get_signal` after this; an open position is still resolved (20 §8)."""
        self.stopped = True
        if self.backtest:
            self.scheduled = None  # a waiting backtest row is dropped silently

    async def abandon(self) -> None:
        """Drop any held signal without a result (after a failed fetch or fast-forward)."""
        self.scheduled = None
        row = self.pending
        if row is not None:
            await self._risk_remove(row)
            await self._partial_clear(row)
            self.pending = None
            await self._callback("on_write", self.symbol, None, self.backtest)

    async def emit_result(self, result: TickResult) -> None:
        """Publish a result on the mode topic, then on the general signal topic."""
        bus = self.runtime.bus
        await bus.emit(self.mode_topic, result)
        await bus.emit(SIGNAL, result)

    # -- the tick (20 §3) -----------------------------------------------------------------------

    async def tick(self) -> TickResult:
        """One tick at the execution context's `when`."""
        ctx = execution_context.get()
        if ctx is None:
            raise BacktestKitError("StrategyClient.tick() needs an execution context")
        when = ctx.when
        if self.stopped and not self.holds_signal():
            return await self._idle(await self.exchange.vwap(self.symbol, when))
        if self.scheduled is not None:
            return await self._tick_scheduled(self.scheduled, when)
        if self.pending is None:
            return await self._tick_idle(when)
        return await self._tick_pending(self.pending, when)

    async def _tick_idle(self, when: int) -> TickResult:
        last = self.last_signal_at
        due = last is None or when - last >= self.interval_ms
        if due:
            self.last_signal_at = when  # the slot is consumed before anything can fail
        price = self.exchange.stored_vwap(self.symbol, when)
        if price is None:
            price = await self.exchange.vwap(self.symbol, when)
        if not due:
            return await self._idle(price)
        try:
            raw = await self._call_get_signal(when)
        except Exception as exc:
            await self._report_error("StrategyClient.get_signal failed", exc)
            return await self._idle(price)
        if raw is None or self.stopped:
            cbs = self.callbacks
            if cbs.on_idle is None and cbs.on_tick is None:  # the common case, without a hop
                return IdleResult(
                    signal=None,
                    current_price=price,
                    strategy_name=self.strategy_name,
                    exchange_name=self.exchange_name,
                    symbol=self.symbol,
                    backtest=self.backtest,
                )
            return await self._idle(price)
        config = self.runtime.config
        try:
            row = build_signal_row(
                raw,
                current_price=price,
                when=when,
                symbol=self.symbol,
                exchange_name=self.exchange_name,
                strategy_name=self.strategy_name,
                limits=SignalLimits(
                    min_take_profit_percent=config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT,
                    min_stop_loss_percent=config.CC_MIN_STOPLOSS_DISTANCE_PERCENT,
                    max_stop_loss_percent=config.CC_MAX_STOPLOSS_DISTANCE_PERCENT,
                    max_lifetime_minutes=config.CC_MAX_SIGNAL_LIFETIME_MINUTES,
                ),
            )
        except ValidationError as exc:
            await self._reject(exc)
            return await self._idle(price)
        if not row.is_scheduled and self.sizing is not None:
            try:
                row = await self._sized(row, when)
            except ValidationError as exc:
                await self._reject(exc)
                return await self._idle(price)
        try:
            allowed = await self._risk_allows(row, price, when)
        except Exception as exc:  # a raising risk callback: no signal, nothing stored
            await self._report_error("StrategyClient.risk check failed", exc)
            allowed = False
        if not allowed:
            return await self._idle(price)
        if row.is_scheduled:
            return await self._schedule(row, price)
        return await self._open(row)

    async def _call_get_signal(self, when: int) -> Any:
        """Call `get_signal` under `CC_MAX_SIGNAL_GENERATION_SECONDS` (20 §3.4)."""
        limit = self.runtime.config.CC_MAX_SIGNAL_GENERATION_SECONDS
        started = perf_counter()
        result = self.schema.get_signal(self.symbol, ms_to_datetime(when))
        if result is not None and inspect.isawaitable(result):
            try:
                async with asyncio.timeout(limit):
                    return await result
            except TimeoutError:
                raise self._timeout_error() from None
        if perf_counter() - started > limit:
            # [deviation] a sync call cannot be interrupted: its late result is discarded
            raise self._timeout_error()
        return result

    def _timeout_error(self) -> BacktestKitError:
        return BacktestKitError(f"Timeout for {self.strategy_name} symbol={self.symbol}")

    async def _tick_scheduled(self, row: SignalRow, when: int) -> TickResult:
        """A waiting scheduled row, checked on the tick's VWAP (live; 20 §3.2)."""
        price = await self.exchange.vwap(self.symbol, when)
        await_ms = self.runtime.config.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS
        long = row.position == "long"
        if (
            self.stopped
            or when - row.scheduled_at >= await_ms
            or (price <= row.price_stop_loss if long else price >= row.price_stop_loss)
        ):
            return await self._cancel(row, price, when)
        if price <= row.price_open if long else price >= row.price_open:
            sized = await self._activation_allowed(row, when)
            if sized is None:  # the refused signal is dropped, durably first (40 §4.3)
                await self._store("schedule", None, None, None)
                self.scheduled = None
                return await self._idle(price)
            row = sized
            return await self._activate(row, when)
        result = ActiveResult(
            signal=row,
            current_price=price,
            strategy_name=self.strategy_name,
            exchange_name=self.exchange_name,
            symbol=self.symbol,
            backtest=self.backtest,
            percent_tp=0.0,
            percent_sl=0.0,
        )
        await self._callback("on_tick", self.symbol, result, self.backtest)
        return result

    async def _tick_pending(self, row: SignalRow, when: int) -> TickResult:
        """An open position, checked on the tick's VWAP (live; 20 §3.5)."""
        price = await self.exchange.vwap(self.symbol, when)
        long = row.position == "long"
        if when - row.pending_at >= row.minute_estimated_time * MINUTE_MS:
            return await self._close(row, price, "time_expired", when)
        if price >= row.price_take_profit if long else price <= row.price_take_profit:
            return await self._close(row, row.price_take_profit, "take_profit", when)
        if price <= row.price_stop_loss if long else price >= row.price_stop_loss:
            return await self._close(row, row.price_stop_loss, "stop_loss", when)
        percent_tp, percent_sl = percent_progress(row, price)
        await self._partial(row, price, percent_tp, percent_sl, when)
        result = ActiveResult(
            signal=row,
            current_price=price,
            strategy_name=self.strategy_name,
            exchange_name=self.exchange_name,
            symbol=self.symbol,
            backtest=self.backtest,
            percent_tp=percent_tp,
            percent_sl=percent_sl,
        )
        await self._callback("on_tick", self.symbol, result, self.backtest)
        return result

    # -- transitions and their callbacks (20 §1.3); live: durable first (40 §4.3) -------------

    async def _idle(self, price: float) -> IdleResult:
        cbs = self.callbacks
        if cbs.on_idle is not None:
            await self._callback("on_idle", self.symbol, price, self.backtest)
        result = IdleResult(
            signal=None,
            current_price=price,
            strategy_name=self.strategy_name,
            exchange_name=self.exchange_name,
            symbol=self.symbol,
            backtest=self.backtest,
        )
        if cbs.on_tick is not None:
            await self._callback("on_tick", self.symbol, result, self.backtest)
        return result

    def _result_fields(self, row: SignalRow, price: float) -> dict[str, Any]:
        return {
            "signal": row,
            "current_price": price,
            "strategy_name": self.strategy_name,
            "exchange_name": self.exchange_name,
            "symbol": self.symbol,
            "backtest": self.backtest,
        }

    async def _schedule(self, row: SignalRow, price: float) -> ScheduledResult:
        result = ScheduledResult(**self._result_fields(row, price))
        await self._store("schedule", "scheduling", row, result)
        self.scheduled = row
        await self._after_schedule(result)
        return result

    async def _after_schedule(self, result: ScheduledResult) -> None:
        """The steps of a schedule after it is applied (also its replay after a crash)."""
        row = result.signal
        self.runtime.logger.info("StrategyClient.schedule", {"signal_id": row.id})
        await self._callback("on_schedule", self.symbol, row, result.current_price, self.backtest)
        await self._callback("on_tick", self.symbol, result, self.backtest)

    async def _open(self, row: SignalRow, *, activation: bool = False) -> OpenedResult:
        result = OpenedResult(**self._result_fields(row, row.price_open))
        await self._store("signal", "opening", row, result)
        if activation:
            await self._store("schedule", None, None, None)
            self.scheduled = None
        self.pending = row
        await self._callback("on_write", self.symbol, row, self.backtest)
        await self._risk_add(row)
        await self._after_open(result)
        return result

    async def _after_open(self, result: OpenedResult) -> None:
        row = result.signal
        await self._callback("on_open", self.symbol, row, row.price_open, self.backtest)
        await self._callback("on_tick", self.symbol, result, self.backtest)

    async def _activate(self, row: SignalRow, at: int) -> OpenedResult:
        self.runtime.logger.info("StrategyClient.activate", {"signal_id": row.id, "at": iso(at)})
        activated = dataclasses.replace(row, pending_at=at, is_scheduled=False)
        return await self._open(activated, activation=True)

    async def _close(
        self, row: SignalRow, price: float, reason: CloseReason, at: int
    ) -> ClosedResult:
        config = self.runtime.config
        pnl = to_pnl(row, price, slippage=config.CC_PERCENT_SLIPPAGE, fee=config.CC_PERCENT_FEE)
        result = ClosedResult(
            **self._result_fields(row, price), close_reason=reason, close_timestamp=at, pnl=pnl
        )
        await self._store("signal", "closing", row, result)
        self.pending = None
        self.closed_count += 1
        if pnl.pnl_percentage > 0:
            self.wins.append(pnl.pnl_percentage)
        elif pnl.pnl_percentage < 0:  # a break-even trade is neither (it counts in the total)
            self.losses.append(pnl.pnl_percentage)
        if row.cost is not None:
            self.closed_money_pnl += row.cost * pnl.pnl_percentage / 100
        await self._after_close(result)
        return result

    async def _after_close(self, result: ClosedResult) -> None:
        row, reason = result.signal, result.close_reason
        logger = self.runtime.logger
        logger.info("StrategyClient.close", {"signal_id": row.id, "reason": reason})
        if reason == "stop_loss" or (reason == "time_expired" and result.pnl.pnl_percentage < 0):
            logger.warn(
                "StrategyClient.close",
                {"signal_id": row.id, "reason": reason, "pnl": result.pnl.pnl_percentage},
            )
        await self._callback("on_close", self.symbol, row, result.current_price, self.backtest)
        await self._partial_clear(row)
        await self._risk_remove(row)
        await self._callback("on_write", self.symbol, None, self.backtest)
        await self._callback("on_tick", self.symbol, result, self.backtest)

    async def _cancel(self, row: SignalRow, price: float, at: int) -> CancelledResult:
        result = CancelledResult(**self._result_fields(row, price), close_timestamp=at)
        await self._store("schedule", "cancelling", row, result)
        self.scheduled = None
        await self._after_cancel(result)
        return result

    async def _after_cancel(self, result: CancelledResult) -> None:
        row = result.signal
        self.runtime.logger.info(
            "StrategyClient.cancel", {"signal_id": row.id, "at": iso(result.close_timestamp)}
        )
        await self._callback("on_cancel", self.symbol, row, result.current_price, self.backtest)
        await self._callback("on_tick", self.symbol, result, self.backtest)

    async def _callback(self, name: str, *args: Any) -> None:
        """Run a strategy callback; a raising one is reported and the transition goes on."""
        fn = getattr(self.callbacks, name)
        if fn is None:
            return
        try:
            await call_user(fn, *args)
        except Exception as exc:  # [deviation] 20 §1.2
            await self._report_error(f"StrategyClient.{name} raised", exc)

    async def _report_error(self, topic: str, exc: Exception) -> None:
        self.runtime.logger.alert(
            topic,
            {
                "strategy_name": self.strategy_name,
                "symbol": self.symbol,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        await self.runtime.bus.emit(ERROR, exc)

    # -- risk, sizing and partial milestones (60) ----------------------------------------------

    async def _reject(self, exc: ValidationError) -> None:
        """A rejected signal: warn and `listen_validation`, never `listen_error` (02 §3)."""
        self.runtime.logger.warn(
            "StrategyClient.validation", {"strategy_name": self.strategy_name, "error": str(exc)}
        )
        await self.runtime.bus.emit(VALIDATION, exc)

    async def _activation_allowed(self, row: SignalRow, at: int) -> SignalRow | None:
        """A waiting row reaching its price: sized, then risk check C (60 §3.4); the row to
        open, or None when sizing or risk refused it (each refusal reported)."""
        try:
            sized = await self._sized(row, at)
            if await self._risk_allows(sized, sized.price_open, at):
                return sized
        except ValidationError as exc:
            await self._reject(exc)
        except Exception as exc:
            await self._report_error("StrategyClient.risk check failed", exc)
        return None

    async def _risk_allows(self, row: SignalRow, price: float, when: int) -> bool:
        if self.risk is None:
            return True
        return await self.risk.check(
            RiskCheckArgs(
                symbol=self.symbol,
                pending_signal=row,
                strategy_name=self.strategy_name,
                exchange_name=self.exchange_name,
                current_price=price,
                timestamp=when,
            )
        )

    async def _risk_add(self, row: SignalRow) -> None:
        if self.risk is not None:
            await self.risk.add(row, row.pending_at)

    async def _risk_remove(self, row: SignalRow) -> None:
        if self.risk is not None:
            await self.risk.remove(row)

    async def _sized(self, row: SignalRow, at: int) -> SignalRow:
        """The row with `quantity` and `cost` from the strategy's sizing profile (60 §7.4);
        a calculation that fails raises the `ValidationError` of rule `sizing`."""
        schema = self.sizing
        if schema is None:
            return row
        balance = self.runtime.config.CC_ACCOUNT_BALANCE + self.closed_money_pnl
        params = SizingCalculateParams(
            symbol=self.symbol,
            account_balance=balance,
            price_open=row.price_open,
            method=schema.method,
            price_stop_loss=row.price_stop_loss,
        )
        try:
            if schema.method == "kelly-criterion":
                if not self.wins or not self.losses:
                    quantity = 0.0  # Kelly needs at least one win and one loss to estimate
                else:
                    avg_win = sum(self.wins) / len(self.wins)
                    avg_loss = -sum(self.losses) / len(self.losses)
                    params = dataclasses.replace(
                        params,
                        win_rate=len(self.wins) / self.closed_count,
                        win_loss_ratio=avg_win / avg_loss,
                    )
                    quantity = await calculate(schema, params)
            else:
                if schema.method == "atr-based":
                    candles = await self.exchange.get_candles(
                        self.symbol, self.schema.interval, 15, at
                    )
                    params = dataclasses.replace(params, atr=wilder_atr(candles))
                quantity = await calculate(schema, params)
        except ValidationError as exc:
            text = str(exc)
            line = text if text.startswith("sizing: ") else f"sizing: {text}"
            raise ValidationError(
                f"Invalid signal for {row.position} position:\n{line}", errors=(line,), signal=row
            ) from exc
        self.runtime.logger.debug(
            "StrategyClient.sizing", {"signal_id": row.id, "quantity": quantity}
        )
        return dataclasses.replace(row, quantity=quantity, cost=quantity * row.price_open)

    def _levels(self, row: SignalRow) -> tuple[set[int], set[int]]:
        store = self.runtime.partial_levels[self.backtest]
        levels = store.get(row.id)
        if levels is None:
            levels = store[row.id] = (set(), set())
        return levels

    def _milestones_listened(self) -> bool:
        subs = self.runtime.bus.subscriptions
        return bool(subs.get(PARTIAL_PROFIT) or subs.get(PARTIAL_LOSS))

    async def _milestones(
        self, row: SignalRow, price: float, at: int, percent_tp: float, percent_sl: float
    ) -> None:
        """Emit each milestone level newly reached by this evaluation, ascending (60 §9.2)."""
        profit, loss = self._levels(row)
        reached = False
        if percent_tp > 0:
            for level in LEVELS:
                if percent_tp >= level and level not in profit:
                    profit.add(level)
                    reached = True
                    await self._emit_milestone(PARTIAL_PROFIT, row, price, level, at)
        elif percent_sl > 0:
            for level in LEVELS:
                if percent_sl >= level and level not in loss:
                    loss.add(level)
                    reached = True
                    await self._emit_milestone(PARTIAL_LOSS, row, price, level, at)
        if reached:
            await self._save_partial({row.id: (profit, loss)})

    async def _emit_milestone(
        self, topic: str, row: SignalRow, price: float, level: int, at: int
    ) -> None:
        record = PartialProfitContract if topic == PARTIAL_PROFIT else PartialLossContract
        self.runtime.logger.debug(f"StrategyClient.{topic}", {"signal_id": row.id, "level": level})
        await self.runtime.bus.emit(
            topic,
            record(
                symbol=self.symbol,
                strategy_name=row.strategy_name,
                exchange_name=row.exchange_name,
                data=row,
                current_price=price,
                level=level,
                backtest=self.backtest,
                timestamp=at,
            ),
        )

    async def _partial(
        self, row: SignalRow, price: float, percent_tp: float, percent_sl: float, at: int
    ) -> None:
        """One evaluation of an open position: milestone events, then the progress callbacks
        (profit when d > 0, loss when d < 0; 60 §9.4)."""
        if self._milestones_listened():
            await self._milestones(row, price, at, percent_tp, percent_sl)
        d = price - row.price_open if row.position == "long" else row.price_open - price
        if d > 0:
            await self._callback(
                "on_partial_profit", self.symbol, row, price, percent_tp, self.backtest
            )
        elif d < 0:
            await self._callback(
                "on_partial_loss", self.symbol, row, price, percent_sl, self.backtest
            )

    async def _partial_clear(self, row: SignalRow) -> None:
        if self.runtime.partial_levels[self.backtest].pop(row.id, None) is not None:
            await self._save_partial({})

    async def _save_partial(self, data: dict[str, tuple[set[int], set[int]]]) -> None:
        """Live: write this position's milestone levels (60 §9.5); reported on failure."""
        if self.backtest:
            return
        from ..persist import PersistPartialAdapter

        try:
            await PersistPartialAdapter.write_partial_data(data, self.symbol, self.strategy_name)
        except Exception as exc:
            await self._report_error("StrategyClient.partial save failed", exc)

    def _wants_partial(self) -> bool:
        cbs = self.callbacks
        return (
            cbs.on_partial_profit is not None
            or cbs.on_partial_loss is not None
            or self._milestones_listened()
        )

    # -- live: durable state, acknowledgements, recovery and replay (40 §2, §4.3, §5) -------

    async def _store(
        self,
        kind: str,
        phase: str | None,
        row: SignalRow | None,
        result: TickResult | None,
    ) -> None:
        """Write a live state record before the transition it announces (backtests: never)."""
        if self.backtest:
            return
        from ..model.state import SignalState
        from ..persist import PersistScheduleAdapter, PersistSignalAdapter

        state = SignalState(phase, row, result, self.tick_when)  # type: ignore[arg-type]
        if kind == "signal":
            await PersistSignalAdapter.write_signal_state(state, self.symbol, self.strategy_name)
        else:
            await PersistScheduleAdapter.write_schedule_state(
                state, self.symbol, self.strategy_name
            )

    async def acknowledge(self, result: TickResult) -> None:
        """After delivery: record that the transition's result reached the consumer (40 §4.3).
        A failed write is reported and retried at the start of the next tick."""
        if self.backtest:
            return
        self.unacknowledged = result
        try:
            await self._write_ack()
        except Exception as exc:
            await self._report_error("StrategyClient.acknowledge failed", exc)

    async def _write_ack(self) -> None:
        result = self.unacknowledged
        if result is None:
            return
        row = result.signal
        if result.action == "opened":
            await self._store("signal", "open", row, None)
        elif result.action == "closed":
            await self._store("signal", None, None, None)
        elif result.action == "scheduled":
            await self._store("schedule", "waiting", row, None)
        elif result.action == "cancelled":
            await self._store("schedule", None, None, None)
        self.unacknowledged = None

    def request_stop(self) -> None:
        """`stop()` plus waking the live loop's pause (40 §2.3)."""
        self.stop()
        self.stop_requested.set()

    async def restore(self) -> None:
        """Read the stored state back before the first live tick and reconcile it (40 §5)."""
        from ..persist import (
            PersistPartialAdapter,
            PersistRiskAdapter,
            PersistScheduleAdapter,
            PersistSignalAdapter,
        )

        logger = self.runtime.logger
        signal = await PersistSignalAdapter.read_signal_state(self.symbol, self.strategy_name)
        schedule = await PersistScheduleAdapter.read_schedule_state(self.symbol, self.strategy_name)
        signal = self._own(signal, "signal")
        schedule = self._own(schedule, "schedule")
        self.tick_when = max(signal.tick_at, schedule.tick_at)
        if signal.signal is not None and schedule.signal is not None:
            if signal.signal.id != schedule.signal.id:
                raise PersistError(
                    f"live state of {self.symbol}_{self.strategy_name} holds a position "
                    f"{signal.signal.id!r} and a different waiting signal {schedule.signal.id!r}",
                    kind="signal",
                    entity_name=f"{self.symbol}_{self.strategy_name}",
                    entity_id=self.symbol,
                    location=f"signal and schedule stores of {self.symbol}_{self.strategy_name}",
                )
            # a crash inside an activation: the position was written, the schedule not cleared
            await self._store("schedule", None, None, None)
            schedule = type(schedule).empty(schedule.tick_at)
        self.guard = max(signal.tick_at, schedule.tick_at)
        self.replay = None
        self.restored_callback = None
        if signal.phase in ("opening", "open"):
            self.pending = signal.signal
        if schedule.phase in ("scheduling", "waiting"):
            self.scheduled = schedule.signal
        if signal.phase in ("opening", "closing"):
            self.replay = signal.result
        elif schedule.phase in ("scheduling", "cancelling"):
            self.replay = schedule.result
        elif signal.phase == "open":
            self.restored_callback = "on_active"
        elif schedule.phase == "waiting":
            self.restored_callback = "on_schedule"
        # risk is derived state: registered iff a position is restored (I7)
        holding = signal.signal if signal.phase in ("opening", "open") else None
        key = f"{self.strategy_name}:{self.symbol}"
        if self.risk is not None:
            for client in self.risk.clients:
                await client.load()
                present = key in client.positions
                if holding is not None and not present:
                    await client.add(holding, holding.pending_at)
                elif holding is None and present:
                    await client.remove_key(key)
        # partial levels: only for the restored position
        levels = await PersistPartialAdapter.read_partial_data(self.symbol, self.strategy_name)
        store = self.runtime.partial_levels[False]
        kept = {k: v for k, v in levels.items() if holding is not None and k == holding.id}
        for signal_id, value in kept.items():
            store[signal_id] = value
        if kept != levels:
            await PersistPartialAdapter.write_partial_data(kept, self.symbol, self.strategy_name)
        _ = PersistRiskAdapter
        logger.info(
            "StrategyClient.restore",
            {
                "symbol": self.symbol,
                "strategy_name": self.strategy_name,
                "position": signal.phase,
                "schedule": schedule.phase,
                "guard": self.guard,
            },
        )

    def _own(self, state: Any, kind: str) -> Any:
        """A record of another exchange or strategy is ignored, with a warning (40 §5 step 2)."""
        row = state.signal
        if row is None:
            return state
        if row.exchange_name != self.exchange_name or row.strategy_name != self.strategy_name:
            self.runtime.logger.alert(
                "StrategyClient.restore: ignoring a record of another run",
                {
                    "kind": kind,
                    "entity": f"{self.symbol}_{self.strategy_name}",
                    "exchange_name": row.exchange_name,
                    "strategy_name": row.strategy_name,
                },
            )
            return type(state).empty(state.tick_at)
        return state

    async def live_tick(self, when: int) -> TickResult | None:
        """One live tick at `when`: the pending acknowledgement, the restore callbacks, a
        replay of a transition a crash interrupted, the guard, then `tick()` (40 §2, §5)."""
        self.tick_when = when
        token = execution_context.set(ExecutionContext(self.symbol, when, False))
        try:
            await self._write_ack()  # raises while the store is down: the tick fails
            if self.restored_callback is not None:
                price = await self.exchange.vwap(self.symbol, when)
                row = self.pending if self.restored_callback == "on_active" else self.scheduled
                name, self.restored_callback = self.restored_callback, None
                if row is not None:
                    await self._callback(name, self.symbol, row, price, False)
            if self.replay is not None:
                return await self._replay()
            if when <= self.guard:
                return None  # this instant was evaluated before the restart
            return await self.tick()
        finally:
            execution_context.reset(token)

    async def _replay(self) -> TickResult:
        """Finish a transition whose intent was stored but not acknowledged (40 §5 (b))."""
        result = self.replay
        assert result is not None and result.signal is not None
        self.replay = None
        self.runtime.logger.info(
            "StrategyClient.replay", {"signal_id": result.signal.id, "action": result.action}
        )
        if isinstance(result, OpenedResult):
            await self._after_open(result)
        elif isinstance(result, ClosedResult):
            self.pending = None
            await self._after_close(result)
        elif isinstance(result, ScheduledResult):
            await self._after_schedule(result)
        elif isinstance(result, CancelledResult):
            self.scheduled = None
            await self._after_cancel(result)
        return result

    # -- the backtest fast-forward (20 §5) ----------------------------------------------------

    async def fast_forward(self, candles: Candles) -> ForwardResult | ActivationDropped:
        """Resolve the signal the last tick produced over 1m `candles` (20 §5).

        `candles` starts N candles before the tick (the entry VWAP window, never evaluated)
        and reaches the first candle at or after the horizon, or the end of the data.
        """
        if not self.backtest:
            raise BacktestKitError("fast_forward() is for backtests only")
        ctx = execution_context.get()
        if ctx is None:
            raise BacktestKitError("fast_forward() needs an execution context")
        start = ctx.when
        window = _Window(candles, self.runtime.config.CC_AVG_PRICE_CANDLES_COUNT, start)
        if self.scheduled is not None:
            return await self._forward_scheduled(self.scheduled, window)
        if self.pending is not None:
            return await self._forward_pending(self.pending, window, window.first)
        raise BacktestKitError("fast_forward() without a pending or scheduled signal")

    async def _forward_scheduled(
        self, row: SignalRow, w: _Window
    ) -> ForwardResult | ActivationDropped:
        config = self.runtime.config
        until = row.scheduled_at + config.CC_SCHEDULE_AWAIT_MINUTES * MINUTE_MS
        lo, hi = w.first, w.index_before(until)
        if row.position == "long":
            cancel = w.low[lo:hi] <= row.price_stop_loss
            enter = w.low[lo:hi] <= row.price_open
        else:
            cancel = w.high[lo:hi] >= row.price_stop_loss
            enter = w.high[lo:hi] >= row.price_open
        k = _first_true(cancel | enter)
        if k < 0:
            at = max(row.scheduled_at, min(until, w.end))
            return await self._cancel(row, w.vwap_closed_at(at, self.exchange_name), at)
        j = lo + k
        if cancel[k]:
            return await self._cancel(row, w.vwap_upto(j), w.t(j))
        at = w.t(j)
        if self.stopped:
            self.scheduled = None
            return ActivationDropped(at)
        sized = await self._activation_allowed(row, at)
        if sized is None:
            self.scheduled = None
            return ActivationDropped(at)
        opened = await self._activate(sized, at)
        await self.emit_result(opened)  # [deviation] 02 §3: backtest activations are events
        return await self._forward_pending(opened.signal, w, j + 1)

    async def _forward_pending(self, row: SignalRow, w: _Window, lo: int) -> ForwardResult:
        expires = row.pending_at + row.minute_estimated_time * MINUTE_MS
        hi = w.index_before(expires)
        tp, sl = row.price_take_profit, row.price_stop_loss
        if row.position == "long":
            take = w.high[lo:hi] >= tp
            stop = w.low[lo:hi] <= sl
        else:
            take = w.low[lo:hi] <= tp
            stop = w.high[lo:hi] >= sl
        k = _first_true(take | stop)
        exit_at = lo + k if k >= 0 else hi
        if exit_at > lo and self._wants_partial():
            await self._forward_partial(row, w, lo, exit_at)
        if k >= 0:
            if take[k]:  # a candle through both levels closes by take profit (02 §2)
                return await self._close(row, tp, "take_profit", w.t(exit_at))
            return await self._close(row, sl, "stop_loss", w.t(exit_at))
        at = max(row.pending_at, min(expires, w.end))
        return await self._close(row, w.vwap_closed_at(at, self.exchange_name), "time_expired", at)

    async def _forward_partial(self, row: SignalRow, w: _Window, lo: int, hi: int) -> None:
        """Milestones and progress callbacks for the evaluated candles [lo, hi) that did not
        exit, priced with the VWAP of the N candles ending with each (20 §5.4, 60 §9.1)."""
        prices = w.rolling_vwap(lo, hi)
        cbs = self.callbacks
        if cbs.on_partial_profit is not None or cbs.on_partial_loss is not None:
            times = w.ts[lo:hi].tolist()
            for price, at in zip(prices.tolist(), times, strict=True):
                percent_tp, percent_sl = percent_progress(row, price)
                await self._partial(row, price, percent_tp, percent_sl, at)
            return
        # only milestone listeners: each level's first crossing, from the running maximum
        # of the progress (monotone, so one binary search finds every level at once)
        profit_pct, loss_pct = progress_arrays(row, prices)
        profit, loss = self._levels(row)
        found: list[tuple[int, int, str]] = []
        for pct, reached, topic in (
            (profit_pct, profit, PARTIAL_PROFIT),
            (loss_pct, loss, PARTIAL_LOSS),
        ):
            peak = np.maximum.accumulate(pct)
            if len(peak) == 0 or peak[-1] < LEVELS[0]:
                continue
            firsts = np.searchsorted(peak, LEVELS_ARRAY, "left").tolist()
            for level, k in zip(LEVELS, firsts, strict=True):
                if k < len(peak) and level not in reached:
                    found.append((k, level, topic))
        for k, level, topic in sorted(found, key=lambda item: (item[0], item[1])):
            (profit if topic == PARTIAL_PROFIT else loss).add(level)
            await self._emit_milestone(topic, row, float(prices[k]), level, int(w.ts[lo + k]))


LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
LEVELS_ARRAY = np.array(LEVELS, dtype=np.float64)


def progress_arrays(row: SignalRow, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`percent_progress` over an array of prices: (percent_tp, percent_sl), zeros elsewhere,
    bit-identical to the per-price formula."""
    if row.position == "long":
        d = prices - row.price_open
        tp_dist = row.price_take_profit - row.price_open
        sl_dist = row.price_open - row.price_stop_loss
    else:
        d = row.price_open - prices
        tp_dist = row.price_open - row.price_take_profit
        sl_dist = row.price_stop_loss - row.price_open
    with np.errstate(divide="ignore", invalid="ignore"):
        profit = np.where(d > 0, np.minimum(d / tp_dist * 100, 100.0), 0.0)
        loss = np.where(d < 0, np.minimum(-d / sl_dist * 100, 100.0), 0.0)
    return profit, loss


def _first_true(mask: np.ndarray) -> int:
    """Index of the first True in `mask`, or -1."""
    if mask.size == 0:
        return -1
    k = int(mask.argmax())
    return k if mask[k] else -1


class _Window:
    """The forward view seen by one fast-forward: index helpers and VWAPs (20 §5.1)."""

    __slots__ = ("close", "end", "first", "high", "low", "n", "ts", "volume")

    def __init__(self, candles: Candles, n: int, start: int) -> None:
        self.ts = candles.timestamp
        self.high = candles.high
        self.low = candles.low
        self.close = candles.close
        self.volume = candles.volume
        self.n = n
        self.first = int(np.searchsorted(self.ts, start, "left"))
        self.end = int(self.ts[-1]) + MINUTE_MS if len(self.ts) else start

    def t(self, j: int) -> int:
        return int(self.ts[j])

    def index_before(self, instant: int) -> int:
        """Number of candles opening before `instant`."""
        return int(np.searchsorted(self.ts, instant, "left"))

    def vwap_upto(self, j: int) -> float:
        """VWAP of the N candles ending with candle `j` (known when `j` closes)."""
        a = max(0, j - self.n + 1)
        return compute_vwap(
            self.high[a : j + 1], self.low[a : j + 1], self.close[a : j + 1], self.volume[a : j + 1]
        )

    def vwap_closed_at(self, instant: int, exchange_name: str) -> float:
        """VWAP of the N candles closed at `instant`."""
        k = int(np.searchsorted(self.ts, instant - MINUTE_MS, "right")) - 1
        if k < 0:
            raise ExchangeError(
                f"exchange {exchange_name!r}: no closed 1m candle before {iso(instant)} "
                "to price the fast-forward"
            )
        return self.vwap_upto(k)

    def rolling_vwap(self, lo: int, hi: int) -> np.ndarray:
        """`vwap_upto(j)` for j in [lo, hi), bit-identical to the per-candle formula."""
        return rolling_vwap(self.high, self.low, self.close, self.volume, self.n, lo, hi)
