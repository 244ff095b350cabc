"""Shared test helpers: hand-made 1m markets whose every value can be computed by hand.

Importable from any test module (`pythonpath = ["tests"]` in pyproject.toml).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

import backtest_kit as bk

M = 60_000
BASE = datetime(2024, 1, 1, tzinfo=UTC)
BASE_MS = 1_704_067_200_000
SYMBOL = "BTCUSDT"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(minute: int) -> int:
    """Instant `minute` minutes after BASE, in ms."""
    return BASE_MS + minute * M


def minute_of(when: datetime) -> int:
    """Minutes from BASE to `when` (a whole minute)."""
    delta = (when - EPOCH) // timedelta(milliseconds=1) - BASE_MS
    assert delta % M == 0
    return delta // M


class Market:
    """A 1m series from minute `first` to minute `last` (relative to BASE), flat at 100 with
    volume 1 unless a bar is overridden; `get_candles` is a pure function of time."""

    def __init__(self, first: int = -60, last: int = 600) -> None:
        n = last - first + 1
        self.ts = BASE_MS + np.arange(first, last + 1, dtype=np.int64) * M
        self.first = first
        self.cols = {k: np.full(n, 100.0) for k in ("open", "high", "low", "close")}
        self.cols["volume"] = np.full(n, 1.0)

    def bar(
        self, minute: int, o: float, h: float, lo: float, c: float, v: float = 1.0
    ) -> tuple[float, float, float, float]:
        """Set one bar; returns its (high, low, close, volume)."""
        k = minute - self.first
        for name, value in zip(
            ("open", "high", "low", "close", "volume"), (o, h, lo, c, v), strict=True
        ):
            self.cols[name][k] = value
        return h, lo, c, v

    def hlcv(self, minute: int) -> tuple[float, float, float, float]:
        k = minute - self.first
        h, lo, c, v = (float(self.cols[f][k]) for f in ("high", "low", "close", "volume"))
        return h, lo, c, v

    def take_profit_at(self, *minutes: int) -> Market:
        """Bars whose high (101.2) reaches a 101 take profit."""
        for minute in minutes:
            self.cols["high"][minute - self.first] = 101.2
        return self

    def get_candles(self, symbol: str, interval: str, since: datetime, limit: int) -> bk.Candles:
        if interval != "1m":
            return bk.Candles.empty()
        lo = (since - EPOCH) // timedelta(milliseconds=1)
        hi = lo + (limit - 1) * M
        a = int(np.searchsorted(self.ts, lo, "left"))
        b = int(np.searchsorted(self.ts, hi, "right"))
        return bk.Candles(timestamp=self.ts[a:b], **{k: v[a:b] for k, v in self.cols.items()})
