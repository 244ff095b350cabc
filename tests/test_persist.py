"""Tests for persist.py and persist_redis.py: the persistence protocol on both bundled
backends, the file backend's crash safety (SIGKILL at each write stage, in a real child
process), its directory lock, corrupt-data handling and the four adapters (40 §3, §4, §8).

The Redis tests start a real `redis-server` on a free loopback port; without one (or without
redis-py) they skip, except in CI (env var CI set), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import backtest_kit as bk
from backtest_kit import persist
from backtest_kit.model.state import SignalState
from backtest_kit.persist import PersistBase

try:
    import redis
    import redis.asyncio as aioredis
except ImportError:  # pragma: no cover - the dev extra installs it
    redis = None  # type: ignore[assignment]
    aioredis = None  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    bk.reset()
    yield
    bk.reset()


# ---------------------------------------------------------------------------------------------
# fixtures: a real redis-server, and one backend of each kind


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    executable = shutil.which("redis-server")
    reason = None
    if redis is None:
        reason = "redis-py is not installed (pip install 'backtest-kit[redis]')"
    elif executable is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; the Redis backend tests must run in CI")
        pytest.skip(reason)
    assert executable is not None and redis is not None
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    # the durability settings docs/persistence.md asks for
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait()


@contextlib.asynccontextmanager
async def redis_client(port: int) -> AsyncIterator[Any]:
    client = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        yield client
    finally:
        await client.aclose()


OpenBackend = Callable[[str], contextlib.AbstractAsyncContextManager[Any]]


@pytest.fixture(params=["file", "redis"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> OpenBackend:
    """`async with open_backend(entity) as store:` an initialised backend of the param kind."""
    if request.param == "file":

        @contextlib.asynccontextmanager
        async def open_file(entity: str) -> AsyncIterator[Any]:
            store = PersistBase(entity, tmp_path / "store")
            await store.wait_for_init(True)
            yield store

        return open_file

    port = request.getfixturevalue("redis_port")
    from backtest_kit.persist_redis import RedisPersist

    namespace = uuid.uuid4().hex  # the server is shared by the module's tests

    @contextlib.asynccontextmanager
    async def open_redis(entity: str) -> AsyncIterator[Any]:
        async with redis_client(port) as client:
            store = RedisPersist(client, f"test-{namespace}", entity)
            await store.wait_for_init(True)
            yield store

    return open_redis


# ---------------------------------------------------------------------------------------------
# the protocol, on both backends


VALUES: list[Any] = [
    None,
    0.1 + 0.2,
    1e-300,
    -0.0,
    2**53 + 1,
    12345678901234567890123,
    "ü ∑ 🚀",
    {"b": [1, 2.5, None, True, "x"], "a": {"nested": 1.7976931348623157e308}},
    [],
]


def test_round_trip_is_exact(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("rt") as store:
            for value in VALUES:
                await store.write_value("k", value)
                back = await store.read_value("k")
                assert json.dumps(back) == json.dumps(value)
                assert repr(back) == repr(value)  # floats bit-exact, ints stay ints

    asyncio.run(main())


def test_stored_null_is_a_value(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("null") as store:
            assert await store.has_value("k") is False
            await store.write_value("k", None)
            assert await store.has_value("k") is True
            assert await store.read_value("k") is None

    asyncio.run(main())


def test_read_of_absent_id_raises_not_found(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("absent") as store:
            with pytest.raises(bk.PersistError, match=r"entity `absent:nope` not found"):
                await store.read_value("nope")

    asyncio.run(main())


def test_remove_value(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("rm") as store:
            await store.write_value("k", 1)
            await store.remove_value("k")
            assert await store.has_value("k") is False
            with pytest.raises(bk.PersistError, match="not found for deletion"):
                await store.remove_value("k")

    asyncio.run(main())


def test_keys_in_natural_order(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("keys") as store:
            for key in ("a10", "B1", "a2", "a1", "b02x", "10", "9"):
                await store.write_value(key, key)
            assert await store.keys() == ["9", "10", "a1", "a2", "a10", "B1", "b02x"]

    asyncio.run(main())


def test_non_json_value_is_refused_and_old_value_kept(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("nan") as store:
            await store.write_value("k", {"ok": 1})
            with pytest.raises(bk.PersistError, match="not JSON-serialisable"):
                await store.write_value("k", {"price": float("nan")})
            with pytest.raises(bk.PersistError, match="not JSON-serialisable"):
                await store.write_value("k", {1, 2})
            assert await store.read_value("k") == {"ok": 1}

    asyncio.run(main())


def test_quarantine_moves_value_out_of_the_keys(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend("q") as store:
            await store.write_value("k", {"x": 1})
            await store.write_value("other", 2)
            where = await store.quarantine_value("k")
            assert ".corrupt-" in where
            assert await store.has_value("k") is False
            assert await store.keys() == ["other"]

    asyncio.run(main())


def test_names_are_escaped_and_round_trip(open_backend: OpenBackend) -> None:
    ids = ["a/b", "ü", ".hidden", "..", "50%"]

    async def main() -> None:
        async with open_backend("BTC/USDT_sma") as store:
            for entity_id in ids:
                await store.write_value(entity_id, entity_id)
            for entity_id in ids:
                assert await store.read_value(entity_id) == entity_id
            assert sorted(await store.keys()) == sorted(ids)

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# the file backend


def temps_in(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".tmp-" in p.name
    )


def test_file_layout_and_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = PersistBase("BTC/USDT_sma", "dump/data/signal")  # resolved now, against the cwd
    monkeypatch.chdir(tmp_path.parent)

    async def main() -> None:
        await store.wait_for_init(True)
        await store.write_value("BTC/USDT", {"b": "ü", "a": 1.5, "n": None})
        await store.write_value(".x", 1)

    asyncio.run(main())
    directory = tmp_path / "dump" / "data" / "signal" / "BTC%2FUSDT_sma"
    assert (directory / "BTC%2FUSDT.json").read_bytes() == '{"b":"ü","a":1.5,"n":null}'.encode()
    assert (directory / "%2Ex.json").read_bytes() == b"1"
    assert store.location("BTC/USDT") == str(directory / "BTC%2FUSDT.json")
    assert {p.name for p in directory.iterdir()} == {".lock", "%2Ex.json", "BTC%2FUSDT.json"}


def test_temp_files_are_never_keys(tmp_path: Path) -> None:
    store = PersistBase("e", tmp_path)

    async def main() -> list[str]:
        await store.wait_for_init(True)
        await store.write_value("k", 1)
        (tmp_path / "e" / ".k.json.0123456789abcdef.tmp").write_text("{")
        (tmp_path / "e" / ".tmp-0123456789ab-k.json").write_text("{")
        (tmp_path / "e" / "k.json.corrupt-1700000000000").write_text("{")
        (tmp_path / "e" / "dir.json").mkdir()
        return await store.keys()

    assert asyncio.run(main()) == ["k"]


def test_init_removes_leftover_temps_of_both_schemes(tmp_path: Path) -> None:
    directory = tmp_path / "e"
    directory.mkdir()
    (directory / "k.json").write_text('{"v":1}')
    (directory / ".k.json.0123456789abcdef.tmp").write_text('{"v":')
    (directory / ".tmp-0123456789ab-k.json").write_text('{"v":')
    (directory / "notes.txt").write_text("mine")

    async def main() -> Any:
        store = PersistBase("e", tmp_path)
        await store.wait_for_init(True)
        return await store.read_value("k")

    assert asyncio.run(main()) == {"v": 1}
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "k.json", "notes.txt"]


def test_init_creates_missing_directories(tmp_path: Path) -> None:
    store = PersistBase("e", tmp_path / "a" / "b" / "c")
    asyncio.run(store.wait_for_init(True))
    assert (tmp_path / "a" / "b" / "c" / "e").is_dir()


KILL_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from backtest_kit.persist import PersistBase

    directory, stage, write_old = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    OLD = {"version": "old", "payload": [0.1 * i for i in range(20000)]}
    NEW = {"version": "new", "payload": [0.2 * i for i in range(20000)]}

    class KillAt(PersistBase):
        def _after_stage(self, reached):
            if reached == stage:
                os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        if write_old:
            plain = PersistBase("e", directory)
            await plain.wait_for_init(True)
            await plain.write_value("k", OLD)
        store = KillAt("e", directory)
        await store.wait_for_init(True)
        await store.write_value("k", NEW)
        print("not killed")

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("stage", ["written", "synced", "renamed", "dir_synced"])
@pytest.mark.parametrize("write_old", [True, False])
def test_sigkill_at_each_write_stage_leaves_old_or_new_in_full(
    tmp_path: Path, stage: str, write_old: bool
) -> None:
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), stage, "1" if write_old else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    directory = tmp_path / "e"
    before_rename = stage in ("written", "synced")
    assert len(temps_in(directory)) == (1 if before_rename else 0)

    async def main() -> tuple[bool, Any, list[str]]:
        store = PersistBase("e", tmp_path)
        await store.wait_for_init(True)  # this process now owns the directory: temps go
        present = await store.has_value("k")
        return present, (await store.read_value("k") if present else None), await store.keys()

    present, value, keys = asyncio.run(main())
    assert temps_in(directory) == []
    if before_rename and not write_old:
        assert (present, keys) == (False, [])
        return
    expected = "old" if before_rename else "new"
    assert keys == ["k"]
    factor = 0.1 if expected == "old" else 0.2
    assert value == {"version": expected, "payload": [factor * i for i in range(20000)]}


HOLD_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from backtest_kit.persist import PersistBase

    async def main():
        await PersistBase("e", sys.argv[1]).wait_for_init(True)

    asyncio.run(main())
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_second_process_is_refused_with_the_holder_pid(tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text(HOLD_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        store = PersistBase("e", tmp_path)
        with pytest.raises(bk.PersistError, match=f"in use by pid {child.pid}"):
            asyncio.run(store.wait_for_init(True))
        with pytest.raises(bk.PersistError, match="in use by pid"):
            asyncio.run(store.write_value("k", 1))  # a refused init is not remembered
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the kernel drops the lock of a dead process: the same instance now gets it
    asyncio.run(store.wait_for_init(False))
    asyncio.run(store.write_value("k", 1))
    assert (tmp_path / "e" / ".lock").read_text().strip() == str(os.getpid())


def test_one_process_may_reopen_its_own_directory(tmp_path: Path) -> None:
    async def main() -> Any:
        first = PersistBase("e", tmp_path)
        await first.write_value("k", 1)
        bk.reset()
        second = PersistBase("e", tmp_path)
        await second.wait_for_init(True)
        return await second.read_value("k")

    assert asyncio.run(main()) == 1


def test_failed_write_cleans_up_and_keeps_the_old_value(tmp_path: Path) -> None:
    class FailAfterSync(PersistBase):
        def _after_stage(self, stage: str) -> None:
            if stage == "synced":
                raise OSError(28, "No space left on device")

    async def main() -> None:
        store = FailAfterSync("e", tmp_path)
        await PersistBase("e", tmp_path).write_value("k", "old")
        with pytest.raises(bk.PersistError, match="No space left") as caught:
            await store.write_value("k", "new")
        assert caught.value.location == store.location("k")
        assert await store.read_value("k") == "old"

    asyncio.run(main())
    assert temps_in(tmp_path / "e") == []


def test_concurrent_writes_of_one_id_apply_in_order(tmp_path: Path) -> None:
    async def main() -> Any:
        store = PersistBase("e", tmp_path)
        await asyncio.gather(*(store.write_value("k", i) for i in range(30)))
        return await store.read_value("k")

    assert asyncio.run(main()) == 29
    assert temps_in(tmp_path / "e") == []


def test_cancelled_write_lands_before_the_next_write(tmp_path: Path) -> None:
    reached, release = threading.Event(), threading.Event()

    class Paused(PersistBase):
        def _after_stage(self, stage: str) -> None:
            if stage == "written" and not release.is_set():
                reached.set()
                release.wait(10)

    async def main() -> Any:
        store = Paused("e", tmp_path)
        first = asyncio.create_task(store.write_value("k", "first"))
        while not reached.is_set():
            await asyncio.sleep(0.001)
        first.cancel()
        second = asyncio.create_task(store.write_value("k", "second"))
        await asyncio.sleep(0.05)
        assert not first.done()  # held until its thread finishes
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        return await store.read_value("k")

    assert asyncio.run(main()) == "second"


def test_quarantine_names_collide_into_suffixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist, "_now_ms", lambda: 1_700_000_000_000)

    async def main() -> list[str]:
        store = PersistBase("e", tmp_path)
        moved = []
        for _ in range(3):
            await store.write_value("k", 1)
            moved.append(await store.quarantine_value("k"))
        return moved

    base = str(tmp_path / "e" / "k.json.corrupt-1700000000000")
    assert asyncio.run(main()) == [base, f"{base}-1", f"{base}-2"]


# ---------------------------------------------------------------------------------------------
# the adapters


def row(signal_id: str = "sig-1", *, scheduled: bool = False) -> bk.SignalRow:
    return bk.SignalRow(
        id=signal_id,
        position="long",
        price_open=100.1,
        price_take_profit=110.25,
        price_stop_loss=95.5,
        minute_estimated_time=60,
        note="n",
        symbol="BTCUSDT",
        exchange_name="ex",
        strategy_name="st",
        scheduled_at=1_704_067_200_000,
        pending_at=1_704_067_200_000 if scheduled else 1_704_067_260_000,
        is_scheduled=scheduled,
        quantity=0.5 if not scheduled else None,
        cost=None,
    )


def common(signal_row: bk.SignalRow) -> dict[str, Any]:
    return {
        "signal": signal_row,
        "current_price": 100.1,
        "strategy_name": "st",
        "exchange_name": "ex",
        "symbol": "BTCUSDT",
        "backtest": False,
    }


def signal_states() -> list[SignalState]:
    open_row = row()
    closed = bk.ClosedResult(
        **common(open_row),
        close_reason="take_profit",
        close_timestamp=1_704_070_000_000,
        pnl=bk.PnL(pnl_percentage=9.580219780219787, price_open=100.1, price_close=110.25),
    )
    return [
        SignalState.empty(1_704_067_300_000),
        SignalState("opening", open_row, bk.OpenedResult(**common(open_row)), 1_704_067_260_000),
        SignalState("open", open_row, None, 1_704_067_320_000),
        SignalState("closing", open_row, closed, 1_704_070_000_000),
    ]


def schedule_states() -> list[SignalState]:
    waiting = row("sig-2", scheduled=True)
    cancelled = bk.CancelledResult(**common(waiting), close_timestamp=1_704_074_400_000)
    return [
        SignalState.empty(7),
        SignalState("scheduling", waiting, bk.ScheduledResult(**common(waiting)), 5),
        SignalState("waiting", waiting, None, 6),
        SignalState("cancelling", waiting, cancelled, 1_704_074_400_000),
    ]


def store_file(tmp_path: Path, kind: str, entity: str, entity_id: str) -> Path:
    return tmp_path / "dump" / "data" / kind / entity / f"{entity_id}.json"


def test_signal_and_schedule_states_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    signal_adapter, schedule_adapter = bk.PersistSignalAdapter, bk.PersistScheduleAdapter

    async def main() -> None:
        for state in signal_states():
            await signal_adapter.write_signal_state(state, "BTCUSDT", "st")
            assert await signal_adapter.read_signal_state("BTCUSDT", "st") == state
            assert await signal_adapter.read_signal_data("BTCUSDT", "st") == state.signal
        for state in schedule_states():
            await schedule_adapter.write_schedule_state(state, "BTCUSDT", "st")
            assert await schedule_adapter.read_schedule_state("BTCUSDT", "st") == state
            assert await schedule_adapter.read_schedule_data("BTCUSDT", "st") == state.signal

    asyncio.run(main())
    stored = json.loads(store_file(tmp_path, "signal", "BTCUSDT_st", "BTCUSDT").read_text())
    assert stored == signal_states()[-1].to_dict()
    assert store_file(tmp_path, "schedule", "BTCUSDT_st", "BTCUSDT").exists()


def test_absent_stores_read_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def main() -> None:
        assert await bk.PersistSignalAdapter.read_signal_state("X", "st") == SignalState.empty()
        assert await bk.PersistSignalAdapter.read_signal_data("X", "st") is None
        assert await bk.PersistScheduleAdapter.read_schedule_data("X", "st") is None
        assert await bk.PersistRiskAdapter.read_position_data("r") == []
        assert await bk.PersistPartialAdapter.read_partial_data("X", "st") == {}

    asyncio.run(main())


def reference_row(signal_row: bk.SignalRow) -> dict[str, Any]:
    """The reference's camelCase record of a row, with a stray DTO key."""
    return {
        "id": signal_row.id,
        "position": signal_row.position,
        "priceOpen": signal_row.price_open,
        "priceTakeProfit": signal_row.price_take_profit,
        "priceStopLoss": signal_row.price_stop_loss,
        "minuteEstimatedTime": signal_row.minute_estimated_time,
        "note": signal_row.note,
        "symbol": signal_row.symbol,
        "exchangeName": signal_row.exchange_name,
        "strategyName": signal_row.strategy_name,
        "scheduledAt": signal_row.scheduled_at,
        "pendingAt": signal_row.pending_at,
        "_isScheduled": signal_row.is_scheduled,
        "quantity": signal_row.quantity,
        "cost": signal_row.cost,
        "extra": "ignored",
    }


