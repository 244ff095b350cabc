"""Walker: backtest a list of strategies on one symbol, exchange and frame and keep the best
by one statistic (70), sequentially in process or across a process pool / any executor (97 §4).

The parallel walker runs each strategy's whole backtest in a worker, which rebuilds the
registries by importing a module; the worker returns the strategy's signal events in order and
the parent re-emits them through its own bus, strategy by strategy in list order, so collectors,
listeners, statistics and reports equal the sequential run's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.machinery
import importlib.util
import inspect
import math
import multiprocessing
import os
import pickle
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..context import ExecutionContext, MethodContext, execution_context, method_context
from ..core.risk import reset_risk
from ..errors import BacktestKitError, RegistryError, ValidationError
from ..events import (
    DONE_WALKER,
    ERROR,
    PARTIAL_LOSS,
    PARTIAL_PROFIT,
    RISK,
    SIGNAL,
    SIGNAL_BACKTEST,
    VALIDATION,
    WALKER,
    WALKER_COMPLETE,
    WALKER_PROGRESS,
)
from ..model.events import DoneContract
from ..model.walker import (
    ProgressWalkerContract,
    WalkerCompleteContract,
    WalkerContract,
    WalkerStopContract,
)
from ..report import markdown
from ..report.columns import resolve_columns
from ..report.facades import HTML_FORMATS, check_format, report_file, write_report
from ..report.records import WalkerStatistics
from ..runtime import Runtime, current
from ..schema import StrategySchema, require
from ..schema_walker import WalkerSchema
from .background import start_background
from .backtest import Backtest, _RunState, run_coroutine_sync
from .setup import require_run

# the topics a worker forwards (97 §4): tick results, validation, risk, partial and errors
FORWARDED_TOPICS = (
    SIGNAL_BACKTEST,
    SIGNAL,
    PARTIAL_PROFIT,
    PARTIAL_LOSS,
    RISK,
    VALIDATION,
    ERROR,
)


# -- validation and stop requests ---------------------------------------------------------------


def _validate(symbol: str, walker_name: str, method: str) -> WalkerSchema:
    """70 §3: the walker, its exchange and frame, every strategy and their risk profiles."""
    if not isinstance(symbol, str) or not symbol:
        raise ValidationError(f"{method}: symbol must be a non-empty string, got {symbol!r}")
    schema: WalkerSchema = require("walker", walker_name, method)
    require("exchange", schema.exchange_name, method)
    require("frame", schema.frame_name, method)
    for name in schema.strategies:
        require_run(method, symbol, name, schema.exchange_name)
    return schema


@dataclass
class _WalkState:
    """One running walk: the strategies a stop request named, and hooks run on a stop."""

    symbol: str
    walker_name: str
    stopped: set[str] = field(default_factory=set)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


def _runs(runtime: Runtime) -> dict[tuple[str, str], list[_WalkState]]:
    runs: dict[tuple[str, str], list[_WalkState]] = runtime.extensions.setdefault("walker_runs", {})
    return runs


def _request_stop(runtime: Runtime, symbol: str, schema: WalkerSchema) -> None:
    """70 §5: per strategy, in list order, a stop request to the walks of `(symbol, walker)`
    and the stop flag of the strategy's backtest client for `symbol`."""
    states = list(_runs(runtime).get((symbol, schema.walker_name), ()))
    for name in schema.strategies:
        request = WalkerStopContract(symbol, name, schema.walker_name)
        for state in states:
            if state.symbol == request.symbol and state.walker_name == request.walker_name:
                state.stopped.add(request.strategy_name)
        client = runtime.strategy_clients.get((symbol, name, True))
        if client is not None:
            client.stop()
    for state in states:
        for hook in state.on_stop:
            hook()


async def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
    if fn is None:
        return
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _reset(runtime: Runtime, symbol: str, schema: WalkerSchema) -> None:
    """70 §4.1: once, before the first strategy."""
    runtime.reports.clear_walker(symbol, schema.walker_name)
    for name in schema.strategies:
        strategy: StrategySchema = runtime.strategies[name]
        runtime.reports.clear_run(symbol, name, backtest=True)  # heatmap rows included
        runtime.strategy_clients.pop((symbol, name, True), None)
        reset_risk(runtime, strategy.risk_names(), backtest=True)


