"""Plain text for the terminal: figures, an interval's and a run's lines, tables and pairs.

Everything carbonlog prints goes through here, so a figure reads the same in a log line, a
table, the CLI and the HTML page: `format_energy` for energy, `format_co2` for masses (each in
the SI unit a person reads: 63.1 mWh, 2.8 mg, never 6.31e-05 kWh), `Units` for the one unit of
each quantity that a table or a page shares, `table` for columns, `pairs` for facts.
"""

from __future__ import annotations

import math
import shutil
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from carbonlog.interval import per_unit_j
from carbonlog.report.rows import interval_rows
from carbonlog.units import kwh_from_j

if TYPE_CHECKING:
    from carbonlog.interval import Interval, RunBand, Summary

KG_PER_TONNE = 1000.0
SECONDS_PER_HOUR = 3600.0
DIGITS = 3
"""Significant digits of every energy and mass carbonlog shows."""
BAND_DIGITS = 2
"""Significant digits of a band's half-width: it is itself an estimate."""

UNSAFE_CODEPOINTS = (
    *range(0x00, 0x20),  # C0 controls: ESC starts a sequence, CR rewrites the line
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls: 0x9B is a one-byte CSI, 0x9D a one-byte OSC
    0x061C,  # the Arabic letter mark and the bidi marks, embeddings, overrides and isolates
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,  # line and paragraph separators
    0x2029,
)
"""Characters a terminal acts on rather than shows: a run name holding them could clear the
screen, retitle the window, rewrite earlier lines or reorder what is read."""
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in UNSAFE_CODEPOINTS}
_ESCAPES |= {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in UNSAFE_CODEPOINTS if c >= 0x7F}


def terminal_safe(text: str) -> str:
    """`text` with every character of UNSAFE_CODEPOINTS (newlines too) as a visible escape:
    `\\x1b[2J` prints as those six characters and does nothing."""
    return text.translate(_ESCAPES)


def terminal_lines(text: str) -> str:
    """Lines of text made terminal_safe each, the newlines between them kept."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


def json_safe(text: str) -> str:
    """JSON text with the UNSAFE_CODEPOINTS json.dumps leaves raw (DEL, C1, bidi) as `\\u`
    escapes, which read back as the same strings; it escapes C0 controls itself."""
    return text.translate(_JSON_ESCAPES)


def significant(value: float, digits: int = DIGITS) -> str:
    """`value` to `digits` significant digits, never in exponent form, thousands separated:
    0.0000123, 4.5, 123,000; trailing zeros dropped."""
    if not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Unit:
    """A unit a person reads: its symbol, and how many of it make one kWh (for energy) or one
    kg (for mass)."""

    symbol: str
    per_base: float

    def number(self, value: float) -> str:
        """`value` (kWh or kg) in this unit, without the symbol: a table cell."""
        return significant(value * self.per_base)

    def __call__(self, value: float) -> str:
        """`value` (kWh or kg) in this unit, with the symbol: `63.1 mWh`."""
        return f"{self.number(value)} {self.symbol}"


ENERGY_UNITS = tuple(
    Unit(symbol, per_kwh)
    for symbol, per_kwh in (
        ("µWh", 1e9),
        ("mWh", 1e6),
        ("Wh", 1e3),
        ("kWh", 1.0),
        ("MWh", 1e-3),
        ("GWh", 1e-6),
    )
)
JOULE_UNITS = tuple(
    Unit(symbol, per_j)
    for symbol, per_j in (("µJ", 1e6), ("mJ", 1e3), ("J", 1.0), ("kJ", 1e-3), ("MJ", 1e-6))
)
"""Energy per unit of work (a sample, a token), in joules with an SI prefix."""
MASS_UNITS = tuple(
    Unit(symbol, per_kg)
    for symbol, per_kg in (
        ("µg", 1e9),
        ("mg", 1e6),
        ("g", 1e3),
        ("kg", 1.0),
        ("t", 1e-3),
        ("kt", 1e-6),
    )
)
_ZERO_ENERGY, _ZERO_MASS = ENERGY_UNITS[2], MASS_UNITS[2]  # nothing at all reads 0 Wh, 0 g


def _unit_of(units: tuple[Unit, ...], values: Sequence[float], zero: Unit) -> Unit:
    """The unit in which the largest finite |value| reads from 1 to under 1000 once rounded
    (the smallest or largest unit beyond their range); `zero` when there is none above 0."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if largest == 0:
        return zero
    for unit in reversed(units):
        if float(f"{largest * unit.per_base:.{DIGITS}g}") >= 1:
            return unit
    return units[0]


