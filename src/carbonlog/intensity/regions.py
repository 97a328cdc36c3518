"""Choosing where to run: the same provider's cloud region with the least CO2 for some energy,
by carbonlog's tables or as the ML CO2 Impact calculator picks it."""

from __future__ import annotations

from carbonlog.intensity.tables import Grid, mlco2_regions, tables
from carbonlog.units import co2_kg


def cleanest_region(
    grid: Grid, device_kwh: float, user_pue: float | None
) -> tuple[Grid | None, float | None]:
    """The same provider's region with the least CO2 for this energy (its own PUE unless set)."""
    if grid.provider is None:
        return None, None

    def kg(region: Grid) -> float:
        pue = user_pue if user_pue is not None else (region.pue or 1.0)
        return co2_kg(device_kwh * pue, region.g_per_kwh)

    regions = [g for g in tables().clouds.values() if g.provider == grid.provider]
    best = min(regions, key=kg)
    return best, kg(best)


def calculator_cleanest(grid: Grid) -> Grid | None:
    """The calculator's cleanest region of `grid`'s provider: the least intensity truncated to
    whole g/kWh, the first in its file of equal ones (js/data.js parseProvidersData)."""
    if grid.provider is None:
        return None
    regions = [g for g in mlco2_regions().values() if g.provider == grid.provider]
    return min(regions, key=lambda region: int(region.g_per_kwh))
