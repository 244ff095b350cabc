"""Background runs: a task that drains a run's generator, then emits its done event as the
run's last event, or its exception on `listen_exit` (85 §4, §5.2). Shared by the engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ..events import EXIT
from ..model.events import DoneContract
from ..runtime import Runtime


class _HasStatus(Protocol):
    status: str


def start_background(
    runtime: Runtime,
    instance: _HasStatus,
    generator: AsyncIterator[Any],
    *,
    method: str,
    done_topic: str,
    make_done: Callable[[], DoneContract],
) -> asyncio.Task[None]:
    """Drain `generator` in a task; `instance.status` follows it (pending, fulfilled,
    rejected)."""

    async def drain() -> None:
        try:
            async for _ in generator:
                pass
        except Exception as exc:
            instance.status = "rejected"
            runtime.logger.alert(f"{method} failed", {"error": f"{type(exc).__name__}: {exc}"})
            await runtime.bus.emit(EXIT, exc)
            return
        instance.status = "fulfilled"
        await runtime.bus.emit(done_topic, make_done())

    instance.status = "pending"
    return asyncio.get_running_loop().create_task(drain())
