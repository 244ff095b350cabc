"""Scenario tests for `backtest_kit.engine.live` (40): the live loop on a simulated clock, its
results and events, errors, stop and cancel, done events, restore of every stored phase,
reconciliation of the four stores, corrupt data and injected store failures. Every run goes
over a hand-made 1m series, flat at 100 unless a bar is set; the file backend writes under
the test's own working directory. (The SIGKILL test is in test_live_crash.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.model.state import SignalState
from support import SYMBOL, M, Market, minute_of, ms

RUN = {"strategy_name": "s1", "exchange_name": "ex"}
ENTITY = f"{SYMBOL}_s1"
SIGNAL_FILE = Path("dump/data/signal") / ENTITY / f"{SYMBOL}.json"
SCHEDULE_FILE = Path("dump/data/schedule") / ENTITY / f"{SYMBOL}.json"
PARTIAL_FILE = Path("dump/data/partial") / ENTITY / "levels.json"
TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def _fresh_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    monkeypatch.chdir(tmp_path)


# -- helpers ---------------------------------------------------------------------------------


def lift(market: Market, minute: int, price: float, volume: float = 1000.0) -> None:
    """A heavy bar at `price`: the VWAP of the next five ticks is pulled close to it
    (one such bar and four flat ones: (1000 * price + 400) / 1004)."""
    market.bar(minute, price, price, price, price, volume)


def long_signal(**overrides: Any) -> bk.Signal:
    fields: dict[str, Any] = {
        "position": "long",
        "price_take_profit": 101.0,
        "price_stop_loss": 99.0,
        "minute_estimated_time": 60,
    }
    fields.update(overrides)
    return bk.Signal(**fields)


def limit_signal(**overrides: Any) -> bk.Signal:
    """A scheduled long: entry at 99 (VWAP 100 is above), TP 101, SL 97."""
    return long_signal(price_open=99.0, price_stop_loss=97.0, **overrides)


class Script:
    """`get_signal` answering from {minute: signal}; ids `sig-<minute>`; records calls."""

    def __init__(self, answers: dict[int, bk.Signal] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[int] = []

    def __call__(self, symbol: str, when: datetime) -> Any:
        minute = minute_of(when)
        self.calls.append(minute)
        answer = self.answers.get(minute)
        if answer is None:
            return None
        return bk.Signal(**{**answer.to_dict(), "id": f"sig-{minute}"})


def register(
    market: Market,
    get_signal: Callable[..., Any],
    *,
    callbacks: Any = None,
    risk_name: str | None = None,
) -> None:
    bk.add_exchange(exchange_name="ex", get_candles=market.get_candles)
    bk.add_strategy(
        strategy_name="s1",
        interval="1m",
        get_signal=get_signal,
        callbacks=callbacks,
        risk_name=risk_name,
    )


def clock(first: int = 0, last: int | None = 20) -> bk.SimulatedClock:
    return bk.SimulatedClock(ms(first), end=None if last is None else ms(last))


def run_live(the_clock: Any) -> list[Any]:
    return bk.Live.run_sync(SYMBOL, clock=the_clock, **RUN)


def run(coro: Awaitable[Any]) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)

    return asyncio.run(guarded())


def record_live() -> list[tuple[str, str | None]]:
    """(action, signal id) of every result on `listen_signal_live`."""
    log: list[tuple[str, str | None]] = []
    bk.listen_signal_live(lambda r: log.append((r.action, r.signal.id if r.signal else None)))
    return log


class Calls:
    """Strategy callbacks that record (name, minute of the tick or None, signal id)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str | None]] = []

    def _cb(self, name: str) -> Callable[..., None]:
        def record(symbol: str, *args: Any) -> None:
            first = args[0] if args else None
            self.log.append((name, first.id if isinstance(first, bk.SignalRow) else None))

        return record

    def callbacks(self) -> bk.StrategyCallbacks:
        names = ("on_open", "on_close", "on_schedule", "on_cancel", "on_active", "on_write")
        return bk.StrategyCallbacks(**{n: self._cb(n) for n in names})

    def names(self, *keep: str) -> list[tuple[str, str | None]]:
        return [entry for entry in self.log if entry[0] in keep]


def make_row(
    signal_id: str = "x",
    *,
    price_open: float = 100.0,
    tp: float = 101.0,
    sl: float = 99.0,
    minutes: int = 60,
    scheduled_at: int = ms(-5),
    pending_at: int | None = None,
    is_scheduled: bool = False,
    exchange_name: str = "ex",
    strategy_name: str = "s1",
) -> bk.SignalRow:
    return bk.SignalRow(
        id=signal_id,
        position="long",
        price_open=price_open,
        price_take_profit=tp,
        price_stop_loss=sl,
        minute_estimated_time=minutes,
        note="",
        symbol=SYMBOL,
        exchange_name=exchange_name,
        strategy_name=strategy_name,
        scheduled_at=scheduled_at,
        pending_at=scheduled_at if pending_at is None else pending_at,
        is_scheduled=is_scheduled,
    )


def result_fields(row: bk.SignalRow, price: float) -> dict[str, Any]:
    return {
        "signal": row,
        "current_price": price,
        "strategy_name": "s1",
        "exchange_name": "ex",
        "symbol": SYMBOL,
        "backtest": False,
    }


