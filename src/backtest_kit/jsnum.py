"""Numbers printed the way the reference (JavaScript) prints them.

Messages and reports quote prices as the TypeScript backtest-kit does, so users porting a
strategy see the same text: `String(x)` and `x.toFixed(digits)`. Pure functions only.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext


def js_string(x: float) -> str:
    """JavaScript ``String(x)``: ``100.0 -> "100"``, ``0.5 -> "0.5"``, ``nan -> "NaN"``.

    Shortest round-trip digits (Python's repr gives the same digits), then JavaScript's own
    choice between positional and exponential notation.
    """
    if x != x:
        return "NaN"
    if x == math.inf:
        return "Infinity"
    if x == -math.inf:
        return "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and -9007199254740992.0 < x < 9007199254740992.0:
        return str(int(x))
    sign = "-" if x < 0 else ""
    tup = Decimal(repr(abs(x))).as_tuple()
    all_digits = "".join(map(str, tup.digits))
    digits = all_digits.rstrip("0")
    exponent = int(tup.exponent) + len(all_digits) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def to_fixed(x: float, digits: int) -> str:
    """JavaScript ``x.toFixed(digits)``: the exact binary value rounded half away from zero.

    ``to_fixed(1234.56789, 8) == "1234.56789000"``, ``to_fixed(-0.0, 2) == "0.00"``,
    ``to_fixed(1.000000005, 8) == "1.00000000"`` (its binary value is just below the tie).
    """
    if not math.isfinite(x) or abs(x) >= 1e21:
        return js_string(x)
    with localcontext() as ctx:
        ctx.prec = 64
        fixed = Decimal(abs(x)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = format(fixed, "f")
    return "-" + text if x < 0 else text  # -0.0 < 0 is false: "0.00", as in JavaScript
