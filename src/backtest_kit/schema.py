"""Schemas and their registration: `add_exchange`, `add_strategy`, `add_frame`, `list_*`.

Each `add_*` validates every argument first and registers nothing on failure (02 §4); a
stored schema is a frozen record. No engine logic here: clients and engines read schemas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .errors import RegistryError, ValidationError
from .intervals import FRAME_INTERVALS, MINUTE_MS, STRATEGY_INTERVALS, iso, to_ms
from .runtime import current

Fn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class StrategyCallbacks:
    """Optional strategy callbacks (20 §1.2); each may be sync or `async def`."""

    on_tick: Fn | None = None
    on_idle: Fn | None = None
    on_schedule: Fn | None = None
    on_open: Fn | None = None
    on_active: Fn | None = None
    on_close: Fn | None = None
    on_cancel: Fn | None = None
    on_write: Fn | None = None
    on_partial_profit: Fn | None = None
    on_partial_loss: Fn | None = None


@dataclass(frozen=True, slots=True)
class ExchangeCallbacks:
    """Optional exchange callbacks: `on_candle_data(symbol, interval, since, limit, data)`."""

    on_candle_data: Fn | None = None


@dataclass(frozen=True, slots=True)
class FrameCallbacks:
    """Optional frame callbacks: `on_timeframe(timestamps, start_date, end_date, interval)`."""

    on_timeframe: Fn | None = None


@dataclass(frozen=True, slots=True)
class ExchangeSchema:
    exchange_name: str
    get_candles: Fn
    format_price: Fn | None = None
    format_quantity: Fn | None = None
    note: str = ""
    callbacks: ExchangeCallbacks = ExchangeCallbacks()


@dataclass(frozen=True, slots=True)
class StrategySchema:
    strategy_name: str
    interval: str
    get_signal: Fn
    risk_name: str | None = None
    risk_list: tuple[str, ...] | None = None
    sizing_name: str | None = None
    note: str = ""
    callbacks: StrategyCallbacks = StrategyCallbacks()

    def risk_names(self) -> tuple[str, ...]:
        """Every risk profile the strategy names (`risk_name` first, then `risk_list`)."""
        names = [self.risk_name] if self.risk_name else []
        names.extend(n for n in self.risk_list or () if n not in names)
        return tuple(names)


@dataclass(frozen=True, slots=True)
class FrameSchema:
    frame_name: str
    interval: str
    start_date: int  # int ms UTC, inclusive
    end_date: int  # int ms UTC, inclusive
    note: str = ""
    callbacks: FrameCallbacks = FrameCallbacks()


C = TypeVar("C", StrategyCallbacks, ExchangeCallbacks, FrameCallbacks)


def _callbacks(kind: type[C], value: object, owner: str) -> C:
    if value is None:
        return kind()
    if isinstance(value, kind):
        names = [f.name for f in fields(kind)]
        for name in names:
            fn = getattr(value, name)
            if fn is not None and not callable(fn):
                raise ValidationError(f"{owner}: callbacks.{name} must be callable, got {fn!r}")
        return value
    if isinstance(value, Mapping):
        valid = [f.name for f in fields(kind)]
        unknown = [k for k in value if k not in valid]
        if unknown:
            raise ValidationError(
                f"{owner}: unknown callback {', '.join(map(repr, unknown))}; "
                f"valid callbacks: {', '.join(valid)}"
            )
        for key, fn in value.items():
            if fn is not None and not callable(fn):
                raise ValidationError(f"{owner}: callbacks.{key} must be callable, got {fn!r}")
        return kind(**value)
    raise ValidationError(
        f"{owner}: callbacks must be a {kind.__name__}, a dict or None, got {type(value).__name__}"
    )


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"missing {field}: must be a non-empty string, got {value!r}")
    return value


def _note(value: object, owner: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{owner}: note must be a string, got {type(value).__name__}")
    return value


def _unique(registry: Mapping[str, object], kind: str, name: str) -> None:
    if name in registry:
        raise RegistryError(f"{kind} {name!r} already exist")


def add_exchange(
    exchange_name: str,
    get_candles: Fn,
    format_price: Fn | None = None,
    format_quantity: Fn | None = None,
    note: str = "",
    callbacks: ExchangeCallbacks | Mapping[str, Fn | None] | None = None,
) -> ExchangeSchema:
    """Register a data source of candles under `exchange_name` (50 §1).

    `get_candles(symbol, interval, since, limit)` returns candles whose open time lies in
    ``[since, since + (limit - 1) * interval]``, oldest first::

        bk.add_exchange("binance-csv", get_candles=my_loader)
    """
    name = _name(exchange_name, "exchange_name")
    owner = f"exchange {name!r}"
    registry = current().exchanges
    _unique(registry, "exchange", name)
    if not callable(get_candles):
        raise ValidationError(f"missing get_candles for exchange_name={name}: must be callable")
    for field, fn in (("format_price", format_price), ("format_quantity", format_quantity)):
        if fn is not None and not callable(fn):
            raise ValidationError(f"{owner}: {field} must be callable or None, got {fn!r}")
    schema = ExchangeSchema(
        exchange_name=name,
        get_candles=get_candles,
        format_price=format_price,
        format_quantity=format_quantity,
        note=_note(note, owner),
        callbacks=_callbacks(ExchangeCallbacks, callbacks, owner),
    )
    current().logger.info("add.add_exchange", {"exchange_name": name})
    registry[name] = schema
    return schema


def add_strategy(
    strategy_name: str,
    interval: str,
    get_signal: Fn,
    risk_name: str | None = None,
    risk_list: list[str] | tuple[str, ...] | None = None,
    sizing_name: str | None = None,
    note: str = "",
    callbacks: StrategyCallbacks | Mapping[str, Fn | None] | None = None,
) -> StrategySchema:
    """Register a strategy (20 §1): `get_signal(symbol, when)` is asked for a signal at most
    once per `interval` while no signal is held::

        def get_signal(symbol, when):
            return bk.Signal("long", price_take_profit=..., price_stop_loss=...,
                             minute_estimated_time=60)

        bk.add_strategy("sma", "5m", get_signal)
    """
    name = _name(strategy_name, "strategy_name")
    owner = f"strategy {name!r}"
    registry = current().strategies
    _unique(registry, "strategy", name)
    if risk_name is not None and (not isinstance(risk_name, str) or not risk_name):
        raise ValidationError(f"{owner}: invalid risk_name {risk_name!r}: must be a non-empty str")
    risks: tuple[str, ...] | None = None
    if risk_list is not None:
        if not isinstance(risk_list, list | tuple) or not all(
            isinstance(r, str) and r for r in risk_list
        ):
            raise ValidationError(
                f"{owner}: invalid risk_list {risk_list!r}: must be a list of non-empty str"
            )
        duplicates = sorted({r for r in risk_list if list(risk_list).count(r) > 1})
        if duplicates:
            raise ValidationError(f"{owner}: found duplicate risk_list {', '.join(duplicates)}")
        risks = tuple(risk_list)
    if interval not in STRATEGY_INTERVALS:
        raise ValidationError(
            f"{owner}: invalid interval {interval!r}; valid intervals: "
            f"{', '.join(STRATEGY_INTERVALS)}"
        )
    if not callable(get_signal):
        raise ValidationError(f"{owner}: missing get_signal: must be callable")
    cbs = _callbacks(StrategyCallbacks, callbacks, owner)
    note = _note(note, owner)
    if sizing_name is not None and (not isinstance(sizing_name, str) or not sizing_name):
        raise ValidationError(
            f"{owner}: invalid sizing_name {sizing_name!r}: must be a non-empty str"
        )
    schema = StrategySchema(
        strategy_name=name,
        interval=interval,
        get_signal=get_signal,
        risk_name=risk_name,
        risk_list=risks,
        sizing_name=sizing_name,
        note=note,
        callbacks=cbs,
    )
    current().logger.info("add.add_strategy", {"strategy_name": name})
    registry[name] = schema
    return schema


def add_frame(
    frame_name: str,
    interval: str,
    start_date: object,
    end_date: object,
    note: str = "",
    callbacks: FrameCallbacks | Mapping[str, Fn | None] | None = None,
) -> FrameSchema:
    """Register a backtest period (30 §1): ticks at ``start_date + k * interval`` up to
    `end_date` (both inclusive). Dates: datetime (naive = UTC), ISO-8601 string or int ms::

        bk.add_frame("jan", "1m", "2024-01-01", "2024-01-31")
    """
    name = _name(frame_name, "frame_name")
    owner = f"frame {name!r}"
    registry = current().frames
    _unique(registry, "frame", name)
    if interval not in FRAME_INTERVALS:
        raise ValidationError(
            f"{owner}: invalid interval {interval!r}; valid intervals: {', '.join(FRAME_INTERVALS)}"
        )
    start = to_ms(start_date, f"{owner}: start_date")
    end = to_ms(end_date, f"{owner}: end_date")
    if start > end:
        raise ValidationError(
            f"{owner}: start_date {iso(start)} is after end_date {iso(end)}; "
            "start_date must be <= end_date"
        )
    if start % MINUTE_MS:
        raise ValidationError(
            f"{owner}: start_date {iso(start)} must be on a whole UTC minute, so every tick "
            "is the open of a 1m candle"
        )
    schema = FrameSchema(
        frame_name=name,
        interval=interval,
        start_date=start,
        end_date=end,
        note=_note(note, owner),
        callbacks=_callbacks(FrameCallbacks, callbacks, owner),
    )
    current().logger.info("add.add_frame", {"frame_name": name})
    registry[name] = schema
    return schema


def list_exchanges() -> list[ExchangeSchema]:
    """Registered exchanges, in registration order."""
    return list(current().exchanges.values())


def list_strategies() -> list[StrategySchema]:
    """Registered strategies, in registration order."""
    return list(current().strategies.values())


def list_frames() -> list[FrameSchema]:
    """Registered frames, in registration order."""
    return list(current().frames.values())


def require(kind: str, name: str, method: str) -> Any:
    """The registered schema of `kind` named `name`, or a `RegistryError` naming both."""
    attribute = "strategies" if kind == "strategy" else f"{kind}s"
    registry: dict[str, Any] = getattr(current(), attribute)
    schema = registry.get(name)
    if schema is None:
        known = ", ".join(map(repr, registry)) or "none registered"
        raise RegistryError(f"{method}: {kind} {name!r} not found (registered: {known})")
    return schema


# -- risk profiles (60 §1) and sizing profiles (60 §7) ---------------------------------------


@dataclass(frozen=True, slots=True)
class RiskCallbacks:
    """Optional risk callbacks: `on_rejected(symbol, args)`, `on_allowed(symbol, args)`."""

    on_rejected: Fn | None = None
    on_allowed: Fn | None = None


@dataclass(frozen=True, slots=True)
class RiskValidation:
    """A risk rule with a note: `validate(payload)` rejects by raising; `note` becomes the
    rejection's comment."""

    validate: Fn
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RiskSchema:
    risk_name: str
    validations: tuple[RiskValidation, ...] = ()
    max_concurrent_positions: int | None = None
    note: str = ""
    callbacks: RiskCallbacks = RiskCallbacks()