# -- the sequential runner ----------------------------------------------------------------------

Runner = Callable[[str], Any]  # async (strategy_name) -> None; raises when the backtest raised


def _sequential_runner(symbol: str, schema: WalkerSchema) -> Runner:
    async def run(name: str) -> None:
        generator, _ = Backtest._prepare(
            symbol, name, schema.exchange_name, schema.frame_name, "Walker.run", _RunState()
        )
        async for _ in generator:
            pass

    return run


# -- the parallel runner (97 §4) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerTask:
    """What a worker needs to backtest one strategy of a walker."""

    module: str | None
    config: Config
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    idle: bool  # the parent has user listeners of tick results: forward idle ticks too
    # sweep: (factory module, factory qualname, parameters, interval) -- the factory is looked
    # up after `module` was imported, so a factory defined in a file works too
    build: tuple[str, str, dict[str, Any], str] | None = None


@dataclass(slots=True)
class WorkerOutcome:
    """A worker's answer: the strategy's events in order (topic, payload, execution and method
    context), its closed/cancelled results, and the error its backtest raised (if any)."""

    strategy_name: str
    events: list[tuple[str, Any, ExecutionContext | None, MethodContext | None]]
    results: list[Any]
    error: BaseException | None = None


_LOADED: set[str] = set()


def _load(module: str) -> None:
    from ..cli import load_user_module

    if module not in _LOADED:
        load_user_module(module)
        _LOADED.add(module)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return BacktestKitError(f"{type(exc).__name__}: {exc}")
    return exc


def run_worker_task(task: WorkerTask) -> WorkerOutcome:
    """The work unit of the parallel walker: one strategy's whole backtest, in this process."""
    runtime = current()
    needed = (
        ("strategy", task.strategy_name, runtime.strategies),
        ("exchange", task.exchange_name, runtime.exchanges),
        ("frame", task.frame_name, runtime.frames),
    )
    missing = any(name not in registry for _, name, registry in needed[1:]) or (
        task.strategy_name not in runtime.strategies and task.build is None
    )
    if missing and task.module is not None:
        _load(task.module)
    if task.build is not None and task.strategy_name not in runtime.strategies:
        from ..schema import add_strategy

        owner, qualname, params, interval = task.build
        factory: Any = sys.modules.get(owner) or importlib.import_module(owner)
        for part in qualname.split("."):
            factory = getattr(factory, part)
        add_strategy(task.strategy_name, interval, factory(**params))
    for kind, name, registry in needed:
        if name not in registry:
            raise RegistryError(
                f"Walker worker: importing module {task.module!r} did not register {kind} {name!r}"
            )
    runtime.config = task.config
    return asyncio.run(_worker_backtest(runtime, task))


async def _worker_backtest(runtime: Runtime, task: WorkerTask) -> WorkerOutcome:
    outcome = WorkerOutcome(task.strategy_name, [], [])
    bus = runtime.bus

    def capture(topic: str) -> Callable[[Any], None]:
        def on_event(payload: Any) -> None:
            if isinstance(payload, BaseException):
                payload = _picklable(payload)
            outcome.events.append((topic, payload, execution_context.get(), method_context.get()))

        return on_event

    unsubscribe = [
        bus.subscribe(topic, capture(topic), internal=not (task.idle and topic == SIGNAL))
        for topic in FORWARDED_TOPICS
    ]
    try:
        generator = Backtest.run(
            task.symbol,
            strategy_name=task.strategy_name,
            exchange_name=task.exchange_name,
            frame_name=task.frame_name,
        )
        async for result in generator:
            outcome.results.append(result)
    except Exception as exc:
        outcome.error = _picklable(exc)
    finally:
        for off in unsubscribe:
            off()
    return outcome


