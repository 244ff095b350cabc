"""Tests for data/download.py and data/ccxt.py: the real `ccxt.binance` class against a
Binance-shaped server on 127.0.0.1 (binance_stub.py), the store checked candle by candle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from binance_stub import M, Stub, StubServer, kline_rows

import backtest_kit as bk
from backtest_kit.core.exchange import wall_clock_ms
from backtest_kit.data.ccxt import check_timeframe, create_exchange
from backtest_kit.data.store import CandleStore

ROOT = Path(__file__).resolve().parents[2]
MARCH = 1_709_251_200_000  # 2024-03-01T00:00Z
DAYS = 3
# exchange downtime: 1100 minutes (more than a page: an empty page), 5 minutes (a short page)
GAPS = ((1000, 2100), (3200, 3205))
REPEATED = MARCH + 500 * M  # served twice in its page
START, END = "2024-03-01", "2024-03-05"  # the data ends on the 3rd: the last page is empty


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()


def market_times(days: int = DAYS, gaps: tuple[tuple[int, int], ...] = GAPS) -> list[int]:
    return [MARCH + k * M for k in range(days * 1440) if not any(a <= k < b for a, b in gaps)]


def market(**quirks: Any) -> Stub:
    data = {
        "BTCUSDT": kline_rows(market_times(), seed=1),
        "ETHUSDT": kline_rows(market_times(gaps=()), seed=2, price=3000.0),
    }
    quirks.setdefault("repeated", {REPEATED})
    return Stub(data, **quirks)


def served(stub: Stub, market_id: str) -> bk.Candles:
    """What the exchange holds, as floats parsed from its strings (once per open time)."""
    rows = [[r[0], *(float(x) for x in r[1:6])] for r in stub.data[market_id]]
    return bk.Candles.from_records(rows)


def read(root: Path, symbol: str) -> bk.Candles:
    return CandleStore(root).read("binance", symbol, "1m")


def download(server: StubServer, root: Path, symbols: list[str], **kw: Any) -> Any:
    kw.setdefault("retry_delay", 0.01)
    kw.setdefault("progress", False)
    return bk.data.download(
        "binance", symbols, "1m", kw.pop("start", START), kw.pop("end", END), root,
        ccxt_config=server.ccxt_config(), **kw,
    )  # fmt: skip


def test_every_candle_served_is_stored_once(tmp_path: Path) -> None:
    stub = market(rate_limited={3})
    with StubServer(stub) as server:
        report = download(server, tmp_path, ["BTC/USDT", "ETH/USDT"])
    assert report.ok, report.format()
    for symbol, market_id in (("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT")):
        stored, expected = read(tmp_path, symbol), served(stub, market_id)
        assert len(stored) == len(expected)
        for got, want in zip(stored, expected, strict=True):  # candle by candle
            assert got == want
    btc = report["BTC/USDT"]
    assert btc.added == len(market_times())
    assert (btc.first, btc.last) == (MARCH, MARCH + (DAYS * 1440 - 1) * M)
    assert btc.gaps == [(MARCH + a * M, MARCH + b * M) for a, b in GAPS]
    assert btc.duplicates == 1  # the repeated candle
    assert btc.error is None
    assert report["ETH/USDT"].gaps == []

    klines = stub.klines()
    statuses = [r.status for r in klines]
    assert statuses.count(429) == 1
    limited = klines[statuses.index(429)]
    assert klines[statuses.index(429) + 1].query == limited.query  # the same page, retried
    btc_pages = [r for r in klines if r.query["symbol"] == "BTCUSDT" and r.status == 200]
    sizes = [r.rows for r in btc_pages if "startTime" in r.query]
    assert 0 in sizes[:-1]  # an empty page inside the data: the 400-minute gap
    assert sizes[-1] == 0  # and one past its end
    assert any(0 < n < stub.page_max for n in sizes)  # short pages
    # one probe for the newest candle per empty page, never more
    assert sum("startTime" not in r.query for r in btc_pages) == 2
    parts = sorted(tmp_path.rglob("*.parquet"))
    assert [p.parent.name for p in parts] == ["month=03", "month=03"]  # compacted: 1 per series


def test_a_rerun_adds_nothing_and_a_wider_range_resumes_after_the_last_candle(
    tmp_path: Path,
) -> None:
    stub = market()
    with StubServer(stub) as server:
        first = bk.data.download(
            "binance", "ETH/USDT", "1m", START, "2024-03-02", tmp_path,
            ccxt_config=server.ccxt_config(), progress=False,
        )  # fmt: skip
        assert first["ETH/USDT"].added == 1440
        before = len(stub.klines())
        again = download(server, tmp_path, ["ETH/USDT"], end="2024-03-02")
        assert again["ETH/USDT"].added == 0
        assert len(stub.klines()) == before  # nothing left to ask
        wider = download(server, tmp_path, ["ETH/USDT"], start="2024-02-29")
    assert wider["ETH/USDT"].added == 2 * 1440
    asked = [int(r.query["startTime"]) for r in stub.klines()[before:] if "startTime" in r.query]
    assert asked[0] == MARCH - 1440 * M  # before the first stored candle: nothing there
    assert MARCH + 1440 * M in asked  # then right after the last stored one
    assert not any(MARCH <= t < MARCH + 1440 * M for t in asked)
    assert read(tmp_path, "ETH/USDT") == served(stub, "ETHUSDT")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "backtest_kit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def cli_args(server: StubServer, root: Path, symbols: str = "BTC/USDT") -> list[str]:
    return [
        "download", "--exchange-id", "binance", "--symbols", symbols, "--interval", "1m",
        "--start", START, "--end", END, "--store", str(root),
        "--ccxt-config", json.dumps(server.ccxt_config()), "--no-progress",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("how", "page"),
    [(signal.SIGINT, 3), (signal.SIGKILL, 6)],
    ids=["sigint-resume-at-a-gap", "sigkill-resume-after-a-gap"],
)
def test_an_interrupted_download_resumed_equals_an_uninterrupted_one(
    tmp_path: Path, how: signal.Signals, page: int
) -> None:
    # klines requests: [0, 1000) (ccxt keeps 1000 rows of 1001: the repeated candle pushes
    # minute 999 out), [999, 1999) one row, [1000, 2000) empty, a probe for the newest candle,
    # [2000, 3000) short, [3000, 4000) ...: the process is stopped while it waits for `page`
    stub = market(block_at=page)
    interrupted, whole = tmp_path / "interrupted", tmp_path / "whole"
    with StubServer(stub) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        process = subprocess.Popen(
            [sys.executable, "-m", "backtest_kit", *cli_args(server, interrupted, "BTC/USDT")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert stub.arrived.wait(timeout=60), f"the download never reached page {page}"
            process.send_signal(how)
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
            stub.release.set()
        if how == signal.SIGINT:
            assert process.returncode == 1
            assert stderr.strip().splitlines()[-1] == "error: interrupted"
        else:
            assert process.returncode == -signal.SIGKILL
        partial = read(interrupted, "BTC/USDT")
        assert len(partial) == (1000 if page == 3 else 1900)  # every page before the one cut
        assert partial == served(stub, "BTCUSDT")[: len(partial)]

        resumed = download(server, interrupted, ["BTC/USDT"])
        assert resumed["BTC/USDT"].added == len(market_times()) - len(partial)
        download(server, whole, ["BTC/USDT"])
    assert read(interrupted, "BTC/USDT") == read(whole, "BTC/USDT") == served(stub, "BTCUSDT")
    assert CandleStore(interrupted).coverage("binance", "BTC/USDT", "1m").duplicates == 0


def test_pages_ask_for_the_exchange_maximum_or_less(tmp_path: Path) -> None:
    stub = market(repeated=set())
    with StubServer(stub) as server:
        download(server, tmp_path / "a", ["ETH/USDT"], end="2024-03-02")
        download(server, tmp_path / "b", ["ETH/USDT"], end="2024-03-02", limit=250)
        download(server, tmp_path / "c", ["ETH/USDT"], end="2024-03-02", limit=5000)
    asked = [(r.query["startTime"], r.query["limit"]) for r in stub.klines()]
    first_day = [(str(MARCH), "1000"), (str(MARCH + 1000 * M), "440")]  # ccxt: 1000 on Binance
    quarters = [(str(MARCH + k * 250 * M), "250") for k in range(5)] + [
        (str(MARCH + 1250 * M), "190")
    ]
    assert asked == first_day + quarters + first_day


def test_the_exchange_rate_limit_spaces_the_requests(tmp_path: Path) -> None:
    stub = market()
    with StubServer(stub) as server:
        config = server.ccxt_config(rate_limit_ms=100)
        bk.data.download(
            "binance", ["ETH/USDT"], "1m", START, END, tmp_path, ccxt_config=config, progress=False
        )
    times = [r.at for r in stub.klines()]
    assert len(times) >= 5
    # ccxt's limiter: Binance's spot klines cost 0.4 of `rateLimit` each (ccxt's cost table)
    assert min(np.diff(times)) >= 0.9 * 0.4 * 0.100


def test_rate_limit_errors_are_retried_five_times_then_reported(tmp_path: Path) -> None:
    stub = market(always_limited={"SOLUSDT"})
    with StubServer(stub) as server:
        report = download(server, tmp_path, ["SOL/USDT", "ETH/USDT"], retry_delay=0.04)
    sol = report["SOL/USDT"]
    assert sol.error is not None and sol.error.startswith("DDoSProtection: binance 429")
    assert (sol.added, sol.first, sol.gaps) == (0, None, [])
    tries = [r for r in stub.klines() if r.query["symbol"] == "SOLUSDT"]
    assert len(tries) == 5
    waits = np.diff([r.at for r in tries])
    assert all(w >= 0.04 * 2**k * 0.9 for k, w in enumerate(waits))  # exponential back-off
    assert report["ETH/USDT"].error is None  # the next symbol goes on
    assert read(tmp_path, "ETH/USDT") == served(stub, "ETHUSDT")
    assert not report.ok


def test_other_errors_stop_the_symbol_at_once(tmp_path: Path) -> None:
    stub = market()
    with StubServer(stub) as server:
        report = download(server, tmp_path, ["FOO/USDT", "XYZ/USDT", "ETH/USDT"])
    assert (
        report["FOO/USDT"].error == 'BadSymbol: binance {"code": -1121, "msg": "Invalid symbol."}'
    )
    assert report["XYZ/USDT"].error == "BadSymbol: binance does not have market symbol XYZ/USDT"
    assert len([r for r in stub.klines() if r.query["symbol"] == "FOOUSDT"]) == 1
    assert report["ETH/USDT"].added == DAYS * 1440


def test_candles_not_closed_yet_are_never_stored(tmp_path: Path) -> None:
    now = wall_clock_ms()
    forming = now - now % M
    times = [forming + k * M for k in range(-40, 5)]  # the exchange even has future candles
    stub = Stub({"BTCUSDT": kline_rows(times)})
    with StubServer(stub) as server:
        report = download(server, tmp_path, ["BTC/USDT"], start=times[0], end=times[-1] + M)
    after = wall_clock_ms()
    stored = read(tmp_path, "BTC/USDT")
    assert len(stored) >= 40 - 1 and report["BTC/USDT"].added == len(stored)
    assert int(stored.timestamp[-1]) + M <= after
    assert stored.timestamp.tolist() == times[: len(stored)]


def test_arguments_are_checked_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(bk.ValidationError, match="invalid interval '7m'"):
        bk.data.download("binance", ["BTC/USDT"], "7m", START, END, tmp_path)
    with pytest.raises(bk.ValidationError, match="must be after start"):
        bk.data.download("binance", ["BTC/USDT"], "1m", END, START, tmp_path)
    with pytest.raises(bk.BacktestKitError, match="unknown ccxt exchange id 'nope'"):
        bk.data.download("nope", ["BTC/USDT"], "1m", START, END, tmp_path)
    assert not tmp_path.joinpath("binance").exists()
    kraken = create_exchange("kraken")  # no request: the check reads ccxt's description
    assert "3m" not in kraken.timeframes
    with pytest.raises(bk.BacktestKitError, match="'kraken' has no '3m' candles; its timeframes"):
        check_timeframe(kraken, "3m")
    check_timeframe(kraken, "1h")


def test_a_missing_ccxt_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)
    monkeypatch.setitem(sys.modules, "ccxt.async_support", None)
    with pytest.raises(bk.BacktestKitError, match=r'pip install "backtest-kit\[ccxt\]"'):
        bk.data.download("binance", ["BTC/USDT"], "1m", START, END, tmp_path)


def test_download_command_prints_the_report(tmp_path: Path) -> None:
    stub = market()
    config = tmp_path / "ccxt.json"
    with StubServer(stub) as server:
        config.write_text(json.dumps(server.ccxt_config()), encoding="utf-8")
        args = cli_args(server, tmp_path / "store", "BTC/USDT,ETH/USDT")
        args[args.index("--ccxt-config") + 1] = f"@{config}"
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "| Symbol | Added | First | Last | Gaps | Missing | Error |"
        assert lines[2] == (
            "| BTC/USDT | 3215 | 2024-03-01T00:00:00Z | 2024-03-03T23:59:00Z | 2 | 1105 |  |"
        )
        assert lines[3].startswith("| ETH/USDT | 4320 |")

        failed = run_cli(*cli_args(server, tmp_path / "store", "ETH/USDT,XYZ/USDT"))
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[2].startswith("| ETH/USDT | 0 |")  # all stored already
    assert failed.stderr.strip() == (
        "error: 1 of 2 symbols failed: XYZ/USDT: BadSymbol: binance does not have market "
        "symbol XYZ/USDT"
    )


def test_download_command_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from backtest_kit.cli import main

    def usage_error(*args: str) -> str:
        with pytest.raises(SystemExit) as info:
            main(["download", "--exchange-id", "binance", "--symbols", "BTC/USDT", *args])
        assert info.value.code == 2
        return capsys.readouterr().err

    assert "invalid date 'March 1st'" in usage_error(
        "--store", "s", "--start", "March 1st", "--end", END
    )
    dates = ["--store", "s", "--start", START, "--end", END]
    assert "is not valid JSON" in usage_error(*dates, "--ccxt-config", "{nope")
    assert "must be a JSON object" in usage_error(*dates, "--ccxt-config", "[1]")
    assert "cannot read nope.json" in usage_error(*dates, "--ccxt-config", "@nope.json")
    assert "required: --start, --end, --store" in usage_error()
