"""The paper-style emissions statements, in Markdown or LaTeX: the calculator's and a run's.

`estimate_statement` follows the ML CO2 Impact calculator's wording for an Estimate (TDP x
hours). `statement` keeps that wording with the measured figures in its place: the run's
duration, the devices, its facility energy, which components were measured (with a counter, or
power samples) and which estimated (with what model), the intensity with its source and year,
the PUE, the CO2 with its band and what dominates it, and the embodied emissions next to (not
inside) it. A run is a ledger RunRecord or a Tracker Summary (both carry the same facts).
Figures keep the paper's units (kWh, kgCO2eq), in decimals, never in exponent form.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from carbonlog.errors import ConfigurationError
from carbonlog.report.rows import run_band
from carbonlog.report.text import SECONDS_PER_HOUR, dominance, significant
from carbonlog.units import G_PER_KG, co2_kg

if TYPE_CHECKING:
    from carbonlog.estimate import Estimate

FORMATS = ("markdown", "latex")
PLUS_MINUS = {False: "±", True: r"$\pm$"}
"""The band's sign in Markdown and in LaTeX."""
CITATION = "Lacoste et al. 2019"
ARXIV_URL = "https://arxiv.org/abs/1910.09700"
BIBTEX = """@article{lacoste2019quantifying,
  title={Quantifying the Carbon Emissions of Machine Learning},
  author={Lacoste, Alexandre and Luccioni, Alexandra and Schmidt, Victor and Dandres, Thomas},
  journal={arXiv preprint arXiv:1910.09700},
  year={2019}
}"""
__all__ = [
    "BIBTEX",
    "FORMATS",
    "estimate_statement",
    "hardware_phrase",
    "measured_with",
    "statement",
]

# How each meter method reads in a sentence: those that measure, and the models that estimate.
_MEASURED = {
    "counter": "the NVML total-energy counter",
    "sampled instant power": "NVML power samples",
    "sampled 1 s average power": "NVML power samples",
    "rapl": "RAPL energy counters",
}
_MODELS = {
    "model: TDP x load": "a TDP x load model",
    "model: W per GiB": "a W per GiB model",
}
_STAGE_RAN = {
    "validate": "Validation",
    "test": "Testing",
    "predict": "Prediction",
    "evaluate": "Evaluation",
}
_LATEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "%": r"\%",
}
_LATEX_UNSAFE = re.compile(r"[\\{}$&#^_~%]|[\x00-\x1f\x7f-\x9f]")


def latex_escape(text: str) -> str:
    """`text` as LaTeX prints it literally: its ten special characters escaped in one pass, and
    control characters (which stop pdflatex: "invalid character") as spaces."""
    return _LATEX_UNSAFE.sub(lambda m: _LATEX.get(m.group(), " "), text)


def format_figure(value: float) -> str:
    """Two decimals, or two significant digits for small values, never in exponent form:
    0.000063, 0.0042, 3.99, 1,234.5."""
    if not math.isfinite(value):
        return f"{value}"
    if value == 0 or abs(value) >= 0.1:
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    return significant(value, 2)


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


def hardware_phrase(hardware: Mapping[str, list]) -> str:
    """`2 x NVIDIA A100-SXM4-80GB GPUs and AMD EPYC 7763 CPU`, from the run's devices."""
    gpus = Counter(str(d.get("name") or "GPU") for d in hardware.get("gpu", []))
    cpus = [str(d.get("name") or "CPU") for d in hardware.get("cpu", [])]
    parts = [f"{n} x {name} GPU{'s' if n > 1 else ''}" for name, n in gpus.items()]
    parts += [f"{name} CPU" for name in dict.fromkeys(cpus)]
    if not parts:
        return "unmeasured hardware"
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def _method(device: Mapping) -> tuple[bool, str]:
    """(measured, how) of one device: `(True, "RAPL energy counters")`, `(False, "a TDP x load
    model, TDP 8 W")`, `(False, "a constant 100 W, as given")`."""
    method = str(device.get("method"))
    if method in _MEASURED:
        return True, _MEASURED[method]
    if method in _MODELS:
        tdp = device.get("tdp_w")
        return False, _MODELS[method] + (f", TDP {tdp:g} W" if tdp else "")
    if "power_w" in device:
        return False, f"a constant {device['power_w']:g} W, as given"
    return False, "a constant wattage"


def _parts(parts: list[str]) -> str:
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts)


def measured_with(hardware: Mapping[str, list], estimated: set[str]) -> str:
    """What was measured and what estimated, per component, from the run's devices: `Energy
    was measured for the GPU (the NVML total-energy counter) and estimated for the CPU (a TDP x
    load model, TDP 8 W)`. A measured component in `estimated` fell back to an estimate mid-run."""
    measured, modelled = [], []
    for component in ("gpu", "cpu", "ram"):
        methods = [_method(d) for d in hardware.get(component, [])]
        if not methods:
            continue
        how = " and ".join(sorted({how for _, how in methods}))
        fault = "; estimated in part, after a fault" if component in estimated else ""
        if any(is_measured for is_measured, _ in methods):
            measured.append(f"the {component.upper()} ({how}{fault})")
        else:
            modelled.append(f"the {component.upper()} ({how})")
    if not measured and not modelled:
        return "No device's energy was recorded"
    said = [f"measured for {_parts(measured)}"] if measured else []
    said += [f"estimated for {_parts(modelled)}"] if modelled else []
    none = "" if measured else "; no counter measured any of it"
    return f"Energy was {' and '.join(said)}{none}"


