"""Live: the same state machine on a clock, persisting every change before reporting it (40).

The loop ticks the strategy about once a minute (on the wall clock, or on a simulated clock
over recorded candles), yields `opened`/`closed`/`cancelled`, acknowledges each delivery in
the store, and survives a crash at any instant: `restore()` reads the state back before the
first tick. No trading logic here: the strategy client owns the transitions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..clock import Clock, WallClock
from ..context import ExecutionContext, MethodContext, execution_context, method_context
from ..core.strategy import StrategyClient
from ..errors import BacktestKitError, PersistError
from ..events import DONE_LIVE, ERROR, PERFORMANCE
from ..model.events import DoneContract, PerformanceContract
from ..model.results import CancelledResult, ClosedResult, OpenedResult
from ..report.facades import LiveReports
from ..runtime import Runtime, current
from .background import start_background
from .backtest import exchange_client, run_coroutine_sync
from .setup import fresh_strategy, require_run, require_strategy

if TYPE_CHECKING:
    from ..core.exchange import ExchangeClient

TICK_TTL_MS = 60_001  # the reference's pause: a minute and a millisecond, so "1m" throttles pass
LiveResult = OpenedResult | ClosedResult | CancelledResult


@dataclass
class _RunState:
    stopped: bool = False


async def _live_loop(
    runtime: Runtime,
    strategy: StrategyClient,
    exchange: ExchangeClient,
    clock: Clock,
    state: _RunState,
) -> AsyncIterator[LiveResult]:
    """The loop of 40 §2."""
    bus = runtime.bus
    method = MethodContext(strategy.strategy_name, exchange.name, "")
    token = method_context.set(method)
    runtime.live_runs_active = getattr(runtime, "live_runs_active", 0) + 1
    previous_sample: int | None = None
    try:
        while True:  # a restore that fails is retried each pause; corrupt data is fatal
            try:
                await strategy.restore()
                break
            except PersistError as exc:
                if exc.location is not None:  # bad data, not a store that is down: fatal
                    raise
                await _restore_failed(runtime, strategy, exc)
                await clock.sleep(TICK_TTL_MS)
                if getattr(clock, "exhausted", False):
                    return
            except Exception as exc:
                await _restore_failed(runtime, strategy, exc)
                await clock.sleep(TICK_TTL_MS)
                if getattr(clock, "exhausted", False):
                    return
        while True:
            when = clock.now_ms()
            started = time.perf_counter()
            try:
                result = await strategy.live_tick(when)
            except Exception as exc:
                runtime.logger.alert(
                    "Live.tick failed",
                    {"symbol": strategy.symbol, "error": f"{type(exc).__name__}: {exc}"},
                )
                await bus.emit(ERROR, exc)
            else:
                if result is not None:
                    # listeners of a tick's result see the tick's context (its `when`)
                    ctx = execution_context.set(ExecutionContext(strategy.symbol, when, False))
                    try:
                        await strategy.emit_result(result)
                    finally:
                        execution_context.reset(ctx)
                    if bus.has_listeners(PERFORMANCE):
                        now = clock.now_ms()
                        await bus.emit(
                            PERFORMANCE,
                            PerformanceContract(
                                timestamp=now,
                                previous_timestamp=previous_sample,
                                metric_type="live_tick",
                                duration=(time.perf_counter() - started) * 1000,
                                strategy_name=strategy.strategy_name,
                                exchange_name=exchange.name,
                                symbol=strategy.symbol,
                                backtest=False,
                            ),
                        )
                        previous_sample = now
                    if isinstance(result, OpenedResult | ClosedResult | CancelledResult):
                        method_context.reset(token)
                        try:
                            yield result
                        finally:
                            token = method_context.set(method)
                    await strategy.acknowledge(result)
            if strategy.stopped and not strategy.holds_signal():
                state.stopped = True
                return
            paused_at = clock.now_ms()
            woke = await _pause(clock, strategy, TICK_TTL_MS)
            if getattr(clock, "exhausted", False):
                return
            if woke:
                if not strategy.holds_signal():
                    state.stopped = True
                    return
                if strategy.scheduled is None:  # an open position keeps its cadence
                    await clock.sleep(max(0, TICK_TTL_MS - (clock.now_ms() - paused_at)))
    finally:
        runtime.live_runs_active -= 1
        method_context.reset(token)


async def _restore_failed(runtime: Runtime, strategy: StrategyClient, exc: Exception) -> None:
    """A restore that failed for want of the store: reported, retried after a pause (40 §2.2)."""
    runtime.logger.alert(
        "Live.restore failed, retrying",
        {"symbol": strategy.symbol, "error": f"{type(exc).__name__}: {exc}"},
    )
    await runtime.bus.emit(ERROR, exc)


async def _pause(clock: Clock, strategy: StrategyClient, ms: int) -> bool:
    """Sleep `ms` on the clock; True when a stop request woke us first."""
    if strategy.stop_requested.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(ms))
    waiter = asyncio.ensure_future(strategy.stop_requested.wait())
    try:
        done, _ = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            if not task.done():
                task.cancel()
    return waiter in done and sleeper not in done


@dataclass
class _Instance:
    symbol: str
    strategy_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "ready"
    task: asyncio.Task[None] | None = None
    running_foreground: bool = False

    def running(self) -> bool:
        return self.running_foreground or (self.task is not None and not self.task.done())


class LiveCancel:
    """Returned by `Live.background`: call it to request a graceful stop; `.task` is the task."""

    def __init__(self, strategy: StrategyClient, task: asyncio.Task[None]) -> None:
        self._strategy = strategy
        self.task = task

    def __call__(self) -> None:
        if not self.task.done():
            self._strategy.request_stop()


class LiveUtils(LiveReports):
    """`bk.Live`: run a strategy on a clock with crash-safe state (40); `get_data`,
    `get_report` and `dump` give the live report (80 §4)."""

    def _instance(self, symbol: str, strategy_name: str) -> _Instance:
        runtime = current()
        key = (symbol, strategy_name)
        instances: dict[tuple[str, str], _Instance] = runtime.extensions.setdefault(
            "live_instances", {}
        )
        inst = instances.get(key)
        if inst is None:
            inst = instances[key] = _Instance(symbol, strategy_name)
        return inst

    def _prepare(
        self,
        symbol: str,
        strategy_name: str,
        exchange_name: str,
        clock: Clock | None,
        method: str,
        state: _RunState,
    ) -> tuple[AsyncIterator[LiveResult], StrategyClient]:
        runtime = current()
        schema, exchange_schema, sizing = require_run(method, symbol, strategy_name, exchange_name)
        inst = self._instance(symbol, strategy_name)
        if inst.running():
            raise BacktestKitError(
                f"Live is already running for symbol={symbol} strategy_name={strategy_name}"
            )
        run_clock: Clock = clock if clock is not None else WallClock()
        runtime.logger.info(
            method,
            {"symbol": symbol, "strategy_name": strategy_name, "exchange_name": exchange_name},
        )
        runtime.reports.clear_run(symbol, strategy_name, backtest=False)  # 40 §2.5
        exchange = exchange_client(runtime, exchange_schema, backtest=False)
        exchange.sleep = lambda seconds: run_clock.sleep(int(seconds * 1000))
        strategy = fresh_strategy(runtime, schema, exchange, sizing, symbol=symbol, backtest=False)
        return _live_loop(runtime, strategy, exchange, run_clock, state), strategy

    def run(
        self,
        symbol: str,
        *,
        strategy_name: str,
        exchange_name: str,
        clock: Clock | None = None,
    ) -> AsyncIterator[LiveResult]:
        """Trade `strategy_name` on `symbol`; yields each opened, closed and cancelled signal.

        Ends after `Live.stop` (once nothing is open) or when a simulated clock runs out::

            async for result in bk.Live.run("BTCUSDT", strategy_name="sma",
                                            exchange_name="binance"):
                print(result.action, result.signal.id)
        """
        generator, _ = self._prepare(
            symbol, strategy_name, exchange_name, clock, "Live.run", _RunState()
        )
        inst = self._instance(symbol, strategy_name)
        return _guard_foreground(inst, generator)

    def run_sync(
        self,
        symbol: str,
        *,
        strategy_name: str,
        exchange_name: str,
        clock: Clock | None = None,
    ) -> list[LiveResult]:
        """Run to its end (a simulated clock's end, or a stop) and return every result."""
        generator = self.run(
            symbol, strategy_name=strategy_name, exchange_name=exchange_name, clock=clock
        )

        async def collect() -> list[LiveResult]:
            return [r async for r in generator]

        results: list[LiveResult] = run_coroutine_sync(collect())
        return results

    def background(
        self,
        symbol: str,
        *,
        strategy_name: str,
        exchange_name: str,
        clock: Clock | None = None,
    ) -> LiveCancel:
        """Start the live run as an asyncio task; returns `cancel()`, a graceful stop request."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise BacktestKitError(
                "Live.background needs a running event loop (inside `async def main()` "
                "run with asyncio.run)"
            ) from None
        state = _RunState()
        generator, strategy = self._prepare(
            symbol, strategy_name, exchange_name, clock, "Live.background", state
        )
        inst = self._instance(symbol, strategy_name)
        runtime = current()

        inst.task = start_background(
            runtime,
            inst,
            generator,
            method="Live.background",
            done_topic=DONE_LIVE,
            make_done=lambda: DoneContract(
                exchange_name=exchange_name,
                strategy_name=strategy_name,
                backtest=False,
                symbol=symbol,
                walker_name=None,
                stopped=state.stopped,
            ),
        )
        return LiveCancel(strategy, inst.task)

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """Graceful stop: no new signals; an open position is watched until it closes, a
        waiting one is cancelled at once (40 §2.3)."""
        require_strategy("Live.stop", strategy_name)
        runtime = current()
        runtime.logger.info("Live.stop", {"symbol": symbol, "strategy_name": strategy_name})
        client = runtime.strategy_clients.get((symbol, strategy_name, False))
        if client is not None:
            client.request_stop()

    async def list(self) -> list[dict[str, str]]:
        """Every live facade instance: id, symbol, strategy_name, status."""
        instances: dict[tuple[str, str], _Instance] = current().extensions.get("live_instances", {})
        return [
            {
                "id": inst.id,
                "symbol": inst.symbol,
                "strategy_name": inst.strategy_name,
                "status": inst.status,
            }
            for inst in instances.values()
        ]


async def _guard_foreground(
    inst: _Instance, generator: AsyncIterator[LiveResult]
) -> AsyncIterator[LiveResult]:
    """One live loop per (symbol, strategy), `run` included (40 §1)."""
    inst.running_foreground = True
    try:
        async for result in generator:
            yield result
    finally:
        inst.running_foreground = False


Live = LiveUtils()
