"""The report accessors (80 §1.5, §1.7): argument validation, dump paths and file names,
the "report saved" log line, swallowed write errors, the `format` argument."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.report.facades import LiveReports


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    bk.reset()
    bk.add_strategy(strategy_name="s1", interval="1m", get_signal=lambda s, w: None)


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, topic: str, *args: Any) -> None:
        self.lines.append(("log", topic))

    def debug(self, topic: str, *args: Any) -> None:
        self.lines.append(("debug", topic))

    def info(self, topic: str, *args: Any) -> None:
        self.lines.append(("info", topic))

    def warn(self, topic: str, *args: Any) -> None:
        self.lines.append(("warn", topic))


def test_every_accessor_validates_the_strategy() -> None:
    calls = [
        bk.Backtest.get_data("BTCUSDT", "nope"),
        bk.Backtest.get_report("BTCUSDT", "nope"),
        bk.Schedule.get_data("BTCUSDT", "nope"),
        bk.Performance.get_report("BTCUSDT", "nope"),
        bk.Partial.get_data("BTCUSDT", "nope", backtest=True),
        bk.Risk.get_report("BTCUSDT", "nope"),
        bk.Heat.get_data("nope"),
        LiveReports().get_data("BTCUSDT", "nope"),
    ]
    for call in calls:
        with pytest.raises(
            bk.RegistryError, match=r"strategy 'nope' not found \(registered: 's1'\)"
        ):
            asyncio.run(call)


def test_a_strategy_with_an_unregistered_risk_profile_is_refused() -> None:
    bk.add_risk("r1")
    bk.add_strategy(
        strategy_name="s2", interval="1m", get_signal=lambda s, w: None, risk_list=["r1", "r2"]
    )
    with pytest.raises(bk.RegistryError, match=r"Risk.get_data: risk 'r2' not found"):
        asyncio.run(bk.Risk.get_data("BTCUSDT", "s2"))
    bk.add_risk("r2")
    assert asyncio.run(bk.Risk.get_data("BTCUSDT", "s2")).total_rejections == 0


def test_a_symbol_must_be_a_non_empty_string() -> None:
    with pytest.raises(bk.ValidationError, match=r"Schedule.get_data: symbol must be a non-empty"):
        asyncio.run(bk.Schedule.get_data("", "s1"))


def test_unknown_symbols_just_have_no_data() -> None:
    s = asyncio.run(bk.Schedule.get_data("ANY", "s1", backtest=True))
    assert (s.total_events, s.event_list) == (0, ())


def test_dump_defaults_to_a_folder_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recorder = Recorder()
    bk.set_logger(recorder)
    written = asyncio.run(bk.Backtest.dump("BTCUSDT", "s1"))
    expected = tmp_path / "dump" / "backtest" / "BTCUSDT_s1.md"
    assert written == expected
    assert expected.read_text("utf-8") == "# Backtest Report: s1\n\nNo signals closed yet."
    assert ("info", f"Backtest report saved: {expected}") in recorder.lines
    defaults = {
        "schedule": bk.Schedule.dump("BTCUSDT", "s1"),
        "performance": bk.Performance.dump("BTCUSDT", "s1"),
        "partial": bk.Partial.dump("BTCUSDT", "s1"),
        "risk": bk.Risk.dump("BTCUSDT", "s1"),
        "live": LiveReports().dump("BTCUSDT", "s1"),
    }
    for folder, call in defaults.items():
        assert asyncio.run(call) == tmp_path / "dump" / folder / "BTCUSDT_s1.md"
    assert asyncio.run(bk.Heat.dump("s1")) == tmp_path / "dump" / "heatmap" / "s1.md"


def test_dump_overwrites_and_honours_absolute_paths(tmp_path: Path) -> None:
    # [deviation] 80 §1.5: the reference nests an absolute path under the cwd
    target = tmp_path / "abs" / "deeper"
    (target).mkdir(parents=True)
    (target / "BTCUSDT_s1.md").write_text("old", "utf-8")
    assert asyncio.run(bk.Schedule.dump("BTCUSDT", "s1", path=str(target))) == (
        target / "BTCUSDT_s1.md"
    )
    assert (target / "BTCUSDT_s1.md").read_text("utf-8").startswith("# Scheduled Signals Report")


def test_path_separators_in_a_symbol_stay_inside_the_folder(tmp_path: Path) -> None:
    written = asyncio.run(bk.Backtest.dump("BTC/USDT", "s1", path=tmp_path))
    assert written == tmp_path / "BTC%2FUSDT_s1.md"
    assert written.exists()


def test_a_write_error_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", "utf-8")  # a file where the folder should be
    with caplog.at_level(logging.WARNING, logger="backtest_kit"):
        assert asyncio.run(bk.Heat.dump("s1", path=blocker / "sub")) is None
    assert "Heat.dump failed to write the report" in caplog.text


def test_dump_accepts_markdown_only_for_now() -> None:
    with pytest.raises(
        bk.ValidationError, match=r"Backtest.dump: format must be one of .*got 'pdf'"
    ):
        asyncio.run(bk.Backtest.dump("BTCUSDT", "s1", format="pdf"))
