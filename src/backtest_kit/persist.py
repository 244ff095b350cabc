"""Crash-safe persistence of live state (40 §3, §4, §8): the backend protocol, its default
file backend `PersistBase` and the four adapters the live engine reads and writes through.

Owns the storage format (one JSON value per id), the atomic-and-durable write, the directory
lock, corrupt-data handling (report, then raise or quarantine) and which backend each kind of
state uses (a factory per kind on the runtime, so `bk.reset()` restores the file backend). It
makes no trading decision and holds no engine state; backtests never reach it (40 §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import os
import re
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from urllib.parse import unquote

from .errors import BacktestKitError, PersistError, ValidationError
from .model.risk import RiskActivePosition
from .model.signal import SignalRow
from .model.state import SignalState, StateKind

if sys.platform != "win32":
    import fcntl

PersistKind = Literal["signal", "schedule", "risk", "partial"]
KINDS: Final[tuple[PersistKind, ...]] = ("signal", "schedule", "risk", "partial")

PersistFactory = Callable[[str, str | os.PathLike[str]], Any]
"""`factory(entity_name, base_dir)` -> a backend: a class (like `PersistBase`) or a callable."""

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# names, keys and the JSON encoding shared by every bundled backend

_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9._-]+")
_SAFE_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_DIGIT_RUNS: Final = re.compile(r"([0-9]+)")
_OWN_TEMP: Final = re.compile(r"\..+\.json\.[0-9a-f]{16}\.tmp")
_REFERENCE_TEMP: Final = re.compile(r"\.tmp-[0-9a-f]{12}-.+\.json")


def escape_name(name: str) -> str:
    """A file-name component for an entity name or id (40 §3.2)::

        escape_name("BTCUSDT_sma")  # -> "BTCUSDT_sma"
        escape_name("BTC/USDT")     # -> "BTC%2FUSDT"

    `[A-Za-z0-9._-]` is kept, every other byte of the UTF-8 form becomes `%XX`.
    """
    if not isinstance(name, str) or not name:
        raise PersistError(f"a persisted name or id must be a non-empty string, got {name!r}")
    # A leading dot is escaped too: it rules out "." and ".." and keeps every key file
    # visible and distinct from the temp files (which start with a dot) that init deletes.
    if _SAFE_NAME.fullmatch(name) and not name.startswith("."):
        return name
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PersistError(f"persisted name {name!r} is not valid Unicode: {exc}") from None
    return "".join(
        chr(byte) if byte in _SAFE_BYTES and (index or byte != 0x2E) else f"%{byte:02X}"
        for index, byte in enumerate(raw)
    )


def unescape_name(component: str) -> str:
    """The name `escape_name` was given (`%XX` sequences decoded as UTF-8)."""
    return unquote(component, encoding="utf-8", errors="surrogateescape")


def natural_key(key: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """Sort key of the natural order of `keys()`: digit runs compare as numbers, letters
    case-insensitively (like JS `localeCompare(b, undefined, {numeric: true, sensitivity:
    "base"})`), `a2 < a10 < B1`; the raw key breaks ties."""
    parts = tuple(
        (0, int(part), "") if index % 2 else (1, 0, part)
        for index, part in enumerate(_DIGIT_RUNS.split(key.casefold()))
        if part
    )
    return parts, key


def encode_value(value: object) -> bytes:
    """The stored form of a value: compact UTF-8 JSON; NaN and infinities are refused."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PersistError(f"value is not JSON-serialisable: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_value(raw: bytes | str) -> Any:
    """Parse a stored value; raises `ValueError` (`UnicodeDecodeError`, `JSONDecodeError`)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    return json.loads(text, parse_constant=_reject_constant)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------
# file-system helpers of the default backend


def _fsync_dir(path: str) -> None:
    if os.name != "posix":  # a directory cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: str) -> None:
    """`makedirs`, and fsync the parent of each directory it creates (a new directory entry
    is not durable until its parent is synced)."""
    missing: list[str] = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
        _fsync_dir(os.path.dirname(directory))
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path} exists and is not a directory")


# directory (real path) -> (fd of its held `.lock`, pid); kept for the process lifetime
_HELD_LOCKS: dict[str, tuple[int, int]] = {}
_HELD_LOCKS_GUARD = threading.Lock()
# directories (real path, pid) whose leftover temps this process has deleted
_CLEANED: set[tuple[str, int]] = set()


def _lock_directory(directory: str) -> None:
    """Take the exclusive lock of `directory` for this process (kept until it exits)."""
    key = os.path.realpath(directory)
    with _HELD_LOCKS_GUARD:
        held = _HELD_LOCKS.get(key)
        if held is not None and held[1] == os.getpid():
            return
        if sys.platform == "win32":  # no flock: one process per directory is up to the user
            _HELD_LOCKS[key] = (-1, os.getpid())
            return
        lock_path = os.path.join(directory, ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise PersistError(
                f"persist directory {directory} is in use by pid {holder}; one process per "
                "directory: stop the other process or give this one another working directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        _HELD_LOCKS[key] = (fd, os.getpid())


async def _off_loop(fn: Callable[[], _T]) -> _T:
    """Run a blocking call in the default thread pool.

    A cancelled caller still waits for the thread: a started write cannot be undone, and
    returning early would release the caller's per-id lock while it lands, letting it overtake
    a later write of the same id.
    """
    future = asyncio.get_running_loop().run_in_executor(None, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((future,))
        if not future.cancelled():
            future.exception()  # retrieved: the caller sees its cancellation instead
        raise


# ---------------------------------------------------------------------------------------------
# the protocol and its default file backend


class PersistBase:
    """The persistence protocol (40 §3.1) and its default backend: one JSON file per id.

    Layout `<base_dir>/<entity_name>/<id>.json`, `base_dir` resolved against the cwd once,
    here. A write is atomic and durable: temp file in the same directory, fsync, rename,
    fsync of the directory, so a crash leaves the old or the new value in full. The first
    `wait_for_init` creates the directory, takes its `.lock` (one process per directory,
    else `PersistError` "in use by pid N") and deletes temps left by a crash.

        store = bk.PersistBase("BTCUSDT_sma", "./dump/data/signal")
        await store.wait_for_init(True)
        await store.write_value("BTCUSDT", {"phase": None})

    Subclass to plug another store (override the protocol methods), or pass any object with
    `wait_for_init`, `has_value`, `read_value` and `write_value` (sync or async) to a
    `use_persist_*_adapter`. Ids are strings; values are JSON-compatible.
    """

    def __init__(self, entity_name: str, base_dir: str | os.PathLike[str]) -> None:
        self.entity_name = entity_name
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self.directory = os.path.join(self.base_dir, escape_name(entity_name))
        self._ready = False
        self._locks: dict[str, tuple[asyncio.Lock, asyncio.AbstractEventLoop]] = {}

    def location(self, entity_id: str) -> str:
        """Absolute path of the file holding `entity_id`."""
        return os.path.join(self.directory, escape_name(entity_id) + ".json")

    def _after_stage(self, stage: str) -> None:
        """Test hook, called during a write after `"written"`, `"synced"`, `"renamed"` and
        `"dir_synced"` (crash tests override it to kill the process there)."""

    async def wait_for_init(self, initial: bool) -> None:
        """Create the directory, lock it and delete leftover temp files; idempotent, and a
        failure is not remembered (the next call tries again)."""
        if self._ready:
            return
        try:
            _make_dirs(self.directory)
            _lock_directory(self.directory)
            cleaned = (os.path.realpath(self.directory), os.getpid())
            if cleaned not in _CLEANED:
                self._remove_temps()
                _CLEANED.add(cleaned)
        except PersistError:
            raise
        except OSError as exc:
            raise PersistError(
                f"cannot prepare persist directory {self.directory}: {exc}",
                entity_name=self.entity_name,
                location=self.directory,
            ) from exc
        self._ready = True

    def _remove_temps(self) -> None:
        # Once per directory and process, before any backend of it is ready: temps of this
        # process's own writes in flight are never touched.
        removed = False
        for name in os.listdir(self.directory):
            if _OWN_TEMP.fullmatch(name) or _REFERENCE_TEMP.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))
                    removed = True
        if removed:
            _fsync_dir(self.directory)

    async def _ensure_ready(self) -> None:
        if not self._ready:
            await self.wait_for_init(False)

    def _lock(self, entity_id: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        entry = self._locks.get(entity_id)
        if entry is None or entry[1] is not loop:  # a lock is bound to one event loop
            entry = (asyncio.Lock(), loop)
            self._locks[entity_id] = entry
        return entry[0]

    def _error(self, message: str, entity_id: str, path: str) -> PersistError:
        return PersistError(
            message, entity_name=self.entity_name, entity_id=entity_id, location=path
        )

    async def has_value(self, entity_id: str) -> bool:
        """True iff a value is stored for `entity_id` (a stored `null` included)."""
        await self._ensure_ready()
        path = self.location(entity_id)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._error(f"cannot check {path}: {exc}", entity_id, path) from exc

    async def read_value(self, entity_id: str) -> Any:
        """The stored value (may be `None`); `PersistError` if absent or undecodable."""
        await self._ensure_ready()
        path = self.location(entity_id)
        # A plain call: reading a small file takes microseconds, a thread hop ~6x longer.
        try:
            with open(path, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` not found", entity_id, path
            ) from None
        except OSError as exc:
            raise self._error(f"cannot read {path}: {exc}", entity_id, path) from exc
        try:
            return decode_value(raw)
        except ValueError as exc:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` at {path} cannot be decoded: "
                f"{type(exc).__name__}: {exc}",
                entity_id,
                path,
            ) from exc

    async def write_value(self, entity_id: str, value: Any) -> None:
        """Store `value` atomically and durably; on failure the old value stays in full."""
        await self._ensure_ready()
        path = self.location(entity_id)
        async with self._lock(entity_id):
            data = encode_value(value)  # the snapshot is taken inside the lock (40 §3.2)
            # fsync blocks for milliseconds (far more on a busy disk): keep the loop free
            await _off_loop(functools.partial(self._write_file, entity_id, path, data))

    def _write_file(self, entity_id: str, path: str, data: bytes) -> None:
        temp = os.path.join(self.directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
        fd = -1
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._after_stage("written")
            os.fsync(fd)
            os.close(fd)
            fd = -1
            self._after_stage("synced")
            os.replace(temp, path)
            self._after_stage("renamed")
            _fsync_dir(self.directory)
            self._after_stage("dir_synced")
        except BaseException as exc:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, Exception) and not isinstance(exc, PersistError):
                raise self._error(f"cannot write {path}: {exc}", entity_id, path) from exc
            raise

    async def remove_value(self, entity_id: str) -> None:
        """Delete the value durably; `PersistError` "not found for deletion" if absent."""
        await self._ensure_ready()
        path = self.location(entity_id)
        async with self._lock(entity_id):
            await _off_loop(functools.partial(self._remove_file, entity_id, path))

    def _remove_file(self, entity_id: str, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` not found for deletion", entity_id, path
            ) from None
        except OSError as exc:
            raise self._error(f"cannot remove {path}: {exc}", entity_id, path) from exc
        try:
            _fsync_dir(self.directory)
        except OSError as exc:
            raise self._error(f"cannot sync {self.directory}: {exc}", entity_id, path) from exc

    async def keys(self) -> list[str]:
        """Stored ids in natural order; temp and quarantined files are never listed."""
        await self._ensure_ready()
        try:
            with os.scandir(self.directory) as entries:
                ids = [
                    unescape_name(entry.name[: -len(".json")])
                    for entry in entries
                    if entry.name.endswith(".json")
                    and not entry.name.startswith(".")
                    and entry.is_file()
                ]
        except OSError as exc:
            raise PersistError(
                f"cannot list {self.directory}: {exc}",
                entity_name=self.entity_name,
                location=self.directory,
            ) from exc
        return sorted(ids, key=natural_key)

    async def quarantine_value(self, entity_id: str) -> str:
        """Move the value aside to `<id>.json.corrupt-<epoch ms>` (`-<n>` appended if taken)
        and return that path; it is no longer a key (40 §3.3)."""
        await self._ensure_ready()
        path = self.location(entity_id)
        async with self._lock(entity_id):
            return await _off_loop(functools.partial(self._quarantine_file, entity_id, path))

    def _quarantine_file(self, entity_id: str, path: str) -> str:
        base = f"{path}.corrupt-{_now_ms()}"
        target, suffix = base, 0
        # this process holds the directory lock: nobody else can take the name in between
        while os.path.lexists(target):
            suffix += 1
            target = f"{base}-{suffix}"
        try:
            os.rename(path, target)
            _fsync_dir(self.directory)
        except FileNotFoundError:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` not found for quarantine",
                entity_id,
                path,
            ) from None
        except OSError as exc:
            raise self._error(f"cannot quarantine {path}: {exc}", entity_id, path) from exc
        return target


# ---------------------------------------------------------------------------------------------
# backends per kind, on the runtime


@dataclass(slots=True)
class _Backend:
    instance: Any
    initialized: bool = False


class PersistRegistry:
    """The runtime's persistence state: the factory of each kind and the memoised backends
    (one per `(kind, entity_name)`). A new runtime (`bk.reset()`) starts on `PersistBase`."""

    def __init__(self) -> None:
        self.factories: dict[PersistKind, PersistFactory] = dict.fromkeys(KINDS, PersistBase)
        self.instances: dict[tuple[PersistKind, str], _Backend] = {}


def default_base_dir(kind: PersistKind) -> str:
    """`./dump/data/<kind>`, relative: the file backend resolves it when created."""
    return os.path.join(".", "dump", "data", kind)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _runtime() -> Any:
    from .runtime import current

    return current()


def _wrap(exc: Exception, kind: PersistKind, entity_name: str, entity_id: str) -> PersistError:
    """A backend failure as a `PersistError` that names the kind, entity and id."""
    if isinstance(exc, PersistError):
        if exc.kind is None:
            exc.kind = kind
        if exc.entity_name is None:
            exc.entity_name = entity_name
        if exc.entity_id is None:
            exc.entity_id = entity_id
        return exc
    error = PersistError(
        f"{kind} store: entity `{entity_name}:{entity_id}`: {type(exc).__name__}: {exc}",
        kind=kind,
        entity_name=entity_name,
        entity_id=entity_id,
    )
    error.__cause__ = exc
    return error


def _undecodable(exc: Exception) -> bool:
    """Whether a `read_value` failure means the stored bytes are bad (not the store down):
    a `ValueError` (JSON, UTF-8), raised directly or as the cause of a `PersistError`."""
    return isinstance(exc, ValueError) or (
        isinstance(exc, PersistError) and isinstance(exc.__cause__, ValueError)
    )


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, PersistError) and exc.__cause__ else exc
    if isinstance(cause, PersistError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"


class _PersistAdapter:
    """What the four adapters share: backend lookup, guarded reads and writes."""

    _kind: PersistKind

    def _use(self, factory: PersistFactory) -> None:
        runtime = _runtime()
        if not callable(factory):
            raise ValidationError(
                f"{self._kind} persistence backend must be a class or callable "
                f"factory(entity_name, base_dir), got {factory!r}"
            )
        if runtime.live_runs_active:
            raise BacktestKitError(
                f"cannot change the {self._kind} persistence backend while a live run is "
                "active: stop the live runs first (40 §3.4)"
            )
        registry: PersistRegistry = runtime.persist
        registry.factories[self._kind] = factory
        for key in [key for key in registry.instances if key[0] == self._kind]:
            del registry.instances[key]

    async def _backend(self, entity_name: str, entity_id: str) -> Any:
        registry: PersistRegistry = _runtime().persist
        key = (self._kind, entity_name)
        backend = registry.instances.get(key)
        try:
            if backend is None:
                factory = registry.factories[self._kind]
                backend = _Backend(factory(entity_name, default_base_dir(self._kind)))
                registry.instances[key] = backend
            # [Python extension] `initial` stays True until a call succeeds, so a backend
            # that prepares storage only when `initial` retries after a failure (40 §3.1)
            await _maybe_await(backend.instance.wait_for_init(not backend.initialized))
        except Exception as exc:
            raise _wrap(exc, self._kind, entity_name, entity_id) from None
        backend.initialized = True
        return backend.instance

    async def _write(self, entity_name: str, entity_id: str, value: Any) -> None:
        backend = await self._backend(entity_name, entity_id)
        try:
            await _maybe_await(backend.write_value(entity_id, value))
        except Exception as exc:
            raise _wrap(exc, self._kind, entity_name, entity_id) from None

    async def _read(
        self, entity_name: str, entity_id: str, parse: Callable[[Any], _T], empty: Callable[[], _T]
    ) -> _T:
        """The parsed value, `empty()` if absent; corrupt data per 40 §3.3."""
        backend = await self._backend(entity_name, entity_id)
        try:
            if not await _maybe_await(backend.has_value(entity_id)):
                return empty()
            raw = await _maybe_await(backend.read_value(entity_id))
        except Exception as exc:
            if not _undecodable(exc):
                raise _wrap(exc, self._kind, entity_name, entity_id) from None
            location = getattr(exc, "location", None) or _location(backend, entity_id)
            return await self._corrupt(backend, entity_name, entity_id, location, exc, empty)
        try:
            return parse(raw)
        except Exception as exc:
            location = _location(backend, entity_id)
            return await self._corrupt(backend, entity_name, entity_id, location, exc, empty)

    async def _corrupt(
        self,
        backend: Any,
        entity_name: str,
        entity_id: str,
        location: str,
        cause: Exception,
        empty: Callable[[], _T],
    ) -> _T:
        """Report a value that cannot be decoded or fails its shape check, then raise, or
        (`CC_PERSIST_QUARANTINE_CORRUPT`) move it aside and treat it as absent."""
        runtime = _runtime()
        what = f"{self._kind} entity `{entity_name}:{entity_id}` at {location}"
        error = PersistError(
            f"corrupt {what}: {_describe(cause)}; fix or remove it, or set "
            "CC_PERSIST_QUARANTINE_CORRUPT=True to move it aside and start without it",
            kind=self._kind,
            entity_name=entity_name,
            entity_id=entity_id,
            location=location,
        )
        error.__cause__ = cause
        await _report(runtime, error)
        quarantine = getattr(backend, "quarantine_value", None)
        if not runtime.config.CC_PERSIST_QUARANTINE_CORRUPT or not callable(quarantine):
            raise error
        try:
            moved = str(await _maybe_await(quarantine(entity_id)))
        except Exception as exc:
            raise _wrap(exc, self._kind, entity_name, entity_id) from error
        notice = PersistError(
            f"quarantined corrupt {what}: moved to {moved}; continuing without it "
            f"({_describe(cause)})",
            kind=self._kind,
            entity_name=entity_name,
            entity_id=entity_id,
            location=moved,
        )
        notice.__cause__ = cause
        await _report(runtime, notice)
        return empty()


def _location(backend: Any, entity_id: str) -> str:
    describe = getattr(backend, "location", None)
    if callable(describe):
        with contextlib.suppress(Exception):
            return str(describe(entity_id))
    name = getattr(backend, "entity_name", None)
    return f"{type(backend).__name__} {name!r} id {entity_id!r}"


async def _report(runtime: Any, error: PersistError) -> None:
    from .events import ERROR

    runtime.logger.alert(
        "persist.corrupt",
        {
            "kind": error.kind,
            "entity_name": error.entity_name,
            "entity_id": error.entity_id,
            "location": error.location,
            "error": str(error),
        },
    )
    await runtime.bus.emit(ERROR, error)


# ---------------------------------------------------------------------------------------------
# value shapes of the risk and partial stores


def _entity(symbol: str, strategy_name: str) -> str:
    return f"{symbol}_{strategy_name}"


def _state_parser(kind: StateKind) -> Callable[[Any], SignalState]:
    return lambda raw: SignalState.from_dict(raw, kind)


_STATE_PHASES: Final[dict[StateKind, tuple[str, ...]]] = {
    "signal": ("opening", "open", "closing"),
    "schedule": ("scheduling", "waiting", "cancelling"),
}


def _check_state(state: SignalState, kind: StateKind) -> None:
    if not isinstance(state, SignalState):
        raise ValidationError(f"{kind} state must be a SignalState, got {state!r}")
    if state.phase is not None and state.phase not in _STATE_PHASES[kind]:
        raise ValidationError(
            f"{kind} store cannot hold phase {state.phase!r}; valid: "
            f"{', '.join(_STATE_PHASES[kind])} or None"
        )


def _int_field(data: dict[str, Any], name: str, alias: str) -> int:
    value = data.get(name, data.get(alias))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PersistError(f"field {name!r} must be an integer, got {value!r}")
    return value


def _str_field(data: dict[str, Any], name: str, alias: str) -> str:
    value = data.get(name, data.get(alias))
    if not isinstance(value, str):
        raise PersistError(f"field {name!r} must be a string, got {value!r}")
    return value


def positions_from_json(raw: Any) -> list[tuple[str, RiskActivePosition]]:
    """Read the risk store's `[[key, position], ...]` (snake_case or the reference's
    camelCase); `null` reads as no positions."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PersistError(
            f"risk positions must be a list of [key, position] pairs, got {type(raw).__name__}"
        )
    positions: list[tuple[str, RiskActivePosition]] = []
    for index, item in enumerate(raw):
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], dict)
            and isinstance(item[1].get("signal"), dict)
        ):
            raise PersistError(
                f"risk positions[{index}] must be [key, {{signal, strategy_name, "
                f"exchange_name, open_timestamp}}], got {item!r:.200}"
            )
        key, data = item
        try:
            position = RiskActivePosition(
                signal=SignalRow.from_dict(data["signal"]),
                strategy_name=_str_field(data, "strategy_name", "strategyName"),
                exchange_name=_str_field(data, "exchange_name", "exchangeName"),
                open_timestamp=_int_field(data, "open_timestamp", "openTimestamp"),
            )
        except PersistError as exc:
            raise PersistError(f"risk positions[{index}] ({key!r}): {exc}") from None
        positions.append((key, position))
    return positions


