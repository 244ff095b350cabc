"""Context-aware helpers for strategy code (50 §10): candles, prices and time at `when`.

They read the execution and method contexts, so user code never passes time around and can
only ever see candles closed at the current instant. No state of their own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from .context import ExecutionContext, MethodContext, execution_context, method_context
from .engine.backtest import exchange_client
from .errors import BacktestKitError
from .intervals import ms_to_datetime
from .model.candles import Candles
from .runtime import current
from .schema import require

_WHERE = (
    "call it from get_signal, a strategy or risk callback, or a listener during a Backtest/Live run"
)


def _execution(name: str) -> ExecutionContext:
    ctx = execution_context.get()
    if ctx is None:
        raise BacktestKitError(f"{name}() needs an execution context: {_WHERE}")
    return ctx


def _method(name: str) -> MethodContext:
    ctx = method_context.get()
    if ctx is None:
        raise BacktestKitError(f"{name}() needs a method context: {_WHERE}")
    return ctx


def _client(name: str, backtest: bool) -> Any:
    method = _method(name)
    schema = require("exchange", method.exchange_name, name)
    return exchange_client(current(), schema, backtest=backtest)


async def get_candles(symbol: str, interval: str, limit: int) -> Candles:
    """The last `limit` candles of `interval` closed at the current time, oldest first.

    A candle opening at ``t`` is returned only once ``t + interval <= now``: the candle still
    forming is never visible, so a strategy cannot look ahead::

        closes = (await bk.get_candles(symbol, "1m", 20)).close
    """
    ctx = _execution("get_candles")
    client = _client("get_candles", ctx.backtest)
    result: Candles = await client.get_candles(symbol, interval, limit, ctx.when)
    return result


async def get_average_price(symbol: str) -> float:
    """VWAP of the last `CC_AVG_PRICE_CANDLES_COUNT` closed 1m candles (the engine's price)."""
    ctx = _execution("get_average_price")
    client = _client("get_average_price", ctx.backtest)
    price: float = await client.vwap(symbol, ctx.when)
    return price


async def format_price(symbol: str, price: float) -> str:
    """The price as the exchange formats it (default: 8 decimals)."""
    client = _client("format_price", _backtest_mode())
    text: str = await client.format_price(symbol, price)
    return text


async def format_quantity(symbol: str, quantity: float) -> str:
    """The quantity as the exchange formats it (default: 8 decimals)."""
    client = _client("format_quantity", _backtest_mode())
    text: str = await client.format_quantity(symbol, quantity)
    return text


def _backtest_mode() -> bool:
    ctx = execution_context.get()
    return True if ctx is None else ctx.backtest


def get_date() -> datetime:
    """The current execution time (aware UTC datetime)."""
    return ms_to_datetime(_execution("get_date").when)


def get_mode() -> Literal["backtest", "live"]:
    """``"backtest"`` or ``"live"``."""
    return "backtest" if _execution("get_mode").backtest else "live"


def has_trade_context() -> bool:
    """True inside a run's tick, where every helper works."""
    return execution_context.get() is not None and method_context.get() is not None


_DUMP_WARN_KB = 20


async def dump_signal(
    signal_id: str,
    messages: Sequence[Mapping[str, Any]],
    signal: Any,
    output_dir: str | os.PathLike[str] = "./dump/strategy",
) -> None:
    """Write the LLM conversation behind a signal as Markdown files (95 §7).

    Folder ``{output_dir}/{signal_id}/``; skipped entirely if it exists already.
    """
    folder = Path(output_dir) / str(signal_id)
    if folder.exists():
        return
    folder.mkdir(parents=True)
    result = signal.to_dict() if hasattr(signal, "to_dict") else signal
    result_block = (
        f"```json\n{json.dumps(result, indent=2, ensure_ascii=False, default=str)}\n```\n"
        if result is not None
        else ""
    )
    system = [m for m in messages if m.get("role") == "system"]
    users = [m for m in messages if m.get("role") == "user"]
    parts = ["# Outline Result Summary\n", f"**ResultId**: {signal_id}\n"]
    if result_block:
        parts.append(result_block)
    for number, message in enumerate(system, 1):
        parts.append(f"## System Message {number}\n\n{message.get('content', '')}\n")
    (folder / "00_system_prompt.md").write_text("\n".join(parts), encoding="utf-8")
    logger = current().logger
    for number, message in enumerate(users, 1):
        content = str(message.get("content", ""))
        if len(content.encode("utf-8")) > _DUMP_WARN_KB * 1024:
            logger.warn(
                "dump_signal: user message is large",
                {"signal_id": signal_id, "message": number, "kb": len(content) // 1024},
            )
        text = f"# User Input {number}\n\n**ResultId**: {signal_id}\n\n{content}\n"
        (folder / f"{number:02d}_user_message.md").write_text(text, encoding="utf-8")
    final = f"# Full Outline Result\n\n**ResultId**: {signal_id}\n\n{result_block}"
    (folder / f"{len(users) + 1:02d}_llm_output.md").write_text(final, encoding="utf-8")
