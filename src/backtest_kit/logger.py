"""The framework's logger service (90 §4): routes log calls to the user's logger, with context.

Owns `LoggerService` (one per runtime) and `set_logger`. Every call appends the method and
execution context dicts after the caller's arguments. Warnings and "report saved" lines also go
to the standard-library logger `backtest_kit` (90 §4.3). It never prints and never lets a user
logger's failure reach the caller.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import reprlib
from collections.abc import Callable
from typing import Any

from .context import execution_context, method_context
from .errors import ValidationError

_stdlib_logger = logging.getLogger("backtest_kit")

_LogMethod = Callable[..., object]


class _CompactRepr(reprlib.Repr):
    """`reprlib.Repr` that keeps dict insertion order (the stock one sorts keys)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{" + self.fillvalue + "}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
            for key, value in itertools.islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append(self.fillvalue)
        return "{" + ", ".join(pieces) + "}"


_repr = _CompactRepr()
_repr.maxlevel = 4
_repr.maxdict = 20
_repr.maxlist = 20
_repr.maxtuple = 20
_repr.maxstring = 500
_repr.maxother = 200


def _compact(topic: str, args: tuple[object, ...]) -> str:
    """`topic`, then a bounded `repr` of each argument; empty dicts (absent contexts) skipped."""
    parts = [topic]
    parts.extend(_repr.repr(arg) for arg in args if not (isinstance(arg, dict) and not arg))
    return " ".join(parts)


class _StdlibAdapter:
    """Presents a `logging.Logger` (or `LoggerAdapter`) as a four-method logger (90 §4.1)."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self._logger = logger

    def _emit(self, level: int, topic: str, args: tuple[object, ...]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, _compact(topic, args), extra={"bk_args": args})

    def log(self, topic: str, *args: object) -> None:
        self._emit(logging.DEBUG, topic, args)

    def debug(self, topic: str, *args: object) -> None:
        self._emit(logging.DEBUG, topic, args)

    def info(self, topic: str, *args: object) -> None:
        self._emit(logging.INFO, topic, args)

    def warn(self, topic: str, *args: object) -> None:
        self._emit(logging.WARNING, topic, args)


def _call(method: _LogMethod, topic: str, args: tuple[object, ...]) -> None:
    """Call a user logger method; its exceptions and awaitables are dropped."""
    try:
        result = method(topic, *args)
    except Exception:
        # [deviation] 90 §4.2: a failing user logger must not break the calling operation.
        return
    if inspect.iscoroutine(result):
        result.close()  # ignored by contract; closing avoids "never awaited" warnings


def _with_context(args: tuple[object, ...]) -> tuple[object, ...]:
    method = method_context.get()
    execution = execution_context.get()
    return (
        *args,
        method.to_dict() if method is not None else {},
        execution.to_dict() if execution is not None else {},
    )


class LoggerService:
    """The runtime's logger: silent by default, forwards to the logger given to `set`."""

    __slots__ = ("_debug", "_info", "_log", "_mirror_to_stdlib", "_warn")

    def __init__(self) -> None:
        self._log: _LogMethod | None = None
        self._debug: _LogMethod | None = None
        self._info: _LogMethod | None = None
        self._warn: _LogMethod | None = None
        self._mirror_to_stdlib = True

    def set(self, logger: object) -> None:
        """Use `logger` for all later calls; `None` makes the service silent again.

        `logger` is a `logging.Logger` or any object with `log`, `debug`, `info` and `warn`
        (or `warning`) methods, each `(topic, *args)`.
        """
        if logger is None:
            self._log = self._debug = self._info = self._warn = None
            self._mirror_to_stdlib = True
            return
        if isinstance(logger, logging.Logger | logging.LoggerAdapter):
            adapter = _StdlibAdapter(logger)
            self._log, self._debug, self._info, self._warn = (
                adapter.log,
                adapter.debug,
                adapter.info,
                adapter.warn,
            )
            # A stdlib logger already makes warnings visible; mirroring would print them twice.
            self._mirror_to_stdlib = False
            return
        methods: dict[str, _LogMethod] = {}
        missing: list[str] = []
        for name in ("log", "debug", "info", "warn"):
            method = getattr(logger, name, None)
            if not callable(method) and name == "warn":
                method = getattr(logger, "warning", None)
            if callable(method):
                methods[name] = method
            else:
                missing.append("warn (or warning)" if name == "warn" else name)
        if missing:
            raise ValidationError(
                f"logger {type(logger).__name__!r} is missing method(s): {', '.join(missing)}; "
                "a logger needs log, debug, info and warn (or warning), each (topic, *args), "
                "or pass a logging.Logger"
            )
        self._log = methods["log"]
        self._debug = methods["debug"]
        self._info = methods["info"]
        self._warn = methods["warn"]
        self._mirror_to_stdlib = True

    def log(self, topic: str, *args: object) -> None:
        """Internal tracing (very chatty)."""
        method = self._log
        if method is None:
            return
        _call(method, topic, _with_context(args))

    def debug(self, topic: str, *args: object) -> None:
        """Client-level detail."""
        method = self._debug
        if method is None:
            return
        _call(method, topic, _with_context(args))

    def info(self, topic: str, *args: object) -> None:
        """Public entry points and lifecycle milestones."""
        method = self._info
        if method is None:
            return
        _call(method, topic, _with_context(args))

    def warn(self, topic: str, *args: object) -> None:
        """Problems worth a look (a stop-loss close, fewer candles than asked, ...)."""
        method = self._warn
        if method is not None:
            _call(method, topic, _with_context(args))

    def alert(self, topic: str, *args: object) -> None:
        """Failures the reference prints to the console (user code or the exchange raised,
        a rejected configuration): `warn`, and WARNING on the stdlib logger `backtest_kit`
        so they show with the default logging setup (90 §4.3)."""
        full = _with_context(args)
        if self._mirror_to_stdlib and _stdlib_logger.isEnabledFor(logging.WARNING):
            _stdlib_logger.warning(_compact(topic, full), extra={"bk_args": full})
        method = self._warn
        if method is not None:
            _call(method, topic, full)

    def saved(self, kind: str, path: str) -> None:
        """Announce a written report: `"<Kind> report saved: <path>"` (90 §4.3)."""
        message = f"{kind[:1].upper()}{kind[1:]} report saved: {path}"
        if self._mirror_to_stdlib:
            _stdlib_logger.info(message)
        self.info(message, {"kind": kind, "path": path})


def set_logger(logger: object) -> None:
    """Send the framework's log calls to `logger` (90 §4.2); cleared by `bk.reset()`.

    `logger` is a `logging.Logger` or any object with `log`, `debug`, `info` and `warn`
    (or `warning`) methods taking `(topic, *args)`; `None` restores silence.

        bk.set_logger(logging.getLogger("my_bot"))
    """
    from .runtime import current

    current().logger.set(logger)
