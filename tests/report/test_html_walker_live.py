"""HTML pages of the walker and of live trading (97 §5): `Walker.dump(..., format="html")`
(metric per strategy, comparison table), the `walker --html DIR` command, and
`Live.dump(..., format="html")` (summary figures, equity and drawdown of the closed rows, the
live rows table), on real runs; each page opened once in headless Chromium (tests/browser.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import backtest_kit as bk
from backtest_kit.cli import main
from backtest_kit.report.html import render_live_html, render_walker_html
from browser import Browser, Page, chromium_or_skip
from support import BASE, SYMBOL, Market, minute_of, ms

CHARTS_DRAWN = "document.querySelectorAll('.main-svg').length > 0"


@pytest.fixture(autouse=True)
def _fresh_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the live file backend writes ./dump/data
    bk.reset()
    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(chromium_or_skip()) as chromium:
        yield chromium


def assert_offline_file(file: Path, md: Path | None) -> str:
    """Beside the Markdown file with the same name, plotly inlined once, nothing external."""
    import plotly.offline

    assert md is not None and md.with_suffix(".html") == file
    text = file.read_text(encoding="utf-8")
    assert text.count(plotly.offline.get_plotlyjs()) == 1
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"<link\b", text)
    return text


def open_clean(browser: Browser, file: Path) -> Page:
    page = Page(browser, file.as_uri())
    page.wait_for(CHARTS_DRAWN)
    assert page.errors() == []
    fetched = [url for url in page.requests() if not url.startswith(("data:", "blob:"))]
    assert fetched == [file.as_uri()]
    return page


# -- walker -------------------------------------------------------------------------------------


def at(*minutes: int) -> Callable[[str, datetime], bk.Signal | None]:
    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        minute = minute_of(when)
        if minute in minutes:
            return bk.Signal("long", 101.0, 99.0, 60, id=f"{symbol}-{minute}")
        return None

    return get_signal


def run_walker() -> bk.WalkerStatistics:
    """Three strategies on a market taking profit at 10 and 130: `win` (one win), `both`
    (two wins), `none` (no trade)."""
    market = Market(first=-60, last=400).take_profit_at(10, 130)
    bk.add_exchange("ex", get_candles=market.get_candles)
    bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=200))
    for name, minutes in {"win": (0,), "both": (0, 120), "none": ()}.items():
        bk.add_strategy(name, "1m", at(*minutes))
    bk.add_walker("w", "ex", "f", ["win", "both", "none"], metric="total_pnl")
    bk.Walker.run_sync(SYMBOL, walker_name="w")
    return asyncio.run(bk.Walker.get_data(SYMBOL, "w"))


def test_walker_page_sits_beside_the_markdown_and_shows_every_strategy(tmp_path: Path) -> None:
    stats = run_walker()
    md = asyncio.run(bk.Walker.dump(SYMBOL, "w", path=str(tmp_path)))
    file = asyncio.run(bk.Walker.dump(SYMBOL, "w", path=str(tmp_path), format="html"))

    assert file is not None and file.name == f"{SYMBOL}_w.html"
    text = assert_offline_file(file, md)
    trades = sum(r.stats.total_signals for r in stats.strategy_results)
    assert stats.total_strategies == 3 and trades == 3 and stats.best_strategy == "both"
    assert f"Trades: {trades}</p>" in text and "Strategies: 3</p>" in text
    assert text.startswith("<!DOCTYPE html>") and "Walker Comparison Report: w" in text
    # the comparison table: a row per strategy, best first (the Markdown report's columns)
    assert text.index("<td>both</td>") < text.index("<td>win</td>") < text.index("<td>none</td>")

    page = render_walker_html(stats, title="t")  # records alone: the default columns
    assert page.count("<tr>") == 1 + 3 and 'id="metric-chart"' in page


def test_walker_dump_refuses_an_unknown_format(tmp_path: Path) -> None:
    run_walker()
    with pytest.raises(bk.ValidationError, match="format must be one of 'md', 'html'"):
        asyncio.run(bk.Walker.dump(SYMBOL, "w", path=str(tmp_path), format="pdf"))


def test_walker_page_renders_in_the_browser(tmp_path: Path, browser: Browser) -> None:
    stats = run_walker()
    file = asyncio.run(bk.Walker.dump(SYMBOL, "w", path=str(tmp_path), format="html"))
    assert file is not None

    page = open_clean(browser, file)

    assert page.evaluate("document.getElementById('trade-count').textContent") == "Trades: 3"
    assert page.evaluate("document.getElementById('strategy-count').textContent") == (
        "Strategies: 3"
    )
    bars = page.evaluate("document.getElementById('metric-chart').data[0].x")
    assert bars == ["both", "win", "none"]
    assert page.evaluate("document.querySelectorAll('#strategies tbody tr').length") == 3
    assert stats.best_strategy == bars[0]


WALKER_FILE = """
from datetime import timedelta
import backtest_kit as bk
from support import BASE, Market, minute_of

