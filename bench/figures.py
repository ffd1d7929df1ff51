"""How the benches turn samples into figures and figures into verdicts."""

from __future__ import annotations

import math


def percentile_ms(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (seconds), in milliseconds; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000


def verdict(passed: bool) -> str:
    """``PASS`` or ``FAIL``, as each target line ends."""
    return "PASS" if passed else "FAIL"
