"""Real and sample market data sources."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .sample import SAMPLE_END, SAMPLE_START, SAMPLE_SYMBOLS, get_sample_candles

if TYPE_CHECKING:
    from ..schema import ExchangeSchema
    from .download import DownloadReport, SymbolReport, download, download_async
    from .exchange_ccxt import add_ccxt_exchange, close_ccxt_exchanges
    from .sources import add_csv_exchange, add_frame_exchange, add_store_exchange
    from .store import CandleStore, Coverage, SeriesInfo

# The store, the sources and the downloader are imported on first use: `import backtest_kit`
# stays fast for users who never touch Parquet or ccxt.
_LAZY = {
    "DownloadReport": "download",
    "SymbolReport": "download",
    "download": "download",
    "download_async": "download",
    "add_ccxt_exchange": "exchange_ccxt",
    "close_ccxt_exchanges": "exchange_ccxt",
    "add_csv_exchange": "sources",
    "add_frame_exchange": "sources",
    "add_store_exchange": "sources",
    "CandleStore": "store",
    "Coverage": "store",
    "SeriesInfo": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backtest_kit.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
    "CandleStore",
    "Coverage",
    "DownloadReport",
    "SeriesInfo",
    "SymbolReport",
    "add_ccxt_exchange",
    "add_csv_exchange",
    "add_frame_exchange",
    "add_sample_exchange",
    "add_store_exchange",
    "close_ccxt_exchanges",
    "download",
    "download_async",
    "get_sample_candles",
]