def default_module(schema: WalkerSchema) -> str:
    """97 §4: the file of `__main__` when the registering code ran there, else the module
    where the first strategy's `get_signal` is defined (its name when importable, else its
    file)."""
    strategy: StrategySchema = current().strategies[schema.strategies[0]]
    name = getattr(strategy.get_signal, "__module__", None) or "__main__"
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if name in ("__main__", "__mp_main__"):
        if not file:
            raise BacktestKitError(
                "Walker: cannot tell which module registers the strategies (they were "
                "defined interactively); pass module='file.py' or a module name"
            )
        return str(Path(file).resolve())
    if "." in name:
        return name  # a package module: importable by name
    # a top-level module found on sys.path (not one loaded from a file by path)
    spec = importlib.machinery.PathFinder.find_spec(name)
    if spec is not None and (file is None or spec.origin == file):
        return name
    if file:
        return str(Path(file).resolve())
    return name


class _RayExecutor(concurrent.futures.Executor):
    """`executor="ray"` (extra `ray`): each work unit is a Ray task."""

    def __init__(self) -> None:
        try:
            import ray
        except ImportError:
            raise BacktestKitError(
                "executor='ray' needs the extra 'ray': pip install 'backtest-kit[ray]'"
            ) from None
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"))
        self._ray = ray
        self._remotes: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(fn)
        future: concurrent.futures.Future[Any] = remote.remote(*args, **kwargs).future()
        return future


def _make_executor(
    workers: int | None, executor: concurrent.futures.Executor | str | None
) -> tuple[concurrent.futures.Executor, bool]:
    """The executor to use and whether the walker owns it (shuts it down at the end)."""
    if executor is not None:
        if workers is not None:
            raise ValidationError("Walker: pass workers= or executor=, not both")
        if executor == "ray":
            return _RayExecutor(), False
        if not isinstance(executor, concurrent.futures.Executor):
            raise ValidationError(
                f"Walker: executor must be a concurrent.futures.Executor or 'ray', got {executor!r}"
            )
        return executor, False
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(f"Walker: workers must be an int >= 1, got {workers!r}")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )
    return pool, True


def _parallel_runner(
    runtime: Runtime,
    symbol: str,
    schema: WalkerSchema,
    state: _WalkState,
    workers: int | None,
    executor: concurrent.futures.Executor | str | None,
    module: str | None,
) -> tuple[Runner, Callable[[], None]]:
    """A runner that awaits each strategy's worker outcome and re-emits its events, and the
    function that releases the executor."""
    pool, owned = _make_executor(workers, executor)
    users = runtime.bus.user_counts
    idle = bool(users.get(SIGNAL) or users.get(SIGNAL_BACKTEST))
    modname = module if module is not None else default_module(schema)
    futures: dict[str, concurrent.futures.Future[WorkerOutcome]] = {}
    builds: dict[str, Any] = runtime.extensions.get("sweep_builds", {})
    for name in schema.strategies:
        task = WorkerTask(
            module=modname,
            config=runtime.config,
            symbol=symbol,
            strategy_name=name,
            exchange_name=schema.exchange_name,
            frame_name=schema.frame_name,
            idle=idle,
            build=builds.get(name),
        )
        futures[name] = pool.submit(run_worker_task, task)

    awaited: list[str] = []  # the strategy whose outcome is awaited is never cancelled

    def cancel_pending() -> None:
        for name, future in futures.items():
            if name not in awaited[-1:]:
                future.cancel()

    state.on_stop.append(cancel_pending)

    async def run(name: str) -> None:
        awaited.append(name)
        outcome = await asyncio.wrap_future(futures[name])
        bus = runtime.bus
        for topic, payload, exec_ctx, method_ctx in outcome.events:
            t_exec = execution_context.set(exec_ctx)
            t_method = method_context.set(method_ctx)
            try:
                await bus.emit(topic, payload)
            finally:
                method_context.reset(t_method)
                execution_context.reset(t_exec)
        if outcome.error is not None:
            raise outcome.error

    def close() -> None:
        finished = all(future.done() for future in futures.values())
        cancel_pending()
        if owned:  # wait for the processes unless a backtest is still running (abandoned)
            pool.shutdown(wait=finished, cancel_futures=True)

    return run, close


# -- the walk (70 §4.2) -------------------------------------------------------------------------


