"""Parallel walker and sweep (97 §4): `workers=2` (a real process pool) equals the sequential
run — results, events, statistics and report; any `concurrent.futures.Executor`; a worker
whose module does not register the schemas; `bk.sweep` sequential and in processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.cli import load_user_module
from support import SYMBOL

MODULE = """
from datetime import timedelta

import backtest_kit as bk
from support import BASE, Market, minute_of

MARKET = Market(first=-60, last=400).take_profit_at(10, 130)


def at(*minutes):
    def get_signal(symbol, when):
        minute = minute_of(when)
        if minute in minutes:
            return bk.Signal("long", 101.0, 99.0, 60, id=f"{symbol}-{minute}")
        return None
    return get_signal


def make(first, second):
    return at(first, second)


bk.add_exchange(exchange_name="ex", get_candles=MARKET.get_candles)
bk.add_frame(frame_name="f", interval="1m", start_date=BASE,
             end_date=BASE + timedelta(minutes=200))
if REGISTER_STRATEGIES:
    for name, minutes in {"loss": (20,), "none": (), "win": (0,), "big": (0, 120)}.items():
        bk.add_strategy(strategy_name=name, interval="1m", get_signal=at(*minutes))
    bk.add_walker("w", "ex", "f", ["loss", "none", "win", "big"], metric="total_pnl")
"""


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def write_module(tmp_path: Path, name: str, register: bool = True) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE.replace("REGISTER_STRATEGIES", str(register)), encoding="utf-8")
    return path


def record() -> list[tuple[str, Any]]:
    log: list[tuple[str, Any]] = []
    bk.listen_signal_backtest(lambda e: log.append(("signal_backtest", e)))
    bk.listen_signal(lambda e: log.append(("signal", e)))
    bk.listen_walker(lambda e: log.append(("walker", e)))
    bk.listen_walker_progress(lambda e: log.append(("progress", e)))
    bk.listen_walker_complete(lambda e: log.append(("complete", e)))
    return log


def run(path: Path, **kwargs: Any) -> tuple[list[Any], list[Any], str, Any]:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    load_user_module(str(path))
    log = record()
    results = bk.Walker.run_sync(SYMBOL, walker_name="w", **kwargs)
    report = asyncio.run(bk.Walker.get_report(SYMBOL, "w"))
    data = asyncio.run(bk.Walker.get_data(SYMBOL, "w"))
    return results, log, report, data


def test_two_workers_equal_the_sequential_run(tmp_path: Path) -> None:
    path = write_module(tmp_path, "walker_strategies_par")
    sequential = run(path)
    parallel = run(path, workers=2, module=str(path))
    assert [r.strategy_name for r in parallel[0]] == ["loss", "none", "win", "big"]
    assert parallel[0] == sequential[0]
    assert [kind for kind, _ in parallel[1]] == [kind for kind, _ in sequential[1]]
    assert parallel[1] == sequential[1]  # idle ticks included: a user listens to signals
    assert any(e.action == "idle" for kind, e in parallel[1] if kind == "signal")
    assert parallel[2] == sequential[2]
    assert parallel[3] == sequential[3]
    assert parallel[3].best_strategy == "big"


def test_any_executor_and_the_default_module(tmp_path: Path) -> None:
    path = write_module(tmp_path, "walker_strategies_exec")
    sequential = run(path)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        # no module given: the file where the first strategy's get_signal is defined
        pooled = run(path, executor=pool)
    assert pooled[0] == sequential[0] and pooled[2] == sequential[2]
    assert bk.engine.walker.default_module(bk.list_walkers()[0]) == str(path.resolve())


def test_a_worker_whose_module_registers_nothing_fails_by_name(tmp_path: Path) -> None:
    path = write_module(tmp_path, "walker_strategies_ok")
    empty = write_module(tmp_path, "walker_strategies_empty", register=False)
    load_user_module(str(path))
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    results = bk.Walker.run_sync(SYMBOL, walker_name="w", workers=1, module=str(empty))
    assert results == []  # every strategy failed in its worker, the walker went on
    assert len(errors) == 4 and all(isinstance(e, bk.RegistryError) for e in errors)
    assert "walker_strategies_empty.py" in str(errors[0]) and "'loss'" in str(errors[0])


def test_bad_parallel_arguments() -> None:
    bk.add_walker("w", "ex", "f", ["a"])
    with pytest.raises(bk.ValidationError, match="workers"):
        bk.Walker.run(SYMBOL, walker_name="w", workers=0)
    with pytest.raises(bk.ValidationError, match="executor must be"):
        bk.Walker.run(SYMBOL, walker_name="w", executor="threads")
    with pytest.raises(bk.ValidationError, match="not both"):
        bk.Walker.run(SYMBOL, walker_name="w", workers=2, executor="ray")


def test_sweep_sequential_and_in_processes(tmp_path: Path) -> None:
    path = write_module(tmp_path, "walker_sweep_mod", register=False)
    module = load_user_module(str(path))
    grid = {"first": [0, 20], "second": [120, 500]}
    df = bk.sweep(
        "p",
        module.make,
        grid,
        symbol=SYMBOL,
        exchange_name="ex",
        frame_name="f",
        metric="total_pnl",
    )
    assert list(df.columns[:3]) == ["first", "second", "strategy_name"]
    assert "sharpe_ratio" in df.columns and "total_signals" in df.columns
    assert df["strategy_name"].tolist() == ["p-0", "p-1", "p-2", "p-3"]
    assert df["total_signals"].tolist() == [2, 1, 2, 1]
    assert df["total_pnl"].is_monotonic_decreasing or math.isnan(df["total_pnl"].iloc[-1])
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    module = load_user_module(str(path))
    parallel = bk.sweep(
        "p",
        module.make,
        grid,
        symbol=SYMBOL,
        exchange_name="ex",
        frame_name="f",
        metric="total_pnl",
        workers=2,
        module=str(path),
    )
    assert parallel.equals(df)


def test_ray_executor_equals_the_sequential_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    # local Ray workers inherit the environment, not sys.path: the module imports `support`
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = write_module(tmp_path, "walker_strategies_ray")
    sequential = run(path)
    try:
        on_ray = run(path, executor="ray", module=str(path))
    finally:
        ray.shutdown()
    assert on_ray[0] == sequential[0]
    assert on_ray[1] == sequential[1]
    assert on_ray[2] == sequential[2]


def test_background_cancel_with_workers(tmp_path: Path) -> None:
    path = write_module(tmp_path, "walker_strategies_cancel")
    load_user_module(str(path))
    log: list[Any] = []
    box: dict[str, Any] = {}

    def on_walker(contract: bk.WalkerContract) -> None:
        log.append(("walker", contract.strategy_name))
        box["cancel"]()

    bk.listen_walker(on_walker)
    bk.listen_walker_complete(lambda e: log.append(("complete", e.best_strategy)))
    bk.listen_done_walker(lambda e: log.append(("done", e.stopped)))

    async def main() -> None:
        box["cancel"] = bk.Walker.background(SYMBOL, walker_name="w", workers=2, module=str(path))
        await box["cancel"].task

    asyncio.run(main())
    assert log == [("walker", "loss"), ("complete", "loss"), ("done", True)]