def positions_to_json(positions: Iterable[tuple[str, RiskActivePosition]]) -> list[Any]:
    return [[key, position.to_dict()] for key, position in positions]


def _levels(entry: dict[str, Any], name: str, alias: str, signal_id: str) -> set[int]:
    raw = entry.get(name, entry.get(alias, []))
    if not isinstance(raw, list):
        raise PersistError(f"partial levels of {signal_id!r}: {name} must be a list, got {raw!r}")
    levels: set[int] = set()
    for level in raw:
        if isinstance(level, float) and level.is_integer():
            level = int(level)
        if isinstance(level, bool) or not isinstance(level, int):
            raise PersistError(
                f"partial levels of {signal_id!r}: {name} holds {level!r}, not an integer"
            )
        levels.add(level)
    return levels


def partial_from_json(raw: Any) -> dict[str, tuple[set[int], set[int]]]:
    """Read the partial store's `{signal_id: {profit_levels, loss_levels}}` (or the
    reference's `profitLevels`/`lossLevels`); `null` reads as empty."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PersistError(
            f"partial levels must be an object keyed by signal id, got {type(raw).__name__}"
        )
    data: dict[str, tuple[set[int], set[int]]] = {}
    for signal_id, entry in raw.items():
        if not isinstance(entry, dict):
            raise PersistError(
                f"partial levels of {signal_id!r} must be {{profit_levels, loss_levels}}, "
                f"got {entry!r:.200}"
            )
        data[signal_id] = (
            _levels(entry, "profit_levels", "profitLevels", signal_id),
            _levels(entry, "loss_levels", "lossLevels", signal_id),
        )
    return data


def partial_to_json(data: dict[str, tuple[set[int], set[int]]]) -> dict[str, Any]:
    return {
        signal_id: {"profit_levels": sorted(profit), "loss_levels": sorted(loss)}
        for signal_id, (profit, loss) in data.items()
    }


# ---------------------------------------------------------------------------------------------
# the four adapters


class PersistSignalUtils(_PersistAdapter):
    """The position of a live `(symbol, strategy)`: entity `<symbol>_<strategy>`, id
    `<symbol>`, value the §4.2 record (use via `bk.PersistSignalAdapter`)."""

    _kind: PersistKind = "signal"

    def use_persist_signal_adapter(self, factory: PersistFactory) -> None:
        """Store positions with `factory(entity_name, base_dir)` from now on (drops memoised
        backends; refused while a live run is active; `bk.reset()` restores files)."""
        self._use(factory)

    async def read_signal_state(self, symbol: str, strategy_name: str) -> SignalState:
        """The stored record; `SignalState.empty()` when nothing is stored."""
        return await self._read(
            _entity(symbol, strategy_name), symbol, _state_parser("signal"), SignalState.empty
        )

    async def write_signal_state(self, state: SignalState, symbol: str, strategy_name: str) -> None:
        """Store the record durably (phase `opening`, `open`, `closing` or None)."""
        _check_state(state, "signal")
        await self._write(_entity(symbol, strategy_name), symbol, state.to_dict())

    async def read_signal_data(self, symbol: str, strategy_name: str) -> SignalRow | None:
        """The stored position's row whatever its phase; None when there is none."""
        return (await self.read_signal_state(symbol, strategy_name)).signal

    async def write_signal_data(
        self, row: SignalRow | None, symbol: str, strategy_name: str
    ) -> None:
        """Store `row` as an open position (`tick_at = 0`), or the empty record for None."""
        state = SignalState.empty() if row is None else SignalState("open", row, None, 0)
        await self.write_signal_state(state, symbol, strategy_name)


