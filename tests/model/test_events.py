"""Tests for model/events.py: DoneContract, ProgressBacktestContract, PerformanceContract."""

from __future__ import annotations

import dataclasses
import json

import pytest

from backtest_kit.model.events import DoneContract, PerformanceContract, ProgressBacktestContract


def test_done_contract_defaults_and_keys() -> None:
    done = DoneContract("ex", "st", True, "BTCUSDT")
    assert done.walker_name is None and done.stopped is False
    d = done.to_dict()
    assert list(d) == [
        "exchange_name",
        "strategy_name",
        "backtest",
        "symbol",
        "walker_name",
        "stopped",
    ]
    assert json.loads(json.dumps(d)) == d
    walker = DoneContract("ex", "w", True, "BTCUSDT", walker_name="w", stopped=True)
    assert walker.to_dict()["walker_name"] == "w" and walker.to_dict()["stopped"] is True


def test_progress_contract_keys() -> None:
    p = ProgressBacktestContract("ex", "st", "BTCUSDT", 10, 5, 0.5)
    d = p.to_dict()
    assert d == {
        "exchange_name": "ex",
        "strategy_name": "st",
        "symbol": "BTCUSDT",
        "total_frames": 10,
        "processed_frames": 5,
        "progress": 0.5,
    }
    assert list(d) == list(d.keys()) and json.dumps(d)


def test_performance_contract_keys() -> None:
    perf = PerformanceContract(
        1_704_067_200_000, None, "backtest_total", 12.5, "st", "ex", "BTCUSDT", True
    )
    d = perf.to_dict()
    assert list(d) == [
        "timestamp",
        "previous_timestamp",
        "metric_type",
        "duration",
        "strategy_name",
        "exchange_name",
        "symbol",
        "backtest",
    ]
    assert d["previous_timestamp"] is None
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(
    "record",
    [
        DoneContract("ex", "st", False, "BTCUSDT"),
        ProgressBacktestContract("ex", "st", "BTCUSDT", 0, 0, 0.0),
        PerformanceContract(1, 0, "live_tick", 1.0, "st", "ex", "BTCUSDT", False),
    ],
)
def test_events_are_frozen_and_slotted(record: object) -> None:
    assert not hasattr(record, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.symbol = "x"  # type: ignore[attr-defined]
    assert [f.name for f in dataclasses.fields(record)] == list(record.to_dict())  # type: ignore[arg-type,attr-defined]
