"""What the framework benchmarks share: hook timing and quartiles of repeated runs."""

from __future__ import annotations

import functools
import statistics
import time


def time_methods(target, names) -> list[float]:
    """Wrap these methods on the instance; the returned list collects the seconds they take."""
    spent: list[float] = []
    for name in names:
        method = getattr(target, name)

        @functools.wraps(method)
        def wrapper(*args, _method=method, **kwargs):
            t0 = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - t0)

        setattr(target, name, wrapper)
    return spent


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); their spread is a benchmark's resolution."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3
