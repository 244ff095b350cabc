"""Tests for `backtest_kit.config` (90 §2, §3, §5)."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator

import pytest

from backtest_kit import runtime
from backtest_kit.config import (
    CONFIG_KEYS,
    DEFAULT_CONFIG,
    Config,
    get_config,
    get_default_config,
    set_config,
    validate_config,
)
from backtest_kit.errors import ConfigError
from backtest_kit.logger import set_logger

EXPECTED_DEFAULTS: dict[str, object] = {
    "CC_SCHEDULE_AWAIT_MINUTES": 120,
    "CC_AVG_PRICE_CANDLES_COUNT": 5,
    "CC_PERCENT_SLIPPAGE": 0.1,
    "CC_PERCENT_FEE": 0.1,
    "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 0.5,
    "CC_MIN_STOPLOSS_DISTANCE_PERCENT": 0.5,
    "CC_MAX_STOPLOSS_DISTANCE_PERCENT": 20,
    "CC_MAX_SIGNAL_LIFETIME_MINUTES": 1440,
    "CC_MAX_SIGNAL_GENERATION_SECONDS": 180,
    "CC_GET_CANDLES_RETRY_COUNT": 3,
    "CC_GET_CANDLES_RETRY_DELAY_MS": 5000,
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR": 1000,
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN": 5,
    "CC_ACCOUNT_BALANCE": 10000.0,
    "CC_REPORT_SHOW_SIGNAL_NOTE": False,
    "CC_PERSIST_QUARANTINE_CORRUPT": False,
}

INTEGER_KEYS = [
    "CC_SCHEDULE_AWAIT_MINUTES",
    "CC_AVG_PRICE_CANDLES_COUNT",
    "CC_MAX_SIGNAL_LIFETIME_MINUTES",
    "CC_MAX_SIGNAL_GENERATION_SECONDS",
    "CC_GET_CANDLES_RETRY_COUNT",
    "CC_GET_CANDLES_RETRY_DELAY_MS",
    "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR",
    "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN",
]

# One violating value per rule of 90 §3 and the exact single problem line it produces.
VIOLATIONS: list[tuple[dict[str, object], str]] = [
    # 1
    (
        {"CC_PERCENT_SLIPPAGE": -1},
        "CC_PERCENT_SLIPPAGE must be a non-negative number, got -1",
    ),
    (
        {"CC_PERCENT_SLIPPAGE": math.nan},
        "CC_PERCENT_SLIPPAGE must be a non-negative number, got nan",
    ),
    # 2
    ({"CC_PERCENT_FEE": -1}, "CC_PERCENT_FEE must be a non-negative number, got -1"),
    ({"CC_PERCENT_FEE": math.inf}, "CC_PERCENT_FEE must be a non-negative number, got inf"),
    ({"CC_PERCENT_FEE": "0.1"}, "CC_PERCENT_FEE must be a non-negative number, got '0.1'"),
    # 3
    (
        {"CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 0},
        "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT must be a positive number, got 0",
    ),
    # 4
    (
        {"CC_MIN_TAKEPROFIT_DISTANCE_PERCENT": 0.39},
        "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT (0.39%) is too low to cover trading costs: "
        "required minimum 0.40% = slippage effect 0.20% (0.1% × 2 transactions) + "
        "fees 0.20% (0.1% × 2 transactions); every take-profit signal would be unprofitable",
    ),
    # 5
    (
        {"CC_MIN_STOPLOSS_DISTANCE_PERCENT": 0},
        "CC_MIN_STOPLOSS_DISTANCE_PERCENT must be a positive number, got 0",
    ),
    # 6
    (
        {"CC_MAX_STOPLOSS_DISTANCE_PERCENT": math.inf},
        "CC_MAX_STOPLOSS_DISTANCE_PERCENT must be a positive number, got inf",
    ),
    # 7
    (
        {"CC_MIN_STOPLOSS_DISTANCE_PERCENT": 20},
        "CC_MIN_STOPLOSS_DISTANCE_PERCENT (20%) must be less than "
        "CC_MAX_STOPLOSS_DISTANCE_PERCENT (20.0%)",
    ),
    # 8
    (
        {"CC_SCHEDULE_AWAIT_MINUTES": 0},
        "CC_SCHEDULE_AWAIT_MINUTES must be a positive integer, got 0",
    ),
    # 9
    (
        {"CC_MAX_SIGNAL_LIFETIME_MINUTES": 1.5},
        "CC_MAX_SIGNAL_LIFETIME_MINUTES must be a positive integer, got 1.5",
    ),
    # 10
    (
        {"CC_MAX_SIGNAL_GENERATION_SECONDS": -3},
        "CC_MAX_SIGNAL_GENERATION_SECONDS must be a positive integer, got -3",
    ),
    # 11
    (
        {"CC_AVG_PRICE_CANDLES_COUNT": 0},
        "CC_AVG_PRICE_CANDLES_COUNT must be a positive integer, got 0",
    ),
    # 12
    (
        {"CC_GET_CANDLES_RETRY_COUNT": 0},
        "CC_GET_CANDLES_RETRY_COUNT must be a positive integer, got 0",
    ),
    # 13
    (
        {"CC_GET_CANDLES_RETRY_DELAY_MS": -1},
        "CC_GET_CANDLES_RETRY_DELAY_MS must be a non-negative integer, got -1",
    ),
    # 14
    (
        {"CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR": 0},
        "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR must be a positive integer, got 0",
    ),
    # 15
    (
        {"CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN": math.inf},
        "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN must be a positive integer, got inf",
    ),
    # 16
    (
        {"CC_REPORT_SHOW_SIGNAL_NOTE": 1},
        "CC_REPORT_SHOW_SIGNAL_NOTE must be a boolean, got 1",
    ),
    # 17
    (
        {"CC_PERSIST_QUARANTINE_CORRUPT": "yes"},
        "CC_PERSIST_QUARANTINE_CORRUPT must be a boolean, got 'yes'",
    ),
    # balance: "float > 0" in 90 §2
    ({"CC_ACCOUNT_BALANCE": 0}, "CC_ACCOUNT_BALANCE must be a positive number, got 0"),
]


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    runtime.reset()
    yield
    runtime.reset()


def _message(problems: list[str]) -> str:
    lines = "\n".join(f"  {number}. {problem}" for number, problem in enumerate(problems, 1))
    return "GLOBAL_CONFIG validation failed:\n" + lines


# --- defaults -------------------------------------------------------------------------------


def test_defaults_equal_the_table() -> None:
    assert get_default_config().to_dict() == EXPECTED_DEFAULTS
    assert get_config() == DEFAULT_CONFIG
    assert tuple(EXPECTED_DEFAULTS) == CONFIG_KEYS


def test_default_types() -> None:
    config = get_default_config()
    for key in INTEGER_KEYS:
        assert type(getattr(config, key)) is int, key
    assert type(config.CC_MAX_STOPLOSS_DISTANCE_PERCENT) is float
    assert type(config.CC_ACCOUNT_BALANCE) is float
    assert config.CC_REPORT_SHOW_SIGNAL_NOTE is False
    assert config.CC_PERSIST_QUARANTINE_CORRUPT is False


def test_defaults_pass_validation() -> None:
    assert validate_config(DEFAULT_CONFIG) == []


def test_config_is_frozen() -> None:
    config = get_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.CC_PERCENT_FEE = 1.0  # type: ignore[misc]


def test_default_config_unchanged_after_set_config() -> None:
    set_config(CC_PERCENT_FEE=0.05, CC_AVG_PRICE_CANDLES_COUNT=10)
    assert get_default_config() == Config()
    assert get_default_config().CC_PERCENT_FEE == 0.1
    assert get_config().CC_PERCENT_FEE == 0.05


# --- set_config semantics -------------------------------------------------------------------


def test_set_config_merges_onto_current() -> None:
    set_config(CC_PERCENT_FEE=0.05)
    set_config({"CC_AVG_PRICE_CANDLES_COUNT": 10})
    config = get_config()
    assert config.CC_PERCENT_FEE == 0.05
    assert config.CC_AVG_PRICE_CANDLES_COUNT == 10
    assert config.CC_PERCENT_SLIPPAGE == 0.1


def test_set_config_mapping_and_keywords_together() -> None:
    set_config({"CC_PERCENT_FEE": 0.05}, CC_PERCENT_SLIPPAGE=0.05)
    assert (get_config().CC_PERCENT_FEE, get_config().CC_PERCENT_SLIPPAGE) == (0.05, 0.05)


def test_set_config_visible_through_runtime() -> None:
    set_config(CC_SCHEDULE_AWAIT_MINUTES=60)
    assert runtime.current().config.CC_SCHEDULE_AWAIT_MINUTES == 60


def test_reset_restores_defaults() -> None:
    set_config(CC_SCHEDULE_AWAIT_MINUTES=60)
    runtime.reset()
    assert get_config() == DEFAULT_CONFIG


def test_set_config_with_nothing_keeps_config() -> None:
    set_config()
    assert get_config() == DEFAULT_CONFIG


def test_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        set_config(CC_PERCENT_FEE=0.05, CC_NOT_A_KEY=1)
    message = str(caught.value)
    assert "'CC_NOT_A_KEY'" in message
    assert "valid keys are: CC_SCHEDULE_AWAIT_MINUTES, " in message
    assert all(key in message for key in CONFIG_KEYS)
    assert get_config() == DEFAULT_CONFIG


def test_unknown_key_rejected_even_when_unsafe() -> None:
    with pytest.raises(ConfigError, match="CC_TYPO"):
        set_config({"CC_TYPO": 1}, _unsafe=True)


# --- each rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "problem"), VIOLATIONS)
def test_each_rule_rejects_a_violating_value(values: dict[str, object], problem: str) -> None:
    set_config(CC_GET_CANDLES_RETRY_DELAY_MS=100)
    before = get_config()
    with pytest.raises(ConfigError) as caught:
        set_config(values)
    assert str(caught.value) == _message([problem])
    assert get_config() is before


@pytest.mark.parametrize(("values", "problem"), VIOLATIONS)
def test_unsafe_accepts_the_same_values(values: dict[str, object], problem: str) -> None:
    set_config(values, _unsafe=True)
    for key, value in values.items():
        stored = getattr(get_config(), key)
        assert stored == value or (stored != stored and value != value)  # nan


@pytest.mark.parametrize(("values", "problem"), VIOLATIONS)
def test_validate_config_returns_the_line(values: dict[str, object], problem: str) -> None:
    config = dataclasses.replace(DEFAULT_CONFIG, **values)  # type: ignore[arg-type]
    assert validate_config(config) == [problem]


def test_all_problems_listed_at_once_in_rule_order() -> None:
    with pytest.raises(ConfigError) as caught:
        set_config(
            CC_GET_CANDLES_RETRY_COUNT=0,
            CC_PERCENT_SLIPPAGE=-1,
            CC_MAX_STOPLOSS_DISTANCE_PERCENT=0.25,
            CC_REPORT_SHOW_SIGNAL_NOTE=None,
        )
    assert str(caught.value) == (
        "GLOBAL_CONFIG validation failed:\n"
        "  1. CC_PERCENT_SLIPPAGE must be a non-negative number, got -1\n"
        "  2. CC_MIN_STOPLOSS_DISTANCE_PERCENT (0.5%) must be less than "
        "CC_MAX_STOPLOSS_DISTANCE_PERCENT (0.25%)\n"
        "  3. CC_GET_CANDLES_RETRY_COUNT must be a positive integer, got 0\n"
        "  4. CC_REPORT_SHOW_SIGNAL_NOTE must be a boolean, got None"
    )
    assert get_config() == DEFAULT_CONFIG


def test_non_positive_max_stoploss_also_breaks_the_range_rule() -> None:
    assert validate_config(Config(CC_MAX_STOPLOSS_DISTANCE_PERCENT=0)) == [
        "CC_MAX_STOPLOSS_DISTANCE_PERCENT must be a positive number, got 0",
        "CC_MIN_STOPLOSS_DISTANCE_PERCENT (0.5%) must be less than "
        "CC_MAX_STOPLOSS_DISTANCE_PERCENT (0%)",
    ]


def test_failure_keeps_previous_config_including_valid_keys_of_the_same_call() -> None:
    set_config(CC_PERCENT_FEE=0.05, CC_SCHEDULE_AWAIT_MINUTES=30)
    before = get_config()
    with pytest.raises(ConfigError):
        set_config(CC_AVG_PRICE_CANDLES_COUNT=7, CC_SCHEDULE_AWAIT_MINUTES=0)
    assert get_config() is before
    assert get_config().CC_AVG_PRICE_CANDLES_COUNT == 5
    assert get_config().CC_SCHEDULE_AWAIT_MINUTES == 30


def test_validation_is_on_the_merged_config() -> None:
    # Lowering fees first makes a TP distance of 0.3 viable; slippage alone then breaks it.
    set_config(CC_PERCENT_FEE=0.0, CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.3)
    with pytest.raises(ConfigError, match=r"required minimum 0\.40%"):
        set_config(CC_PERCENT_SLIPPAGE=0.2)


def test_failure_is_logged_as_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backtest_kit"), pytest.raises(ConfigError):
        set_config(CC_GET_CANDLES_RETRY_COUNT=0)
    records = [r for r in caplog.records if r.name == "backtest_kit"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("config.set_config ")
    assert "CC_GET_CANDLES_RETRY_COUNT must be a positive integer, got 0" in (
        records[0].getMessage()
    )


def test_failure_reaches_the_user_logger() -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []

    class Recorder:
        def log(self, topic: str, *args: object) -> None:
            pass

        def debug(self, topic: str, *args: object) -> None:
            pass

        def info(self, topic: str, *args: object) -> None:
            pass

        def warn(self, topic: str, *args: object) -> None:
            calls.append((topic, args))

    set_logger(Recorder())
    with pytest.raises(ConfigError):
        set_config(CC_PERCENT_FEE=-1)
    assert len(calls) == 1
    topic, args = calls[0]
    assert topic == "config.set_config"
    assert args == (
        {
            "errors": ["CC_PERCENT_FEE must be a non-negative number, got -1"],
            "values": {"CC_PERCENT_FEE": -1},
        },
        {},
        {},
    )


def test_success_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="backtest_kit"):
        set_config(CC_PERCENT_FEE=0.05)
    assert [r for r in caplog.records if r.name == "backtest_kit"] == []


def test_raising_logger_does_not_mask_the_config_error() -> None:
    class Broken:
        def log(self, topic: str, *args: object) -> None:
            raise RuntimeError("logger down")

        debug = info = warn = log

    set_logger(Broken())
    with pytest.raises(ConfigError, match="GLOBAL_CONFIG validation failed:"):
        set_config(CC_PERCENT_FEE=-1)


# --- viability ------------------------------------------------------------------------------


def test_viability_equality_passes() -> None:
    set_config(CC_PERCENT_FEE=0.1, CC_PERCENT_SLIPPAGE=0.1, CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.4)
    assert get_config().CC_MIN_TAKEPROFIT_DISTANCE_PERCENT == 0.4


def test_viability_just_below_fails() -> None:
    with pytest.raises(ConfigError) as caught:
        set_config(
            CC_PERCENT_FEE=0.1, CC_PERCENT_SLIPPAGE=0.1, CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.39
        )
    assert "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT (0.39%) is too low" in str(caught.value)
    assert get_config() == DEFAULT_CONFIG


def test_viability_fee_02_makes_default_tp_fail_with_required_060() -> None:
    with pytest.raises(ConfigError) as caught:
        set_config(CC_PERCENT_FEE=0.2)
    assert str(caught.value) == _message(
        [
            "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT (0.5%) is too low to cover trading costs: "
            "required minimum 0.60% = slippage effect 0.20% (0.1% × 2 transactions) + "
            "fees 0.40% (0.2% × 2 transactions); every take-profit signal would be unprofitable"
        ]
    )


def test_viability_skipped_when_tp_rule_fails() -> None:
    assert validate_config(Config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=-0.1, CC_PERCENT_FEE=5)) == [
        "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT must be a positive number, got -0.1"
    ]


def test_viability_skipped_when_costs_are_not_numbers() -> None:
    assert validate_config(Config(CC_PERCENT_FEE=math.nan)) == [
        "CC_PERCENT_FEE must be a non-negative number, got nan"
    ]


def test_viability_rule_docstring_states_the_approximation() -> None:
    from backtest_kit import config as config_module

    doc = config_module._viability.__doc__ or ""
    assert "approximation" in doc
    assert "equality passes" in doc


# --- integers, booleans ---------------------------------------------------------------------


@pytest.mark.parametrize("key", INTEGER_KEYS)
def test_integral_float_accepted_and_stored_as_int(key: str) -> None:
    set_config({key: 5.0})
    value = getattr(get_config(), key)
    assert value == 5
    assert type(value) is int


def test_integral_float_stored_as_int_when_unsafe() -> None:
    set_config(CC_AVG_PRICE_CANDLES_COUNT=5.0, _unsafe=True)
    assert type(get_config().CC_AVG_PRICE_CANDLES_COUNT) is int


def test_int_for_float_key_stored_as_float() -> None:
    set_config(CC_MAX_STOPLOSS_DISTANCE_PERCENT=15, CC_ACCOUNT_BALANCE=500)
    assert type(get_config().CC_MAX_STOPLOSS_DISTANCE_PERCENT) is float
    assert get_config().CC_ACCOUNT_BALANCE == 500.0
    assert type(get_config().CC_ACCOUNT_BALANCE) is float


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("CC_PERCENT_FEE", "CC_PERCENT_FEE must be a non-negative number, got True"),
        (
            "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT",
            "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT must be a positive number, got True",
        ),
        (
            "CC_AVG_PRICE_CANDLES_COUNT",
            "CC_AVG_PRICE_CANDLES_COUNT must be a positive integer, got True",
        ),
        (
            "CC_GET_CANDLES_RETRY_DELAY_MS",
            "CC_GET_CANDLES_RETRY_DELAY_MS must be a non-negative integer, got True",
        ),
    ],
)
def test_bool_rejected_for_number_keys(key: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        set_config({key: True})
    assert str(caught.value) == _message([line])


def test_retry_count_zero_rejected_one_accepted() -> None:
    with pytest.raises(ConfigError, match="CC_GET_CANDLES_RETRY_COUNT must be a positive integer"):
        set_config(CC_GET_CANDLES_RETRY_COUNT=0)
    set_config(CC_GET_CANDLES_RETRY_COUNT=1)
    assert get_config().CC_GET_CANDLES_RETRY_COUNT == 1


def test_retry_delay_zero_accepted() -> None:
    set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)
    assert get_config().CC_GET_CANDLES_RETRY_DELAY_MS == 0


def test_zero_fee_and_slippage_accepted() -> None:
    set_config(CC_PERCENT_FEE=0, CC_PERCENT_SLIPPAGE=0.0)
    assert (get_config().CC_PERCENT_FEE, get_config().CC_PERCENT_SLIPPAGE) == (0.0, 0.0)


def test_quarantine_defaults_false_and_rejects_non_bool() -> None:
    assert get_config().CC_PERSIST_QUARANTINE_CORRUPT is False
    with pytest.raises(ConfigError, match="CC_PERSIST_QUARANTINE_CORRUPT must be a boolean"):
        set_config(CC_PERSIST_QUARANTINE_CORRUPT=0)
    set_config(CC_PERSIST_QUARANTINE_CORRUPT=True)
    assert get_config().CC_PERSIST_QUARANTINE_CORRUPT is True


def test_show_signal_note_accepts_bool() -> None:
    set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)
    assert get_config().CC_REPORT_SHOW_SIGNAL_NOTE is True


def test_to_dict_reflects_values() -> None:
    set_config(CC_PERCENT_FEE=0.05)
    data = get_config().to_dict()
    assert list(data) == list(CONFIG_KEYS)
    assert data["CC_PERCENT_FEE"] == 0.05


def test_viability_compares_the_decimal_values_typed() -> None:
    # 2 * 0.1 + 2 * 0.2 is 0.6000000000000001 in binary; a minimum of exactly 0.6 covers it
    set_config(CC_PERCENT_FEE=0.2, CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.6)
    assert get_config().CC_MIN_TAKEPROFIT_DISTANCE_PERCENT == 0.6
    with pytest.raises(ConfigError, match=r"required minimum 0\.60%"):
        set_config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.59)