def test_reference_forms_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    signal_path = store_file(tmp_path, "signal", "BTCUSDT_st", "BTCUSDT")
    schedule_path = store_file(tmp_path, "schedule", "BTCUSDT_st", "BTCUSDT")
    for path in (signal_path, schedule_path):
        path.parent.mkdir(parents=True)
    open_row, waiting_row = row(), row("sig-2", scheduled=True)

    async def main() -> None:
        signal_path.write_text("null")
        schedule_path.write_text("null")
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == SignalState(
            None, None, None, 0
        )
        assert await bk.PersistScheduleAdapter.read_schedule_data("BTCUSDT", "st") is None
        signal_path.write_text(json.dumps(reference_row(open_row)))
        schedule_path.write_text(json.dumps(reference_row(waiting_row)))
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == SignalState(
            "open", open_row, None, 0
        )
        assert await bk.PersistScheduleAdapter.read_schedule_state("BTCUSDT", "st") == SignalState(
            "waiting", waiting_row, None, 0
        )
        assert await bk.PersistSignalAdapter.read_signal_data("BTCUSDT", "st") == open_row

    asyncio.run(main())


def test_write_signal_data_stores_open_or_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_row, waiting_row = row(), row("sig-2", scheduled=True)

    async def main() -> None:
        await bk.PersistSignalAdapter.write_signal_data(open_row, "BTCUSDT", "st")
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == SignalState(
            "open", open_row, None, 0
        )
        await bk.PersistSignalAdapter.write_signal_data(None, "BTCUSDT", "st")
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == (
            SignalState.empty()
        )
        await bk.PersistScheduleAdapter.write_schedule_data(waiting_row, "BTCUSDT", "st")
        state = await bk.PersistScheduleAdapter.read_schedule_state("BTCUSDT", "st")
        assert state == SignalState("waiting", waiting_row, None, 0)

    asyncio.run(main())


