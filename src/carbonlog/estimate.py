"""The ML CO2 Impact calculator (Lacoste et al. 2019): hardware x count x hours x region.

Nothing is measured: energy is TDP x count x hours x PUE, CO2 is energy x the region's
intensity. With PUE 1 this is the calculator's formula. The calculator displays its
figures rounded: it truncates the region's intensity to whole g/kWh, rounds it to
0.01 kg/kWh, and rounds kWh and kg to two decimals; carbonlog keeps full precision, so
to reproduce a calculator row pass `intensity=` its rounded kg/kWh x 1000 (e.g. 570 for
566.3 g/kWh) and round the result to two decimals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from carbonlog.hardware import Hardware, lookup
from carbonlog.intensity import Grid, resolve_site

CITATION = "Lacoste et al. 2019"
ARXIV_URL = "https://arxiv.org/abs/1910.09700"
BIBTEX = """@article{lacoste2019quantifying,
  title={Quantifying the Carbon Emissions of Machine Learning},
  author={Lacoste, Alexandre and Luccioni, Alexandra and Schmidt, Victor and Dandres, Thomas},
  journal={arXiv preprint arXiv:1910.09700},
  year={2019}
}"""


@dataclass(frozen=True)
class Comparison:
    """The same work (the same FLOPs at peak) on other hardware, at the same site."""

    hardware: Hardware
    precision: str  # "fp16" or "fp32": the peak FLOPS both rows publish
    device_hours: float  # hours x count it would take
    energy_kwh: float
    co2_kg: float
    factor: float  # co2_kg / the estimate's co2_kg (below 1: this hardware emits less)


@dataclass(frozen=True)
class Estimate:
    """What `estimate()` found: facility energy, CO2, offset share, and alternatives."""

    hardware: Hardware
    tdp_w: float
    count: int
    hours: float
    grid: Grid
    pue: float
    pue_source: str
    energy_kwh: float  # facility energy: device energy x PUE
    co2_kg: float
    offset_ratio: float
    offset_kg: float
    cleanest: Grid | None  # the provider's region that would emit least, for cloud regions
    cleanest_co2_kg: float | None
    cleanest_factor: float | None  # co2_kg / cleanest_co2_kg (inf when that region emits 0)
    comparisons: tuple[Comparison, ...] = ()

    @property
    def device_hours(self) -> float:
        return self.hours * self.count

    def to_dict(self) -> dict:
        """Plain figures for reports and the CLI."""
        return {
            "hardware": self.hardware.name,
            "tdp_w": self.tdp_w,
            "count": self.count,
            "hours": self.hours,
            "location": self.grid.code,
            "location_name": self.grid.name,
            "intensity_g_per_kwh": self.grid.g_per_kwh,
            "intensity_source": self.grid.source,
            "intensity_year": self.grid.year,
            "pue": self.pue,
            "pue_source": self.pue_source,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "offset_ratio": self.offset_ratio,
            "offset_kg": self.offset_kg,
            "cleanest_location": self.cleanest.code if self.cleanest else None,
            "cleanest_co2_kg": self.cleanest_co2_kg,
            "cleanest_factor": self.cleanest_factor,
            "comparisons": [
                {
                    "hardware": c.hardware.name,
                    "precision": c.precision,
                    "device_hours": c.device_hours,
                    "energy_kwh": c.energy_kwh,
                    "co2_kg": c.co2_kg,
                    "factor": c.factor,
                }
                for c in self.comparisons
            ],
        }

    def statement(self, format: str = "markdown") -> str:
        """The paper-style emissions statement of the ML CO2 Impact calculator."""
        if format not in ("markdown", "latex"):
            raise ValueError(f"format must be 'markdown' or 'latex', got {format!r}")
        latex = format == "latex"
        esc = latex_escape if latex else str
        co2eq = "kgCO$_2$eq" if latex else "kgCO₂eq"
        grid = self.grid
        where = where_phrase(
            {
                "provider": grid.provider,
                "location": grid.code,
                "kind": grid.kind,
                "name": grid.name,
            },
            esc,
        )
        pue = f" and a power usage effectiveness of {self.pue:g}" if self.pue != 1.0 else ""
        text = (
            f"Experiments were conducted using {where}, which has a carbon efficiency of "
            f"{format_figure(grid.g_per_kwh / 1000)} {co2eq}/kWh{pue}. A cumulative of "
            f"{format_figure(self.device_hours)} hours of computation was performed on hardware "
            f"of type {esc(self.hardware.name)} (TDP of {self.tdp_w:g}W). Total emissions are "
            "estimated "
            f"to be {format_figure(self.co2_kg)} {co2eq}"
        )
        if grid.provider:
            text += (
                f" of which {format_figure(self.offset_ratio * 100)} percents were directly "
                "offset by the cloud provider"
            )
        tool = "carbonlog's estimate(), following the ML CO2 Impact calculator presented in"
        if latex:
            return (
                text
                + f".\nEstimations were conducted using {tool} \\cite{{lacoste2019quantifying}}."
            )
        return text + f".\nEstimations were conducted using {tool} [{CITATION}]({ARXIV_URL})."


def estimate(
    hardware: str,
    count: int = 1,
    hours: float = 1.0,
    location: str | None = None,
    pue: float | None = None,
    compare_hardware: str | Sequence[str] | None = None,
    *,
    intensity: float | None = None,
    tdp_w: float | None = None,
) -> Estimate:
    """Estimate energy and CO2 of `count` x `hardware` running `hours` at `location`.

    Location, PUE and intensity follow the Tracker's rules (argument, environment, world
    average). `tdp_w` overrides the table's TDP (needed for rows without one, e.g. TPU
    v5). `compare_hardware` names other hardware to price the same work on.
    """
    row = lookup(hardware)
    watts = _tdp(row, tdp_w)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a whole number >= 1, got {count!r}")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ValueError(f"hours must be a finite number > 0, got {hours!r}")
    site = resolve_site(location=location, intensity=intensity, pue=pue)
    grid = site.grid
    device_kwh = watts * count * hours / 1000.0
    energy_kwh = device_kwh * site.pue
    co2_kg = energy_kwh * grid.g_per_kwh / 1000.0
    cleanest, cleanest_kg = cleanest_region(grid, device_kwh, pue)
    factor = None
    if cleanest is not None:
        factor = co2_kg / cleanest_kg if cleanest_kg > 0 else math.inf
    names = [compare_hardware] if isinstance(compare_hardware, str) else compare_hardware or []
    return Estimate(
        hardware=row,
        tdp_w=watts,
        count=count,
        hours=float(hours),
        grid=grid,
        pue=site.pue,
        pue_source=site.pue_source,
        energy_kwh=energy_kwh,
        co2_kg=co2_kg,
        offset_ratio=grid.offset_ratio,
        offset_kg=co2_kg * grid.offset_ratio,
        cleanest=cleanest,
        cleanest_co2_kg=cleanest_kg,
        cleanest_factor=factor,
        comparisons=tuple(
            _compare(row, lookup(n), count * hours, site.pue, grid.g_per_kwh, co2_kg) for n in names
        ),
    )


def _tdp(row: Hardware, tdp_w: float | None) -> float:
    if tdp_w is not None:
        if not (isinstance(tdp_w, (int, float)) and math.isfinite(tdp_w) and tdp_w > 0):
            raise ValueError(f"tdp_w must be a finite number > 0, got {tdp_w!r}")
        return float(tdp_w)
    if row.tdp_w is None:
        raise ValueError(
            f"{row.name} has no published power figure ({row.source}); "
            "pass tdp_w= with the watts per device you assume"
        )
    return row.tdp_w


def cleanest_region(
    grid: Grid, device_kwh: float, user_pue: float | None
) -> tuple[Grid | None, float | None]:
    """The same provider's region with the least CO2 for this energy (its own PUE unless set)."""
    if grid.provider is None:
        return None, None
    from carbonlog.intensity.tables import tables

    def kg(region: Grid) -> float:
        pue = user_pue if user_pue is not None else (region.pue or 1.0)
        return device_kwh * pue * region.g_per_kwh / 1000.0

    regions = [g for g in tables().clouds.values() if g.provider == grid.provider]
    best = min(regions, key=kg)
    return best, kg(best)


