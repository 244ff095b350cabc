"""The SIGKILL test of 40 §11 (crash-safety contract, 40 §7): a child process trades a
deterministic "1m" strategy live on a simulated clock over a recorded random-walk market with
the file backend; the parent kills it (SIGKILL at a random real-time instant, or the child
kills itself at a random point of a store write) and restarts it from the last recorded tick
until the clock is exhausted. The de-duplicated transitions, their payloads and the final
stores must equal those of one uninterrupted run.

The child program is generated into the test's temporary directory (no extra module under
tests/). `benchmarks/crash_soak.py` loads this file and runs the same campaign with more kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit.model.state import SignalState
from backtest_kit.persist import partial_from_json, positions_from_json

START_MS = 1_704_067_200_000  # 2024-01-01T00:00Z
MINUTE = 60_000
SYMBOL = "BTCUSDT"
STRATEGY = "crash"
MINUTES = 360  # six hours of 1m ticks
SEED = 11

CHILD_SOURCE = r'''
"""Crash-test child: trade `crash` live on a simulated clock, recording progress and events.

argv: workdir start_ms end_ms kill_at   (kill_at: 0 = never, N = SIGKILL at the N-th store hook)
"""
import asyncio
import json
import os
import signal
import sys
import threading

import numpy as np

import backtest_kit as bk

SYMBOL = "BTCUSDT"
STRATEGY = "crash"
START = 1_704_067_200_000
M = 60_000
WARMUP = 30


def market(minutes, seed):
    """A seeded random walk with rare heavy jumps (so VWAP crosses TP/SL and cancels
    scheduled entries by their stop loss)."""
    rng = np.random.default_rng(seed)
    n = WARMUP + minutes + 10
    ts = START + (np.arange(n, dtype=np.int64) - WARMUP) * M
    steps = rng.normal(0.0, 0.0012, n)
    jumps = rng.random(n) < 0.04
    steps[jumps] += rng.choice([-1.0, 1.0], int(jumps.sum())) * 0.02
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    volume = rng.uniform(1.0, 10.0, n)
    volume[jumps] *= 30
    return ts, {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def main():
    workdir, start, end, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    minutes, seed = int(sys.argv[5]), int(sys.argv[6])
    os.chdir(workdir)
    ts, cols = market(minutes, seed)

    def get_candles(symbol, interval, since, limit):
        if interval != "1m":
            return bk.Candles.empty()
        lo = int(since.timestamp() * 1000)
        hi = lo + (limit - 1) * M
        a, b = int(np.searchsorted(ts, lo, "left")), int(np.searchsorted(ts, hi, "right"))
        return bk.Candles(timestamp=ts[a:b], **{k: v[a:b] for k, v in cols.items()})

    async def get_signal(symbol, when):
        """Pure in `when` and the candles: a pseudo-random kind per minute, direction from the
        last closes, levels from the VWAP."""
        at = round(when.timestamp() * 1000)
        k = (at - START) // M
        kind = (k * 7919 + 13) % 10
        if kind >= 7:
            return None
        closes = (await bk.get_candles(symbol, "1m", 3)).close
        long = bool(closes[-1] >= closes[0])
        v = await bk.get_average_price(symbol)
        sid = f"{symbol}-{at}"
        up, down = (1.0, -1.0) if long else (-1.0, 1.0)
        position = "long" if long else "short"
        if kind <= 3:  # market order
            return bk.Signal(position, v * (1 + up * 0.006), v * (1 + down * 0.006), 25, id=sid)
        entry = v * (1 + down * 0.001)  # limit order below (long) / above (short) the price
        return bk.Signal(
            position,
            entry * (1 + up * 0.007),
            entry * (1 + down * 0.006),
            20,
            price_open=entry,
            id=sid,
        )

    def guard(payload):
        # refuses some market orders (never stored: I4) and some activations of limit
        # orders (risk C: the stored schedule is cleared)
        row = payload.pending_signal
        k = (row.scheduled_at - START) // M
        if not row.is_scheduled and k % 13 == 0:
            raise ValueError("risk says no")
        if row.is_scheduled and payload.current_price == row.price_open and k % 3 == 0:
            raise ValueError("no fill for this one")

    hooks = {"count": 0}
    lock = threading.Lock()

    def hook():
        with lock:
            hooks["count"] += 1
            if hooks["count"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    class KillingStore(bk.PersistBase):
        async def write_value(self, entity_id, value):
            hook()  # before the write
            await super().write_value(entity_id, value)

        def _after_stage(self, stage):
            hook()  # "written", "synced", "renamed", "dir_synced"

    def append(fd, line):
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)

    events = os.open("events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    progress = os.open("progress.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    class ProgressClock(bk.SimulatedClock):
        """Records (fsync) the `when` of each tick before the tick."""

        def __init__(self, start, end):
            super().__init__(start, end=end)
            append(progress, str(start))

        async def sleep(self, ms):
            before = self.now_ms()
            await super().sleep(ms)
            if self.now_ms() != before and not self.exhausted:
                append(progress, str(self.now_ms()))

    def stored(kind):
        path = os.path.join("dump", "data", kind, f"{SYMBOL}_{STRATEGY}", f"{SYMBOL}.json")
        with open(path, "rb") as f:
            value = json.loads(f.read())
        return [value["phase"], (value["signal"] or {}).get("id")]

    def on_signal(result):
        if result.action in ("idle", "active"):
            return
        kind = "signal" if result.action in ("opened", "closed") else "schedule"
        line = {
            "event": "signal",
            "action": result.action,
            "id": result.signal.id,
            "result": result.to_dict(),
            "stored": stored(kind),
        }
        append(events, json.dumps(line))

    def on_partial(kind):
        def record(event):
            line = {"event": "partial", "kind": kind, "id": event.data.id, "level": event.level}
            append(events, json.dumps(line))

        return record

    bk.set_config(CC_GET_CANDLES_RETRY_DELAY_MS=0, CC_SCHEDULE_AWAIT_MINUTES=15)
    for use in (
        bk.PersistSignalAdapter.use_persist_signal_adapter,
        bk.PersistScheduleAdapter.use_persist_schedule_adapter,
        bk.PersistRiskAdapter.use_persist_risk_adapter,
        bk.PersistPartialAdapter.use_persist_partial_adapter,
    ):
        use(KillingStore)
    bk.add_exchange(exchange_name="walk", get_candles=get_candles)
    bk.add_risk(risk_name="guard", validations=[guard])
    bk.add_strategy(strategy_name=STRATEGY, interval="1m", get_signal=get_signal, risk_name="guard")
    bk.listen_signal_live(on_signal)
    bk.listen_partial_profit(on_partial("profit"))
    bk.listen_partial_loss(on_partial("loss"))
    bk.listen_done_live(
        lambda d: append(events, json.dumps({"event": "done", "stopped": d.stopped}))
    )
    failures = []
    bk.listen_exit(failures.append)
    bk.listen_error(lambda e: sys.stderr.write(f"error: {type(e).__name__}: {e}\n"))

    async def run():
        clock = ProgressClock(start, end)
        print("ready", flush=True)
        cancel = bk.Live.background(
            SYMBOL, strategy_name=STRATEGY, exchange_name="walk", clock=clock
        )
        await cancel.task

    asyncio.run(run())
    if failures:
        sys.stderr.write(f"exit: {failures[0]!r}\n")
        sys.exit(3)
    print(f"hooks={hooks['count']}", flush=True)


main()
'''


@dataclass
class Baseline:
    transitions: list[tuple[str, str]]  # (id, action) in order
    payloads: dict[tuple[str, str], dict[str, Any]]
    partials: list[tuple[str, str, int]]
    stores: dict[str, Any]
    hooks: int  # store hook points (write begin + 4 stages) in one uninterrupted run
    seconds: float  # run time after "ready"
    startup: float  # child start-up until "ready"


@dataclass
class Outcome:
    kills: int = 0
    stage_kills: int = 0
    time_kills: int = 0
    restarts: int = 0
    duplicates: int = 0
    events: int = 0
    startups: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.kills += other.kills
        self.stage_kills += other.stage_kills
        self.time_kills += other.time_kills
        self.restarts += other.restarts
        self.duplicates += other.duplicates
        self.events += other.events
        self.startups += other.startups
        self.problems += other.problems


class Harness:
    """Baseline and kill campaigns in directories under `root`."""

    def __init__(self, root: Path, minutes: int = MINUTES, seed: int = SEED) -> None:
        self.root = root
        self.minutes = minutes
        self.seed = seed
        self.end = START_MS + (minutes - 1) * MINUTE
        self.child = root / "crash_child.py"
        self.child.write_text(CHILD_SOURCE, encoding="utf-8")

    # -- one child run ---------------------------------------------------------------------

    def launch(self, workdir: Path, start: int, kill_at: int) -> subprocess.Popen[str]:
        argv = [sys.executable, str(self.child), str(workdir), str(start), str(self.end)]
        argv += [str(kill_at), str(self.minutes), str(self.seed)]
        stderr = open(workdir / "stderr.txt", "a", encoding="utf-8")  # noqa: SIM115
        try:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
        finally:
            stderr.close()

    def run_child(
        self, workdir: Path, start: int, *, kill_at: int = 0, kill_after: float | None = None
    ) -> tuple[int, str, float, float]:
        """Run one child; returns (returncode, stdout after ready, startup s, run s)."""
        launched = time.perf_counter()
        proc = self.launch(workdir, start, kill_at)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        ready = time.perf_counter()
        if first.strip() == "ready" and kill_after is not None:
            timer = threading.Timer(kill_after, lambda: _kill(proc))
            timer.start()
            try:
                rest = proc.stdout.read()
                proc.wait()
            finally:
                timer.cancel()
        else:
            rest = proc.stdout.read()
            proc.wait()
        return proc.returncode, rest, ready - launched, time.perf_counter() - ready

    # -- baseline --------------------------------------------------------------------------

    def baseline(self) -> Baseline:
        workdir = self.root / "baseline"
        workdir.mkdir()
        code, out, startup, seconds = self.run_child(workdir, START_MS)
        assert code == 0, (workdir / "stderr.txt").read_text()
        hooks = int(out.strip().rsplit("hooks=", 1)[1])
        signals, partials, done = read_events(workdir)
        transitions = [(e["id"], e["action"]) for e in signals]
        assert len(set(transitions)) == len(transitions), "the baseline repeats a transition"
        assert done == [False]
        return Baseline(
            transitions=transitions,
            payloads={(e["id"], e["action"]): e["result"] for e in signals},
            partials=partials,
            stores=read_stores(workdir),
            hooks=hooks,
            seconds=seconds,
            startup=startup,
        )

    # -- a campaign: kill, restart from the last recorded tick, until the clock runs out ----

    def campaign(self, name: str, kills: int, rng: random.Random, base: Baseline) -> Outcome:
        """Up to `kills` kills spread over one run of the clock: each kill point is drawn
        uniformly in a window of twice the run's `1/kills` (in hook points or in seconds), so
        a restart goes on for about `1/kills` of the run before the next kill."""
        workdir = self.root / name
        workdir.mkdir()
        outcome = Outcome()
        start = START_MS
        for _ in range(kills * 4 + 10):
            kill_at, kill_after = 0, None
            if outcome.kills < kills:
                if rng.random() < 0.5:
                    kill_at = rng.randint(1, max(1, 2 * base.hooks // kills))
                else:
                    kill_after = rng.uniform(0.0, 2 * base.seconds / kills)
            code, _, startup, _ = self.run_child(
                workdir, start, kill_at=kill_at, kill_after=kill_after
            )
            outcome.startups.append(startup)
            if code == -signal.SIGKILL:
                outcome.kills += 1
                if kill_at:
                    outcome.stage_kills += 1
                else:
                    outcome.time_kills += 1
                trim_partial_line(workdir / "events.jsonl")
                trim_partial_line(workdir / "progress.txt")
                if read_events(workdir)[2]:  # killed after its done event: finished
                    break
                start = last_progress(workdir)
                outcome.restarts += 1
                continue
            if code != 0:
                outcome.problems.append(
                    f"{name}: child exited {code}: {(workdir / 'stderr.txt').read_text()[-2000:]}"
                )
                return outcome
            break
        else:
            outcome.problems.append(f"{name}: did not finish")
            return outcome
        outcome.problems += self.check(name, workdir, base, outcome)
        return outcome

    def check(self, name: str, workdir: Path, base: Baseline, outcome: Outcome) -> list[str]:
        problems: list[str] = []
        signals, partials, done = read_events(workdir)
        outcome.events = len(signals)
        seen: list[tuple[str, str]] = []
        for event in signals:
            key = (event["id"], event["action"])
            if key not in seen:
                seen.append(key)
            expected = base.payloads.get(key)
            if event["result"] != expected:
                problems.append(
                    f"{name}: payload of {key} differs: {event['result']} != {expected}"
                )
            phase = {
                "opened": "opening",
                "closed": "closing",
                "scheduled": "scheduling",
                "cancelled": "cancelling",
            }[event["action"]]
            if event["stored"] != [phase, event["id"]]:  # I1: durable before it is reported
                problems.append(f"{name}: {key} emitted with the store at {event['stored']}")
        outcome.duplicates = len(signals) - len(seen)
        if seen != base.transitions:
            problems.append(
                f"{name}: transitions differ from the baseline:\n{seen}\n{base.transitions}"
            )
        if outcome.duplicates > outcome.kills:
            problems.append(f"{name}: {outcome.duplicates} duplicates for {outcome.kills} kills")
        problems += order_problems(name, seen)
        unique_partials = list(dict.fromkeys(partials))
        if unique_partials != base.partials:
            problems.append(f"{name}: partial milestones differ from the baseline")
        if done != [False]:
            problems.append(f"{name}: done events {done}, expected one with stopped=False")
        try:
            stores = read_stores(workdir)
        except Exception as exc:  # a leftover temp or an undecodable value
            problems.append(f"{name}: {exc}")
        else:
            if stores != base.stores:
                problems.append(f"{name}: final stores differ:\n{stores}\n{base.stores}")
        return problems

    def run(self, kills: int, *, campaigns: int, workers: int = 2, seed: int = 1) -> Outcome:
        """`kills` kills spread over `campaigns` campaigns, `workers` at a time; campaigns are
        added until that many kills happened (a child may finish before its kill)."""
        base = self.baseline()
        total = Outcome()
        rng = random.Random(seed)
        lock = threading.Lock()
        counter = {"next": 0}

        def worker() -> None:
            while True:
                with lock:
                    if total.kills >= kills or counter["next"] >= campaigns * 3:
                        return
                    index = counter["next"]
                    counter["next"] += 1
                    want = max(1, min(-(-kills // campaigns), kills - total.kills))
                    local = random.Random(rng.random())
                outcome = self.campaign(f"c{index:03d}", want, local, base)
                with lock:
                    total.add(outcome)

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.base = base
        return total


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def trim_partial_line(path: Path) -> None:
    """Drop a line a kill interrupted (its listener never returned: not delivered)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def last_progress(workdir: Path) -> int:
    lines = (workdir / "progress.txt").read_text(encoding="utf-8").split("\n")
    complete = [line for line in lines[:-1] if line]  # the last piece may be cut
    return int(complete[-1])


