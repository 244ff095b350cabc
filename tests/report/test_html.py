"""HTML reports (97 §5, `report/html.py`): `Backtest.dump(..., format="html")`, `Heat.dump`,
the `report` and `backtest --html` commands, and the pages themselves opened in a real
headless Chromium (tests/browser.py): charts drawn, no console error, no network request, the
trade count shown equal to the data, hover on a trade, the sortable table."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backtest_kit as bk
from backtest_kit.cli import main
from backtest_kit.demo import trend_follow
from backtest_kit.report.html import (
    MAX_PRICE_POINTS,
    downsample_closes,
    render_backtest_html,
    render_heat_html,
)
from browser import Browser, Page, chromium_or_skip
from support import BASE, SYMBOL, Market, minute_of

ROOT = Path(__file__).resolve().parents[2]
CHARTS_DRAWN = "document.querySelectorAll('.main-svg').length > 0"


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(chromium_or_skip()) as chromium:
        yield chromium


# -- runs ---------------------------------------------------------------------------------------

WIN_LONG = bk.Signal("long", 101.0, 99.0, 60, id="win-long", note="dip < 99 & rising")
LOSS_LONG = bk.Signal("long", 101.0, 99.0, 60, id="loss-long")
WIN_SHORT = bk.Signal("short", 99.0, 101.0, 60, id="win-short")


def hand_made_market() -> Market:
    """Flat at 100: a long opened at 0 takes profit at 7, a long opened at 20 stops out at 25,
    a short opened at 40 takes profit at 48."""
    market = Market(first=-60, last=400).take_profit_at(7)
    market.bar(25, 100, 100, 98.8, 100)
    market.bar(48, 100, 100, 98.8, 100)
    return market


def register_hand_made(
    answers: dict[int, bk.Signal] | None = None, sizing_name: str | None = None
) -> None:
    script = {0: WIN_LONG, 20: LOSS_LONG, 40: WIN_SHORT} if answers is None else answers

    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        return script.get(minute_of(when))

    bk.add_exchange("ex", get_candles=hand_made_market().get_candles)
    bk.add_strategy("s1", "1m", get_signal, sizing_name=sizing_name)
    bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=120))


def run_hand_made(*symbols: str) -> None:
    for symbol in symbols or (SYMBOL,):
        bk.Backtest.run_sync(symbol, strategy_name="s1", exchange_name="ex", frame_name="f")


def run_demo(days: int = 30) -> None:
    """The demo: `backtest_kit.demo.trend_follow` on the sample BTCUSDT market."""
    start = datetime(2024, 1, 8, tzinfo=UTC)
    bk.data.add_sample_exchange("sample")
    bk.add_strategy("trend-follow", "15m", trend_follow)
    bk.add_frame("demo", "1m", start, start + timedelta(days=days) - timedelta(minutes=1))
    bk.Backtest.run_sync(
        "BTCUSDT", strategy_name="trend-follow", exchange_name="sample", frame_name="demo"
    )


def dump_html(symbol: str, strategy: str, path: Path) -> Path:
    file = asyncio.run(bk.Backtest.dump(symbol, strategy, path=str(path), format="html"))
    assert file is not None
    return Path(file)


def trades_in_page(page: Page) -> int:
    text = page.evaluate("document.getElementById('trade-count').textContent")
    match = re.fullmatch(r"Trades: (\d+)", text)
    assert match, text
    return int(match.group(1))


def column(page: Page, label: str) -> list[str]:
    return list(
        page.evaluate(
            f"""(() => {{
            const t = document.getElementById('trades');
            const i = [...t.tHead.rows[0].cells].findIndex(c => c.textContent === {label!r});
            return [...t.tBodies[0].rows].map(r => r.cells[i].textContent);
        }})()"""
        )
    )


def open_page(browser: Browser, file: Path) -> Page:
    page = Page(browser, file.as_uri())
    page.wait_for(CHARTS_DRAWN)
    return page


def assert_clean(page: Page, file: Path) -> None:
    """No console error or uncaught exception, and no request but the file itself (plotly
    draws heatmaps through in-memory `data:` images, which never leave the page)."""
    assert page.errors() == []
    fetched = [url for url in page.requests() if not url.startswith(("data:", "blob:"))]
    assert fetched == [file.as_uri()]


# -- the file -----------------------------------------------------------------------------------


def test_the_page_is_one_offline_file_beside_the_markdown_report(tmp_path: Path) -> None:
    import plotly.offline

    bk.set_config(CC_REPORT_SHOW_SIGNAL_NOTE=True)
    register_hand_made()
    run_hand_made()
    md = asyncio.run(bk.Backtest.dump(SYMBOL, "s1", path=str(tmp_path)))
    html = dump_html(SYMBOL, "s1", tmp_path)
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "s1"))

    assert md is not None and Path(md).with_suffix(".html") == html
    assert html.name == f"{SYMBOL}_s1.html"
    text = html.read_text(encoding="utf-8")
    assert text.count(plotly.offline.get_plotlyjs()) == 1  # inlined once
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"<link\b", text)
    assert len(stats.signal_list) == 3
    assert f"Trades: {len(stats.signal_list)}</p>" in text
    for trade_id in ("win-long", "loss-long", "win-short"):
        assert trade_id in text
    # the configured columns (here with the Note column), a note's text escaped as data
    assert '<th scope="col">Note</th>' in text
    assert "<td>dip &lt; 99 &amp; rising</td>" in text and "dip < 99" not in text


def test_renderers_work_on_records_alone() -> None:
    register_hand_made()
    run_hand_made()
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "s1"))
    heat = asyncio.run(bk.Heat.get_data("s1", backtest=True))

    page = render_backtest_html(stats, None, title="Backtest Report: s1")
    heat_page = render_heat_html(heat, title="Portfolio Heatmap: s1", metric="win_rate")

    assert "No price data for this run." in page and 'id="price-chart"' not in page
    assert 'id="equity-chart"' in page
    assert page.count("<tr>") == 1 + 3  # the default columns: header and one row per trade
    assert '<th scope="col">PNL (net)</th>' in page and "Note</th>" not in page
    assert heat_page.count("<tr>") == 1 + 1 and "Trades: 3</p>" in heat_page


def test_sized_positions_add_money_figures(tmp_path: Path) -> None:
    bk.add_sizing("one-percent", "fixed-percentage", risk_percentage=1.0)
    register_hand_made(sizing_name="one-percent")
    run_hand_made()
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "s1"))
    money = sum(r.signal.cost * r.pnl.pnl_percentage / 100 for r in stats.signal_list)

    text = dump_html(SYMBOL, "s1", tmp_path).read_text(encoding="utf-8")

    assert all(r.signal.cost for r in stats.signal_list)
    assert f'<div class="k">Total PNL (money)</div><div class="v neg">{money:.2f}</div>' in text
    assert '"name":"Equity (money)"' in text


def test_dump_html_without_plotly_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_hand_made()
    run_hand_made()
    monkeypatch.setitem(sys.modules, "plotly.io", None)  # what an absent package looks like

    with pytest.raises(bk.BacktestKitError, match=re.escape('pip install "backtest-kit[plot]"')):
        dump_html(SYMBOL, "s1", tmp_path)
    assert not list(tmp_path.iterdir())


def test_price_is_down_sampled_to_5000_points_keeping_the_extremes() -> None:
    n = 43_200  # 30 days of 1m candles
    rng = np.random.default_rng(7)
    ts = np.arange(n, dtype=np.int64) * 60_000
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    close[12_345] = 500.0  # a one-minute spike
    close[30_001] = 1.0

    t, c = downsample_closes(ts, close)

    assert MAX_PRICE_POINTS == 5_000
    assert 4_000 < len(t) <= 5_000
    assert np.all(np.diff(t) > 0)
    assert c.max() == 500.0 and c.min() == 1.0
    assert np.array_equal(c, close[t // 60_000])  # real points, not averages
    short_t, short_c = downsample_closes(ts[:5_000], close[:5_000])
    assert short_t is ts[:5_000] or np.array_equal(short_t, ts[:5_000])
    assert len(short_c) == 5_000


def test_unknown_heat_metric_is_refused() -> None:
    register_hand_made()
    run_hand_made()
    stats = asyncio.run(bk.Heat.get_data("s1", backtest=True))
    with pytest.raises(bk.BacktestKitError, match="'pnl' is not one of: sharpe_ratio"):
        render_heat_html(stats, title="x", metric="pnl")


# -- in the browser -----------------------------------------------------------------------------


def test_hand_made_report_renders_with_hover_and_counts(tmp_path: Path, browser: Browser) -> None:
    register_hand_made()
    run_hand_made()
    stats = asyncio.run(bk.Backtest.get_data(SYMBOL, "s1"))
    file = dump_html(SYMBOL, "s1", tmp_path)

    page = open_page(browser, file)

    assert page.evaluate("document.querySelectorAll('#equity-chart .main-svg').length") > 0
    assert page.evaluate("document.querySelectorAll('#price-chart .main-svg').length") > 0
    assert trades_in_page(page) == len(stats.signal_list) == 3
    assert page.evaluate("document.querySelectorAll('#trades tbody tr').length") == 3
    # the price chart holds the frame's 121 closes and one entry and exit per trade
    traces: list[dict[str, Any]] = page.evaluate(
        "document.getElementById('price-chart').data.map(d => "
        "({name: d.name, n: d.x.length, text: d.text || null}))"
    )
    assert traces[0]["n"] == 121
    entries = next(t for t in traces if t["name"].startswith("Entries"))
    assert entries["n"] == 3
    # a real mouse over the stop-loss trade's entry shows that trade
    loss = next(r for r in stats.signal_list if r.signal.id == "loss-long")
    x, y = page.evaluate(
        f"""(() => {{
        const gd = document.getElementById('price-chart'), L = gd._fullLayout;
        gd.scrollIntoView({{block: 'center'}});
        const box = gd.getBoundingClientRect();
        return [box.left + L._size.l + L.xaxis.d2p({loss.signal.pending_at}),
                box.top + L._size.t + L.yaxis.d2p({loss.signal.price_open})];
    }})()"""
    )
    for dx in (-3, 0):  # arrive at the marker like a real pointer
        page.command("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x + dx, "y": y})
    hover = page.wait_for("(document.querySelector('#price-chart .hoverlayer') || {}).textContent")
    assert "loss-long" in hover and "stop_loss" in hover and "LONG" in hover
    assert_clean(page, file)


def test_trade_table_sorts_on_header_clicks(tmp_path: Path, browser: Browser) -> None:
    register_hand_made()
    run_hand_made()
    page = open_page(browser, dump_html(SYMBOL, "s1", tmp_path))

    newest_first = column(page, "Signal ID")
    assert newest_first == ["win-short", "loss-long", "win-long"]
    page.click("#trades th:nth-child(8)")  # PNL (net)
    pnl = [float(v.rstrip("%")) for v in column(page, "PNL (net)")]
    assert pnl == sorted(pnl) and pnl[0] < 0 < pnl[-1]
    assert column(page, "Signal ID")[0] == "loss-long"
    page.click("#trades th:nth-child(8)")
    assert [float(v.rstrip("%")) for v in column(page, "PNL (net)")] == sorted(pnl, reverse=True)
    assert page.evaluate("document.querySelector('#trades th:nth-child(8)').ariaSort") == (
        "descending"
    )
    page.click("#trades th:nth-child(11)")  # Open Time: ISO text sorts chronologically
    assert column(page, "Signal ID") == ["win-long", "loss-long", "win-short"]
    # the same script on mixed cells: numbers with units, signs, N/A always last
    got = page.evaluate(
        """(() => {
        const t = document.createElement('table');
        t.innerHTML = '<thead><tr><th>v</th></tr></thead><tbody>' +
          ['N/A', '+10.00%', '-2.50%', '3.00000000 USD', '0.00%', '1e2']
            .map(v => '<tr><td>' + v + '</td></tr>').join('') + '</tbody>';
        const read = () => [...t.tBodies[0].rows].map(r => r.cells[0].textContent);
        bkSortTable(t, 0, false); const up = read();
        bkSortTable(t, 0, true); return [up, read()];
    })()"""
    )
    assert got == [
        ["-2.50%", "0.00%", "3.00000000 USD", "+10.00%", "1e2", "N/A"],
        ["1e2", "+10.00%", "3.00000000 USD", "0.00%", "-2.50%", "N/A"],
    ]


def test_a_run_without_trades_still_renders(tmp_path: Path, browser: Browser) -> None:
    register_hand_made(answers={})
    run_hand_made()
    file = dump_html(SYMBOL, "s1", tmp_path)

    page = open_page(browser, file)

    assert trades_in_page(page) == 0
    assert page.evaluate("document.getElementById('equity-chart')") is None
    assert "No signals closed yet." in page.evaluate("document.body.innerText")
    assert_clean(page, file)


def test_demo_report_on_the_sample_market(tmp_path: Path, browser: Browser) -> None:
    run_demo()
    stats = asyncio.run(bk.Backtest.get_data("BTCUSDT", "trend-follow"))
    file = dump_html("BTCUSDT", "trend-follow", tmp_path)

    page = open_page(browser, file)

    assert trades_in_page(page) == len(stats.signal_list) > 10
    assert page.evaluate("document.querySelectorAll('#trades tbody tr').length") == len(
        stats.signal_list
    )
    # 30 days = 43,200 closes, drawn as at most 5,000 points
    assert (
        4_000
        < page.evaluate("document.getElementById('price-chart').data[0].x.length")
        <= (MAX_PRICE_POINTS)
    )
    final = page.evaluate(
        "(d => d[d.length - 1])(document.getElementById('equity-chart').data[0].y)"
    )
    assert final == pytest.approx(stats.total_pnl)
    assert_clean(page, file)


def test_heat_page_shows_every_symbol(tmp_path: Path, browser: Browser) -> None:
    register_hand_made()
    run_hand_made("BTCUSDT", "ETHUSDT")
    stats = asyncio.run(bk.Heat.get_data("s1", backtest=True))
    file = asyncio.run(
        bk.Heat.dump("s1", backtest=True, path=str(tmp_path), format="html", metric="total_pnl")
    )
    assert file is not None and Path(file).name == "s1.html"

    page = open_page(browser, Path(file))

    assert trades_in_page(page) == stats.portfolio_total_trades == 6
    assert page.evaluate("document.querySelectorAll('#symbols tbody tr').length") == 2
    tiles = page.evaluate("document.getElementById('heat-chart').data[0].text.flat().join(' ')")
    assert "BTCUSDT" in tiles and "ETHUSDT" in tiles
    assert_clean(page, Path(file))


# -- the command line ---------------------------------------------------------------------------

STRATEGY_FILE = """
from datetime import datetime, timedelta
import backtest_kit as bk
from support import BASE, Market

