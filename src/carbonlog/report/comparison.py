"""Two runs side by side in words: the rows, the terminal table and the verdict.

`comparison` is a carbonlog.compare.Comparison; the HTML report lays out the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbonlog.report.text import format_co2, table

if TYPE_CHECKING:
    from carbonlog.compare import Comparison, Side


def format_metric(value: float | None) -> str:
    """A metric's value in four significant digits; a dash when the run did not report it."""
    return "-" if value is None else f"{value:.4g}"


def reached(side: Side) -> str:
    """`epoch 3: 0.25 kWh, 25 g`: what reaching the target took, or `not reached`."""
    if side.target_kg is None:
        return "not reached"
    return f"epoch {side.target_epoch}: {side.target_kwh:.4g} kWh, {format_co2(side.target_kg)}"


def comparison_rows(comparison: Comparison) -> list[tuple[str, str, str]]:
    """(fact, run a, run b) for status, epochs, energy, CO2, final metric and target."""
    a, b = comparison.a, comparison.b
    rows = [
        ("status", a.status, b.status),
        ("epochs", str(a.epochs), str(b.epochs)),
        ("energy", f"{a.energy_kwh:.4g} kWh", f"{b.energy_kwh:.4g} kWh"),
        ("CO2", format_co2(a.co2_kg), format_co2(b.co2_kg)),
    ]
    if comparison.metric is not None:
        rows.append((f"final {comparison.metric}", format_metric(a.final), format_metric(b.final)))
    if comparison.target is not None:
        rows.append((f"to reach {comparison.target}", reached(a), reached(b)))
    return rows


def comparison_table(comparison: Comparison) -> str:
    """The runs' labels over their rows, then the verdict."""
    headers = ("", comparison.a.label, comparison.b.label)
    verdict = verdict_line(comparison)
    body = table(headers, comparison_rows(comparison), rule=False)
    return body + (f"\n{verdict}" if verdict else "")


def verdict_line(comparison: Comparison) -> str | None:
    """Which run reached the target (or finished) with how much less CO2; None when a run
    emitted nothing to compare against."""
    a, b, target = comparison.a, comparison.b, comparison.target
    if target is not None:
        done = [s for s in (a, b) if s.target_kg is not None]
        if not done:
            return f"neither run reached {target}"
        if len(done) == 1:
            return f"only {done[0].label} reached {target}"
        return _ratio_line(a, b, a.target_kg, b.target_kg, f"reached {target}")
    return _ratio_line(a, b, a.co2_kg, b.co2_kg, "ran")


def _ratio_line(a: Side, b: Side, kg_a: float, kg_b: float, what: str) -> str | None:
    if kg_a <= 0 or kg_b <= 0:
        return None
    lean, heavy, ratio = (a, b, kg_b / kg_a) if kg_a <= kg_b else (b, a, kg_a / kg_b)
    return f"{lean.label} {what} with {ratio:.3g}x less CO2 than {heavy.label}"
