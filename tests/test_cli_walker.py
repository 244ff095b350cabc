"""`backtest-kit walker` in a real subprocess: the comparison report, --workers, --md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STRATEGIES = """
import backtest_kit as bk


def trend(threshold):
    async def get_signal(symbol, when):
        hourly = (await bk.get_candles(symbol, "1h", 48)).close
        if len(hourly) < 48:
            return None
        fast, slow = hourly[-12:].mean(), hourly.mean()
        last = float((await bk.get_candles(symbol, "1m", 1)).close[-1])
        if fast > slow * (1 + threshold):
            return bk.Signal("long", last * 1.02, last * 0.99, minute_estimated_time=720)
        if fast < slow * (1 - threshold):
            return bk.Signal("short", last * 0.98, last * 1.01, minute_estimated_time=720)
        return None
    return get_signal


bk.data.add_sample_exchange("sample")
bk.add_frame("week", "1m", "2024-01-08", "2024-01-14T23:59")
for name, threshold in (("t-tight", 0.002), ("t-wide", 0.01)):
    bk.add_strategy(name, interval="15m", get_signal=trend(threshold))
bk.add_walker("cmp", "sample", "week", ["t-tight", "t-wide"], metric="total_pnl")
"""


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


def test_walker_prints_the_comparison_and_dumps_it(tmp_path: Path) -> None:
    file = tmp_path / "cmp_strategies.py"
    file.write_text(STRATEGIES, encoding="utf-8")
    common = ("walker", str(file), "--symbol", "BTCUSDT", "--walker", "cmp", "--no-progress")
    done = run_cli(*common)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Walker Comparison Report: cmp")
    assert "**Strategies Tested:** 2" in done.stdout
    assert "| 1 | t-" in done.stdout and "| 2 | t-" in done.stdout
    parallel = run_cli(*common, "--workers", "2", "--md", str(tmp_path / "out"))
    assert parallel.returncode == 0, parallel.stderr
    report = (tmp_path / "out" / "BTCUSDT_cmp.md").read_text(encoding="utf-8")
    # the same comparison as the sequential run (signal ids are random, so compare the top)
    top = done.stdout.split("## All Signals")[0]
    assert report.split("## All Signals")[0] == top
    assert f"Markdown report: {tmp_path / 'out' / 'BTCUSDT_cmp.md'}" in parallel.stdout


def test_walker_usage_and_runtime_errors(tmp_path: Path) -> None:
    file = tmp_path / "cmp_strategies2.py"
    file.write_text(STRATEGIES, encoding="utf-8")
    missing = run_cli("walker", str(file), "--symbol", "BTCUSDT")
    assert missing.returncode == 2
    unknown = run_cli("walker", str(file), "--symbol", "BTCUSDT", "--walker", "nope")
    assert unknown.returncode == 1
    assert "error: Walker.run: walker 'nope' not found" in unknown.stderr
