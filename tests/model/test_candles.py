"""Tests for model/candles.py: Candle and the columnar Candles batch (10 §2, §8, §10)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from backtest_kit.model.candles import FIELDS, Candle, Candles

T0 = 1_704_067_200_000
ROWS = [
    (T0 + i * 60_000, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0 * (i + 1)) for i in range(5)
]


def make() -> Candles:
    return Candles.from_records(ROWS)


def test_columns_dtypes_and_read_only() -> None:
    c = make()
    assert c.timestamp.dtype == np.int64
    for name in FIELDS[1:]:
        assert getattr(c, name).dtype == np.float64
    for name in FIELDS:
        column = getattr(c, name)
        assert column.flags.writeable is False
        with pytest.raises(ValueError):
            column[0] = 0


def test_constructor_copies_input() -> None:
    ts = np.array([T0, T0 + 60_000], dtype=np.int64)
    c = Candles(timestamp=ts, open=[1, 2], high=[1, 2], low=[1, 2], close=[1, 2], volume=[1, 2])
    ts[0] = 0
    assert c.timestamp[0] == T0
    assert c.open.dtype == np.float64


def test_unequal_lengths_rejected() -> None:
    with pytest.raises(ValueError):
        Candles(timestamp=[1, 2], open=[1], high=[1], low=[1], close=[1], volume=[1])


def test_len_and_empty() -> None:
    assert len(make()) == 5
    empty = Candles.empty()
    assert len(empty) == 0 and list(empty) == []
    assert empty.to_dict() == {f: [] for f in FIELDS}


def test_slice_shares_memory_and_stays_read_only() -> None:
    c = make()
    part = c[1:3]
    assert isinstance(part, Candles) and len(part) == 2
    for name in FIELDS:
        assert np.shares_memory(getattr(part, name), getattr(c, name))
        assert getattr(part, name).flags.writeable is False
    assert part.timestamp.tolist() == [ROWS[1][0], ROWS[2][0]]


def test_step_slice_and_boolean_mask() -> None:
    c = make()
    assert c[::2].timestamp.tolist() == [ROWS[0][0], ROWS[2][0], ROWS[4][0]]
    masked = c[c.close > 102.0]
    assert isinstance(masked, Candles)
    assert masked.close.tolist() == [102.5, 103.5, 104.5]
    assert masked.close.flags.writeable is False


def test_index_returns_candle_with_plain_python_values() -> None:
    c = make()
    last = c[-1]
    assert isinstance(last, Candle)
    assert type(last.timestamp) is int
    assert all(type(getattr(last, f)) is float for f in FIELDS[1:])
    assert last == Candle(*ROWS[-1])
    assert c[np.int64(0)] == Candle(*ROWS[0])


def test_iteration_oldest_first_yields_candles() -> None:
    candles = list(make())
    assert candles == [Candle(*r) for r in ROWS]
    assert all(type(x.timestamp) is int for x in candles)


def test_candle_is_frozen_and_to_dict() -> None:
    candle = Candle(*ROWS[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        candle.close = 1.0  # type: ignore[misc]
    d = candle.to_dict()
    assert list(d) == list(FIELDS)
    assert json.loads(json.dumps(d)) == d


def test_candles_is_immutable() -> None:
    c = make()
    with pytest.raises(AttributeError):
        c.close = np.zeros(5)


def test_from_records_all_inputs_give_equal_columns() -> None:
    from_tuples = Candles.from_records(ROWS)
    from_dicts = Candles.from_records([dict(zip(FIELDS, r, strict=True)) for r in ROWS])
    structured = np.array(
        ROWS,
        dtype=[("timestamp", "i8"), *[(f, "f8") for f in FIELDS[1:]]],
    )
    from_structured = Candles.from_records(structured)
    from_frame = Candles.from_records(pd.DataFrame(ROWS, columns=list(FIELDS)))
    from_candles = Candles.from_records([Candle(*r) for r in ROWS])
    for other in (from_dicts, from_structured, from_frame, from_candles):
        assert other == from_tuples
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(other, name), getattr(from_tuples, name))
            assert getattr(other, name).dtype == getattr(from_tuples, name).dtype


def test_from_records_datetime_timestamps() -> None:
    dt = datetime(2024, 1, 1, tzinfo=UTC)
    c = Candles.from_records([(dt, 1, 2, 0.5, 1.5, 3)])
    assert c.timestamp.tolist() == [T0]
    frame = pd.DataFrame(
        {"timestamp": pd.to_datetime([T0], unit="ms"), **{f: [1.0] for f in FIELDS[1:]}}
    )
    assert Candles.from_records(frame).timestamp.tolist() == [T0]


def test_from_records_keeps_order() -> None:
    reversed_rows = list(reversed(ROWS))
    assert Candles.from_records(reversed_rows).timestamp.tolist() == [r[0] for r in reversed_rows]


def test_to_dict_and_to_list_json_serialisable() -> None:
    c = make()
    d = c.to_dict()
    assert list(d) == list(FIELDS)
    assert json.loads(json.dumps(d)) == d
    assert all(type(v) is int for v in d["timestamp"])
    rows = c.to_list()
    assert json.loads(json.dumps(rows)) == rows
    assert rows[0] == Candle(*ROWS[0]).to_dict()


def test_to_pandas() -> None:
    frame = make().to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(FIELDS)
    assert len(frame) == 5
    assert frame["timestamp"].dtype == np.int64
    assert frame["close"].tolist() == [r[4] for r in ROWS]
    assert Candles.from_records(frame) == make()
