"""The runtime: one object holding everything a process accumulates.

Registries (dicts of frozen schemas), configuration, the logger, the event bus, memoised
clients, candle stores and frame timestamps all live on a `Runtime`. The module-level API
talks to the current runtime; `bk.reset()` replaces it, which gives tests isolation for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_CONFIG, Config
from .logger import LoggerService

if TYPE_CHECKING:
    from .events import EventBus
    from .persist import PersistRegistry
    from .report.collectors import ReportHub


class Runtime:
    """Registries, configuration, logger, event bus and caches of one process."""

    def __init__(self) -> None:
        from .events import EventBus
        from .persist import PersistRegistry
        from .report.collectors import ReportHub

        self.config: Config = DEFAULT_CONFIG
        self.logger = LoggerService()
        self.bus: EventBus = EventBus(self)
        # report collectors subscribe now, before any user listener can (80 §1.1)
        self.reports: ReportHub = ReportHub(self)
        # registries: name -> frozen schema, in registration order
        self.exchanges: dict[str, Any] = {}
        self.strategies: dict[str, Any] = {}
        self.frames: dict[str, Any] = {}
        self.risks: dict[str, Any] = {}
        self.sizings: dict[str, Any] = {}
        self.walkers: dict[str, Any] = {}
        self.optimizers: dict[str, Any] = {}
        # memoised state
        self.frame_times: dict[str, Any] = {}
        self.exchange_clients: dict[tuple[str, bool], Any] = {}
        self.strategy_clients: dict[tuple[str, str, bool], Any] = {}
        self.risk_clients: dict[tuple[str, bool], Any] = {}
        # partial milestones reached, per mode: signal id -> (profit levels, loss levels)
        self.partial_levels: dict[bool, dict[str, tuple[set[int], set[int]]]] = {
            True: {},
            False: {},
        }
        self.backtest_instances: dict[tuple[str, str], Any] = {}
        self.extensions: dict[str, Any] = {}
        self.live_runs_active = 0  # use_persist_*_adapter refuses to swap during a live run
        # persistence backends: factory per kind + memoised instances (40 §3.4)
        self.persist: PersistRegistry = PersistRegistry()


_current = Runtime()


def current() -> Runtime:
    """The runtime the module-level API works on."""
    return _current


def reset() -> None:
    """Forget every registration, listener, setting and accumulated result."""
    global _current
    _current = Runtime()
