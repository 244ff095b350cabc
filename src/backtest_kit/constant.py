"""`bk.Constant`: suggested partial-exit thresholds (60 §9.6). Nothing in the engine reads
them; compare them with `event.level` in a partial profit/loss listener."""

from __future__ import annotations

from typing import Final


class Constant:
    """Milestone levels in percent of the distance to take profit (TP_*) or stop loss (SL_*)."""

    TP_LEVEL1: Final = 30
    TP_LEVEL2: Final = 60
    TP_LEVEL3: Final = 90
    SL_LEVEL1: Final = 40
    SL_LEVEL2: Final = 80
