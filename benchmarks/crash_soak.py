"""Crash soak: the SIGKILL test of 40 §11 with many kills (default 500).

A child process trades a deterministic "1m" strategy live on a simulated clock over six hours
of a seeded random-walk market, with the file backend; it is killed with SIGKILL at a random
real-time instant or kills itself at a random point of a store write, then restarted from the
last recorded tick until the clock runs out. Each campaign's de-duplicated transitions,
payloads and final stores are compared with one uninterrupted run. The harness and the child
program are those of tests/engine/test_live_crash.py (loaded from there).

Run on demand (never part of `make test`):

    python benchmarks/crash_soak.py               # 500 kills
    python benchmarks/crash_soak.py --kills 100 --workers 2 --keep DIR
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HARNESS = Path(__file__).resolve().parent.parent / "tests" / "engine" / "test_live_crash.py"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500, help="kills in total (default 500)")
    parser.add_argument(
        "--per-campaign", type=int, default=25, help="kills per campaign (default 25)"
    )
    parser.add_argument("--workers", type=int, default=2, help="campaigns run at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args()

    harness_module = load_harness()
    with tempfile.TemporaryDirectory(prefix="crash-soak-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        harness = harness_module.Harness(root)
        campaigns = max(1, -(-args.kills // args.per_campaign))
        started = time.perf_counter()
        outcome = harness.run(args.kills, campaigns=campaigns, workers=args.workers, seed=args.seed)
        wall = time.perf_counter() - started
        base = harness.base

    matched = not outcome.problems and outcome.kills >= args.kills
    startup = statistics.median(outcome.startups) if outcome.startups else float("nan")
    print(
        f"kills       {outcome.kills} ({outcome.time_kills} at a real-time instant, "
        f"{outcome.stage_kills} at a store write)"
    )
    print(f"restarts    {outcome.restarts}")
    print(f"duplicates  {outcome.duplicates} (re-delivered transitions, at most one per kill)")
    print(
        f"events      {outcome.events} transitions received in the campaigns "
        f"({len(base.transitions)} per uninterrupted run)"
    )
    print(
        f"baseline    {base.seconds:.2f} s per uninterrupted run, child start-up "
        f"{startup:.2f} s (median)"
    )
    print(f"wall time   {wall:.1f} s")
    print(f"matched     {'yes' if matched else 'NO'}")
    for problem in outcome.problems[:20]:
        print(f"  problem: {problem}")
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())
