"""The in-process event bus and every `listen_*` function (85).

Emission is awaited: subscribers of a topic run one after another, in subscription order,
and the engine waits for them (back-pressure, deterministic order). A listener that raises is
reported on the error topic and the log; it never stops the run or the other listeners.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .runtime import Runtime

Listener = Callable[[Any], Any]
Unsubscribe = Callable[[], None]

SIGNAL: Final = "signal"
SIGNAL_BACKTEST: Final = "signal_backtest"
SIGNAL_LIVE: Final = "signal_live"
DONE_BACKTEST: Final = "done_backtest"
DONE_LIVE: Final = "done_live"
DONE_WALKER: Final = "done_walker"
BACKTEST_PROGRESS: Final = "backtest_progress"
WALKER_PROGRESS: Final = "walker_progress"
OPTIMIZER_PROGRESS: Final = "optimizer_progress"
PERFORMANCE: Final = "performance"
WALKER: Final = "walker"
WALKER_COMPLETE: Final = "walker_complete"
PARTIAL_PROFIT: Final = "partial_profit"
PARTIAL_LOSS: Final = "partial_loss"
RISK: Final = "risk"
VALIDATION: Final = "validation"
ERROR: Final = "error"
EXIT: Final = "exit"


class _Subscription:
    __slots__ = ("active", "fn", "internal", "is_async", "lock", "lock_loop", "owner")

    def __init__(self, fn: Listener, internal: bool) -> None:
        self.fn = fn
        self.internal = internal
        self.active = True
        # an async listener may be re-entered by a concurrent emitter while it awaits: a
        # per-listener lock keeps its events one at a time, in order (85 §1)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        self.lock: asyncio.Lock | None = None
        self.lock_loop: asyncio.AbstractEventLoop | None = None
        self.owner: asyncio.Task[Any] | None = None

    async def deliver(self, payload: Any) -> None:
        if not self.is_async:
            result = self.fn(payload)
            if result is not None and inspect.isawaitable(result):  # None: the common case
                await result
            return
        task = asyncio.current_task()
        if self.owner is not None and self.owner is task:  # re-entered by its own emission
            await self.fn(payload)
            return
        loop = asyncio.get_running_loop()
        if self.lock is None or self.lock_loop is not loop:
            self.lock, self.lock_loop = asyncio.Lock(), loop
        async with self.lock:
            self.owner = task
            try:
                await self.fn(payload)
            finally:
                self.owner = None


class EventBus:
    """Topics with ordered subscribers; `emit` awaits each subscriber in turn."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._subs: dict[str, list[_Subscription]] = {}
        self.subscriptions = self._subs  # read-only view for hot loops: topic -> subscribers
        self._user_counts: dict[str, int] = {}
        self.user_counts = self._user_counts  # read-only view for hot loops

    def subscribe(self, topic: str, fn: Listener, *, internal: bool = False) -> Unsubscribe:
        """Add `fn` to `topic`; `internal` marks framework collectors (not user observers)."""
        if not callable(fn):
            from .errors import ValidationError

            raise ValidationError(f"listener for {topic!r} must be callable, got {fn!r}")
        sub = _Subscription(fn, internal)
        # copy-on-write: an emission in progress keeps iterating its own snapshot
        self._subs[topic] = [*self._subs.get(topic, ()), sub]
        if not internal:
            self._user_counts[topic] = self._user_counts.get(topic, 0) + 1

        def unsubscribe() -> None:
            if not sub.active:
                return
            sub.active = False
            self._subs[topic] = [s for s in self._subs.get(topic, ()) if s is not sub]
            if not internal:
                self._user_counts[topic] -= 1

        return unsubscribe

    def has_listeners(self, topic: str) -> bool:
        """True when anything (user or collector) would receive an event on `topic`."""
        return bool(self._subs.get(topic))

    def has_user_listeners(self, topic: str) -> bool:
        """True when a user listener (not a framework collector) is subscribed to `topic`."""
        return self._user_counts.get(topic, 0) > 0

    async def emit(self, topic: str, payload: Any) -> None:
        subs = self._subs.get(topic)
        if not subs:
            return
        for sub in subs:
            if not sub.active:
                continue
            try:
                await sub.deliver(payload)
            except Exception as exc:  # [deviation] 85 §1.2: listeners are isolated
                await self._listener_failed(topic, exc)

    async def _listener_failed(self, topic: str, exc: Exception) -> None:
        self._runtime.logger.alert(
            "events.listener_failed", {"topic": topic, "error": f"{type(exc).__name__}: {exc}"}
        )
        if topic != ERROR:
            await self.emit(ERROR, exc)


def _bus() -> EventBus:
    from .runtime import current

    return current().bus


def _listen(topic: str, fn: Listener) -> Unsubscribe:
    return _bus().subscribe(topic, fn)


