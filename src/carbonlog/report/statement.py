"""The paper-style emissions statement of a measured run, in Markdown or LaTeX.

It follows the wording of the ML CO2 Impact calculator's statement (carbonlog.estimate),
with the measured figures in place of TDP x hours: the run's duration, the devices
measured and how, its facility energy, the intensity with its source and year, the PUE,
and the CO2. A run is a ledger RunRecord or a Tracker Summary (both carry the same facts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from carbonlog.estimate import (
    ARXIV_URL,
    BIBTEX,
    CITATION,
    format_figure,
    latex_escape,
    where_phrase,
)

FORMATS = ("markdown", "latex")
__all__ = ["BIBTEX", "FORMATS", "hardware_phrase", "measured_with", "statement"]

# How each meter method reads in a sentence.
_METHODS = {
    "counter": "the NVML total-energy counter",
    "sampled instant power": "NVML power samples",
    "sampled 1 s average power": "NVML power samples",
    "rapl": "RAPL energy counters",
    "model: TDP x load": "a TDP x load model",
    "model: W per GiB": "a W per GiB model",
}
_MEASURED = ("counter", "sampled instant power", "sampled 1 s average power", "rapl")


def hardware_phrase(hardware: Mapping[str, list]) -> str:
    """`2 x NVIDIA A100-SXM4-80GB GPUs and AMD EPYC 7763 CPU`, from the run's devices."""
    gpus = Counter(str(d.get("name") or "GPU") for d in hardware.get("gpu", []))
    cpus = [str(d.get("name") or "CPU") for d in hardware.get("cpu", [])]
    parts = [f"{n} x {name} GPU{'s' if n > 1 else ''}" for name, n in gpus.items()]
    parts += [f"{name} CPU" for name in dict.fromkeys(cpus)]
    if not parts:
        return "unmeasured hardware"
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def measured_with(hardware: Mapping[str, list], estimated: set[str]) -> str:
    """`the NVML total-energy counter (GPU), a TDP x load model (CPU)`: how each part was read.

    A component that has a counter but was `estimated` fell back to an estimate mid-run.
    """
    parts = []
    for component in ("gpu", "cpu", "ram"):
        methods = [str(d.get("method")) for d in hardware.get(component, [])]
        if not methods:
            continue
        words = " and ".join(sorted({_METHODS.get(m, "a constant wattage") for m in methods}))
        fault = component in estimated and any(m in _MEASURED for m in methods)
        parts.append(f"{words} ({component.upper()}{'; estimated in part' if fault else ''})")
    return ", ".join(parts) or "no meter"


def _duration_s(run) -> float:
    """The run's duration; for a killed run, the sum of its stored intervals."""
    if getattr(run, "duration_s", None):
        return float(run.duration_s)
    return sum(float(iv.duration_s) for iv in getattr(run, "intervals", []))


def _intensity(run) -> tuple[float, bool]:
    """(g CO2e/kWh, varied): the run's own ratio, which is the mean when a live source varied."""
    values = {iv.intensity_g_per_kwh for iv in run.intervals if iv.intensity_g_per_kwh is not None}
    if len(values) > 1 and run.energy_kwh > 0:
        return run.co2_kg / run.energy_kwh * 1000.0, True
    if values:
        return values.pop(), False
    return float(run.site.get("g_per_kwh") or 0.0), False


def statement(run, format: str = "markdown") -> str:
    """The emissions statement of a measured run (a ledger RunRecord or a Summary)."""
    if format not in FORMATS:
        raise ValueError(f"format must be 'markdown' or 'latex', got {format!r}")
    latex = format == "latex"
    esc = latex_escape if latex else str
    co2eq = "kgCO$_2$eq" if latex else "kgCO₂eq"
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
        f"efficiency of {format_figure(g_per_kwh / 1000)} {co2eq}/kWh ({esc(source)}){pue_text}. "
        f"Training ran for {format_figure(_duration_s(run) / 3600)} hours on "
        f"{esc(hardware_phrase(run.hardware))} and "
        f"used {format_figure(run.energy_kwh)} kWh of electricity at the facility, measured with "
        f"{esc(measured_with(run.hardware, estimated))}. Total emissions are "
        f"{format_figure(run.co2_kg)} {co2eq}"
    )
    offset = float(site.get("offset_ratio") or 0.0)
    if site.get("provider") and offset > 0:
        text += (
            f" of which {format_figure(offset * 100)} percents were directly offset by the "
            "cloud provider"
        )
    tool = "carbonlog, following the methodology presented in"
    if latex:
        return text + f".\nEmissions were measured using {tool} \\cite{{lacoste2019quantifying}}."
    return text + f".\nEmissions were measured using {tool} [{CITATION}]({ARXIV_URL})."
