"""Tests for `backtest_kit.core.risk` (risk profiles, 60 §1–§6) and the strategy's risk hooks
(20 §3.3, §5.3, §9), driven through real backtests over the hand-made 1m market of
`support.py` wherever the engine is concerned: registration rules, the gate's verdicts and
comments, the event order validation -> risk -> `on_rejected`, merged gates, the registry of
active positions (add on open, remove on close, shared across strategies, isolated across
profiles and modes), `max_concurrent_positions`, and a refused backtest activation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.core.risk import risk_client, risk_gate
from backtest_kit.runtime import current
from support import BASE, SYMBOL, Market, minute_of, ms


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


LONG = bk.Signal("long", 101.0, 99.0, 60)


class Script:
    """`get_signal` answering from a {minute: value} table and recording every call."""

    def __init__(self, answers: dict[int, Any] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[int] = []

    def __call__(self, symbol: str, when: datetime) -> Any:
        minute = minute_of(when)
        self.calls.append(minute)
        return self.answers.get(minute)


def register(
    market: Market,
    get_signal: Callable[..., Any],
    *,
    frame: tuple[int, int] = (0, 20),
    risk_name: str | None = None,
    risk_list: list[str] | None = None,
    callbacks: Any = None,
) -> None:
    bk.add_exchange("ex", get_candles=market.get_candles)
    bk.add_strategy(
        "s1",
        "1m",
        get_signal,
        risk_name=risk_name,
        risk_list=risk_list,
        callbacks=callbacks,
    )
    bk.add_frame(
        "f",
        "1m",
        BASE + timedelta(minutes=frame[0]),
        BASE + timedelta(minutes=frame[1]),
    )


def run() -> list[Any]:
    return bk.Backtest.run_sync(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")


def row(
    strategy: str = "s1", symbol: str = SYMBOL, minute: int = 0, sid: str = "x"
) -> bk.SignalRow:
    return bk.SignalRow(
        id=sid,
        position="long",
        price_open=100.0,
        price_take_profit=101.0,
        price_stop_loss=99.0,
        minute_estimated_time=60,
        note="",
        symbol=symbol,
        exchange_name="ex",
        strategy_name=strategy,
        scheduled_at=ms(minute),
        pending_at=ms(minute),
        is_scheduled=False,
    )


def args_for(r: bk.SignalRow, price: float = 100.0, minute: int = 0) -> bk.RiskCheckArgs:
    return bk.RiskCheckArgs(
        symbol=r.symbol,
        pending_signal=r,
        strategy_name=r.strategy_name,
        exchange_name=r.exchange_name,
        current_price=price,
        timestamp=ms(minute),
    )


def fail(message: str = "rejected") -> Callable[[Any], None]:
    def validate(payload: Any) -> None:
        raise ValueError(message)

    return validate


# -- registration (60 §1) -------------------------------------------------------------------


def _ok(payload: Any) -> None:
    return None


class _RuleObject:
    """A validation given as a plain object with `validate` and `note` attributes."""

    def __init__(self, note: Any) -> None:
        self.note = note

    def validate(self, payload: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"risk_name": None},
            bk.ValidationError,
            "missing risk_name: must be a non-empty string, got None",
        ),
        (
            {"risk_name": ""},
            bk.ValidationError,
            "missing risk_name: must be a non-empty string, got ''",
        ),
        (
            {"risk_name": 7},
            bk.ValidationError,
            "missing risk_name: must be a non-empty string, got 7",
        ),
        (
            {"risk_name": "r", "validations": {"validate": _ok}},
            bk.ValidationError,
            "risk 'r': validations must be a list, got dict",
        ),
        (
            {"risk_name": "r", "validations": _ok},
            bk.ValidationError,
            "risk 'r': validations must be a list, got function",
        ),
        (
            {"risk_name": "r", "validations": [_ok, 5]},
            bk.ValidationError,
            "risk 'r': validations[1] needs a callable 'validate', got None",
        ),
        (
            {"risk_name": "r", "validations": [{}]},
            bk.ValidationError,
            "risk 'r': validations[0] needs a callable 'validate', got None",
        ),
        (
            {"risk_name": "r", "validations": [{"validate": "no"}]},
            bk.ValidationError,
            "risk 'r': validations[0] needs a callable 'validate', got 'no'",
        ),
        (
            {"risk_name": "r", "validations": [{"validate": _ok, "note": 3}]},
            bk.ValidationError,
            "risk 'r': validations[0].note must be a str, got int",
        ),
        (
            {"risk_name": "r", "validations": [_RuleObject(note=b"x")]},
            bk.ValidationError,
            "risk 'r': validations[0].note must be a str, got bytes",
        ),
        (
            {"risk_name": "r", "validations": [{"validate": _ok, "comment": "x"}]},
            bk.ValidationError,
            "risk 'r': validations[0] has unknown keys ['comment']; valid: validate, note",
        ),
        *[
            (
                {"risk_name": "r", "max_concurrent_positions": bad},
                bk.ValidationError,
                f"risk 'r': max_concurrent_positions must be a positive int or None, got {bad!r}",
            )
            for bad in (0, -1, True, 1.5, "2")
        ],
        (
            {"risk_name": "r", "note": 5},
            bk.ValidationError,
            "risk 'r': note must be a string, got int",
        ),
        (
            {"risk_name": "r", "callbacks": {"on_reject": _ok}},
            bk.ValidationError,
            "risk 'r': unknown callback 'on_reject'; valid callbacks: on_rejected, on_allowed",
        ),
        (
            {"risk_name": "r", "callbacks": {"on_allowed": 1}},
            bk.ValidationError,
            "risk 'r': callbacks.on_allowed must be callable, got 1",
        ),
        (
            {"risk_name": "r", "callbacks": [_ok]},
            bk.ValidationError,
            "risk 'r': callbacks must be a RiskCallbacks, a dict or None, got list",
        ),
    ],
)
def test_add_risk_rejects_bad_schemas_and_registers_nothing(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        bk.add_risk(**kwargs)
    assert str(info.value) == message
    assert bk.list_risks() == []
    # nothing was recorded: the same name registers cleanly afterwards (60 §1, 02 §4)
    assert bk.add_risk("r").risk_name == "r"


def test_add_risk_duplicate_name_keeps_the_first() -> None:
    first = bk.add_risk("r", note="first")
    with pytest.raises(bk.RegistryError) as info:
        bk.add_risk("r", note="second")
    assert str(info.value) == "risk 'r' already exist"
    assert bk.list_risks() == [first]


def test_add_risk_normalises_validation_forms_and_lists_in_order() -> None:
    async def plain(payload: Any) -> None:
        return None

    rule_obj = _RuleObject(note="object note")
    schema = bk.add_risk(
        "a",
        validations=[
            plain,
            {"validate": _ok},
            {"validate": _ok, "note": "dict note"},
            bk.RiskValidation(_ok, "record note"),
            rule_obj,
        ],
        max_concurrent_positions=3,
        note="doc",
        callbacks=bk.RiskCallbacks(on_rejected=_ok),
    )
    other = bk.add_risk("b", validations=())
    assert schema.validations == (
        bk.RiskValidation(plain, None),
        bk.RiskValidation(_ok, None),
        bk.RiskValidation(_ok, "dict note"),
        bk.RiskValidation(_ok, "record note"),
        bk.RiskValidation(rule_obj.validate, "object note"),
    )
    assert (schema.max_concurrent_positions, schema.note) == (3, "doc")
    assert schema.callbacks == bk.RiskCallbacks(on_rejected=_ok, on_allowed=None)
    assert other.validations == ()
    assert [s.risk_name for s in bk.list_risks()] == ["a", "b"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema.note = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("risk_name", "risk_list", "missing"),
    [("nope", None, "nope"), (None, ["known", "gone"], "gone"), ("known", ["gone"], "gone")],
)
def test_a_run_naming_an_unknown_profile_raises(
    risk_name: str | None, risk_list: list[str] | None, missing: str
) -> None:
    bk.add_risk("known")
    register(Market(), Script(), risk_name=risk_name, risk_list=risk_list)
    with pytest.raises(bk.RegistryError) as info:
        bk.Backtest.run(SYMBOL, strategy_name="s1", exchange_name="ex", frame_name="f")
    assert str(info.value) == f"Backtest.run: risk {missing!r} not found (registered: 'known')"


# -- the gate in a backtest (60 §3, 20 §3.3) ------------------------------------------------


def record(trace: list[Any]) -> None:
    bk.listen_validation(lambda e: trace.append(("validation", e)))
    bk.listen_risk(lambda e: trace.append(("risk", e)))
    bk.listen_error(lambda e: trace.append(("error", e)))


def strategy_trace(trace: list[Any]) -> dict[str, Any]:
    return {
        "on_idle": lambda symbol, price, bt: trace.append(("on_idle", price)),
        "on_write": lambda symbol, r, bt: trace.append(("on_write", r)),
        "on_open": lambda symbol, r, price, bt: trace.append(("on_open", r)),
        "on_close": lambda symbol, r, price, bt: trace.append(("on_close", price)),
    }


def risk_trace(trace: list[Any], tag: str = "") -> dict[str, Any]:
    return {
        "on_rejected": lambda symbol, a: trace.append((f"on_rejected{tag}", symbol, a)),
        "on_allowed": lambda symbol, a: trace.append((f"on_allowed{tag}", symbol, a)),
    }


def test_empty_profile_allows_once_per_open_and_emits_nothing() -> None:
    trace: list[Any] = []
    record(trace)
    bk.add_risk("p", callbacks=risk_trace(trace))
    script = Script({0: LONG})
    register(
        Market().take_profit_at(4),
        script,
        frame=(0, 5),
        risk_name="p",
        callbacks=strategy_trace(trace),
    )

    results = run()

    assert [r.close_reason for r in results] == ["take_profit"]
    opened = results[0].signal
    names = [t[0] for t in trace]
    # [deviation] 60 §3.4: an immediate signal is checked once (B), after validation
    assert names == ["on_allowed", "on_write", "on_open", "on_close", "on_write", "on_idle"]
    _, symbol, args = trace[0]
    assert symbol == SYMBOL
    assert args == bk.RiskCheckArgs(
        symbol=SYMBOL,
        pending_signal=opened,
        strategy_name="s1",
        exchange_name="ex",
        current_price=100.0,
        timestamp=ms(0),
    )
    assert script.calls == [0, 5]


@pytest.mark.parametrize(
    ("entry", "comment"),
    [
        (fail(), "N/A"),
        ({"validate": fail()}, "N/A"),
        ({"validate": fail(), "note": ""}, "N/A"),
        ({"validate": fail(), "note": "too many positions"}, "too many positions"),
        (bk.RiskValidation(fail(), "max exposure"), "max exposure"),
    ],
)
def test_a_raising_validation_rejects_in_order_validation_risk_on_rejected(
    entry: Any, comment: str
) -> None:
    trace: list[Any] = []
    record(trace)
    bk.add_risk("p", validations=[entry], callbacks=risk_trace(trace))
    script = Script({0: LONG})
    register(Market(), script, frame=(0, 2), risk_name="p", callbacks=strategy_trace(trace))

    results = run()

    assert results == []
    assert [t[0] for t in trace] == [
        "validation",
        "risk",
        "on_rejected",
        "on_idle",  # the rejected tick is idle; nothing was stored (no on_write)
        "on_idle",
        "on_idle",
    ]
    exc = trace[0][1]
    assert type(exc) is ValueError and str(exc) == "rejected"  # the raised object, unchanged
    contract = trace[1][1]
    rejected = contract.pending_signal
    assert isinstance(rejected, bk.SignalRow)
    assert (rejected.position, rejected.price_open, rejected.is_scheduled) == ("long", 100.0, False)
    assert (rejected.scheduled_at, rejected.pending_at, rejected.strategy_name) == (
        ms(0),
        ms(0),
        "s1",
    )
    assert rejected.id
    assert contract == bk.RiskContract(
        symbol=SYMBOL,
        pending_signal=rejected,
        strategy_name="s1",
        exchange_name="ex",
        current_price=100.0,
        active_position_count=0,
        comment=comment,
        timestamp=ms(0),  # [deviation] 60 §3.3: execution time, not the wall clock
        backtest=True,
    )
    _, symbol, args = trace[2]
    assert symbol == SYMBOL
    assert args.pending_signal is rejected
    assert (args.current_price, args.timestamp) == (100.0, ms(0))
    # the rejection is not fatal: get_signal is asked again at the next interval
    assert script.calls == [0, 1, 2]


def test_a_validation_returning_false_allows() -> None:
    trace: list[Any] = []
    record(trace)
    seen: list[int] = []

    def says_no(payload: Any) -> bool:
        seen.append(payload.timestamp)
        return False

    bk.add_risk("p", validations=[says_no, {"validate": says_no, "note": "n"}])
    register(Market().take_profit_at(3), Script({0: LONG}), frame=(0, 5), risk_name="p")

    results = run()

    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(3))]
    assert seen == [ms(0), ms(0)]
    assert trace == []


def test_only_the_first_failing_validation_runs() -> None:
    trace: list[Any] = []
    record(trace)
    calls: list[str] = []
    second = ValueError("second says no")

    def first(payload: Any) -> None:
        calls.append("first")

    def raising(payload: Any) -> None:
        calls.append("second")
        raise second

    def third(payload: Any) -> None:
        calls.append("third")
        raise ValueError("never raised")

    bk.add_risk(
        "p",
        validations=[
            first,
            {"validate": raising, "note": "second"},
            {"validate": third, "note": "third"},
        ],
    )
    register(Market(), Script({0: LONG}), frame=(0, 0), risk_name="p")

    assert run() == []
    assert calls == ["first", "second"]
    assert [t[0] for t in trace] == ["validation", "risk"]
    assert trace[0][1] is second
    assert trace[1][1].comment == "second"


def test_async_validation_and_async_callbacks_are_awaited() -> None:
    trace: list[Any] = []
    record(trace)

    async def slow_reject(payload: Any) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async no")

    async def on_rejected(symbol: str, args: Any) -> None:
        await asyncio.sleep(0)
        trace.append(("on_rejected", args.timestamp))

    bk.add_risk(
        "p",
        validations=[{"validate": slow_reject, "note": "async"}],
        callbacks={"on_rejected": on_rejected},
    )
    register(Market(), Script({0: LONG, 1: LONG}), frame=(0, 1), risk_name="p")

    assert run() == []
    assert [t[0] for t in trace] == ["validation", "risk", "on_rejected"] * 2
    assert [t[1].timestamp for t in trace if t[0] == "risk"] == [ms(0), ms(1)]
    assert [t[1] for t in trace if t[0] == "on_rejected"] == [ms(0), ms(1)]
    assert all(str(t[1]) == "async no" for t in trace if t[0] == "validation")


def test_payload_is_a_frozen_record_of_the_check() -> None:
    payloads: list[Any] = []

    def keep(payload: Any) -> None:
        payloads.append(payload)

    bk.add_risk("p", validations=[keep])
    register(Market().take_profit_at(2), Script({0: LONG}), frame=(0, 3), risk_name="p")

    results = run()

    (payload,) = payloads
    assert payload == bk.RiskValidationPayload(
        symbol=SYMBOL,
        pending_signal=results[0].signal,
        strategy_name="s1",
        exchange_name="ex",
        current_price=100.0,
        timestamp=ms(0),
        active_position_count=0,
        active_positions=(),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        payload.active_position_count = 5


@pytest.mark.parametrize("which", ["on_rejected", "on_allowed"])
def test_a_raising_risk_callback_goes_to_listen_error_and_nothing_opens(which: str) -> None:
    trace: list[Any] = []
    record(trace)
    boom = RuntimeError(f"{which} exploded")

    def explode(symbol: str, args: Any) -> None:
        raise boom

    validations = [fail()] if which == "on_rejected" else []
    bk.add_risk("p", validations=validations, callbacks={which: explode})
    script = Script({0: LONG})
    register(
        Market().take_profit_at(3),
        script,
        frame=(0, 2),
        risk_name="p",
        callbacks=strategy_trace(trace),
    )

    assert run() == []
    expected = ["validation", "risk", "error"] if which == "on_rejected" else ["error"]
    assert [t[0] for t in trace] == [*expected, "on_idle", "on_idle", "on_idle"]
    assert trace[len(expected) - 1][1] is boom
    assert script.calls == [0, 1, 2]


def test_merged_gate_checks_every_profile_in_list_order() -> None:
    trace: list[Any] = []
    record(trace)
    calls: list[str] = []

    def tagged(tag: str, raises: bool) -> Callable[[Any], None]:
        def validate(payload: Any) -> None:
            calls.append(tag)
            if raises:
                raise ValueError(tag)

        return validate

    bk.add_risk(
        "p1",
        validations=[{"validate": tagged("p1", True), "note": "first profile"}],
        callbacks=risk_trace(trace, ":p1"),
    )
    bk.add_risk("p2", validations=[tagged("p2", False)], callbacks=risk_trace(trace, ":p2"))
    bk.add_risk("p3", validations=[tagged("p3", True)], callbacks=risk_trace(trace, ":p3"))
    register(Market(), Script({0: LONG}), frame=(0, 0), risk_name="p1", risk_list=["p2", "p3"])

    assert run() == []
    # no short-circuit: p2 and p3 are checked although p1 already refused (60 §2)
    assert calls == ["p1", "p2", "p3"]
    assert [t[0] for t in trace] == [
        "validation",
        "risk",
        "on_rejected:p1",
        "on_allowed:p2",
        "validation",
        "risk",
        "on_rejected:p3",
    ]
    assert [str(trace[i][1]) for i in (0, 4)] == ["p1", "p3"]
    assert [trace[i][1].comment for i in (1, 5)] == ["first profile", "N/A"]


def test_merged_gate_allows_only_when_every_profile_allows() -> None:
    trace: list[Any] = []
    record(trace)
    bk.add_risk("p1", callbacks=risk_trace(trace, ":p1"))
    bk.add_risk("p2", callbacks=risk_trace(trace, ":p2"))
    register(Market().take_profit_at(2), Script({0: LONG}), frame=(0, 3), risk_list=["p2", "p1"])

    results = run()

    assert [r.close_reason for r in results] == ["take_profit"]
    assert [t[0] for t in trace] == ["on_allowed:p2", "on_allowed:p1"]


# -- the active-position registry (60 §4) ---------------------------------------------------


def registry(name: str = "p", backtest: bool = True) -> dict[str, Any]:
    return dict(current().risk_clients[(name, backtest)].positions)


def test_registry_adds_on_open_and_removes_after_on_close() -> None:
    snapshots: list[tuple[str, dict[str, Any]]] = []
    bk.add_risk("p1")
    bk.add_risk("p2")

    def snap(tag: str) -> Callable[..., None]:
        return lambda *a: snapshots.append((tag, registry("p1")))

    bk.listen_signal_backtest(lambda r: snapshots.append((r.action, registry("p1"))))
    register(
        Market().take_profit_at(3),
        Script({0: LONG}),
        frame=(0, 3),
        risk_list=["p1", "p2"],
        callbacks={
            "on_write": snap("on_write"),
            "on_open": snap("on_open"),
            "on_close": snap("on_close"),
        },
    )

    results = run()

    opened = results[0].signal
    entry = bk.RiskActivePosition(
        signal=opened, strategy_name="s1", exchange_name="ex", open_timestamp=ms(0)
    )
    held = {"s1:BTCUSDT": entry}
    assert snapshots == [
        ("on_write", {}),  # the slot is stored first, the registry entry comes after on_write
        ("on_open", held),
        ("opened", held),
        ("on_close", held),  # removed after on_close (20 §1.3)
        ("on_write", {}),
        ("closed", {}),
    ]
    assert registry("p2") == {}  # merged gate: added to and removed from every profile


def test_scheduled_signal_is_checked_at_creation_and_activation_and_registered_when_active() -> (
    None
):
    checks: list[tuple[int, bool, float, int]] = []
    snapshots: list[dict[str, Any]] = []

    def keep(payload: Any) -> None:
        checks.append(
            (
                payload.timestamp,
                payload.pending_signal.is_scheduled,
                payload.current_price,
                payload.active_position_count,
            )
        )

    bk.add_risk("p", validations=[keep])
    market = Market().take_profit_at(9)
    market.bar(5, 100.0, 100.0, 99.4, 100.0)
    register(
        market,
        Script({0: bk.Signal("long", 101.0, 98.5, 60, price_open=99.5)}),
        frame=(0, 12),
        risk_name="p",
        callbacks={"on_open": lambda s, r, p, bt: snapshots.append(registry())},
    )

    results = run()

    assert [(r.close_reason, r.close_timestamp) for r in results] == [("take_profit", ms(9))]
    # A at creation (current price = the tick VWAP), C at activation (price_open, candle time)
    assert checks == [(ms(0), True, 100.0, 0), (ms(5), True, 99.5, 0)]
    (snap,) = snapshots
    assert list(snap) == ["s1:BTCUSDT"]
    assert snap["s1:BTCUSDT"].open_timestamp == ms(5)  # execution time of the activation
    assert snap["s1:BTCUSDT"].signal == results[0].signal
    assert registry() == {}


def test_backtest_activation_refused_by_risk_drops_the_signal_silently() -> None:
    trace: list[Any] = []
    record(trace)
    bk.listen_signal_backtest(lambda r: trace.append((r.action, r.signal)))

    def refuse_at_activation(payload: Any) -> None:
        if payload.timestamp != payload.pending_signal.scheduled_at:
            raise ValueError("no entries now")

    bk.add_risk(
        "p",
        validations=[{"validate": refuse_at_activation, "note": "late"}],
        callbacks=risk_trace(trace),
    )
    market = Market().take_profit_at(8)
    market.bar(5, 100.0, 100.0, 99.4, 100.0)
    script = Script({0: bk.Signal("long", 101.0, 98.5, 60, price_open=99.5), 6: LONG})
    register(
        market,
        script,
        frame=(0, 10),
        risk_name="p",
        callbacks={"on_cancel": lambda *a: trace.append(("on_cancel",))},
    )

    results = run()

    names = [t[0] for t in trace]
    # [deviation] 60 §3.4: no result, no cancellation, no listen_error for the dropped row
    assert names == [
        "on_allowed",  # check A at creation
        "scheduled",
        "validation",  # check C at the activating candle of 00:05
        "risk",
        "on_rejected",
        "on_allowed",  # the next signal, asked at 00:06
        "opened",
        "closed",
        "idle",
        "idle",
    ]
    scheduled_row = trace[1][1]
    contract = trace[3][1]
    assert contract.pending_signal == scheduled_row
    assert (contract.timestamp, contract.current_price, contract.comment) == (ms(5), 99.5, "late")
    # the loop resumes at the activating candle + 1 minute: get_signal is next asked at 6
    assert script.calls == [0, 6, 9, 10]
    assert [(r.signal.pending_at, r.close_timestamp) for r in results] == [(ms(6), ms(8))]


def test_live_registry_is_untouched_by_a_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the live registry is persisted under ./dump
    seen: list[int] = []
    bk.add_risk("p", validations=[lambda payload: seen.append(payload.active_position_count)])
    live = risk_client(current(), "p", backtest=False)
    asyncio.run(live.add(row(strategy="other"), ms(-5)))
    register(Market().take_profit_at(2), Script({0: LONG}), frame=(0, 3), risk_name="p")

    results = run()

    assert len(results) == 1
    assert seen == [0]  # the backtest registry started empty and never saw the live entry
    assert list(registry("p", backtest=False)) == ["other:BTCUSDT"]
    assert current().risk_clients[("p", False)] is live


def test_a_run_starts_its_profiles_empty() -> None:
    seen: list[int] = []
    bk.add_risk("p", validations=[lambda payload: seen.append(payload.active_position_count)])
    stale = risk_client(current(), "p", backtest=True)
    asyncio.run(stale.add(row(strategy="ghost"), ms(-5)))
    register(Market().take_profit_at(2), Script({0: LONG}), frame=(0, 3), risk_name="p")

    run()

    assert seen == [0]  # 60 §4.4: Backtest.run drops the backtest registry of its profiles
    assert registry() == {}


# -- two strategies sharing a profile (60 §4, §4.4 caveat, §6) ------------------------------


def run_pair(a_risk: str, b_risk: str) -> dict[str, Any]:
    """Strategy A opens at minute 0 and closes by take profit at 10; strategy B asks for a
    signal at minute 0 while A's position is open (A is held inside `on_open`, after the risk
    add); B's later attempts wait until A has closed, and B wants a position only at minutes
    0 and 1. Both runs are started before either opens, so the profile reset at run start
    wipes nothing that matters (60 §4.4)."""
    out: dict[str, Any] = {"checks": [], "risk": [], "validation": [], "closed": {}}

    def keep(payload: Any) -> None:
        out["checks"].append(
            (
                payload.strategy_name,
                payload.timestamp,
                payload.active_position_count,
                [
                    (
                        p.strategy_name,
                        p.exchange_name,
                        p.signal.symbol,
                        p.signal.id,
                        p.open_timestamp,
                    )
                    for p in payload.active_positions
                ],
            )
        )

    async def main() -> None:
        a_opened, b_checked, a_closed = asyncio.Event(), asyncio.Event(), asyncio.Event()

        def b_done(symbol: str, args: Any) -> None:
            if args.strategy_name == "B":
                b_checked.set()

        callbacks = {"on_rejected": b_done, "on_allowed": b_done}

        def one_at_a_time(payload: Any) -> None:
            if payload.active_position_count:
                raise ValueError(f"{payload.active_position_count} open")

        for name in sorted({a_risk, b_risk}):
            if name.startswith("max"):
                bk.add_risk(
                    name, validations=[keep], max_concurrent_positions=1, callbacks=callbacks
                )
            else:
                rules = [keep, {"validate": one_at_a_time, "note": "one position at a time"}]
                bk.add_risk(name, validations=rules, callbacks=callbacks)

        async def a_on_open(symbol: str, r: Any, price: float, bt: bool) -> None:
            a_opened.set()
            await asyncio.wait_for(b_checked.wait(), 5)

        def a_signal(symbol: str, when: datetime) -> Any:
            return LONG if minute_of(when) == 0 else None

        async def b_signal(symbol: str, when: datetime) -> Any:
            if minute_of(when) == 0:
                await asyncio.wait_for(a_opened.wait(), 5)
            else:
                await asyncio.wait_for(a_closed.wait(), 5)
            return LONG if minute_of(when) <= 1 else None

        def on_result(r: Any) -> None:
            if r.action == "closed":
                out["closed"].setdefault(r.strategy_name, []).append(r)
                if r.strategy_name == "A":
                    a_closed.set()

        bk.listen_signal_backtest(on_result)
        bk.listen_risk(out["risk"].append)
        bk.listen_validation(out["validation"].append)
        bk.add_exchange("ex", get_candles=Market().take_profit_at(10).get_candles)
        bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=12))
        bk.add_strategy("A", "1m", a_signal, risk_name=a_risk, callbacks={"on_open": a_on_open})
        bk.add_strategy("B", "1m", b_signal, risk_name=b_risk)
        run_a = bk.Backtest.background(
            SYMBOL, strategy_name="A", exchange_name="ex", frame_name="f"
        )
        run_b = bk.Backtest.background(
            SYMBOL, strategy_name="B", exchange_name="ex", frame_name="f"
        )
        await asyncio.wait_for(asyncio.gather(run_a.task, run_b.task), 20)

    asyncio.run(main())
    return out


def test_two_strategies_share_a_profile_registry() -> None:
    out = run_pair("shared", "shared")

    (a_closed,) = out["closed"]["A"]
    a_row = a_closed.signal
    # B's first check sees A's open position: signal.symbol and open_timestamp are usable
    # (60 §4.1 [deviation]); B is rejected while A is open and accepted after A closed
    assert out["checks"] == [
        ("A", ms(0), 0, []),
        ("B", ms(0), 1, [("A", "ex", SYMBOL, a_row.id, ms(0))]),
        ("B", ms(1), 0, []),
    ]
    (contract,) = out["risk"]
    assert (contract.strategy_name, contract.comment, contract.active_position_count) == (
        "B",
        "one position at a time",
        1,
    )
    assert [str(e) for e in out["validation"]] == ["1 open"]
    assert [r.signal.pending_at for r in out["closed"]["B"]] == [ms(1)]


def test_max_concurrent_positions_counts_other_strategies() -> None:
    out = run_pair("max-one", "max-one")

    a_row = out["closed"]["A"][0].signal
    assert out["checks"] == [
        ("A", ms(0), 0, []),
        ("B", ms(0), 1, [("A", "ex", SYMBOL, a_row.id, ms(0))]),
        ("B", ms(1), 0, []),
    ]
    (contract,) = out["risk"]
    assert (contract.strategy_name, contract.comment, contract.active_position_count) == (
        "B",
        "max_concurrent_positions (1) reached",
        1,
    )
    assert out["validation"] == []  # nothing raised: no validation event (60 §6)
    assert [r.signal.pending_at for r in out["closed"]["B"]] == [ms(1)]


def test_profiles_are_isolated_from_each_other() -> None:
    out = run_pair("max-a", "max-b")

    assert out["checks"] == [("A", ms(0), 0, []), ("B", ms(0), 0, [])]
    assert out["risk"] == []
    assert [r.signal.pending_at for r in out["closed"]["B"]] == [ms(0)]


# -- RiskClient / RiskGate directly (60 §3.3, §4, §6) ---------------------------------------


def test_max_concurrent_positions_rejects_at_the_limit_without_validation_event() -> None:
    trace: list[Any] = []
    record(trace)
    bk.add_risk(
        "p",
        validations=[lambda payload: trace.append(("validate", payload.active_position_count))],
        max_concurrent_positions=2,
        callbacks=risk_trace(trace),
    )
    client = risk_client(current(), "p", backtest=True)
    r1, r2, r3 = row("a", sid="1"), row("b", sid="2"), row("c", sid="3", minute=7)

    async def checks() -> list[bool]:
        verdicts = [await client.check(args_for(r1))]
        await client.add(r1, ms(1))
        verdicts.append(await client.check(args_for(r2)))
        await client.add(r2, ms(2))
        verdicts.append(await client.check(args_for(r3, price=99.0, minute=7)))
        await client.remove(r1)
        verdicts.append(await client.check(args_for(r3, price=99.0, minute=7)))
        return verdicts

    assert asyncio.run(checks()) == [True, True, False, True]
    assert [t[0] for t in trace] == [
        "validate",
        "on_allowed",
        "validate",
        "on_allowed",
        "validate",  # the limit is evaluated after the validations
        "risk",
        "on_rejected",
        "validate",
        "on_allowed",
    ]
    assert [t[1] for t in trace if t[0] == "validate"] == [0, 1, 2, 1]
    contract = trace[5][1]
    assert contract == bk.RiskContract(
        symbol=SYMBOL,
        pending_signal=r3,
        strategy_name="c",
        exchange_name="ex",
        current_price=99.0,
        active_position_count=2,
        comment="max_concurrent_positions (2) reached",
        timestamp=ms(7),
        backtest=True,
    )


def test_a_failing_validation_wins_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the live registry is persisted under ./dump
    trace: list[Any] = []
    record(trace)
    bk.add_risk("p", validations=[{"validate": fail(), "note": "mine"}], max_concurrent_positions=1)
    client = risk_client(current(), "p", backtest=False)

    async def check() -> bool:
        await client.add(row("a"), ms(0))
        return await client.check(args_for(row("b")))

    assert asyncio.run(check()) is False
    assert [t[0] for t in trace] == ["validation", "risk"]
    assert (trace[1][1].comment, trace[1][1].backtest) == ("mine", False)


def test_registry_entries_keyed_by_strategy_and_symbol_in_insertion_order() -> None:
    seen: list[Any] = []
    bk.add_risk("p", validations=[seen.append])
    bk.add_risk("q", validations=[seen.append])
    runtime = current()
    client = risk_client(runtime, "p", backtest=True)
    assert risk_client(runtime, "p", backtest=True) is client
    assert risk_client(runtime, "p", backtest=False) is not client
    gate = risk_gate(runtime, ("p", "q"), backtest=True)
    assert gate is not None and risk_gate(runtime, (), backtest=True) is None

    first, second = row("b", sid="1"), row("a", "ETHUSDT", sid="2")
    replaced = row("b", sid="3")  # same strategy and symbol: overwrites the entry (60 §4.1)

    async def fill_and_check() -> bool:
        await gate.add(first, ms(3))
        await gate.add(second, ms(4))
        await client.add(replaced, ms(5))
        await client.remove(row("zzz"))  # removing a missing key is a no-op
        return await gate.check(args_for(row("c")))

    assert asyncio.run(fill_and_check()) is True
    p_payload, q_payload = seen
    assert p_payload.active_position_count == 2
    assert [
        (p.strategy_name, p.signal.id, p.open_timestamp) for p in p_payload.active_positions
    ] == [
        ("b", "3", ms(5)),
        ("a", "2", ms(4)),
    ]
    assert [(p.signal.id, p.open_timestamp) for p in q_payload.active_positions] == [
        ("1", ms(3)),
        ("2", ms(4)),
    ]
    assert list(client.positions) == ["b:BTCUSDT", "a:ETHUSDT"]
    assert risk_client(runtime, "p", backtest=False).positions == {}
    asyncio.run(gate.remove(second))
    assert list(client.positions) == ["b:BTCUSDT"]
    assert list(risk_client(runtime, "q", backtest=True).positions) == ["b:BTCUSDT"]


def test_constant_thresholds() -> None:
    assert (
        bk.Constant.TP_LEVEL1,
        bk.Constant.TP_LEVEL2,
        bk.Constant.TP_LEVEL3,
        bk.Constant.SL_LEVEL1,
        bk.Constant.SL_LEVEL2,
    ) == (30, 60, 90, 40, 80)