def store_signal(state: SignalState) -> None:
    run(bk.PersistSignalAdapter.write_signal_state(state, SYMBOL, "s1"))


def store_schedule(state: SignalState) -> None:
    run(bk.PersistScheduleAdapter.write_schedule_state(state, SYMBOL, "s1"))


def stored(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def stored_phase(path: Path) -> tuple[str | None, str | None]:
    value = stored(path)
    return value["phase"], (value["signal"] or {}).get("id")


def dump_files() -> list[str]:
    root = Path("dump")
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


class GateClock:
    """A clock whose pause blocks until `release()`; retry delays (< 1 min) return at once.
    `paused` is set while the loop sleeps."""

    exhausted = False

    def __init__(self, first: int = 0) -> None:
        self.t = ms(first)
        self.paused = asyncio.Event()
        self._release = asyncio.Event()
        self.sleeps: list[int] = []

    def now_ms(self) -> int:
        return self.t

    async def sleep(self, ms_: int) -> None:
        self.sleeps.append(ms_)
        if ms_ < M:
            await asyncio.sleep(0)
            return
        self.paused.set()
        try:
            await self._release.wait()
        finally:
            self.paused.clear()
        self._release.clear()
        self.t += (ms_ // M) * M

    def release(self) -> None:
        self._release.set()


class RecordingClock(bk.SimulatedClock):
    """A simulated clock that records every `sleep` argument."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sleeps: list[int] = []

    async def sleep(self, ms_: int) -> None:
        self.sleeps.append(ms_)
        await super().sleep(ms_)


# -- the loop (40 §2) ------------------------------------------------------------------------


def test_ticks_one_step_apart_yield_transitions_and_emit_all_six_actions() -> None:
    market = Market()
    lift(market, 2, 97.0)  # ticks 3..7: VWAP ~97 -> the limit entry at 99 fills at tick 3
    lift(market, 10, 105.0)  # ticks 11..15: VWAP ~105 -> take profit at tick 11
    lift(market, 18, 90.0)  # ticks 19..: VWAP ~90 -> the second limit order is cancelled (SL)
    script = Script({0: limit_signal(), 16: limit_signal()})
    register(market, script)
    live = record_live()
    general: list[str] = []
    bk.listen_signal(lambda r: general.append(r.action))
    perf: list[int] = []
    bk.listen_performance(lambda p: p.metric_type == "live_tick" and perf.append(p.timestamp))

    results = run_live(clock(0, 22))

    assert [(r.action, r.signal.id) for r in results] == [
        ("opened", "sig-0"),
        ("closed", "sig-0"),
        ("cancelled", "sig-16"),
    ]
    closed, cancelled = results[1], results[2]
    assert closed.close_reason == "take_profit" and closed.close_timestamp == ms(11)
    assert cancelled.close_timestamp == ms(19)
    assert {action for action, _ in live} == {
        "idle",
        "scheduled",
        "active",
        "opened",
        "closed",
        "cancelled",
    }
    assert live[0] == ("scheduled", "sig-0")
    assert live[3] == ("opened", "sig-0") and live[11] == ("closed", "sig-0")
    assert live[16] == ("scheduled", "sig-16") and live[19] == ("cancelled", "sig-16")
    assert [a for a, _ in live] == general  # every live result also on listen_signal
    assert perf == [ms(k) for k in range(23)]  # one per tick, 60 000 ms apart
    assert script.calls == [0, 12, 13, 14, 15, 16, 20, 21, 22]


def test_order_in_a_tick_is_emit_then_performance_then_yield_then_ack() -> None:
    register(Market(), Script({0: long_signal()}))
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(("emit", r.action)))
    bk.listen_performance(lambda p: log.append(("perf", p.timestamp)))

    async def main() -> None:
        async for result in bk.Live.run(SYMBOL, clock=clock(0, 1), **RUN):
            # delivered before the ack: the store still holds the intent
            log.append(("yield", result.action, stored_phase(SIGNAL_FILE)))

    run(main())

    assert log[:3] == [
        ("emit", "opened"),
        ("perf", ms(0)),
        ("yield", "opened", ("opening", "sig-0")),
    ]
    assert stored_phase(SIGNAL_FILE) == ("open", "sig-0")


def test_pause_is_60001_ms_after_every_tick_failed_ones_too() -> None:
    market = Market()
    failing = {ms(2 - 5)}  # the VWAP window of tick 2 starts at minute -3

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        if int(since.timestamp() * 1000) in failing:
            raise ConnectionError("exchange down")
        return market.get_candles(symbol, interval, since, limit)

    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=7)
    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=lambda s, w: None)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    the_clock = RecordingClock(ms(0), end=ms(4))

    run_live(the_clock)

    pauses = [s for s in the_clock.sleeps if s != 7]
    assert pauses == [60_001] * 5  # ticks 0..4, the failed tick 2 included
    assert 7 in the_clock.sleeps  # retry delays go through the run's clock and move no time
    assert len(errors) == 1


def test_wall_clock_is_the_default_and_real_time() -> None:
    wall = bk.WallClock()
    before = time.time_ns() // 1_000_000
    assert before <= wall.now_ms() <= time.time_ns() // 1_000_000
    started = time.perf_counter()
    asyncio.run(wall.sleep(30))
    assert time.perf_counter() - started >= 0.025
    assert wall.exhausted is False

    seen: list[int] = []

    def get_signal(symbol: str, when: datetime) -> None:
        seen.append(int(when.timestamp() * 1000))

    now_minute = (time.time_ns() // 1_000_000 - ms(0)) // M
    register(Market(first=now_minute - 30, last=now_minute + 30), get_signal)

    async def main() -> list[bk.DoneContract]:
        done: list[bk.DoneContract] = []
        bk.listen_done_live(done.append)
        holder: list[bk.LiveCancel] = []
        bk.listen_signal_live(lambda r: holder[0]())
        holder.append(bk.Live.background(SYMBOL, **RUN))  # no clock: WallClock
        await holder[0].task
        return done

    started_ms = time.time_ns() // 1_000_000
    started = time.perf_counter()
    done = run(main())
    assert time.perf_counter() - started < 5  # stopped in the first tick: no 60 s pause
    assert len(seen) == 1
    assert started_ms <= seen[0] <= time.time_ns() // 1_000_000
    assert [d.stopped for d in done] == [True]


def test_a_consumer_holding_a_result_suspends_ticking() -> None:
    register(Market(), Script({0: long_signal()}))
    live = record_live()
    the_clock = clock(0, 5)

    async def main() -> tuple[int, int, int]:
        async for result in bk.Live.run(SYMBOL, clock=the_clock, **RUN):
            if result.action == "opened":
                before = len(live)
                await asyncio.sleep(0.05)
                for _ in range(50):
                    await asyncio.sleep(0)
                return before, len(live), the_clock.now_ms()
        raise AssertionError("no opened result")

    before, after, now = run(main())

    assert before == after == 1
    assert now == ms(0)


def test_raising_exchange_one_error_per_tick_then_a_new_when() -> None:
    market = Market()
    since_seen: list[int] = []
    down = {ms(t - 5) for t in (2, 3, 4)}  # the VWAP windows of ticks 2, 3, 4

    def get_candles(symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        at = int(since.timestamp() * 1000)
        since_seen.append(at)
        if at in down:
            raise ConnectionError("exchange down")
        return market.get_candles(symbol, interval, since, limit)

    bk.add_exchange(exchange_name="ex", get_candles=get_candles)
    script = Script()
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=script)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    live = record_live()

    run_live(clock(0, 6))

    assert len(errors) == 3  # one per failed tick, after the retries
    assert [a for a, _ in live] == ["idle"] * 4  # ticks 0, 1, 5, 6
    assert script.calls == [0, 1, 5, 6]
    retries = bk.get_config().CC_GET_CANDLES_RETRY_COUNT
    for start in down:  # each failed tick tried its own window, then the next tick a new one
        assert 1 <= since_seen.count(start) <= retries
    assert sorted(set(since_seen)) == [ms(t - 5) for t in range(7)]


def test_raising_get_signal_is_an_idle_tick_and_one_error() -> None:
    def get_signal(symbol: str, when: datetime) -> Any:
        if minute_of(when) == 1:
            raise RuntimeError("model crashed")
        return None

    register(Market(), get_signal)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    live = record_live()

    results = run_live(clock(0, 3))

    assert results == []
    assert [a for a, _ in live] == ["idle"] * 4
    assert [str(e) for e in errors] == ["model crashed"]


def test_run_validates_at_call_time() -> None:
    register(Market(), Script())
    with pytest.raises(bk.RegistryError):
        bk.Live.run(SYMBOL, strategy_name="nope", exchange_name="ex")
    with pytest.raises(bk.RegistryError):
        bk.Live.run(SYMBOL, strategy_name="s1", exchange_name="nope")
    bk.add_strategy(strategy_name="s2", interval="1m", get_signal=Script(), risk_name="nope")
    with pytest.raises(bk.RegistryError):
        bk.Live.run(SYMBOL, strategy_name="s2", exchange_name="ex")
    assert dump_files() == []  # nothing ran: no store was created


def test_background_twice_is_refused_while_running_and_allowed_after() -> None:
    register(Market(), Script())

    async def main() -> list[dict[str, str]]:
        gate = GateClock()
        cancel = bk.Live.background(SYMBOL, clock=gate, **RUN)
        await gate.paused.wait()
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Live.background(SYMBOL, clock=clock(), **RUN)
        with pytest.raises(bk.BacktestKitError, match="already running"):
            bk.Live.run(SYMBOL, clock=clock(), **RUN)
        listed = await bk.Live.list()
        assert [(x["symbol"], x["strategy_name"], x["status"]) for x in listed] == [
            (SYMBOL, "s1", "pending")
        ]
        cancel()
        await cancel.task
        # a finished task may be started again
        again = bk.Live.background(SYMBOL, clock=clock(0, 1), **RUN)
        await again.task
        return await bk.Live.list()

    listed = run(main())
    assert [x["status"] for x in listed] == ["fulfilled"]


# -- stop, cancel and done (40 §2.3, §2.4) ----------------------------------------------------


def test_stop_while_idle_ends_without_another_tick() -> None:
    script = Script()
    register(Market(), script)
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(r.action))
    bk.listen_done_live(lambda d: log.append(("done", d.stopped, d.backtest)))

    async def main() -> None:
        gate = GateClock()
        cancel = bk.Live.background(SYMBOL, clock=gate, **RUN)
        await gate.paused.wait()
        await bk.Live.stop(SYMBOL, "s1")
        await bk.Live.stop(SYMBOL, "s1")  # idempotent
        await cancel.task

    run(main())

    assert log == ["idle", ("done", True, False)]
    assert script.calls == [0]


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_stop_with_an_open_position_monitors_it_until_it_closes(how: str) -> None:
    market = Market()
    lift(market, 10, 105.0)
    script = Script({0: long_signal()})
    register(market, script)
    log: list[Any] = []
    holder: list[bk.LiveCancel] = []

    async def on_live(r: bk.TickResult) -> None:
        log.append(r.action)
        if r.action == "active" and len(log) == 3:  # tick 2
            if how == "stop":
                await bk.Live.stop(SYMBOL, "s1")
            else:
                holder[0]()

    bk.listen_signal_live(on_live)
    bk.listen_done_live(lambda d: log.append(("done", d.stopped)))
    perf: list[int] = []
    bk.listen_performance(lambda p: perf.append(p.timestamp))

    async def main() -> None:
        holder.append(bk.Live.background(SYMBOL, clock=clock(0, None), **RUN))
        await holder[0].task

    run(main())

    assert log == ["opened"] + ["active"] * 10 + ["closed", ("done", True)]
    assert perf == [ms(k) for k in range(12)]  # the normal cadence while stopping
    assert script.calls == [0]  # never asked again after the stop
    assert stored_phase(SIGNAL_FILE) == (None, None)  # closed and acknowledged


def test_cancel_does_not_emit_done_early() -> None:
    market = Market()
    lift(market, 10, 105.0)
    register(market, Script({0: long_signal()}))
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(r.action))
    bk.listen_done_live(lambda d: log.append("done"))

    async def main() -> list[Any]:
        gate = GateClock()
        cancel = bk.Live.background(SYMBOL, clock=gate, **RUN)
        await gate.paused.wait()
        cancel()
        cancel()
        seen = []
        for _ in range(11):  # ticks 1..11 on request
            await asyncio.sleep(0.01)
            seen.append(list(log))
            gate.release()
            await asyncio.sleep(0)
            while not gate.paused.is_set() and not cancel.task.done():
                await asyncio.sleep(0.001)
        await cancel.task
        return seen

    seen = run(main())

    assert all("done" not in snapshot for snapshot in seen)
    assert log == ["opened"] + ["active"] * 10 + ["closed", "done"]


def test_stop_cancels_a_waiting_scheduled_signal_at_once() -> None:
    register(Market(), Script({0: limit_signal()}), callbacks=(calls := Calls()).callbacks())
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(r.action))
    bk.listen_done_live(lambda d: log.append(("done", d.stopped)))

    async def main() -> tuple[list[Any], GateClock]:
        gate = GateClock()
        results: list[Any] = []

        async def consume() -> None:
            async for result in bk.Live.run(SYMBOL, clock=gate, **RUN):
                results.append(result)

        task = asyncio.create_task(consume())
        await gate.paused.wait()
        await bk.Live.stop(SYMBOL, "s1")
        await task
        return results, gate

    results, gate = run(main())

    assert [(r.action, r.signal.id, r.close_timestamp) for r in results] == [
        ("cancelled", "sig-0", ms(0))  # a tick at once, at the stop's instant
    ]
    assert log == ["scheduled", "cancelled"]  # Live.run emits no done
    assert calls.names("on_schedule", "on_cancel") == [
        ("on_schedule", "sig-0"),
        ("on_cancel", "sig-0"),
    ]
    assert stored_phase(SCHEDULE_FILE) == (None, None)
    assert gate.now_ms() == ms(0)


def test_stop_of_a_scheduled_signal_in_background_ends_with_done() -> None:
    register(Market(), Script({0: limit_signal()}))
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(r.action))
    bk.listen_done_live(lambda d: log.append(("done", d.stopped)))

    async def main() -> None:
        gate = GateClock()
        cancel = bk.Live.background(SYMBOL, clock=gate, **RUN)
        await gate.paused.wait()
        cancel()
        await cancel.task

    run(main())
    assert log == ["scheduled", "cancelled", ("done", True)]


def test_exhausted_simulated_clock_ends_with_done_not_stopped() -> None:
    register(Market(), Script({0: long_signal()}))
    log: list[Any] = []
    bk.listen_signal_live(lambda r: log.append(r.action))
    bk.listen_done_live(lambda d: log.append(("done", d.stopped)))

    async def main() -> None:
        cancel = bk.Live.background(SYMBOL, clock=clock(0, 5), **RUN)
        await cancel.task

    run(main())

    assert log == ["opened"] + ["active"] * 5 + [("done", False)]
    assert stored_phase(SIGNAL_FILE) == ("open", "sig-0")  # left as it is


def test_simulated_clock_steps() -> None:
    c = bk.SimulatedClock(ms(0), end=ms(2))
    asyncio.run(c.sleep(59_999))
    assert c.now_ms() == ms(0)
    asyncio.run(c.sleep(60_001))
    assert c.now_ms() == ms(1)
    asyncio.run(c.sleep(180_000))
    assert c.now_ms() == ms(4) and c.exhausted
    with pytest.raises(bk.ValidationError):
        bk.SimulatedClock(ms(2), end=ms(1))


# -- restore (40 §5) --------------------------------------------------------------------------


def test_restored_open_position_calls_on_active_then_is_monitored() -> None:
    market = Market()
    lift(market, 2, 105.0)
    calls = Calls()
    script = Script()
    register(market, script, callbacks=calls.callbacks())
    row = make_row("x", pending_at=ms(-3))
    store_signal(SignalState("open", row, None, ms(-1)))
    live = record_live()

    results = run_live(clock(0, 4))

    assert calls.log[0] == ("on_active", "x")
    assert live == [("active", "x")] * 3 + [("closed", "x"), ("idle", None)]
    assert [(r.action, r.close_reason, r.close_timestamp) for r in results] == [
        ("closed", "take_profit", ms(3))
    ]
    assert results[0].signal == row
    assert script.calls == [4]
    assert calls.names("on_active") == [("on_active", "x")]


def test_restored_position_may_close_on_the_first_tick() -> None:
    market = Market()
    lift(market, -1, 105.0)
    calls = Calls()
    register(market, Script(), callbacks=calls.callbacks())
    store_signal(SignalState("open", make_row("x"), None, ms(-1)))

    results = run_live(clock(0, 0))

    assert [(r.action, r.close_timestamp) for r in results] == [("closed", ms(0))]
    assert calls.names("on_active", "on_close") == [("on_active", "x"), ("on_close", "x")]


def test_first_tick_at_or_before_the_stored_tick_is_skipped() -> None:
    calls = Calls()
    script = Script()
    register(Market(), script, callbacks=calls.callbacks())
    store_signal(SignalState("open", make_row("x", minutes=3, pending_at=ms(0)), None, ms(1)))
    live = record_live()
    perf: list[int] = []
    bk.listen_performance(lambda p: perf.append(p.timestamp))

    run_live(clock(0, 4))

    assert calls.log[0] == ("on_active", "x")  # the restore callback still runs first
    assert perf == [ms(2), ms(3), ms(4)]  # ticks 0 and 1 were evaluated before the restart
    assert live == [("active", "x"), ("closed", "x"), ("idle", None)]
    assert script.calls == [4]


def test_restored_waiting_signal_calls_on_schedule_and_times_out_from_scheduled_at() -> None:
    calls = Calls()
    script = Script()
    register(Market(), script, callbacks=calls.callbacks())
    row = make_row("w", price_open=99.0, sl=97.0, scheduled_at=ms(-110), is_scheduled=True)
    store_schedule(SignalState("waiting", row, None, ms(-1)))
    live = record_live()

    results = run_live(clock(0, 11))

    assert calls.log[0] == ("on_schedule", "w")
    assert live[:10] == [("active", "w")] * 10
    assert [(r.action, r.close_timestamp) for r in results] == [("cancelled", ms(10))]
    assert calls.names("on_schedule", "on_cancel") == [("on_schedule", "w"), ("on_cancel", "w")]
    assert script.calls == [11]
    assert stored_phase(SCHEDULE_FILE) == (None, None)


def test_record_of_another_exchange_is_ignored_with_a_warning() -> None:
    warnings: list[str] = []

    class Log:
        def log(self, *a: Any) -> None: ...
        def debug(self, *a: Any) -> None: ...
        def info(self, *a: Any) -> None: ...
        def warn(self, topic: str, *a: Any) -> None:
            warnings.append(f"{topic} {a}")

    bk.set_logger(Log())
    calls = Calls()
    script = Script({0: long_signal()})
    register(Market(), script, callbacks=calls.callbacks())
    store_signal(SignalState("open", make_row("foreign", exchange_name="other"), None, ms(-1)))

    results = run_live(clock(0, 1))

    assert script.calls == [0]  # the strategy starts idle
    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-0")]
    assert calls.names("on_active") == []
    assert any("ignoring a record" in w and "other" in w for w in warnings)
    assert stored_phase(SIGNAL_FILE) == ("open", "sig-0")  # the next write overwrote it


def test_empty_store_starts_idle() -> None:
    script = Script({1: long_signal()})
    register(Market(), script)

    results = run_live(clock(0, 2))

    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-1")]
    assert script.calls == [0, 1]


# -- replay of a transition interrupted by a crash (40 §4.3, §5 (b)) ----------------------------


def _transitional(phase: str) -> tuple[SignalState, Any]:
    if phase == "opening":
        row = make_row("x", pending_at=ms(0), scheduled_at=ms(0))
        result: Any = bk.OpenedResult(**result_fields(row, 100.0))
    elif phase == "closing":
        row = make_row("x", pending_at=ms(-30), scheduled_at=ms(-30))
        pnl = bk.PnL(pnl_percentage=0.6, price_open=100.0, price_close=101.0)
        result = bk.ClosedResult(
            **result_fields(row, 101.0),
            close_reason="take_profit",
            close_timestamp=ms(0),
            pnl=pnl,
        )
    elif phase == "scheduling":
        row = make_row("x", price_open=99.0, sl=97.0, scheduled_at=ms(0), is_scheduled=True)
        result = bk.ScheduledResult(**result_fields(row, 100.0))
    else:
        row = make_row("x", price_open=99.0, sl=97.0, scheduled_at=ms(-120), is_scheduled=True)
        result = bk.CancelledResult(**result_fields(row, 100.0), close_timestamp=ms(0))
    return SignalState(phase, row, result, ms(0)), result


@pytest.mark.parametrize(
    ("phase", "callback", "after", "asked"),
    [
        ("opening", "on_open", ("open", "x"), []),
        ("closing", "on_close", (None, None), [1, 2]),
        ("scheduling", "on_schedule", ("waiting", "x"), []),
        ("cancelling", "on_cancel", (None, None), [1, 2]),
    ],
)
def test_transitional_phase_is_replayed_once_with_the_stored_payload(
    phase: str, callback: str, after: tuple[str | None, str | None], asked: list[int]
) -> None:
    calls = Calls()
    script = Script()
    register(Market(), script, callbacks=calls.callbacks())
    state, result = _transitional(phase)
    (store_signal if phase in ("opening", "closing") else store_schedule)(state)
    emitted: list[Any] = []
    bk.listen_signal_live(emitted.append)

    results = run_live(clock(0, 2))

    assert emitted[0] == result  # the replay is the first tick, field by field
    assert [r.action for r in emitted].count(result.action) == 1
    if phase == "scheduling":
        assert results == []  # scheduled is emitted, not yielded
    else:
        assert results == [result]
    assert calls.names(callback) == [(callback, "x")]
    assert calls.names("on_active") == []
    assert script.calls == asked  # the replay consumed the first tick
    path = SIGNAL_FILE if phase in ("opening", "closing") else SCHEDULE_FILE
    assert stored_phase(path) == after


def test_same_id_in_both_stores_clears_the_schedule_and_replays_the_open() -> None:
    calls = Calls()
    register(Market(), Script(), callbacks=calls.callbacks())
    waiting = make_row("x", price_open=99.0, sl=97.0, scheduled_at=ms(-10), is_scheduled=True)
    activated = make_row(
        "x", price_open=99.0, sl=97.0, scheduled_at=ms(-10), pending_at=ms(0), is_scheduled=False
    )
    opened = bk.OpenedResult(**result_fields(activated, 99.0))
    store_schedule(SignalState("waiting", waiting, None, ms(-1)))
    store_signal(SignalState("opening", activated, opened, ms(0)))

    results = run_live(clock(0, 1))

    assert results == [opened]
    assert stored_phase(SCHEDULE_FILE) == (None, None)
    assert stored_phase(SIGNAL_FILE) == ("open", "x")
    assert calls.names("on_schedule", "on_cancel", "on_open") == [("on_open", "x")]


def test_different_ids_in_both_stores_raise_persist_error() -> None:
    register(Market(), Script())
    store_schedule(
        SignalState("waiting", make_row("a", price_open=99.0, is_scheduled=True), None, 0)
    )
    store_signal(SignalState("open", make_row("b"), None, 0))
    before = (SIGNAL_FILE.read_bytes(), SCHEDULE_FILE.read_bytes())

    with pytest.raises(bk.PersistError):
        run_live(clock(0, 1))

    exits: list[BaseException] = []
    done: list[Any] = []
    bk.listen_exit(exits.append)
    bk.listen_done_live(done.append)

    async def main() -> None:
        cancel = bk.Live.background(SYMBOL, clock=clock(0, 1), **RUN)
        await cancel.task

    run(main())
    assert [type(e) for e in exits] == [bk.PersistError] and done == []
    assert (SIGNAL_FILE.read_bytes(), SCHEDULE_FILE.read_bytes()) == before


def _risk_world(calls: Calls | None = None) -> None:
    bk.add_risk(risk_name="r1")
    register(Market(), Script(), risk_name="r1", callbacks=calls.callbacks() if calls else None)


def _risk_keys() -> list[tuple[str, int]]:
    positions = run(bk.PersistRiskAdapter.read_position_data("r1"))
    return [(key, p.open_timestamp) for key, p in positions]


def test_restore_adds_the_missing_risk_entry_and_prunes_partial_levels() -> None:
    _risk_world()
    row = make_row("x", pending_at=ms(-7), scheduled_at=ms(-7))
    store_signal(SignalState("open", row, None, ms(-1)))
    run(bk.PersistRiskAdapter.write_position_data([], "r1"))
    run(
        bk.PersistPartialAdapter.write_partial_data(
            {"x": ({10}, set()), "old": ({10, 20}, {10})}, SYMBOL, "s1"
        )
    )

    run_live(clock(0, 0))

    assert _risk_keys() == [("s1:BTCUSDT", ms(-7))]
    assert stored(PARTIAL_FILE) == {"x": {"profit_levels": [10], "loss_levels": []}}


def test_restore_removes_a_stale_risk_entry_and_keeps_others() -> None:
    _risk_world()
    bk.add_strategy(strategy_name="s2", interval="1m", get_signal=Script(), risk_name="r1")
    stale = bk.RiskActivePosition(
        signal=make_row("x"), strategy_name="s1", exchange_name="ex", open_timestamp=ms(-5)
    )
    other_row = make_row("y", strategy_name="s2")
    other = bk.RiskActivePosition(
        signal=other_row, strategy_name="s2", exchange_name="ex", open_timestamp=ms(-4)
    )
    run(
        bk.PersistRiskAdapter.write_position_data(
            [("s1:BTCUSDT", stale), ("s2:BTCUSDT", other)], "r1"
        )
    )
    run(bk.PersistPartialAdapter.write_partial_data({"x": ({10}, set())}, SYMBOL, "s1"))

    run_live(clock(0, 0))

    assert _risk_keys() == [("s2:BTCUSDT", ms(-4))]
    assert stored(PARTIAL_FILE) == {}


def test_restored_opening_adds_the_risk_entry_and_closing_removes_it() -> None:
    _risk_world()
    state, _ = _transitional("opening")
    store_signal(state)
    run_live(clock(0, 0))
    assert _risk_keys() == [("s1:BTCUSDT", ms(0))]

    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    _risk_world()
    state, _ = _transitional("closing")
    store_signal(state)
    run_live(clock(0, 0))
    assert _risk_keys() == []


# -- risk at activation (40 §4.3 activation row) ----------------------------------------------


def test_activation_refused_by_risk_clears_the_stored_schedule() -> None:
    def no_fills(payload: bk.RiskValidationPayload) -> None:
        row = payload.pending_signal
        if row.is_scheduled and payload.current_price == row.price_open:  # risk C only
            raise ValueError("no fills today")

    market = Market()
    lift(market, 2, 97.0)  # the entry at 99 is reached at tick 3
    bk.add_risk(risk_name="r1", validations=[no_fills])
    register(market, Script({0: limit_signal()}), risk_name="r1")
    live = record_live()

    run_live(clock(0, 4))

    assert live[:4] == [
        ("scheduled", "sig-0"),
        ("active", "sig-0"),
        ("active", "sig-0"),
        ("idle", None),  # tick 3: the activation was refused
    ]
    # 40 §4.3: "risk C (reject: W schedule null, the tick's idle result)"; a restart must not
    # bring the refused signal back
    assert stored_phase(SCHEDULE_FILE) == (None, None)


def test_restart_after_a_refused_activation_and_a_new_position_resumes_it() -> None:
    def no_fills(payload: bk.RiskValidationPayload) -> None:
        row = payload.pending_signal
        if row.is_scheduled and payload.current_price == row.price_open:
            raise ValueError("no fills today")

    market = Market()
    lift(market, 2, 97.0)
    bk.add_risk(risk_name="r1", validations=[no_fills])
    register(market, Script({0: limit_signal(), 8: long_signal()}), risk_name="r1")
    first = run_live(clock(0, 9))
    assert [(r.action, r.signal.id) for r in first] == [("opened", "sig-8")]

    # a restart (after a crash or a clean exit) must resume the open position sig-8
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    bk.add_risk(risk_name="r1", validations=[no_fills])
    calls = Calls()
    register(market, Script(), risk_name="r1", callbacks=calls.callbacks())
    run_live(clock(10, 10))
    assert calls.names("on_active", "on_schedule") == [("on_active", "sig-8")]


# -- backtests never persist (40 §6) ----------------------------------------------------------


def test_backtest_never_touches_dump_data_even_with_raising_backends() -> None:
    market = Market()
    lift(market, 10, 105.0)

    class Raising:
        def __init__(self, entity_name: str, base_dir: str) -> None:
            raise AssertionError("a backtest must not create a store")

    bk.PersistSignalAdapter.use_persist_signal_adapter(Raising)
    bk.PersistScheduleAdapter.use_persist_schedule_adapter(Raising)
    bk.PersistRiskAdapter.use_persist_risk_adapter(Raising)
    bk.PersistPartialAdapter.use_persist_partial_adapter(Raising)
    bk.add_risk(risk_name="r1")
    writes: list[Any] = []
    register(
        market,
        Script({0: long_signal(), 12: limit_signal()}),
        risk_name="r1",
        callbacks=bk.StrategyCallbacks(on_write=lambda s, row, bt: writes.append(row)),
    )
    bk.listen_partial_profit(lambda p: None)
    bk.add_frame(frame_name="f", interval="1m", start_date=ms(0), end_date=ms(200))

    results = bk.Backtest.run_sync(SYMBOL, frame_name="f", **RUN)

    assert [r.action for r in results] == ["closed", "cancelled"]
    assert writes[0].id == "sig-0" and writes[1] is None
    assert not Path("dump").exists()


# -- corrupt data (40 §3.3) -------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b'{"format":1,"phase":"op', b'{"format":1,"phase":7}'])
def test_corrupt_record_stops_the_run_and_is_left_untouched(content: bytes) -> None:
    register(Market(), Script({0: long_signal()}))
    SIGNAL_FILE.parent.mkdir(parents=True)
    SIGNAL_FILE.write_bytes(content)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    with pytest.raises(bk.PersistError) as raised:
        run_live(clock(0, 1))

    location = str(SIGNAL_FILE.resolve())
    assert raised.value.location == location and location in str(raised.value)
    assert [e.location for e in errors if isinstance(e, bk.PersistError)] == [location]

    exits: list[BaseException] = []
    done: list[Any] = []
    bk.listen_exit(exits.append)
    bk.listen_done_live(done.append)

    async def main() -> None:
        cancel = bk.Live.background(SYMBOL, clock=clock(0, 1), **RUN)
        await cancel.task

    run(main())
    run(main())  # a died background task may be started again (40 §1)

    assert [type(e) for e in exits] == [bk.PersistError] * 2 and done == []
    assert [x["status"] for x in run(bk.Live.list())] == ["rejected"]
    assert SIGNAL_FILE.read_bytes() == content
    assert sorted(os.listdir(SIGNAL_FILE.parent)) == [".lock", SIGNAL_FILE.name]


def test_corrupt_record_is_quarantined_when_configured() -> None:
    bk.set_config(CC_PERSIST_QUARANTINE_CORRUPT=True)
    register(Market(), Script({0: long_signal()}))
    SIGNAL_FILE.parent.mkdir(parents=True)
    SIGNAL_FILE.write_bytes(b"{")
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    results = run_live(clock(0, 0))

    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-0")]
    moved = [n for n in os.listdir(SIGNAL_FILE.parent) if ".corrupt-" in n]
    assert len(moved) == 1
    assert (SIGNAL_FILE.parent / moved[0]).read_bytes() == b"{"
    assert len(errors) == 2 and all(isinstance(e, bk.PersistError) for e in errors)


# -- injected store failures (40 §2.2, §4.3) ---------------------------------------------------


class FlakyStore(bk.PersistBase):
    """The file backend, with writes failing while `fail(value)` says so."""

    fail: Callable[[Any], bool] = staticmethod(lambda value: False)

    async def write_value(self, entity_id: str, value: Any) -> None:
        if type(self).fail(value):
            raise OSError("disk full")
        await super().write_value(entity_id, value)


def test_failed_intent_write_fails_the_tick_and_changes_nothing() -> None:
    calls = Calls()
    script = Script({0: long_signal(), 1: long_signal()})
    register(Market(), script, callbacks=calls.callbacks())
    FlakyStore.fail = staticmethod(lambda v: v["phase"] == "opening" and v["tick_at"] == ms(0))
    bk.PersistSignalAdapter.use_persist_signal_adapter(FlakyStore)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    live = record_live()

    results = run_live(clock(0, 2))

    assert len(errors) == 1 and isinstance(errors[0], bk.PersistError)
    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-1")]
    assert live == [("opened", "sig-1"), ("active", "sig-1")]  # tick 0 failed: no event
    assert calls.names("on_open", "on_write") == [("on_write", "sig-1"), ("on_open", "sig-1")]
    assert script.calls == [0, 1]


def test_failed_ack_is_retried_and_ticks_fail_meanwhile() -> None:
    register(Market(), Script({0: long_signal()}))
    failures = {"left": 2}

    def fail(value: Any) -> bool:
        if value["phase"] == "open" and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    FlakyStore.fail = staticmethod(fail)
    bk.PersistSignalAdapter.use_persist_signal_adapter(FlakyStore)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)
    live = record_live()

    results = run_live(clock(0, 3))

    assert [r.action for r in results] == ["opened"]
    assert len(errors) == 2  # the ack after tick 0, then the retry that failed tick 1
    assert live == [("opened", "sig-0"), ("active", "sig-0"), ("active", "sig-0")]  # 0, 2, 3
    assert stored_phase(SIGNAL_FILE) == ("open", "sig-0")


def test_failed_risk_write_is_reported_and_the_run_goes_on() -> None:
    bk.add_risk(risk_name="r1")
    register(Market(), Script({0: long_signal()}), risk_name="r1")
    FlakyStore.fail = staticmethod(lambda value: True)
    bk.PersistRiskAdapter.use_persist_risk_adapter(FlakyStore)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    results = run_live(clock(0, 2))

    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-0")]
    assert len(errors) == 1 and isinstance(errors[0], bk.PersistError)
    assert stored_phase(SIGNAL_FILE) == ("open", "sig-0")


def test_failed_restore_is_retried_at_each_pause_before_the_first_tick() -> None:
    # 40 §2.2: "restore fails | [deviation] not cached, retried each pause before the first
    # tick" (a store that is down, not corrupt data)
    left = {"n": 2}

    class DownStore(bk.PersistBase):
        async def has_value(self, entity_id: str) -> bool:
            if left["n"] > 0:
                left["n"] -= 1
                raise OSError("store down")
            return await super().has_value(entity_id)

    script = Script({2: long_signal()})
    register(Market(), script)
    bk.PersistSignalAdapter.use_persist_signal_adapter(DownStore)
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    results = run_live(clock(0, 3))

    assert len(errors) == 2
    assert [(r.action, r.signal.id) for r in results] == [("opened", "sig-2")]
    assert script.calls == [2]