class PersistScheduleUtils(_PersistAdapter):
    """The waiting scheduled signal of a live `(symbol, strategy)`: entity
    `<symbol>_<strategy>`, id `<symbol>` (use via `bk.PersistScheduleAdapter`)."""

    _kind: PersistKind = "schedule"

    def use_persist_schedule_adapter(self, factory: PersistFactory) -> None:
        """Store scheduled signals with `factory(entity_name, base_dir)` from now on."""
        self._use(factory)

    async def read_schedule_state(self, symbol: str, strategy_name: str) -> SignalState:
        """The stored record; `SignalState.empty()` when nothing is stored."""
        return await self._read(
            _entity(symbol, strategy_name), symbol, _state_parser("schedule"), SignalState.empty
        )

    async def write_schedule_state(
        self, state: SignalState, symbol: str, strategy_name: str
    ) -> None:
        """Store the record durably (phase `scheduling`, `waiting`, `cancelling` or None)."""
        _check_state(state, "schedule")
        await self._write(_entity(symbol, strategy_name), symbol, state.to_dict())

    async def read_schedule_data(self, symbol: str, strategy_name: str) -> SignalRow | None:
        """The stored scheduled row whatever its phase; None when there is none."""
        return (await self.read_schedule_state(symbol, strategy_name)).signal

    async def write_schedule_data(
        self, row: SignalRow | None, symbol: str, strategy_name: str
    ) -> None:
        """Store `row` as a waiting signal (`tick_at = 0`), or the empty record for None."""
        state = SignalState.empty() if row is None else SignalState("waiting", row, None, 0)
        await self.write_schedule_state(state, symbol, strategy_name)