def read_events(
    workdir: Path,
) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]], list[bool]]:
    signals: list[dict[str, Any]] = []
    partials: list[tuple[str, str, int]] = []
    done: list[bool] = []
    path = workdir / "events.jsonl"
    if not path.exists():
        return signals, partials, done
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["event"] == "signal":
            signals.append(event)
        elif event["event"] == "partial":
            partials.append((event["id"], event["kind"], event["level"]))
        else:
            done.append(event["stopped"])
    return signals, partials, done


def read_stores(workdir: Path) -> dict[str, Any]:
    """Every stored value, decoded and shape-checked, by path; raises on a leftover temp or
    quarantine file and on a value that does not decode (I8)."""
    stores: dict[str, Any] = {}
    root = workdir / "dump" / "data"
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        rel = str(path.relative_to(root))
        if path.name.startswith(".") or not path.name.endswith(".json"):
            raise AssertionError(f"leftover file {rel}")
        value = json.loads(path.read_bytes().decode("utf-8"))
        kind = rel.split(os.sep, 1)[0]
        if kind in ("signal", "schedule"):
            SignalState.from_dict(value, kind)  # type: ignore[arg-type]
        elif kind == "risk":
            positions_from_json(value)
        else:
            partial_from_json(value)
        stores[rel] = value
    return stores