def _style(format: str) -> tuple[bool, Callable[[str], str], str]:
    """(latex, escape, the kgCO2eq unit) of a format; a ConfigurationError for another."""
    if format not in FORMATS:
        raise ConfigurationError(f"format must be 'markdown' or 'latex', got {format!r}")
    latex = format == "latex"
    return latex, (latex_escape if latex else str), ("kgCO$_2$eq" if latex else "kgCO₂eq")


def _offset(ratio: float) -> str:
    return (
        f" of which {format_figure(ratio * 100)} percents were directly offset by the "
        "cloud provider"
    )


def _cite(latex: bool, sentence: str) -> str:
    """The closing sentence, citing Lacoste et al. 2019."""
    if latex:
        return f".\n{sentence} \\cite{{lacoste2019quantifying}}."
    return f".\n{sentence} [{CITATION}]({ARXIV_URL})."


def estimate_statement(estimate: Estimate, format: str = "markdown") -> str:
    """The ML CO2 Impact calculator's emissions statement of an Estimate."""
    latex, esc, co2eq = _style(format)
    grid = estimate.grid
    site = {"provider": grid.provider, "location": grid.code, "kind": grid.kind, "name": grid.name}
    pue = f" and a power usage effectiveness of {estimate.pue:g}" if estimate.pue != 1.0 else ""
    text = (
        f"Experiments were conducted using {where_phrase(site, esc)}, which has a carbon "
        f"efficiency of {format_figure(co2_kg(1.0, grid.g_per_kwh))} {co2eq}/kWh{pue}. "
        f"A cumulative of {format_figure(estimate.device_hours)} hours of computation was "
        f"performed on hardware of type {esc(estimate.hardware.name)} (TDP of "
        f"{estimate.tdp_w:g}W). Total emissions are estimated to be "
        f"{format_figure(estimate.co2_kg)} {co2eq}"
    )
    if grid.provider:
        text += _offset(estimate.offset_ratio)
    tool = "carbonlog's estimate(), following the ML CO2 Impact calculator presented in"
    return text + _cite(latex, f"Estimations were conducted using {tool}")


def _duration_s(run) -> float:
    """The run's duration; for a killed run, the sum of its stored intervals."""
    if getattr(run, "duration_s", None):
        return float(run.duration_s)
    return sum(float(iv.duration_s) for iv in getattr(run, "intervals", []))


def _ran(run) -> str:
    """What ran: `Training` (a fit, or a run of no stage), `Testing`, `The calibrate stage`."""
    stage = getattr(run, "stage", None)
    if stage in (None, "fit"):
        return "Training"
    return _STAGE_RAN.get(stage, f"The {stage} stage")


def _intensity(run) -> tuple[float, bool]:
    """(g CO2e/kWh, varied): the run's own ratio, which is the mean when a live source varied."""
    values = {iv.intensity_g_per_kwh for iv in run.intervals if iv.intensity_g_per_kwh is not None}
    if len(values) > 1 and run.energy_kwh > 0:
        return run.co2_kg * G_PER_KG / run.energy_kwh, True
    if values:
        return values.pop(), False
    return float(run.site.get("g_per_kwh") or 0.0), False


def _band(run, latex: bool) -> str:
    """` ± 0.0012`: the half-width of the run's CO2 band, when it has one."""
    band = run_band(run).co2_kg
    return f" {PLUS_MINUS[latex]} {format_figure(band)}" if band > 0 else ""


def _dominance(run, esc: Callable[[str], str]) -> str:
    """`; the uncertainty is mostly the CPU's model (92 % of the band)`, when there is a band."""
    said = dominance(run_band(run))
    return f"; the uncertainty is {esc(said)}" if said else ""


def statement(run, format: str = "markdown") -> str:
    """The emissions statement of a measured run (a ledger RunRecord or a Summary)."""
    latex, esc, co2eq = _style(format)
    site = run.site or {}
    g_per_kwh, varied = _intensity(run)
    source = str(site.get("source") or "unknown source")
    if site.get("year"):
        source += f", {site['year']}"
    if varied:
        source = f"the run's mean of a live source; table figure: {source}"
    pue = float(site.get("pue") or 1.0)
    pue_text = ""
    if pue != 1.0:
        pue_text = (
            f" and a power usage effectiveness of {pue:g} ({esc(str(site.get('pue_source')))})"
        )
    estimated = {c for iv in run.intervals for c in iv.estimated}
    text = (
        f"Experiments were conducted using {where_phrase(site, esc)}, which has a carbon "
        f"efficiency of {format_figure(co2_kg(1.0, g_per_kwh))} {co2eq}/kWh ({esc(source)})"
        f"{pue_text}. {esc(_ran(run))} ran for "
        f"{format_figure(_duration_s(run) / SECONDS_PER_HOUR)} hours on "
        f"{esc(hardware_phrase(run.hardware))} and used "
        f"{format_figure(run.energy_kwh)} kWh of electricity at the facility. "
        f"{esc(measured_with(run.hardware, estimated))}. Total emissions are "
        f"{format_figure(run.co2_kg)}{_band(run, latex)} {co2eq}"
    )
    offset = float(site.get("offset_ratio") or 0.0)
    if site.get("provider") and offset > 0:
        text += _offset(offset)
    text += _dominance(run, esc)
    if run.embodied_kg is not None:
        text += (
            f". Manufacturing the hardware adds {format_figure(run.embodied_kg)} {co2eq} of "
            "embodied emissions, amortised over its lifetime and not included in this total"
        )
    tool = "carbonlog, following the methodology presented in"
    return text + _cite(latex, f"Emissions were measured using {tool}")
