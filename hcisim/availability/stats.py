"""Confidence intervals for Monte Carlo estimates (no scipy: a t quantile expansion and the
Wilson score interval are enough here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def z_quantile(p: float) -> float:
    """Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p}: must be in (0, 1)")
    if p < 0.02425 or p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(min(p, 1 - p)))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        return x if p < 0.5 else -x
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def t_quantile(p: float, dof: int) -> float:
    """Student t quantile by the Cornish-Fisher expansion (good to ~1e-3 for dof >= 5)."""
    z = z_quantile(p)
    v = float(dof)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


@dataclass(frozen=True)
class Estimate:
    """Mean with a two-sided confidence interval, and quantiles of the sample."""

    mean: float
    low: float
    high: float
    p50: float
    p99: float
    n: int

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}mean": self.mean, f"{prefix}ci_low": self.low,
                f"{prefix}ci_high": self.high, f"{prefix}p50": self.p50,
                f"{prefix}p99": self.p99}


def mean_ci(values: np.ndarray, level: float = 0.95, floor: float | None = None) -> Estimate:
    """Mean and its t interval over independent replications (one value each). ``floor``
    clips the interval's low end (a time cannot be negative; the t interval of a skewed,
    mostly-zero sample would say it can)."""
    x = np.asarray(values, float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, nan, nan, 0)
    m = float(x.mean())
    half = 0.0
    if n > 1:
        half = t_quantile(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    low = m - half if floor is None else max(floor, m - half)
    return Estimate(m, low, m + half, float(np.quantile(x, 0.5)),
                    float(np.quantile(x, 0.99)), n)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Proportion k/n with its Wilson score interval (sound at k = 0: the upper bound is
    about 3.8/n, not 0)."""
    if n <= 0:
        nan = float("nan")
        return nan, nan, nan
    z = z_quantile(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)
