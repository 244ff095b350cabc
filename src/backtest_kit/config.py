"""Global configuration (90 §1–§3): the `CC_*` parameters, their validation and `set_config`.

Owns the frozen `Config` record, its defaults and the rules `set_config` enforces. It stores
nothing itself: the current configuration lives on the runtime (`runtime.current().config`),
so `bk.reset()` restores the defaults. Engines read values when they need them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard

from .errors import ConfigError


@dataclass(frozen=True, slots=True)
class Config:
    """The `CC_*` parameters of 90 §2, one attribute per key (units in the attribute name)."""

    CC_SCHEDULE_AWAIT_MINUTES: int = 120
    CC_AVG_PRICE_CANDLES_COUNT: int = 5
    CC_PERCENT_SLIPPAGE: float = 0.1
    CC_PERCENT_FEE: float = 0.1
    CC_MIN_TAKEPROFIT_DISTANCE_PERCENT: float = 0.5
    CC_MIN_STOPLOSS_DISTANCE_PERCENT: float = 0.5
    CC_MAX_STOPLOSS_DISTANCE_PERCENT: float = 20.0
    CC_MAX_SIGNAL_LIFETIME_MINUTES: int = 1440
    CC_MAX_SIGNAL_GENERATION_SECONDS: int = 180
    CC_GET_CANDLES_RETRY_COUNT: int = 3
    CC_GET_CANDLES_RETRY_DELAY_MS: int = 5000
    CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR: int = 1000
    CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN: int = 5
    CC_ACCOUNT_BALANCE: float = 10000.0
    CC_REPORT_SHOW_SIGNAL_NOTE: bool = False
    CC_PERSIST_QUARANTINE_CORRUPT: bool = False

    def to_dict(self) -> dict[str, object]:
        """Every key with its value, in table order."""
        return {key: getattr(self, key) for key in CONFIG_KEYS}


DEFAULT_CONFIG = Config()
CONFIG_KEYS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Config))

_INTEGER_KEYS: frozenset[str] = frozenset(
    field.name for field in dataclasses.fields(Config) if field.type in (int, "int")
)
_FLOAT_KEYS: frozenset[str] = frozenset(
    field.name for field in dataclasses.fields(Config) if field.type in (float, "float")
)


def _is_number(value: object) -> TypeGuard[float]:
    """A finite real number; `bool` is not a number here."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_integer(value: object) -> TypeGuard[float]:
    """JavaScript's `Number.isInteger`: an int (not bool) or an integral finite float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return _is_number(value) and float(value).is_integer()


def _non_negative_number(key: str, value: object) -> str | None:
    if _is_number(value) and value >= 0:
        return None
    return f"{key} must be a non-negative number, got {value!r}"


def _positive_number(key: str, value: object) -> str | None:
    if _is_number(value) and value > 0:
        return None
    return f"{key} must be a positive number, got {value!r}"


def _positive_integer(key: str, value: object) -> str | None:
    if _is_integer(value) and value > 0:
        return None
    return f"{key} must be a positive integer, got {value!r}"


def _non_negative_integer(key: str, value: object) -> str | None:
    if _is_integer(value) and value >= 0:
        return None
    return f"{key} must be a non-negative integer, got {value!r}"


def _boolean(key: str, value: object) -> str | None:
    if isinstance(value, bool):
        return None
    return f"{key} must be a boolean, got {value!r}"


def _viability(config: Config) -> str | None:
    """Economic viability: the minimum take-profit distance covers 2 × slippage + 2 × fee.

    Exact, with no margin: equality passes. This is an approximation: slippage compounds, so
    at equality a take-profit trade still nets slightly below zero (fee 0.1, slippage 0.1,
    TP distance 0.4 %: a long nets about -0.0006 %). The default 0.5 leaves a 0.1 point buffer.
    """
    take_profit = config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT
    slippage = config.CC_PERCENT_SLIPPAGE
    fee = config.CC_PERCENT_FEE
    # Only meaningful when all three are numbers; their own rules report them otherwise.
    if not (_is_number(take_profit) and take_profit > 0):
        return None
    if not (_is_number(slippage) and _is_number(fee)):
        return None
    slippage_effect = 2 * slippage
    fees_total = 2 * fee
    required = slippage_effect + fees_total
    # Compared on the decimal values the user typed: in binary 2 * 0.1 + 2 * 0.2 is
    # 0.6000000000000001, which would reject a minimum of exactly 0.6.
    exact = 2 * Decimal(repr(float(slippage))) + 2 * Decimal(repr(float(fee)))
    if Decimal(repr(float(take_profit))) >= exact:
        return None
    return (
        f"CC_MIN_TAKEPROFIT_DISTANCE_PERCENT ({take_profit!r}%) is too low to cover trading "
        f"costs: required minimum {required:.2f}% = slippage effect {slippage_effect:.2f}% "
        f"({slippage!r}% × 2 transactions) + fees {fees_total:.2f}% ({fee!r}% × 2 transactions); "
        "every take-profit signal would be unprofitable"
    )


def _stoploss_range(config: Config) -> str | None:
    low = config.CC_MIN_STOPLOSS_DISTANCE_PERCENT
    high = config.CC_MAX_STOPLOSS_DISTANCE_PERCENT
    if not (_is_number(low) and _is_number(high)) or low < high:
        return None
    return (
        f"CC_MIN_STOPLOSS_DISTANCE_PERCENT ({low!r}%) must be less than "
        f"CC_MAX_STOPLOSS_DISTANCE_PERCENT ({high!r}%)"
    )


def validate_config(config: Config) -> list[str]:
    """Check every rule of 90 §3 (plus `CC_ACCOUNT_BALANCE` > 0); one line per failure.

    An empty list means the configuration is valid. All rules are evaluated.
    """
    c = config
    checks = (
        _non_negative_number("CC_PERCENT_SLIPPAGE", c.CC_PERCENT_SLIPPAGE),
        _non_negative_number("CC_PERCENT_FEE", c.CC_PERCENT_FEE),
        _positive_number(
            "CC_MIN_TAKEPROFIT_DISTANCE_PERCENT", c.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT
        ),
        _viability(c),
        _positive_number("CC_MIN_STOPLOSS_DISTANCE_PERCENT", c.CC_MIN_STOPLOSS_DISTANCE_PERCENT),
        _positive_number("CC_MAX_STOPLOSS_DISTANCE_PERCENT", c.CC_MAX_STOPLOSS_DISTANCE_PERCENT),
        _stoploss_range(c),
        _positive_integer("CC_SCHEDULE_AWAIT_MINUTES", c.CC_SCHEDULE_AWAIT_MINUTES),
        _positive_integer("CC_MAX_SIGNAL_LIFETIME_MINUTES", c.CC_MAX_SIGNAL_LIFETIME_MINUTES),
        _positive_integer("CC_MAX_SIGNAL_GENERATION_SECONDS", c.CC_MAX_SIGNAL_GENERATION_SECONDS),
        _positive_integer("CC_AVG_PRICE_CANDLES_COUNT", c.CC_AVG_PRICE_CANDLES_COUNT),
        # [deviation] 90 §3 rule 12: the reference accepts 0 and then never fetches.
        _positive_integer("CC_GET_CANDLES_RETRY_COUNT", c.CC_GET_CANDLES_RETRY_COUNT),
        _non_negative_integer("CC_GET_CANDLES_RETRY_DELAY_MS", c.CC_GET_CANDLES_RETRY_DELAY_MS),
        _positive_integer(
            "CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR",
            c.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR,
        ),
        _positive_integer(
            "CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN", c.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN
        ),
        _boolean("CC_REPORT_SHOW_SIGNAL_NOTE", c.CC_REPORT_SHOW_SIGNAL_NOTE),
        _boolean("CC_PERSIST_QUARANTINE_CORRUPT", c.CC_PERSIST_QUARANTINE_CORRUPT),
        # 90 §2 types the balance "float > 0"; a zero or negative balance makes sizing nonsense.
        _positive_number("CC_ACCOUNT_BALANCE", c.CC_ACCOUNT_BALANCE),
    )
    return [problem for problem in checks if problem is not None]


def _normalise(key: str, value: object) -> object:
    """Integral floats of integer keys become `int`; ints of float keys become `float`."""
    if isinstance(value, bool):
        return value
    if key in _INTEGER_KEYS and _is_integer(value):
        return int(value)
    if key in _FLOAT_KEYS and _is_number(value):
        return float(value)
    return value


def set_config(
    values: Mapping[str, object] | None = None, /, *, _unsafe: bool = False, **kwargs: object
) -> None:
    """Merge `CC_*` values onto the current configuration, validated (90 §1).

    Keys not given keep their current value. On any rule failure nothing changes and a
    `ConfigError` lists every problem. `_unsafe=True` skips validation (test beds only).

        bk.set_config(CC_PERCENT_FEE=0.1, CC_PERCENT_SLIPPAGE=0.1)
        bk.set_config({"CC_AVG_PRICE_CANDLES_COUNT": 10})
    """
    from .runtime import current

    # Any: with `_unsafe=True` a value of any type may be stored.
    given: dict[str, Any] = dict(values) if values is not None else {}
    given.update(kwargs)
    # [deviation] 90 §1: the reference silently stores unknown keys.
    unknown = [key for key in given if key not in CONFIG_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s): {', '.join(map(repr, unknown))}; "
            f"valid keys are: {', '.join(CONFIG_KEYS)}"
        )

    runtime = current()
    # Validate the values exactly as given, so messages quote them unchanged.
    candidate = dataclasses.replace(runtime.config, **given)
    if not _unsafe:
        problems = validate_config(candidate)
        if problems:
            message = "GLOBAL_CONFIG validation failed:\n" + "\n".join(
                f"  {number}. {problem}" for number, problem in enumerate(problems, 1)
            )
            runtime.logger.alert("config.set_config", {"errors": problems, "values": given})
            raise ConfigError(message)

    normalised: dict[str, Any] = {key: _normalise(key, value) for key, value in given.items()}
    runtime.config = dataclasses.replace(runtime.config, **normalised)


def get_config() -> Config:
    """The current configuration (a frozen snapshot)."""
    from .runtime import current

    return current().config


def get_default_config() -> Config:
    """The defaults of 90 §2 (frozen; never changed by `set_config`)."""
    return DEFAULT_CONFIG
