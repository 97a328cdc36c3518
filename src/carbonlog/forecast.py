"""What the whole run will cost, from the epochs so far and the planned length."""

from __future__ import annotations


def per_epoch_estimate(values: list[float]) -> float:
    """A robust cost of one more epoch: the median of the epochs after the first.

    The first epoch carries compilation, data-loader warm-up and sanity checks, so it is
    left out as soon as a second epoch exists; the median then ignores single outliers.
    """
    if not values:
        raise ValueError("no epoch to forecast from")
    steady = values[1:] if len(values) > 1 else values
    ordered = sorted(steady)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def forecast_total(values: list[float], remaining: int, done_total: float) -> float:
    """The run's final total: what is done plus `remaining` epochs at the robust per-epoch cost."""
    return done_total + max(remaining, 0) * per_epoch_estimate(values)
