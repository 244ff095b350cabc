"""Turning what `get_signal` returned into a `SignalRow`, and the signal validation rules
(20 §3.3, §3.4, §4): the shape check of the raw value, the immediate-vs-scheduled decision
against the tick's VWAP, then every rule of the §4 table, each failure one line of a single
`ValidationError`. Pure functions of their arguments: no config lookups (the caller passes the
four limits), no I/O, no events; `None` ("no signal") is the caller's business.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Final, cast

from ..errors import ValidationError
from ..jsnum import js_string, to_fixed
from ..model.signal import Signal, SignalRow, new_signal_id, to_plain

__all__ = ["SignalLimits", "build_signal_row", "format_js_number", "validate_row"]


@dataclass(frozen=True, slots=True)
class SignalLimits:
    """The four config values the rules read (90 §2); a value of 0 disables its rule.

    ``SignalLimits(0.5, 0.5, 20, 1440)`` are the defaults of
    ``CC_MIN_TAKEPROFIT_DISTANCE_PERCENT``, ``CC_MIN_STOPLOSS_DISTANCE_PERCENT``,
    ``CC_MAX_STOPLOSS_DISTANCE_PERCENT`` (percent of ``price_open``) and
    ``CC_MAX_SIGNAL_LIFETIME_MINUTES``.
    """

    min_take_profit_percent: float
    min_stop_loss_percent: float
    max_stop_loss_percent: float
    max_lifetime_minutes: float


_SIGNAL_KEYS: Final = (
    "position",
    "price_take_profit",
    "price_stop_loss",
    "minute_estimated_time",
    "price_open",
    "note",
    "id",
)
_SIGNAL_KEY_SET: Final = frozenset(_SIGNAL_KEYS)
_NAN: Final = math.nan
_INF: Final = math.inf

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlevel = 2


def _is_num(x: object) -> bool:
    """A number in the sense of 20 §4: an int or float (numpy scalars too), never a bool."""
    t = type(x)
    if t is float or t is int:
        return True
    return isinstance(x, Real) and not isinstance(x, bool)


def _as_float(x: object) -> float:
    """The value the comparisons see: a float for a num, NaN for anything else, so that every
    comparison with a non-number is false (20 §4)."""
    if type(x) is float:
        return x
    if not _is_num(x):
        return _NAN
    num = cast(Real, x)
    try:
        return float(num)
    except OverflowError:  # an int beyond the float range is what JS would call Infinity
        return -_INF if num < 0 else _INF


def format_js_number(x: object) -> str:
    """Print a number as JavaScript's ``String(x)`` does; anything else as a short repr.

    ``format_js_number(100.0) == "100"``, ``format_js_number(0.5) == "0.5"``,
    ``format_js_number(float("nan")) == "NaN"``, ``format_js_number(1e21) == "1e+21"``.
    Python ints below 1e21 print exactly; ``bool`` is not a number (``"True"``).
    """
    if type(x) is float:
        return js_string(x)
    if type(x) is int:
        if -(10**21) < x < 10**21:
            return str(x)
        return js_string(_as_float(x))
    if _is_num(x):
        if isinstance(x, int):
            return format_js_number(int(x))
        return js_string(_as_float(x))
    return _repr.repr(x)


def _percent(num: float, den: float) -> float:
    """``num / den * 100`` with JS division (a zero divisor gives ±Infinity or NaN)."""
    if den == 0:
        if num == 0 or num != num:
            return _NAN
        return math.copysign(_INF, num) * math.copysign(1.0, den)
    return num / den * 100


def _type_name(x: object) -> str:
    return type(x).__name__


def _show_position(position: object) -> str:
    return position if isinstance(position, str) else format_js_number(position)


def _header_position(position: object) -> str:
    return position if isinstance(position, str) and position else "unknown"


def _price_lines(errors: list[str], name: str, value: object, v: float) -> None:
    # 11-16: the number-type rule, then the finite rule (a non-number is not finite either).
    if not _is_num(value):
        errors.append(
            f"{name} must be a number type, got {format_js_number(value)} ({_type_name(value)})"
        )
    if not math.isfinite(v):
        errors.append(f"{name} must be a finite number, got {format_js_number(value)}")


def _required_text(errors: list[str], name: str, value: object) -> None:
    if value is None or value == "":
        errors.append(f"{name} is required")


def validate_row(row: SignalRow, current_price: object, limits: SignalLimits) -> list[str]:
    """Every rule of 20 §4 on a built row, in table order: one line per failure, ``[]`` if the
    row is valid. ``current_price`` is the tick's VWAP; ``row.is_scheduled`` selects the
    immediate or the scheduled checks::

        validate_row(row, 100.0, SignalLimits(0.5, 0.5, 20, 1440))
        # ['long: take_profit too close to price_open (0.400%), minimum 0.5%']
    """
    errors: list[str] = []
    # Fields are read as `object`: a rejected row may hold whatever the user returned.
    position: object = row.position
    raw_open: object = row.price_open
    raw_tp: object = row.price_take_profit
    raw_sl: object = row.price_stop_loss
    raw_minutes: object = row.minute_estimated_time
    is_scheduled: object = row.is_scheduled

    # 1-5
    _required_text(errors, "id", row.id)
    _required_text(errors, "exchange_name", row.exchange_name)
    _required_text(errors, "strategy_name", row.strategy_name)
    _required_text(errors, "symbol", row.symbol)
    if is_scheduled is None:
        errors.append("is_scheduled is required")
    # 6-7
    if position is None:
        errors.append('position is required and must be "long" or "short"')
    is_long = position == "long" if isinstance(position, str) else False
    is_short = position == "short" if isinstance(position, str) else False
    if not (is_long or is_short):
        errors.append(f'position must be "long" or "short", got "{_show_position(position)}"')

    # 8-10
    cp = _as_float(current_price)
    if not _is_num(current_price):
        errors.append(
            f"current_price must be a number type, got {format_js_number(current_price)} "
            f"({_type_name(current_price)})"
        )
    cp_finite = math.isfinite(cp)
    if not cp_finite:
        errors.append(
            f"current_price must be a finite number, got {format_js_number(current_price)}"
        )
    elif cp <= 0:
        errors.append(f"current_price must be positive, got {format_js_number(current_price)}")

    # 11-16
    o = _as_float(raw_open)
    tp = _as_float(raw_tp)
    sl = _as_float(raw_sl)
    _price_lines(errors, "price_open", raw_open, o)
    _price_lines(errors, "price_take_profit", raw_tp, tp)
    _price_lines(errors, "price_stop_loss", raw_sl, sl)
    # 17-19
    o_finite = math.isfinite(o)
    if o_finite and o <= 0:
        errors.append(f"price_open must be positive, got {format_js_number(raw_open)}")
    if math.isfinite(tp) and tp <= 0:
        errors.append(f"price_take_profit must be positive, got {format_js_number(raw_tp)}")
    if math.isfinite(sl) and sl <= 0:
        errors.append(f"price_stop_loss must be positive, got {format_js_number(raw_sl)}")

    if is_long or is_short:
        side = "long" if is_long else "short"
        # numbers are formatted only for the lines that fail: this runs for every signal
        js = format_js_number
        if is_long:
            tp_wrong, sl_wrong = tp <= o, sl >= o
            tp_rel, sl_rel = ">", "<"
            cp_stopped, cp_profit = cp <= sl, cp >= tp
            o_stopped, o_profit = o <= sl, o >= tp
            tp_distance = _percent(tp - o, o)
            sl_distance = _percent(o - sl, o)
        else:
            tp_wrong, sl_wrong = tp >= o, sl <= o
            tp_rel, sl_rel = "<", ">"
            cp_stopped, cp_profit = cp >= sl, cp <= tp
            o_stopped, o_profit = o >= sl, o <= tp
            tp_distance = _percent(o - tp, o)
            sl_distance = _percent(sl - o, o)
        cp_stop_op = "<=" if is_long else ">="
        cp_profit_op = ">=" if is_long else "<="
        # L1-L2 / S1-S2
        if tp_wrong:
            errors.append(
                f"{side}: price_take_profit ({js(raw_tp)}) must be {tp_rel} "
                f"price_open ({js(raw_open)})"
            )
        if sl_wrong:
            errors.append(
                f"{side}: price_stop_loss ({js(raw_sl)}) must be {sl_rel} "
                f"price_open ({js(raw_open)})"
            )
        # L3-L6 / S3-S6
        if not is_scheduled and cp_finite:
            if cp_stopped:
                errors.append(
                    f"{side} immediate: current_price ({js(current_price)}) {cp_stop_op} "
                    f"price_stop_loss ({js(raw_sl)}), stopped out at once"
                )
            if cp_profit:
                errors.append(
                    f"{side} immediate: current_price ({js(current_price)}) {cp_profit_op} "
                    f"price_take_profit ({js(raw_tp)}), profit already passed"
                )
        if is_scheduled and o_finite:
            if o_stopped:
                errors.append(
                    f"{side} scheduled: price_open ({js(raw_open)}) {cp_stop_op} price_stop_loss "
                    f"({js(raw_sl)}), cancelled at activation"
                )
            if o_profit:
                errors.append(
                    f"{side} scheduled: price_open ({js(raw_open)}) {cp_profit_op} "
                    f"price_take_profit ({js(raw_tp)}), closed at activation"
                )
        # L7-L9 / S7-S9 (a NaN distance compares false, as in the reference)
        min_tp = limits.min_take_profit_percent
        if min_tp and tp_distance < min_tp:
            errors.append(
                f"{side}: take_profit too close to price_open ({to_fixed(tp_distance, 3)}%), "
                f"minimum {format_js_number(min_tp)}%"
            )
        min_sl = limits.min_stop_loss_percent
        if min_sl and sl_distance < min_sl:
            errors.append(
                f"{side}: stop_loss too close to price_open ({to_fixed(sl_distance, 3)}%), "
                f"minimum {format_js_number(min_sl)}%"
            )
        max_sl = limits.max_stop_loss_percent
        if max_sl and sl_distance > max_sl:
            errors.append(
                f"{side}: stop_loss too far from price_open ({to_fixed(sl_distance, 3)}%), "
                f"maximum {format_js_number(max_sl)}%"
            )

    # 20-23
    minutes = _as_float(raw_minutes)
    if not _is_num(raw_minutes):
        errors.append(
            f"minute_estimated_time must be a number type, got {format_js_number(raw_minutes)} "
            f"({_type_name(raw_minutes)})"
        )
    if minutes <= 0:
        errors.append(
            f"minute_estimated_time must be positive, got {format_js_number(raw_minutes)}"
        )
    minutes_finite = math.isfinite(minutes)
    if not (minutes_finite and minutes.is_integer()):
        errors.append(
            "minute_estimated_time must be an integer (whole number), "
            f"got {format_js_number(raw_minutes)}"
        )
    if not minutes_finite:
        errors.append(
            f"minute_estimated_time must be a finite number, got {format_js_number(raw_minutes)}"
        )
    # 24
    max_life = limits.max_lifetime_minutes
    if max_life and minutes > max_life:
        errors.append(
            f"minute_estimated_time too large ({format_js_number(raw_minutes)} minutes = "
            f"{to_fixed(minutes / 60 / 24, 1)} days), maximum {format_js_number(max_life)} "
            f"minutes ({to_fixed(max_life / 60 / 24, 0)} days)"
        )

    # 25-28
    for name, value in (("scheduled_at", row.scheduled_at), ("pending_at", row.pending_at)):
        if not _is_num(value):
            errors.append(
                f"{name} must be a number type, got {format_js_number(value)} ({_type_name(value)})"
            )
        if _as_float(value) <= 0:
            errors.append(f"{name} must be positive, got {format_js_number(value)}")
    return errors


def _invalid(position: object, errors: list[str], signal: object) -> ValidationError:
    message = f"Invalid signal for {_header_position(position)} position:\n" + "\n".join(errors)
    return ValidationError(message, errors=tuple(errors), signal=signal)


def _stored_price(x: object) -> Any:
    # Accepted numbers are stored as Python floats (records hold plain floats, 20 §7); anything
    # else is kept as given so that the rejection shows it.
    if type(x) is float:
        return x
    return _as_float(x) if _is_num(x) else x


def build_signal_row(
    raw: object,
    *,
    current_price: float,
    when: int,
    symbol: str,
    exchange_name: str,
    strategy_name: str,
    limits: SignalLimits,
) -> SignalRow:
    """Build the row of the signal ``raw`` returned at tick ``when`` (int ms) and validate it.

    ``raw`` is a `Signal` or a mapping with the same keys (never ``None``: the caller treats
    that as "no signal"); ``current_price`` is the tick's VWAP. Returns an immediate row
    (market order, or a limit price the VWAP has already reached) or a scheduled one; raises
    `ValidationError` listing every failed rule otherwise::

        row = build_signal_row(Signal("long", 110, 95, 60), current_price=100.0, when=t,
                               symbol="BTCUSDT", exchange_name="x", strategy_name="s",
                               limits=SignalLimits(0.5, 0.5, 20, 1440))
        row.price_open, row.is_scheduled  # (100.0, False)
    """
    if isinstance(raw, Signal):
        position: Any = raw.position
        raw_tp: Any = raw.price_take_profit
        raw_sl: Any = raw.price_stop_loss
        raw_minutes: Any = raw.minute_estimated_time
        raw_open: Any = raw.price_open
        note: Any = raw.note
        signal_id: Any = raw.id
        shape_errors: list[str] = []
    elif type(raw) is dict or isinstance(raw, Mapping):
        get = raw.get
        position = get("position")
        raw_tp = get("price_take_profit")
        raw_sl = get("price_stop_loss")
        raw_minutes = get("minute_estimated_time")
        raw_open = get("price_open")
        note = get("note", "")
        signal_id = get("id")
        shape_errors = []
        if any(key not in _SIGNAL_KEY_SET for key in raw):
            unknown = ", ".join(_repr.repr(key) for key in raw if key not in _SIGNAL_KEY_SET)
            shape_errors.append(
                f"signal has unknown keys {unknown} (allowed: {', '.join(_SIGNAL_KEYS)})"
            )
    else:
        line = (
            "get_signal must return a Signal, a mapping or None, got "
            f"{_type_name(raw)} {format_js_number(raw)}"
        )
        raise _invalid(None, [line], raw)

    if note is not None and not isinstance(note, str):
        shape_errors.append(f"note must be a str, got {_type_name(note)} {format_js_number(note)}")
    if signal_id is not None and not isinstance(signal_id, str):
        shape_errors.append(
            f"id must be a str or None, got {_type_name(signal_id)} {format_js_number(signal_id)}"
        )
    if shape_errors:
        # The §4 rules are not run on a value of the wrong shape: their lines would describe a
        # signal the user did not write (e.g. a mistyped limit order read as a market order).
        raise _invalid(position, shape_errors, raw)

    # 20 §3.3: immediate vs scheduled, decided before validation.
    if raw_open is None:
        price_open: Any = _stored_price(current_price)
        is_scheduled = False
    else:
        price_open = _stored_price(raw_open)
        if _is_num(raw_open):
            cp = _as_float(current_price)
            side = position if isinstance(position, str) else None
            if side == "long":
                is_scheduled = not cp <= price_open
            elif side == "short":
                is_scheduled = not cp >= price_open
            else:
                is_scheduled = True
        else:
            is_scheduled = True

    minutes: Any = raw_minutes
    if type(minutes) is int:
        pass
    elif type(minutes) is float or _is_num(minutes):
        as_float = _as_float(minutes)
        if math.isfinite(as_float) and as_float.is_integer():
            minutes = int(as_float)

    row = SignalRow(
        id=signal_id if signal_id else new_signal_id(),
        position=position,
        price_open=price_open,
        price_take_profit=_stored_price(raw_tp),
        price_stop_loss=_stored_price(raw_sl),
        minute_estimated_time=minutes,
        note=to_plain(note) if note else "",
        symbol=symbol,
        exchange_name=exchange_name,
        strategy_name=strategy_name,
        scheduled_at=when,
        pending_at=when,
        is_scheduled=is_scheduled,
    )
    errors = validate_row(row, current_price, limits)
    if errors:
        raise _invalid(position, errors, row)
    return row
