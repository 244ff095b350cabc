"""A ccxt exchange as a backtest-kit exchange (50 §1), for live trading and replays (40).

Owns `add_ccxt_exchange`, which registers an ordinary exchange whose `get_candles` pages
through ccxt's `fetch_ohlcv` and whose `format_price` / `format_quantity` round with the
market's precision, and `close_ccxt_exchanges`. One ccxt instance per registered exchange and
event loop: ccxt binds its HTTP session and rate limiter to the loop of its first request, so
an instance is reused while that loop lives and replaced in a new one. Each instance is closed
by `close_ccxt_exchanges()` or, failing that, when its loop ends under `asyncio.run` (a
closer task that `asyncio.run` cancels on exit). Must not validate candles (the engine does,
50 §3) nor keep candles between calls (closed candles are asked for exactly, as live needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ..errors import ExchangeError, ValidationError
from ..intervals import INTERVAL_MS, align, datetime_to_ms, iso
from ..jsnum import to_fixed
from .ccxt import (
    DEFAULT_ATTEMPTS,
    DEFAULT_RETRY_DELAY,
    call_with_retries,
    check_timeframe,
    create_exchange,
    fetch_ohlcv_page,
    ohlcv_page_limit,
    require_ccxt,
)

if TYPE_CHECKING:
    from ..schema import ExchangeSchema

DEFAULT_PAGE: Final = 1000  # candles asked per request, at most the exchange's own maximum

_sources: weakref.WeakSet[CcxtSource] = weakref.WeakSet()


def add_ccxt_exchange(
    exchange_name: str,
    exchange_id: str,
    *,
    ccxt_config: Mapping[str, Any] | None = None,
    note: str = "",
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
) -> ExchangeSchema:
    """Register `exchange_name` as the ccxt exchange `exchange_id` (extra ``ccxt``)::

        bk.data.add_ccxt_exchange("binance", "binance")
        bk.Live.background("BTC/USDT", strategy_name="sma", exchange_name="binance")

    `get_candles` pages through `fetch_ohlcv` (the exchange's page maximum, ccxt's rate
    limiter; a page failing with a rate-limit or network error is tried `attempts` times,
    `retry_delay` seconds before the 2nd try, doubled each time). `format_price` and
    `format_quantity` use the market's precision (ccxt `price_to_precision` /
    `amount_to_precision`; quantities are truncated, prices rounded). Symbols are ccxt's
    unified ones (``BTC/USDT``) or the exchange's ids (``BTCUSDT``). `ccxt_config` (API keys,
    options, overridden ``urls``) is merged over ``{"enableRateLimit": True}``. Close the
    connections with ``await bk.data.close_ccxt_exchanges()`` when done.
    """
    from ..schema import add_exchange

    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValidationError(f"add_ccxt_exchange: attempts must be an int >= 1, got {attempts!r}")
    if isinstance(retry_delay, bool) or not isinstance(retry_delay, int | float) or retry_delay < 0:
        raise ValidationError(
            f"add_ccxt_exchange: retry_delay must be a number of seconds >= 0, got {retry_delay!r}"
        )
    if ccxt_config is not None and not isinstance(ccxt_config, Mapping):
        raise ValidationError(
            f"add_ccxt_exchange: ccxt_config must be a dict, got {type(ccxt_config).__name__}"
        )
    source = CcxtSource(exchange_name, exchange_id, ccxt_config, attempts, float(retry_delay))
    schema = add_exchange(
        exchange_name,
        get_candles=source.get_candles,
        format_price=source.format_price,
        format_quantity=source.format_quantity,
        note=note or f"ccxt exchange {exchange_id!r}",
    )
    _sources.add(source)
    return schema


async def close_ccxt_exchanges() -> None:
    """Close the ccxt instances of every `add_ccxt_exchange` exchange opened in this event
    loop (their HTTP sessions); a later request opens a new one."""
    for source in list(_sources):
        await source.close()


def ccxt_source(schema: ExchangeSchema) -> CcxtSource | None:
    """The ccxt source behind a registered exchange, or None when it is not a ccxt one."""
    owner = getattr(schema.get_candles, "__self__", None)
    return owner if isinstance(owner, CcxtSource) else None


class CcxtSource:
    """The data source of one `add_ccxt_exchange` exchange: its ccxt instance, bound to the
    event loop of its first request, markets loaded once."""

    def __init__(
        self,
        exchange_name: str,
        exchange_id: str,
        config: Mapping[str, Any] | None,
        attempts: int,
        retry_delay: float,
    ) -> None:
        self.exchange_name = exchange_name
        self.exchange_id = exchange_id
        self.config = dict(config or {})
        self.attempts = attempts
        self.retry_delay = retry_delay
        # built now, so a wrong id, config or a missing ccxt fail at registration; no I/O
        # happens before the first request, which binds it to the running loop
        self.exchange: Any = self._create()
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop `exchange` is bound to
        self._closer: asyncio.Task[None] | None = None
        self._markets: tuple[Any, Any] | None = None  # (markets, currencies) of a retired one

    def _create(self) -> Any:
        exchange = create_exchange(self.exchange_id, self.config)
        if "timeout_on_exit" not in self.config:
            exchange.timeout_on_exit = 0  # ccxt's pause on close is for websockets; none here
        return exchange

    # -- the instance ---------------------------------------------------------------------

    async def ready(self) -> Any:
        """The ccxt instance of the running loop, its markets loaded."""
        loop = asyncio.get_running_loop()
        if self.loop is not None and (
            self.loop is not loop or self._closer is None or self._closer.done()
        ):
            self._retire()  # bound to another loop, or closed
        if self.exchange is None:
            self.exchange = self._create()
            if self._markets is not None:  # loaded once per registration, not once per loop
                self.exchange.set_markets(*self._markets)
        if self.loop is None:
            self.loop = loop
            self._closer = loop.create_task(
                _close_when_cancelled(self.exchange),
                name=f"backtest-kit: close ccxt exchange {self.exchange_name!r} on loop exit",
            )
        exchange = self.exchange
        if not exchange.markets:
            try:
                await call_with_retries(
                    exchange.load_markets, attempts=self.attempts, retry_delay=self.retry_delay
                )
            except require_ccxt().BaseError as exc:
                raise ExchangeError(
                    f"exchange {self.exchange_name!r}: ccxt {self.exchange_id} could not load "
                    f"its markets: {type(exc).__name__}: {exc}"
                ) from exc
        return exchange

    def _retire(self) -> None:
        """Drop the instance, keeping its markets. One still open in another running loop is
        closed there; one of an ended loop was closed by its closer task when asyncio.run
        cancelled it."""
        old, old_loop, closer = self.exchange, self.loop, self._closer
        if old is not None and old.markets:
            self._markets = (old.markets, old.currencies)
        if (
            old is not None
            and old_loop is not None
            and old_loop.is_running()
            and closer is not None
            and not closer.done()
        ):
            old_loop.call_soon_threadsafe(closer.cancel)
        self.exchange, self.loop, self._closer = None, None, None

    async def close(self) -> None:
        """Close the instance if it was opened in the running loop."""
        closer = self._closer
        if self.loop is not asyncio.get_running_loop() or closer is None:
            return
        closer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closer
        self._retire()

    def market(self, exchange: Any, symbol: str) -> dict[str, Any]:
        """ccxt's market of `symbol` (unified ``BTC/USDT`` or the exchange's id), or an
        `ExchangeError` naming the nearest known symbols."""
        ccxt_async = require_ccxt()
        if not isinstance(symbol, str) or not symbol:
            raise ExchangeError(
                f"exchange {self.exchange_name!r}: symbol must be a string, got {symbol!r}"
            )
        try:
            market: dict[str, Any] = exchange.market(symbol)
        except ccxt_async.BaseError:
            symbols = list(exchange.symbols or [])
            near = difflib.get_close_matches(symbol, [*symbols, *exchange.markets_by_id], n=3)
            hint = f"; did you mean {', '.join(repr(s) for s in near)}?" if near else ""
            raise ExchangeError(
                f"exchange {self.exchange_name!r}: ccxt {self.exchange_id} has no market "
                f"{symbol!r} ({len(symbols)} markets, e.g. "
                f"{', '.join(symbols[:5]) or 'none'}){hint}"
            ) from None
        return market

    # -- the exchange schema's functions ----------------------------------------------------

    async def get_candles(
        self, symbol: str, interval: str, since: datetime, limit: int
    ) -> list[list[Any]]:
        """The candles opening in ``[since, since + (limit - 1) * interval]`` that have
        closed at the wall clock, oldest first, as ``[ms, open, high, low, close, volume]``;
        fewer when the exchange has fewer (gaps, end of data)."""
        from ..core.exchange import wall_clock_ms

        exchange = await self.ready()
        market = self.market(exchange, symbol)
        check_timeframe(exchange, interval)
        step = INTERVAL_MS[interval]
        lo = datetime_to_ms(since)
        cursor = -(-lo // step) * step  # the first slot at or after `since`
        last = min(lo + (limit - 1) * step, align(wall_clock_ms(), step) - step)
        page = min(DEFAULT_PAGE, ohlcv_page_limit(exchange, market["symbol"]) or DEFAULT_PAGE)
        rows: list[list[Any]] = []
        while cursor <= last and len(rows) < limit:
            asked = min(page, (last - cursor) // step + 1)
            raw = await self._fetch(exchange, market["symbol"], interval, cursor, asked)
            kept = self._keep(raw, rows, cursor, last)
            if kept:
                cursor = int(rows[-1][0]) + step
            elif any(_time(row, self.exchange_id) > last for row in raw):
                break  # the exchange went past the range: nothing more in it
            else:
                # nothing in [cursor, cursor + asked): a gap or the end of the data; `asked` is
                # at most the exchange's own page, so no candle is jumped over
                cursor += asked * step
        return rows[:limit]

    async def _fetch(
        self, exchange: Any, symbol: str, interval: str, since: int, limit: int
    ) -> list[list[Any]]:
        try:
            return await fetch_ohlcv_page(
                exchange,
                symbol,
                interval,
                since,
                limit,
                attempts=self.attempts,
                retry_delay=self.retry_delay,
            )
        except require_ccxt().BaseError as exc:
            raise ExchangeError(
                f"exchange {self.exchange_name!r}: ccxt {self.exchange_id} "
                f"fetch_ohlcv({symbol!r}, {interval!r}, since={iso(since)}, limit={limit}) "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _keep(self, raw: list[list[Any]], rows: list[list[Any]], lo: int, hi: int) -> int:
        """Append the rows of `raw` opening in [lo, hi]; a candle repeated with equal values
        is kept once. Returns how many were appended."""
        kept = 0
        for row in raw:
            t = _time(row, self.exchange_id)
            if not lo <= t <= hi:
                continue
            if rows and t <= rows[-1][0]:
                if t == rows[-1][0] and list(row[1:6]) == rows[-1][1:]:
                    continue
                raise ExchangeError(
                    f"exchange {self.exchange_name!r}: ccxt {self.exchange_id} returned "
                    f"{list(row)!r} after the candle of {iso(int(rows[-1][0]))} "
                    "(out of order or a conflicting duplicate)"
                )
            rows.append([t, *row[1:6]])
            kept += 1
        return kept

    async def format_price(self, symbol: str, price: float) -> str:
        """`price` rounded to the market's price precision, e.g. ``'40123.46'``."""
        return await self._format(symbol, price, "price", "price_to_precision")

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        """`quantity` truncated to the market's amount precision, e.g. ``'0.12345'``."""
        return await self._format(symbol, quantity, "amount", "amount_to_precision")

    async def _format(self, symbol: str, value: float, kind: str, method: str) -> str:
        exchange = await self.ready()
        market = self.market(exchange, symbol)
        if (market.get("precision") or {}).get(kind) is None:
            return to_fixed(float(value), 8)  # the exchange does not say: the default format
        try:
            return str(getattr(exchange, method)(market["symbol"], value))
        except require_ccxt().BaseError as exc:
            raise ExchangeError(
                f"exchange {self.exchange_name!r}: cannot format {value!r} for "
                f"{market['symbol']}: {type(exc).__name__}: {exc}"
            ) from None


async def _close_when_cancelled(exchange: Any) -> None:
    """Wait forever; once cancelled (by `close`, or by asyncio.run at loop exit), close
    the ccxt instance."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await _close_quietly(exchange)


async def _close_quietly(exchange: Any) -> None:
    with contextlib.suppress(Exception):
        await exchange.close()


def _time(row: Any, exchange_id: str) -> int:
    value = row[0] if len(row) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExchangeError(f"ccxt {exchange_id} returned a candle without a timestamp: {row!r}")
    return int(value)


__all__ = ["CcxtSource", "add_ccxt_exchange", "ccxt_source", "close_ccxt_exchanges"]