def test_a_phase_of_the_other_store_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    waiting = SignalState("waiting", row(scheduled=True), None, 1)
    with pytest.raises(bk.ValidationError, match="signal store cannot hold phase 'waiting'"):
        asyncio.run(bk.PersistSignalAdapter.write_signal_state(waiting, "BTCUSDT", "st"))
    with pytest.raises(bk.ValidationError, match="schedule store cannot hold phase 'open'"):
        asyncio.run(
            bk.PersistScheduleAdapter.write_schedule_state(
                SignalState("open", row(), None, 1), "BTCUSDT", "st"
            )
        )


def test_risk_positions_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    positions = [
        ("st:BTCUSDT", bk.RiskActivePosition(row(), "st", "ex", 1_704_067_260_000)),
        ("other:ETHUSDT", bk.RiskActivePosition(row("sig-9"), "other", "ex", 5)),
    ]

    async def main() -> Any:
        await bk.PersistRiskAdapter.write_position_data(positions, "conservative")
        return await bk.PersistRiskAdapter.read_position_data("conservative")

    assert asyncio.run(main()) == positions
    stored = json.loads(store_file(tmp_path, "risk", "conservative", "positions").read_text())
    assert stored == [[key, position.to_dict()] for key, position in positions]


def test_risk_positions_reference_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = store_file(tmp_path, "risk", "r", "positions")
    path.parent.mkdir(parents=True)
    reference = {
        "signal": reference_row(row()),
        "strategyName": "st",
        "exchangeName": "ex",
        "openTimestamp": 1_704_067_260_000,
    }
    path.write_text(json.dumps([["st:BTCUSDT", reference]]))
    assert asyncio.run(bk.PersistRiskAdapter.read_position_data("r")) == [
        ("st:BTCUSDT", bk.RiskActivePosition(row(), "st", "ex", 1_704_067_260_000))
    ]