market = Market(first=-60, last=400).take_profit_at(10)
bk.add_exchange("ex", get_candles=market.get_candles)
bk.add_frame("f", "1m", BASE, BASE + timedelta(minutes=60))
bk.add_strategy("one", "1m", lambda symbol, when: bk.Signal("long", 101.0, 99.0, 60)
                if minute_of(when) == 0 else None)
bk.add_strategy("idle", "1m", lambda symbol, when: None)
bk.add_walker("w", "ex", "f", ["one", "idle"])
"""


def test_walker_command_writes_the_html_report(tmp_path: Path) -> None:
    file = tmp_path / "cli_walker_html_strategies.py"
    file.write_text(WALKER_FILE)
    out = tmp_path / "out"

    args = ["--symbol", SYMBOL, "--walker", "w", "--no-progress"]
    code = main(["walker", str(file), *args, "--md", str(out), "--html", str(out)])

    assert code == 0
    text = (out / f"{SYMBOL}_w.html").read_text(encoding="utf-8")
    assert "Strategies: 2</p>" in text and "Trades: 1</p>" in text
    assert (out / f"{SYMBOL}_w.md").exists()


# -- live ---------------------------------------------------------------------------------------


def run_live() -> bk.LiveStatistics:
    """Two market orders, at minutes 1 and 20, each expiring 10 minutes later at 100."""

    def get_signal(symbol: str, when: datetime) -> bk.Signal | None:
        return bk.Signal("long", 101.0, 99.0, 10) if minute_of(when) in (1, 20) else None

    bk.add_exchange("ex", Market().get_candles)
    bk.add_strategy("s", "1m", get_signal)
    results = bk.Live.run_sync(
        SYMBOL, strategy_name="s", exchange_name="ex", clock=bk.SimulatedClock(ms(0), ms(40))
    )
    assert [r.action for r in results] == ["opened", "closed"] * 2
    return asyncio.run(bk.Live.get_data(SYMBOL, "s"))


def test_live_page_sits_beside_the_markdown_and_counts_the_trades(tmp_path: Path) -> None:
    stats = run_live()
    md = asyncio.run(bk.Live.dump(SYMBOL, "s", path=str(tmp_path)))
    file = asyncio.run(bk.Live.dump(SYMBOL, "s", path=str(tmp_path), format="html"))

    assert file is not None and file.name == f"{SYMBOL}_s.html"
    text = assert_offline_file(file, md)
    assert stats.total_closed == 2
    assert "Trades: 2</p>" in text and "Live Trading Report: s" in text
    assert f'<div class="k">Total events</div><div class="v">{stats.total_events}</div>' in text
    assert 'id="equity-chart"' in text and 'id="price-chart"' in text
    assert text.count("<td>CLOSED</td>") == 2  # the live rows table, Markdown columns

    page = render_live_html(stats, title="t")  # records alone: the default columns
    assert page.count("<tr>") == 1 + stats.total_events
    with pytest.raises(bk.ValidationError, match=re.escape("Live.dump: format")):
        asyncio.run(bk.Live.dump(SYMBOL, "s", path=str(tmp_path), format="pdf"))


def test_live_page_renders_in_the_browser(tmp_path: Path, browser: Browser) -> None:
    stats = run_live()
    file = asyncio.run(bk.Live.dump(SYMBOL, "s", path=str(tmp_path), format="html"))
    assert file is not None

    page = open_clean(browser, file)

    assert page.evaluate("document.getElementById('trade-count').textContent") == "Trades: 2"
    assert page.evaluate("document.querySelectorAll('#equity-chart .main-svg').length") > 0
    equity = page.evaluate("document.getElementById('equity-chart').data[0].y")
    assert len(equity) == 1 + stats.total_closed
    assert equity[-1] == pytest.approx(stats.total_pnl)
    rows = page.evaluate("document.querySelectorAll('#trades tbody tr').length")
    assert rows == stats.total_events
