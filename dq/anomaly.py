"""Expected ranges for one metric of one day, learnt from earlier days.

Pure arithmetic on a series ``{day: (value, n)}``; :mod:`dq.monitors` measures
the series and decides what an observation outside the range means.

How a range is drawn (the same for every monitor; the *kind* only picks the
scale):

1. **Training window**: the ``training_days`` days before the first day being
   checked (never the checked days themselves). Fewer than
   ``min_training_days`` days with a value: no range, the series is *learning*.
2. **Scale**: counts and positive levels are compared on a log scale (a day
   twice as large is the same surprise at 20 or 2,000 rows); shares on their
   own scale.
3. **Growth**: a trend per day, the median of the slopes between pairs of
   training days on the same weekday (Theil–Sen; weekly patterns cannot bias
   it, and one odd day cannot move it). Training values are projected to the
   checked day along it, so a growing shop is not an anomaly.
4. **Seasonality** (``day_of_week``): the expected value is the median of the
   projected values on the same weekday; without it, of all days.
5. **Spread**: the robust standard deviation (1.4826 × median absolute
   deviation), widened by the uncertainty of the expected value itself (a
   median of m days), of the residuals of *all* training days, pooled across weekdays
   — 7 times more evidence than one weekday alone (Elementary's day-of-week
   buckets see 2 Thursdays in its default 14-day window). Means and shares
   of small days vary more: residuals are scaled by √n, so a Sunday with 20
   orders gets a wider range than a Monday with 200.
6. **Floors**: the spread is never below what chance alone gives (Poisson
   for counts, binomial for shares), and the range is never narrower than
   ``min_change`` either way (relative for counts and levels: 0.5 is ÷1.5 to
   ×1.5; absolute for shares: 0.1 is 10 points): a change too small to matter
   never alarms.
7. **Range**: expected ± ``sensitivity`` spreads, back on the metric's scale.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass

#: Kinds of series, each with its own scale: counts (rows), levels (amounts,
#: ratios), shares (0..1) and clock times (mean hour of day, linear).
COUNT, LEVEL, SHARE, CLOCK = "count", "level", "share", "clock"
#: The narrowest range of a clock time, in hours either way.
CLOCK_HOURS = 1.5
SEASONALITIES = ("day_of_week", "none")
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Tuning:
    """How sensitive a monitor is; declared per source (and per monitor)."""

    seasonality: str = "day_of_week"
    training_days: int = 56
    min_training_days: int = 21
    sensitivity: float = 4.0
    min_change: float = 0.5


@dataclass(frozen=True)
class Band:
    """The expected value and range of one metric on one day."""

    expected: float
    lower: float
    upper: float
    training: int  # days the range was learnt from

    def holds(self, value: float) -> bool:
        return self.lower <= value <= self.upper


def training_window(
    series: dict[dt.date, tuple[float, int]], first_checked: dt.date, tuning: Tuning
) -> dict[dt.date, tuple[float, int]]:
    """The days a range for ``first_checked`` (and later checked days) is learnt from."""
    start = first_checked - dt.timedelta(days=tuning.training_days)
    return {day: point for day, point in series.items() if start <= day < first_checked}


def band(
    training: dict[dt.date, tuple[float, int]],
    day: dt.date,
    n: int,
    kind: str,
    tuning: Tuning,
) -> Band | None:
    """The range ``day``'s value should fall in, or None while learning.

    ``training`` maps earlier days to ``(value, n)``: ``n`` is how many rows the
    value was computed from (for counts, the count itself); ``n`` of ``day`` too.
    """
    points = sorted((d, v, m) for d, (v, m) in training.items() if v is not None and m)
    if len(points) < max(tuning.min_training_days, 3):
        return None
    values = [v for _, v, _ in points]
    to_scale, from_scale, logscale = _scale(kind, values)
    ys = [to_scale(v) for v in values]
    weights = [1.0 if kind == COUNT else math.sqrt(m) for _, _, m in points]
    days = [(d - day).days for d, _, _ in points]  # negative: days before the checked one
    seasonal = tuning.seasonality == "day_of_week"
    slope = _slope(days, ys, seasonal)
    projected = [y - slope * t for y, t in zip(ys, days, strict=True)]
    weekday = day.weekday()
    same = [p for p, (d, _, _) in zip(projected, points, strict=True) if d.weekday() == weekday]
    if seasonal and len(same) >= 2:
        centre = statistics.median(same)
        centres = {
            wd: statistics.median(
                [p for p, (d, _, _) in zip(projected, points, strict=True) if d.weekday() == wd]
                or [centre]
            )
            for wd in range(7)
        }
    else:
        centre = statistics.median(projected)
        centres = dict.fromkeys(range(7), centre)
    residuals = [
        (p - centres[d.weekday()]) * w
        for p, (d, _, _), w in zip(projected, points, weights, strict=True)
    ]
    mid = statistics.median(residuals)
    sigma = _MAD_TO_SIGMA * statistics.median(abs(r - mid) for r in residuals)
    # The expected value is itself a median of m noisy days (variance pi/2 s^2/m).
    m = len(same) if seasonal and len(same) >= 2 else len(points)
    sigma *= math.sqrt(1 + math.pi / (2 * m))
    sigma /= 1.0 if kind == COUNT else math.sqrt(max(n, 1))
    sigma = max(sigma, _chance(kind, from_scale(centre), n))
    half = max(tuning.sensitivity * sigma, _material(kind, logscale, tuning.min_change, centre))
    lower, upper = from_scale(centre - half), from_scale(centre + half)
    if kind == SHARE:
        lower, upper = max(0.0, lower), min(1.0, upper)
    elif kind == COUNT:
        lower = max(0.0, lower)
    return Band(from_scale(centre), lower, upper, len(points))


def _scale(kind: str, values: list[float]):
    """Functions to and from the scale a kind is compared on."""
    if kind == COUNT:
        return math.log1p, math.expm1, True
    if kind == LEVEL and min(values) >= 0:
        # Log of levels (amounts, ratios); an offset keeps zeros finite.
        offset = max(statistics.median(values) * 0.01, 1e-9)
        return (lambda v: math.log(max(v, 0.0) + offset)), (lambda y: math.exp(y) - offset), True
    return (lambda v: v), (lambda y: y), False


def _slope(days: list[int], ys: list[float], seasonal: bool) -> float:
    """Median slope between pairs of days (same weekday when seasonal)."""
    slopes = [
        (ys[j] - ys[i]) / (days[j] - days[i])
        for i in range(len(days))
        for j in range(i + 1, len(days))
        if days[j] != days[i] and (not seasonal or (days[j] - days[i]) % 7 == 0)
    ]
    return statistics.median(slopes) if slopes else 0.0


def _chance(kind: str, centre: float, n: int) -> float:
    """The spread chance alone gives, on the kind's scale."""
    if kind == COUNT:
        return 1.0 / math.sqrt(max(centre, 1.0))  # Poisson, on log scale
    if kind == SHARE:
        p = min(max(centre, 1.0 / max(n, 1)), 1 - 1.0 / max(n, 2))
        return math.sqrt(p * (1 - p) / max(n, 1))
    return 0.0


def _material(kind: str, logscale: bool, min_change: float, centre: float) -> float:
    """Half-width of the narrowest range, on the kind's scale."""
    if kind == SHARE:
        return min_change  # absolute: 0.1 -> 10 points either way
    if kind == CLOCK:
        return CLOCK_HOURS
    if logscale:
        return math.log1p(min_change)
    return min_change * abs(centre)