def test_partial_levels_round_trip_and_reference_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {"sig-1": ({30, 10, 20}, set()), "sig-2": (set(), {10})}

    async def main() -> Any:
        await bk.PersistPartialAdapter.write_partial_data(data, "BTCUSDT", "st")
        return await bk.PersistPartialAdapter.read_partial_data("BTCUSDT", "st")

    assert asyncio.run(main()) == data
    path = store_file(tmp_path, "partial", "BTCUSDT_st", "levels")
    assert json.loads(path.read_text()) == {
        "sig-1": {"profit_levels": [10, 20, 30], "loss_levels": []},
        "sig-2": {"profit_levels": [], "loss_levels": [10]},
    }
    path.write_text(json.dumps({"sig-3": {"profitLevels": [10, 20], "lossLevels": []}}))
    back = asyncio.run(bk.PersistPartialAdapter.read_partial_data("BTCUSDT", "st"))
    assert back == {"sig-3": ({10, 20}, set())}


# ---------------------------------------------------------------------------------------------
# corrupt data (40 §3.3)


CORRUPT_SIGNAL_FILES = {
    "empty": b"",
    "truncated": json.dumps(signal_states()[2].to_dict()).encode()[:-7],
    "bad utf-8": b'{"format":1,"phase":null,"tick_at":\xff}',
    "NaN literal": b'{"format":1,"phase":null,"tick_at":NaN}',
    "wrong shape": b'{"format":1,"phase":"open","signal":null,"result":null,"tick_at":1}',
    "unknown format": b'{"format":2,"phase":null}',
    "a list": b"[1,2]",
}


