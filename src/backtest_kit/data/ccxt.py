"""The shared ccxt pieces: creating an exchange from its id and config, and fetching one page
of OHLCV candles with retries (97 §2).

Owns the import of ccxt (extra ``ccxt``, asyncio flavour `ccxt.async_support`), the error
naming the extra, the exchange construction rule
``getattr(ccxt, exchange_id)({"enableRateLimit": True, **config})``, the timeframe check, and
the retry policy: `RateLimitExceeded` and `NetworkError` are retried with exponential back-off
(at most `attempts` tries per page), any other error is raised at once. Must not touch the
candle store or the runtime: the downloader and a live adapter build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from ..errors import BacktestKitError

DEFAULT_ATTEMPTS: Final = 5
DEFAULT_RETRY_DELAY: Final = 1.0  # seconds before the 2nd try; doubled before each next one

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
OnRetry = Callable[[int, BaseException, float], None]  # (attempt that failed, error, delay s)


def require_ccxt() -> Any:
    """`ccxt.async_support`, or a `BacktestKitError` naming the extra to install."""
    try:
        import ccxt.async_support as ccxt_async
    except ImportError:
        raise BacktestKitError(
            'downloading from an exchange needs ccxt: pip install "backtest-kit[ccxt]"'
        ) from None
    return ccxt_async


def create_exchange(exchange_id: str, config: Mapping[str, Any] | None = None) -> Any:
    """A ccxt async exchange with ccxt's rate limiter on; `config` (API keys, options,
    overridden ``urls``) is merged over ``{"enableRateLimit": True}``. Close it with
    ``await exchange.close()``::

        exchange = create_exchange("binance", {"options": {"defaultType": "spot"}})
    """
    ccxt_async = require_ccxt()
    known: list[str] = list(getattr(ccxt_async, "exchanges", []))
    cls = getattr(ccxt_async, exchange_id, None) if exchange_id in known else None
    if cls is None:
        raise BacktestKitError(
            f"unknown ccxt exchange id {exchange_id!r}; ccxt knows {len(known)} exchanges, "
            f"e.g. {', '.join(k for k in ('binance', 'bybit', 'okx', 'kraken') if k in known)}"
        )
    if config is not None and not isinstance(config, Mapping):
        raise BacktestKitError(f"ccxt_config must be a dict, got {type(config).__name__}")
    return cls({"enableRateLimit": True, **(config or {})})


def check_timeframe(exchange: Any, interval: str) -> None:
    """Raise when the exchange lists its timeframes and `interval` is not one of them."""
    if not exchange.has.get("fetchOHLCV"):
        raise BacktestKitError(f"ccxt exchange {exchange.id!r} cannot fetch OHLCV candles")
    timeframes = getattr(exchange, "timeframes", None)
    if timeframes and interval not in timeframes:
        raise BacktestKitError(
            f"ccxt exchange {exchange.id!r} has no {interval!r} candles; "
            f"its timeframes: {', '.join(timeframes)}"
        )


def is_retryable(error: BaseException) -> bool:
    """Rate-limit and network errors are worth another try; anything else is not."""
    ccxt_async = require_ccxt()
    return isinstance(error, ccxt_async.RateLimitExceeded | ccxt_async.NetworkError)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Await `call()`, again after rate-limit and network errors.

    The delay before try ``n + 1`` is ``retry_delay * 2 ** (n - 1)`` seconds; after `attempts`
    tries the last error is raised, and a non-retryable error is raised at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = retry_delay * 2 ** (attempt - 1)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await sleep(delay)
    raise ValueError(f"attempts must be >= 1, got {attempts}")


async def fetch_ohlcv_page(
    exchange: Any,
    symbol: str,
    interval: str,
    since: int | None,
    limit: int | None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> list[list[Any]]:
    """One `fetch_ohlcv` call with `call_with_retries`: ccxt's rows
    ``[timestamp_ms, open, high, low, close, volume]``, oldest first."""

    async def call() -> list[list[Any]]:
        return list(await exchange.fetch_ohlcv(symbol, interval, since, limit) or [])

    return await call_with_retries(
        call, attempts=attempts, retry_delay=retry_delay, sleep=sleep, on_retry=on_retry
    )


def ohlcv_page_limit(exchange: Any, symbol: str) -> int | None:
    """The most candles one `fetch_ohlcv` returns for `symbol`, from ccxt's ``features``
    (e.g. 1000 on Binance spot, 300 on OKX), or None when ccxt does not say. Needs the
    markets loaded."""
    try:
        market = exchange.market(symbol)
        node = (exchange.features or {}).get(market.get("type") or "spot") or {}
        if "fetchOHLCV" not in node:  # swap / future: one level more, linear or inverse
            node = node.get("linear" if market.get("linear") else "inverse") or {}
        limit = (node.get("fetchOHLCV") or {}).get("limit")
    except Exception:  # ccxt's features are descriptive: absent or odd means unknown
        return None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_RETRY_DELAY",
    "call_with_retries",
    "check_timeframe",
    "create_exchange",
    "fetch_ohlcv_page",
    "is_retryable",
    "ohlcv_page_limit",
    "require_ccxt",
]
