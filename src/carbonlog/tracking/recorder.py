"""Observes a run's intervals and writes them to the ledger, on global rank zero only.

The ledger is given a frozen RunInfo and Intervals, never the tracker. A ledger that cannot
be opened or written never stops training: the run goes on with its totals in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from carbonlog._log import warn_once
from carbonlog.interval import Interval
from carbonlog.tracking.budget import Budget


def describe_run(
    name: str | None,
    tags,
    run_info: Mapping[str, object],
    hardware: Mapping[str, list[dict]],
    site: Mapping[str, object],
    budget: Budget,
):
    """The frozen description of a run the ledger stores."""
    from carbonlog.ledger import RunInfo, normalize_tags

    pretrained = run_info.get("pretrained")
    return RunInfo(
        name=name,
        framework=run_info.get("framework"),
        stage=run_info.get("stage"),
        model=run_info.get("model") or run_info.get("model_name"),
        base_model=run_info.get("base_model"),
        pretrained=None if pretrained is None else bool(pretrained),
        task=run_info.get("task"),
        tags=normalize_tags(tags),
        hardware=hardware,
        site=site,
        budget_kg=budget.kg,
        budget_kwh=budget.kwh,
        on_budget=budget.action,
    )


class Recorder:
    """One run's rows in the ledger: begun (or resumed), one per interval, then closed."""

    def __init__(self, ledger: bool | str | os.PathLike):
        self._wanted = ledger
        self.ledger = None
        self.run_id: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether this process writes the ledger (global rank zero, ledger not turned off)."""
        return bool(self._wanted)

    def begin(self, info, resume_run_id: int | None) -> None:
        """Open the ledger and begin the run, or reopen `resume_run_id` when it exists."""
        try:
            from carbonlog.ledger import Ledger

            self.ledger = Ledger(None if self._wanted is True else self._wanted)
            if resume_run_id is not None and self.ledger.resume_run(resume_run_id):
                self.run_id = resume_run_id
            else:
                self.run_id = self.ledger.begin_run(info)
        except Exception as exc:
            self.ledger = None
            warn_once(
                "ledger",
                f"carbonlog: the run ledger is unavailable ({exc}); "
                "training goes on and totals are kept in memory",
            )

    def interval(self, interval: Interval, metrics: Mapping[str, float] | None) -> None:
        """Store a closed interval with the framework's metrics for it."""
        if self.ledger is not None:
            self._guarded(self.ledger.add_interval, self.run_id, interval, dict(metrics or {}))

    def annotate(self, interval: Interval, metrics: Mapping[str, float]) -> None:
        """Add metrics the framework reported after `interval` closed (its evaluation)."""
        if self.ledger is not None and metrics:
            self._guarded(self.ledger.add_metrics, self.run_id, interval, dict(metrics))

    def end(self, status: str, stop_reason: str | None, duration_s: float) -> None:
        """Close the run with the status the tracker decided, and the ledger with it."""
        if self.ledger is not None:
            self._guarded(self.ledger.end_run, self.run_id, status, stop_reason, duration_s)
            self._guarded(self.ledger.close)

    @staticmethod
    def _guarded(write, *args) -> None:
        try:
            write(*args)
        except Exception as exc:
            warn_once(
                "ledger-write",
                f"carbonlog: writing to the run ledger failed ({exc}); training goes on",
            )
