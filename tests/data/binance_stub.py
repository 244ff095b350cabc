"""A Binance-shaped HTTP server on 127.0.0.1 for download tests: the real `ccxt.binance` class
talks to it once its ``urls['api']['public']`` points here.

It answers ``/api/v3/exchangeInfo`` (a minimal market list) and ``/api/v3/klines`` with
recorded-style rows (strings, twelve fields) from its own 1m data, windowed like an exchange
that returns the candles in ``[startTime, startTime + n·1m)`` with ``n = min(limit, page_max)``
(so a long gap gives an empty page and a short gap a short page), or the newest ``limit``
candles without ``startTime``. Quirks are scripted: a 429 rate-limit answer on chosen
requests, a candle repeated in every page that holds it, a request that blocks until released.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

M = 60_000


def kline_rows(ts: list[int], seed: int = 1, price: float = 40_000.0) -> list[list[Any]]:
    """Binance-style kline rows at the given open times, deterministic prices as strings."""
    rows: list[list[Any]] = []
    for k, t in enumerate(ts):
        wave = ((k * 7919 + seed * 104729) % 1000) / 1000.0
        o = round(price + 50 * wave + k * 0.01, 2)
        c = round(o + (wave - 0.5) * 20, 2)
        h = round(max(o, c) + 3.5, 2)
        low = round(min(o, c) - 2.25, 2)
        v = round(1 + wave * 10, 5)
        prices = [f"{x:.8f}" for x in (o, h, low, c, v)]
        rows.append([t, *prices, t + M - 1, "0.00000000", 10, "0.00000000", "0.00000000", "0"])
    return rows


@dataclass
class Request:
    path: str
    query: dict[str, str]
    at: float  # time.monotonic()
    status: int = 200
    rows: int = -1  # klines rows answered


@dataclass
class Stub:
    """Scripted market: `data` maps a Binance market id (``BTCUSDT``) to its kline rows."""

    data: dict[str, list[list[Any]]]
    page_max: int = 1000  # Binance spot's maximum, as ccxt's `features` says
    rate_limited: set[int] = field(default_factory=set)  # klines request numbers (1-based)
    always_limited: set[str] = field(default_factory=set)  # market ids answering 429 forever
    repeated: set[int] = field(default_factory=set)  # open times served twice in a page
    block_at: int | None = None  # klines request number that waits for `release`
    # exchangeInfo filters per market id, e.g. PRICE_FILTER tickSize / LOT_SIZE stepSize
    filters: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def klines(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/klines")]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        request = Request(path, query, time.monotonic())
        with self.lock:
            self.requests.append(request)
            number = len(self.klines())
        if path == "/api/v3/exchangeInfo":
            return 200, self.exchange_info()
        if path != "/api/v3/klines":
            request.status = 404
            return 404, {"code": -1, "msg": "not found"}
        if number == self.block_at:
            self.arrived.set()
            self.release.wait(timeout=30)
        market = query.get("symbol", "")
        if number in self.rate_limited or market in self.always_limited:
            request.status = 429
            return 429, {"code": -1003, "msg": "Too many requests; current limit is 6000."}
        if market not in self.data:
            request.status = 400
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        rows = self.page(market, query)
        request.rows = len(rows)
        return 200, rows

    def page(self, market: str, query: dict[str, str]) -> list[list[Any]]:
        rows = self.data[market]
        limit = min(int(query.get("limit", "500")), self.page_max)
        if "startTime" not in query:
            return rows[-limit:]
        start = int(query["startTime"])
        stop = start + limit * M
        page: list[list[Any]] = []
        for row in rows:
            if start <= row[0] < stop:
                page.append(row)
                if row[0] in self.repeated:
                    page.append(list(row))
        return page

    def exchange_info(self) -> dict[str, Any]:
        symbols = [
            {
                "symbol": market,
                "status": "TRADING",
                "baseAsset": market[:-4],
                "quoteAsset": market[-4:],
                "isSpotTradingAllowed": True,
                "filters": self.filters.get(market, []),
            }
            for market in [*self.data, *self.always_limited, "FOOUSDT"]
        ]
        return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": symbols}


class StubServer:
    """`with StubServer(stub) as server:` serves `stub` on 127.0.0.1 in a thread."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        handler = _handler(stub)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def ccxt_config(self, rate_limit_ms: int = 1) -> dict[str, Any]:
        """What `download(..., ccxt_config=...)` needs to talk to this server."""
        return {
            "rateLimit": rate_limit_ms,
            "urls": {"api": {"public": self.url + "/api/v3"}},
            "options": {"fetchMarkets": {"types": ["spot"]}},
        }

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stub.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            status, body = stub.answer(url.path, query)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (an interrupted download)

    return Handler
