"""Real and sample market data sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .sample import SAMPLE_END, SAMPLE_START, SAMPLE_SYMBOLS, get_sample_candles

if TYPE_CHECKING:
    from ..schema import ExchangeSchema


def add_sample_exchange(exchange_name: str = "sample") -> ExchangeSchema:
    """Register the built-in sample market (1m candles of 2024-2025, generated locally)."""
    from ..schema import add_exchange

    return add_exchange(
        exchange_name,
        get_candles=get_sample_candles,
        note=f"built-in sample market: {', '.join(SAMPLE_SYMBOLS)}",
    )


__all__ = [
    "SAMPLE_END",
    "SAMPLE_START",
    "SAMPLE_SYMBOLS",
    "add_sample_exchange",
    "get_sample_candles",
]
