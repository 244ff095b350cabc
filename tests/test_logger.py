"""Tests for `backtest_kit.logger` (90 §4, §5)."""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Iterator

import pytest

from backtest_kit import runtime
from backtest_kit.context import (
    ExecutionContext,
    MethodContext,
    execution_context,
    method_context,
)
from backtest_kit.errors import ValidationError
from backtest_kit.logger import LoggerService, set_logger

METHOD = MethodContext(strategy_name="sma", exchange_name="binance", frame_name="1d")
EXECUTION = ExecutionContext(symbol="BTCUSDT", when=1_700_000_000_000, backtest=True)
METHOD_DICT = {"exchange_name": "binance", "strategy_name": "sma", "frame_name": "1d"}
EXECUTION_DICT = {"symbol": "BTCUSDT", "when": 1_700_000_000_000, "backtest": True}


class Recorder:
    """A user logger that records every call as (method, topic, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[object, ...]]] = []

    def log(self, topic: str, *args: object) -> None:
        self.calls.append(("log", topic, args))

    def debug(self, topic: str, *args: object) -> None:
        self.calls.append(("debug", topic, args))

    def info(self, topic: str, *args: object) -> None:
        self.calls.append(("info", topic, args))

    def warn(self, topic: str, *args: object) -> None:
        self.calls.append(("warn", topic, args))


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def in_run() -> Iterator[None]:
    method_token = method_context.set(METHOD)
    execution_token = execution_context.set(EXECUTION)
    try:
        yield
    finally:
        execution_context.reset(execution_token)
        method_context.reset(method_token)


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "backtest_kit"]


# --- default --------------------------------------------------------------------------------


def test_default_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    service = LoggerService()
    with caplog.at_level(logging.DEBUG):
        service.log("a.log", {"x": 1})
        service.debug("a.debug", {"x": 1})
        service.info("a.info", {"x": 1})
    assert caplog.records == []


def test_runtime_logger_is_a_service() -> None:
    assert isinstance(runtime.current().logger, LoggerService)


# --- custom logger --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["log", "debug", "info", "warn"])
def test_custom_logger_receives_topic_details_and_both_contexts(method: str, in_run: None) -> None:
    recorder = Recorder()
    set_logger(recorder)
    getattr(runtime.current().logger, method)("Backtest.run", {"symbol": "BTCUSDT"})
    assert recorder.calls == [
        (method, "Backtest.run", ({"symbol": "BTCUSDT"}, METHOD_DICT, EXECUTION_DICT))
    ]


def test_contexts_are_empty_dicts_outside_a_run() -> None:
    recorder = Recorder()
    set_logger(recorder)
    runtime.current().logger.info("add.add_strategy", {"strategy_name": "sma"})
    assert recorder.calls == [("info", "add.add_strategy", ({"strategy_name": "sma"}, {}, {}))]


def test_method_context_only() -> None:
    recorder = Recorder()
    set_logger(recorder)
    token = method_context.set(METHOD)
    try:
        runtime.current().logger.debug("Walker.run")
    finally:
        method_context.reset(token)
    assert recorder.calls == [("debug", "Walker.run", (METHOD_DICT, {}))]


def test_several_args_keep_their_order(in_run: None) -> None:
    recorder = Recorder()
    set_logger(recorder)
    runtime.current().logger.log("x", 1, "two", [3])
    assert recorder.calls == [("log", "x", (1, "two", [3], METHOD_DICT, EXECUTION_DICT))]


def test_warning_is_an_alias_of_warn() -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []

    class WarningLogger:
        def log(self, topic: str, *args: object) -> None:
            pass

        debug = info = log

        def warning(self, topic: str, *args: object) -> None:
            calls.append((topic, args))

    set_logger(WarningLogger())
    runtime.current().logger.warn("Risk.check", {"risk_name": "r"})
    assert calls == [("Risk.check", ({"risk_name": "r"}, {}, {}))]


def test_set_logger_replaces_previous_logger() -> None:
    first, second = Recorder(), Recorder()
    set_logger(first)
    set_logger(second)
    runtime.current().logger.info("t")
    assert first.calls == []
    assert len(second.calls) == 1


def test_set_none_restores_silence() -> None:
    recorder = Recorder()
    service = LoggerService()
    service.set(recorder)
    service.set(None)
    service.info("t")
    assert recorder.calls == []


def test_reset_clears_the_logger() -> None:
    recorder = Recorder()
    set_logger(recorder)
    runtime.reset()
    runtime.current().logger.info("t")
    assert recorder.calls == []


def test_async_logger_methods_are_not_awaited_and_do_not_warn() -> None:
    ran: list[str] = []

    class AsyncLogger:
        async def log(self, topic: str, *args: object) -> None:
            ran.append(topic)

        debug = info = warn = log

    set_logger(AsyncLogger())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        service = runtime.current().logger
        service.log("a")
        service.debug("b")
        service.info("c")
        service.warn("d")
        gc.collect()
    assert ran == []
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_raising_logger_is_swallowed(in_run: None) -> None:
    class Broken:
        def log(self, topic: str, *args: object) -> None:
            raise RuntimeError("disk full")

        debug = info = warn = log

    set_logger(Broken())
    service = runtime.current().logger
    service.log("a", {})
    service.debug("b", {})
    service.info("c", {})
    service.warn("d", {})
    service.saved("Backtest", "./dump/backtest/sma.md")


# --- validation of set ----------------------------------------------------------------------


def test_object_without_debug_rejected() -> None:
    class NoDebug:
        def log(self, topic: str, *args: object) -> None:
            pass

        info = warn = log

    with pytest.raises(ValidationError) as caught:
        set_logger(NoDebug())
    assert "missing method(s): debug;" in str(caught.value)


def test_object_without_warn_or_warning_rejected() -> None:
    class NoWarn:
        def log(self, topic: str, *args: object) -> None:
            pass

        debug = info = log

    with pytest.raises(ValidationError, match=r"missing method\(s\): warn \(or warning\)"):
        set_logger(NoWarn())


def test_plain_object_lists_every_missing_method() -> None:
    with pytest.raises(ValidationError) as caught:
        set_logger(object())
    assert "missing method(s): log, debug, info, warn (or warning);" in str(caught.value)


def test_failed_set_keeps_previous_logger() -> None:
    recorder = Recorder()
    set_logger(recorder)
    with pytest.raises(ValidationError):
        set_logger(42)
    runtime.current().logger.info("t")
    assert len(recorder.calls) == 1


# --- logging.Logger -------------------------------------------------------------------------


def test_stdlib_logger_is_wrapped(caplog: pytest.LogCaptureFixture, in_run: None) -> None:
    target = logging.getLogger("test_logger.bot")
    set_logger(target)
    service = runtime.current().logger
    with caplog.at_level(logging.DEBUG, logger="test_logger.bot"):
        service.log("a.log", {"n": 1})
        service.debug("a.debug", {"n": 2})
        service.info("a.info", {"n": 3})
        service.warn("a.warn", {"n": 4})
    records = [record for record in caplog.records if record.name == "test_logger.bot"]
    assert [record.levelno for record in records] == [
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
    ]
    assert records[2].getMessage() == f"a.info {{'n': 3}} {METHOD_DICT!r} {EXECUTION_DICT!r}"
    assert records[2].bk_args == ({"n": 3}, METHOD_DICT, EXECUTION_DICT)  # type: ignore[attr-defined]


def test_stdlib_logger_message_skips_absent_contexts(caplog: pytest.LogCaptureFixture) -> None:
    set_logger(logging.getLogger("test_logger.bot"))
    with caplog.at_level(logging.INFO, logger="test_logger.bot"):
        runtime.current().logger.info("Backtest.run", {"symbol": "BTCUSDT"})
        runtime.current().logger.info("Walker.stop")
    assert [record.getMessage() for record in caplog.records] == [
        "Backtest.run {'symbol': 'BTCUSDT'}",
        "Walker.stop",
    ]
    assert caplog.records[1].bk_args == ({}, {})  # type: ignore[attr-defined]


def test_stdlib_logger_respects_its_level(caplog: pytest.LogCaptureFixture) -> None:
    set_logger(logging.getLogger("test_logger.quiet"))
    with caplog.at_level(logging.INFO, logger="test_logger.quiet"):
        runtime.current().logger.debug("hidden")
        runtime.current().logger.info("shown")
    assert [record.getMessage() for record in caplog.records] == ["shown"]


def test_stdlib_logger_message_is_compact(caplog: pytest.LogCaptureFixture) -> None:
    set_logger(logging.getLogger("test_logger.bot"))
    with caplog.at_level(logging.INFO, logger="test_logger.bot"):
        runtime.current().logger.info("big", list(range(10_000)))
    assert len(caplog.records[0].getMessage()) < 200


def test_logger_adapter_is_wrapped(caplog: pytest.LogCaptureFixture) -> None:
    adapter = logging.LoggerAdapter(logging.getLogger("test_logger.adapter"), {"bot": "x"})
    set_logger(adapter)
    with caplog.at_level(logging.INFO, logger="test_logger.adapter"):
        runtime.current().logger.info("Live.run", {"symbol": "ETHUSDT"})
    assert [record.getMessage() for record in caplog.records] == ["Live.run {'symbol': 'ETHUSDT'}"]


def test_stdlib_user_logger_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    set_logger(logging.getLogger("test_logger.bot"))
    with caplog.at_level(logging.WARNING):
        runtime.current().logger.alert("ClientExchange.get_candles", {"attempt": 1})
    assert [(record.name, record.getMessage()) for record in caplog.records] == [
        ("test_logger.bot", "ClientExchange.get_candles {'attempt': 1}")
    ]


# --- stdlib "backtest_kit" mirror (90 §4.3) -------------------------------------------------


def test_alert_goes_to_the_backtest_kit_logger_without_a_user_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="backtest_kit"):
        runtime.current().logger.alert("Strategy.get_signal", {"error": "timeout"})
    records = _ours(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == "Strategy.get_signal {'error': 'timeout'}"


def test_alert_goes_to_both_user_logger_and_backtest_kit_logger(
    caplog: pytest.LogCaptureFixture, in_run: None
) -> None:
    recorder = Recorder()
    set_logger(recorder)
    with caplog.at_level(logging.WARNING, logger="backtest_kit"):
        runtime.current().logger.alert("Risk.check", {"risk_name": "r"})
    assert recorder.calls == [
        ("warn", "Risk.check", ({"risk_name": "r"}, METHOD_DICT, EXECUTION_DICT))
    ]
    records = _ours(caplog)
    assert [record.getMessage() for record in records] == [
        f"Risk.check {{'risk_name': 'r'}} {METHOD_DICT!r} {EXECUTION_DICT!r}"
    ]


def test_only_alert_is_mirrored(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    set_logger(recorder)
    with caplog.at_level(logging.DEBUG, logger="backtest_kit"):
        runtime.current().logger.log("a")
        runtime.current().logger.debug("b")
        runtime.current().logger.info("c")
        runtime.current().logger.warn("d")
    assert _ours(caplog) == []
    assert [call[:2] for call in recorder.calls] == [
        ("log", "a"),
        ("debug", "b"),
        ("info", "c"),
        ("warn", "d"),
    ]


def test_saved_logs_info_to_both(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    set_logger(recorder)
    with caplog.at_level(logging.INFO, logger="backtest_kit"):
        runtime.current().logger.saved("Backtest", "./dump/backtest/sma.md")
    records = _ours(caplog)
    assert [(record.levelno, record.getMessage()) for record in records] == [
        (logging.INFO, "Backtest report saved: ./dump/backtest/sma.md")
    ]
    assert recorder.calls == [
        (
            "info",
            "Backtest report saved: ./dump/backtest/sma.md",
            ({"kind": "Backtest", "path": "./dump/backtest/sma.md"}, {}, {}),
        )
    ]


def test_saved_capitalises_kind(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="backtest_kit"):
        runtime.current().logger.saved("heat", "./dump/heat/sma.md")
    assert [record.getMessage() for record in _ours(caplog)] == [
        "Heat report saved: ./dump/heat/sma.md"
    ]
