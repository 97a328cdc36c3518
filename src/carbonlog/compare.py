"""Two runs of the ledger side by side: epochs, kWh, kg CO2, final metric, and the energy and
CO2 each took to reach a target such as "val_accuracy>=0.9".

The figures and the target arithmetic live here; their wording is carbonlog.report.comparison's.
Importing this module opens nothing (the ledger and the wording load on first use), so the
package can export `carbonlog.compare` eagerly.
"""

from __future__ import annotations

import math
import operator
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from carbonlog.errors import ConfigurationError
from carbonlog.interval import per_unit_j

if TYPE_CHECKING:
    from carbonlog.ledger import Ledger, RunRecord

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
MOST_NAMED = 12
"""Metric names an error lists of each run; the rest are counted."""
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
        """Parse `METRIC OP NUMBER` with OP one of >=, <=, >, <; ConfigurationError otherwise."""
        found = _TARGET.match(text) if isinstance(text, str) else None
        if not found:
            raise ConfigurationError(
                f"bad target {text!r}: expected METRIC OP NUMBER with OP one of "
                f"{', '.join(OPERATORS)}, e.g. 'val_accuracy>=0.9'"
            )
        value = float(found["value"])
        if not math.isfinite(value):
            raise ConfigurationError(f"bad target {text!r}: the threshold must be a finite number")
        return cls(found["metric"], found["op"], value)

    def met(self, value: float | None) -> bool:
        """Whether a reported `value` meets the threshold (an unreported one never does)."""
        return value is not None and OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass
class Side:
    """One run's column: its totals, its energy per sample and per token (where its framework
    counted them: runs of different lengths compare fairly), its final metric, and what
    reaching the target took."""

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
    energy_per_sample_j: float | None = None
    energy_per_token_j: float | None = None

    @classmethod
    def of(cls, run: RunRecord, metric: str | None, target: Target | None) -> Side:
        """The column of `run`, showing `metric`, with what reaching `target` took."""
        side = cls(
            run.id,
            run.label,
            run.status,
            run.epochs,
            run.energy_kwh,
            run.co2_kg,
            metric,
            _final(run, metric),
            energy_per_sample_j=per_unit_j(run.energy_kwh, run.samples),
            energy_per_token_j=per_unit_j(run.energy_kwh, run.tokens),
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
        """Plain facts for JSON, the verdict included."""
        return {
            "a": asdict(self.a),
            "b": asdict(self.b),
            "metric": self.metric,
            "target": None if self.target is None else str(self.target),
            "verdict": self.verdict(),
        }

    def verdict(self) -> str | None:
        """One line: which run reached the target (or finished) with how much less CO2."""
        from carbonlog.report.comparison import verdict_line

        return verdict_line(self)

    def table(self) -> str:
        """Both runs' columns and the verdict, for the terminal."""
        from carbonlog.report.comparison import comparison_table

        return comparison_table(self)

    def __str__(self) -> str:
        return self.table()


def _final(run: RunRecord, metric: str | None) -> float | None:
    """The metric's last reported value in the run."""
    if metric is None:
        return None
    values = [i.metrics[metric] for i in run.intervals if i.metrics.get(metric) is not None]
    return values[-1] if values else None


def _logged(run: RunRecord) -> set[str]:
    """The names of the metrics a run reported."""
    return {k for i in run.intervals for k in i.metrics}


def _names(names: set[str]) -> str:
    """`eval_accuracy, eval_loss`, at most MOST_NAMED of them; `no metric` for none."""
    shown = sorted(names)[:MOST_NAMED]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return ", ".join(shown) + more if shown else "no metric"


def _check_logged(metric: str, a: RunRecord, b: RunRecord) -> None:
    """A ConfigurationError when neither run reported `metric`, naming those they did."""
    import difflib  # lazily: only a refused metric needs it

    logged = (_logged(a), _logged(b))
    if metric in logged[0] | logged[1]:
        return
    if logged[0] == logged[1]:
        have = f"both logged {_names(logged[0])}"
    else:
        have = "; ".join(
            f"{r.label} logged {_names(n)}" for r, n in zip((a, b), logged, strict=True)
        )
    close = difflib.get_close_matches(metric, sorted(logged[0] | logged[1]), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(f"no such metric: neither run logged {metric!r} ({have}){hint}")


def _default_metric(*runs: RunRecord) -> str | None:
    """A metric both runs reported, accuracy first, then loss, else the first alphabetically."""
    common = set.intersection(*(_logged(run) for run in runs))
    preferred = [name for name in PREFERRED_METRICS if name in common]
    return (preferred or sorted(common) or [None])[0]


def _run(ledger: Ledger, ref: int | str) -> RunRecord:
    run = ledger.run(ref)
    if run is None:
        raise ConfigurationError(f"no run {ref!r} in the ledger {ledger.path}")
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
    sets the metric shown; otherwise `metric`, else one both runs reported. A target or metric
    that neither run reported is a ConfigurationError that names the metrics they did.
    """
    from carbonlog.ledger import Ledger

    parsed = Target.parse(target) if isinstance(target, str) else target
    store = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    try:
        a, b = _run(store, run_a), _run(store, run_b)
    finally:
        if store is not ledger:
            store.close()
    shown = parsed.metric if parsed is not None else metric
    if shown is None:
        shown = _default_metric(a, b)
    else:
        _check_logged(shown, a, b)
    return Comparison(Side.of(a, shown, parsed), Side.of(b, shown, parsed), shown, parsed)
