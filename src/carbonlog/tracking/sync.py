"""Between the tracker and the processes around it: waiting for the device, and the one sum.

Neither imports a framework: the device wait is a callable (frameworks.sync_loaded_frameworks
by default), the sum the `reduce` callable the adapter passes (its framework's all-reduce).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from carbonlog._log import warn_once
from carbonlog.distributed import ReduceFn
from carbonlog.interval import MIXED
from carbonlog.meters.base import COMPONENTS, METHODS
from carbonlog.tracking.joules import Joules

if TYPE_CHECKING:
    from carbonlog.tracking.edges import Window

SyncFn = Callable[[], None]


def wait_for_devices(sync: SyncFn | None) -> None:
    """Run `sync`; a failure costs the edge's precision, never the training (said once)."""
    if sync is None:
        return
    try:
        sync()
    except Exception as exc:
        warn_once(
            "sync",
            f"carbonlog: waiting for the device failed ({exc}); "
            "epoch edges may be off by the queued work",
            own=True,
        )


def sum_floats(reduce: ReduceFn, values: Sequence[float]) -> list[float] | None:
    """`values` summed over all processes by `reduce`; None when the sum fails (said once)."""
    try:
        return [float(v) for v in reduce(values)]
    except Exception as exc:
        warn_once(
            "reduce",
            f"carbonlog: summing over processes failed ({exc}); "
            "this process logs its own energy only",
            own=True,
        )
        return None


def sum_over_ranks(reduce: ReduceFn | None, *parts: Joules) -> tuple[Joules, ...]:
    """Every part summed over all processes in one call of `reduce`.

    On failure each process keeps its own figures (said once), so training goes on.
    """
    if reduce is None:  # a single process: its figures are the sum
        return parts
    local = [value for part in parts for value in part.vector()]
    summed = sum_floats(reduce, local) or local
    width = len(Joules._fields)
    return tuple(Joules.from_vector(summed[i * width : (i + 1) * width]) for i in range(len(parts)))


class Contribution(NamedTuple):
    """What one process brings to an interval's sum: its window (joules, bands, methods, which
    components it estimated), the intensity if it owns the site (global rank zero; 0
    elsewhere), which components it measured, or was asked to and could not, and its work
    (samples, tokens) and embodied emissions, None where it does not know them."""

    window: Window
    g_per_kwh: float
    measuring: frozenset[str]
    unmeasured: frozenset[str]
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None


class Shared(NamedTuple):
    """An interval as every rank holds it after the one sum: the window of summed joules and
    bands, flagged estimated where any rank estimated or missed a component, the methods any
    rank used, the intensity, and the work and embodied emissions (None where a rank did not
    know them)."""

    window: Window
    g_per_kwh: float
    measured_by: dict[str, int]
    unmeasured_by: dict[str, int]
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None

    @property
    def joules(self) -> Joules:
        return self.window.joules


def _flags(components: frozenset[str]) -> list[float]:
    return [1.0 if c in components else 0.0 for c in COMPONENTS]


def _counted(values: Sequence[float]) -> dict[str, int]:
    return {c: round(v) for c, v in zip(COMPONENTS, values, strict=True)}


def _method_flags(methods: Mapping[str, str]) -> list[float]:
    """Per component, per method (METHODS order): 1 where this process used it."""
    used = {c: set(m.split(MIXED)) for c, m in methods.items()}
    return [1.0 if m in used.get(c, ()) else 0.0 for c in COMPONENTS for m in METHODS]


def _methods(flags: Sequence[float]) -> dict[str, str]:
    """The methods any process used, per component, from the summed `_method_flags`."""
    n = len(METHODS)
    found = {
        c: MIXED.join(m for m, on in zip(METHODS, flags[i * n : (i + 1) * n], strict=True) if on)
        for i, c in enumerate(COMPONENTS)
    }
    return {c: m for c, m in found.items() if m}


def _known(value: float | None) -> float:
    """An unknown figure as NaN, which any sum keeps unknown."""
    return math.nan if value is None else float(value)


def _unless_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def share_interval(reduce: ReduceFn | None, mine: Contribution) -> Shared | None:
    """The interval summed over all processes in one float64 vector: joules, rank zero's
    intensity, per component how many ranks estimated, measured, or missed it, the bands and
    the methods used, then samples, tokens and embodied kg (NaN where unknown, so a sum with
    a process that does not know them stays unknown).

    None when the sum fails (said once): each process then keeps its own figures.
    """
    window = mine.window
    if reduce is None:  # one process: its own figures are the sum
        return Shared(
            window._replace(estimated=window.estimated | mine.unmeasured),
            mine.g_per_kwh,
            {c: int(c in mine.measuring) for c in COMPONENTS},
            {c: int(c in mine.unmeasured) for c in COMPONENTS},
            mine.samples,
            mine.tokens,
            mine.embodied_kg,
        )
    local = [
        *window.joules,
        mine.g_per_kwh,
        *_flags(window.estimated),
        *_flags(mine.measuring),
        *_flags(mine.unmeasured),
        *(window.band_j.get(c, 0.0) for c in COMPONENTS),
        *_method_flags(window.methods),
        _known(mine.samples),
        _known(mine.tokens),
        _known(mine.embodied_kg),
    ]
    summed = sum_floats(reduce, local)
    if summed is None:
        return None
    w = len(COMPONENTS)  # the layout of `local`: joules, intensity, three flag blocks, ...
    estimated = _counted(summed[w + 1 : 2 * w + 1])
    unmeasured = _counted(summed[3 * w + 1 : 4 * w + 1])
    flagged = frozenset(c for c in COMPONENTS if estimated[c] or unmeasured[c])
    band_at = 4 * w + 1
    methods_at = band_at + w
    samples, tokens, embodied_kg = summed[methods_at + w * len(METHODS) :]
    methods = _methods(summed[methods_at : methods_at + w * len(METHODS)])
    return Shared(
        window._replace(
            joules=Joules.from_vector(summed[:w]),
            estimated=flagged,
            band_j={
                c: b
                for c, b in zip(COMPONENTS, summed[band_at:methods_at], strict=True)
                if c in methods
            },
            methods=methods,
        ),
        summed[w],
        _counted(summed[2 * w + 1 : 3 * w + 1]),
        unmeasured,
        _unless_nan(samples),
        _unless_nan(tokens),
        _unless_nan(embodied_kg),
    )
