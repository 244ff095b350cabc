"""Scenario tests for `backtest_kit.engine.backtest` (30) and the event bus (85): the jump after
an exit, progress and performance sequences, listener isolation and ordering, stop, background
runs and their done/exit events, failures inside the loop, run validation and contexts. Every
run goes over a hand-made 1m series, flat at 100 unless a bar is set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import backtest_kit as bk
from support import BASE, SYMBOL, Market, minute_of, ms

RUN = {"strategy_name": "s1", "exchange_name": "ex", "frame_name": "f"}


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


def long_signal(minute: int = 0) -> bk.Signal:
    return bk.Signal("long", 101.0, 99.0, 60, id=f"sig-{minute}")


LONG = long_signal()


class Script:
    """`get_signal` answering from {minute: value} (or `always`) and recording every call."""

    def __init__(self, answers: dict[int, Any] | None = None, *, always: bool = False) -> None:
        self.answers = answers or {}
        self.always = always
        self.calls: list[int] = []

    def __call__(self, symbol: str, when: datetime) -> Any:
        minute = minute_of(when)
        self.calls.append(minute)
        if self.always:
            return long_signal(minute)
        return self.answers.get(minute)


def register(
    market: Market,
    get_signal: Callable[..., Any],
    *,
    frame: tuple[int, int] = (0, 20),
    frame_interval: str = "1m",
    interval: str = "1m",
    callbacks: Any = None,
    frame_callbacks: Any = None,
) -> None:
    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_strategy(
        strategy_name="s1", interval=interval, get_signal=get_signal, callbacks=callbacks
    )
    bk.add_frame(
        frame_name="f",
        interval=frame_interval,
        start_date=BASE + timedelta(minutes=frame[0]),
        end_date=BASE + timedelta(minutes=frame[1]),
        callbacks=frame_callbacks,
    )


def run_sync() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, **RUN)


def record_run_events() -> list[tuple[Any, ...]]:
    """Progress, performance, done and exit events in one list."""
    log: list[tuple[Any, ...]] = []
    bk.listen_backtest_progress(
        lambda p: log.append(("progress", p.processed_frames, p.total_frames, p.progress))
    )
    bk.listen_performance(lambda p: log.append(("perf", p.metric_type)))
    bk.listen_done_backtest(lambda d: log.append(("done", d)))
    bk.listen_exit(lambda e: log.append(("exit", e)))
    return log


def done(stopped: bool) -> tuple[str, bk.DoneContract]:
    return (
        "done",
        bk.DoneContract(
            exchange_name="ex",
            strategy_name="s1",
            backtest=True,
            symbol=SYMBOL,
            walker_name=None,
            stopped=stopped,
        ),
    )


# -- the jump after a close (02 §1, 30 §5.3) -----------------------------------------------------


def test_exit_in_the_candle_of_0007_next_question_at_0008() -> None:
    script = Script({0: LONG})
    register(Market().take_profit_at(7), script, frame=(0, 12))
    closes: list[int] = []
    bk.listen_signal_backtest(lambda r: r.action == "closed" and closes.append(r.close_timestamp))

    results = run_sync()

    assert [r.close_timestamp for r in results] == [ms(7)] == closes
    assert script.calls == [0, 8, 9, 10, 11, 12]


def test_four_hour_frame_takes_a_trade_at_every_tick() -> None:
    tps = [h * 60 + 30 for h in (0, 4, 8, 12, 16, 20)]
    script = Script(always=True)
    register(
        Market(last=1300).take_profit_at(*tps), script, frame=(0, 20 * 60), frame_interval="4h"
    )

    results = run_sync()

    assert [r.close_reason for r in results] == ["take_profit"] * 6
    assert [r.close_timestamp for r in results] == [ms(m) for m in tps]
    assert [r.signal.pending_at for r in results] == [ms(h * 60) for h in (0, 4, 8, 12, 16, 20)]
    assert script.calls == [0, 240, 480, 720, 960, 1200]


def test_four_hour_frame_progress_after_one_trade_at_midnight() -> None:
    register(
        Market(last=1300).take_profit_at(30),
        Script({0: LONG}),
        frame=(0, 1200),
        frame_interval="4h",
    )
    log = record_run_events()

    results = run_sync()

    assert [r.close_timestamp for r in results] == [ms(30)]
    progress = [entry[1:] for entry in log if entry[0] == "progress"]
    assert progress == [(i, 6, i / 6) for i in range(6)] + [(6, 6, 1.0)]


def test_progress_and_performance_of_the_30_6_1_example() -> None:
    script = Script({2: LONG})
    register(Market().take_profit_at(5), script, frame=(0, 12))
    progress: list[bk.ProgressBacktestContract] = []
    perf: list[bk.PerformanceContract] = []
    bk.listen_backtest_progress(progress.append)
    bk.listen_performance(perf.append)

    results = run_sync()

    assert [(r.signal.pending_at, r.close_timestamp) for r in results] == [(ms(2), ms(5))]
    assert script.calls == [0, 1, 2, 6, 7, 8, 9, 10, 11, 12]
    assert [p.processed_frames for p in progress] == [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13]
    assert {p.total_frames for p in progress} == {13}
    assert [p.progress for p in progress] == [i / 13 for i in (0, 1, 2, 6, 7, 8, 9, 10, 11, 12)] + [
        1.0
    ]
    assert progress[-1] == bk.ProgressBacktestContract(
        exchange_name="ex",
        strategy_name="s1",
        symbol=SYMBOL,
        total_frames=13,
        processed_frames=13,
        progress=1.0,
    )
    assert [p.metric_type for p in perf] == [
        "backtest_timeframe",
        "backtest_timeframe",
        "backtest_signal",
        "backtest_timeframe",
        *["backtest_timeframe"] * 7,
        "backtest_total",
    ]
    assert perf[0].previous_timestamp is None
    assert [p.previous_timestamp for p in perf[1:]] == [p.timestamp for p in perf[:-1]]
    assert all(p.backtest is True and p.duration >= 0 for p in perf)
    assert {(p.symbol, p.strategy_name, p.exchange_name) for p in perf} == {(SYMBOL, "s1", "ex")}


# -- listeners (85 §1) ----------------------------------------------------------------------------


def test_a_raising_listener_is_isolated() -> None:
    register(Market().take_profit_at(3), Script({0: LONG}), frame=(0, 5))
    boom = RuntimeError("listener broke")
    first: list[str] = []
    second: list[str] = []
    errors: list[BaseException] = []

    def failing(result: Any) -> None:
        first.append(result.action)
        if result.action == "opened":
            raise boom

    bk.listen_signal_backtest(failing)
    bk.listen_signal_backtest(lambda r: second.append(r.action))
    bk.listen_error(errors.append)

    results = run_sync()

    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(3))]
    assert errors == [boom]
    assert first == second == ["opened", "closed", "idle", "idle"]


def test_a_raising_error_listener_is_only_logged() -> None:
    boom = RuntimeError("no data")
    got: list[BaseException] = []

    def failing(exc: BaseException) -> None:
        raise ValueError("error listener broke")

    def get_signal(symbol: str, when: datetime) -> None:
        raise boom

    register(Market(), get_signal, frame=(0, 1))
    bk.listen_error(failing)
    bk.listen_error(got.append)

    assert run_sync() == []
    assert got == [boom, boom]


def test_listener_events_arrive_one_at_a_time_and_the_engine_waits() -> None:
    log: list[tuple[str, Any]] = []

    def get_signal(symbol: str, when: datetime) -> None:
        log.append(("ask", minute_of(when)))

    async def slow(result: Any) -> None:
        log.append(("start", result.action))
        await asyncio.sleep(0.01)
        log.append(("end", result.action))

    register(Market(), get_signal, frame=(0, 2))
    bk.listen_signal_backtest(slow)
    bk.listen_signal_backtest(lambda r: log.append(("second", r.action)))

    async def main() -> list[Any]:
        return [r async for r in bk.Backtest.run(SYMBOL, **RUN)]

    assert asyncio.run(main()) == []
    per_frame = [("start", "idle"), ("end", "idle"), ("second", "idle")]
    assert log == [
        ("ask", 0),
        *per_frame,
        ("ask", 1),
        *per_frame,
        ("ask", 2),
        *per_frame,
    ]


def test_once_fires_once_and_unsubscribe_cancels() -> None:
    register(Market().take_profit_at(2, 6), Script({0: LONG, 4: long_signal(4)}), frame=(0, 8))
    filtered: list[str] = []
    fired: list[Any] = []
    never: list[Any] = []
    removed: list[Any] = []

    def closed_only(result: Any) -> bool:
        filtered.append(result.action)
        return result.action == "closed"

    bk.listen_signal_backtest_once(closed_only, fired.append)
    cancel_once = bk.listen_signal_backtest_once(lambda r: True, never.append)
    cancel_once()
    unsubscribe = bk.listen_signal_backtest(removed.append)
    unsubscribe()
    unsubscribe()  # idempotent

    results = run_sync()

    assert [r.close_timestamp for r in results] == [ms(2), ms(6)]
    assert fired == [results[0]]
    assert filtered == ["opened", "closed"]
    assert never == []
    assert removed == []


def test_a_listener_can_unsubscribe_itself() -> None:
    register(Market(), Script(), frame=(0, 5))
    got: list[str] = []
    unsubscribe: list[Callable[[], None]] = []

    def twice(result: Any) -> None:
        got.append(result.action)
        if len(got) == 2:
            unsubscribe[0]()

    unsubscribe.append(bk.listen_signal_backtest(twice))
    other: list[str] = []
    bk.listen_signal_backtest(lambda r: other.append(r.action))

    run_sync()

    assert got == ["idle", "idle"]
    assert other == ["idle"] * 6


# -- stop (30 §7.1) -------------------------------------------------------------------------------


def _stop_on_first_close() -> None:
    async def on_signal(result: Any) -> None:
        if result.action == "closed":
            await bk.Backtest.stop(SYMBOL, "s1")

    bk.listen_signal_backtest(on_signal)


def test_stop_in_a_listener_on_the_first_close_foreground() -> None:
    script = Script(always=True)
    register(Market().take_profit_at(5, 10, 15), script, frame=(0, 20))
    _stop_on_first_close()
    log = record_run_events()

    results = run_sync()

    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(5))]
    assert script.calls == [0]
    progress = [entry[1:] for entry in log if entry[0] == "progress"]
    assert progress == [(0, 21, 0.0), (6, 21, 6 / 21)]
    assert log[-1] == ("perf", "backtest_total")


def test_stop_in_a_listener_on_the_first_close_background() -> None:
    script = Script(always=True)
    register(Market().take_profit_at(5, 10, 15), script, frame=(0, 20))
    _stop_on_first_close()
    closed: list[int] = []
    bk.listen_signal_backtest(lambda r: r.action == "closed" and closed.append(r.close_timestamp))
    log = record_run_events()

    async def main() -> None:
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        await cancel.task

    asyncio.run(main())

    assert closed == [ms(5)]
    assert script.calls == [0]
    assert log[-3:] == [("progress", 6, 21, 6 / 21), ("perf", "backtest_total"), done(True)]


def test_cancel_while_idle_ends_the_run_with_one_done_event() -> None:
    holder: dict[str, Any] = {}
    calls: list[int] = []

    def get_signal(symbol: str, when: datetime) -> Any:
        calls.append(minute_of(when))
        if minute_of(when) == 2:
            holder["cancel"]()
            return LONG  # arrives after the stop: discarded
        return None

    register(Market(), get_signal, frame=(0, 20))
    log = record_run_events()
    signals: list[str] = []
    bk.listen_signal_backtest(lambda r: signals.append(r.action))

    async def main() -> None:
        holder["cancel"] = bk.Backtest.background(SYMBOL, **RUN)
        await holder["cancel"].task
        holder["cancel"]()  # after the end: does nothing

    asyncio.run(main())

    assert calls == [0, 1, 2]
    assert signals == ["idle", "idle", "idle"]
    assert log == [
        ("progress", 0, 21, 0.0),
        ("perf", "backtest_timeframe"),
        ("progress", 1, 21, 1 / 21),
        ("perf", "backtest_timeframe"),
        ("progress", 2, 21, 2 / 21),
        ("progress", 3, 21, 3 / 21),
        ("perf", "backtest_total"),
        done(True),
    ]


def test_cancel_right_after_background_stops_before_the_first_tick() -> None:
    script = Script(always=True)
    register(Market(), script, frame=(0, 20))
    log = record_run_events()

    async def main() -> None:
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        assert cancel() is None
        cancel()  # idempotent
        await cancel.task

    asyncio.run(main())

    assert script.calls == []
    assert log == [
        ("progress", 0, 21, 0.0),
        ("progress", 0, 21, 0.0),
        ("perf", "backtest_total"),
        done(True),
    ]


def test_cancel_from_an_opened_listener_still_yields_that_trade() -> None:
    script = Script(always=True)
    register(Market().take_profit_at(5, 10), script, frame=(0, 20))
    holder: dict[str, Any] = {}
    signals: list[str] = []

    def on_signal(result: Any) -> None:
        signals.append(result.action)
        if result.action == "opened":
            holder["cancel"]()

    bk.listen_signal_backtest(on_signal)
    log = record_run_events()

    async def main() -> None:
        holder["cancel"] = bk.Backtest.background(SYMBOL, **RUN)
        await holder["cancel"].task

    asyncio.run(main())

    assert signals == ["opened", "closed"]
    assert script.calls == [0]
    assert log[-3:] == [("progress", 6, 21, 6 / 21), ("perf", "backtest_total"), done(True)]


# -- background runs (30 §3, §7.2–§7.3) -----------------------------------------------------------


def test_finished_background_run_emits_done_not_stopped() -> None:
    register(Market().take_profit_at(3), Script({0: LONG}), frame=(0, 5))
    log = record_run_events()
    statuses: list[list[dict[str, str]]] = []

    async def main() -> None:
        statuses.append(await bk.Backtest.list())
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        statuses.append(await bk.Backtest.list())
        await cancel.task
        statuses.append(await bk.Backtest.list())

    asyncio.run(main())

    assert [d for d in log if d[0] == "done"] == [done(False)]
    assert log[-3:] == [("progress", 6, 6, 1.0), ("perf", "backtest_total"), done(False)]
    assert statuses[0] == []
    assert [[(s["symbol"], s["strategy_name"], s["status"]) for s in x] for x in statuses[1:]] == [
        [(SYMBOL, "s1", "pending")],
        [(SYMBOL, "s1", "fulfilled")],
    ]
    assert statuses[1][0]["id"] == statuses[2][0]["id"]


def test_background_twice_and_run_while_pending_are_refused() -> None:
    register(Market(), Script(), frame=(0, 5))
    message = "Backtest.background is already running for symbol=BTCUSDT strategy_name=s1"

    async def main() -> None:
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        with pytest.raises(bk.BacktestKitError) as second:
            bk.Backtest.background(SYMBOL, **RUN)
        assert str(second.value) == message
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Backtest.run(SYMBOL, **RUN)
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Backtest.run_sync(SYMBOL, **RUN)
        await cancel.task
        # once it ended, a new run is allowed
        assert [r async for r in bk.Backtest.run(SYMBOL, **RUN)] == []

    asyncio.run(main())


def test_background_needs_a_running_loop() -> None:
    register(Market(), Script(), frame=(0, 5))

    with pytest.raises(bk.BacktestKitError, match="run_sync"):
        bk.Backtest.background(SYMBOL, **RUN)


def test_on_timeframe_raising_in_background_is_an_exit_then_a_new_run_works() -> None:
    boom = RuntimeError("frame callback broke")
    calls: list[int] = []

    def on_timeframe(timestamps: list[datetime], start: datetime, end: datetime, iv: str) -> None:
        calls.append(len(timestamps))
        if len(calls) == 1:
            raise boom

    register(Market(), Script(), frame=(0, 5), frame_callbacks={"on_timeframe": on_timeframe})
    log = record_run_events()
    statuses: list[str] = []

    async def main() -> None:
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        await cancel.task
        statuses.append((await bk.Backtest.list())[0]["status"])
        cancel = bk.Backtest.background(SYMBOL, **RUN)
        await cancel.task
        statuses.append((await bk.Backtest.list())[0]["status"])

    asyncio.run(main())

    assert log[0][1] is boom
    frames = [(("progress", i, 6, i / 6), ("perf", "backtest_timeframe")) for i in range(6)]
    assert log == [
        ("exit", boom),
        *[entry for pair in frames for entry in pair],
        ("progress", 6, 6, 1.0),
        ("perf", "backtest_total"),
        done(False),
    ]
    assert statuses == ["rejected", "fulfilled"]
    assert calls == [6, 6]


def test_foreground_run_propagates_a_fatal_error() -> None:
    boom = RuntimeError("frame callback broke")

    def on_timeframe(*args: Any) -> None:
        raise boom

    register(Market(), Script(), frame=(0, 5), frame_callbacks={"on_timeframe": on_timeframe})
    exits: list[BaseException] = []
    bk.listen_exit(exits.append)

    with pytest.raises(RuntimeError) as info:
        run_sync()
    assert info.value is boom
    assert exits == []


def test_failing_exchange_gives_an_error_per_tick_and_the_run_finishes() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=1)

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        raise ConnectionError("feed down")

    script = Script(always=True)
    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=script)
    bk.add_frame(
        frame_name="f", interval="1m", start_date=BASE, end_date=BASE + timedelta(minutes=4)
    )
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    signals: list[Any] = []
    bk.listen_signal_backtest(signals.append)
    log = record_run_events()

    async def main() -> None:
        await bk.Backtest.background(SYMBOL, **RUN).task

    asyncio.run(main())

    assert len(errors) == 5
    assert all(isinstance(e, bk.ExchangeError) and "feed down" in str(e) for e in errors)
    assert script.calls == []
    assert signals == []
    # no backtest_timeframe sample for a failed tick
    assert log == [
        *[("progress", i, 5, i / 5) for i in range(5)],
        ("progress", 5, 5, 1.0),
        ("perf", "backtest_total"),
        done(False),
    ]


# -- run() (30 §3–§4) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "kind", "name"),
    [
        ({"strategy_name": "nope"}, "strategy", "nope"),
        ({"exchange_name": "nowhere"}, "exchange", "nowhere"),
        ({"frame_name": "never"}, "frame", "never"),
    ],
)
def test_run_validates_names_at_the_call(kwargs: dict[str, str], kind: str, name: str) -> None:
    script = Script()
    register(Market(), script, frame=(0, 5))
    args = {**RUN, **kwargs}

    with pytest.raises(bk.RegistryError) as info:
        bk.Backtest.run(SYMBOL, **args)  # raises before any iteration
    assert f"{kind} {name!r}" in str(info.value)
    assert "Backtest.run" in str(info.value)
    with pytest.raises(bk.RegistryError, match=f"{kind} '{name}'"):
        bk.Backtest.run_sync(SYMBOL, **args)
    assert script.calls == []


def test_two_sequential_runs_give_the_same_trades() -> None:
    market = Market().take_profit_at(3, 9)
    register(market, Script({0: LONG, 6: long_signal(6)}), frame=(0, 12))

    first = run_sync()
    second = run_sync()

    assert [(r.signal.id, r.close_timestamp) for r in first] == [("sig-0", ms(3)), ("sig-6", ms(9))]
    assert second == first


def test_contexts_inside_get_signal_and_in_the_consumer() -> None:
    seen: list[tuple[Any, ...]] = []
    body: list[bool] = []
    close_dates: list[datetime] = []

    def get_signal(symbol: str, when: datetime) -> Any:
        seen.append((when, bk.get_date(), bk.get_mode(), bk.has_trade_context()))
        return LONG if minute_of(when) == 0 else None

    callbacks = {"on_close": lambda s, row, price, bt: close_dates.append(bk.get_date())}
    register(Market().take_profit_at(3), get_signal, frame=(0, 5), callbacks=callbacks)

    async def main() -> list[Any]:
        out = []
        async for result in bk.Backtest.run(SYMBOL, **RUN):
            body.append(bk.has_trade_context())
            with pytest.raises(bk.BacktestKitError):
                bk.get_date()
            out.append(result)
        return out

    results = asyncio.run(main())

    assert len(results) == 1
    assert body == [False]
    assert [row[0] for row in seen] == [BASE + timedelta(minutes=m) for m in (0, 4, 5)]
    assert all(when == date and mode == "backtest" and ctx for when, date, mode, ctx in seen)
    assert all(when.tzinfo is UTC for when, *_ in seen)
    assert close_dates == [BASE]  # the fast-forward runs in the opening tick's context
    assert bk.has_trade_context() is False


def test_stop_on_a_scheduled_result_drops_the_row_silently() -> None:
    script = Script({0: bk.Signal("long", 99.5, 97.0, 60, price_open=98.0)})
    cancels: list[Any] = []
    register(
        Market(),
        script,
        frame=(0, 20),
        callbacks={"on_cancel": lambda *args: cancels.append(args)},
    )
    signals: list[str] = []

    async def on_signal(result: Any) -> None:
        signals.append(result.action)
        if result.action == "scheduled":
            await bk.Backtest.stop(SYMBOL, "s1")

    bk.listen_signal_backtest(on_signal)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    log = record_run_events()

    assert run_sync() == []
    assert signals == ["scheduled"]
    assert cancels == []
    assert errors == []
    assert script.calls == [0]
    assert log == [
        ("progress", 0, 21, 0.0),
        ("perf", "backtest_timeframe"),
        ("progress", 1, 21, 1 / 21),
        ("progress", 1, 21, 1 / 21),
        ("perf", "backtest_total"),
    ]


def test_failed_forward_fetch_abandons_the_position() -> None:
    bk.set_config(CC_GET_CANDLES_RETRY_COUNT=1)
    market = Market().take_profit_at(3)

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> Any:
        if limit > 5:  # read-ahead pages and the forward view fail; VWAP windows work
            raise ConnectionError("too many candles")
        return market.get_candles(symbol, interval, since, limit)

    script = Script({0: LONG})
    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    writes: list[Any] = []
    bk.add_strategy(
        strategy_name="s1",
        interval="1m",
        get_signal=script,
        callbacks={"on_write": lambda symbol, row, bt: writes.append(row and row.id)},
    )
    bk.add_frame(
        frame_name="f", interval="1m", start_date=BASE, end_date=BASE + timedelta(minutes=3)
    )
    log: list[Any] = []
    bk.listen_signal_backtest(lambda r: log.append(r.action))
    bk.listen_error(lambda e: log.append(type(e).__name__))

    assert run_sync() == []
    assert log == ["opened", "ExchangeError", "idle", "idle", "idle"]
    assert writes == ["sig-0", None]
    assert script.calls == [0, 1, 2, 3]


def test_fast_path_progress_with_a_five_minute_strategy() -> None:
    script = Script()
    register(Market(), script, frame=(0, 20), interval="5m")
    progress: list[int] = []
    bk.listen_backtest_progress(lambda p: progress.append(p.processed_frames))

    run_sync()

    assert script.calls == [0, 5, 10, 15, 20]
    assert progress == [0, 5, 10, 15, 20, 21]


def test_every_frame_is_evaluated_with_an_idle_observer() -> None:
    script = Script()
    ticks: list[str] = []
    register(
        Market(),
        script,
        frame=(0, 20),
        interval="5m",
        callbacks={"on_tick": lambda symbol, result, bt: ticks.append(result.action)},
    )
    progress: list[int] = []
    bk.listen_backtest_progress(lambda p: progress.append(p.processed_frames))

    run_sync()

    assert script.calls == [0, 5, 10, 15, 20]
    assert ticks == ["idle"] * 21
    assert progress == [*range(21), 21]


def test_stop_validates_the_strategy_name() -> None:
    register(Market(), Script(), frame=(0, 5))

    with pytest.raises(bk.RegistryError, match=r"Backtest\.stop: strategy 'nope'"):
        asyncio.run(bk.Backtest.stop(SYMBOL, "nope"))


def test_throttle_counts_from_the_last_attempt_across_a_trade() -> None:
    script = Script(always=True)
    idle_at: list[int] = []

    def on_idle(symbol: str, price: float, bt: bool) -> None:
        idle_at.append(minute_of(bk.get_date()))

    register(
        Market().take_profit_at(3, 7),
        script,
        frame=(0, 12),
        interval="5m",
        callbacks={"on_idle": on_idle},
    )

    results = run_sync()

    # opened at 0, closed at 3: tick 4 is throttled, the next attempt is at 5
    assert [(r.signal.pending_at, r.close_reason, r.close_timestamp) for r in results] == [
        (ms(0), "take_profit", ms(3)),
        (ms(5), "take_profit", ms(7)),
        (ms(10), "time_expired", ms(70)),
    ]
    assert script.calls == [0, 5, 10]
    assert idle_at == [4, 8, 9]


def test_run_sync_inside_a_running_loop_uses_a_helper_thread() -> None:
    register(Market().take_profit_at(3), Script({0: LONG}), frame=(0, 5))

    async def main() -> list[Any]:
        return bk.Backtest.run_sync(SYMBOL, **RUN)

    results = asyncio.run(main())

    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(3))]


def test_an_abandoned_generator_emits_nothing_more() -> None:
    register(Market().take_profit_at(3, 8), Script({0: LONG, 5: long_signal(5)}), frame=(0, 12))
    log = record_run_events()
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    async def main() -> list[Any]:
        out = []
        async for result in bk.Backtest.run(SYMBOL, **RUN):
            out.append(result)
            break
        return out

    results = asyncio.run(main())

    assert [r.close_timestamp for r in results] == [ms(3)]
    # the result was emitted and timed before the yield; nothing after the consumer left
    assert log == [("progress", 0, 13, 0.0), ("perf", "backtest_signal")]
    assert errors == []