async def _walk(
    runtime: Runtime,
    symbol: str,
    schema: WalkerSchema,
    state: _WalkState,
    workers: int | None,
    executor: concurrent.futures.Executor | str | None,
    module: str | None,
) -> AsyncIterator[WalkerContract]:
    runs = _runs(runtime).setdefault((symbol, schema.walker_name), [])
    runs.append(state)
    close: Callable[[], None] | None = None
    try:
        _reset(runtime, symbol, schema)
        runner: Runner
        if workers is None and executor is None:
            runner = _sequential_runner(symbol, schema)
        else:
            runner, close = _parallel_runner(
                runtime, symbol, schema, state, workers, executor, module
            )
        bus = runtime.bus
        cb = schema.callbacks
        total = len(schema.strategies)
        tested = 0
        best_metric: float | None = None
        best_strategy: str | None = None
        for name in schema.strategies:
            if name in state.stopped:
                break
            await _call(cb.on_strategy_start, name, symbol)
            try:
                await runner(name)
            except Exception as exc:
                runtime.logger.warn(
                    "Walker.run strategy failed",
                    {
                        "walker_name": schema.walker_name,
                        "strategy_name": name,
                        "symbol": symbol,
                        "error": f"{type(exc).__name__}: {exc}",
                    },
                )
                await bus.emit(ERROR, exc)
                await _call(cb.on_strategy_error, name, symbol, exc)
                continue
            stats = runtime.reports.backtest_data(symbol, name)
            value = _finite(getattr(stats, schema.metric))
            if value is not None and (best_metric is None or value > best_metric):
                best_metric, best_strategy = value, name
            tested += 1
            contract = WalkerContract(
                walker_name=schema.walker_name,
                exchange_name=schema.exchange_name,
                frame_name=schema.frame_name,
                symbol=symbol,
                strategy_name=name,
                stats=stats,
                metric_value=value,
                metric=schema.metric,
                best_metric=best_metric,
                best_strategy=best_strategy,
                strategies_tested=tested,
                total_strategies=total,
            )
            await bus.emit(
                WALKER_PROGRESS,
                ProgressWalkerContract(
                    walker_name=schema.walker_name,
                    exchange_name=schema.exchange_name,
                    frame_name=schema.frame_name,
                    symbol=symbol,
                    total_strategies=total,
                    processed_strategies=tested,
                    progress=tested / total if total else 0.0,
                ),
            )
            await _call(cb.on_strategy_complete, name, symbol, stats, value)
            await bus.emit(WALKER, contract)
            yield contract
        final = WalkerCompleteContract(
            walker_name=schema.walker_name,
            symbol=symbol,
            exchange_name=schema.exchange_name,
            frame_name=schema.frame_name,
            metric=schema.metric,
            total_strategies=total,
            best_strategy=best_strategy,
            best_metric=best_metric,
            best_stats=(
                runtime.reports.backtest_data(symbol, best_strategy) if best_strategy else None
            ),
        )
        runtime.logger.info(
            "Walker.run finished",
            {
                "walker_name": schema.walker_name,
                "symbol": symbol,
                "best_strategy": best_strategy,
                "stopped": bool(state.stopped),
            },
        )
        await _call(cb.on_complete, final)
        await bus.emit(WALKER_COMPLETE, final)
    finally:
        if close is not None:
            close()
        if state in runs:
            runs.remove(state)


# -- the facade (70 §3) -------------------------------------------------------------------------


@dataclass
class _Instance:
    symbol: str
    walker_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "ready"
    task: asyncio.Task[None] | None = None

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class WalkerCancel:
    """Returned by `Walker.background`: call it to request a stop (70 §7); `.task` is the
    task. Idempotent; the run still emits the truncated strategy's contract, the
    walker-complete event and then its done event."""

    def __init__(self, symbol: str, schema: WalkerSchema, task: asyncio.Task[None]) -> None:
        self._symbol = symbol
        self._schema = schema
        self.task = task
        self.cancelled = False

    def __call__(self) -> None:
        if self.cancelled or self.task.done():
            return
        self.cancelled = True
        _request_stop(current(), self._symbol, self._schema)


