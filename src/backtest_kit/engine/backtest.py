"""Backtest: the loop over frame timestamps, the fast-forward hand-off, jumps, events (30).

The loop ticks the strategy at decision frames only: idle frames between two `get_signal`
calls are jumped when nothing observes them (30 §8), and an open position is resolved at
once by the fast-forward, after which the loop jumps to the first frame past its close.
Everything observable equals stepping frame by frame.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..context import ExecutionContext, MethodContext, execution_context, method_context
from ..core.exchange import ExchangeClient, first_empty_vwap_window
from ..core.frame import get_frame_timestamps
from ..core.strategy import ActivationDropped, StrategyClient
from ..errors import BacktestKitError
from ..events import (
    BACKTEST_PROGRESS,
    DONE_BACKTEST,
    ERROR,
    PERFORMANCE,
    SIGNAL,
    SIGNAL_BACKTEST,
    EventBus,
)
from ..intervals import INTERVAL_MS, MINUTE_MS, iso
from ..model.events import DoneContract, PerformanceContract, ProgressBacktestContract
from ..model.results import CancelledResult, ClosedResult
from ..report import facades as report_facades
from ..report.records import BacktestStatistics
from ..runtime import Runtime, current
from ..schema import ExchangeSchema, FrameSchema, require
from .background import start_background
from .setup import fresh_strategy, require_run, require_strategy

BacktestResult = ClosedResult | CancelledResult


def exchange_client(runtime: Runtime, schema: ExchangeSchema, *, backtest: bool) -> ExchangeClient:
    """The memoised client of an exchange in one mode (stores shared by every run)."""
    key = (schema.exchange_name, backtest)
    client: ExchangeClient | None = runtime.exchange_clients.get(key)
    if client is None:
        client = ExchangeClient(schema, runtime, backtest=backtest)
        client.read_ahead = backtest and runtime.extensions.get("read_ahead", True)
        runtime.exchange_clients[key] = client
    return client


@dataclass
class _RunState:
    """What the background task needs to know about the run it drained."""

    stopped: bool = False


class _PerfChain:
    """Performance samples of one run, chained by `previous_timestamp` (30 §6.3)."""

    def __init__(self, runtime: Runtime, symbol: str, strategy: str, exchange: str) -> None:
        self.runtime = runtime
        self.previous: int | None = None
        self.symbol, self.strategy, self.exchange = symbol, strategy, exchange
        self.sink: Any = None  # the Performance collector's deque of this run

    def record(self, metric_type: str, started: float) -> Awaitable[None] | None:
        """Take a sample; an awaitable is returned only when a user listens (then the sample
        travels the bus), else the report collector gets its fields directly."""
        bus = self.runtime.bus
        if not bus.subscriptions.get(PERFORMANCE):
            return None
        now = time.time_ns() // 1_000_000
        duration = (time.perf_counter() - started) * 1000
        previous, self.previous = self.previous, now
        if not bus.user_counts.get(PERFORMANCE):
            if self.sink is None:
                self.sink = self.runtime.reports.performance_sink(self.symbol, self.strategy, True)
            sample = (now, previous, metric_type, duration, True)
            self.sink.append((*sample, self.strategy, self.exchange, self.symbol))
            return None
        return bus.emit(
            PERFORMANCE,
            PerformanceContract(
                timestamp=now,
                previous_timestamp=previous,
                metric_type=metric_type,
                duration=duration,
                strategy_name=self.strategy,
                exchange_name=self.exchange,
                symbol=self.symbol,
                backtest=True,
            ),
        )

    async def emit(self, metric_type: str, started: float) -> None:
        pending = self.record(metric_type, started)
        if pending is not None:
            await pending


async def _run_loop(
    runtime: Runtime,
    symbol: str,
    strategy: StrategyClient,
    exchange: ExchangeClient,
    frame: FrameSchema,
    state: _RunState,
) -> AsyncIterator[BacktestResult]:
    """The loop of 30 §5 with the jumps of 30 §8."""
    bus = runtime.bus
    logger = runtime.logger
    method = MethodContext(strategy.strategy_name, exchange.name, frame.frame_name)
    token = method_context.set(method)
    try:
        t_run = time.perf_counter()
        chain = _PerfChain(runtime, symbol, strategy.strategy_name, exchange.name)
        times = await get_frame_timestamps(runtime, frame)
        exchange.begin_run()
        total = len(times)
        first_time = int(times[0]) if total else 0
        step = INTERVAL_MS[frame.interval]

        def first_frame_at_or_after(instant: int, lo: int) -> int:
            # frames are first_time + k * step: bisect by arithmetic
            k = -((first_time - instant) // step)
            return min(total, max(lo, k))

        subs = bus.subscriptions  # topic -> subscribers, read without a call per frame
        users = bus.user_counts
        i = 0
        finished = True
        fast_path = runtime.extensions.get("skip_idle_frames", True)
        callbacks = strategy.callbacks
        stores = exchange.stores
        while i < total:
            if fast_path and not strategy.stopped:
                nxt = strategy.next_ask_at
                if nxt is not None and first_time + i * step < nxt:
                    j = first_frame_at_or_after(nxt, i)
                    if j > i and not _idle_observed(runtime, callbacks):
                        # the common case first: every skipped frame's VWAP window is full
                        first = first_time + i * step - (first_time + i * step) % MINUTE_MS
                        last = first_time + (j - 1) * step
                        store = stores.get((symbol, "1m"))
                        if (
                            store is not None
                            and not store.exact
                            and store.dense_index(
                                first - runtime.config.CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS,
                                last - last % MINUTE_MS - MINUTE_MS,
                            )
                            >= 0
                        ):
                            i = j
                        else:
                            i += await _skippable(runtime, exchange, symbol, times, i, j)
                if i >= total:
                    break
            when = first_time + i * step
            t_frame = time.perf_counter()
            if subs.get(BACKTEST_PROGRESS):
                await bus.emit(
                    BACKTEST_PROGRESS,
                    ProgressBacktestContract(
                        exchange_name=exchange.name,
                        strategy_name=strategy.strategy_name,
                        symbol=symbol,
                        total_frames=total,
                        processed_frames=i,
                        progress=i / total,
                    ),
                )
            if strategy.stopped:  # check A
                finished = False
                break
            ctx_token = execution_context.set(ExecutionContext(symbol, when, True))
            try:
                try:
                    res = await strategy.tick()
                except Exception as exc:
                    await _recoverable(runtime, exc, "tick failed, skipping timeframe", when)
                    i += 1
                    continue
                # backtest idle results feed no report collector: they are emitted only for
                # user listeners (85 §1 lets an event nobody consumes be skipped)
                if res.action != "idle" or (
                    users.get(SIGNAL) or users.get(SIGNAL_BACKTEST)  # user idle listeners
                ):
                    await strategy.emit_result(res)
                if res.action == "idle":
                    if strategy.stopped:  # check B
                        i += 1
                        finished = False
                        break
                    pending = chain.record("backtest_timeframe", t_frame)
                    if pending is not None:
                        await pending
                    i += 1
                    continue
                t_signal = time.perf_counter()
                out: BacktestResult | ActivationDropped | None = None
                if strategy.holds_signal():
                    row = res.signal
                    assert row is not None
                    horizon = row.minute_estimated_time
                    if res.action == "scheduled":
                        horizon += runtime.config.CC_SCHEDULE_AWAIT_MINUTES
                    try:
                        candles = await exchange.forward_view(
                            symbol,
                            when - runtime.config.CC_AVG_PRICE_CANDLES_COUNT * MINUTE_MS,
                            when + horizon * MINUTE_MS,
                        )
                    except Exception as exc:
                        await _recoverable(runtime, exc, "forward candles failed", when)
                        await strategy.abandon()
                        i += 1
                        continue
                    try:
                        # a stop while the candles were fetched may have dropped a scheduled
                        # row: then there is nothing to resolve (30 §7.1)
                        if strategy.holds_signal():
                            out = await strategy.fast_forward(candles)
                    except Exception as exc:
                        await _recoverable(runtime, exc, "fast_forward failed", when)
                        await strategy.abandon()
                        i += 1
                        continue
            finally:
                execution_context.reset(ctx_token)
            if out is None:  # a stop dropped the scheduled row (30 §7.1)
                await chain.emit("backtest_timeframe", t_frame)
                i += 1
                continue
            if isinstance(out, ActivationDropped):  # [deviation] 30 §5.3
                await chain.emit("backtest_timeframe", t_frame)
                i = first_frame_at_or_after(out.timestamp + MINUTE_MS, i + 1)
                continue
            ctx_token = execution_context.set(ExecutionContext(symbol, when, True))
            try:
                await strategy.emit_result(out)
            finally:
                execution_context.reset(ctx_token)
            await chain.emit("backtest_signal", t_signal)
            # [deviation] 02 §1: resume when the exit candle has closed
            i = first_frame_at_or_after(out.close_timestamp + MINUTE_MS, i + 1)
            method_context.reset(token)
            try:
                yield out
            finally:
                token = method_context.set(method)
            if strategy.stopped:  # check C
                finished = False
                break
            await chain.emit("backtest_timeframe", t_frame)
        processed = total if finished else min(i, total)
        if bus.has_listeners(BACKTEST_PROGRESS):
            await bus.emit(
                BACKTEST_PROGRESS,
                ProgressBacktestContract(
                    exchange_name=exchange.name,
                    strategy_name=strategy.strategy_name,
                    symbol=symbol,
                    total_frames=total,
                    processed_frames=processed,
                    # a finished run reports 1.0, zero frames included (30 §6.1)
                    progress=1.0 if finished else processed / total,
                ),
            )
        await chain.emit("backtest_total", t_run)
        state.stopped = not finished
        logger.info(
            "Backtest.run finished",
            {"symbol": symbol, "strategy_name": strategy.strategy_name, "stopped": not finished},
        )
    finally:
        method_context.reset(token)


def _idle_observed_by_listeners(bus: EventBus) -> bool:
    """Does a user listen to backtest signal results? (the collectors ignore idle ones)"""
    users = bus.user_counts
    return bool(users.get(SIGNAL) or users.get(SIGNAL_BACKTEST))


def _idle_observed(runtime: Runtime, callbacks: Any) -> bool:
    """Would anything see an idle tick? (30 §8 (a): idle callbacks or user signal listeners)"""
    return (
        callbacks.on_idle is not None
        or callbacks.on_tick is not None
        or _idle_observed_by_listeners(runtime.bus)
    )


async def _skippable(
    runtime: Runtime, exchange: ExchangeClient, symbol: str, times: np.ndarray, i: int, j: int
) -> int:
    """How many idle frames from `i` (before `j`) can be jumped: those whose VWAP window
    holds a candle, so that evaluating them could not have raised (30 §8 (c))."""
    store = exchange.stores.get((symbol, "1m"))
    if store is not None and not store.exact:
        n = runtime.config.CC_AVG_PRICE_CANDLES_COUNT
        first, last = int(times[i]), int(times[j - 1])
        lo = first - first % MINUTE_MS - n * MINUTE_MS
        hi = last - last % MINUTE_MS - MINUTE_MS
        if store.dense_index(lo, hi) >= 0:
            return j - i
    return await first_empty_vwap_window(exchange, symbol, times[i:j])


async def _recoverable(runtime: Runtime, exc: Exception, what: str, when: int) -> None:
    ctx = method_context.get()
    runtime.logger.alert(
        f"Backtest.{what}",
        {
            "when": iso(when),
            "strategy_name": ctx.strategy_name if ctx else None,
            "exchange_name": ctx.exchange_name if ctx else None,
            "error": f"{type(exc).__name__}: {exc}",
        },
    )
    await runtime.bus.emit(ERROR, exc)


@dataclass
class _Instance:
    """The facade state of one (symbol, strategy) pair (30 §3)."""

    symbol: str
    strategy_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "ready"
    task: asyncio.Task[None] | None = None

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class BacktestCancel:
    """Returned by `Backtest.background`: call it to request a stop; `.task` is the task."""

    def __init__(self, strategy: StrategyClient, task: asyncio.Task[None]) -> None:
        self._strategy = strategy
        self.task = task

    def __call__(self) -> None:
        if not self.task.done():
            self._strategy.stop()


class BacktestUtils:
    """`bk.Backtest`: run a strategy over a frame of history (30 §3)."""

    def _instance(self, symbol: str, strategy_name: str) -> _Instance:
        runtime = current()
        key = (symbol, strategy_name)
        inst: _Instance | None = runtime.backtest_instances.get(key)
        if inst is None:
            inst = runtime.backtest_instances[key] = _Instance(symbol, strategy_name)
        return inst

    def _prepare(
        self,
        symbol: str,
        strategy_name: str,
        exchange_name: str,
        frame_name: str,
        method: str,
        state: _RunState,
    ) -> tuple[AsyncIterator[BacktestResult], StrategyClient]:
        runtime = current()
        schema, exchange_schema, sizing = require_run(method, symbol, strategy_name, exchange_name)
        frame: FrameSchema = require("frame", frame_name, method)
        runtime.logger.info(
            method,
            {
                "symbol": symbol,
                "strategy_name": strategy_name,
                "exchange_name": exchange_name,
                "frame_name": frame_name,
            },
        )
        runtime.reports.clear_run(symbol, strategy_name, backtest=True)  # 30 §4
        exchange = exchange_client(runtime, exchange_schema, backtest=True)
        strategy = fresh_strategy(runtime, schema, exchange, sizing, symbol=symbol, backtest=True)
        # the HTML report draws the price of the run's exchange over its frame (97 §5)
        runs = runtime.extensions.setdefault("backtest_runs", {})
        runs[(symbol, strategy_name)] = (exchange_name, frame_name)
        return _run_loop(runtime, symbol, strategy, exchange, frame, state), strategy

    def run(
        self, symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str
    ) -> AsyncIterator[BacktestResult]:
        """Backtest `strategy_name` on `symbol`; yields each closed or cancelled signal::

        async for result in bk.Backtest.run("BTCUSDT", strategy_name="sma",
                                            exchange_name="sample", frame_name="jan"):
            print(result.close_reason, result.pnl.pnl_percentage)
        """
        inst = self._instance(symbol, strategy_name)
        if inst.running():
            raise BacktestKitError(
                f"Backtest.background is already running for symbol={symbol} "
                f"strategy_name={strategy_name}"
            )
        generator, _ = self._prepare(
            symbol, strategy_name, exchange_name, frame_name, "Backtest.run", _RunState()
        )
        return generator

    def run_sync(
        self, symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str
    ) -> list[BacktestResult]:
        """Run to completion and return every result (for scripts and notebooks)."""
        generator = self.run(
            symbol, strategy_name=strategy_name, exchange_name=exchange_name, frame_name=frame_name
        )
        results: list[BacktestResult] = run_coroutine_sync(_collect(generator))
        return results

    def background(
        self, symbol: str, *, strategy_name: str, exchange_name: str, frame_name: str
    ) -> BacktestCancel:
        """Start the backtest as an asyncio task; returns `cancel()` (a stop request)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise BacktestKitError(
                "Backtest.background needs a running event loop; use Backtest.run_sync "
                "in plain scripts"
            ) from None
        inst = self._instance(symbol, strategy_name)
        if inst.running():
            raise BacktestKitError(
                f"Backtest.background is already running for symbol={symbol} "
                f"strategy_name={strategy_name}"
            )
        state = _RunState()
        generator, strategy = self._prepare(
            symbol, strategy_name, exchange_name, frame_name, "Backtest.background", state
        )
        runtime = current()

        inst.task = start_background(
            runtime,
            inst,
            generator,
            method="Backtest.background",
            done_topic=DONE_BACKTEST,
            make_done=lambda: DoneContract(
                exchange_name=exchange_name,
                strategy_name=strategy_name,
                backtest=True,
                symbol=symbol,
                walker_name=None,
                stopped=state.stopped,
            ),
        )
        return BacktestCancel(strategy, inst.task)

    async def stop(self, symbol: str, strategy_name: str) -> None:
        """Request a stop: no new signals; a position under resolution still completes."""
        require_strategy("Backtest.stop", strategy_name)
        runtime = current()
        runtime.logger.info("Backtest.stop", {"symbol": symbol, "strategy_name": strategy_name})
        client = runtime.strategy_clients.get((symbol, strategy_name, True))
        if client is not None:
            client.stop()

    async def list(self) -> list[dict[str, str]]:
        """Every backtest facade instance: id, symbol, strategy_name, status."""
        return [
            {
                "id": inst.id,
                "symbol": inst.symbol,
                "strategy_name": inst.strategy_name,
                "status": inst.status,
            }
            for inst in current().backtest_instances.values()
        ]

    # -- reports (80 §2, §3, §1.7) ------------------------------------------------------------

    async def get_data(self, symbol: str, strategy_name: str) -> BacktestStatistics:
        """Statistics of every closed trade of the last backtest of the pair (80 §2)::

        stats = await bk.Backtest.get_data("BTCUSDT", "sma")
        print(stats.sharpe_ratio, stats.win_rate); df = stats.to_pandas()
        """
        return await report_facades.backtest_get_data(symbol, strategy_name)

    async def get_report(
        self, symbol: str, strategy_name: str, columns: Iterable[Any] | None = None
    ) -> str:
        """The backtest report as Markdown (80 §3); `columns` overrides the configured
        `backtest_columns` (column objects, or keys such as `["signalId", "pnl"]`)."""
        return await report_facades.backtest_get_report(symbol, strategy_name, columns)

    async def dump(
        self,
        symbol: str,
        strategy_name: str,
        path: str | Path = "./dump/backtest",
        columns: Iterable[Any] | None = None,
        format: str = "md",
    ) -> Path | None:
        """Write the report to `path/{symbol}_{strategy_name}.md`, or with `format="html"` the
        self-contained page `{symbol}_{strategy_name}.html` (97 §5, extra `plot`); returns the
        file written (`None` when writing failed: logged, not raised)."""
        return await report_facades.backtest_dump(symbol, strategy_name, path, columns, format)


async def _collect(generator: AsyncIterator[BacktestResult]) -> list[BacktestResult]:
    return [result async for result in generator]


def run_coroutine_sync(coro: Any) -> Any:
    """Run `coro` to completion from sync code, also when a loop already runs (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="backtest-kit-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


Backtest = BacktestUtils()
