"""The records a tracker produces: one Interval per mark(), one Summary per run, and the sums
that make a run's figures of its intervals' (the error band, the work done, embodied and water)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from carbonlog import units

INDEPENDENT = frozenset({"counter", "sampled"})
"""Methods whose band is independent from one interval to the next: a counter's (one update at
each edge) and integrated samples' (that, and the power the sensor did not see, random per
update). A model's band is its bias, the same error in every interval; so is a mixed
interval's, to be safe. docs/metrics.md, "The error band", says why."""
MIXED = "+"
"""Joins the methods of a component measured two ways (a fallback mid-interval): `counter+model`."""


def quadrature(values: Iterable[float]) -> float:
    """The band of a sum of independent errors: the root of the sum of their squares."""
    return math.sqrt(sum(v * v for v in values))


def dominant(band_j: Mapping[str, float], methods: Mapping[str, str]) -> tuple[str, str, float]:
    """(component, its method, its share of the squared band) of the component whose band is
    the largest: what to measure better first. ("", "", 0.0) when there is no band."""
    variance = sum(b * b for b in band_j.values())
    if variance <= 0:
        return "", "", 0.0
    component = max(band_j, key=lambda c: band_j[c])
    return component, methods.get(component, ""), band_j[component] ** 2 / variance


def _added(total: float | None, value: float | None) -> float | None:
    """A sum of figures each known or not (None): None only when none is known."""
    if value is None:
        return total
    return value if total is None else total + value


class PerWork:
    """Facility energy per unit of work, for a record (an Interval, a Summary) with
    `energy_kwh`, `samples` and `tokens`: None where the framework counted none."""

    @property
    def energy_per_sample_j(self) -> float | None:
        return per_unit_j(self.energy_kwh, self.samples)

    @property
    def energy_per_token_j(self) -> float | None:
        """Per input token."""
        return per_unit_j(self.energy_kwh, self.tokens)


@dataclass(frozen=True)
class Interval(PerWork):
    """Energy and CO2 between two marks.

    Component energies (`gpu_j`, `cpu_j`, `ram_j`, joules) are measured at the device and,
    in distributed runs, summed over all processes. Facility energy is their sum x `pue`;
    CO2 is facility energy x `intensity_g_per_kwh`. The `*_total` fields are the run's
    running totals including this interval (and any resumed earlier part of the run).
    `band_j` is each component's uncertainty half-width (J) and `methods` how it was measured
    (counter, sampled, model); `samples` and `tokens` are the work done in the interval where the
    framework counts it; `embodied_kg` and `water_l` are the interval's share of the hardware's
    manufacturing emissions and the water drawn for its energy, where tables have figures.
    """

    label: str
    index: int
    started_at_s: float
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    pue: float
    intensity_g_per_kwh: float
    intensity_source: str
    energy_kwh_total: float
    co2_kg_total: float
    estimated: tuple[str, ...] = ()
    forecast_energy_kwh: float | None = None
    forecast_co2_kg: float | None = None
    band_j: Mapping[str, float] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None

    @property
    def device_j(self) -> float:
        """Energy measured at the devices, before PUE."""
        return self.gpu_j + self.cpu_j + self.ram_j

    @property
    def energy_kwh(self) -> float:
        """Facility energy: device energy x PUE."""
        return units.facility_kwh(self.device_j, self.pue)

    @property
    def co2_kg(self) -> float:
        return units.co2_kg(self.energy_kwh, self.intensity_g_per_kwh)

    @property
    def power_w(self) -> float:
        """Mean device power over the interval."""
        return self.device_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def energy_band_kwh(self) -> float:
        """Half-width of the facility energy's band: the components' bands (independent
        meters) in quadrature, x PUE."""
        return units.facility_kwh(quadrature(self.band_j.values()), self.pue)

    @property
    def co2_band_kg(self) -> float:
        """Half-width of the CO2's band: the energy's, at the interval's intensity."""
        return units.co2_kg(self.energy_band_kwh, self.intensity_g_per_kwh)


def per_unit_j(energy_kwh: float, count: float | None) -> float | None:
    """Joules of `energy_kwh` per unit of work; None when the count is unknown or zero."""
    return energy_kwh * units.J_PER_KWH / count if count else None