class PersistRiskUtils(_PersistAdapter):
    """The active positions of a live risk profile: entity `<risk_name>`, id `positions`,
    value `[[key, position], ...]` in insertion order (use via `bk.PersistRiskAdapter`)."""

    _kind: PersistKind = "risk"

    def use_persist_risk_adapter(self, factory: PersistFactory) -> None:
        """Store risk registries with `factory(entity_name, base_dir)` from now on."""
        self._use(factory)

    async def read_position_data(self, risk_name: str) -> list[tuple[str, RiskActivePosition]]:
        """The stored `(key, position)` pairs; `[]` when nothing is stored."""
        return await self._read(risk_name, "positions", positions_from_json, list)

    async def write_position_data(
        self, positions: list[tuple[str, RiskActivePosition]], risk_name: str
    ) -> None:
        """Store the whole registry durably."""
        await self._write(risk_name, "positions", positions_to_json(positions))


class PersistPartialUtils(_PersistAdapter):
    """Partial milestones reached by live signals: entity `<symbol>_<strategy>`, id
    `levels`, value `{signal_id: {profit_levels, loss_levels}}` (use via
    `bk.PersistPartialAdapter`)."""

    _kind: PersistKind = "partial"

    def use_persist_partial_adapter(self, factory: PersistFactory) -> None:
        """Store partial levels with `factory(entity_name, base_dir)` from now on."""
        self._use(factory)

    async def read_partial_data(
        self, symbol: str, strategy_name: str
    ) -> dict[str, tuple[set[int], set[int]]]:
        """Signal id -> (profit levels, loss levels) reached; `{}` when nothing is stored."""
        return await self._read(_entity(symbol, strategy_name), "levels", partial_from_json, dict)

    async def write_partial_data(
        self, data: dict[str, tuple[set[int], set[int]]], symbol: str, strategy_name: str
    ) -> None:
        """Store the whole map durably (levels as sorted lists)."""
        await self._write(_entity(symbol, strategy_name), "levels", partial_to_json(data))


PersistSignalAdapter: Final = PersistSignalUtils()
PersistScheduleAdapter: Final = PersistScheduleUtils()
PersistRiskAdapter: Final = PersistRiskUtils()
PersistPartialAdapter: Final = PersistPartialUtils()

__all__ = [
    "KINDS",
    "PersistBase",
    "PersistFactory",
    "PersistKind",
    "PersistPartialAdapter",
    "PersistPartialUtils",
    "PersistRegistry",
    "PersistRiskAdapter",
    "PersistRiskUtils",
    "PersistScheduleAdapter",
    "PersistScheduleUtils",
    "PersistSignalAdapter",
    "PersistSignalUtils",
    "decode_value",
    "default_base_dir",
    "encode_value",
    "escape_name",
    "natural_key",
    "unescape_name",
]