def _risk_validation(entry: object, index: int, owner: str) -> RiskValidation:
    if callable(entry) and not isinstance(entry, Mapping):
        return RiskValidation(validate=entry)
    validate: object
    note: object
    if isinstance(entry, RiskValidation):
        validate, note = entry.validate, entry.note
    elif isinstance(entry, Mapping):
        unknown = [k for k in entry if k not in ("validate", "note")]
        if unknown:
            raise ValidationError(
                f"{owner}: validations[{index}] has unknown keys {unknown}; valid: validate, note"
            )
        validate, note = entry.get("validate"), entry.get("note")
    else:
        validate, note = getattr(entry, "validate", None), getattr(entry, "note", None)
    if not callable(validate):
        raise ValidationError(
            f"{owner}: validations[{index}] needs a callable 'validate', got {validate!r}"
        )
    if note is not None and not isinstance(note, str):
        raise ValidationError(
            f"{owner}: validations[{index}].note must be a str, got {type(note).__name__}"
        )
    return RiskValidation(validate=validate, note=note if isinstance(note, str) else None)


def add_risk(
    risk_name: str,
    validations: list[Any] | tuple[Any, ...] = (),
    max_concurrent_positions: int | None = None,
    note: str = "",
    callbacks: RiskCallbacks | Mapping[str, Fn | None] | None = None,
) -> RiskSchema:
    """Register a risk profile (60 §1): rules checked before any position opens.

    A validation is a callable `fn(payload)` or `{"validate": fn, "note": "..."}`; it
    **rejects by raising** — its return value is ignored, so returning False allows::

        def at_most_three(payload):
            if payload.active_position_count >= 3:
                raise ValueError("three positions open")

        bk.add_risk("portfolio", validations=[at_most_three])
        bk.add_strategy("sma", "5m", get_signal, risk_name="portfolio")
    """
    name = _name(risk_name, "risk_name")
    owner = f"risk {name!r}"
    registry = current().risks
    _unique(registry, "risk", name)
    if not isinstance(validations, list | tuple):
        raise ValidationError(
            f"{owner}: validations must be a list, got {type(validations).__name__}"
        )
    rules = tuple(_risk_validation(v, k, owner) for k, v in enumerate(validations))
    limit = max_concurrent_positions
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(
            f"{owner}: max_concurrent_positions must be a positive int or None, got {limit!r}"
        )
    schema = RiskSchema(
        risk_name=name,
        validations=rules,
        max_concurrent_positions=limit,
        note=_note(note, owner),
        callbacks=_risk_callbacks(callbacks, owner),
    )
    current().logger.info("add.add_risk", {"risk_name": name})
    registry[name] = schema
    return schema


