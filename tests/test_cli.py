"""The command line in real subprocesses: `demo`, `backtest`, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def table(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| "):
            key, value = (cell.strip() for cell in line.strip("|").split("|"))
            rows[key] = value
    return rows


def test_demo_prints_the_summary_of_the_example_backtest() -> None:
    done = run_cli("demo", "--days", "10", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "Backtesting 'trend-follow' on the sample BTCUSDT market, 2024-01-08" in done.stdout
    rows = table(done.stdout)
    assert list(rows) == [
        "Trades",
        "Cancelled",
        "Win rate",
        "Total PnL",
        "Average PnL",
        "Sharpe (per trade)",
        "Max drawdown",
    ]
    assert int(rows["Trades"]) > 0
    assert rows["Total PnL"].endswith("%")


def test_demo_is_deterministic_and_matches_the_example_file() -> None:
    first = table(run_cli("demo", "--days", "30", "--no-progress").stdout)
    again = table(run_cli("demo", "--days", "30", "--no-progress").stdout)
    assert first == again
    example = run_cli(
        "backtest",
        str(ROOT / "examples" / "trend_follow.py"),
        "--symbol",
        "BTCUSDT",
        "--strategy",
        "trend-follow",
        "--exchange",
        "sample",
        "--frame",
        "jan-2024",
        "--no-progress",
    )
    assert example.returncode == 0, example.stderr
    # the example file is the demo's strategy over the same 30 days
    assert table(example.stdout) == first


def test_unknown_symbol_is_a_runtime_error_with_one_line() -> None:
    done = run_cli("demo", "--symbol", "DOGEUSDT")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --symbol 'DOGEUSDT' is not in the sample market "
        "(BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT)"
    ]


def test_unknown_strategy_in_backtest_names_it() -> None:
    done = run_cli(
        "backtest",
        str(ROOT / "examples" / "trend_follow.py"),
        "--symbol",
        "BTCUSDT",
        "--strategy",
        "nope",
        "--exchange",
        "sample",
        "--frame",
        "jan-2024",
    )
    assert done.returncode == 1
    assert "error: Backtest.run: strategy 'nope' not found" in done.stderr


def test_usage_error_exits_2() -> None:
    assert run_cli("backtest").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    listing = run_cli("--help")
    assert listing.returncode == 0
    assert "demo" in listing.stdout and "backtest" in listing.stdout
