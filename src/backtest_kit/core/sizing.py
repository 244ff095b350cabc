"""Position sizing (60 §7–§8): the three calculators, their caps, the `PositionSize` helpers,
and Wilder's ATR used when the engine applies an atr-based profile.

Pure arithmetic plus the profile's `on_calculate` callback; the strategy client decides when
a position is sized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RegistryError, ValidationError
from ..events import call_user

if TYPE_CHECKING:
    from ..model.candles import Candles
    from ..schema import SizingSchema


@dataclass(frozen=True, slots=True)
class SizingCalculateParams:
    """Inputs of one calculation (60 §7.2); the method decides which optional ones it reads."""

    symbol: str
    account_balance: float
    price_open: float
    method: str
    price_stop_loss: float | None = None
    win_rate: float | None = None
    win_loss_ratio: float | None = None
    atr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "account_balance": self.account_balance,
            "price_open": self.price_open,
            "method": self.method,
            "price_stop_loss": self.price_stop_loss,
            "win_rate": self.win_rate,
            "win_loss_ratio": self.win_loss_ratio,
            "atr": self.atr,
        }


def _finite(value: object, field: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"sizing: {field} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValidationError(f"sizing: {field} must be > 0, got {value!r}")
    return float(value)


async def calculate(schema: SizingSchema, params: SizingCalculateParams) -> float:
    """The quantity in base units (unrounded), caps applied in order (60 §7.3)."""
    balance = _finite(params.account_balance, "account_balance", positive=True)
    price = _finite(params.price_open, "price_open", positive=True)
    if schema.method == "fixed-percentage":
        stop = _finite(params.price_stop_loss, "price_stop_loss")
        risk_amount = balance * (schema.risk_percentage or 0.0) / 100
        stop_distance = abs(price - stop)
        if stop_distance == 0:
            raise ValidationError("Stop-loss distance cannot be zero")
        qty = risk_amount / stop_distance
    elif schema.method == "kelly-criterion":
        win_rate = _finite(params.win_rate, "win_rate")
        ratio = _finite(params.win_loss_ratio, "win_loss_ratio")
        if not 0 < win_rate < 1:
            raise ValidationError("winRate must be between 0 and 1")
        if ratio <= 0:
            raise ValidationError("winLossRatio must be positive")
        kelly = (win_rate * ratio - (1 - win_rate)) / ratio
        qty = balance * max(0.0, kelly) * (schema.kelly_multiplier or 0.0) / price
    else:
        atr = _finite(params.atr, "atr")
        if atr <= 0:
            raise ValidationError("ATR must be positive")
        risk_amount = balance * (schema.risk_percentage or 0.0) / 100
        qty = risk_amount / (atr * (schema.atr_multiplier or 0.0))
    if schema.max_position_percentage is not None:
        qty = min(qty, balance * schema.max_position_percentage / 100 / price)
    if schema.min_position_size is not None:
        qty = max(qty, schema.min_position_size)
    if schema.max_position_size is not None:
        qty = min(qty, schema.max_position_size)
    if schema.callbacks.on_calculate is not None:
        await call_user(schema.callbacks.on_calculate, qty, params)
    return qty


def wilder_atr(candles: Candles, period: int = 14) -> float:
    """Wilder's ATR over `period + 1` candles: the mean true range of the last `period` bars
    (the seed of Wilder's smoothing, which is all `period + 1` candles define)."""
    if len(candles) < period + 1:
        raise ValidationError(
            f"ATR({period}) needs {period + 1} closed candles, got {len(candles)}"
        )
    high = candles.high[-period:].tolist()
    low = candles.low[-period:].tolist()
    prev_close = candles.close[-period - 1 : -1].tolist()
    total = 0.0
    for h, lo, pc in zip(high, low, prev_close, strict=True):
        total += max(h - lo, abs(h - pc), abs(lo - pc))
    return total / period


class PositionSizeUtils:
    """`bk.PositionSize`: compute a quantity with a registered sizing profile (60 §8)."""

    async def fixed_percentage(
        self,
        symbol: str,
        account_balance: float,
        price_open: float,
        price_stop_loss: float,
        *,
        sizing_name: str,
    ) -> float:
        """Risk `risk_percentage` % of the balance between entry and stop loss."""
        schema = _profile(sizing_name, "fixed-percentage")
        return await calculate(
            schema,
            SizingCalculateParams(
                symbol, account_balance, price_open, schema.method, price_stop_loss=price_stop_loss
            ),
        )

    async def kelly_criterion(
        self,
        symbol: str,
        account_balance: float,
        price_open: float,
        win_rate: float,
        win_loss_ratio: float,
        *,
        sizing_name: str,
    ) -> float:
        """A fraction (`kelly_multiplier`) of the Kelly stake for this edge."""
        schema = _profile(sizing_name, "kelly-criterion")
        return await calculate(
            schema,
            SizingCalculateParams(
                symbol,
                account_balance,
                price_open,
                schema.method,
                win_rate=win_rate,
                win_loss_ratio=win_loss_ratio,
            ),
        )

    async def atr_based(
        self,
        symbol: str,
        account_balance: float,
        price_open: float,
        atr: float,
        *,
        sizing_name: str,
    ) -> float:
        """Risk `risk_percentage` % of the balance over a stop `atr_multiplier` ATRs away."""
        schema = _profile(sizing_name, "atr-based")
        return await calculate(
            schema,
            SizingCalculateParams(symbol, account_balance, price_open, schema.method, atr=atr),
        )


def _profile(sizing_name: str, method: str) -> SizingSchema:
    from ..runtime import current

    runtime = current()
    schema: SizingSchema | None = runtime.sizings.get(sizing_name)
    if schema is None:
        raise RegistryError(f"sizing {sizing_name!r} not found")
    if schema.method != method:
        raise ValidationError(
            f'Sizing method mismatch: sizing "{sizing_name}" is configured as '
            f'"{schema.method}" but "{method}" was requested'
        )
    runtime.logger.info(f"PositionSize.{method}", {"sizing_name": sizing_name})
    return schema


PositionSize = PositionSizeUtils()