def _risk_callbacks(value: object, owner: str) -> RiskCallbacks:
    if value is None:
        return RiskCallbacks()
    if isinstance(value, RiskCallbacks):
        items: Mapping[str, Any] = {
            "on_rejected": value.on_rejected,
            "on_allowed": value.on_allowed,
        }
    elif isinstance(value, Mapping):
        items = value
    else:
        raise ValidationError(
            f"{owner}: callbacks must be a RiskCallbacks, a dict or None, "
            f"got {type(value).__name__}"
        )
    unknown = [k for k in items if k not in ("on_rejected", "on_allowed")]
    if unknown:
        raise ValidationError(
            f"{owner}: unknown callback {', '.join(map(repr, unknown))}; "
            "valid callbacks: on_rejected, on_allowed"
        )
    for key, fn in items.items():
        if fn is not None and not callable(fn):
            raise ValidationError(f"{owner}: callbacks.{key} must be callable, got {fn!r}")
    return RiskCallbacks(**items)


SIZING_METHODS = ("fixed-percentage", "kelly-criterion", "atr-based")
_SIZING_PARAMS = {
    "fixed-percentage": ("risk_percentage",),
    "kelly-criterion": ("kelly_multiplier",),
    "atr-based": ("risk_percentage", "atr_multiplier"),
}
_SIZING_CAPS = ("max_position_percentage", "min_position_size", "max_position_size")


