"""ExchangeClient: candles for one exchange schema, without look-ahead (50).

Owns the user's `get_candles` calls (attempts, validation, anomaly filter), the backtest
candle store with read-ahead, the backward windows served to strategies, the VWAP price and
the forward view handed to the fast-forward. Must not know about signals or strategies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ExchangeError, ValidationError
from ..events import call_user
from ..intervals import CANDLE_INTERVALS, INTERVAL_MS, MINUTE_MS, align, iso, ms_to_datetime
from ..jsnum import to_fixed
from ..model.candles import Candles
from .candle_check import describe_request, normalize_response

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..schema import ExchangeSchema

# Read-ahead page: large enough that a year of 1m candles takes a dozen calls to the source.
PAGE_SIZE = 50_000
_BLOCK_BITS = 14
_BLOCK = 1 << _BLOCK_BITS


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def compute_vwap(high: Any, low: Any, close: Any, volume: Any) -> float:
    """VWAP of a window, summed oldest first (50 §7); mean of closes when volume is zero."""
    num = 0.0
    vol = 0.0
    for h, lo, c, v in zip(
        high.tolist(), low.tolist(), close.tolist(), volume.tolist(), strict=True
    ):
        num += (h + lo + c) / 3 * v
        vol += v
    if vol != 0:
        return num / vol
    total = 0.0
    closes = close.tolist()
    for c in closes:
        total += c
    return total / len(closes)


def rolling_vwap(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    n: int,
    lo: int,
    hi: int,
) -> np.ndarray:
    """For each j in [lo, hi): the VWAP of candles [max(0, j - n + 1), j], index-based.

    Bit-identical to `compute_vwap` on each window: window sums are built by adding the n
    shifted arrays oldest first (never cumulative-sum differences), as 20 §7 requires.
    """
    out = np.empty(max(hi - lo, 0), np.float64)
    full = max(lo, n - 1)  # the first index whose window holds n candles
    for j in range(lo, min(full, hi)):
        a = max(0, j - n + 1)
        out[j - lo] = compute_vwap(
            high[a : j + 1], low[a : j + 1], close[a : j + 1], volume[a : j + 1]
        )
    if full >= hi:
        return out
    a = full - n + 1
    count = hi - full
    tv = (high[a:hi] + low[a:hi] + close[a:hi]) / 3 * volume[a:hi]
    num = tv[0:count].copy()
    vol = volume[a : a + count].copy()
    for s in range(1, n):
        num += tv[s : s + count]
        vol += volume[a + s : a + s + count]
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = num / vol
    zero = vol == 0
    if zero.any():
        closes = close[a : a + count].copy()
        for s in range(1, n):
            closes += close[a + s : a + s + count]
        vwap[zero] = closes[zero] / n
    out[full - lo :] = vwap
    return out


@dataclass
class SeriesStore:
    """Validated candles of one (exchange, symbol, interval) and the ranges known complete."""

    interval_ms: int
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cols: tuple[np.ndarray, ...] = field(
        default_factory=lambda: tuple(np.empty(0, np.float64) for _ in range(5))
    )
    ranges: list[tuple[int, int]] = field(default_factory=list)  # sorted, disjoint, inclusive
    # gap-free stretches of candles: (first open time, last open time, index of the first)
    runs: list[tuple[int, int, int]] = field(default_factory=list)
    exact: bool = False  # a page failed: serve exact requests for the rest of the run
    # rolling VWAPs by (window, block of _BLOCK indices), filled on demand
    vwap_blocks: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def vwap_at(self, k: int, n: int) -> float:
        """VWAP of the n candles ending with index k (k >= n - 1), from the block cache."""
        block = k >> _BLOCK_BITS
        values = self.vwap_blocks.get((n, block))
        if values is None:
            start = block << _BLOCK_BITS
            _, h, low, c, v = self.cols
            values = rolling_vwap(h, low, c, v, n, start, min(start + _BLOCK, len(self.ts)))
            self.vwap_blocks[(n, block)] = values
        return float(values[k & (_BLOCK - 1)])

    def dense_index(self, lo: int, hi: int) -> int:
        """Index of the candle at `lo` when a candle exists at every slot of [lo, hi], else -1."""
        for first, last, index in self.runs:
            if first <= lo and hi <= last:
                return index + (lo - first) // self.interval_ms
        return -1

    def covering(self, t: int) -> tuple[int, int] | None:
        """The complete range containing slot `t`, if any."""
        for lo, hi in self.ranges:
            if lo <= t <= hi:
                return lo, hi
            if lo > t:
                return None
        return None

    def add(self, lo: int, hi: int, candles: Candles) -> None:
        """Record that [lo, hi] is complete and holds exactly `candles`."""
        ts = self.ts
        a = int(np.searchsorted(ts, lo, "left"))
        b = int(np.searchsorted(ts, hi, "right"))
        new_ts = np.concatenate((ts[:a], candles.timestamp, ts[b:]))
        cols = (candles.open, candles.high, candles.low, candles.close, candles.volume)
        new_cols = tuple(
            np.concatenate((old[:a], fresh, old[b:]))
            for old, fresh in zip(self.cols, cols, strict=True)
        )
        for array in (new_ts, *new_cols):
            array.flags.writeable = False
        self.ts, self.cols = new_ts, new_cols
        # indices from `a` on changed: drop the cached blocks whose windows reach them
        stale = max(a - 1, 0) >> _BLOCK_BITS
        self.vwap_blocks = {key: val for key, val in self.vwap_blocks.items() if key[1] < stale}
        merged: list[tuple[int, int]] = []
        step = self.interval_ms
        for r_lo, r_hi in sorted([*self.ranges, (lo, hi)]):
            if merged and r_lo <= merged[-1][1] + step:
                merged[-1] = (merged[-1][0], max(merged[-1][1], r_hi))
            else:
                merged.append((r_lo, r_hi))
        self.ranges = merged
        breaks = np.flatnonzero(np.diff(new_ts) != step) + 1
        firsts = [0, *breaks.tolist()]
        lasts = [*(breaks - 1).tolist(), len(new_ts) - 1]
        self.runs = (
            [(int(new_ts[f]), int(new_ts[e]), f) for f, e in zip(firsts, lasts, strict=True)]
            if len(new_ts)
            else []
        )

    def view(self, a: int, b: int) -> Candles:
        o, h, lo, c, v = self.cols
        return Candles._wrap(self.ts[a:b], o[a:b], h[a:b], lo[a:b], c[a:b], v[a:b])


class ExchangeClient:
    """Candles and prices of one exchange in one mode (backtest: stored; live: exact)."""

    def __init__(self, schema: ExchangeSchema, runtime: Runtime, *, backtest: bool) -> None:
        self.schema = schema
        self.name = schema.exchange_name
        self.runtime = runtime
        self.backtest = backtest
        self.read_ahead = backtest  # switch kept for equivalence tests (50 §8.2)
        self.stores: dict[tuple[str, str], SeriesStore] = {}
        # seconds -> awaitable; a live run with a simulated clock replaces it (40 §9)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- the user's source ----------------------------------------------------------------

    async def fetch(self, symbol: str, interval: str, since: int, limit: int) -> Candles:
        """One request to the user's source with its attempts (50 §5)."""
        config = self.runtime.config
        attempts = config.CC_GET_CANDLES_RETRY_COUNT
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                raw = await call_user(
                    self.schema.get_candles, symbol, interval, ms_to_datetime(since), limit
                )
                candles = normalize_response(
                    raw,
                    exchange_name=self.name,
                    symbol=symbol,
                    interval=interval,
                    since=since,
                    limit=limit,
                    now_ms=wall_clock_ms(),
                    anomaly_factor=config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR,
                    min_candles_for_median=config.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN,
                )
            except Exception as exc:
                last = exc
                self.runtime.logger.alert(
                    "ExchangeClient.get_candles attempt failed",
                    {
                        "attempt": attempt,
                        "symbol": symbol,
                        "interval": interval,
                        "since": iso(since),
                        "limit": limit,
                        "error": f"{type(exc).__name__}: {exc}",
                    },
                )
                await self.sleep(config.CC_GET_CANDLES_RETRY_DELAY_MS / 1000)
                continue
            on_data = self.schema.callbacks.on_candle_data
            if on_data is not None:
                await call_user(on_data, symbol, interval, ms_to_datetime(since), limit, candles)
            return candles
        raise ExchangeError(
            f"{describe_request(self.name, symbol, interval, since, limit)} failed after "
            f"{attempts} attempts: {type(last).__name__}: {last}"
        ) from last

    # -- the backtest store ---------------------------------------------------------------

    def _store(self, symbol: str, interval: str) -> SeriesStore:
        key = (symbol, interval)
        store = self.stores.get(key)
        if store is None:
            store = self.stores[key] = SeriesStore(INTERVAL_MS[interval])
        return store

    def begin_run(self) -> None:
        """A new run starts: series that fell back to exact requests try read-ahead again."""
        for store in self.stores.values():
            store.exact = False

    async def _complete(
        self, store: SeriesStore, symbol: str, interval: str, lo: int, hi: int
    ) -> bool:
        """Make [lo, hi] complete in the store; False when read-ahead failed (exact mode)."""
        step = store.interval_ms
        last_closed = align(wall_clock_ms(), step) - step
        since = lo
        while since <= hi:
            covered = store.covering(since)
            if covered is not None:
                since = covered[1] + step
                continue
            if since > last_closed:
                return True  # nothing can exist yet: never stored, never requested
            limit = min(max((hi - since) // step + 1, PAGE_SIZE), (last_closed - since) // step + 1)
            page = await self._read_ahead(store, symbol, interval, since, limit)
            if page is None:
                return False
            if len(page) == 0:
                return True
            since = int(page.timestamp[-1]) + step
        return True

    async def _read_ahead(
        self, store: SeriesStore, symbol: str, interval: str, since: int, limit: int
    ) -> Candles | None:
        """Fetch one page into the store; None (and exact mode) when the page failed."""
        try:
            page = await self._fetch_page(symbol, interval, since, limit)
        except Exception as exc:
            self.runtime.logger.warn(
                "ExchangeClient.read_ahead failed, switching to exact requests",
                {"symbol": symbol, "interval": interval, "since": iso(since), "error": str(exc)},
            )
            store.exact = True
            return None
        if len(page) == 0:
            # by the source contract nothing exists in the requested slots
            store.add(since, since + (limit - 1) * store.interval_ms, page)
        else:
            store.add(since, int(page.timestamp[-1]), page)
        return page

    async def _fetch_page(self, symbol: str, interval: str, since: int, limit: int) -> Candles:
        """One read-ahead page: a single attempt; a failure is not an attempt (50 §8.2)."""
        config = self.runtime.config
        raw = await call_user(
            self.schema.get_candles, symbol, interval, ms_to_datetime(since), limit
        )
        candles = normalize_response(
            raw,
            exchange_name=self.name,
            symbol=symbol,
            interval=interval,
            since=since,
            limit=limit,
            now_ms=wall_clock_ms(),
            anomaly_factor=config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR,
            min_candles_for_median=config.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN,
        )
        on_data = self.schema.callbacks.on_candle_data
        if on_data is not None:
            await call_user(on_data, symbol, interval, ms_to_datetime(since), limit, candles)
        return candles

    # -- what strategies and engines ask for ----------------------------------------------

    async def window(self, symbol: str, interval: str, lo: int, hi: int) -> Candles:
        """Every candle with open time in [lo, hi] (a backward window, 50 §2)."""
        step = INTERVAL_MS[interval]
        if self.read_ahead:
            store = self._store(symbol, interval)
            if not store.exact:
                covered = store.covering(lo)
                if (covered is not None and covered[1] >= hi) or await self._complete(
                    store, symbol, interval, lo, hi
                ):
                    ts = store.ts
                    a = int(np.searchsorted(ts, lo, "left"))
                    b = int(np.searchsorted(ts, hi, "right"))
                    return store.view(a, b)
        return await self.fetch(symbol, interval, lo, (hi - lo) // step + 1)

    async def get_candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        """The last `limit` candles closed at `when`, oldest first (02 §1)."""
        if interval not in CANDLE_INTERVALS:
            raise ValidationError(
                f"get_candles: invalid interval {interval!r}; valid intervals: "
                f"{', '.join(CANDLE_INTERVALS)}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"get_candles: limit must be an int >= 1, got {limit!r}")
        step = INTERVAL_MS[interval]
        end = align(when, step)
        candles = await self.window(symbol, interval, end - limit * step, end - step)
        if len(candles) < limit:
            self.runtime.logger.warn(
                "ExchangeClient.get_candles",
                {"symbol": symbol, "interval": interval, "expected": limit, "got": len(candles)},
            )
        return candles

    def stored_vwap(self, symbol: str, when: int) -> float | None:
        """The VWAP at `when` when the store holds every candle of its window (no I/O, no
        search: index arithmetic and the cached rolling VWAP), else None."""
        if not self.read_ahead:
            return None
        store = self.stores.get((symbol, "1m"))
        if store is None or store.exact:
            return None
        n = self.runtime.config.CC_AVG_PRICE_CANDLES_COUNT
        end = when - when % MINUTE_MS
        a = store.dense_index(end - n * MINUTE_MS, end - MINUTE_MS)
        return store.vwap_at(a + n - 1, n) if a >= 0 else None

    async def vwap(self, symbol: str, when: int) -> float:
        """VWAP of the last N 1m candles closed at `when` (50 §7)."""
        price = self.stored_vwap(symbol, when)
        if price is not None:
            return price
        n = self.runtime.config.CC_AVG_PRICE_CANDLES_COUNT
        end = when - when % MINUTE_MS
        lo, hi = end - n * MINUTE_MS, end - MINUTE_MS
        candles = await self.window(symbol, "1m", lo, hi)
        if len(candles) == 0:
            raise ExchangeError(
                f"exchange {self.name!r}: no closed 1m candles for {symbol} in "
                f"[{iso(lo)}, {iso(hi)}]"
            )
        if len(candles) < n:
            self.runtime.logger.warn(
                "ExchangeClient.vwap: fewer candles than the VWAP window",
                {"symbol": symbol, "expected": n, "got": len(candles)},
            )
        return compute_vwap(candles.high, candles.low, candles.close, candles.volume)

    async def forward_view(self, symbol: str, since: int, horizon: int) -> Candles:
        """1m candles from `since` through the first one at or after `horizon`, or to the end
        of the data (50 §6.2); a view ending before the horizon is logged, not an error."""
        view = await self._forward_view(symbol, since, horizon)
        if len(view) == 0 or int(view.timestamp[-1]) < horizon:
            self.runtime.logger.warn(
                "ExchangeClient.forward_view: the data ends before the horizon",
                {
                    "symbol": symbol,
                    "since": iso(since),
                    "horizon": iso(horizon),
                    "last": iso(int(view.timestamp[-1])) if len(view) else None,
                },
            )
        return view

    async def _forward_view(self, symbol: str, since: int, horizon: int) -> Candles:
        step = MINUTE_MS
        store = self._store(symbol, "1m") if self.read_ahead else None
        if (
            store is not None
            and not store.exact
            and await self._complete(store, symbol, "1m", since, horizon)
        ):
            while True:
                ts = store.ts
                a = int(np.searchsorted(ts, since, "left"))
                b = int(np.searchsorted(ts, horizon, "left"))
                covered = store.covering(horizon)
                if covered is None:  # the horizon lies past the wall clock
                    return store.view(a, b)
                if b < len(ts) and int(ts[b]) <= covered[1]:
                    return store.view(a, b + 1)
                frontier = covered[1] + step
                last_closed = align(wall_clock_ms(), step) - step
                if frontier > last_closed:
                    return store.view(a, b)
                limit = min(PAGE_SIZE, (last_closed - frontier) // step + 1)
                page = await self._read_ahead(store, symbol, "1m", frontier, limit)
                if page is None:
                    break
                if len(page) == 0:  # end of data
                    return store.view(a, b)
        out = await self.fetch(symbol, "1m", since, (horizon - since) // step + 1)
        parts = [out]
        while len(out) and int(out.timestamp[-1]) < horizon:
            out = await self.fetch(symbol, "1m", int(out.timestamp[-1]) + step, PAGE_SIZE)
            parts.append(out)
        return _concat(parts, horizon)

    async def format_price(self, symbol: str, price: float) -> str:
        return await self._format("format_price", symbol, price)

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        return await self._format("format_quantity", symbol, quantity)

    async def _format(self, kind: str, symbol: str, value: float) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ValidationError(f"{kind}: value must be a finite number, got {value!r}")
        fn = getattr(self.schema, kind)
        if fn is None:
            return to_fixed(float(value), 8)
        text = await call_user(fn, symbol, value)
        if not isinstance(text, str):
            raise ExchangeError(
                f"exchange {self.name!r}: {kind} must return str, got {type(text).__name__}"
            )
        return text


def _concat(parts: list[Candles], horizon: int) -> Candles:
    """Join exact responses, keeping everything up to the first candle at or after horizon."""
    ts = np.concatenate([p.timestamp for p in parts])
    keep = int(np.searchsorted(ts, horizon, "left")) + 1
    cols = [
        np.concatenate([getattr(p, f) for p in parts])[:keep]
        for f in ("open", "high", "low", "close", "volume")
    ]
    ts = ts[:keep]
    for array in (ts, *cols):
        array.flags.writeable = False
    return Candles._wrap(ts, *cols)


async def first_empty_vwap_window(client: ExchangeClient, symbol: str, whens: np.ndarray) -> int:
    """Index of the first instant in `whens` whose VWAP window holds no 1m candle, or
    ``len(whens)`` when every window holds one (30 §8, condition c).

    Answers from the candle store only; when the store cannot tell (read-ahead off or
    failed), returns 0 so the caller evaluates every frame.
    """
    if len(whens) == 0:
        return 0
    if not client.read_ahead:
        return 0
    store = client._store(symbol, "1m")
    if store.exact:
        return 0
    n = client.runtime.config.CC_AVG_PRICE_CANDLES_COUNT
    first, last = int(whens[0]), int(whens[-1])
    lo = first - first % MINUTE_MS - n * MINUTE_MS
    hi = last - last % MINUTE_MS - MINUTE_MS
    if store.dense_index(lo, hi) >= 0:
        return len(whens)  # a candle in every slot: every window is full
    ends = whens - whens % MINUTE_MS
    covered = store.covering(lo)
    if (covered is None or covered[1] < hi) and not await client._complete(
        store, symbol, "1m", lo, hi
    ):
        return 0
    if store.covering(lo) is None or store.covering(hi) is None:
        return 0
    ts = store.ts
    a = int(np.searchsorted(ts, lo, "left"))
    b = int(np.searchsorted(ts, hi, "right"))
    if b - a == (hi - lo) // MINUTE_MS + 1:
        return len(whens)  # no gap at all: every window is full
    starts = np.searchsorted(ts, ends - n * MINUTE_MS, "left")
    stops = np.searchsorted(ts, ends - MINUTE_MS, "right")
    empty = stops <= starts
    return int(empty.argmax()) if empty.any() else len(whens)
