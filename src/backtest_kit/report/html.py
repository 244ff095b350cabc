"""HTML reports (97 §5): one self-contained page per backtest run and per heatmap.

A page is plain HTML with plotly's JavaScript inlined once, the figures as JSON and a small
table-sorting script, so it opens offline and makes no network request. The backtest page has
the summary figures of 80 §2 (with `Trades: N`), an equity curve with its drawdown, the price
(1m closes, down-sampled to at most 5,000 points) with entry and exit marks whose hover shows
the trade, and the trade table; the heat page has the portfolio figures, a tile heatmap of one
metric per symbol and the per-symbol table. This module only renders text from records and
candles (plus `backtest_price_candles`, which reads the run's candles back from the exchange
client); the accessors (`Backtest.dump`, `Heat.dump`) write the files. plotly is the extra
`plot`, imported when a page is rendered.
"""

from __future__ import annotations

import html
import importlib
import math
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BacktestKitError
from ..intervals import MINUTE_MS
from ..model.candles import Candles
from ..model.results import ClosedResult
from .markdown import NA, TableCells, fixed, iso_ms, signed, table_cells
from .records import (
    BacktestStatistics,
    HeatmapRow,
    HeatmapStatistics,
    LiveStatistics,
    StrategyResult,
    TickEvent,
    WalkerStatistics,
)
from .stats import minutes_between

MAX_PRICE_POINTS = 5_000
"""The price chart never draws more points than this (97 §5)."""

WIN, LOSS, FLAT = "#16a34a", "#dc2626", "#6b7280"
_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}


def require_plotly() -> Any:
    """plotly's `io` and `offline` modules (as one namespace), or a `BacktestKitError` naming
    the extra when plotly is not installed."""
    try:
        io = importlib.import_module("plotly.io")
        offline = importlib.import_module("plotly.offline")
    except ImportError:
        raise BacktestKitError(
            'HTML reports need plotly: pip install "backtest-kit[plot]"'
        ) from None
    return SimpleNamespace(io=io, offline=offline)


# -- numbers (80 §1.3; the Markdown helpers, `None` → `N/A`) ------------------------------------


def _fixed(x: float | None, n: int) -> str:
    return NA if x is None else fixed(x, n)


def _signed(x: float | None, n: int) -> str:
    return NA if x is None else signed(x, n)


def _printf(x: float | None, spec: str) -> str:
    return NA if x is None else format(x, spec)


def default_cells(set_name: str, rows: Sequence[Any]) -> TableCells:
    """The cells of `rows` under the default column set `set_name` (e.g. `"backtest_columns"`,
    80 §1.4), for callers of the renderers that pass no table. The defaults are synchronous;
    configured or async columns go through `table_cells` (as `Backtest.dump` does)."""
    from .columns import DEFAULT_COLUMNS

    visible = [c for c in getattr(DEFAULT_COLUMNS, set_name) if c.is_visible()]
    return TableCells(
        tuple(c.label for c in visible),
        tuple(tuple(str(c.format(row, i)) for c in visible) for i, row in enumerate(rows)),
    )


# -- price down-sampling ------------------------------------------------------------------------