class Captured:
    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        bk.listen_error(self.errors.append)


@pytest.mark.parametrize("content", CORRUPT_SIGNAL_FILES.values(), ids=CORRUPT_SIGNAL_FILES)
def test_corrupt_value_raises_reports_and_touches_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = store_file(tmp_path, "signal", "BTCUSDT_st", "BTCUSDT")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    captured = Captured()
    with (
        caplog.at_level(logging.WARNING, logger="backtest_kit"),
        pytest.raises(bk.PersistError) as caught,
    ):
        asyncio.run(bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st"))
    error = caught.value
    assert (error.kind, error.entity_name, error.entity_id) == ("signal", "BTCUSDT_st", "BTCUSDT")
    assert error.location == str(path)
    for part in ("signal", "BTCUSDT_st:BTCUSDT", str(path), "CC_PERSIST_QUARANTINE_CORRUPT"):
        assert part in str(error)
    assert captured.errors == [error]
    assert any("persist.corrupt" in record.getMessage() for record in caplog.records)
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "BTCUSDT.json"]


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("risk", b'{"st:BTCUSDT": {}}'),
        ("risk", b'[["st:BTCUSDT", {"signal": {"id": "x"}}]]'),
        ("partial", b'{"sig-1": {"profit_levels": ["ten"]}}'),
        ("partial", b"[]"),
    ],
)
def test_corrupt_risk_and_partial_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, content: bytes
) -> None:
    monkeypatch.chdir(tmp_path)
    entity, entity_id = ("r", "positions") if kind == "risk" else ("BTCUSDT_st", "levels")
    path = store_file(tmp_path, kind, entity, entity_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    async def read() -> Any:
        if kind == "risk":
            return await bk.PersistRiskAdapter.read_position_data("r")
        return await bk.PersistPartialAdapter.read_partial_data("BTCUSDT", "st")

    with pytest.raises(bk.PersistError) as caught:
        asyncio.run(read())
    assert (caught.value.kind, caught.value.location) == (kind, str(path))
    assert path.read_bytes() == content


def test_quarantine_moves_corrupt_value_aside_and_reads_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(persist, "_now_ms", lambda: 1_700_000_000_123)
    bk.set_config({"CC_PERSIST_QUARANTINE_CORRUPT": True})
    path = store_file(tmp_path, "signal", "BTCUSDT_st", "BTCUSDT")
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"format":1,"pha')
    captured = Captured()

    async def main() -> tuple[SignalState, SignalState]:
        first = await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st")
        return first, await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st")

    assert asyncio.run(main()) == (SignalState.empty(), SignalState.empty())
    moved = path.parent / "BTCUSDT.json.corrupt-1700000000123"
    assert moved.read_bytes() == b'{"format":1,"pha'
    assert not path.exists()
    assert len(captured.errors) == 2  # the second read finds nothing: no more events
    found, notice = captured.errors
    assert isinstance(found, bk.PersistError) and isinstance(notice, bk.PersistError)
    assert found.location == str(path)
    assert notice.location == str(moved)
    assert "quarantined" in str(notice) and str(moved) in str(notice)


def test_quarantine_needs_a_backend_that_supports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bk.set_config({"CC_PERSIST_QUARANTINE_CORRUPT": True})
    backend = MemoryBackend("e", "base")
    backend.values["levels"] = "not a map"
    bk.PersistPartialAdapter.use_persist_partial_adapter(lambda name, base: backend)
    with pytest.raises(bk.PersistError, match="MemoryBackend 'e' id 'levels'"):
        asyncio.run(bk.PersistPartialAdapter.read_partial_data("BTCUSDT", "st"))
    assert backend.values["levels"] == "not a map"


def test_store_failure_is_not_treated_as_corruption() -> None:
    bk.set_config({"CC_PERSIST_QUARANTINE_CORRUPT": True})

    class Down(MemoryBackend):
        def has_value(self, entity_id: str) -> bool:
            raise ConnectionError("store down")

        def quarantine_value(self, entity_id: str) -> str:
            raise AssertionError("must not quarantine")

    bk.PersistSignalAdapter.use_persist_signal_adapter(Down)
    captured = Captured()
    with pytest.raises(bk.PersistError, match="ConnectionError: store down") as caught:
        asyncio.run(bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st"))
    assert (caught.value.kind, caught.value.entity_id) == ("signal", "BTCUSDT")
    assert captured.errors == []


# ---------------------------------------------------------------------------------------------
# choosing a backend


class MemoryBackend:
    """The reference test bed's kind of backend: four sync methods, nothing else."""

    def __init__(self, entity_name: str, base_dir: str | os.PathLike[str]) -> None:
        self.entity_name = entity_name
        self.base_dir = base_dir
        self.values: dict[str, Any] = {}
        self.inits: list[bool] = []

    def wait_for_init(self, initial: bool) -> None:
        self.inits.append(initial)

    def has_value(self, entity_id: str) -> bool:
        return entity_id in self.values

    def read_value(self, entity_id: str) -> Any:
        return self.values[entity_id]

    def write_value(self, entity_id: str, value: Any) -> None:
        self.values[entity_id] = value


class AsyncMemoryBackend(MemoryBackend):
    async def wait_for_init(self, initial: bool) -> None:  # type: ignore[override]
        self.inits.append(initial)

    async def has_value(self, entity_id: str) -> bool:  # type: ignore[override]
        return entity_id in self.values

    async def read_value(self, entity_id: str) -> Any:
        return self.values[entity_id]

    async def write_value(self, entity_id: str, value: Any) -> None:  # type: ignore[override]
        self.values[entity_id] = value


@pytest.mark.parametrize("backend_class", [MemoryBackend, AsyncMemoryBackend])
def test_use_adapter_swaps_backends_and_reset_restores_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend_class: type[MemoryBackend]
) -> None:
    monkeypatch.chdir(tmp_path)
    state = signal_states()[2]
    asyncio.run(bk.PersistSignalAdapter.write_signal_state(state, "BTCUSDT", "st"))
    made: list[MemoryBackend] = []

    def factory(entity_name: str, base_dir: str | os.PathLike[str]) -> MemoryBackend:
        made.append(backend_class(entity_name, base_dir))
        return made[-1]

    bk.PersistSignalAdapter.use_persist_signal_adapter(factory)
    bk.PersistRiskAdapter.use_persist_risk_adapter(factory)

    async def main() -> None:
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == (
            SignalState.empty()
        )
        await bk.PersistSignalAdapter.write_signal_state(SignalState.empty(9), "BTCUSDT", "st")
        assert await bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st") == (
            SignalState.empty(9)
        )
        await bk.PersistRiskAdapter.write_position_data([], "r")

    asyncio.run(main())
    signal_backend, risk_backend = made
    assert (signal_backend.entity_name, signal_backend.base_dir) == (
        "BTCUSDT_st",
        os.path.join(".", "dump", "data", "signal"),
    )
    assert signal_backend.values == {"BTCUSDT": SignalState.empty(9).to_dict()}
    assert signal_backend.inits == [True, False, False]
    assert (risk_backend.entity_name, risk_backend.values) == ("r", {"positions": []})

    bk.reset()
    assert bk.runtime.current().persist.factories["signal"] is PersistBase
    assert asyncio.run(bk.PersistSignalAdapter.read_signal_state("BTCUSDT", "st")) == state


