"""An interval's embodied emissions and water, from the footprint tables (carbonlog.embodied,
carbonlog.water): the hardware's manufacturing emissions amortised over the interval's
device-hours, and the water drawn on site and by the grid for its energy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from carbonlog.intensity import Grid

SECONDS_PER_HOUR = 3600.0


def embodied_kg_per_s(hardware: Mapping[str, list[dict]]) -> float | None:
    """This process's devices' embodied emissions per second of the run, amortised as
    carbonlog.embodied.amortised_kg does; devices without a row are left out, None when none
    has one (a CPU alone, most often)."""
    from carbonlog.embodied import amortised_kg

    rates = [
        amortised_kg(str(device.get("name") or ""), 1.0)
        for devices in hardware.values()
        for device in devices
    ]
    known = [rate for rate in rates if rate is not None]
    return sum(known) / SECONDS_PER_HOUR if known else None


class WaterRate(NamedTuple):
    """Litres per kWh at a site (carbonlog.water, asked once per run): on site, per kWh of IT
    energy, and at the power plants, per kWh of facility energy; None where unpublished."""

    onsite_l_per_kwh: float | None
    plants_l_per_kwh: float | None

    @classmethod
    def of(cls, grid: Grid) -> WaterRate:
        from carbonlog.water import footprint

        per_kwh = footprint(1.0, 1.0, grid)
        return cls(per_kwh.onsite_l, per_kwh.offsite_l)

    def water_l(self, it_kwh: float, facility_kwh: float) -> float | None:
        """Litres for `it_kwh` at the devices and `facility_kwh` at the facility: the known
        parts summed, None when neither is known (as carbonlog.water.water_l)."""
        onsite, plants = self.onsite_l_per_kwh, self.plants_l_per_kwh
        if onsite is None and plants is None:
            return None
        return (onsite or 0.0) * it_kwh + (plants or 0.0) * facility_kwh
