"""What every meter is: cumulative joules of one component since start()."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from carbonlog.errors import CarbonlogError
from carbonlog.meters.uncertainty import model_band_j

COMPONENTS = ("gpu", "cpu", "ram")
METHODS = ("counter", "sampled", "model")
"""How a meter knows its energy: a hardware energy counter, integrated power samples, or a
power model (TDP, W/GiB, a forced constant)."""


class MeterError(CarbonlogError, RuntimeError):
    """A meter could not read its hardware; the tracker degrades to the meter's fallback."""


@runtime_checkable
class Meter(Protocol):
    """Energy of one component ("gpu", "cpu" or "ram"), in joules, since start().

    `energy_j()` is cumulative and never decreases; the tracker takes differences at
    interval edges. `estimated` is True when the figure comes from a model or sampled power
    rather than a hardware energy counter; `method` is one of METHODS. `band_j(energy_j,
    window_s)` is the half-width of the uncertainty band of `energy_j` joules this meter
    measured over `window_s` seconds, grounded in published measurements of its method.
    `fallback()` returns the estimate meter that takes over when this one fails mid-run (a
    hardware fault); it starts at zero.
    """

    component: str
    estimated: bool
    method: str

    def band_j(self, energy_j: float, window_s: float) -> float: ...

    def start(self) -> None: ...

    def energy_j(self) -> float: ...

    def devices(self) -> list[dict]: ...

    def fallback(self) -> Meter: ...

    def close(self) -> None: ...


class ConstantPowerMeter:
    """A component forced to a constant wattage: energy = power_w x elapsed seconds.

    A model (the user's figure, or a failed meter's mean power so far): its band is a model's.
    """

    estimated = True
    method = "model"

    def __init__(self, component: str, power_w: float, description: str = "constant power"):
        self.component = component
        self.power_w = float(power_w)
        self._description = description
        self._t0_s: float | None = None

    def start(self) -> None:
        self._t0_s = time.monotonic()

    def energy_j(self) -> float:
        if self._t0_s is None:
            return 0.0
        return self.power_w * (time.monotonic() - self._t0_s)

    def band_j(self, energy_j: float, window_s: float) -> float:
        return model_band_j(energy_j)

    def devices(self) -> list[dict]:
        return [{"name": self._description, "power_w": self.power_w}]

    def fallback(self) -> ConstantPowerMeter:
        return ConstantPowerMeter(self.component, self.power_w, self._description)

    def close(self) -> None:
        pass
