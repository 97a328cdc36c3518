"""Tracker: start / mark(label) -> Interval / stop -> Summary; a thin facade over its parts.

Intervals tile time: each mark() closes the interval the previous edge opened, so nothing
between marks is dropped. The parts: Edges (meters and clock -> this process's joules), the
one sum over ranks (Sharing), the Account (totals with the resume state, the forecast and the
budget, the Summary), a Recorder that writes the ledger and the Exports, on global rank zero.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from carbonlog import metrics, units
from carbonlog._log import use_ranks, warn_once
from carbonlog.distributed import Ranks, ReduceFn, launch_facts
from carbonlog.errors import ConfigurationError
from carbonlog.export import Exporter, Exports
from carbonlog.interval import Interval, RunSums, Summary
from carbonlog.meters import COMPONENTS
from carbonlog.tracking.account import EPOCH, INTERVALS_KEPT, Account, interval_of
from carbonlog.tracking.edges import Edges
from carbonlog.tracking.footprint import WaterRate, embodied_kg_per_s
from carbonlog.tracking.frameworks import (
    meter_options_for,
    sync_loaded_frameworks,
    wanted_components,
)
from carbonlog.tracking.joules import Joules
from carbonlog.tracking.options import check_options
from carbonlog.tracking.recorder import Recorder, describe_run
from carbonlog.tracking.sharing import Sharing
from carbonlog.tracking.sync import SyncFn, sum_floats, sum_over_ranks
from carbonlog.tracking.totals import RunTotals

__all__ = ["EPOCH", "INTERVALS_KEPT", "Tracker", "track"]


class Tracker:
    """Measures one run's energy and CO2, interval by interval.

    Configuration is validated here, so a bad argument fails before training starts.
    `reduce` sums per-process joules over all ranks (adapters pass their framework's
    all-reduce); every rank then holds the same totals and takes the same budget decision.
    `task`, `model`, `base_model` and `pretrained` say what the run is, for the ledger and
    the savings figures; `run_info` carries the same facts as a mapping (adapters fill it from
    their framework: "framework", "stage", "model", "base_model", "pretrained", "task").
    `exporters` (carbonlog.export) publish every interval for cluster monitoring, on global
    rank zero.
    """

    def __init__(
        self,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        gpus: str | list[int] | None = "auto",
        cpu: str | None = "auto",
        ram: bool = True,
        run_name: str | None = None,
        tags: Mapping[str, str] | list[str] | None = None,
        ledger: bool | str = True,
        *,
        power_w: Mapping[str, float] | None = None,
        live=None,
        reduce: ReduceFn | None = None,
        ranks: Ranks | None = None,
        sync: SyncFn | None = sync_loaded_frameworks,
        planned_epochs: int | None = None,
        budget_kg: float | None = None,
        budget_kwh: float | None = None,
        on_budget: str = "warn",
        budget_check: str = "total",
        run_info: Mapping[str, object] | None = None,
        exporters: Sequence[Exporter] | None = None,
        task: str | None = None,
        model: str | None = None,
        base_model: str | None = None,
        pretrained: bool | None = None,
    ):
        checked = check_options(
            location,
            pue,
            intensity,
            gpus,
            cpu,
            ram,
            run_name,
            tags,
            ledger,
            power_w=power_w,
            live=live,
            budget_kg=budget_kg,
            budget_kwh=budget_kwh,
            on_budget=on_budget,
            budget_check=budget_check,
        )
        self.site = checked.site
        self.budget = checked.budget
        self.ranks = ranks or Ranks.from_env()
        use_ranks(self.ranks)
        self.run_name = run_name
        self.tags = tags
        declared = {
            "task": task,
            "model": model,
            "base_model": base_model,
            "pretrained": pretrained,
        }
        self.run_info = {**(run_info or {}), **{k: v for k, v in declared.items() if v is not None}}
        self._account = Account(self.site.pue, self.budget, planned_epochs)
        self._meter_options = checked.meters
        self._reduce = reduce
        self._sharing = Sharing(reduce, self.ranks, self.site)
        self._sync = sync
        self._recorder = Recorder(ledger if self.ranks.is_global_zero else False)
        self._exports = Exports(exporters, active=self.ranks.is_global_zero)
        self._edges: Edges | None = None
        self._resume_run_id: int | None = None
        self._lock = threading.Lock()
        self._stopped: Summary | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Tracker:
        """Start the meters and open the first interval."""
        from carbonlog.meters import build_meters

        if self._edges is not None:
            raise RuntimeError("Tracker.start() was called twice")
        options = meter_options_for(self._meter_options, self.ranks)
        try:
            meters = build_meters(**options, host=self.ranks.measures_host)
        except ConfigurationError:  # an option this machine cannot honour: the user's to fix
            raise
        except Exception as exc:  # each component degrades alone; this is a bug below that
            warn_once(
                "meters",
                f"carbonlog: no meter could be opened ({exc}); nothing is measured",
                own=True,
            )
            meters = []
        if self._sharing.owns_site:
            self.site.current_g_per_kwh()  # a live source starts its first ask now
        self._edges = Edges(meters, self._sync)
        wanted = wanted_components(options, self.ranks.measures_host)
        self._sharing.unmeasured = wanted - self._edges.components
        self._edges.open()
        self._account.embodied_kg_per_s = embodied_kg_per_s(self._edges.hardware())
        self._account.water = WaterRate.of(self.site.grid)
        if self._recorder.enabled:
            info = describe_run(
                self.run_name,
                self.tags,
                self.run_info,
                self.hardware(),
                self.site.describe(),
                self.budget,
                launch_facts(self.ranks),
            )
            self._recorder.begin(info, self._resume_run_id)
        self._continue_from_ledger()
        self._exports.open(self.run_id, self.run_name, self.run_info, launch_facts(self.ranks))
        return self

    def mark(
        self,
        label: str = EPOCH,
        metrics: Mapping[str, float] | None = None,
        *,
        samples: float | None = None,
        tokens: float | None = None,
    ) -> Interval:
        """Close the open interval under `label` and open the next; `metrics` go to the ledger.

        `samples` and `tokens` are the work this process did in the interval, where the
        framework counts it: summed over processes, unknown if any process does not know it.
        """
        with self._lock:
            self._check_running("mark")
            interval = self._close_interval(label, (samples, tokens))
        self._recorder.interval(interval, metrics)
        self._exports.interval(interval)
        return interval

    def annotate(self, interval: Interval, metrics: Mapping[str, float]) -> None:
        """Add metrics the framework reported after `interval` closed (its evaluation)."""
        self._recorder.annotate(interval, metrics)

    def peek(self, label: str = "step", summed: bool = False) -> Interval:
        """Energy since the last peek or mark, without closing the open interval.

        For step-level logging: the epoch's interval still runs from its edge. The returned
        totals include the open interval so far. Not recorded in the run's intervals. This
        process's own estimate, which the epoch's sum corrects; `summed=True` sums it over
        the ranks now (a collective: every rank must peek alike).
        """
        with self._lock:
            self._check_running("peek")
            window, since_edge = self._edges.peek()
            reduce = self._reduce if summed else None
            piece, open_part = sum_over_ranks(reduce, window.joules, since_edge)
            g_per_kwh, source = self._sharing.last_intensity()
            open_kwh = units.facility_kwh(open_part.device_j, self.site.pue)
            run = self._account.totals
            totals = (run.energy_kwh + open_kwh, run.co2_kg + units.co2_kg(open_kwh, g_per_kwh))
            window = window._replace(joules=piece)
            return interval_of(
                label, run.intervals, window, self.site.pue, (g_per_kwh, source), totals
            )

    def stop(
        self,
        status: str = "completed",
        label: str = "end",
        *,
        samples: float | None = None,
        tokens: float | None = None,
    ) -> Summary:
        """Close the last interval (with the work done in it, as for mark()), stop the meters
        and return the run's Summary (idempotent)."""
        with self._lock:
            if self._stopped is not None:
                return self._stopped
            if self._edges is None:
                raise RuntimeError("Tracker.stop() before start()")
            last = self._close_interval(label, (samples, tokens))
        self._recorder.interval(last, None)
        self._exports.interval(last)
        self._edges.shut()
        summary = self._account.summary(
            status,
            self._edges.elapsed_s,
            run_name=self.run_name,
            hardware=self.hardware(),
            site=self.site.describe(),
            run_id=self.run_id,
        )
        stored = self._account.stored_status(status, self._sharing.alone_from)
        self._recorder.end(*stored, summary.duration_s)
        self._exports.close()
        with self._lock:
            self._stopped = summary
        return summary

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(status="failed" if exc_type else "completed")

    # -- what callers read -------------------------------------------------------------

    @property
    def intervals(self) -> list[Interval]:
        """The run's intervals, the last INTERVALS_KEPT of a longer run (the ledger has all)."""
        return list(self._account.intervals)

    @property
    def energy_kwh_total(self) -> float:
        return self._account.totals.energy_kwh

    @property
    def co2_kg_total(self) -> float:
        return self._account.totals.co2_kg

    @property
    def epochs_done(self) -> int:
        """Epoch intervals so far, those before a resume included."""
        return self._account.totals.epochs_done

    @property
    def planned_epochs(self) -> int | None:
        return self._account.planned_epochs

    @planned_epochs.setter
    def planned_epochs(self, epochs: int | None) -> None:
        self._account.planned_epochs = epochs

    @property
    def stop_reason(self) -> str | None:
        """Why the budget says the run must end ("budget: ..."), else None."""
        return self._account.stop_reason

    @property
    def should_stop(self) -> bool:
        """True once a budget with on_budget="stop" says the run must end."""
        return self.stop_reason is not None and self.budget.action == "stop"

    @property
    def ledger(self):
        """The open ledger on global rank zero (for lookups), else None."""
        return self._recorder.ledger

    @property
    def run_id(self) -> int | None:
        """The run's id in the ledger, once recorded (or resumed)."""
        recorded = self._recorder.run_id
        return recorded if recorded is not None else self._resume_run_id

    def provenance(self, prefix: str) -> dict[str, str | float]:
        """Where the energy is drawn, the intensity and its source, the PUE, and which
        components this process measures and which it estimates: for loggers' run metadata."""
        edges = self._edges
        measured = tuple(c for c in COMPONENTS if edges and c in edges.components)
        estimated = tuple(c for c in COMPONENTS if edges and c in edges.estimating)
        return metrics.provenance(self.site.describe(), measured, estimated, prefix)

    def hardware(self) -> dict[str, list[dict]]:
        """The devices measured, by component."""
        if self._edges is None:
            return {c: [] for c in COMPONENTS}
        return self._edges.hardware()

    # -- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Totals to carry into a resumed run (checkpoint, JSON sidecar)."""
        return self._account.totals.state_dict(self.run_id)

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the totals of an earlier part of this run. Call before start()."""
        if self._edges is not None:
            raise RuntimeError("load_state_dict() must come before start()")
        self._account.totals = RunTotals.from_state(state)
        self._resume_run_id = state.get("run_id")

    # -- internals ---------------------------------------------------------------------

    def _continue_from_ledger(self) -> None:
        """A resumed run goes on from what its ledger run holds when that is more than the
        resume state: a checkpoint taken mid-epoch leaves out the work done after it, which
        the ledger kept. Global rank zero reads it; one sum at start brings it to every rank
        (the band, work, embodied and water of its stored intervals stay rank zero's)."""
        if self._resume_run_id is None:
            return
        mine = [0.0] * 7  # joules per component, kWh, kg, intervals, found
        totals = self._account.totals
        sums = totals.sums
        record = self._recorder.reopened_run(self._resume_run_id)
        if record is not None and record.energy_kwh > totals.energy_kwh:
            joules = [record.gpu_j, record.cpu_j, record.ram_j]
            mine = [*joules, record.energy_kwh, record.co2_kg, len(record.intervals), 1.0]
            sums = RunSums.of(record.intervals)
        if self._reduce is not None and self.ranks.is_distributed:
            mine = sum_floats(self._reduce, mine) or mine
        if mine[6]:
            joules = Joules(*mine[:3])
            self._account.totals = totals.continued(joules, mine[3], mine[4], round(mine[5]), sums)

    def _check_running(self, what: str) -> None:
        if self._edges is None or self._stopped is not None:
            raise RuntimeError(f"Tracker.{what}() needs a started, not yet stopped tracker")

    def _close_interval(
        self, label: str, work: tuple[float | None, float | None] = (None, None)
    ) -> Interval:
        """Edge, the one sum, then the account: one interval, in that order."""
        window, index = self._edges.close(), self._account.totals.intervals
        embodied_kg = self._account.embodied_kg(window.duration_s)
        shared, intensity = self._sharing.share(
            window, self._edges.components, index, (*work, embodied_kg)
        )
        return self._account.close(label, shared, intensity)


@contextmanager
def track(**kwargs) -> Iterator[Tracker]:
    """`with carbonlog.track(location="FR") as t:` — start on entry, stop on exit."""
    tracker = Tracker(**kwargs)
    with tracker:
        yield tracker
