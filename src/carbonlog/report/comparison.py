"""Two runs side by side in words: the rows, the terminal table and the verdict.

`comparison` is a carbonlog.compare.Comparison; the HTML report lays out the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbonlog.report.text import Units, format_co2, significant, table

if TYPE_CHECKING:
    from carbonlog.compare import Comparison, Side


def format_metric(value: float | None) -> str:
    """A metric's value in four significant digits; a dash when the run did not report it."""
    return "-" if value is None else significant(value, 4)


def _joules(value: float | None) -> str:
    """`12.3 J`; a dash where the run's framework did not count the work."""
    return "-" if value is None else f"{significant(value)} J"


def reached(side: Side, units: Units) -> str:
    """`epoch 3: 250 Wh, 25 g`: what reaching the target took, or `not reached`."""
    if side.target_kg is None:
        return "not reached"
    return (
        f"epoch {side.target_epoch}: {units.energy(side.target_kwh)}, {units.mass(side.target_kg)}"
    )


def comparison_rows(
    comparison: Comparison, units: Units | None = None
) -> list[tuple[str, str, str]]:
    """(fact, run a, run b) for status, epochs, energy, CO2, energy per sample and per token
    (where either run counted them), final metric and target, every energy in one unit and
    every mass in one (default: those of the larger run)."""
    a, b = comparison.a, comparison.b
    units = units or Units.of(a, b)
    rows = [
        ("status", a.status, b.status),
        ("epochs", str(a.epochs), str(b.epochs)),
        ("energy", units.energy(a.energy_kwh), units.energy(b.energy_kwh)),
        ("CO2", units.mass(a.co2_kg), units.mass(b.co2_kg)),
    ]
    for name, unit in (("energy_per_sample_j", "sample"), ("energy_per_token_j", "token")):
        per_a, per_b = getattr(a, name), getattr(b, name)
        if per_a is not None or per_b is not None:
            rows.append((f"energy per {unit}", _joules(per_a), _joules(per_b)))
    if comparison.metric is not None:
        rows.append((f"final {comparison.metric}", format_metric(a.final), format_metric(b.final)))
    if comparison.target is not None:
        rows.append((f"to reach {comparison.target}", reached(a, units), reached(b, units)))
    return rows


def comparison_table(comparison: Comparison) -> str:
    """The runs' labels over their rows, then the verdict."""
    headers = ("", comparison.a.label, comparison.b.label)
    verdict = verdict_line(comparison)
    body = table(headers, comparison_rows(comparison), rule=False)
    return body + (f"\n{verdict}" if verdict else "")


def verdict_line(comparison: Comparison) -> str | None:
    """Which run reached the target (or finished) with how much less CO2, or that both took the
    same; None when a run emitted nothing to compare against."""
    a, b, target = comparison.a, comparison.b, comparison.target
    if a.run_id == b.run_id:
        return f"{a.label} is compared with itself"
    if target is not None:
        done = [s for s in (a, b) if s.target_kg is not None]
        silent = "".join(
            f"; {s.label} never logged {target.metric}" for s in (a, b) if s.final is None
        )
        if not done:
            return f"neither run reached {target}{silent}"
        if len(done) == 1:
            return f"only {done[0].label} reached {target}{silent}"
        return _ratio_line(a, b, a.target_kg, b.target_kg, f"reached {target}")
    return _ratio_line(a, b, a.co2_kg, b.co2_kg, "ran")


def _ratio_line(a: Side, b: Side, kg_a: float, kg_b: float, what: str) -> str | None:
    if kg_a <= 0 or kg_b <= 0:
        return None
    lean, heavy, ratio = (a, b, kg_b / kg_a) if kg_a <= kg_b else (b, a, kg_a / kg_b)
    if significant(ratio) == "1":
        return f"{a.label} and {b.label} {what} with the same CO2, {format_co2(kg_a)} each"
    return f"{lean.label} {what} with {significant(ratio)}x less CO2 than {heavy.label}"