def order_problems(name: str, seen: list[tuple[str, str]]) -> list[str]:
    """Per id: [scheduled <] opened < closed, or scheduled < cancelled, or scheduled alone
    (its activation refused by risk: no event, 40 §4.3); only the last id may be unfinished
    (the clock ran out)."""
    by_id: dict[str, list[str]] = {}
    for signal_id, action in seen:
        by_id.setdefault(signal_id, []).append(action)
    complete = (
        ["opened", "closed"],
        ["scheduled", "opened", "closed"],
        ["scheduled", "cancelled"],
        ["scheduled"],
    )
    unfinished = (["opened"], ["scheduled"], ["scheduled", "opened"])
    problems = []
    last = seen[-1][0] if seen else None
    for signal_id, actions in by_id.items():
        if actions in complete or (signal_id == last and actions in unfinished):
            continue
        problems.append(f"{name}: {signal_id} went through {actions}")
    return problems


def test_sigkill_anywhere_then_restart_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    bk.reset()
    harness = Harness(tmp_path)
    started = time.perf_counter()

    outcome = harness.run(kills=50, campaigns=6, workers=2, seed=20240101)

    base = harness.base
    actions = [action for _, action in base.transitions]
    # the scenario exercises what it claims to: every kind of entry and exit
    assert {"scheduled", "opened", "closed", "cancelled"} <= set(actions)
    reasons = {base.payloads[k]["close_reason"] for k in base.transitions if k[1] == "closed"}
    assert reasons == {"take_profit", "stop_loss", "time_expired"}
    cancels = [base.payloads[k] for k in base.transitions if k[1] == "cancelled"]
    timeouts = [
        c for c in cancels if c["close_timestamp"] - c["signal"]["scheduled_at"] >= 15 * MINUTE
    ]
    assert timeouts and len(timeouts) < len(cancels)  # timeouts and stop-loss cancels
    # limit orders whose activation risk refused: scheduled, then no other event
    refused = [
        signal_id
        for signal_id, action in base.transitions[:-1]
        if action == "scheduled"
        and (signal_id, "opened") not in base.payloads
        and (signal_id, "cancelled") not in base.payloads
    ]
    assert refused
    assert base.partials
    assert outcome.problems == []
    assert outcome.kills >= 50 and outcome.stage_kills >= 10 and outcome.time_kills >= 10
    assert outcome.duplicates <= outcome.kills
    print(
        f"crash test: {outcome.kills} kills, {outcome.restarts} restarts, "
        f"{outcome.duplicates} duplicates, {time.perf_counter() - started:.1f} s"
    )


@pytest.mark.slow
def test_crash_soak_300_kills(tmp_path: Path) -> None:
    bk.reset()
    outcome = Harness(tmp_path).run(kills=300, campaigns=20, workers=2, seed=7)
    assert outcome.problems == []
    assert outcome.kills >= 300
