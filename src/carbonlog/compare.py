"""Two runs of the ledger side by side: epochs, kWh, kg CO2, final metric, and the energy and
CO2 each took to reach a target such as "val_accuracy>=0.9".

Importing this module opens nothing (the ledger loads on the first compare), so the package
can export `carbonlog.compare` eagerly.
"""

from __future__ import annotations

import operator
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from carbonlog.text import format_co2

if TYPE_CHECKING:
    from carbonlog.ledger import Ledger, RunRecord

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
PREFERRED_METRICS = (
    "val_accuracy",
    "val_acc",
    "eval_accuracy",
    "accuracy",
    "acc",
    "val_loss",
    "eval_loss",
    "loss",
    "train_loss",
)
_TARGET = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w./:-]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Target:
    """A metric threshold: `val_accuracy>=0.9`, `val_loss<0.3`."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse `METRIC OP NUMBER` with OP one of >=, <=, >, <; ValueError otherwise."""
        found = _TARGET.match(text) if isinstance(text, str) else None
        if not found:
            raise ValueError(
                f"bad target {text!r}: expected METRIC OP NUMBER with OP one of "
                f"{', '.join(OPERATORS)}, e.g. 'val_accuracy>=0.9'"
            )
        return cls(found["metric"], found["op"], float(found["value"]))

    def met(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass
class Side:
    """One run's column: its totals, its final metric, and what reaching the target took."""

    run_id: int
    label: str
    status: str
    epochs: int
    energy_kwh: float
    co2_kg: float
    metric: str | None
    final: float | None
    target_epoch: int | None = None
    target_kwh: float | None = None
    target_kg: float | None = None

    @classmethod
    def of(cls, run: RunRecord, metric: str | None, target: Target | None) -> Side:
        side = cls(
            run.id,
            run.label,
            run.status,
            run.epochs,
            run.energy_kwh,
            run.co2_kg,
            metric,
            _final(run, metric),
        )
        if target is not None:
            side._reach(run, target)
        return side

    def _reach(self, run: RunRecord, target: Target) -> None:
        """The first epoch whose metric meets the target, with the energy up to its end."""
        kwh = kg = 0.0
        epoch = 0
        for interval in run.intervals:
            kwh += interval.energy_kwh
            kg += interval.co2_kg
            epoch += interval.label == "epoch"
            if target.met(interval.metrics.get(target.metric)):
                self.target_epoch, self.target_kwh, self.target_kg = epoch, kwh, kg
                return


@dataclass
class Comparison:
    """Runs a and b side by side; `table()` for the terminal, `to_dict()` for JSON."""

    a: Side
    b: Side
    metric: str | None
    target: Target | None

    def to_dict(self) -> dict:
        return {
            "a": asdict(self.a),
            "b": asdict(self.b),
            "metric": self.metric,
            "target": None if self.target is None else str(self.target),
            "verdict": self.verdict(),
        }

    def verdict(self) -> str | None:
        """One line: which run reached the target (or finished) with how much less CO2."""
        a, b = self.a, self.b
        if self.target is not None:
            reached = [s for s in (a, b) if s.target_kg is not None]
            if not reached:
                return f"neither run reached {self.target}"
            if len(reached) == 1:
                return f"only {reached[0].label} reached {self.target}"
            return _ratio_line(a, b, a.target_kg, b.target_kg, f"reached {self.target}")
        return _ratio_line(a, b, a.co2_kg, b.co2_kg, "ran")

    def table(self) -> str:
        rows = [
            ("", self.a.label, self.b.label),
            ("status", self.a.status, self.b.status),
            ("epochs", str(self.a.epochs), str(self.b.epochs)),
            ("energy", f"{self.a.energy_kwh:.4g} kWh", f"{self.b.energy_kwh:.4g} kWh"),
            ("CO2", format_co2(self.a.co2_kg), format_co2(self.b.co2_kg)),
        ]
        if self.metric is not None:
            rows.append((f"final {self.metric}", _value(self.a.final), _value(self.b.final)))
        if self.target is not None:
            rows.append((f"to reach {self.target}", _reached(self.a), _reached(self.b)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        verdict = self.verdict()
        return "\n".join(lines + ([verdict] if verdict else []))

    def __str__(self) -> str:
        return self.table()


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _reached(side: Side) -> str:
    if side.target_kg is None:
        return "not reached"
    return f"epoch {side.target_epoch}: {side.target_kwh:.4g} kWh, {format_co2(side.target_kg)}"


def _ratio_line(a: Side, b: Side, kg_a: float, kg_b: float, what: str) -> str | None:
    if kg_a <= 0 or kg_b <= 0:
        return None
    lean, heavy, ratio = (a, b, kg_b / kg_a) if kg_a <= kg_b else (b, a, kg_a / kg_b)
    return f"{lean.label} {what} with {ratio:.3g}x less CO2 than {heavy.label}"


def _final(run: RunRecord, metric: str | None) -> float | None:
    """The metric's last reported value in the run."""
    if metric is None:
        return None
    values = [i.metrics[metric] for i in run.intervals if i.metrics.get(metric) is not None]
    return values[-1] if values else None


def _default_metric(*runs: RunRecord) -> str | None:
    """A metric both runs reported, accuracy first, then loss, else the first alphabetically."""
    common = set.intersection(*({k for i in run.intervals for k in i.metrics} for run in runs))
    preferred = [name for name in PREFERRED_METRICS if name in common]
    return (preferred or sorted(common) or [None])[0]


def _run(ledger: Ledger, ref: int | str) -> RunRecord:
    run = ledger.run(ref)
    if run is None:
        raise ValueError(f"no run {ref!r} in the ledger {ledger.path}")
    return run


def compare(
    run_a: int | str,
    run_b: int | str,
    target: str | Target | None = None,
    metric: str | None = None,
    ledger: Ledger | str | os.PathLike | None = None,
) -> Comparison:
    """Compare two runs (by id or name) of the ledger (default: the user's ledger).

    `target` ("val_accuracy>=0.9") adds the energy and CO2 each run took to reach it and
    sets the metric shown; otherwise `metric`, else one both runs reported.
    """
    from carbonlog.ledger import Ledger

    parsed = Target.parse(target) if isinstance(target, str) else target
    store = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    try:
        a, b = _run(store, run_a), _run(store, run_b)
    finally:
        if store is not ledger:
            store.close()
    shown = parsed.metric if parsed is not None else (metric or _default_metric(a, b))
    return Comparison(Side.of(a, shown, parsed), Side.of(b, shown, parsed), shown, parsed)