def test_use_adapter_drops_memoised_backends() -> None:
    first, second = MemoryBackend("a", "b"), MemoryBackend("a", "b")
    bk.PersistPartialAdapter.use_persist_partial_adapter(lambda name, base: first)
    asyncio.run(bk.PersistPartialAdapter.write_partial_data({}, "BTCUSDT", "st"))
    bk.PersistPartialAdapter.use_persist_partial_adapter(lambda name, base: second)
    asyncio.run(bk.PersistPartialAdapter.write_partial_data({"s": ({10}, set())}, "X", "st"))
    assert first.values == {"levels": {}}
    assert second.values == {"levels": {"s": {"profit_levels": [10], "loss_levels": []}}}


def test_use_adapter_is_refused_during_a_live_run() -> None:
    bk.runtime.current().live_runs_active = 1
    with pytest.raises(bk.BacktestKitError, match="while a live run is active"):
        bk.PersistScheduleAdapter.use_persist_schedule_adapter(MemoryBackend)
    assert bk.runtime.current().persist.factories["schedule"] is PersistBase
    bk.runtime.current().live_runs_active = 0
    with pytest.raises(bk.ValidationError, match="class or callable"):
        bk.PersistScheduleAdapter.use_persist_schedule_adapter("redis")  # type: ignore[arg-type]


