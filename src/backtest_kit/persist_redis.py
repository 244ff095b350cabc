"""A Redis persistence backend for live runs (40 §8), on redis-py's asyncio client.

Owns the mapping of the persistence protocol onto Redis: one hash `bk:<kind>:<entity_name>`
per entity, field = id, value = the same compact UTF-8 JSON as the file backend; corrupt values
are quarantined into `bk:<kind>:<entity_name>:quarantine`. It does not configure the server
and is not imported by `backtest_kit` (redis-py is the optional extra `redis`).

The server must be configured for the crash-safety contract (40 §7) to hold:

* durability (R2): `appendonly yes` and `appendfsync always`. With `appendfsync everysec` (the
  Redis default once AOF is on) a server or machine crash may lose the last second of writes,
  e.g. a close already reported; without AOF (RDB snapshots only) it may lose minutes.
* no eviction (R4): `maxmemory-policy noeviction` (or no `maxmemory`); never set a TTL on the
  `bk:*` keys. An evicted key is a silently lost position.
* one primary, no replica reads (R3), and one writing process per key space (R8): give each
  bot its own database number or key space.

    import redis.asyncio as redis
    from backtest_kit.persist_redis import use_redis_persist

    use_redis_persist(redis.Redis(host="127.0.0.1", port=6379))
"""

from __future__ import annotations

from typing import Any

from .errors import BacktestKitError, PersistError
from .persist import (
    KINDS,
    PersistFactory,
    PersistKind,
    PersistPartialAdapter,
    PersistRiskAdapter,
    PersistScheduleAdapter,
    PersistSignalAdapter,
    _now_ms,
    decode_value,
    encode_value,
    natural_key,
)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failing server or connection raises (all reported as PersistError)."""
    try:
        import redis
    except ImportError:
        raise BacktestKitError(
            "the Redis persistence backend needs redis-py: pip install 'backtest-kit[redis]'"
        ) from None
    return (redis.RedisError, OSError, TimeoutError)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisPersist:
    """The persistence protocol on one Redis hash (40 §8).

    `client` is a `redis.asyncio.Redis` (any `decode_responses` setting); `kind` is
    `"signal"`, `"schedule"`, `"risk"` or `"partial"`. Plug it in with a factory that closes
    over the client::

        bk.PersistSignalAdapter.use_persist_signal_adapter(
            lambda name, base_dir: RedisPersist(client, "signal", name)
        )

    or all four kinds at once with `use_redis_persist(client)`. Commands: `PING` (first
    `wait_for_init`), `HEXISTS`, `HGET`, `HSET`, `HDEL`, `HKEYS`; `quarantine_value` moves a
    value in one `MULTI`/`EXEC`.
    """

    def __init__(self, client: Any, kind: str, entity_name: str) -> None:
        self._errors = _redis_errors()
        self.client = client
        self.kind = kind
        self.entity_name = entity_name
        self.key = f"bk:{kind}:{entity_name}"
        self.quarantine_key = f"{self.key}:quarantine"
        self._ready = False

    def location(self, entity_id: str) -> str:
        """Where `entity_id` is stored, for error messages."""
        return f"redis hash {self.key} field {entity_id}"

    def _error(self, message: str, entity_id: str | None) -> PersistError:
        return PersistError(
            message,
            kind=self.kind,
            entity_name=self.entity_name,
            entity_id=entity_id,
            location=self.location(entity_id) if entity_id is not None else f"redis {self.key}",
        )

    async def _call(self, what: str, entity_id: str | None, awaitable: Any) -> Any:
        try:
            return await awaitable
        except self._errors as exc:
            raise self._error(
                f"redis {what} on {self.key} failed: {type(exc).__name__}: {exc}", entity_id
            ) from exc

    async def wait_for_init(self, initial: bool) -> None:
        """`PING` until it first succeeds (a failure is not remembered)."""
        if self._ready:
            return
        await self._call("PING", None, self.client.ping())
        self._ready = True

    async def has_value(self, entity_id: str) -> bool:
        """`HEXISTS`: a stored `null` counts as a value."""
        return bool(
            await self._call("HEXISTS", entity_id, self.client.hexists(self.key, entity_id))
        )

    async def read_value(self, entity_id: str) -> Any:
        """`HGET` and decode; `PersistError` if absent or undecodable."""
        raw = await self._call("HGET", entity_id, self.client.hget(self.key, entity_id))
        if raw is None:
            raise self._error(f"entity `{self.entity_name}:{entity_id}` not found", entity_id)
        try:
            return decode_value(raw)
        except ValueError as exc:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` at {self.location(entity_id)} cannot "
                f"be decoded: {type(exc).__name__}: {exc}",
                entity_id,
            ) from exc

    async def write_value(self, entity_id: str, value: Any) -> None:
        """`HSET`: atomic per field; durable as the server's AOF settings make it."""
        data = encode_value(value)
        await self._call("HSET", entity_id, self.client.hset(self.key, entity_id, data))

    async def remove_value(self, entity_id: str) -> None:
        """`HDEL`; `PersistError` "not found for deletion" if nothing was deleted."""
        removed = await self._call("HDEL", entity_id, self.client.hdel(self.key, entity_id))
        if not removed:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` not found for deletion", entity_id
            )

    async def keys(self) -> list[str]:
        """`HKEYS` in natural order (quarantined values live in another hash)."""
        fields = await self._call("HKEYS", None, self.client.hkeys(self.key))
        return sorted((_text(field) for field in fields), key=natural_key)

    async def quarantine_value(self, entity_id: str) -> str:
        """Move the value to field `<id>.corrupt-<epoch ms>` (`-<n>` if taken) of the
        quarantine hash in one transaction; returns its location."""
        raw = await self._call("HGET", entity_id, self.client.hget(self.key, entity_id))
        if raw is None:
            raise self._error(
                f"entity `{self.entity_name}:{entity_id}` not found for quarantine", entity_id
            )
        base = f"{entity_id}.corrupt-{_now_ms()}"
        field, suffix = base, 0
        while await self._call(
            "HEXISTS", entity_id, self.client.hexists(self.quarantine_key, field)
        ):
            suffix += 1
            field = f"{base}-{suffix}"

        async def move() -> Any:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self.quarantine_key, field, raw)
                pipe.hdel(self.key, entity_id)
                return await pipe.execute()

        await self._call("MULTI/EXEC", entity_id, move())
        return f"redis hash {self.quarantine_key} field {field}"


def redis_factory(client: Any, kind: PersistKind) -> PersistFactory:
    """A `use_persist_*_adapter` factory storing `kind` in Redis through `client`."""
    _redis_errors()

    def factory(entity_name: str, base_dir: Any) -> RedisPersist:
        return RedisPersist(client, kind, entity_name)

    return factory


def use_redis_persist(client: Any) -> None:
    """Store all four kinds of live state in Redis through `client` (a
    `redis.asyncio.Redis`); `bk.reset()` goes back to files."""
    factories = {kind: redis_factory(client, kind) for kind in KINDS}
    PersistSignalAdapter.use_persist_signal_adapter(factories["signal"])
    PersistScheduleAdapter.use_persist_schedule_adapter(factories["schedule"])
    PersistRiskAdapter.use_persist_risk_adapter(factories["risk"])
    PersistPartialAdapter.use_persist_partial_adapter(factories["partial"])


__all__ = ["RedisPersist", "redis_factory", "use_redis_persist"]
