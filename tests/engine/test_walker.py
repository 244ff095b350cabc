"""Walker (70): best-metric rule (strictly greater, ties, None), event order, callbacks, a
failing strategy, stop and background cancel, two symbols, reports. Every strategy trades on a
hand-made 1m series, flat at 100 with take-profit bars where set."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.context import method_context
from support import BASE, SYMBOL, Market, minute_of

OTHER = "ETHUSDT"


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def at(*minutes: int) -> Any:
    """`get_signal` opening a long (TP 101, SL 99, 60 min) at each of `minutes`."""

    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        minute = minute_of(when)
        if minute in minutes:
            return bk.Signal("long", 101.0, 99.0, 60, id=f"{symbol}-{minute}")
        return None

    return get_signal


def setup(
    strategies: dict[str, Any],
    *,
    metric: str = "total_pnl",
    callbacks: Any = None,
    frame_callbacks: Any = None,
    end: int = 200,
) -> None:
    market = Market(first=-60, last=400).take_profit_at(10, 130)
    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_frame(
        frame_name="f",
        interval="1m",
        start_date=BASE,
        end_date=BASE + timedelta(minutes=end),
        callbacks=frame_callbacks,
    )
    for name, fn in strategies.items():
        bk.add_strategy(strategy_name=name, interval="1m", get_signal=fn)
    bk.add_walker("w", "ex", "f", list(strategies), metric=metric, callbacks=callbacks)


# loss: one trade expiring flat (negative after fees); win: one take profit at minute 10;
# none: no trade (metric None); win2: the same winning trade (a tie); big: two take profits
FIVE = {"loss": at(20), "none": at(), "win": at(0), "win2": at(0), "big": at(0, 120)}


def test_add_walker_validates_and_normalises_the_metric() -> None:
    bk.add_walker("a", "ex", "f", ["s1"], metric="sharpeRatio")
    assert bk.list_walkers()[0].metric == "sharpe_ratio"
    with pytest.raises(bk.ValidationError, match="duplicate"):
        bk.add_walker("b", "ex", "f", ["s1", "s1"])
    with pytest.raises(bk.ValidationError, match="empty"):
        bk.add_walker("b", "ex", "f", [])
    with pytest.raises(bk.ValidationError, match="unknown metric 'std_dev'"):
        bk.add_walker("b", "ex", "f", ["s1"], metric="std_dev")
    with pytest.raises(bk.RegistryError, match="already exist"):
        bk.add_walker("a", "ex", "f", ["s2"])
    with pytest.raises(bk.ValidationError, match="unknown callback"):
        bk.add_walker("b", "ex", "f", ["s1"], callbacks={"on_nothing": print})
    assert [w.walker_name for w in bk.list_walkers()] == ["a"]
    # unknown strategy: checked when the walker runs, before any work
    with pytest.raises(bk.RegistryError, match="exchange 'ex' not found"):
        bk.Walker.run_sync(SYMBOL, walker_name="a")


def test_contracts_best_rule_ties_and_none() -> None:
    setup(FIVE)
    results = bk.Walker.run_sync(SYMBOL, walker_name="w")
    assert [r.strategy_name for r in results] == list(FIVE)
    assert [r.strategies_tested for r in results] == [1, 2, 3, 4, 5]
    assert {r.total_strategies for r in results} == {5}
    values = [r.metric_value for r in results]
    assert values[0] is not None and values[0] < 0
    assert values[1] is None
    assert values[2] is not None and values[2] > 0 and values[2] == values[3]
    assert values[4] == pytest.approx(2 * values[2])
    # the first non-None value is best; a tie keeps the earlier; strictly greater wins
    assert [r.best_strategy for r in results] == ["loss", "loss", "win", "win", "big"]
    assert [r.best_metric for r in results] == [
        values[0],
        values[0],
        values[2],
        values[2],
        values[4],
    ]
    assert results[2].stats.total_signals == 1 and results[1].stats.total_signals == 0
    data = asyncio.run(bk.Walker.get_data(SYMBOL, "w"))
    assert data.best_strategy == "big" and data.best_metric == values[4]
    assert data.best_stats is not None and data.best_stats.total_signals == 2
    assert [s.strategy_name for s in data.strategy_results] == list(reversed(FIVE))
    assert data.metric == "total_pnl" and data.total_strategies == 5


def test_all_none_gives_no_best_and_the_report_prints_na() -> None:
    setup({"a": at(), "b": at()})
    completes: list[bk.WalkerCompleteContract] = []
    bk.listen_walker_complete(completes.append)
    results = bk.Walker.run_sync(SYMBOL, walker_name="w")
    assert [(r.metric_value, r.best_strategy, r.best_metric) for r in results] == [
        (None, None, None),
        (None, None, None),
    ]
    (final,) = completes
    assert (final.best_strategy, final.best_metric, final.best_stats) == (None, None, None)
    report = asyncio.run(bk.Walker.get_report(SYMBOL, "w"))
    assert "## Best Strategy: N/A" in report
    assert "**Best total_pnl:** N/A" in report
    assert "**Total Signals:** 0" in report
    assert "No closed signals available." in report


def test_event_and_callback_order() -> None:
    log: list[tuple[Any, ...]] = []

    def cb(name: str) -> Any:
        return lambda *args: log.append((name, *(a for a in args if isinstance(a, str))))

    async def on_complete(result: bk.WalkerCompleteContract) -> None:
        log.append(("on_complete", result.best_strategy))

    setup(
        {"loss": at(20), "win": at(0)},
        callbacks=bk.WalkerCallbacks(
            on_strategy_start=cb("start"),
            on_strategy_complete=cb("complete"),
            on_strategy_error=cb("error"),
            on_complete=on_complete,
        ),
    )
    bk.listen_walker_progress(
        lambda e: log.append(("progress", e.processed_strategies, e.progress))
    )
    bk.listen_walker(lambda e: log.append(("walker", e.strategy_name)))
    bk.listen_walker_complete(lambda e: log.append(("walker_complete", e.best_strategy)))
    bk.listen_signal_backtest(
        lambda e: log.append(("closed", e.signal.id)) if e.action == "closed" else None
    )

    async def consume() -> None:
        async for result in bk.Walker.run(SYMBOL, walker_name="w"):
            log.append(("yield", result.strategy_name))

    asyncio.run(consume())
    assert log == [
        ("start", "loss", SYMBOL),
        ("closed", f"{SYMBOL}-20"),
        ("progress", 1, 0.5),
        ("complete", "loss", SYMBOL),
        ("walker", "loss"),
        ("yield", "loss"),
        ("start", "win", SYMBOL),
        ("closed", f"{SYMBOL}-0"),
        ("progress", 2, 1.0),
        ("complete", "win", SYMBOL),
        ("walker", "win"),
        ("yield", "win"),
        ("on_complete", "win"),
        ("walker_complete", "win"),
    ]


def test_abandoned_generator_emits_no_complete() -> None:
    setup({"a": at(0), "b": at(0)})
    completes: list[Any] = []
    bk.listen_walker_complete(completes.append)

    async def first_only() -> None:
        walk = bk.Walker.run(SYMBOL, walker_name="w")
        async for _ in walk:
            break
        await walk.aclose()  # type: ignore[attr-defined]

    asyncio.run(first_only())
    assert completes == []


def test_a_failing_strategy_is_reported_and_skipped() -> None:
    boom = RuntimeError("bad strategy")

    def on_timeframe(*args: Any) -> None:
        ctx = method_context.get()
        if ctx is not None and ctx.strategy_name == "bad":
            raise boom

    log: list[tuple[Any, ...]] = []
    setup(
        {"bad": at(0), "win": at(0)},
        frame_callbacks={"on_timeframe": on_timeframe},
        callbacks={"on_strategy_error": lambda n, s, e: log.append(("on_error", n, e))},
    )
    bk.listen_error(lambda e: log.append(("error", e)))
    bk.listen_walker(lambda e: log.append(("walker", e.strategy_name)))
    bk.listen_walker_progress(lambda e: log.append(("progress", e.processed_strategies)))
    completes: list[bk.WalkerCompleteContract] = []
    bk.listen_walker_complete(completes.append)
    results = bk.Walker.run_sync(SYMBOL, walker_name="w")
    assert [r.strategy_name for r in results] == ["win"]
    assert results[0].strategies_tested == 1 and results[0].total_strategies == 2
    assert log == [("error", boom), ("on_error", "bad", boom), ("progress", 1), ("walker", "win")]
    assert completes[0].best_strategy == "win"


def test_stop_during_strategy_two_of_four() -> None:
    setup({"a": at(0), "b": at(0, 120), "c": at(0, 120), "d": at(0, 120)})
    completes: list[bk.WalkerCompleteContract] = []
    bk.listen_walker_complete(completes.append)

    async def main() -> list[bk.WalkerContract]:
        def on_closed(result: Any) -> Any:
            if result.action == "closed" and result.strategy_name == "b":
                return bk.Walker.stop(SYMBOL, "w")  # during b's first trade
            return None

        bk.listen_signal_backtest(on_closed)
        return [r async for r in bk.Walker.run(SYMBOL, walker_name="w")]

    results = asyncio.run(main())
    assert [r.strategy_name for r in results] == ["a", "b"]
    # b was truncated after its first trade and still competes (a tie with a: a stays best)
    assert results[1].stats.total_signals == 1
    (final,) = completes
    assert final.best_strategy == "a" and final.total_strategies == 4


def test_background_cancel_then_done_last_and_second_background_raises() -> None:
    setup({"a": at(0), "b": at(0, 120), "c": at(0)})
    log: list[Any] = []
    box: dict[str, Any] = {}

    def on_closed(result: Any) -> None:
        if result.action == "closed" and result.strategy_name == "b":
            box["cancel"]()
            box["cancel"]()  # idempotent

    bk.listen_signal_backtest(on_closed)
    bk.listen_walker(lambda e: log.append(("walker", e.strategy_name, e.stats.total_signals)))
    bk.listen_walker_complete(lambda e: log.append(("complete", e.best_strategy)))
    bk.listen_done_walker(lambda e: log.append(("done", e)))

    async def main() -> list[dict[str, str]]:
        cancel = bk.Walker.background(SYMBOL, walker_name="w")
        box["cancel"] = cancel
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Walker.background(SYMBOL, walker_name="w")
        statuses = [row["status"] for row in await bk.Walker.list()]
        await cancel.task
        return [*(await bk.Walker.list()), {"before": statuses[0]}]

    listing = asyncio.run(main())
    assert log[:3] == [("walker", "a", 1), ("walker", "b", 1), ("complete", "a")]
    assert len(log) == 4 and log[3][0] == "done"
    done = log[3][1]
    assert (done.strategy_name, done.walker_name, done.exchange_name) == ("w", "w", "ex")
    assert done.stopped is True and done.backtest is True and done.symbol == SYMBOL
    assert listing[0]["status"] == "fulfilled" and listing[1] == {"before": "pending"}


def test_background_to_the_end_is_not_stopped() -> None:
    setup({"a": at(0)})
    dones: list[Any] = []
    bk.listen_done_walker(dones.append)

    async def main() -> None:
        await bk.Walker.background(SYMBOL, walker_name="w").task

    asyncio.run(main())
    assert [d.stopped for d in dones] == [False]


def test_two_symbols_are_independent_and_dump_two_files(tmp_path: Path) -> None:
    setup({"a": at(0), "b": at(0, 120)})
    bk.Walker.run_sync(SYMBOL, walker_name="w")
    bk.Walker.run_sync(OTHER, walker_name="w")
    one = asyncio.run(bk.Walker.get_data(SYMBOL, "w"))
    two = asyncio.run(bk.Walker.get_data(OTHER, "w"))
    assert one.symbol == SYMBOL and two.symbol == OTHER
    assert one.strategy_results[0].stats.signal_list[0].signal.id == f"{SYMBOL}-120"
    assert two.strategy_results[0].stats.signal_list[0].signal.id == f"{OTHER}-120"
    for symbol in (SYMBOL, OTHER):
        asyncio.run(bk.Walker.dump(symbol, "w", tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{SYMBOL}_w.md", f"{OTHER}_w.md"]
    with pytest.raises(bk.BacktestKitError, match="No walker data available"):
        asyncio.run(bk.Walker.get_data("XRPUSDT", "w"))


def test_report_layout() -> None:
    setup({"loss": at(20), "none": at(), "win": at(0)})
    bk.Walker.run_sync(SYMBOL, walker_name="w")
    report = asyncio.run(bk.Walker.get_report(SYMBOL, "w"))
    lines = report.split("\n")
    assert lines[:10] == [
        "# Walker Comparison Report: w",
        "",
        f"**Symbol:** {SYMBOL}",
        "**Exchange:** ex",
        "**Frame:** f",
        "**Optimization Metric:** total_pnl",
        "**Strategies Tested:** 3",
        "",
        "## Best Strategy: win",
        "",
    ]
    assert re.fullmatch(r"\*\*Best total_pnl:\*\* \d+\.\d\d", lines[10])
    assert lines[11] == "**Total Signals:** 1"
    header = next(line for line in lines if line.startswith("| Rank"))
    assert header.split("|")[1:-1] == [
        " Rank ",
        " Strategy ",
        " Metric ",
        " Total Signals ",
        " Win Rate ",
        " Avg PNL ",
        " Total PNL ",
        " Sharpe Ratio ",
        " Std Dev ",
    ]
    rows = [line for line in lines if re.match(r"\| \d ", line)]
    assert [row.split("|")[2].strip() for row in rows] == ["win", "loss", "none"]
    win = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert win[3:5] == ["1", "100.00%"] and win[5].startswith("+") and win[7] == "0.000"
    none = [c.strip() for c in rows[2].split("|")[1:-1]]
    assert none[2:] == ["N/A", "0", "N/A", "N/A", "N/A", "N/A", "N/A"]
    pnl_rows = [line for line in lines if f"| {SYMBOL}-" in line]
    assert [row.split("|")[1].strip() for row in pnl_rows] == ["win", "loss"]
    cells = [c.strip() for c in pnl_rows[1].split("|")[1:-1]]
    assert cells[3] == "LONG" and cells[4].startswith("-") and cells[5] == "time_expired"
    assert cells[6] == "2024-01-01T00:20:00.000Z"
    assert report.endswith("(lower is better).")
