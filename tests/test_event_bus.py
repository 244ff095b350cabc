"""Tests for events.py: the event bus and every `listen_*` function (85 §1-§2, 02 §3).

(Named test_event_bus.py: tests/model/test_events.py already owns the basename test_events.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit import events
from backtest_kit.events import EventBus
from support import BASE_MS, Market


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


def bus() -> EventBus:
    return bk.runtime.current().bus


def emit(topic: str, payload: Any) -> None:
    asyncio.run(bus().emit(topic, payload))


class RecordingLogger:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in ("log", "debug", "info", "warn"):
            return lambda topic, *args: self.records.append((name, topic, args))
        raise AttributeError(name)


# -- delivery (85 §1) -----------------------------------------------------------------------


def test_sync_and_async_listeners_receive_the_payload_in_subscription_order() -> None:
    got: list[tuple[str, Any]] = []
    payload = object()

    async def second(p: Any) -> None:
        await asyncio.sleep(0.01)
        got.append(("async", p))

    bk.listen_signal(lambda p: got.append(("first", p)))
    bk.listen_signal(second)
    bk.listen_signal(lambda p: got.append(("third", p)))
    emit(events.SIGNAL, payload)
    assert got == [("first", payload), ("async", payload), ("third", payload)]


def test_emission_waits_for_every_listener() -> None:
    done: list[str] = []

    async def slow(p: Any) -> None:
        await asyncio.sleep(0.05)
        done.append(p)

    bk.listen_error(slow)

    async def scenario() -> list[str]:
        await bus().emit(events.ERROR, "a")
        return list(done)

    assert asyncio.run(scenario()) == ["a"]


def test_a_listener_gets_events_one_at_a_time_in_emission_order() -> None:
    got: list[int] = []
    active = [0]
    peak = [0]

    async def listener(n: int) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.01 * (3 - n))  # the first event is the slowest
        got.append(n)
        active[0] -= 1

    bk.listen_signal_backtest(listener)

    async def scenario() -> None:
        for n in range(3):
            await bus().emit(events.SIGNAL_BACKTEST, n)

    asyncio.run(scenario())
    assert got == [0, 1, 2]
    assert peak[0] == 1


def test_concurrent_emitters_never_run_one_listener_concurrently() -> None:
    # two runs (e.g. two background backtests) emitting on the same topic at once: each
    # listener still receives one event at a time, in emission order (85 §1)
    got: list[str] = []
    active = [0]
    peak = [0]

    async def listener(p: str) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.01)
        got.append(p)
        active[0] -= 1

    bk.listen_signal(listener)

    async def scenario() -> None:
        await asyncio.gather(bus().emit(events.SIGNAL, "a"), bus().emit(events.SIGNAL, "b"))

    asyncio.run(scenario())
    assert sorted(got) == ["a", "b"]
    assert peak[0] == 1


def flat_market_with_idle_strategy() -> None:
    """Exchange "ex" (flat at 100), strategy "s" (never signals), frame "f" (00:00-00:05)."""
    bk.add_exchange("ex", Market().get_candles)
    bk.add_strategy("s", "1m", lambda symbol, when: None)
    bk.add_frame("f", "1m", BASE_MS, BASE_MS + 5 * 60_000)


def test_two_background_backtests_never_run_one_listener_concurrently() -> None:
    flat_market_with_idle_strategy()
    got: list[str] = []
    active = [0]
    peak = [0]

    async def listener(result: Any) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.001)
        got.append(result.symbol)
        active[0] -= 1

    bk.listen_signal_backtest(listener)

    async def scenario() -> None:
        tasks = [
            bk.Backtest.background(symbol, strategy_name="s", exchange_name="ex", frame_name="f")
            for symbol in ("BTCUSDT", "ETHUSDT")
        ]
        await asyncio.gather(*(cancel.task for cancel in tasks))

    asyncio.run(scenario())
    assert sorted(got) == ["BTCUSDT"] * 6 + ["ETHUSDT"] * 6
    assert peak[0] == 1


def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    a: list[int] = []
    b: list[int] = []
    unsubscribe_a = bk.listen_signal(a.append)
    bk.listen_signal(b.append)
    emit(events.SIGNAL, 1)
    unsubscribe_a()
    unsubscribe_a()  # a second call changes nothing
    emit(events.SIGNAL, 2)
    assert a == [1]
    assert b == [1, 2]
    assert bus().has_user_listeners(events.SIGNAL)


def test_unsubscribe_twice_keeps_the_user_listener_count() -> None:
    unsubscribe = bk.listen_error(lambda e: None)
    bk.listen_error(lambda e: None)
    unsubscribe()
    unsubscribe()
    assert bus().has_user_listeners(events.ERROR)
    assert bus().has_listeners(events.ERROR)


def test_subscribing_during_an_emission_does_not_deliver_that_event() -> None:
    late: list[int] = []

    def first(p: int) -> None:
        bk.listen_signal(late.append)

    bk.listen_signal(first)
    emit(events.SIGNAL, 1)
    assert late == []


def test_internal_subscribers_are_not_user_listeners() -> None:
    # a topic no report collector subscribes to (they subscribe when the runtime is made)
    unsubscribe = bus().subscribe(events.BACKTEST_PROGRESS, lambda p: None, internal=True)
    assert bus().has_listeners(events.BACKTEST_PROGRESS)
    assert not bus().has_user_listeners(events.BACKTEST_PROGRESS)
    unsubscribe()
    assert not bus().has_listeners(events.BACKTEST_PROGRESS)


def test_emitting_a_topic_without_listeners_is_a_no_op() -> None:
    emit(events.WALKER, "nobody listens")


def test_a_non_callable_listener_is_rejected() -> None:
    with pytest.raises(bk.ValidationError):
        bk.listen_signal(42)  # type: ignore[arg-type]
    with pytest.raises(bk.ValidationError):
        bk.listen_signal_once(None, print)  # type: ignore[arg-type]
    assert not bus().has_user_listeners(events.SIGNAL)


# -- once (85 §1.1) -------------------------------------------------------------------------


def test_once_fires_on_the_first_matching_event_only() -> None:
    got: list[int] = []
    filtered: list[int] = []

    def is_even(n: int) -> bool:
        filtered.append(n)
        return n % 2 == 0

    bk.listen_signal_once(is_even, got.append)

    async def scenario() -> None:
        for n in (1, 3, 4, 6, 8):
            await bus().emit(events.SIGNAL, n)

    asyncio.run(scenario())
    assert got == [4]
    assert filtered == [1, 3, 4]  # removed after the match: the filter is not asked again
    assert not bus().has_user_listeners(events.SIGNAL)


def test_once_is_removed_before_it_is_called() -> None:
    got: list[int] = []

    async def fn(n: int) -> None:
        got.append(n)
        assert not bus().has_user_listeners(events.RISK)
        await bus().emit(events.RISK, n + 1)  # matches the filter again: must not re-enter

    bk.listen_risk_once(lambda n: True, fn)
    emit(events.RISK, 1)
    assert got == [1]


def test_once_callback_is_awaited() -> None:
    done: list[str] = []

    async def fn(p: str) -> None:
        await asyncio.sleep(0.02)
        done.append(p)

    bk.listen_done_backtest_once(lambda p: True, fn)

    async def scenario() -> list[str]:
        await bus().emit(events.DONE_BACKTEST, "done")
        return list(done)

    assert asyncio.run(scenario()) == ["done"]


def test_unsubscribing_a_once_before_its_match_cancels_it() -> None:
    got: list[int] = []
    unsubscribe = bk.listen_signal_live_once(lambda n: True, got.append)
    unsubscribe()
    unsubscribe()
    emit(events.SIGNAL_LIVE, 1)
    assert got == []


# -- exceptions raised by listeners (85 §1.2) -----------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_raising_listener_goes_to_the_error_topic_and_others_still_run(
    asynchronous: bool,
) -> None:
    logger = RecordingLogger()
    bk.set_logger(logger)
    boom = RuntimeError("listener broke")
    errors: list[BaseException] = []
    after: list[str] = []

    def sync_raiser(p: str) -> None:
        raise boom

    async def async_raiser(p: str) -> None:
        await asyncio.sleep(0)
        raise boom

    bk.listen_error(errors.append)
    bk.listen_signal(async_raiser if asynchronous else sync_raiser)
    bk.listen_signal(after.append)
    emit(events.SIGNAL, "tick")
    assert after == ["tick"]
    assert errors == [boom]
    assert errors[0] is boom
    assert any(level == "warn" and "signal" in repr(args) for level, _, args in logger.records)


def test_a_raising_once_callback_goes_to_the_error_topic() -> None:
    errors: list[BaseException] = []
    bk.listen_error(errors.append)

    def fn(p: Any) -> None:
        raise ValueError("once broke")

    bk.listen_partial_profit_once(lambda p: True, fn)
    emit(events.PARTIAL_PROFIT, 1)
    assert [str(e) for e in errors] == ["once broke"]


def test_a_raising_error_listener_is_only_logged() -> None:
    logger = RecordingLogger()
    bk.set_logger(logger)
    calls: list[Any] = []
    others: list[Any] = []

    def raiser(exc: Any) -> None:
        calls.append(exc)
        raise RuntimeError("error listener broke")

    bk.listen_error(raiser)
    bk.listen_error(others.append)
    original = ValueError("original")
    emit(events.ERROR, original)
    assert calls == [original]  # not called again with its own exception
    assert others == [original]
    warnings = [args for level, _, args in logger.records if level == "warn"]
    assert any("error listener broke" in repr(args) for args in warnings)


def test_a_raising_listener_does_not_stop_a_backtest() -> None:
    flat_market_with_idle_strategy()
    errors: list[BaseException] = []
    progress: list[float] = []
    bk.listen_error(errors.append)

    def broken(p: Any) -> None:
        raise RuntimeError("progress listener broke")

    bk.listen_backtest_progress(broken)
    bk.listen_backtest_progress(lambda p: progress.append(p.progress))
    assert (
        bk.Backtest.run_sync("BTCUSDT", strategy_name="s", exchange_name="ex", frame_name="f") == []
    )
    assert progress[-1] == 1.0
    assert len(errors) == len(progress) >= 2
    assert all(str(e) == "progress listener broke" for e in errors)


# -- the catalogue (85 §2) ------------------------------------------------------------------


LISTENERS = [
    (bk.listen_signal, events.SIGNAL),
    (bk.listen_signal_backtest, events.SIGNAL_BACKTEST),
    (bk.listen_signal_live, events.SIGNAL_LIVE),
    (bk.listen_done_backtest, events.DONE_BACKTEST),
    (bk.listen_done_live, events.DONE_LIVE),
    (bk.listen_done_walker, events.DONE_WALKER),
    (bk.listen_backtest_progress, events.BACKTEST_PROGRESS),
    (bk.listen_walker_progress, events.WALKER_PROGRESS),
    (bk.listen_optimizer_progress, events.OPTIMIZER_PROGRESS),
    (bk.listen_performance, events.PERFORMANCE),
    (bk.listen_walker, events.WALKER),
    (bk.listen_walker_complete, events.WALKER_COMPLETE),
    (bk.listen_partial_profit, events.PARTIAL_PROFIT),
    (bk.listen_partial_loss, events.PARTIAL_LOSS),
    (bk.listen_risk, events.RISK),
    (bk.listen_validation, events.VALIDATION),
    (bk.listen_error, events.ERROR),
    (bk.listen_exit, events.EXIT),
]

ONCE_LISTENERS = [
    (bk.listen_signal_once, events.SIGNAL),
    (bk.listen_signal_backtest_once, events.SIGNAL_BACKTEST),
    (bk.listen_signal_live_once, events.SIGNAL_LIVE),
    (bk.listen_done_backtest_once, events.DONE_BACKTEST),
    (bk.listen_done_live_once, events.DONE_LIVE),
    (bk.listen_done_walker_once, events.DONE_WALKER),
    (bk.listen_walker_once, events.WALKER),
    (bk.listen_partial_profit_once, events.PARTIAL_PROFIT),
    (bk.listen_partial_loss_once, events.PARTIAL_LOSS),
    (bk.listen_risk_once, events.RISK),
]


@pytest.mark.parametrize(("listen", "topic"), LISTENERS, ids=lambda x: getattr(x, "__name__", x))
def test_every_listen_function_subscribes_to_its_topic_only(
    listen: Callable[..., Any], topic: str
) -> None:
    got: list[tuple[str, Any]] = []
    unsubscribe = listen(lambda p: got.append((topic, p)))
    for other in {t for _, t in LISTENERS}:
        emit(other, other)
    assert got == [(topic, topic)]
    unsubscribe()
    emit(topic, "again")
    assert got == [(topic, topic)]


@pytest.mark.parametrize(
    ("listen", "topic"), ONCE_LISTENERS, ids=lambda x: getattr(x, "__name__", x)
)
def test_every_once_function_subscribes_to_its_topic(
    listen: Callable[..., Any], topic: str
) -> None:
    got: list[Any] = []
    listen(lambda p: p == "match", got.append)
    emit(topic, "no")
    emit(topic, "match")
    emit(topic, "match")
    assert got == ["match"]


def test_listeners_are_forgotten_by_reset() -> None:
    got: list[Any] = []
    bk.listen_signal(got.append)
    bk.reset()
    emit(events.SIGNAL, 1)
    assert got == []
