"""`backtest-kit live` in real subprocesses against the Binance-shaped server on 127.0.0.1
(tests/data/binance_stub.py) with the real `ccxt.binance` class: a replay to its end, usage
and start-up errors, a graceful stop on the first SIGINT/SIGTERM that waits for the open
position, and a second SIGINT that exits at once (130) leaving the stored state to resume."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

import backtest_kit as bk
from backtest_kit.intervals import iso

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from binance_stub import M, Stub, StubServer

ROOT = Path(__file__).resolve().parents[1]
MARCH = 1_709_251_200_000  # 2024-03-01T00:00Z
LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)  (?P<action>opened|closed|cancelled)\s+"
    r"BTCUSDT  long   id=(?P<id>wave-\d+)  (?P<tail>.+)$"
)
STRATEGY = '''
import json
from pathlib import Path

import backtest_kit as bk

config = json.loads((Path(__file__).parent / "stub.json").read_text())
bk.data.add_ccxt_exchange("bn", "binance", ccxt_config=config, retry_delay=0.01)


async def get_signal(symbol, when):
    """Long every 15 minutes while flat; take profit / stop loss {width} away."""
    if not {trade} or when.minute % 15:
        return None
    last = float((await bk.get_candles(symbol, "1m", 1)).close[-1])
    return bk.Signal(
        id=f"wave-{{when:%d%H%M}}",
        position="long",
        price_take_profit=last * (1 + {width}),
        price_stop_loss=last * (1 - {width}),
        minute_estimated_time={hold},
    )


bk.add_strategy("wave", "1m", get_signal)
'''


@pytest.fixture(autouse=True)
def _fresh_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bk.reset()
    monkeypatch.chdir(tmp_path)


def wave_rows(minutes: int, start: int = MARCH) -> list[list[Any]]:
    """Binance kline rows of a 4-hour sine wave of ±3 % around 100."""
    rows: list[list[Any]] = []
    for k in range(minutes):
        t = start + k * M
        o = 100 * (1 + 0.03 * math.sin(2 * math.pi * k / 240))
        c = 100 * (1 + 0.03 * math.sin(2 * math.pi * (k + 1) / 240))
        values = (o, max(o, c) * 1.0005, min(o, c) * 0.9995, c, 10 + k % 7)
        rows.append([t, *(f"{x:.8f}" for x in values), t + M - 1, "0", 10, "0", "0", "0"])
    return rows


@pytest.fixture(scope="module")
def server() -> Any:
    with StubServer(Stub({"BTCUSDT": wave_rows(2 * 1440)})) as running:
        yield running


def strategy_file(
    where: Path,
    server: StubServer,
    *,
    hold: int,
    width: float,
    rate_limit_ms: int = 1,
    trade: bool = True,
) -> Path:
    (where / "stub.json").write_text(json.dumps(server.ccxt_config(rate_limit_ms)))
    path = where / "wave.py"
    path.write_text(STRATEGY.format(hold=hold, width=width, trade=trade))
    return path


def live_args(file: Path, *extra: str, symbol: str = "BTCUSDT") -> list[str]:
    return [
        sys.executable, "-m", "backtest_kit", "live", str(file),
        "--symbol", symbol, "--strategy", "wave", "--exchange", "bn", *extra,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env(), timeout=60, check=False)


def signal_file() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        Path("dump/data/signal/BTCUSDT_wave/BTCUSDT.json").read_text(encoding="utf-8")
    )
    return data


class Running:
    """A `live` child whose stdout and stderr lines are read by threads into queues."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=_pump, args=(stream, into), daemon=True).start()

    def wait_for(self, into: queue.Queue[str], seen: list[str], pattern: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = into.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {seen}"
                continue
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in {seen}")

    def finish(self) -> int:
        code = self.proc.wait(timeout=30)
        time.sleep(0.1)  # let the pumps drain
        for into, seen in ((self.out, self.lines), (self.err, self.errors)):
            while not into.empty():
                seen.append(into.get())
        return code


def _pump(stream: IO[str] | None, into: queue.Queue[str]) -> None:
    assert stream is not None
    for line in stream:
        into.put(line.rstrip("\n"))


def test_a_replay_runs_to_its_end_printing_each_trade(server: StubServer, tmp_path: Path) -> None:
    file = strategy_file(tmp_path, server, hold=60, width=0.01)
    done = run_cli(live_args(file, "--simulate", "2024-03-01T01:00", "--until", "2024-03-01T07:00"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    actions = [(m["action"], m["id"]) for m in parsed if m]
    assert len(actions) >= 16
    # one position at a time: opened, closed, opened, closed, ...
    for k, (action, signal_id) in enumerate(actions):
        assert action == ("opened" if k % 2 == 0 else "closed")
        assert signal_id == actions[k - k % 2][1]
    reasons = {m["tail"].split()[0] for m in parsed if m and m["action"] == "closed"}
    assert reasons >= {"take_profit", "stop_loss"}
    assert parsed[0] and parsed[0]["at"] == "2024-03-01T01:00:00Z"  # the first tick, at START
    assert "replaying from 2024-03-01T01:00:00Z until 2024-03-01T07:00:00Z" in done.stderr
    assert "live: the replay reached its end (2024-03-01T07:00:00Z)" in done.stderr
    stored = signal_file()
    assert stored["phase"] == ("open" if actions[-1][0] == "opened" else None)


def test_usage_and_start_up_errors(server: StubServer, tmp_path: Path) -> None:
    file = strategy_file(tmp_path, server, hold=60, width=0.01)
    usage = run_cli(live_args(file, "--until", "2024-03-02"))
    assert usage.returncode == 2
    assert "--until goes with --simulate" in usage.stderr
    unknown = run_cli(live_args(file, "--simulate", "2024-03-01T01:00", symbol="BTCUSDX"))
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: exchange 'bn': ccxt binance has no market 'BTCUSDX' (2 markets, e.g. "
        "BTC/USDT, FOO/USDT); did you mean 'BTCUSDT', 'BTC/USDT'?"
    )
    assert not Path("dump").exists()  # nothing started

    # a run that cannot start: corrupt state (exit 1, the file left as it was)
    state = Path("dump/data/signal/BTCUSDT_wave/BTCUSDT.json")
    state.parent.mkdir(parents=True)
    state.write_text('{"format": 1, "phase": "op')
    corrupt = run_cli(live_args(file, "--simulate", "2024-03-01T01:00"))
    assert corrupt.returncode == 1
    last = corrupt.stderr.strip().splitlines()[-1]
    assert last.startswith("error: PersistError: ") and str(state.resolve()) in last
    assert state.read_text() == '{"format": 1, "phase": "op'


def test_on_the_wall_clock_a_stop_cuts_the_pause_short(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    recent = now - now % M - 30 * M
    with StubServer(Stub({"BTCUSDT": wave_rows(30, start=recent)})) as server:
        file = strategy_file(tmp_path, server, hold=60, width=0.01, trade=False)
        child = Running(live_args(file))
        child.wait_for(child.err, child.errors, "on the wall clock")
        deadline = time.monotonic() + 20
        while not server.stub.klines() and time.monotonic() < deadline:
            time.sleep(0.02)  # the first tick asks for the candles of its price
        time.sleep(0.3)  # ... and then pauses for a minute
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code = child.finish()
    assert code == 0, child.errors
    assert time.monotonic() - sent < 10
    assert "live: stopping (SIGINT): no new signals; no position is open" in child.errors
    assert child.errors[-1] == "live: stopped"
    assert child.lines == []


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_stop_signal_waits_for_the_open_position_then_exits_0(
    server: StubServer, tmp_path: Path, first: signal.Signals
) -> None:
    # wide take profit and stop loss: the position closes by time, 120 ticks after it opened,
    # each tick taking at least the 5 ms of ccxt's rate limiter
    file = strategy_file(tmp_path, server, hold=120, width=0.1, rate_limit_ms=5)
    child = Running(live_args(file, "--simulate", "2024-03-01T01:00", "--until", "2024-03-02"))
    opened = child.wait_for(child.out, child.lines, "opened")
    child.proc.send_signal(first)
    code = child.finish()
    assert code == 0, child.errors
    signal_id = (LINE.match(opened) or {"id": "?"})["id"]
    assert (
        f"live: stopping ({first.name}): no new signals; waiting for the open position "
        f"{signal_id} to close (Ctrl-C again to exit at once, the state is kept)"
    ) in child.errors
    closed = [LINE.match(line) for line in child.lines[1:]]
    assert [(m["action"], m["id"], m["tail"].split()[0]) for m in closed if m] == [
        ("closed", signal_id, "time_expired")
    ]
    assert child.errors[-1] == "live: stopped"
    assert signal_file()["phase"] is None


def test_a_second_sigint_exits_at_once_and_the_position_resumes(
    server: StubServer, tmp_path: Path
) -> None:
    file = strategy_file(tmp_path, server, hold=1440, width=0.1, rate_limit_ms=5)
    child = Running(live_args(file, "--simulate", "2024-03-01T01:00", "--until", "2024-03-02"))
    opened = LINE.match(child.wait_for(child.out, child.lines, "opened"))
    assert opened is not None
    child.proc.send_signal(signal.SIGINT)
    child.wait_for(child.err, child.errors, "live: stopping")
    sent = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    code = child.finish()
    assert code == 130, child.errors
    assert time.monotonic() - sent < 5
    assert child.errors[-1] == (
        "live: exited at once; the stored state is intact and resumes on the next start"
    )
    assert len(child.lines) == 1  # the position never closed
    stored = signal_file()
    assert stored["phase"] == "open" and stored["signal"]["id"] == opened["id"]
    leftovers = [p for p in Path("dump/data").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []

    # the next start resumes the position and closes it when its time is up
    pending_at = stored["signal"]["pending_at"]
    start, end = pending_at + 1400 * M, pending_at + 1445 * M
    file = strategy_file(tmp_path, server, hold=1440, width=0.1)
    again = run_cli(live_args(file, "--simulate", iso(start), "--until", iso(end)))
    assert again.returncode == 0, again.stderr
    resumed = [LINE.match(line) for line in again.stdout.splitlines()]
    assert [(m["action"], m["id"]) for m in resumed if m] == [("closed", opened["id"])]
    assert signal_file()["phase"] is None