def _compare(
    row: Hardware, other: Hardware, device_hours: float, pue: float, g_per_kwh: float, co2_kg: float
) -> Comparison:
    """The same FLOPs on `other`: device-hours scale by the peak-FLOPS ratio."""
    precision = next((p for p in ("fp16", "fp32") if row.tflops(p) and other.tflops(p)), None)
    if precision is None:
        raise ValueError(
            f"cannot compare {row.name} with {other.name}: the table has no peak "
            "FLOPS figure at a precision both publish"
        )
    if other.tdp_w is None:
        raise ValueError(f"cannot compare with {other.name}: it has no published power figure")
    hours = device_hours * row.tflops(precision) / other.tflops(precision)
    energy_kwh = hours * other.tdp_w / 1000.0 * pue
    other_kg = energy_kwh * g_per_kwh / 1000.0
    return Comparison(
        other, precision, hours, energy_kwh, other_kg, other_kg / co2_kg if co2_kg > 0 else math.nan
    )


def where_phrase(site: Mapping, esc: Callable[[str], str] = str) -> str:
    """Where the power was drawn, as the calculator says it; `site` as Site.describe() gives it."""
    provider = site.get("provider")
    code = str(site.get("location") or "")
    if provider and ":" in code:
        from carbonlog.intensity.tables import tables

        name = tables().providers.get(provider, (provider, provider))[1]
        return f"{esc(name)} in region {esc(code.split(':', 1)[1])}"
    if site.get("kind") in ("country", "subdivision") and site.get("name"):
        return f"a private infrastructure in {esc(str(site['name']))}"
    return "a private infrastructure"


def format_figure(value: float) -> str:
    """Two decimals, or two significant digits for small values: 0.0042, 3.99, 1234.5."""
    if value == 0 or abs(value) >= 0.1:
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    return f"{value:.2g}"


def latex_escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}]", lambda m: _LATEX[m.group()], text)


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
}