def test_failed_init_is_retried_as_initial() -> None:
    class Flaky(MemoryBackend):
        def wait_for_init(self, initial: bool) -> None:
            self.inits.append(initial)
            if len(self.inits) == 1:
                raise OSError("not yet")

    backend = Flaky("e", "b")
    bk.PersistRiskAdapter.use_persist_risk_adapter(lambda name, base: backend)
    with pytest.raises(bk.PersistError, match="OSError: not yet") as caught:
        asyncio.run(bk.PersistRiskAdapter.read_position_data("r"))
    assert caught.value.kind == "risk"
    assert asyncio.run(bk.PersistRiskAdapter.read_position_data("r")) == []
    asyncio.run(bk.PersistRiskAdapter.read_position_data("r"))
    assert backend.inits == [True, True, False]


# ---------------------------------------------------------------------------------------------
# Redis through the adapters


def test_adapters_on_redis(redis_port: int) -> None:
    from backtest_kit.persist_redis import use_redis_persist

    symbol = f"S{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with redis_client(redis_port) as client:
            use_redis_persist(client)
            for state in signal_states():
                await bk.PersistSignalAdapter.write_signal_state(state, symbol, "st")
                assert await bk.PersistSignalAdapter.read_signal_state(symbol, "st") == state
            positions = [("st:X", bk.RiskActivePosition(row(), "st", "ex", 1))]
            await bk.PersistRiskAdapter.write_position_data(positions, f"risk-{symbol}")
            assert await bk.PersistRiskAdapter.read_position_data(f"risk-{symbol}") == positions
            raw = await client.hget(f"bk:signal:{symbol}_st", symbol)
            assert json.loads(raw) == signal_states()[-1].to_dict()

    asyncio.run(main())


