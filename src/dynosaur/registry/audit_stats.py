"""The arithmetic of an audit: a share with its 95% Wilson score interval, and Cohen's kappa.

Wilson, not the normal approximation: at the sizes audits have (tens to hundreds of items, shares near
80-100%) the normal interval runs past 100% and is too narrow; Wilson's stays in [0, 1] and keeps its
coverage (Brown, Cai & DasGupta 2001).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

from pydantic import BaseModel

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


class Share(BaseModel):
    """`yes` of `n`, as a share with its 95% Wilson interval (all None when n is 0)."""

    yes: int
    n: int
    share: float | None = None
    low: float | None = None
    high: float | None = None


def wilson(yes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `yes` successes in `n` trials (n ≥ 1)."""
    if n < 1 or not 0 <= yes <= n:
        raise ValueError(f"wilson: {yes} of {n} is not a count")
    p = yes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share(yes: int, n: int) -> Share:
    if n == 0:
        return Share(yes=0, n=0)
    low, high = wilson(yes, n)
    return Share(yes=yes, n=n, share=yes / n, low=low, high=high)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: (observed − chance agreement) / (1 − chance).
    None when there are no items, or when chance agreement is already total (both gave one same label
    throughout: kappa is undefined, not 1)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(left[k] * right[k] for k in left) / (n * n)
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def percent(x: float) -> str:
    """0.816 → "82%" (rounded half away from zero, as people read it)."""
    return f"{math.floor(x * 100 + 0.5)}%"
