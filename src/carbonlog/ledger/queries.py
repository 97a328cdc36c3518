"""The ledger's reads: runs by filter, one run with its intervals, and the cost of
experimenting per task, tag or model, and per hyperparameter search. Totals are summed from
the stored intervals; a run's intervals and their metrics are two queries, whatever the
run's length."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from carbonlog.errors import ConfigurationError
from carbonlog.ledger.records import STATUSES, GroupTotal, IntervalRecord, RunRecord, clean_tag

GROUP_BY = ("task", "tag", "model", "base_model", "framework", "status")
DIRECTIONS = ("minimize", "maximize")
_MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id or limit names no run, limits none

_SELECT_RUNS = (  # a stored tag holds no newline (clean_tag): one per line
    "SELECT r.*, "
    "(SELECT group_concat(tag, char(10)) FROM run_tags t WHERE t.run_id = r.id) AS tags, "
    "COUNT(CASE WHEN i.label = 'epoch' THEN 1 END) AS epochs, "
    "COALESCE(SUM(i.energy_kwh), 0) AS energy_kwh, COALESCE(SUM(i.co2_kg), 0) AS co2_kg, "
    "COALESCE(SUM(i.gpu_j), 0) AS gpu_j, COALESCE(SUM(i.cpu_j), 0) AS cpu_j, "
    "COALESCE(SUM(i.ram_j), 0) AS ram_j, SUM(i.samples) AS samples, SUM(i.tokens) AS tokens, "
    "SUM(i.embodied_kg) AS embodied_kg, SUM(i.water_l) AS water_l "
    "FROM runs r LEFT JOIN intervals i ON i.run_id = r.id"
)


class Queries:
    """The read methods of Ledger, over the rows its `_read(sql, params)` returns."""

    _read: Callable[[str, Sequence[object]], list[dict]]

    def runs(
        self,
        task: str | None = None,
        model: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        pretrained: bool | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first, without their intervals.

        `model` matches the model or the base model; `status` is one of STATUSES; `tag` is
        matched as it is stored (`clean_tag`).
        """
        if status is not None and status not in STATUSES:
            raise ConfigurationError(f"status must be one of {STATUSES}, got {status!r}")
        where, params = [], []
        for column, value in (("r.task", task), ("r.status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if model is not None:
            where.append("(r.model = ? OR r.base_model = ?)")
            params += [model, model]
        if tag is not None:
            where.append("r.id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
            params.append(clean_tag(tag))
        if pretrained is not None:
            where.append("r.pretrained = ?")
            params.append(int(pretrained))
        return self._select_runs(where, params, limit)

    def run(self, ref: int | str, intervals: bool = True) -> RunRecord | None:
        """One run by id, or by name (the newest of that name); None if there is none."""
        found = []
        text = ref.strip() if isinstance(ref, str) else ""
        digits = text.isascii() and text.isdigit() and len(text) <= len(str(_MAX_ID))
        run_id = int(text) if digits else ref
        if isinstance(run_id, int) and 0 < run_id <= _MAX_ID:
            found = self._select_runs(["r.id = ?"], [run_id])
        if not found:
            found = self._select_runs(["r.name = ?"], [str(ref)], limit=1)
        if not found:
            return None
        record = found[0]
        if intervals:
            return dataclasses.replace(record, intervals=self.intervals(record.id))
        return record

    def intervals(self, run_id: int) -> list[IntervalRecord]:
        """A run's intervals in the order they were marked, each with its metrics."""
        metrics: dict[int, dict[str, float]] = {}
        for row in self._read(
            "SELECT m.interval_id, m.key, m.value FROM interval_metrics m "
            "JOIN intervals i ON i.id = m.interval_id WHERE i.run_id = ?",
            [run_id],
        ):
            metrics.setdefault(row["interval_id"], {})[row["key"]] = row["value"]
        rows = self._read("SELECT * FROM intervals WHERE run_id = ? ORDER BY id", [run_id])
        return [_interval_record(row, metrics.get(row["id"], {})) for row in rows]

    def totals(self, by: str = "task", **filters) -> list[GroupTotal]:
        """The cost of experimenting: kWh and kg CO2 per task (or tag, model...) over all
        runs, failed, interrupted and budget-stopped included; costliest first."""
        if by not in GROUP_BY:
            raise ConfigurationError(f"by must be one of {GROUP_BY}, got {by!r}")
        groups: dict[str | None, list[RunRecord]] = {}
        for run in self.runs(**filters):
            keys = (run.tags or [None]) if by == "tag" else [getattr(run, by)]
            for key in keys:
                groups.setdefault(key, []).append(run)
        totals = [GroupTotal.of(by, key, runs) for key, runs in groups.items()]
        return sorted(totals, key=lambda g: g.co2_kg, reverse=True)

    def searches(
        self, objective: str | None = None, direction: str | None = None, **filters
    ) -> list[SearchTotal]:
        """The cost of each hyperparameter search (runs with a search_id), costliest first:
        every trial's runs, failed, pruned and interrupted included, and with `objective`
        (a metric the trials recorded) the best completed trial by its last value, and what
        that trial alone cost. `direction` defaults to `default_direction(objective)`."""
        if direction is not None and direction not in DIRECTIONS:
            raise ConfigurationError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if objective is not None:
            direction = direction or default_direction(objective)
        grouped: dict[str, list[RunRecord]] = {}
        for run in self.runs(**filters):
            if run.search_id is not None:
                grouped.setdefault(run.search_id, []).append(run)
        found = [self._search(key, runs, objective, direction) for key, runs in grouped.items()]
        return sorted(found, key=lambda s: s.co2_kg, reverse=True)

    def _search(
        self, search_id: str, runs: list[RunRecord], objective: str | None, direction: str | None
    ) -> SearchTotal:
        trials: dict[str, list[RunRecord]] = {}
        for run in sorted(runs, key=lambda r: r.id):
            trials.setdefault(run.trial or f"run {run.id}", []).append(run)
        total = SearchTotal(
            search_id=search_id,
            runs=len(runs),
            trials=len(trials),
            statuses=dict(Counter(run.status for run in runs)),
            energy_kwh=sum((run.energy_kwh for run in runs), 0.0),
            co2_kg=sum((run.co2_kg for run in runs), 0.0),
            objective=objective,
            direction=direction,
            no_best="no objective named: pass --objective METRIC to rank the trials",
        )
        if objective is None:
            return total
        values = {}
        for trial, trial_runs in trials.items():
            if all(run.status == "completed" for run in trial_runs):
                value = self._last_value(trial_runs, objective)
                if value is not None:
                    values[trial] = value
        if not values:
            why = f"no completed trial recorded {objective!r}"
            return dataclasses.replace(total, no_best=why)
        pick = min if direction == "minimize" else max
        best = pick(values, key=values.__getitem__)
        return dataclasses.replace(
            total,
            best_trial=best,
            best_value=values[best],
            best_energy_kwh=sum((r.energy_kwh for r in trials[best]), 0.0),
            best_co2_kg=sum((r.co2_kg for r in trials[best]), 0.0),
            no_best=None,
        )

    def _last_value(self, runs: list[RunRecord], metric: str) -> float | None:
        """The last value of `metric` among the runs' intervals, in the order they were marked."""
        value = None
        for run in runs:
            for interval in self.intervals(run.id):
                value = interval.metrics.get(metric, value)
        return value

    def _select_runs(
        self, where: list[str], params: list, limit: int | None = None
    ) -> list[RunRecord]:
        sql = (
            _SELECT_RUNS
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY r.id ORDER BY r.id DESC"
        )
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be 0 or more, got {limit}")
            sql += " LIMIT ?"
            params = [*params, min(int(limit), _MAX_ID)]
        return [_run_record(row) for row in self._read(sql, params)]


def default_direction(objective: str) -> str:
    """The better way for `objective`: "minimize" for a loss or an error (`val_loss`,
    `eval_error`), else "maximize" (accuracy, F1...)."""
    return "minimize" if objective.lower().endswith(("loss", "error")) else "maximize"


@dataclasses.dataclass(frozen=True)
class SearchTotal:
    """A hyperparameter search's cost: every trial's runs whatever their status, and, ranked
    by `objective`, its best completed trial and what that trial alone cost (`no_best` says
    why there is none)."""

    search_id: str
    runs: int
    trials: int
    statuses: dict[str, int]
    energy_kwh: float
    co2_kg: float
    objective: str | None = None
    direction: str | None = None
    best_trial: str | None = None
    best_value: float | None = None
    best_energy_kwh: float | None = None
    best_co2_kg: float | None = None
    no_best: str | None = None

    @property
    def co2_kg_per_trial(self) -> float:
        return self.co2_kg / self.trials if self.trials else 0.0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "co2_kg_per_trial": self.co2_kg_per_trial}


def _interval_record(row: Mapping, metrics: dict[str, float]) -> IntervalRecord:
    return IntervalRecord(
        label=row["label"],
        index=row["idx"],
        started_at=row["started_at"],
        duration_s=row["duration_s"] or 0.0,
        gpu_j=row["gpu_j"] or 0.0,
        cpu_j=row["cpu_j"] or 0.0,
        ram_j=row["ram_j"] or 0.0,
        pue=row["pue"],
        intensity_g_per_kwh=row["intensity_g_per_kwh"],
        intensity_source=row["intensity_source"],
        energy_kwh=row["energy_kwh"] or 0.0,
        co2_kg=row["co2_kg"] or 0.0,
        estimated=tuple(filter(None, (row["estimated"] or "").split(","))),
        metrics=metrics,
        band_j={
            c: row[f"{c}_band_j"] for c in ("gpu", "cpu", "ram") if row[f"{c}_band_j"] is not None
        },
        methods=dict(pair.split("=", 1) for pair in (row["methods"] or "").split()),
        samples=row["samples"],
        tokens=row["tokens"],
        embodied_kg=row["embodied_kg"],
        water_l=row["water_l"],
    )


def _run_record(row: Mapping) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        framework=row["framework"],
        stage=row["stage"],
        fit_run_id=row["fit_run_id"],
        model=row["model"],
        base_model=row["base_model"],
        pretrained=None if row["pretrained"] is None else bool(row["pretrained"]),
        task=row["task"],
        tags=sorted((row["tags"] or "").split("\n")) if row["tags"] else [],
        hardware=json.loads(row["hardware"]) if row["hardware"] else {},
        site=json.loads(row["site"]) if row["site"] else {},
        launch=json.loads(row["launch"]) if row["launch"] else {},
        location=row["location"],
        intensity_g_per_kwh=row["intensity_g_per_kwh"],
        pue=row["pue"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=row["duration_s"],
        status=row["status"],
        stop_reason=row["stop_reason"],
        epochs=row["epochs"],
        energy_kwh=row["energy_kwh"],
        co2_kg=row["co2_kg"],
        gpu_j=row["gpu_j"],
        cpu_j=row["cpu_j"],
        ram_j=row["ram_j"],
        samples=row["samples"],
        tokens=row["tokens"],
        embodied_kg=row["embodied_kg"],
        water_l=row["water_l"],
        search_id=row["search_id"],
        trial=row["trial"],
        trial_params=json.loads(row["trial_params"]) if row["trial_params"] else {},
    )