market = Market(first=-60, last=400).take_profit_at(7)
bk.add_exchange("ex", get_candles=market.get_candles)
bk.add_strategy("s1", "1m", lambda symbol, when: bk.Signal("long", 101.0, 99.0, 60)
                if when == BASE else None)
bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=60))
"""


def test_backtest_command_writes_markdown_and_html(tmp_path: Path) -> None:
    file = tmp_path / "cli_html_strategy.py"
    file.write_text(STRATEGY_FILE)
    md, html = tmp_path / "md", tmp_path / "html"
    args = ["--symbol", SYMBOL, "--strategy", "s1", "--exchange", "ex", "--frame", "f"]

    code = main(
        ["backtest", str(file), *args, "--no-progress", "--md", str(md), "--html", str(html)]
    )

    assert code == 0
    assert "Trades: 1</p>" in (html / f"{SYMBOL}_s1.html").read_text(encoding="utf-8")
    assert (md / f"{SYMBOL}_s1.md").read_text(encoding="utf-8").startswith("# Backtest Report: s1")


def test_report_command_writes_the_chosen_formats(tmp_path: Path) -> None:
    file = tmp_path / "cli_report_strategy.py"
    file.write_text(STRATEGY_FILE)
    args = ["--symbol", SYMBOL, "--strategy", "s1", "--exchange", "ex", "--frame", "f"]

    assert main(["report", str(file), *args, "--out", str(tmp_path / "a")]) == 0
    bk.reset()  # each command runs in a fresh process; here they share one
    assert main(["report", str(file), *args, "--out", str(tmp_path / "b"), "--format", "html"]) == 0
    bk.reset()
    with pytest.raises(SystemExit) as usage:
        main(["report", str(file), *args, "--out", str(tmp_path / "c"), "--format", "pdf"])
    assert usage.value.code == 2

    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        f"{SYMBOL}_s1.html",
        f"{SYMBOL}_s1.md",
    ]
    assert [p.name for p in (tmp_path / "b").iterdir()] == [f"{SYMBOL}_s1.html"]
    assert not (tmp_path / "c").exists()