def downsample_closes(
    timestamp: npt.NDArray[np.int64],
    close: npt.NDArray[np.float64],
    max_points: int = MAX_PRICE_POINTS,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """At most `max_points` points of a close series, in time order, keeping each bucket's
    lowest and highest close (so spikes survive, unlike plain striding)."""
    n = len(close)
    if n <= max_points:
        return timestamp, close
    buckets = max(1, max_points // 2)
    size = -(-n // buckets)  # ceil
    count = -(-n // size)
    padded = np.full(count * size, np.nan)
    padded[:n] = close
    grid = padded.reshape(count, size)
    base = np.arange(count) * size
    lows = base + np.nanargmin(grid, axis=1)
    highs = base + np.nanargmax(grid, axis=1)
    keep = np.unique(np.concatenate([lows, highs]))
    return timestamp[keep], close[keep]


# -- page ---------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#1f2937;background:#f3f4f6}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 10px}
.sub{color:#6b7280;margin:0 0 16px}
.headline{font-size:18px;font-weight:600;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.card .k{color:#6b7280;font-size:12px}
.card .v{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
.card .h{color:#9ca3af;font-size:11px}
.pos{color:#15803d}.neg{color:#b91c1c}
.chart{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:4px}
.empty{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px;color:#6b7280}
.tablewrap{overflow-x:auto;background:#fff;border:1px solid #e5e7eb;border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:12.5px;font-variant-numeric:tabular-nums}
th,td{padding:6px 9px;border-bottom:1px solid #eef0f3;text-align:left;white-space:nowrap}
th{background:#f9fafb;position:sticky;top:0;cursor:pointer;user-select:none}
th:hover{background:#eef2ff}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
tbody tr:hover{background:#f9fafb}
footer{color:#9ca3af;font-size:12px;margin-top:24px}
"""

# Sort key of a cell: a number when the text is one (units such as %, USD allowed), else the
# text; empty and N/A cells always sort last. A column sorts numerically when all its keys do.
_SORT_JS = """
(function () {
  function cellKey(text) {
    var t = text.trim();
    if (t === "" || t === "N/A") return null;
    var m = /^([+-]?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)\\s*(?:%|[A-Za-z]{1,5})?$/.exec(t);
    return m ? parseFloat(m[1]) : t;
  }
  function sortTable(table, col, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) {
      return {row: row, i: i, key: cellKey(row.cells[col].textContent)};
    });
    var numeric = keyed.every(function (k) { return k.key === null || typeof k.key === "number"; });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) return a.i - b.i;
        return a.key === null ? 1 : -1;
      }
      var c = numeric ? a.key - b.key : String(a.key) < String(b.key) ? -1 :
        String(a.key) > String(b.key) ? 1 : 0;
      if (descending) c = -c;
      return c !== 0 ? c : a.i - b.i;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  }
  window.bkSortTable = sortTable;
  window.bkCellKey = cellKey;
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () {
        sortTable(table, col, th.getAttribute("aria-sort") === "ascending");
      });
    });
  });
})();
"""


def _page(title: str, subtitle: str, body: Sequence[str]) -> str:
    plotly = require_plotly()
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            f"<script>{plotly.offline.get_plotlyjs()}</script>",
            "</head>",
            "<body>",
            "<main>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="sub">{html.escape(subtitle)}</p>' if subtitle else "",
            *body,
            "<footer>Generated by backtest-kit. PnL figures are percent, net of fees and "
            "slippage. Click a column header to sort the table.</footer>",
            "</main>",
            f"<script>{_SORT_JS}</script>",
            "</body>",
            "</html>",
        ]
    )


def _figure(fig: dict[str, Any], div_id: str) -> str:
    plotly = require_plotly()
    fig.setdefault("layout", {}).setdefault("template", "plotly_white")
    div: str = plotly.io.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=_CONFIG,
        default_width="100%",
        default_height=f"{fig['layout'].get('height', 420)}px",
    )
    return f'<div class="chart">{div}</div>'


def _cards(items: Sequence[tuple[str, str, str, float | None]]) -> str:
    """Summary cards: (label, value text, hint, value for the colour or None)."""
    out = ['<div class="cards">']
    for label, text, hint, tone in items:
        cls = "" if tone is None or tone == 0 else (" pos" if tone > 0 else " neg")
        out.append(
            f'<div class="card"><div class="k">{html.escape(label)}</div>'
            f'<div class="v{cls}">{html.escape(text)}</div>'
            + (f'<div class="h">{html.escape(hint)}</div>' if hint else "")
            + "</div>"
        )
    out.append("</div>")
    return "".join(out)


def _table_html(table: TableCells, table_id: str) -> str:
    head = "".join(f'<th scope="col">{html.escape(label)}</th>' for label in table.labels)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return (
        f'<div class="tablewrap"><table id="{table_id}" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


# -- backtest page ------------------------------------------------------------------------------


def _colour(p: float) -> str:
    return WIN if p > 0 else LOSS if p < 0 else FLAT


def _hover(r: ClosedResult, money: float | None) -> str:
    s = r.signal
    lines = [
        f"<b>{s.position.upper()}</b> {html.escape(s.id)}",
        f"open {_fixed(s.price_open, 8)} at {iso_ms(s.pending_at)}",
        f"close {_fixed(r.current_price, 8)} at {iso_ms(r.close_timestamp)}",
        f"TP {_fixed(s.price_take_profit, 8)} / SL {_fixed(s.price_stop_loss, 8)}",
        f"PnL <b>{_signed(r.pnl.pnl_percentage, 2)}%</b> ({r.close_reason})"
        + ("" if money is None else f", {_signed(money, 2)} money"),
        f"duration {minutes_between(s.pending_at, r.close_timestamp)} min",
    ]
    if s.note:
        lines.append(html.escape(s.note[:120]))
    return "<br>".join(lines)


def _money(r: ClosedResult) -> float | None:
    cost = r.signal.cost
    return None if cost is None else cost * r.pnl.pnl_percentage / 100


def _equity_figure(
    trades: Sequence[ClosedResult], x_range: tuple[float, float] | None
) -> dict[str, Any]:
    """Cumulative PnL % (and money when sizing applies) above, drawdown below (80 §7), over
    `x_range` (ms) so that it lines up with the price chart."""
    start = trades[0].signal.pending_at
    closes = [r.close_timestamp for r in trades]
    pnls = [r.pnl.pnl_percentage for r in trades]
    return _equity_curve(start, closes, pnls, [_money(r) for r in trades], x_range)


def _equity_curve(
    start: int,
    closes: Sequence[int],
    pnls: Sequence[float],
    money: Sequence[float | None],
    x_range: tuple[float, float] | None,
) -> dict[str, Any]:
    """The equity figure of trades closed at `closes` (ms, chronological) with `pnls` (%)
    and `money` (`None` without sizing), starting from 0 at `start`."""
    x = [float(start), *(float(c) for c in closes)]
    pnl = np.array(pnls, dtype=float)
    equity = np.concatenate([[0.0], np.cumsum(pnl)])
    drawdown = equity - np.maximum.accumulate(equity)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": x,
            "y": equity.tolist(),
            "mode": "lines+markers",
            "line": {"shape": "hv", "color": "#2563eb", "width": 2},
            "marker": {"size": 5, "color": ["#2563eb", *(_colour(p) for p in pnl)]},
            "name": "Equity (PnL %)",
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>cumulative %{y:+.2f}%<extra></extra>",
        },
        {
            "type": "scatter",
            "x": x,
            "y": drawdown.tolist(),
            "mode": "lines",
            "fill": "tozeroy",
            "line": {"shape": "hv", "color": LOSS, "width": 1},
            "fillcolor": "rgba(220,38,38,0.25)",
            "name": "Drawdown (points)",
            "xaxis": "x",
            "yaxis": "y2",
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>drawdown %{y:.2f}%<extra></extra>",
        },
    ]
    layout: dict[str, Any] = {
        "height": 460,
        "margin": {"l": 60, "r": 60, "t": 30, "b": 40},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": 1.08, "x": 0},
        "xaxis": {"type": "date", "anchor": "y2", **({"range": x_range} if x_range else {})},
        "yaxis": {"domain": [0.34, 1.0], "title": {"text": "cumulative PnL %"}, "ticksuffix": "%"},
        "yaxis2": {"domain": [0.0, 0.26], "title": {"text": "drawdown"}, "ticksuffix": "%"},
    }
    if any(m is not None for m in money):
        cum = np.concatenate([[0.0], np.cumsum([0.0 if m is None else m for m in money])])
        data.append(
            {
                "type": "scatter",
                "x": x,
                "y": cum.tolist(),
                "mode": "lines",
                "line": {"shape": "hv", "color": "#7c3aed", "width": 1.5, "dash": "dot"},
                "name": "Equity (money)",
                "yaxis": "y3",
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>money %{y:+.2f}<extra></extra>",
            }
        )
        layout["yaxis3"] = {
            "overlaying": "y",
            "side": "right",
            "title": {"text": "cumulative PnL (money)"},
            "showgrid": False,
        }
    return {"data": data, "layout": layout}


def _price_figure(
    candles: Candles,
    trades: Sequence[ClosedResult],
    symbol: str,
    x_range: tuple[float, float] | None,
) -> dict[str, Any]:
    ts, close = downsample_closes(candles.timestamp, candles.close)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": ts.astype(np.float64).tolist(),
            "y": close.tolist(),
            "mode": "lines",
            "line": {"color": "#64748b", "width": 1},
            "name": f"{symbol} close (1m)",
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>close %{y}<extra></extra>",
        }
    ]
    if trades:
        money = [_money(r) for r in trades]
        hover = [_hover(r, m) for r, m in zip(trades, money, strict=True)]
        colours = [_colour(r.pnl.pnl_percentage) for r in trades]
        for outcome, colour in (("win", WIN), ("loss", LOSS), ("flat", FLAT)):
            xs: list[float | None] = []
            ys: list[float | None] = []
            for r in trades:
                if _colour(r.pnl.pnl_percentage) == colour:
                    xs += [float(r.signal.pending_at), float(r.close_timestamp), None]
                    ys += [r.signal.price_open, r.current_price, None]
            if xs:
                data.append(
                    {
                        "type": "scatter",
                        "x": xs,
                        "y": ys,
                        "mode": "lines",
                        "line": {"color": colour, "width": 1.5, "dash": "dot"},
                        "name": f"{outcome} trades",
                        "hoverinfo": "skip",
                        "showlegend": False,
                    }
                )
        data.append(
            {
                "type": "scatter",
                "x": [float(r.signal.pending_at) for r in trades],
                "y": [r.signal.price_open for r in trades],
                "mode": "markers",
                "name": "Entries (▲ long, ▼ short)",
                "marker": {
                    "size": 11,
                    "color": colours,
                    "symbol": [
                        "triangle-up" if r.signal.position == "long" else "triangle-down"
                        for r in trades
                    ],
                    "line": {"color": "#111827", "width": 1},
                },
                "text": hover,
                "hoverinfo": "text",
            }
        )
        data.append(
            {
                "type": "scatter",
                "x": [float(r.close_timestamp) for r in trades],
                "y": [r.current_price for r in trades],
                "mode": "markers",
                "name": "Exits",
                "marker": {
                    "size": 9,
                    "color": colours,
                    "symbol": "x",
                    "line": {"color": "#111827", "width": 1},
                },
                "text": hover,
                "hoverinfo": "text",
            }
        )
    layout = {
        "height": 460,
        "margin": {"l": 70, "r": 30, "t": 30, "b": 40},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": 1.08, "x": 0},
        "xaxis": {"type": "date", **({"range": x_range} if x_range else {})},
        "yaxis": {"title": {"text": "price"}},
    }
    return {"data": data, "layout": layout}


def _pct(x: float | None, digits: int = 2, sign: bool = True) -> str:
    """A percentage figure: signed by default, N/A when missing."""
    if x is None:
        return NA
    return (_signed(x, digits) if sign else _fixed(x, digits)) + "%"


def _pnl_cards(stats: Any) -> list[tuple[str, str, str, float | None]]:
    """The PNL figure cards shared by the backtest and live pages (80 §2, §4)."""
    return [
        ("Average PNL", _pct(stats.avg_pnl), "higher is better", stats.avg_pnl),
        ("Total PNL", _pct(stats.total_pnl), "higher is better", stats.total_pnl),
        ("Standard Deviation", _pct(stats.std_dev, 3, False), "lower is better", None),
        ("Sharpe Ratio", _fixed(stats.sharpe_ratio, 3), "higher is better", None),
        (
            "Annualized Sharpe Ratio",
            _fixed(stats.annualized_sharpe_ratio, 3),
            "higher is better",
            None,
        ),
        ("Certainty Ratio", _fixed(stats.certainty_ratio, 3), "higher is better", None),
        (
            "Expected Yearly Returns",
            _pct(stats.expected_yearly_returns),
            "higher is better",
            stats.expected_yearly_returns,
        ),
    ]


def render_backtest_html(
    stats: BacktestStatistics,
    candles: Candles | None,
    *,
    title: str,
    subtitle: str = "",
    symbol: str | None = None,
    table: TableCells | None = None,
) -> str:
    """The backtest page (97 §5) of `stats` (`Backtest.get_data`): summary figures, equity
    and drawdown, the price `candles` (1m, any length) with the trades, the trade `table`
    (default: the default backtest columns of 80 §3)::

        page = render_backtest_html(stats, candles, title="Backtest Report: sma")
    """
    trades = stats.signal_list[::-1]  # chronological
    if symbol is None:
        symbol = trades[0].signal.symbol if trades else ""
    money = [m for m in (_money(r) for r in trades) if m is not None]
    n = stats.total_signals
    win_rate = "N/A" if stats.win_rate is None else f"{_fixed(stats.win_rate, 2)}%"
    wins = f"{stats.win_count}W / {stats.loss_count}L · higher is better"

    cards: list[tuple[str, str, str, float | None]] = [
        ("Total signals", str(n), "", None),
        ("Closed signals", str(n), "", None),
        ("Win rate", win_rate, wins, None),
        *_pnl_cards(stats),
    ]
    if money:
        total = math.fsum(money)
        cards.append(("Total PNL (money)", _signed(total, 2), "sized positions", total))
    x_range = None
    if candles is not None and len(candles):
        lo = min([int(candles.timestamp[0]), *(r.signal.pending_at for r in trades)])
        hi = max([int(candles.timestamp[-1]), *(r.close_timestamp for r in trades)])
        pad = max((hi - lo) // 100, MINUTE_MS)
        x_range = (float(lo - pad), float(hi + pad))
    body = [
        f'<p class="headline" id="trade-count">Trades: {n}</p>',
        _cards(cards),
        "<h2>Equity and drawdown</h2>",
        _figure(_equity_figure(trades, x_range), "equity-chart")
        if trades
        else '<div class="empty">No signals closed yet.</div>',
        "<h2>Price and trades</h2>",
        _figure(_price_figure(candles, trades, symbol, x_range), "price-chart")
        if candles is not None and len(candles)
        else '<div class="empty">No price data for this run.</div>',
        f"<h2>Trades ({n})</h2>",
        _table_html(
            table if table is not None else default_cells("backtest_columns", stats.signal_list),
            "trades",
        )
        if n
        else '<div class="empty">No signals closed yet.</div>',
    ]
    return _page(title, subtitle, body)


async def backtest_price_candles(
    symbol: str, strategy_name: str, *, until: int | None = None
) -> Candles | None:
    """The 1m candles of the last backtest of `(symbol, strategy_name)` from its first frame
    to its last (or `until`, ms, when later: a position may close past the frame), read back
    through the run's exchange client, whose store already holds them. `None` when the pair
    never ran or the exchange fails (the page then says so instead of drawing the price)."""
    from ..engine.backtest import exchange_client
    from ..runtime import current

    runtime = current()
    run = runtime.extensions.get("backtest_runs", {}).get((symbol, strategy_name))
    if run is None:
        return None
    exchange_name, frame_name = run
    schema = runtime.exchanges.get(exchange_name)
    times = runtime.frame_times.get(frame_name)
    if schema is None or times is None or len(times) == 0:
        return None
    client = exchange_client(runtime, schema, backtest=True)
    lo, hi = int(times[0]), max(int(times[-1]), until or 0)
    step = 50_000 * MINUTE_MS  # one read-ahead page per request in exact mode
    parts = []
    since = lo - lo % MINUTE_MS
    try:
        while since <= hi:
            end = min(hi, since + step - MINUTE_MS)
            parts.append(await client.window(symbol, "1m", since, end))
            since += step
    except Exception as exc:
        runtime.logger.warn(
            "HTML report: no price candles",
            {"symbol": symbol, "exchange_name": exchange_name, "error": str(exc)},
        )
        return None
    return _concat(parts)


def _concat(parts: Sequence[Candles]) -> Candles:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Candles.empty()
    if len(parts) == 1:
        return parts[0]
    fields = ("timestamp", "open", "high", "low", "close", "volume")
    return Candles(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


async def backtest_html(symbol: str, strategy_name: str, columns: Any = None) -> str:
    """The HTML page of `Backtest.dump(..., format="html")`: the statistics of
    `Backtest.get_data`, the trade table with the configured (or given) backtest columns,
    and the price of the run's exchange over its frame."""
    from ..runtime import current
    from .columns import resolve_columns
    from .facades import validate_call

    method = "Backtest.dump"
    require_plotly()
    runtime = validate_call(method, strategy_name, symbol)
    cols = resolve_columns("backtest_columns", columns, method)
    stats = runtime.reports.backtest_data(symbol, strategy_name)
    table = await table_cells(cols, stats.signal_list)
    last_close = max((r.close_timestamp for r in stats.signal_list), default=None)
    candles = await backtest_price_candles(symbol, strategy_name, until=last_close)
    subtitle = symbol
    run = current().extensions.get("backtest_runs", {}).get((symbol, strategy_name))
    if run is not None:
        subtitle += f" · exchange {run[0]} · frame {run[1]}"
    if candles is not None and len(candles):
        first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
        subtitle += f" · {iso_ms(first)[:16]} → {iso_ms(last)[:16]} UTC"
    return render_backtest_html(
        stats,
        candles,
        title=f"Backtest Report: {strategy_name}",
        subtitle=subtitle,
        symbol=symbol,
        table=table,
    )


# -- heat page ----------------------------------------------------------------------------------


def _number(spec: str, unit: str = "", negate: bool = False) -> Callable[[float | None], str]:
    """A printf-style cell format (80 §7): `None` → `N/A`, else the value and its unit."""

    def fmt(x: float | None) -> str:
        return "N/A" if x is None else format(-x if negate else x, spec) + unit

    return fmt


# metric -> (label, cell format, colour scale, midpoint of a diverging scale or None)
_HEAT_METRICS: dict[str, tuple[str, Callable[[float | None], str], str, float | None]] = {
    "sharpe_ratio": ("Sharpe", _number(".2f"), "RdYlGn", 0.0),
    "total_pnl": ("Total PNL", _number("+.2f", "%"), "RdYlGn", 0.0),
    "profit_factor": ("Profit factor", _number(".2f"), "RdYlGn", 1.0),
    "expectancy": ("Expectancy", _number("+.2f", "%"), "RdYlGn", 0.0),
    "win_rate": ("Win rate", _number(".1f", "%"), "RdYlGn", 50.0),
    "avg_pnl": ("Average PNL", _number("+.2f", "%"), "RdYlGn", 0.0),
    "avg_win": ("Average win", _number("+.2f", "%"), "Greens", None),
    "avg_loss": ("Average loss", _number("+.2f", "%"), "Reds_r", None),
    "max_drawdown": ("Max drawdown", _number(".2f", "%", negate=True), "Reds", None),
    "std_dev": ("Std dev", _number(".2f", "%"), "Oranges", None),
    "total_trades": ("Trades", _number(".0f"), "Blues", None),
}
HEAT_METRICS = tuple(_HEAT_METRICS)
"""The `HeatmapRow` fields a heat page can colour by."""


def _heat_figure(rows: Sequence[HeatmapRow], metric: str) -> dict[str, Any]:
    """Symbols as tiles in a near-square grid, coloured by `metric` (best Sharpe first)."""
    label, fmt, scale, mid = _HEAT_METRICS[metric]
    n = len(rows)
    cols = max(1, min(8, math.ceil(math.sqrt(n))))
    nrows = math.ceil(n / cols)
    z: list[list[float | None]] = [[None] * cols for _ in range(nrows)]
    text: list[list[str]] = [[""] * cols for _ in range(nrows)]
    hover: list[list[str]] = [[""] * cols for _ in range(nrows)]
    for k, r in enumerate(rows):
        i, j = divmod(k, cols)
        value = getattr(r, metric)
        z[i][j] = None if value is None else float(value)
        text[i][j] = f"<b>{html.escape(r.symbol)}</b><br>{fmt(value)}"
        hover[i][j] = "<br>".join(
            [
                f"<b>{html.escape(r.symbol)}</b>",
                f"{label}: {fmt(value)}",
                f"Total PNL {_number('+.2f', '%')(r.total_pnl)}",
                f"Sharpe {_printf(r.sharpe_ratio, '.2f')}",
                f"Trades {r.total_trades} ({r.win_count}W / {r.loss_count}L)",
                f"Max DD {_number('.2f', '%', negate=True)(r.max_drawdown)}",
            ]
        )
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": z,
        "text": text,
        "customdata": hover,
        "texttemplate": "%{text}",
        "hovertemplate": "%{customdata}<extra></extra>",
        "colorscale": scale,
        "xgap": 4,
        "ygap": 4,
        "colorbar": {"title": {"text": label}},
    }
    if mid is not None:
        trace["zmid"] = mid
    return {
        "data": [trace],
        "layout": {
            "height": max(220, 110 * nrows + 60),
            "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False, "autorange": "reversed"},
        },
    }


def render_heat_html(
    heat_stats: HeatmapStatistics,
    *,
    title: str,
    metric: str = "sharpe_ratio",
    subtitle: str = "",
    table: TableCells | None = None,
) -> str:
    """The heatmap page (97 §5) of `heat_stats` (`Heat.get_data`): portfolio figures, a tile
    per symbol coloured by `metric` (one of `HEAT_METRICS`), and the per-symbol table."""
    if metric not in _HEAT_METRICS:
        raise BacktestKitError(
            f"heatmap metric {metric!r} is not one of: {', '.join(HEAT_METRICS)}"
        )
    s = heat_stats
    cards: list[tuple[str, str, str, float | None]] = [
        ("Total Symbols", str(s.total_symbols), "", None),
        (
            "Portfolio PNL",
            "N/A" if s.portfolio_total_pnl is None else f"{s.portfolio_total_pnl:+.2f}%",
            "",
            s.portfolio_total_pnl,
        ),
        ("Portfolio Sharpe", _printf(s.portfolio_sharpe_ratio, ".2f"), "trade-weighted", None),
        ("Total Trades", str(s.portfolio_total_trades), "", None),
    ]
    body = [
        f'<p class="headline" id="trade-count">Trades: {s.portfolio_total_trades}</p>',
        _cards(cards),
        f"<h2>{html.escape(_HEAT_METRICS[metric][0])} per symbol</h2>",
        _figure(_heat_figure(s.symbols, metric), "heat-chart")
        if s.symbols
        else '<div class="empty">No data available.</div>',
        f"<h2>Symbols ({s.total_symbols})</h2>",
        _table_html(
            table if table is not None else default_cells("heat_columns", s.symbols), "symbols"
        )
        if s.symbols
        else '<div class="empty">No data available.</div>',
    ]
    return _page(title, subtitle, body)


async def heat_html(
    strategy_name: str,
    backtest: bool = False,
    columns: Any = None,
    metric: str = "sharpe_ratio",
) -> str:
    """The HTML page of `Heat.dump(..., format="html")`: `Heat.get_data`, the configured
    (or given) heat columns, tiles coloured by `metric`."""
    from .columns import resolve_columns
    from .facades import validate_call

    method = "Heat.dump"
    require_plotly()
    if metric not in _HEAT_METRICS:
        raise BacktestKitError(
            f"{method}: metric {metric!r} is not one of: {', '.join(HEAT_METRICS)}"
        )
    runtime = validate_call(method, strategy_name)
    cols = resolve_columns("heat_columns", columns, method)
    stats = runtime.reports.heat_data(strategy_name, backtest)
    table = await table_cells(cols, stats.symbols)
    return render_heat_html(
        stats,
        title=f"Portfolio Heatmap: {strategy_name}",
        metric=metric,
        subtitle="backtest" if backtest else "live",
        table=table,
    )


# -- walker page --------------------------------------------------------------------------------


def walker_ranked(stats: WalkerStatistics) -> list[StrategyResult]:
    """The tested strategies by metric, best first (`None` last; ties keep their order)."""
    return sorted(
        stats.strategy_results,
        key=lambda r: -r.metric_value if r.metric_value is not None else float("inf"),
    )


def _walker_figure(
    ranked: Sequence[StrategyResult], metric: str, best: str | None
) -> dict[str, Any]:
    """One bar per strategy (best first): its metric value; `N/A` strategies get no bar."""
    names = [r.strategy_name for r in ranked]
    values = [r.metric_value for r in ranked]
    colours = [
        "#2563eb" if n == best else (FLAT if v is None else WIN if v >= 0 else LOSS)
        for n, v in zip(names, values, strict=True)
    ]
    hover = [
        "<br>".join(
            [
                f"<b>{html.escape(r.strategy_name)}</b>",
                f"{html.escape(metric)}: {_printf(r.metric_value, '.4f')}",
                f"Trades {r.stats.total_signals} ({r.stats.win_count}W / {r.stats.loss_count}L)",
                f"Total PNL {_number('+.2f', '%')(r.stats.total_pnl)}",
            ]
        )
        for r in ranked
    ]
    return {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": values,
                "marker": {"color": colours},
                "text": [_printf(v, ".3f") for v in values],
                "textposition": "auto",
                "customdata": hover,
                "hovertemplate": "%{customdata}<extra></extra>",
                "name": metric,
            }
        ],
        "layout": {
            "height": 420,
            "margin": {"l": 60, "r": 20, "t": 20, "b": 80},
            "xaxis": {"type": "category", "title": {"text": "strategy"}},
            "yaxis": {"title": {"text": metric}, "zeroline": True},
        },
    }


def render_walker_html(
    stats: WalkerStatistics,
    *,
    title: str,
    subtitle: str = "",
    table: TableCells | None = None,
) -> str:
    """The walker page (97 §5) of `stats` (`Walker.get_data`): the best strategy, a bar of
    the metric per strategy and the comparison table of every strategy, best first (`table`:
    default, the default walker strategy columns of 70 §10)."""
    ranked = walker_ranked(stats)
    trades = sum(r.stats.total_signals for r in stats.strategy_results)
    cards: list[tuple[str, str, str, float | None]] = [
        ("Strategies tested", str(stats.total_strategies), "", None),
        ("Best strategy", stats.best_strategy or NA, "", None),
        (f"Best {stats.metric}", _printf(stats.best_metric, ".4f"), "", None),
        ("Total trades", str(trades), "all strategies", None),
    ]
    body = [
        f'<p class="headline" id="trade-count">Trades: {trades}</p>',
        f'<p class="headline" id="strategy-count">Strategies: {stats.total_strategies}</p>',
        _cards(cards),
        f"<h2>{html.escape(stats.metric)} per strategy</h2>",
        _figure(_walker_figure(ranked, stats.metric, stats.best_strategy), "metric-chart")
        if ranked
        else '<div class="empty">No strategy results available.</div>',
        f"<h2>Strategies ({len(ranked)})</h2>",
        _table_html(
            table if table is not None else default_cells("walker_strategy_columns", ranked),
            "strategies",
        )
        if ranked
        else '<div class="empty">No strategy results available.</div>',
    ]
    return _page(title, subtitle, body)


async def walker_html(stats: WalkerStatistics, columns: Sequence[Any]) -> str:
    """The HTML page of `Walker.dump(..., format="html")`: `stats` of `Walker.get_data` and
    the resolved walker strategy `columns`."""
    require_plotly()
    table = await table_cells(columns, walker_ranked(stats))
    subtitle = (
        f"{stats.symbol} · exchange {stats.exchange_name} · frame {stats.frame_name}"
        f" · metric {stats.metric}"
    )
    return render_walker_html(
        stats,
        title=f"Walker Comparison Report: {stats.walker_name}",
        subtitle=subtitle,
        table=table,
    )


# -- live page ----------------------------------------------------------------------------------


def _live_price_figure(events: Sequence[TickEvent], closed: Sequence[TickEvent]) -> dict[str, Any]:
    """The price of the live rows (chronological) with a mark per closed trade."""
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": [float(e.timestamp) for e in events],
            "y": [e.current_price for e in events],
            "mode": "lines",
            "line": {"color": "#334155", "width": 1.2},
            "name": "price (live rows)",
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y}<extra></extra>",
        }
    ]
    if closed:
        data.append(
            {
                "type": "scatter",
                "x": [float(e.timestamp) for e in closed],
                "y": [e.current_price for e in closed],
                "mode": "markers",
                "name": "Exits",
                "marker": {
                    "size": 9,
                    "color": [_colour(e.pnl or 0.0) for e in closed],
                    "symbol": "x",
                    "line": {"color": "#111827", "width": 1},
                },
                "text": [
                    f"<b>{html.escape(str(e.position or '').upper())}</b> "
                    f"{html.escape(e.signal_id or '')}<br>"
                    f"PnL <b>{_signed(e.pnl, 2)}%</b> ({html.escape(e.close_reason or NA)})"
                    for e in closed
                ],
                "hoverinfo": "text",
            }
        )
    return {
        "data": data,
        "layout": {
            "height": 420,
            "margin": {"l": 70, "r": 30, "t": 30, "b": 40},
            "hovermode": "closest",
            "legend": {"orientation": "h", "y": 1.08, "x": 0},
            "xaxis": {"type": "date"},
            "yaxis": {"title": {"text": "price"}},
        },
    }


def render_live_html(
    stats: LiveStatistics,
    *,
    title: str,
    subtitle: str = "",
    table: TableCells | None = None,
) -> str:
    """The live page (97 §5) of `stats` (`Live.get_data`): the summary figures of the
    closed rows, equity and drawdown from them, the price of the rows with the exits, and
    the live rows table (`table`: default, the default live columns of 80 §4)."""
    events = stats.event_list[::-1]  # chronological
    closed = [e for e in events if e.action == "closed" and e.pnl is not None]
    n = stats.total_closed
    win_rate = NA if stats.win_rate is None else f"{_fixed(stats.win_rate, 2)}%"

    cards: list[tuple[str, str, str, float | None]] = [
        ("Total events", str(stats.total_events), "", None),
        ("Closed signals", str(n), "", None),
        ("Win rate", win_rate, f"{stats.win_count}W / {stats.loss_count}L", None),
        *_pnl_cards(stats),
    ]
    equity = None
    if closed:
        start = closed[0].timestamp - (closed[0].duration or 0) * MINUTE_MS
        equity = _equity_curve(
            start,
            [e.timestamp for e in closed],
            [float(e.pnl or 0.0) for e in closed],
            [None] * len(closed),
            None,
        )
    body = [
        f'<p class="headline" id="trade-count">Trades: {n}</p>',
        _cards(cards),
        "<h2>Equity and drawdown</h2>",
        _figure(equity, "equity-chart")
        if equity is not None
        else '<div class="empty">No signals closed yet.</div>',
        "<h2>Price and exits</h2>",
        _figure(_live_price_figure(events, closed), "price-chart")
        if events
        else '<div class="empty">No events recorded yet.</div>',
        f"<h2>Events ({stats.total_events})</h2>",
        _table_html(
            table if table is not None else default_cells("live_columns", stats.event_list),
            "trades",
        )
        if stats.total_events
        else '<div class="empty">No events recorded yet.</div>',
    ]
    return _page(title, subtitle, body)


async def live_html(symbol: str, strategy_name: str, columns: Any = None) -> str:
    """The HTML page of `Live.dump(..., format="html")`: `Live.get_data` and the configured
    (or given) live columns."""
    from .columns import resolve_columns
    from .facades import validate_call

    method = "Live.dump"
    require_plotly()
    runtime = validate_call(method, strategy_name, symbol)
    cols = resolve_columns("live_columns", columns, method)
    stats = runtime.reports.live_data(symbol, strategy_name)
    table = await table_cells(cols, stats.event_list)
    return render_live_html(
        stats,
        title=f"Live Trading Report: {strategy_name}",
        subtitle=f"{symbol} · live",
        table=table,
    )


__all__ = [
    "HEAT_METRICS",
    "MAX_PRICE_POINTS",
    "backtest_html",
    "backtest_price_candles",
    "default_cells",
    "downsample_closes",
    "heat_html",
    "live_html",
    "render_backtest_html",
    "render_heat_html",
    "render_live_html",
    "render_walker_html",
    "require_plotly",
    "walker_html",
    "walker_ranked",
]