@pytest.mark.parametrize("quarantine", [False, True])
def test_corrupt_value_on_redis(
    redis_port: int, monkeypatch: pytest.MonkeyPatch, quarantine: bool
) -> None:
    from backtest_kit import persist_redis
    from backtest_kit.persist_redis import use_redis_persist

    monkeypatch.setattr(persist_redis, "_now_ms", lambda: 1_700_000_000_000)
    bk.set_config({"CC_PERSIST_QUARANTINE_CORRUPT": quarantine})
    symbol = f"S{uuid.uuid4().hex[:8]}"
    key = f"bk:schedule:{symbol}_st"
    captured = Captured()

    async def main() -> Any:
        async with redis_client(redis_port) as client:
            use_redis_persist(client)
            await client.hset(key, symbol, b"\xff{")
            try:
                return await bk.PersistScheduleAdapter.read_schedule_state(symbol, "st")
            finally:
                stored = await client.hget(key, symbol)
                moved = await client.hgetall(f"{key}:quarantine")
                assert (stored, moved) == (
                    (None, {f"{symbol}.corrupt-1700000000000".encode(): b"\xff{"})
                    if quarantine
                    else (b"\xff{", {})
                )

    where = f"redis hash {key} field {symbol}"
    if not quarantine:
        with pytest.raises(bk.PersistError, match=where) as caught:
            asyncio.run(main())
        assert caught.value.location == where
        assert captured.errors == [caught.value]
        return
    assert asyncio.run(main()) == SignalState.empty()
    assert [getattr(error, "location", None) for error in captured.errors] == [
        where,
        f"redis hash {key}:quarantine field {symbol}.corrupt-1700000000000",
    ]


def test_redis_failure_raises_persist_error() -> None:
    if redis is None:
        pytest.skip("redis-py is not installed")
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from backtest_kit.persist_redis import RedisPersist

    async def main() -> None:
        # nobody listens on that port; no retries, so it fails at once
        client = aioredis.Redis(host="127.0.0.1", port=_free_port(), retry=Retry(NoBackoff(), 0))
        try:
            store = RedisPersist(client, "signal", "e")
            with pytest.raises(bk.PersistError, match="redis PING on bk:signal:e failed"):
                await store.wait_for_init(True)
            with pytest.raises(bk.PersistError, match="redis HSET") as caught:
                await store.write_value("k", 1)
            assert caught.value.location == "redis hash bk:signal:e field k"
        finally:
            await client.aclose()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# packaging


def test_redis_module_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, backtest_kit; print('backtest_kit.persist_redis' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False"
    from backtest_kit.persist_redis import RedisPersist

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(bk.BacktestKitError, match=r"backtest-kit\[redis\]"):
        RedisPersist(object(), "signal", "e")


def test_persist_error_attributes_default_to_none() -> None:
    error = bk.PersistError("boom")
    assert (error.kind, error.entity_name, error.entity_id, error.location) == (None,) * 4