def energy_unit(*kwh: float) -> Unit:
    """The one energy unit of figures shown together: that of the largest."""
    return _unit_of(ENERGY_UNITS, kwh, _ZERO_ENERGY)


def mass_unit(*kg: float) -> Unit:
    """The one mass unit of figures shown together: that of the largest."""
    return _unit_of(MASS_UNITS, kg, _ZERO_MASS)


def format_energy(kwh: float, unit: Unit | None = None) -> str:
    """Energy in `unit`, else in the SI unit of its size: `63.1 mWh`, `1.23 MWh`."""
    return (unit or energy_unit(kwh))(kwh)


def format_co2(kg: float, unit: Unit | None = None) -> str:
    """A mass (of CO2) in `unit`, else in the SI unit of its size: `2.8 mg`, `420 g`, `24.7 t`."""
    return (unit or mass_unit(kg))(kg)


@dataclass(frozen=True)
class Units:
    """The energy unit and the mass unit that every figure of one table or page is shown in."""

    energy: Unit
    mass: Unit

    @classmethod
    def of(cls, *figures) -> Units:
        """The units of things with `energy_kwh` and `co2_kg` (runs, summaries, comparison
        sides, groups), shown together: those of the largest of each."""
        return cls(
            energy_unit(*(f.energy_kwh for f in figures)), mass_unit(*(f.co2_kg for f in figures))
        )


def plus_minus(value: float, band: float, unit: Unit) -> str:
    """`63.1 ± 3.2 mWh`: a figure and its band's half-width (to BAND_DIGITS) in one unit; the
    figure alone when it has no band (a run recorded before carbonlog had bands)."""
    if band > 0:
        half = significant(band * unit.per_base, BAND_DIGITS)
        return f"{unit.number(value)} ± {half} {unit.symbol}"
    return unit(value)


def dominance(band: RunBand) -> str | None:
    """`mostly the CPU's model (92 % of the band)`: the component and method that dominate a
    run's band; None without one."""
    if not band.component:
        return None
    method = f"'s {band.method}" if band.method else ""
    return f"mostly the {band.component.upper()}{method} ({band.share * 100:.0f} % of the band)"


def per_unit(run) -> str | None:
    """`12.3 J per sample, 45.6 mJ per token`: a run's (a Summary's, a ledger run's) facility
    energy per unit of work in SI-prefixed joules, where its framework counted it; None where
    it counted none."""
    parts = [
        f"{_unit_of(JOULE_UNITS, [joules], JOULE_UNITS[2])(joules)} per {unit}"
        for count, unit in ((run.samples, "sample"), (run.tokens, "token"))
        if (joules := per_unit_j(run.energy_kwh, count)) is not None
    ]
    return ", ".join(parts) or None


def format_time(epoch_s: float | None) -> str:
    """The local date and time of a timestamp, `2024-05-17 14:02`; a dash when unknown."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_s)) if epoch_s else "-"


def format_interval(interval: Interval) -> str:
    """`epoch 3: 62.8 ± 3.1 mWh, 3.14 ± 0.16 mg CO2 (gpu 50, cpu 10, ram 2.78 mWh) in 12.3 s,
    18 W`: each figure with its band, the components in the unit of the interval's (facility)
    energy."""
    unit = energy_unit(interval.energy_kwh)
    mass = mass_unit(interval.co2_kg)
    estimated = f" [estimated: {', '.join(interval.estimated)}]" if interval.estimated else ""
    energy = plus_minus(interval.energy_kwh, interval.energy_band_kwh, unit)
    co2 = plus_minus(interval.co2_kg, interval.co2_band_kg, mass)
    return (
        f"{terminal_safe(interval.label)} {interval.index}: {energy}, "
        f"{co2} CO2 ({_components(interval, unit)}) in "
        f"{interval.duration_s:.1f} s, {interval.power_w:.0f} W{estimated}"
    )


def _components(figures, unit: Unit) -> str:
    """`gpu 50, cpu 10, ram 2.78 mWh`: the measured components' device energy in `unit`."""
    parts = ", ".join(
        f"{name} {unit.number(kwh_from_j(joules))}"
        for name, joules in (("gpu", figures.gpu_j), ("cpu", figures.cpu_j), ("ram", figures.ram_j))
        if joules
    )
    return f"{parts} {unit.symbol}" if parts else "nothing measured"