@dataclass
class RunSums:
    """A run's band, methods, work, embodied emissions and water, summed interval by interval.

    A component's band over the run: its counter and sampled intervals' bands in quadrature,
    its model (and mixed) intervals' added up, the two parts together in quadrature
    (docs/metrics.md, "The error band"). Work, embodied and water are sums of what is known.
    """

    linear_j: dict[str, float] = field(default_factory=dict)
    squares_j2: dict[str, float] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None

    def add(self, interval) -> None:
        """Count one closed interval (an Interval, or a ledger's stored one)."""
        methods, squares, linear, seen = interval.methods, self.squares_j2, self.linear_j, self.seen
        for component, band in interval.band_j.items():
            method = methods.get(component, "")
            if method in INDEPENDENT:
                squares[component] = squares.get(component, 0.0) + band * band
            else:
                linear[component] = linear.get(component, 0.0) + band
            so_far = seen.get(component)
            if so_far != method:  # the methods so far, then this interval's new ones
                known = so_far.split(MIXED) if so_far else []
                known += [m for m in method.split(MIXED) if m and m not in known]
                seen[component] = MIXED.join(known)
        if interval.samples is not None or interval.tokens is not None:
            self.samples = _added(self.samples, interval.samples)
            self.tokens = _added(self.tokens, interval.tokens)
        if interval.embodied_kg is not None or interval.water_l is not None:
            self.embodied_kg = _added(self.embodied_kg, interval.embodied_kg)
            self.water_l = _added(self.water_l, interval.water_l)

    @classmethod
    def of(cls, intervals: Iterable) -> RunSums:
        """The sums of a run's intervals (a ledger run's stored ones)."""
        sums = cls()
        for interval in intervals:
            sums.add(interval)
        return sums

    @property
    def band_j(self) -> dict[str, float]:
        """Each component's band over the run, J."""
        components = dict.fromkeys([*self.linear_j, *self.squares_j2])
        return {
            c: math.sqrt(self.linear_j.get(c, 0.0) ** 2 + self.squares_j2.get(c, 0.0))
            for c in components
        }

    @property
    def methods(self) -> dict[str, str]:
        """How each component was measured over the run: `counter`, or `counter+model`."""
        return dict(self.seen)

    def state(self) -> dict:
        """What a resumed run carries on (plain JSON)."""
        return {
            "linear_j": dict(self.linear_j),
            "squares_j2": dict(self.squares_j2),
            "seen": dict(self.seen),
            "samples": self.samples,
            "tokens": self.tokens,
            "embodied_kg": self.embodied_kg,
            "water_l": self.water_l,
        }

    @classmethod
    def from_state(cls, state: Mapping) -> RunSums:
        """The sums `state()` wrote; a ValueError (or TypeError) for what it did not write."""
        known = {key: state.get(key) for key in ("samples", "tokens", "embodied_kg", "water_l")}
        return cls(
            linear_j={str(c): float(v) for c, v in state["linear_j"].items()},
            squares_j2={str(c): float(v) for c, v in state["squares_j2"].items()},
            seen={str(c): str(m) for c, m in state["seen"].items()},
            **{k: None if v is None else float(v) for k, v in known.items()},
        )


@dataclass
class Summary(PerWork):
    """A whole run: totals, every interval, and what was measured where.

    `band_j` and `methods` are the run's band and methods per component (RunSums); `samples`,
    `tokens`, `embodied_kg` and `water_l` its work, embodied emissions and water, None where
    unknown. `embodied_kg` is next to, never inside, the operational `co2_kg`.
    """

    run_name: str | None
    status: str
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    energy_kwh: float
    co2_kg: float
    intervals: list[Interval] = field(default_factory=list)
    hardware: dict = field(default_factory=dict)
    site: dict = field(default_factory=dict)
    run_id: int | None = None
    stop_reason: str | None = None
    band_j: dict[str, float] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None

    @property
    def device_j(self) -> float:
        return self.gpu_j + self.cpu_j + self.ram_j

    @property
    def band(self) -> RunBand:
        """The run's energy and CO2 bands and what dominates them."""
        return RunBand.of(self.band_j, self.methods, self.energy_kwh, self.co2_kg, self.site)


@dataclass(frozen=True)
class RunBand:
    """A run's band: half-widths of its facility energy (kWh) and CO2 (kg), and the component
    whose band dominates, its method and its share of the squared band (see `dominant`)."""

    energy_kwh: float
    co2_kg: float
    component: str
    method: str
    share: float

    @classmethod
    def of(
        cls,
        band_j: Mapping[str, float],
        methods: Mapping[str, str],
        energy_kwh: float,
        co2_kg: float,
        site: Mapping,
    ) -> RunBand:
        """The band of a run of `energy_kwh` and `co2_kg` whose components' bands are `band_j`:
        in quadrature (independent meters), x the site's PUE; CO2's at the run's mean intensity
        (its CO2 over its energy, else the site's); the intensity's own uncertainty is not in it."""
        band_kwh = units.facility_kwh(quadrature(band_j.values()), site.get("pue") or 1.0)
        if energy_kwh > 0:
            g_per_kwh = co2_kg * units.G_PER_KG / energy_kwh
        else:
            g_per_kwh = site.get("g_per_kwh") or 0.0
        return cls(band_kwh, units.co2_kg(band_kwh, g_per_kwh), *dominant(band_j, methods))
