"""Backtest-kit against the engines traders use today: the same work on the same candles.

``make bench-setup`` installs each peer into its own virtual environment under
benchmarks/.venv-peers/ (never into the project's .venv) and records which installed;
``make bench`` runs every installed engine on the "sma" and "trivial" work of
benchmarks/backtest_speed.py (see benchmarks/peers/common.py) over 7, 30 and 365 days of the
sample BTCUSDT 1m candles, exported once to benchmarks/.data/BTCUSDT-1m.npy. Each run is a
fresh process; the engines alternate run by run. Prints the median whole-process wall time
(Python start, imports, loading the candles, the backtest), the median in-process backtest
time, the child's peak memory (max RSS), trades, asks, and the wall-time ratio against
backtest-kit. Never a pass/fail test.

    python benchmarks/bench.py --setup                 # what make bench-setup runs
    python benchmarks/bench.py                         # 7/30 days x3 runs, 365 days x1
    python benchmarks/bench.py --days 365 --runs 3 --case sma --engine backtest-kit
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, "peers")
VENVS = os.path.join(HERE, ".venv-peers")
DATA_DIR = os.path.join(HERE, ".data")
DATA_FILE = os.path.join(DATA_DIR, "BTCUSDT-1m.npy")
STATUS_FILE = os.path.join(VENVS, "status.json")
RESULTS_FILE = os.path.join(DATA_DIR, "bench-results.json")


@dataclass(frozen=True)
class Engine:
    name: str
    script: str
    venv: str | None  # None: the project's own interpreter
    packages: tuple[str, ...] = ()
    probe: str = ""  # imported after the install to prove it works

    def python(self) -> str:
        if self.venv is None:
            return sys.executable
        return os.path.join(VENVS, self.venv, "bin", "python")


# Versions pinned to what was measured; `--setup --latest` tries the newest instead.
ENGINES = (
    Engine("backtest-kit", "run_backtest_kit.py", None),
    Engine(
        "backtesting.py",
        "run_backtesting.py",
        "backtesting",
        ("backtesting==0.6.6", "pandas==3.1.1", "numpy==2.4.6"),
        "backtesting",
    ),
    Engine(
        "backtrader",
        "run_backtrader.py",
        "backtrader",
        ("backtrader==1.9.78.123", "pandas==3.1.1", "numpy==2.4.6"),
        "backtrader",
    ),
    Engine(
        "vectorbt",
        "run_vectorbt.py",
        "vectorbt",
        ("vectorbt==1.2.0", "pandas==3.1.1", "numpy==2.4.6", "numba==0.68.1"),
        "vectorbt",
    ),
    Engine(
        "nautilus_trader",
        "run_nautilus.py",
        "nautilus",
        ("nautilus_trader==1.221.0", "pandas==2.3.3", "numpy==2.4.6"),
        "nautilus_trader.backtest.engine",
    ),
)
TOOLS = Engine("py-spy", "", "tools", ("py-spy==0.4.3",))
DEFAULT_DAYS = (7, 30, 365)


# -- setup ----------------------------------------------------------------------------------


def setup(names: list[str] | None, latest: bool) -> None:
    """Create one virtual environment per peer and install it; record what worked."""
    os.makedirs(VENVS, exist_ok=True)
    status = load_status()
    for engine in (*ENGINES, TOOLS):
        if engine.venv is None or (names and engine.name not in names):
            continue
        target = os.path.join(VENVS, engine.venv)
        packages = [p.split("==")[0] for p in engine.packages] if latest else engine.packages
        print(f"== {engine.name}: {' '.join(packages)} -> {os.path.relpath(target)}", flush=True)
        started = time.perf_counter()
        error = _install(target, list(packages), engine.probe)
        took = time.perf_counter() - started
        if error is None:
            versions = _versions(target)
            status[engine.name] = {"ok": True, "versions": versions}
            print(f"   installed in {took:.0f} s: {versions}", flush=True)
        else:
            status[engine.name] = {"ok": False, "error": error}
            print(f"   NOT installed ({took:.0f} s), it will be skipped: {error}", flush=True)
        with open(STATUS_FILE, "w") as f:
            json.dump(status, f, indent=2)
    ensure_data()


def _install(target: str, packages: list[str], probe: str) -> str | None:
    python = os.path.join(target, "bin", "python")
    steps = []
    if not os.path.exists(python):
        # the base interpreter of this venv: the peers get the same Python as the project
        base = getattr(sys, "_base_executable", sys.executable)
        steps.append([base, "-m", "venv", target])
    steps.append([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    steps.append([python, "-m", "pip", "install", "--quiet", *packages])
    if probe:
        steps.append([python, "-c", f"import {probe}"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            relevant = [x for x in lines if "WARNING: Location" not in x]
            return f"`{' '.join(step[2:5])}` failed: " + " | ".join(relevant[-3:])
    return None


def _versions(target: str) -> dict[str, str]:
    python = os.path.join(target, "bin", "python")
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    wanted = {"backtesting", "backtrader", "vectorbt", "nautilus_trader", "numpy", "pandas"}
    wanted |= {"numba", "py-spy"}
    try:
        listed = json.loads(out.stdout)
    except json.JSONDecodeError:
        return {}
    return {p["name"]: p["version"] for p in listed if p["name"].lower() in wanted}


def load_status() -> dict[str, dict[str, object]]:
    try:
        with open(STATUS_FILE) as f:
            loaded: dict[str, dict[str, object]] = json.load(f)
            return loaded
    except (OSError, json.JSONDecodeError):
        return {}


def ensure_data(force: bool = False, symbols: tuple[str, ...] = ("BTCUSDT",)) -> None:
    """Export sample 1m series once (benchmarks/.data/SYMBOL-1m.npy), in a child process:
    the driver stays small and never imports backtest_kit."""
    missing = [s for s in symbols if force or not os.path.exists(_data_file(s))]
    if missing:
        subprocess.run([sys.executable, __file__, "--export-child", *missing], check=True)


def _data_file(symbol: str) -> str:
    return os.path.join(DATA_DIR, f"{symbol}-1m.npy")


def export_data(symbols: list[str]) -> None:
    import numpy as np

    from backtest_kit.data.sample import sample_series

    fields = ("timestamp", "open", "high", "low", "close", "volume")
    os.makedirs(DATA_DIR, exist_ok=True)
    for symbol in symbols:
        series = sample_series(symbol)
        dtype = [(n, "<i8" if n == "timestamp" else "<f8") for n in fields]
        table = np.empty(len(series), dtype=dtype)
        for name in fields:
            table[name] = getattr(series, name)
        target = _data_file(symbol)
        partial = target + ".partial.npy"
        np.save(partial, table)
        os.replace(partial, target)
        print(
            f"exported {len(table):,} candles of the sample {symbol} to {os.path.relpath(target)}"
        )


# -- measuring -------------------------------------------------------------------------------


def measure(
    engine: Engine, case: str, days: int, extra: tuple[str, ...] = (), timeout: float = 3600
) -> dict[str, object]:
    """One fresh process: wall time, its own peak RSS (wait4), and the runner's JSON line."""
    command = [engine.python(), os.path.join(PEERS_DIR, engine.script)]
    command += ["--case", case, "--days", str(days), "--data", DATA_FILE, *extra]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=PEERS_DIR)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = out.read().strip().splitlines()
        if child.returncode != 0 or not lines:
            tail = err.read().strip().splitlines()[-3:]
            return {"error": f"exit {child.returncode}: " + " | ".join(tail)}
    result: dict[str, object] = json.loads(lines[-1])
    result["wall_s"] = wall
    # CPU seconds of the child: steadier than wall time when the machine is shared
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    # the child's own VmHWM; wait4's ru_maxrss would include this process's pages (fork)
    peak = result.pop("peak_rss_mb", None)
    result["peak_mb"] = float(peak) if isinstance(peak, (int, float)) else usage.ru_maxrss / 1024
    return result