@dataclass(frozen=True, slots=True)
class SizingCallbacks:
    """Optional sizing callback: `on_calculate(quantity, params)` after every calculation."""

    on_calculate: Fn | None = None


@dataclass(frozen=True, slots=True)
class SizingSchema:
    sizing_name: str
    method: str
    risk_percentage: float | None = None
    kelly_multiplier: float | None = None
    atr_multiplier: float | None = None
    max_position_percentage: float | None = None
    min_position_size: float | None = None
    max_position_size: float | None = None
    note: str = ""
    callbacks: SizingCallbacks = SizingCallbacks()


def _positive(value: object, field: str, owner: str, *, allow_zero: bool = False) -> float:
    import math

    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value < 0 if allow_zero else value <= 0):  # type: ignore[operator]
        rule = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValidationError(f"{owner}: {field} must be {rule}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def add_sizing(
    sizing_name: str,
    method: str,
    *,
    note: str = "",
    callbacks: SizingCallbacks | Mapping[str, Fn | None] | None = None,
    **method_params: object,
) -> SizingSchema:
    """Register a position-sizing profile (60 §7)::

        bk.add_sizing("risk-1pct", "fixed-percentage", risk_percentage=1,
                      max_position_percentage=50)
        bk.add_strategy("sma", "5m", get_signal, sizing_name="risk-1pct")

    Methods and their parameters: ``fixed-percentage`` (`risk_percentage`),
    ``kelly-criterion`` (`kelly_multiplier`, default 0.25), ``atr-based``
    (`risk_percentage`, `atr_multiplier`, default 2); caps for all:
    `max_position_percentage`, `min_position_size`, `max_position_size`.
    """
    name = _name(sizing_name, "sizing_name")
    owner = f"sizing {name!r}"
    registry = current().sizings
    _unique(registry, "sizing", name)
    if method not in SIZING_METHODS:
        raise ValidationError(
            f"{owner}: unknown method {method!r}; valid methods: {', '.join(SIZING_METHODS)}"
        )
    allowed = (*_SIZING_PARAMS[method], *_SIZING_CAPS)
    unknown = [k for k in method_params if k not in allowed]
    if unknown:
        raise ValidationError(
            f"{owner}: parameter {', '.join(map(repr, unknown))} does not belong to method "
            f"{method!r}; valid parameters: {', '.join(allowed)}"
        )
    values: dict[str, float | None] = {}
    if method in ("fixed-percentage", "atr-based"):
        if "risk_percentage" not in method_params:
            raise ValidationError(f"{owner}: method {method!r} needs risk_percentage")
        values["risk_percentage"] = _positive(
            method_params["risk_percentage"], "risk_percentage", owner
        )
    if method == "kelly-criterion":
        values["kelly_multiplier"] = _positive(
            method_params.get("kelly_multiplier", 0.25), "kelly_multiplier", owner, allow_zero=True
        )
    if method == "atr-based":
        values["atr_multiplier"] = _positive(
            method_params.get("atr_multiplier", 2.0), "atr_multiplier", owner
        )
    for cap in _SIZING_CAPS:
        raw = method_params.get(cap)
        values[cap] = None if raw is None else _positive(raw, cap, owner)
    low, high = values["min_position_size"], values["max_position_size"]
    if low is not None and high is not None and low > high:
        raise ValidationError(
            f"{owner}: min_position_size {low!r} must be <= max_position_size {high!r}"
        )
    cbs: SizingCallbacks
    if callbacks is None:
        cbs = SizingCallbacks()
    elif isinstance(callbacks, SizingCallbacks):
        cbs = callbacks
    elif isinstance(callbacks, Mapping):
        extra = [k for k in callbacks if k != "on_calculate"]
        if extra:
            raise ValidationError(
                f"{owner}: unknown callback {', '.join(map(repr, extra))}; "
                "valid callbacks: on_calculate"
            )
        cbs = SizingCallbacks(on_calculate=callbacks.get("on_calculate"))
    else:
        raise ValidationError(f"{owner}: callbacks must be a SizingCallbacks, a dict or None")
    if cbs.on_calculate is not None and not callable(cbs.on_calculate):
        raise ValidationError(f"{owner}: callbacks.on_calculate must be callable")
    schema = SizingSchema(
        sizing_name=name, method=method, note=_note(note, owner), callbacks=cbs, **values
    )
    current().logger.info("add.add_sizing", {"sizing_name": name})
    registry[name] = schema
    return schema


def list_risks() -> list[RiskSchema]:
    """Registered risk profiles, in registration order."""
    return list(current().risks.values())


def list_sizings() -> list[SizingSchema]:
    """Registered sizing profiles, in registration order."""
    return list(current().sizings.values())
