"""The exception hierarchy: every error the framework raises derives from `BacktestKitError`.

Messages name the offending field, the value and the rule, so a user can fix the input
without reading the source.
"""

from __future__ import annotations

from typing import Any


class BacktestKitError(Exception):
    """Root of every error raised by backtest-kit."""


class ValidationError(BacktestKitError):
    """A schema, argument or signal broke a rule.

    For a rejected signal, `errors` lists every failing rule (in rule order) and `signal` is
    the row or raw value that was rejected.
    """

    def __init__(self, message: str, *, errors: tuple[str, ...] = (), signal: Any = None) -> None:
        super().__init__(message)
        self.errors = errors
        self.signal = signal


class ConfigError(BacktestKitError):
    """`set_config` was given an unknown key or a value that breaks a rule."""


class RegistryError(BacktestKitError):
    """A schema name is unknown, or already registered."""


class ExchangeError(BacktestKitError):
    """The exchange's data source failed or returned candles that break a rule."""


class PersistError(BacktestKitError):
    """Persisted state could not be read or written.

    For a stored value that cannot be decoded or fails its shape check (40 §3.3), `kind`
    ("signal", "schedule", "risk", "partial"), `entity_name`, `entity_id` and `location` (an
    absolute path for the file backend) say which value, and the message repeats them.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        entity_name: str | None = None,
        entity_id: str | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.entity_name = entity_name
        self.entity_id = entity_id
        self.location = location