def profile(case: str, days: int, top: int) -> None:
    """Profile a backtest-kit run: cProfile (deterministic, inflates small calls), then
    py-spy (sampling, no overhead) when it is installed in the tools venv."""
    import pstats

    runner = os.path.join(PEERS_DIR, ENGINES[0].script)
    args = [runner, "--case", case, "--days", str(days), "--data", DATA_FILE]
    target = os.path.join(DATA_DIR, f"profile-{case}-{days}d")
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", target + ".prof", *args],
        check=True,
        cwd=PEERS_DIR,
        stdout=subprocess.DEVNULL,
    )
    stats = pstats.Stats(target + ".prof")
    total = max(getattr(stats, "total_tt", 0.0), 1e-9)
    print(f"cProfile, {case}, {days} days: {total:.2f} s under the profiler (whole process)")
    for key in ("tottime", "cumulative"):
        print(f"\n-- top {top} by {key} --")
        stats.sort_stats(key).print_stats(top)
    spy = os.path.join(VENVS, TOOLS.venv or "", "bin", "py-spy")
    if not os.path.exists(spy):
        print("py-spy: not installed (make bench-setup), skipped")
        return
    raw = target + ".pyspy.txt"
    command = [spy, "record", "--rate", "2000", "--format", "raw", "-o", raw, "--"]
    done = subprocess.run(
        [*command, sys.executable, *args],
        cwd=PEERS_DIR,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not os.path.exists(raw):
        print(f"py-spy: failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return
    own: dict[str, int] = {}
    below: dict[str, int] = {}
    samples = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            samples += n
            frames = [_frame(x) for x in stack.split(";")]
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                below[frame] = below.get(frame, 0) + n
    print(f"\npy-spy, {case}, {days} days: {samples} samples at 2 kHz (whole process)")
    print(f"{'own %':>6} {'total %':>7}  function")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * n / samples:>6.1f} {100 * below[frame] / samples:>7.1f}  {frame}")


def _frame(text: str) -> str:
    """'name (path/to/file.py:123)' -> 'name (file.py)': lines merged, paths shortened."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def machine() -> str:
    cpu = platform.processor()  # often empty on Linux: the model name below says more
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {(cpu + ' ') if cpu else ''}{platform.machine()}"
        + (f" ({model})" if model else "")
        + f", Python {platform.python_version()}, {platform.system()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="install the peers (bench-setup)")
    parser.add_argument("--latest", action="store_true", help="with --setup: unpinned versions")
    parser.add_argument("--export", action="store_true", help="re-export the candle file")
    parser.add_argument("--days", type=int, nargs="+", default=list(DEFAULT_DAYS))
    parser.add_argument("--case", choices=("sma", "trivial"), action="append")
    parser.add_argument("--engine", action="append", help="only these engines (repeatable)")
    parser.add_argument(
        "--runs", type=int, help="runs per engine and case (default: 3, or 1 above 30 days)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--profile", action="store_true", help="profile a backtest-kit run (--case, --days)"
    )
    parser.add_argument("--top", type=int, default=20, help="with --profile: rows to print")
    parser.add_argument("--export-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_data(args.export_child)
        return
    if args.setup:
        setup(args.engine, args.latest)
        return
    ensure_data(args.export)
    if args.profile:
        days = args.days[0] if args.days != list(DEFAULT_DAYS) else 365
        profile((args.case or ["sma"])[0], days, args.top)
        return
    status = load_status()
    engines = []
    for engine in ENGINES:
        if args.engine and engine.name not in args.engine:
            continue
        if engine.venv is not None and not status.get(engine.name, {}).get("ok"):
            why = status.get(engine.name, {}).get("error", "not set up (make bench-setup)")
            print(f"skipping {engine.name}: {why}")
            continue
        engines.append(engine)
    print(f"machine: {machine()}")
    load_before = os.getloadavg()[0]
    rows = []
    for days in args.days:
        runs = args.runs or (3 if days <= 30 else 1)
        for case in args.case or ["sma", "trivial"]:
            samples: dict[str, list[dict[str, object]]] = {e.name: [] for e in engines}
            for r in range(runs):
                # alternate: each run starts with a different engine
                order = engines[r % len(engines) :] + engines[: r % len(engines)]
                for engine in order:
                    result = measure(engine, case, days)
                    samples[engine.name].append(result)
                    shown = result.get("error") or f"{result['wall_s']:.2f} s"
                    print(f"  {days:>3} d {case:<7} run {r + 1}/{runs} {engine.name:<16} {shown}")
            for engine in engines:
                rows.append(summarise(engine.name, case, days, samples[engine.name]))
            print_table([row for row in rows if row["days"] == days and row["case"] == case])
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print()
    print(f"machine: {machine()}; {load}")
    print_table(rows)
    if args.markdown:
        print()
        print(markdown(rows))
    os.makedirs(DATA_DIR, exist_ok=True)
    with open(RESULTS_FILE, "w") as f:
        json.dump({"machine": machine(), "load": load, "rows": rows}, f, indent=2)


def summarise(name: str, case: str, days: int, runs: list[dict[str, object]]) -> dict[str, object]:
    good = [r for r in runs if "error" not in r]
    row: dict[str, object] = {"engine": name, "case": case, "days": days, "runs": len(good)}
    if not good:
        row["error"] = runs[0]["error"] if runs else "no run"
        return row

    def med(key: str) -> float:
        values = [float(r[key]) for r in good if key in r]  # type: ignore[arg-type]
        return statistics.median(values) if values else float("nan")

    row.update(
        wall_s=med("wall_s"),
        cpu_s=med("cpu_s"),
        run_s=med("run_s"),
        peak_mb=med("peak_mb"),
        trades=good[0]["trades"],
        asks=good[0]["get_signal_calls"],
    )
    return row


def _ratio(row: dict[str, object], rows: list[dict[str, object]]) -> str:
    ours = next(
        (
            r
            for r in rows
            if r["engine"] == "backtest-kit"
            and r["case"] == row["case"]
            and r["days"] == row["days"]
            and "wall_s" in r
        ),
        None,
    )
    if ours is None or "wall_s" not in row:
        return "-"
    return f"{float(row['wall_s']) / float(ours['wall_s']):.1f}x"  # type: ignore[arg-type]


def print_table(rows: list[dict[str, object]]) -> None:
    print(
        f"{'days':>4} {'case':<8} {'engine':<16} {'wall s':>8} {'cpu s':>8} {'run s':>8} "
        f"{'peak MB':>8} {'trades':>7} {'asks':>7} {'vs us':>7}"
    )
    for row in rows:
        head = f"{row['days']:>4} {row['case']:<8} {row['engine']:<16}"
        if "error" in row:
            print(f"{head} failed: {row['error']}")
            continue
        print(
            f"{head} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} {row['run_s']:>8.2f} "
            f"{row['peak_mb']:>8.0f} "
            f"{row['trades']:>7} {row['asks']:>7} {_ratio(row, rows):>7}"
        )


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| days | case | engine | wall s | CPU s | backtest s | peak MB | trades | asks "
        "| wall vs us |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['days']} | {row['case']} | {row['engine']} | failed ||||||")
            continue
        lines.append(
            f"| {row['days']} | {row['case']} | {row['engine']} | {row['wall_s']:.2f} | "
            f"{row['cpu_s']:.2f} | {row['run_s']:.2f} | {row['peak_mb']:.0f} | "
            f"{row['trades']:,} | {row['asks']:,} | "
            f"{_ratio(row, rows)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
