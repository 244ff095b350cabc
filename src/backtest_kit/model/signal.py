"""`Signal` (what a strategy's `get_signal` returns), `SignalRow` (the engine's record of an
accepted signal), note normalisation (`to_plain`) and signal ids (10 §3, §4, §8).

Records and pure helpers only: no I/O, no engine logic. `Signal` deliberately performs no
validation (the strategy client rejects bad signals on `listen_validation`, 20 §3.4);
`SignalRow` is built by the strategy client from a signal that already passed validation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..errors import PersistError, ValidationError

Position = Literal["long", "short"]


@dataclass(frozen=True, slots=True)
class Signal:
    """A trading signal as returned by ``get_signal`` (10 §3).

    ``position`` is ``"long"`` or ``"short"``; prices are in quote currency;
    ``minute_estimated_time`` is the lifetime of the open position in minutes;
    ``price_open=None`` means a market order at the current VWAP. Nothing is checked here, so
    a bad value becomes a rejected signal rather than an exception in user code::

        bk.Signal("long", price_take_profit=110, price_stop_loss=95, minute_estimated_time=60)
    """

    position: Any
    price_take_profit: Any
    price_stop_loss: Any
    minute_estimated_time: Any
    price_open: Any = None
    note: Any = ""
    id: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The seven fields in 10 §8 order, values as given."""
        return {
            "position": self.position,
            "price_take_profit": self.price_take_profit,
            "price_stop_loss": self.price_stop_loss,
            "minute_estimated_time": self.minute_estimated_time,
            "price_open": self.price_open,
            "note": self.note,
            "id": self.id,
        }


@dataclass(frozen=True, slots=True)
class SignalRow:
    """The engine's record of a scheduled or open signal (10 §4).

    Timestamps are int ms UTC. A scheduled row has ``is_scheduled=True`` and
    ``pending_at == scheduled_at``; activation makes a new row with
    ``dataclasses.replace(row, pending_at=t, is_scheduled=False)``. ``quantity`` and ``cost``
    are set only when the strategy uses a sizing schema (60 §7.4).
    """

    id: str
    position: Position
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: int
    note: str
    symbol: str
    exchange_name: str
    strategy_name: str
    scheduled_at: int
    pending_at: int
    is_scheduled: bool
    quantity: float | None = None
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The 13 keys of 10 §8 in order, then ``quantity`` and ``cost`` (always present)."""
        return {
            "id": self.id,
            "position": self.position,
            "price_open": self.price_open,
            "price_take_profit": self.price_take_profit,
            "price_stop_loss": self.price_stop_loss,
            "minute_estimated_time": self.minute_estimated_time,
            "note": self.note,
            "symbol": self.symbol,
            "exchange_name": self.exchange_name,
            "strategy_name": self.strategy_name,
            "scheduled_at": self.scheduled_at,
            "pending_at": self.pending_at,
            "is_scheduled": self.is_scheduled,
            "quantity": self.quantity,
            "cost": self.cost,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalRow:
        """Rebuild a row from `to_dict()` output or from the reference's camelCase record.

        Snake_case keys win when both spellings are present; unknown keys are ignored.
        Raises `PersistError` naming the field when a required key is missing or has the
        wrong type.
        """
        values: dict[str, Any] = {}
        for name, (alias, convert) in _FROM_DICT_FIELDS.items():
            if name in data:
                raw = data[name]
            elif alias in data:
                raw = data[alias]
            elif name in ("quantity", "cost"):
                raw = None
            else:
                raise PersistError(f"signal record is missing field {name!r}")
            try:
                values[name] = convert(raw)
            except (TypeError, ValueError) as exc:
                raise PersistError(f"signal record field {name!r}: {exc}") from None
        return cls(**values)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _as_position(value: Any) -> Position:
    if value == "long":
        return "long"
    if value == "short":
        return "short"
    raise ValueError(f"expected 'long' or 'short', got {value!r}")


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _as_optional_float(value: Any) -> float | None:
    return None if value is None else _as_float(value)


# field -> (reference camelCase key, converter); order is the dataclass field order.
_FROM_DICT_FIELDS: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "id": ("id", _as_str),
    "position": ("position", _as_position),
    "price_open": ("priceOpen", _as_float),
    "price_take_profit": ("priceTakeProfit", _as_float),
    "price_stop_loss": ("priceStopLoss", _as_float),
    "minute_estimated_time": ("minuteEstimatedTime", _as_int),
    "note": ("note", _as_str),
    "symbol": ("symbol", _as_str),
    "exchange_name": ("exchangeName", _as_str),
    "strategy_name": ("strategyName", _as_str),
    "scheduled_at": ("scheduledAt", _as_int),
    "pending_at": ("pendingAt", _as_int),
    "is_scheduled": ("_isScheduled", _as_bool),
    "quantity": ("quantity", _as_optional_float),
    "cost": ("cost", _as_optional_float),
}


def new_signal_id() -> str:
    """A fresh random signal id (a UUID-4 string, like the reference's ``randomString()``)."""
    return str(uuid.uuid4())


_M: Final = re.MULTILINE

# Reference `toPlainString` (10 §4.2), pass by pass; the order matters.
_PLAIN_PASSES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"```[\s\S]*?```"), ""),
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"!\[([^\]]*)\]\([^)]+\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]+\)"), r"\1"),
    (re.compile(r"^#{1,6}\s+(.+)$", _M), r"\1"),
    (re.compile(r"\*\*\*(.+?)\*\*\*"), r"\1"),
    (re.compile(r"\*\*(.+?)\*\*"), r"\1"),
    (re.compile(r"\*(.+?)\*"), r"\1"),
    # Kept for parity: eats single underscores pairwise ("a_b_c" -> "abc").
    (re.compile(r"___(.+?)___"), r"\1"),
    (re.compile(r"__(.+?)__"), r"\1"),
    (re.compile(r"_(.+?)_"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
    (re.compile(r"^\s*[-*+]\s+", _M), "• "),
    (re.compile(r"^\s*\d+\.\s+", _M), "• "),
    (re.compile(r"^\s*>\s+", _M), ""),
    (re.compile(r"^(\*{3,}|-{3,}|_{3,})$", _M), ""),
    (re.compile(r"<[^>]+>"), ""),
    (re.compile(r"\n[\s\n]*\n"), "\n"),
    (re.compile(r"[ \t]+"), " "),
    (re.compile(r"\n"), " "),
    (re.compile(r"\s+"), " "),
)


def to_plain(note: str | None) -> str:
    """Turn a Markdown note into one line of plain text (10 §4.2)::

    to_plain("**Buy** [here](http://x) `now`")  # -> "Buy here now"

    ``None`` and ``""`` give ``""``; any other non-string raises `ValidationError`.
    """
    if note is None or note == "":
        return ""
    if not isinstance(note, str):
        raise ValidationError(f"signal note must be a string, got {note!r}")
    text = note
    for pattern, replacement in _PLAIN_PASSES:
        text = pattern.sub(replacement, text)
    return text.strip()


__all__ = ["Position", "Signal", "SignalRow", "new_signal_id", "to_plain"]