def _listen_once(topic: str, filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    if not callable(filter_fn):
        from .errors import ValidationError

        raise ValidationError(f"filter_fn for {topic!r} must be callable, got {filter_fn!r}")
    unsubscribe: Unsubscribe = lambda: None  # noqa: E731 - replaced right below

    async def once(payload: Any) -> None:
        if not filter_fn(payload):
            return
        unsubscribe()  # removed first, then called exactly once (85 §1.1)
        result = fn(payload)
        if inspect.isawaitable(result):
            await result

    unsubscribe = _bus().subscribe(topic, once)
    return unsubscribe


def listen_signal(fn: Listener) -> Unsubscribe:
    """Every tick result of every run (backtest and live); returns `unsubscribe()`."""
    return _listen(SIGNAL, fn)


def listen_signal_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(SIGNAL, filter_fn, fn)


def listen_signal_backtest(fn: Listener) -> Unsubscribe:
    """Tick results of backtest runs (idle, scheduled, opened, closed, cancelled)."""
    return _listen(SIGNAL_BACKTEST, fn)


def listen_signal_backtest_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(SIGNAL_BACKTEST, filter_fn, fn)


def listen_signal_live(fn: Listener) -> Unsubscribe:
    """Tick results of live runs."""
    return _listen(SIGNAL_LIVE, fn)


def listen_signal_live_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(SIGNAL_LIVE, filter_fn, fn)


def listen_done_backtest(fn: Listener) -> Unsubscribe:
    """`DoneContract` when a background backtest ends (its last event)."""
    return _listen(DONE_BACKTEST, fn)


def listen_done_backtest_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(DONE_BACKTEST, filter_fn, fn)


def listen_done_live(fn: Listener) -> Unsubscribe:
    return _listen(DONE_LIVE, fn)


def listen_done_live_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(DONE_LIVE, filter_fn, fn)


def listen_done_walker(fn: Listener) -> Unsubscribe:
    return _listen(DONE_WALKER, fn)


def listen_done_walker_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(DONE_WALKER, filter_fn, fn)


def listen_backtest_progress(fn: Listener) -> Unsubscribe:
    """`ProgressBacktestContract` at each evaluated frame and once at the end."""
    return _listen(BACKTEST_PROGRESS, fn)


def listen_walker_progress(fn: Listener) -> Unsubscribe:
    return _listen(WALKER_PROGRESS, fn)


def listen_optimizer_progress(fn: Listener) -> Unsubscribe:
    return _listen(OPTIMIZER_PROGRESS, fn)


def listen_performance(fn: Listener) -> Unsubscribe:
    """`PerformanceContract` timing samples of the engines' phases."""
    return _listen(PERFORMANCE, fn)


def listen_walker(fn: Listener) -> Unsubscribe:
    return _listen(WALKER, fn)


def listen_walker_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(WALKER, filter_fn, fn)


def listen_walker_complete(fn: Listener) -> Unsubscribe:
    return _listen(WALKER_COMPLETE, fn)


def listen_partial_profit(fn: Listener) -> Unsubscribe:
    return _listen(PARTIAL_PROFIT, fn)


def listen_partial_profit_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(PARTIAL_PROFIT, filter_fn, fn)


def listen_partial_loss(fn: Listener) -> Unsubscribe:
    return _listen(PARTIAL_LOSS, fn)


def listen_partial_loss_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(PARTIAL_LOSS, filter_fn, fn)


def listen_risk(fn: Listener) -> Unsubscribe:
    return _listen(RISK, fn)


def listen_risk_once(filter_fn: Callable[[Any], bool], fn: Listener) -> Unsubscribe:
    return _listen_once(RISK, filter_fn, fn)


def listen_validation(fn: Listener) -> Unsubscribe:
    """Rejected signals (`ValidationError` naming each failing rule) and raising risk rules."""
    return _listen(VALIDATION, fn)


def listen_error(fn: Listener) -> Unsubscribe:
    """Recoverable failures: user code or the exchange raised; the run goes on."""
    return _listen(ERROR, fn)


def listen_exit(fn: Listener) -> Unsubscribe:
    """A background run died with this exception."""
    return _listen(EXIT, fn)


async def call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user function that may be sync or `async def`; await only what is awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result


__all__ = [
    "EventBus",
    "call_user",
    "listen_backtest_progress",
    "listen_done_backtest",
    "listen_done_backtest_once",
    "listen_done_live",
    "listen_done_live_once",
    "listen_done_walker",
    "listen_done_walker_once",
    "listen_error",
    "listen_exit",
    "listen_optimizer_progress",
    "listen_partial_loss",
    "listen_partial_loss_once",
    "listen_partial_profit",
    "listen_partial_profit_once",
    "listen_performance",
    "listen_risk",
    "listen_risk_once",
    "listen_signal",
    "listen_signal_backtest",
    "listen_signal_backtest_once",
    "listen_signal_live",
    "listen_signal_live_once",
    "listen_signal_once",
    "listen_validation",
    "listen_walker",
    "listen_walker_complete",
    "listen_walker_once",
    "listen_walker_progress",
]
