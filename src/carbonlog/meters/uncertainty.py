"""How far a meter's joules can be from the truth: the half-width of each method's band.

Each band is a pure function of the energy measured, the window's length and the meter's own
facts (its update period, its method), so that it costs nothing at a mark. Every figure
below carries its source and year; docs/accuracy.md explains the bands in prose.
"""

from __future__ import annotations

import math

NVML_UPDATE_S = 0.1
"""NVML's energy counter, power usage and instant power all change every 100 ms (H100 and
H200, driver 580.159.04; ../shared/measurements/nvml-hopper.md, measured 2026-11-27)."""
RAPL_UPDATE_S = 0.001
"""RAPL's time unit, 976 us by default (Intel SDM, MSR_RAPL_POWER_UNIT), the update granularity
studied by Haehnel et al., "Measuring energy consumption for short code paths using RAPL",
SIGMETRICS Perform. Eval. Rev. 40(3), doi:10.1145/2425248.2425252 (2012)."""
SAMPLED_COVERAGE = 0.25
"""On A100 and H100 only 25 % of the runtime is sampled for power: Yang, Adamek & Armour,
"Part-time power measurements: nvidia-smi's lack of attention", SC24, arXiv:2312.02741 (2024)."""
SAMPLED_SWING = (690.0 - 120.0) / 690.0
"""How far the unseen power may be from a reading: a GPU's busy-to-idle swing, 690 W busy and
120 W idle on an H200 (nvml-hopper.md, 2026)."""
MODEL_FRACTION = 0.40
"""Static and dynamic (TDP-based) estimators, CodeCarbon's and the ML Emissions Calculator's,
err by up to 40 % against an external power meter over hundreds of AI experiments: Fischer,
"Ground-truthing AI energy consumption: validating CodeCarbon against external
measurements", arXiv:2509.22092 (2025)."""
SHORT_WINDOW_FRACTION = 0.1
"""A counter's or sampler's band above this share of its energy gets one warning: the
interval is only a few updates long (under 1 s at NVML's 100 ms)."""


def counter_band_j(energy_j: float, window_s: float, update_s: float) -> float:
    """One update of error: each edge reads the counter as of its last update, up to one update
    late, so the reading is off by at most the true mean power P x update_s. Since the reading
    E is at least P x (window_s - update_s), that is E x update_s / (window_s - update_s), and
    the whole reading (100 %) for windows of two updates or less."""
    if window_s <= 0:
        return 0.0
    return abs(energy_j) * update_s / max(window_s - update_s, update_s)


def sampled_band_j(
    energy_j: float,
    window_s: float,
    update_s: float,
    coverage: float = SAMPLED_COVERAGE,
    swing: float = SAMPLED_SWING,
) -> float:
    """Integrated power samples: one update of error at the edges, plus what the sensor does not
    see. Each update's reading covers `coverage` of it; the rest may differ by up to `swing` of
    the reading, and the window's window_s / update_s updates add in quadrature."""
    if window_s <= 0:
        return 0.0
    updates = max(window_s / update_s, 1.0)
    unseen = (1.0 - coverage) * swing / math.sqrt(updates)
    return counter_band_j(energy_j, window_s, update_s) + abs(energy_j) * unseen


def model_band_j(energy_j: float, fraction: float = MODEL_FRACTION) -> float:
    """A power model (TDP x load, W per GiB, a constant): `fraction` of the energy, whatever the
    window, since a model's error is in its watts, not in its timing."""
    return abs(energy_j) * fraction


def short_window_note(component: str, method: str, band_j: float, energy_j: float) -> str | None:
    """The one warning for intervals too short for the meter's updates, else None."""
    if method == "model" or energy_j <= 0 or band_j <= SHORT_WINDOW_FRACTION * energy_j:
        return None
    return (
        f"carbonlog: intervals are too short for the {component} meter ({method}): "
        f"its readings move in steps, so this interval's {component} energy is uncertain "
        f"by +-{100 * band_j / energy_j:.0f} %; mark less often (epochs of a few seconds) "
        "for figures within a few percent"
    )
