"""Download candles from a ccxt exchange into the candle store (97 §2).

Owns the paging loop per symbol: resume after the last stored candle (or fill in before the
first one), `fetch_ohlcv` page after page until `end`, each page written to the store as it
arrives (so an interruption loses at most the page in flight and a rerun never duplicates),
empty pages (end of data, or a gap the exchange answers with nothing), repeated candles, the
progress bar and the `DownloadReport`. The exchange, the rate limiter and the retries come
from `data/ccxt.py`; validation and storage from `data/store.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import BacktestKitError, ExchangeError, ValidationError
from ..intervals import INTERVAL_MS, align, iso, to_ms
from .ccxt import (
    DEFAULT_ATTEMPTS,
    DEFAULT_RETRY_DELAY,
    call_with_retries,
    check_timeframe,
    create_exchange,
    fetch_ohlcv_page,
    ohlcv_page_limit,
)
from .store import CandleStore, find_gaps, require_pyarrow

DEFAULT_LIMIT: Final = 1000  # candles asked per page, at most the exchange's own maximum


@dataclass(frozen=True, slots=True)
class SymbolReport:
    """What a download did for one symbol. Times are open times in int ms UTC; `first`,
    `last` and `gaps` (half-open ``[start, end)`` ranges) describe what the store holds in the
    requested range after the download; `error` is None when the symbol completed."""

    symbol: str
    added: int
    first: int | None
    last: int | None
    gaps: list[tuple[int, int]]
    error: str | None
    pages: int = 0
    duplicates: int = 0  # candles received twice, or already stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "added": self.added,
            "first": self.first,
            "last": self.last,
            "gaps": [list(gap) for gap in self.gaps],
            "error": self.error,
            "pages": self.pages,
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True, slots=True)
class DownloadReport:
    """The result of `download`: one `SymbolReport` per symbol, in the order asked::

    report = bk.data.download("binance", ["BTC/USDT"], "1m", "2024-01", "2024-02", "candles")
    report["BTC/USDT"].added, report.ok
    """

    exchange_id: str
    interval: str
    start: int
    end: int
    root: str
    symbols: tuple[SymbolReport, ...] = field(default_factory=tuple)

    def __getitem__(self, symbol: str) -> SymbolReport:
        for report in self.symbols:
            if report.symbol == symbol:
                return report
        raise KeyError(symbol)

    @property
    def ok(self) -> bool:
        """True when every symbol completed without an error."""
        return all(report.error is None for report in self.symbols)

    @property
    def added(self) -> int:
        return sum(report.added for report in self.symbols)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange_id": self.exchange_id,
            "interval": self.interval,
            "start": self.start,
            "end": self.end,
            "root": self.root,
            "symbols": [report.to_dict() for report in self.symbols],
        }

    def format(self) -> str:
        """A Markdown table, one row per symbol (what the command line prints)."""
        lines = [
            "| Symbol | Added | First | Last | Gaps | Missing | Error |",
            "| --- | ---: | --- | --- | ---: | ---: | --- |",
        ]
        step = INTERVAL_MS[self.interval]
        for r in self.symbols:
            missing = sum((end - start) // step for start, end in r.gaps)
            lines.append(
                f"| {r.symbol} | {r.added} | {iso(r.first) if r.first is not None else '-'} | "
                f"{iso(r.last) if r.last is not None else '-'} | {len(r.gaps)} | {missing} | "
                f"{r.error or ''} |"
            )
        return "\n".join(lines)


def download(
    exchange_id: str,
    symbols: str | Sequence[str],
    interval: str,
    start: object,
    end: object,
    root: str | os.PathLike[str],
    *,
    ccxt_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    limit: int = DEFAULT_LIMIT,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
) -> DownloadReport:
    """Download the candles opening in ``[start, end)`` of each symbol into the store at `root`.

    `symbols` is a list, or a string of one symbol or several separated by commas; `start` and
    `end` a datetime (naive = UTC), an ISO-8601 string or int ms. `limit` caps the candles asked
    per page (the exchange's own maximum from ccxt applies too); `attempts` and `retry_delay`
    set the retries of a page on rate-limit and network errors.

    Resumes after the last stored candle, so an interrupted download is finished by running it
    again, without duplicating or losing a candle. A symbol that fails (after `attempts` tries
    per page on rate-limit and network errors) is reported and the next one goes on::

        report = bk.data.download("binance", ["BTC/USDT", "ETH/USDT"], "1m",
                                  "2024-01-01", "2025-01-01", "candles")

    Inside a running event loop (Jupyter), ``await download_async(...)`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise BacktestKitError(
            "download() cannot run inside a running event loop: "
            "await bk.data.download_async(...) instead"
        )
    return asyncio.run(
        download_async(
            exchange_id,
            symbols,
            interval,
            start,
            end,
            root,
            ccxt_config=ccxt_config,
            progress=progress,
            limit=limit,
            attempts=attempts,
            retry_delay=retry_delay,
        )
    )


async def download_async(
    exchange_id: str,
    symbols: str | Sequence[str],
    interval: str,
    start: object,
    end: object,
    root: str | os.PathLike[str],
    *,
    ccxt_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    limit: int = DEFAULT_LIMIT,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
) -> DownloadReport:
    """`download` as a coroutine."""
    # a string is one symbol or several separated by commas (no ccxt symbol has a comma)
    names = [s.strip() for s in symbols.split(",")] if isinstance(symbols, str) else list(symbols)
    if not names or not all(isinstance(s, str) and s for s in names):
        raise ValidationError(f"symbols must be non-empty strings, got {symbols!r}")
    if interval not in INTERVAL_MS:
        raise ValidationError(f"invalid interval {interval!r}; valid: {', '.join(INTERVAL_MS)}")
    lo, hi = to_ms(start, "start"), to_ms(end, "end")
    if hi <= lo:
        raise ValidationError(f"end {iso(hi)} must be after start {iso(lo)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be an int >= 1, got {limit!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValidationError(f"attempts must be an int >= 1, got {attempts!r}")
    require_pyarrow()
    store = CandleStore(root)
    store.path(exchange_id, names[0], interval)  # a bad exchange id fails before any request
    exchange = create_exchange(exchange_id, ccxt_config)
    reports: list[SymbolReport] = []
    try:
        check_timeframe(exchange, interval)
        for symbol in names:
            job = _SymbolDownload(
                exchange, store, exchange_id, symbol, interval, lo, hi, limit, attempts, retry_delay
            )
            reports.append(await job.run(progress))
    finally:
        await exchange.close()
    return DownloadReport(exchange_id, interval, lo, hi, str(store.root), tuple(reports))


class _SymbolDownload:
    """The paging loop of one symbol."""

    def __init__(
        self,
        exchange: Any,
        store: CandleStore,
        exchange_id: str,
        symbol: str,
        interval: str,
        lo: int,
        hi: int,
        limit: int,
        attempts: int,
        retry_delay: float,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.exchange_id = exchange_id
        self.symbol = symbol
        self.interval = interval
        self.step = INTERVAL_MS[interval]
        self.lo = -(-lo // self.step) * self.step  # the first slot opening at or after start
        self.hi = hi
        self.limit = limit
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.added = 0
        self.pages = 0
        self.duplicates = 0
        self.page = limit  # candles asked per page: at most the exchange's maximum
        self.newest: int | None = None  # the exchange's newest candle, once asked
        self.bar: Any = None

    async def run(self, progress: bool) -> SymbolReport:
        error: str | None = None
        if progress:
            from tqdm import tqdm

            total = max((self.hi - self.lo + self.step - 1) // self.step, 0)
            self.bar = tqdm(
                total=total, desc=self.symbol, unit=" candles", unit_scale=True, leave=True
            )
        try:
            try:
                await call_with_retries(
                    self.exchange.load_markets,
                    attempts=self.attempts,
                    retry_delay=self.retry_delay,
                )
                self.exchange.market(self.symbol)  # an unknown symbol: ccxt's BadSymbol
                self.page = min(self.limit, ohlcv_page_limit(self.exchange, self.symbol) or 10**9)
                for a, b in self._missing_ranges():
                    await self._fetch_range(a, b)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # reported; the next symbol goes on
                error = f"{type(exc).__name__}: {exc}"
            try:
                self.store.compact(self.exchange_id, self.symbol, self.interval)
            except BacktestKitError as exc:
                error = error or f"{type(exc).__name__}: {exc}"
        finally:
            if self.bar is not None:
                self.bar.close()
        stored = self.store.read(self.exchange_id, self.symbol, self.interval, self.lo, self.hi)
        ts = stored.timestamp
        return SymbolReport(
            self.symbol,
            self.added,
            int(ts[0]) if len(ts) else None,
            int(ts[-1]) if len(ts) else None,
            find_gaps(ts, self.step),
            error,
            self.pages,
            self.duplicates,
        )

    def _missing_ranges(self) -> list[tuple[int, int]]:
        """Before the first stored candle and after the last one (a rerun resumes there)."""
        coverage = self.store.coverage(self.exchange_id, self.symbol, self.interval)
        if coverage.first is None or coverage.last is None:
            return [(self.lo, self.hi)]
        ranges = []
        if self.lo < coverage.first:
            ranges.append((self.lo, min(self.hi, coverage.first)))
        resume = max(self.lo, coverage.last + self.step)
        if resume < self.hi:
            ranges.append((resume, self.hi))
        if self.bar is not None:
            stored = self.store.read(self.exchange_id, self.symbol, self.interval, self.lo, self.hi)
            self.bar.update(len(stored))
        return ranges

    async def _fetch_range(self, a: int, b: int) -> None:
        from ..core.exchange import wall_clock_ms

        since = a
        while since < b:
            closed = align(wall_clock_ms(), self.step)  # candles opening before it have closed
            if since >= closed:
                return  # not closed yet: never stored
            slots = (b - since + self.step - 1) // self.step
            raw = await fetch_ohlcv_page(
                self.exchange,
                self.symbol,
                self.interval,
                since,
                min(self.page, slots),
                attempts=self.attempts,
                retry_delay=self.retry_delay,
            )
            self.pages += 1
            stop = min(b, closed)
            rows = self._page_rows(raw, since, stop)
            if rows:
                added = self.store.write(self.exchange_id, self.symbol, self.interval, rows)
                self.duplicates += len(rows) - added
                self.added += added
                advanced = int(rows[-1][0]) + self.step
            elif any(_time(row) >= stop for row in raw):
                advanced = stop  # nothing left in the range (or nothing closed), newer exists
            elif await self._has_newer(since):
                # an exchange answering the window [since, since + page) with nothing: a gap.
                # `page` is at most the exchange's own maximum (ccxt's `features`), so the
                # window asked is the window answered and nothing is jumped over.
                advanced = since + min(self.page, slots) * self.step
            else:
                advanced = b  # no newer data: this symbol is done
            self._progress(since, min(advanced, b), len(rows))
            since = advanced

    def _page_rows(self, raw: list[list[Any]], since: int, b: int) -> list[list[Any]]:
        """The rows opening in [since, b), a candle repeated with equal values kept once
        (`b` is at most the open time of the candle still forming)."""
        rows: list[list[Any]] = []
        for row in raw:
            t = _time(row)
            if not since <= t < b:
                continue
            if rows and _time(rows[-1]) == t:
                if list(rows[-1]) != list(row):
                    raise ExchangeError(
                        f"{self.exchange_id} returned two different {self.symbol} candles at "
                        f"{iso(t)}: {list(rows[-1])} and {list(row)}"
                    )
                self.duplicates += 1
                continue
            rows.append(list(row))
        return rows

    async def _has_newer(self, since: int) -> bool:
        """Whether the exchange has a candle opening at or after `since` (asked once)."""
        if self.newest is None or self.newest < since:
            latest = await fetch_ohlcv_page(
                self.exchange,
                self.symbol,
                self.interval,
                None,
                1,
                attempts=self.attempts,
                retry_delay=self.retry_delay,
            )
            self.newest = max((_time(row) for row in latest), default=-1)
        return self.newest >= since

    def _progress(self, since: int, advanced: int, rows: int) -> None:
        if self.bar is not None:
            # candles stored, plus the slots of a gap passed over, so the bar tracks time
            skipped = (advanced - since) // self.step - rows
            self.bar.update(rows + max(skipped, 0))


def _time(row: Sequence[Any]) -> int:
    value = row[0] if len(row) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExchangeError(f"ccxt returned a candle without an int timestamp: {list(row)!r}")
    return int(value)


__all__ = ["DownloadReport", "SymbolReport", "download", "download_async"]