Executor = concurrent.futures.Executor | str | None


class WalkerUtils:
    """`bk.Walker`: compare strategies on one symbol, exchange and frame (70)."""

    def _instance(self, symbol: str, walker_name: str) -> _Instance:
        instances: dict[tuple[str, str], _Instance] = current().extensions.setdefault(
            "walker_instances", {}
        )
        inst = instances.get((symbol, walker_name))
        if inst is None:
            inst = instances[(symbol, walker_name)] = _Instance(symbol, walker_name)
        return inst

    def run(
        self,
        symbol: str,
        *,
        walker_name: str,
        workers: int | None = None,
        executor: Executor = None,
        module: str | Path | None = None,
    ) -> AsyncIterator[WalkerContract]:
        """Backtest every strategy of the walker in order; yields a `WalkerContract` per
        strategy (best so far included)::

            async for r in bk.Walker.run("BTCUSDT", walker_name="cmp"):
                print(r.strategy_name, r.metric_value, r.best_strategy)

        `workers=N` runs the backtests in N processes, `executor=` on any
        `concurrent.futures.Executor` (or `"ray"`); `module` is what a worker imports to
        register the schemas (97 §4)."""
        return self._start(symbol, walker_name, workers, executor, module, "Walker.run")[0]

    def _start(
        self,
        symbol: str,
        walker_name: str,
        workers: int | None,
        executor: Executor,
        module: str | Path | None,
        method: str,
    ) -> tuple[AsyncIterator[WalkerContract], _WalkState, WalkerSchema]:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ValidationError(f"{method}: workers must be an int >= 1, got {workers!r}")
        if module is not None and not isinstance(module, str | Path):
            raise ValidationError(f"{method}: module must be a module name or a file path")
        if executor is not None:
            if workers is not None:
                raise ValidationError(f"{method}: pass workers= or executor=, not both")
            if executor == "ray":
                if importlib.util.find_spec("ray") is None:
                    raise BacktestKitError(
                        f"{method}: executor='ray' needs the extra 'ray': "
                        "pip install 'backtest-kit[ray]'"
                    )
            elif not isinstance(executor, concurrent.futures.Executor):
                raise ValidationError(
                    f"{method}: executor must be a concurrent.futures.Executor or 'ray', "
                    f"got {executor!r}"
                )
        schema = _validate(symbol, walker_name, method)
        runtime = current()
        runtime.logger.info(method, {"symbol": symbol, "walker_name": walker_name})
        state = _WalkState(symbol, walker_name)
        modname = None if module is None else str(module)
        walk = _walk(runtime, symbol, schema, state, workers, executor, modname)
        return walk, state, schema

    def run_sync(
        self,
        symbol: str,
        *,
        walker_name: str,
        workers: int | None = None,
        executor: Executor = None,
        module: str | Path | None = None,
    ) -> list[WalkerContract]:
        """Run to completion and return every `WalkerContract` (scripts and notebooks)."""
        walk = self.run(
            symbol, walker_name=walker_name, workers=workers, executor=executor, module=module
        )
        results: list[WalkerContract] = run_coroutine_sync(_collect(walk))
        return results

    def background(
        self,
        symbol: str,
        *,
        walker_name: str,
        workers: int | None = None,
        executor: Executor = None,
        module: str | Path | None = None,
    ) -> WalkerCancel:
        """Start the walker as an asyncio task; returns `cancel()` (a stop request). The task
        ends with a `DoneContract` on `listen_done_walker` (errors go to `listen_exit`)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise BacktestKitError(
                "Walker.background needs a running event loop; use Walker.run_sync in plain scripts"
            ) from None
        inst = self._instance(symbol, walker_name)
        if inst.running():
            raise BacktestKitError(
                f"Walker.background is already running for symbol={symbol} "
                f"walker_name={walker_name}"
            )
        walk, state, schema = self._start(
            symbol, walker_name, workers, executor, module, "Walker.background"
        )
        runtime = current()

        inst.task = start_background(
            runtime,
            inst,
            walk,
            method="Walker.background",
            done_topic=DONE_WALKER,
            make_done=lambda: DoneContract(
                exchange_name=schema.exchange_name,
                strategy_name=walker_name,
                backtest=True,
                symbol=symbol,
                walker_name=walker_name,
                stopped=bool(state.stopped),
            ),
        )
        return WalkerCancel(symbol, schema, inst.task)

    async def stop(self, symbol: str, walker_name: str) -> None:
        """Request a stop (70 §5): the current strategy's backtest ends early and still
        competes; no further strategy starts; the walker-complete event follows."""
        schema = _validate(symbol, walker_name, "Walker.stop")
        runtime = current()
        runtime.logger.info("Walker.stop", {"symbol": symbol, "walker_name": walker_name})
        _request_stop(runtime, symbol, schema)

    async def list(self) -> list[dict[str, str]]:
        """Every walker facade instance: id, symbol, walker_name, status."""
        instances: dict[tuple[str, str], _Instance] = current().extensions.get(
            "walker_instances", {}
        )
        return [
            {
                "id": inst.id,
                "symbol": inst.symbol,
                "walker_name": inst.walker_name,
                "status": inst.status,
            }
            for inst in instances.values()
        ]

    # -- reports (70 §9, §10) ----------------------------------------------------------------

    async def get_data(self, symbol: str, walker_name: str) -> WalkerStatistics:
        """`WalkerStatistics` of the walker's last run on `symbol` (raises when none)."""
        schema = _validate(symbol, walker_name, "Walker.get_data")
        return current().reports.walker_data(
            symbol,
            walker_name,
            exchange_name=schema.exchange_name,
            frame_name=schema.frame_name,
            metric=schema.metric,
        )

    async def get_report(
        self,
        symbol: str,
        walker_name: str,
        strategy_columns: Iterable[Any] | None = None,
        pnl_columns: Iterable[Any] | None = None,
    ) -> str:
        """The comparison report as Markdown (70 §10)."""
        method = "Walker.get_report"
        schema = _validate(symbol, walker_name, method)
        s_cols = resolve_columns("walker_strategy_columns", strategy_columns, method)
        p_cols = resolve_columns("walker_pnl_columns", pnl_columns, method)
        stats = current().reports.walker_data(
            symbol,
            walker_name,
            exchange_name=schema.exchange_name,
            frame_name=schema.frame_name,
            metric=schema.metric,
        )
        return await markdown.walker_report(stats, s_cols, p_cols)

    async def dump(
        self,
        symbol: str,
        walker_name: str,
        path: str | Path = "./dump/walker",
        strategy_columns: Iterable[Any] | None = None,
        pnl_columns: Iterable[Any] | None = None,
        format: str = "md",
    ) -> Path | None:
        """Write the report to `path/{symbol}_{walker_name}.md` (or `.html` with
        `format="html"`, 97 §5: the metric per strategy and the comparison table); returns
        the file (`None` when writing failed: logged, not raised)."""
        check_format("Walker.dump", format, HTML_FORMATS)
        if format == "html":
            from ..report.html import require_plotly, walker_html

            method = "Walker.dump"
            require_plotly()
            schema = _validate(symbol, walker_name, method)
            s_cols = resolve_columns("walker_strategy_columns", strategy_columns, method)
            stats = current().reports.walker_data(
                symbol,
                walker_name,
                exchange_name=schema.exchange_name,
                frame_name=schema.frame_name,
                metric=schema.metric,
            )
            page = await walker_html(stats, s_cols)
            file = report_file(path, symbol, walker_name, suffix=".html")
            return write_report("Walker", method, file, page)
        text = await self.get_report(symbol, walker_name, strategy_columns, pnl_columns)
        return write_report("Walker", "Walker.dump", report_file(path, symbol, walker_name), text)


async def _collect(walk: AsyncIterator[WalkerContract]) -> list[WalkerContract]:
    return [contract async for contract in walk]


Walker = WalkerUtils()

__all__ = [
    "FORWARDED_TOPICS",
    "Walker",
    "WalkerCancel",
    "WalkerUtils",
    "WorkerOutcome",
    "WorkerTask",
    "default_module",
    "run_worker_task",
]
