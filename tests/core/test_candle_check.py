"""Tests for core/candle_check.py: return forms, rules 1-8 of 50 §3 and the anomaly filter (§4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtest_kit.core.candle_check import check_anomaly, describe_request, normalize_response
from backtest_kit.errors import ExchangeError
from backtest_kit.model.candles import FIELDS, Candle, Candles

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
H = 3_600_000
PREFIX = "exchange 'bn': get_candles('BTCUSDT', '1m', since=2024-01-01T00:00:00Z, limit=5): "
FAR_FUTURE = T0 + 365 * 24 * H

Row = list[Any]


def rows(n: int = 5, start: int = T0, step: int = M) -> list[Row]:
    return [
        [start + i * step, 30000.0 + i, 30100.0 + i, 29900.0 + i, 30050.0 + i, 1.5 + i]
        for i in range(n)
    ]


def normalize(raw: object, **overrides: Any) -> Candles:
    kwargs: dict[str, Any] = {
        "exchange_name": "bn",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "since": T0,
        "limit": 5,
        "now_ms": FAR_FUTURE,
        "anomaly_factor": 1000,
        "min_candles_for_median": 5,
    }
    kwargs.update(overrides)
    return normalize_response(raw, **kwargs)


def fails(raw: object, **overrides: Any) -> str:
    with pytest.raises(ExchangeError) as info:
        normalize(raw, **overrides)
    return str(info.value)


def expected(n: int = 5) -> Candles:
    table = rows(n)
    return Candles(**{f: [r[j] for r in table] for j, f in enumerate(FIELDS)})


def frame(table: list[Row]) -> pd.DataFrame:
    return pd.DataFrame(table, columns=list(FIELDS))


def structured(table: list[Row]) -> np.ndarray:
    dtype = [("timestamp", "i8")] + [(f, "f8") for f in FIELDS[1:]]
    return np.array([tuple(r) for r in table], dtype=dtype)


def utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


# -- describe_request -------------------------------------------------------------------------


def test_describe_request() -> None:
    assert describe_request("bn", "BTCUSDT", "1m", T0, 5) == PREFIX[:-2]


# -- accepted return values -------------------------------------------------------------------


def _dicts(table: list[Row]) -> object:
    return [{**dict(zip(FIELDS, r, strict=True)), "extra": "ignored"} for r in table]


def _datetime_index(table: list[Row], tz: str | None) -> pd.DataFrame:
    df = frame(table)
    index = pd.to_datetime(df["timestamp"], unit="ms")
    if tz is not None:
        index = index.dt.tz_localize("UTC").dt.tz_convert(tz)
    return df.drop(columns="timestamp").set_index(pd.DatetimeIndex(index))


FORMS: dict[str, Callable[[list[Row]], object]] = {
    "dicts": _dicts,
    "lists": lambda t: t,
    "tuples": lambda t: tuple(tuple(r) for r in t),
    "Candle": lambda t: [Candle(*r) for r in t],
    "Candles": lambda t: Candles(**{f: [r[j] for r in t] for j, f in enumerate(FIELDS)}),
    "structured": structured,
    "2-D array": lambda t: np.array(t, dtype=np.float64),
    "DataFrame": frame,
    "DataFrame, naive DatetimeIndex": lambda t: _datetime_index(t, None),
    "DataFrame, tz DatetimeIndex": lambda t: _datetime_index(t, "America/New_York"),
    "DataFrame, tz timestamp column": lambda t: frame(t).assign(
        timestamp=pd.to_datetime(frame(t)["timestamp"], unit="ms", utc=True).dt.tz_convert(
            "Asia/Tokyo"
        )
    ),
    "DataFrame, naive datetime64 column": lambda t: frame(t).assign(
        timestamp=pd.to_datetime(frame(t)["timestamp"], unit="ms")
    ),
    "aware datetimes": lambda t: [[utc(r[0]), *r[1:]] for r in t],
    "naive datetimes": lambda t: [[utc(r[0]).replace(tzinfo=None), *r[1:]] for r in t],
    "pandas Timestamps": lambda t: [[pd.Timestamp(r[0], unit="ms", tz="UTC"), *r[1:]] for r in t],
    "datetime64": lambda t: [[np.datetime64(r[0], "ms"), *r[1:]] for r in t],
    "datetime64[ns]": lambda t: [[np.datetime64(r[0] * 1_000_000, "ns"), *r[1:]] for r in t],
    "integral floats": lambda t: [[float(r[0]), *r[1:]] for r in t],
    "numpy scalars": lambda t: [
        [np.int64(r[0]), np.float32(r[1]), np.float64(r[2]), np.float64(r[3]), r[4], r[5]]
        for r in t
    ],
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_identical_candles(form: str) -> None:
    table = rows()
    if form == "numpy scalars":
        table = [[r[0], 30000.0, *r[2:]] for r in table]  # exactly representable as float32
    result = normalize(FORMS[form](table))
    want = Candles(**{f: [r[j] for r in table] for j, f in enumerate(FIELDS)})
    assert result == want
    assert result.timestamp.dtype == np.int64
    for field in FIELDS:
        column = getattr(result, field)
        assert not column.flags.writeable
        assert column.dtype == (np.int64 if field == "timestamp" else np.float64)


def test_integer_prices_are_numbers() -> None:
    table = [[T0 + i * M, 100, 110, 90, 105, 0] for i in range(5)]
    assert normalize(table).close.tolist() == [105.0] * 5


@pytest.mark.parametrize(
    "raw",
    [[], (), pd.DataFrame(), frame([]), structured([]), Candles.empty(), np.empty((0, 6))],
    ids=["list", "tuple", "bare frame", "frame", "structured", "Candles", "2-D array"],
)
def test_empty_responses_are_valid(raw: object) -> None:
    assert len(normalize(raw)) == 0


def test_candles_in_range_are_returned_as_given() -> None:
    given = expected()
    assert normalize(given) is given


def test_result_does_not_share_memory_with_the_users_frame() -> None:
    df = frame(rows())
    result = normalize(df)
    df.loc[0, "open"] = 1.0
    assert result.open[0] == 30000.0


# -- rule 8: the window and the closed-candle cut --------------------------------------------


def test_out_of_range_candles_are_dropped() -> None:
    table = [[T0 - M, 1.0, 1.0, 1.0, 1.0, 1.0], *rows(), [T0 + 5 * M, 1.0, 1.0, 1.0, 1.0, 1.0]]
    for form in ("lists", "Candles", "DataFrame", "structured"):
        assert normalize(FORMS[form](table)) == expected(), form


def test_candles_not_closed_at_now_are_dropped() -> None:
    # a candle opening at t is closed at now iff t + I <= now: now = 00:03 keeps 00:00-00:02
    result = normalize(rows(), now_ms=T0 + 3 * M)
    assert result.timestamp.tolist() == [T0, T0 + M, T0 + 2 * M]
    assert len(normalize(rows(), now_ms=T0 + M - 1)) == 0


@pytest.mark.parametrize(
    ("bad", "now_ms"),
    [
        ([T0 + 7 * M, float("nan"), 1.0, 1.0, 1.0, 1.0], FAR_FUTURE),
        ([T0 + 7 * M, "30000.5", 1.0, 1.0, 1.0, 1.0], FAR_FUTURE),
        ([T0 + 7 * M, 2.0, 1.0, 3.0, 2.0, 1.0], FAR_FUTURE),
        ([T0 + 7 * M, 0.0, 1.0, 1.0, 1.0, -1.0], FAR_FUTURE),
        ([T0 + 7 * M + 1, 1.0, 1.0, 1.0, 1.0, 1.0], FAR_FUTURE),
        ([T0 - M, 0.001, 0.001, 0.001, 0.001, 1.0], FAR_FUTURE),  # an anomaly in the window
        ([T0 + 4 * M, 30004.0, 30104.0, 29904.0, 30054.0, 5.5], T0 + 4 * M),  # not closed yet
    ],
    ids=["nan", "str", "high<low", "<=0", "unaligned", "anomaly", "duplicate, not closed"],
)
def test_a_bad_candle_outside_the_window_does_not_fail(bad: Row, now_ms: int) -> None:
    table = [bad, *rows()] if bad[0] < T0 else [*rows(), bad]
    closed = min(5, (now_ms - T0) // M)
    assert normalize(table, now_ms=now_ms) == expected()[:closed]


def test_candle_index_is_the_index_in_the_response() -> None:
    table = [[T0 - 2 * M, 1.0, 1.0, 1.0, 1.0, 1.0], [T0 - M, 1.0, 1.0, 1.0, 1.0, 1.0], *rows()]
    table[4][2] = 29000.0  # candle[4] (00:02) high < low
    message = fails(table)
    assert message.endswith("candle[4] (2024-01-01T00:02:00Z) high 29000.0 < low 29902.0")
    assert fails(frame(table)) == message
    assert fails(FORMS["Candles"](table)) == message


# -- rule 1: the form and the shape ------------------------------------------------------------


def test_none_result() -> None:
    assert fails(None) == PREFIX + "returned None; return [] when there is no data"


@pytest.mark.parametrize("raw", [{"timestamp": [T0]}, "candles", 42, pd.Series([1.0])])
def test_result_of_an_unknown_form(raw: object) -> None:
    message = fails(raw)
    assert message.startswith(PREFIX + f"returned {type(raw).__name__}; expected a list of")


def test_row_with_five_values() -> None:
    table = rows()
    table[2] = table[2][:5]
    assert fails(table) == PREFIX + "candle[2] has 5 values, expected 6"


def test_row_missing_a_field() -> None:
    table: list[Any] = [dict(zip(FIELDS, r, strict=True)) for r in rows()]
    del table[3]["volume"]
    assert fails(table) == PREFIX + "candle[3] misses 'volume'"


@pytest.mark.parametrize("row", [42, "abcdef", None])
def test_row_that_is_no_candle(row: object) -> None:
    table: list[Any] = [*rows(), row]
    assert fails(table).startswith(PREFIX + "candle[5] must be a dict, a Candle or a 6-item")


def test_shape_is_checked_on_every_row_and_before_other_rules() -> None:
    table: list[Any] = [*rows(), [T0 + 90 * M, 1.0]]
    table[0][1] = "30000.5"  # a rule 2 failure on an earlier row loses to rule 1
    assert fails(table) == PREFIX + "candle[5] has 2 values, expected 6"


def test_frame_and_structured_array_missing_a_column() -> None:
    assert fails(frame(rows()).drop(columns="volume")) == (
        PREFIX + "DataFrame misses column 'volume'"
    )
    assert fails(frame(rows()).drop(columns="timestamp")) == (
        PREFIX + "DataFrame misses column 'timestamp' (or a DatetimeIndex)"
    )
    array = structured(rows())
    trimmed = array[["timestamp", "open", "high", "low", "close"]]
    assert fails(trimmed) == PREFIX + "structured array misses field 'volume'"
    assert fails(np.array(rows())[:, :5]) == PREFIX + "candle[0] has 5 values, expected 6"


# -- rule 2: non-numeric values ----------------------------------------------------------------


def test_string_price() -> None:
    table: list[Any] = rows()
    table[2][1] = "30000.5"
    assert fails(table) == PREFIX + "candle[2].open must be a number, got str '30000.5'"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "bool True"), (None, "None"), (np.bool_(False), "bool False")],
)
def test_bool_and_none_are_not_numbers(value: object, shown: str) -> None:
    table: list[Any] = rows()
    table[1][5] = value
    assert fails(table) == PREFIX + f"candle[1].volume must be a number, got {shown}"


def test_non_numeric_frame_columns() -> None:
    df = frame(rows()).astype({"high": object})
    df.loc[3, "high"] = "x"
    assert fails(df) == PREFIX + "candle[3].high must be a number, got str 'x'"
    df = frame(rows()).assign(close=[str(v) for v in frame(rows())["close"]])
    assert fails(df) == PREFIX + "candle[0].close must be a number, got str '30050.0'"
    df = frame(rows()).assign(volume=True)
    assert fails(df) == PREFIX + "candle[0].volume must be a number, got bool True"


def test_rule_2_reports_the_lowest_row_across_fields() -> None:
    df = frame(rows()).astype({"open": object, "low": object})
    df.loc[4, "open"] = "late"
    df.loc[1, "low"] = "early"
    assert fails(df) == PREFIX + "candle[1].low must be a number, got str 'early'"


def test_non_numeric_value_in_a_dropped_row_of_a_frame() -> None:
    df = frame([*rows(), [T0 + 9 * M, 1.0, 1.0, 1.0, 1.0, 1.0]]).astype({"open": object})
    df.loc[5, "open"] = "ignored"
    assert normalize(df) == expected()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2024-01-01", "must be int ms, a whole float, a datetime or a numpy datetime64, got str"),
        (T0 + 0.5, "must be a whole number of ms, got float 1704067200000.5"),
        (float("nan"), "is NaN"),
        (True, "must be int ms, a whole float, a datetime or a numpy datetime64, got bool True"),
        (np.datetime64("NaT"), "is NaT"),
    ],
)
def test_unreadable_timestamp_fails_on_any_row(value: object, problem: str) -> None:
    table: list[Any] = [*rows(), [value, 1.0, 1.0, 1.0, 1.0, 1.0]]
    assert fails(table).startswith(PREFIX + f"candle[5].timestamp {problem}")


def test_unreadable_timestamp_in_a_float_column() -> None:
    array = np.array(rows(), dtype=np.float64)
    array[3, 0] += 0.5
    assert fails(array) == (
        PREFIX + "candle[3].timestamp must be a whole number of ms, got float 1704067380000.5"
    )


# -- rules 3-7 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["lists", "Candles", "DataFrame", "structured"])
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("high", float("nan"), "high is NaN"),
        ("volume", float("inf"), "volume is inf"),
        ("low", float("-inf"), "low is -inf"),
        ("open", 0.0, "open 0.0 <= 0"),
        ("close", -5.0, "close -5.0 <= 0"),
        ("volume", -1.0, "volume -1.0 < 0"),
        ("high", 29000.0, "high 29000.0 < low 29902.0"),
        ("open", 31000.0, "open 31000.0 outside [low 29902.0, high 30102.0]"),
        ("close", 29000.5, "close 29000.5 outside [low 29902.0, high 30102.0]"),
    ],
)
def test_bad_values_name_candle_and_field(
    field: str, value: float, problem: str, form: str
) -> None:
    table = rows()
    table[2][FIELDS.index(field)] = value
    assert fails(FORMS[form](table)) == PREFIX + f"candle[2] (2024-01-01T00:02:00Z) {problem}"


def test_spec_example_high_below_low() -> None:
    table = rows()
    table[2] = [T0 + 2 * M, 30150.0, 30100.0, 30200.0, 30150.0, 1.0]
    assert fails(table) == (
        "exchange 'bn': get_candles('BTCUSDT', '1m', since=2024-01-01T00:00:00Z, limit=5): "
        "candle[2] (2024-01-01T00:02:00Z) high 30100.0 < low 30200.0"
    )


def test_zero_volume_is_valid() -> None:
    table = rows()
    table[0][5] = 0.0
    assert normalize(table).volume[0] == 0.0


def test_timestamp_not_aligned_to_the_interval() -> None:
    table = rows(3, step=H)
    table[1][0] = T0 + 30 * M
    message = fails(table, interval="1h", limit=3)
    assert message.endswith("candle[1] (2024-01-01T00:30:00Z) not aligned to 1h")


@pytest.mark.parametrize("form", ["lists", "Candles", "DataFrame"])
def test_timestamps_not_sorted(form: str) -> None:
    table = rows()
    table[2], table[3] = table[3], table[2]
    assert fails(FORMS[form](table)) == (
        PREFIX + "candle[3] (2024-01-01T00:02:00Z) not sorted: it comes after "
        "candle[2] (2024-01-01T00:03:00Z)"
    )


@pytest.mark.parametrize("form", ["lists", "Candles", "DataFrame"])
def test_duplicate_timestamp(form: str) -> None:
    table = rows()
    table[3][0] = table[2][0]
    assert fails(FORMS[form](table)) == (
        PREFIX + "candle[3] (2024-01-01T00:02:00Z) duplicate timestamp of candle[2]"
    )


def test_rules_run_in_table_order_and_report_the_first_row() -> None:
    table = rows()
    table[1][2] = 29000.0  # rule 5 on candle[1]
    table[4][5] = float("nan")  # rule 3 on candle[4] wins: rules are checked in table order
    assert fails(table).endswith("candle[4] (2024-01-01T00:04:00Z) volume is NaN")
    table[3][1] = float("inf")
    assert fails(table).endswith("candle[3] (2024-01-01T00:03:00Z) open is inf")


# -- the anomaly filter (50 §4, §12) -----------------------------------------------------------


def flat(prices: list[float], start: int = T0) -> list[Row]:
    return [[start + i * M, p, p, p, p, 1.0] for i, p in enumerate(prices)]


def test_anomaly_upper_median() -> None:
    table = flat([30000.0] * 3 + [0.5] + [30000.0] * 2)
    tail = (
        "candle[3] has anomalously low price: OHLC [0.5, 0.5, 0.5, 0.5], "
        "reference 30000.0, threshold 30.0"
    )
    assert fails(table, limit=6) == PREFIX.replace("limit=5", "limit=6") + tail
    with pytest.raises(ExchangeError) as info:
        check_anomaly(FORMS["Candles"](table), factor=1000, min_candles_for_median=5)
    assert str(info.value) == tail


def test_anomaly_mean_below_min_candles_for_median() -> None:
    table = flat([0.05, 100.0, 100.0, 100.0])
    # ref = 1200.2 / 16 = 75.0125; threshold 75.0125 / 1000 prints as Python's repr
    tail = (
        "candle[0] has anomalously low price: OHLC [0.05, 0.05, 0.05, 0.05], "
        "reference 75.0125, threshold 0.07501250000000001"
    )
    assert fails(table, limit=4) == PREFIX.replace("limit=5", "limit=4") + tail
    with pytest.raises(ExchangeError) as info:
        check_anomaly(FORMS["Candles"](table), factor=1000, min_candles_for_median=5)
    assert str(info.value) == tail


def test_anomaly_median_of_one_candle_is_the_upper_one() -> None:
    candles = Candles(timestamp=[T0], open=[2.0], high=[4.0], low=[1.0], close=[3.0], volume=[1])
    with pytest.raises(ExchangeError) as info:
        check_anomaly(candles, factor=2, min_candles_for_median=1)
    assert str(info.value) == (
        "candle[0] has anomalously low price: OHLC [2.0, 4.0, 1.0, 3.0], "
        "reference 3.0, threshold 1.5"
    )


def test_anomaly_threshold_is_strict() -> None:
    table = flat([30000.0] * 6)
    table[4][3] = 30.0  # low exactly ref / 1000
    assert len(normalize(table, limit=6)) == 6


def test_anomaly_index_is_the_index_in_the_response() -> None:
    table = [[T0 - M, 1.0, 1.0, 1.0, 1.0, 1.0], *flat([30000.0] * 4 + [0.5])]
    assert fails(table).endswith(
        "candle[5] has anomalously low price: OHLC [0.5, 0.5, 0.5, 0.5], "
        "reference 30000.0, threshold 30.0"
    )


def test_anomaly_reference_of_zero() -> None:
    candles = Candles(timestamp=[T0], open=[0.0], high=[0.0], low=[0.0], close=[0.0], volume=[1])
    with pytest.raises(ExchangeError, match=r"^cannot calculate reference price \(all prices"):
        check_anomaly(candles, factor=1000, min_candles_for_median=5)


def test_anomaly_of_no_candles() -> None:
    check_anomaly(Candles.empty(), factor=1000, min_candles_for_median=5)


# -- a page of 50 000 candles ------------------------------------------------------------------


def test_large_columnar_pages_validate() -> None:
    n = 50_000
    ts = T0 + np.arange(n, dtype=np.int64) * M
    close = 30000.0 + np.sin(np.arange(n)) * 100
    candles = Candles(
        timestamp=ts, open=close, high=close + 50, low=close - 50, close=close, volume=np.ones(n)
    )
    result = normalize(candles, limit=n)
    assert result is candles
    page = normalize(candles.to_pandas(), limit=n, now_ms=int(ts[-1]))  # last one not closed
    assert len(page) == n - 1
    assert page == candles[: n - 1]