def format_summary(summary: Summary, stage: str = "run") -> str:
    """One line of totals, each with its band, the intensity and PUE that produced them, what
    dominates the band, and where known the embodied emissions, water and energy per unit of
    work."""
    site = summary.site
    unit = energy_unit(summary.energy_kwh)
    band = summary.band
    mass = mass_unit(summary.co2_kg)
    extra = [
        dominance(band) and f"band {dominance(band)}",
        summary.embodied_kg is not None and f"embodied {format_co2(summary.embodied_kg)} CO2e",
        summary.water_l is not None and f"water {significant(summary.water_l)} L",
        per_unit(summary),
    ]
    return (
        f"carbonlog: {stage} used {plus_minus(summary.energy_kwh, band.energy_kwh, unit)} and "
        f"{plus_minus(summary.co2_kg, band.co2_kg, mass)} CO2 in {summary.duration_s:.1f} s "
        f"({_components(summary, unit)}; "
        f"{site.get('location', '?')}, {site.get('g_per_kwh', float('nan')):.0f} g/kWh, "
        f"PUE {site.get('pue', 1.0):.2f})" + "".join(f"; {part}" for part in extra if part)
    )


def terminal_width() -> int:
    """The terminal's width ($COLUMNS, else the terminal, else 80), at least 40."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    right: Sequence[int] = (),
    shrink: Sequence[int] = (),
    width: int | None = None,
    rule: bool = True,
) -> str:
    """A fixed-width table, a dashed rule under the headers unless `rule` is False; columns
    in `right` are right-aligned, those in `shrink` cut (with an ellipsis) to fit `width`.
    Cells are terminal_safe: a name cannot move the cursor or forge a row."""
    width = width or terminal_width()
    cells = [[terminal_safe(str(c)) for c in headers]]
    cells += [["-" if c is None else terminal_safe(str(c)) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        cuttable = [i for i in shrink if widths[i] > max(8, len(headers[i]))]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1

    def fit(text: str, i: int) -> str:
        if len(text) > widths[i]:
            text = text[: widths[i] - 1] + "…"
        return text.rjust(widths[i]) if i in right else text.ljust(widths[i])

    lines = ["  ".join(fit(c, i) for i, c in enumerate(row)).rstrip() for row in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pairs(facts: Sequence[tuple[str, object]], width: int | None = None) -> str:
    """`key  value` lines, values wrapped under themselves to fit the terminal; empty values
    are left out. Keys and values are terminal_safe."""
    width = width or terminal_width()
    facts = [(terminal_safe(k), terminal_safe(str(v))) for k, v in facts if v not in (None, "")]
    key_width = max((len(k) for k, _ in facts), default=0) + 2
    lines = []
    for key, value in facts:
        wrapped = textwrap.wrap(value, max(20, width - key_width)) or [""]
        lines.append(f"{key.ljust(key_width)}{wrapped[0]}")
        lines += [" " * key_width + more for more in wrapped[1:]]
    return "\n".join(lines)


def paragraphs(text: str, width: int | None = None) -> str:
    """Each line of `text`, terminal_safe, filled to the terminal's width (statements are long
    lines)."""
    width = width or terminal_width()
    lines = (terminal_safe(line) for line in text.split("\n"))
    return "\n".join(textwrap.fill(line, width) if line else "" for line in lines)


def summary_table(summary: Summary) -> str:
    """A run's energy and CO2 per interval, then the total, and its device energy before PUE,
    every energy in one unit and every mass in one, named in the headers."""
    units = Units.of(summary)
    rows: list[tuple[object, ...]] = [
        (
            row.name,
            f"{row.duration_s:.2f}",
            units.energy.number(row.energy_kwh),
            units.mass.number(row.co2_kg),
            "-" if row.power_w is None else f"{row.power_w:.1f}",
            ",".join(row.estimated) or "-",
        )
        for row in interval_rows(summary.intervals)
    ]
    mean_w = summary.device_j / summary.duration_s if summary.duration_s > 0 else 0.0
    rows.append(
        (
            "total",
            f"{summary.duration_s:.2f}",
            units.energy.number(summary.energy_kwh),
            units.mass.number(summary.co2_kg),
            f"{mean_w:.1f}",
            "",
        )
    )
    headers = ("interval", "seconds", units.energy.symbol, f"CO2 {units.mass.symbol}", "W")
    body = table((*headers, "estimated"), rows, right=(1, 2, 3, 4))
    return f"{body}\n(device energy {units.energy(kwh_from_j(summary.device_j))} before PUE)"
