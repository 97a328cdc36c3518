"""Tracker: start / mark(label) -> Interval / stop -> Summary.

Intervals tile time: each mark() closes the interval the previous edge opened, so nothing
between marks is dropped. Counters are read only at the edges, after waiting for the
device. A meter that fails mid-run is replaced by its estimate and the run goes on.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from carbonlog._log import logger, warn_once
from carbonlog.distributed import Ranks, ReduceFn, no_reduce
from carbonlog.forecast import forecast_total
from carbonlog.interval import Interval, Summary
from carbonlog.meters import COMPONENTS, Meter
from carbonlog.units import J_PER_KWH

BUDGET_ACTIONS = ("warn", "stop")
BUDGET_CHECKS = ("total", "forecast")
EPOCH = "epoch"


def sync_loaded_frameworks() -> None:
    """Wait for queued GPU work, through a framework that is already loaded (never import one).

    Without it the tail of one epoch's kernels lands in the next epoch's energy.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "live_arrays"):
        jax.block_until_ready(jax.live_arrays())


@dataclass
class _Slot:
    """One meter, its readings at the last edge and the last peek, and its measured history."""

    meter: Meter
    edge_j: float = 0.0
    peek_j: float = 0.0
    measured_j: float = 0.0
    measured_s: float = 0.0

    def mean_power_w(self) -> float | None:
        return self.measured_j / self.measured_s if self.measured_s > 0 else None


def _check_non_negative(name: str, value: float | None) -> None:
    if value is not None and (
        not isinstance(value, int | float) or not math.isfinite(value) or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class Tracker:
    """Measures one run's energy and CO2, interval by interval.

    Configuration is validated here, so a bad argument fails before training starts.
    `reduce` sums per-process joules over all ranks (adapters pass their framework's
    all-reduce); every rank then holds the same totals and takes the same budget decision.
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
        sync=sync_loaded_frameworks,
        planned_epochs: int | None = None,
        budget_kg: float | None = None,
        budget_kwh: float | None = None,
        on_budget: str = "warn",
        budget_check: str = "total",
        run_info: Mapping[str, object] | None = None,
    ):
        from carbonlog.intensity import resolve_site
        from carbonlog.meters import check_meter_options

        _check_non_negative("budget_kg", budget_kg)
        _check_non_negative("budget_kwh", budget_kwh)
        if on_budget not in BUDGET_ACTIONS:
            raise ValueError(f"on_budget must be one of {BUDGET_ACTIONS}, got {on_budget!r}")
        if budget_check not in BUDGET_CHECKS:
            raise ValueError(f"budget_check must be one of {BUDGET_CHECKS}, got {budget_check!r}")
        self.site = resolve_site(location=location, intensity=intensity, pue=pue, live=live)
        self.ranks = ranks or Ranks.from_env()
        self.run_name = run_name
        self.tags = tags
        self.run_info = dict(run_info or {})
        self.planned_epochs = planned_epochs
        self.budget_kg = budget_kg
        self.budget_kwh = budget_kwh
        self.on_budget = on_budget
        self.budget_check = budget_check
        self._ledger_wanted = ledger
        self._reduce = reduce or no_reduce
        self._sync = sync
        self._meter_options = {"gpus": gpus, "cpu": cpu, "ram": ram, "power_w": power_w}
        check_meter_options(**self._meter_options)
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._started = False
        self._stopped: Summary | None = None
        self._run_t0_s = 0.0
        self._edge_s = self._peek_s = 0.0
        self._edge_wall_s = self._peek_wall_s = 0.0
        self._intervals: list[Interval] = []
        self._totals_j = dict.fromkeys(COMPONENTS, 0.0)
        self._energy_kwh_total = 0.0
        self._co2_kg_total = 0.0
        self._epoch_kwh: list[float] = []
        self._epoch_kg: list[float] = []
        self._epochs_before_resume = 0
        self.stop_reason: str | None = None
        self.ledger = None
        self.run_id: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Tracker:
        """Start the meters and open the first interval."""
        from carbonlog.meters import build_meters

        if self._started:
            raise RuntimeError("Tracker.start() was called twice")
        try:
            meters = build_meters(**self._meter_options, host=self.ranks.measures_host)
        except Exception as exc:  # options were checked at construction: this is the hardware
            warn_once("meters", f"carbonlog: no meter could be opened ({exc}); nothing is measured")
            meters = []
        self._slots = [_Slot(meter) for meter in meters]
        self._sync_devices()  # then the edge time, then the counters: as at every mark
        self._run_t0_s = self._edge_s = self._peek_s = time.monotonic()
        self._edge_wall_s = self._peek_wall_s = time.time()
        for slot in self._slots:
            try:
                slot.meter.start()
            except Exception as exc:  # a device that fails to start degrades to its estimate
                self._degrade(slot, exc)
                slot.meter.start()
        self._started = True
        self._open_ledger()
        return self

    def mark(self, label: str = EPOCH, metrics: Mapping[str, float] | None = None) -> Interval:
        """Close the open interval under `label` and open the next; `metrics` go to the ledger."""
        with self._lock:
            if not self._started or self._stopped is not None:
                raise RuntimeError("Tracker.mark() needs a started, not yet stopped tracker")
            interval = self._close_interval(label)
        self._record(interval, metrics)
        return interval

    def annotate(self, interval: Interval, metrics: Mapping[str, float]) -> None:
        """Add metrics the framework reported after `interval` closed (its evaluation)."""
        if self.ledger is not None and metrics:
            self._ledger_call("add_metrics", self.run_id, interval, dict(metrics))

    def stop(self, status: str = "completed", label: str = "end") -> Summary:
        """Close the last interval, stop the meters and return the run's Summary (idempotent)."""
        with self._lock:
            if self._stopped is not None:
                return self._stopped
            if not self._started:
                raise RuntimeError("Tracker.stop() before start()")
            last = self._close_interval(label)
        self._record(last, None)
        for slot in self._slots:
            try:
                slot.meter.close()
            except Exception as exc:
                logger.debug("closing %s meter failed: %s", slot.meter.component, exc)
        summary = Summary(
            run_name=self.run_name,
            status=status,
            duration_s=self._edge_s - self._run_t0_s,  # the intervals' time, not a sum's wait
            gpu_j=self._totals_j["gpu"],
            cpu_j=self._totals_j["cpu"],
            ram_j=self._totals_j["ram"],
            energy_kwh=self._energy_kwh_total,
            co2_kg=self._co2_kg_total,
            intervals=list(self._intervals),
            hardware=self.hardware(),
            site=self.site.describe(),
            run_id=self.run_id,
            stop_reason=self.stop_reason,
        )
        if self.ledger is not None:
            self._ledger_call("end_run", self.run_id, summary)
            self._ledger_call("close")
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
        return list(self._intervals)

    @property
    def energy_kwh_total(self) -> float:
        return self._energy_kwh_total

    @property
    def co2_kg_total(self) -> float:
        return self._co2_kg_total

    @property
    def epochs_done(self) -> int:
        """Epoch intervals so far, those before a resume included."""
        return self._epochs_before_resume + len(self._epoch_kwh)

    @property
    def should_stop(self) -> bool:
        """True once a budget with on_budget="stop" says the run must end."""
        return self.stop_reason is not None and self.on_budget == "stop"

    def hardware(self) -> dict[str, list[dict]]:
        """The devices measured, by component."""
        found: dict[str, list[dict]] = {c: [] for c in COMPONENTS}
        for slot in self._slots:
            try:
                found[slot.meter.component].extend(slot.meter.devices())
            except Exception as exc:
                logger.debug("describing %s meter failed: %s", slot.meter.component, exc)
        return found

    # -- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Totals to carry into a resumed run (checkpoint, JSON sidecar)."""
        return {
            "version": 1,
            "totals_j": dict(self._totals_j),
            "energy_kwh_total": self._energy_kwh_total,
            "co2_kg_total": self._co2_kg_total,
            "epochs_done": self.epochs_done,
            "epoch_kwh": list(self._epoch_kwh),
            "epoch_kg": list(self._epoch_kg),
            "run_id": self.run_id,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Continue the totals of an earlier part of this run. Call before start()."""
        if self._started:
            raise RuntimeError("load_state_dict() must come before start()")
        check_state(state)
        self._totals_j = {c: float(state["totals_j"][c]) for c in COMPONENTS}
        self._energy_kwh_total = float(state["energy_kwh_total"])
        self._co2_kg_total = float(state["co2_kg_total"])
        self._epoch_kwh = [float(v) for v in state.get("epoch_kwh", [])]
        self._epoch_kg = [float(v) for v in state.get("epoch_kg", [])]
        self._epochs_before_resume = int(state.get("epochs_done", 0)) - len(self._epoch_kwh)
        self.run_id = state.get("run_id")

    # -- internals ---------------------------------------------------------------------

    def _sync_devices(self) -> None:
        if self._sync is None:
            return
        try:
            self._sync()
        except Exception as exc:
            warn_once(
                "sync",
                f"carbonlog: waiting for the device failed ({exc}); "
                "epoch edges may be off by the queued work",
            )

    def _degrade(self, slot: _Slot, exc: Exception) -> None:
        """Swap a failed meter for its estimate (and release it); said once per component."""
        failed = slot.meter
        slot.meter = failed.fallback()
        try:
            failed.close()
        except Exception as close_exc:
            logger.debug("closing the failed %s meter: %s", failed.component, close_exc)
        warn_once(
            f"degrade:{failed.component}",
            f"carbonlog: the {failed.component} meter failed ({exc}); "
            f"{failed.component} energy is estimated from now on",
        )

    def _read(self, now_s: float) -> tuple[list[float], list[float], set[str]]:
        """Read every meter once: joules per component since the last edge and the last peek."""
        since_edge = dict.fromkeys(COMPONENTS, 0.0)
        since_peek = dict.fromkeys(COMPONENTS, 0.0)
        estimated: set[str] = set()
        for slot in self._slots:
            component = slot.meter.component
            try:
                now_j = slot.meter.energy_j()
            except Exception as exc:  # the open interval is estimated at the mean power so far
                mean_w = slot.mean_power_w() or 0.0
                self._degrade(slot, exc)
                slot.meter.start()
                now_j = 0.0
                slot.edge_j = -mean_w * (now_s - self._edge_s)
                slot.peek_j = -mean_w * (now_s - self._peek_s)
                estimated.add(component)
            if slot.meter.estimated:
                estimated.add(component)
            since_edge[component] += max(now_j - slot.edge_j, 0.0)
            since_peek[component] += max(now_j - slot.peek_j, 0.0)
            slot.peek_j = now_j
        return list(since_edge.values()), list(since_peek.values()), estimated

    def _summed(self, local: list[float]) -> list[float]:
        """The one sum over processes; on failure, this process's own figures."""
        try:
            return [float(v) for v in self._reduce(local)]
        except Exception as exc:
            warn_once(
                "reduce",
                f"carbonlog: summing over processes failed ({exc}); "
                "this process logs its own energy only",
            )
            return local

    def _interval(
        self,
        label: str,
        joules: list[float],
        started_at_s: float,
        duration_s: float,
        estimated: set[str],
        totals: tuple[float, float],
        g_per_kwh: float,
        source: str,
        forecast: tuple[float | None, float | None] = (None, None),
    ) -> Interval:
        gpu_j, cpu_j, ram_j = joules
        return Interval(
            label=label,
            index=len(self._intervals),
            started_at_s=started_at_s,
            duration_s=duration_s,
            gpu_j=gpu_j,
            cpu_j=cpu_j,
            ram_j=ram_j,
            pue=self.site.pue,
            intensity_g_per_kwh=g_per_kwh,
            intensity_source=source,
            energy_kwh_total=totals[0],
            co2_kg_total=totals[1],
            estimated=tuple(
                c for c, j in zip(COMPONENTS, joules, strict=True) if c in estimated and j > 0
            ),
            forecast_energy_kwh=forecast[0],
            forecast_co2_kg=forecast[1],
        )

    def _energy(self, joules: list[float], g_per_kwh: float) -> tuple[float, float]:
        """Facility kWh and kg CO2 of device joules."""
        energy_kwh = sum(joules) * self.site.pue / J_PER_KWH
        return energy_kwh, energy_kwh * g_per_kwh / 1000.0

    def _close_interval(self, label: str) -> Interval:
        self._sync_devices()
        now_s = time.monotonic()
        duration_s = now_s - self._edge_s
        since_edge, _, estimated = self._read(now_s)
        for slot in self._slots:
            if not slot.meter.estimated:
                slot.measured_j += max(slot.peek_j - slot.edge_j, 0.0)
                slot.measured_s += duration_s
            slot.edge_j = slot.peek_j
        joules = self._summed(since_edge)
        g_per_kwh, source = self.site.current_g_per_kwh()
        energy_kwh, co2_kg = self._energy(joules, g_per_kwh)
        for component, value_j in zip(COMPONENTS, joules, strict=True):
            self._totals_j[component] += value_j
        self._energy_kwh_total += energy_kwh
        self._co2_kg_total += co2_kg
        forecast: tuple[float | None, float | None] = (None, None)
        if label == EPOCH:
            self._epoch_kwh.append(energy_kwh)
            self._epoch_kg.append(co2_kg)
            if self.planned_epochs:
                remaining = self.planned_epochs - self.epochs_done
                forecast = (
                    forecast_total(self._epoch_kwh, remaining, self._energy_kwh_total),
                    forecast_total(self._epoch_kg, remaining, self._co2_kg_total),
                )
        interval = self._interval(
            label,
            joules,
            self._edge_wall_s,
            duration_s,
            estimated,
            (self._energy_kwh_total, self._co2_kg_total),
            g_per_kwh,
            source,
            forecast,
        )
        self._intervals.append(interval)
        self._edge_s = self._peek_s = now_s
        self._edge_wall_s += duration_s
        self._peek_wall_s = self._edge_wall_s
        if label == EPOCH:
            self._check_budget(interval)
        return interval

    def peek(self, label: str = "step") -> Interval:
        """Energy since the last peek or mark, without closing the open interval.

        For step-level logging: the epoch's interval still runs from its edge. The returned
        totals include the open interval so far. Not recorded in the run's intervals.
        """
        with self._lock:
            if not self._started or self._stopped is not None:
                raise RuntimeError("Tracker.peek() needs a started, not yet stopped tracker")
            self._sync_devices()
            now_s = time.monotonic()
            since_edge, since_peek, estimated = self._read(now_s)
            summed = self._summed(since_peek + since_edge)
            g_per_kwh, source = self.site.current_g_per_kwh()
            open_kwh, open_kg = self._energy(summed[3:], g_per_kwh)
            totals = (self._energy_kwh_total + open_kwh, self._co2_kg_total + open_kg)
            interval = self._interval(
                label,
                summed[:3],
                self._peek_wall_s,
                now_s - self._peek_s,
                estimated,
                totals,
                g_per_kwh,
                source,
            )
            self._peek_wall_s += now_s - self._peek_s
            self._peek_s = now_s
            return interval

    def _check_budget(self, interval: Interval) -> None:
        """Decide from totals every rank shares, so all ranks stop at the same epoch."""
        for unit, budget, total, per_epoch in (
            ("kg CO2", self.budget_kg, interval.co2_kg_total, self._epoch_kg),
            ("kWh", self.budget_kwh, interval.energy_kwh_total, self._epoch_kwh),
        ):
            if budget is None or self.stop_reason is not None:
                continue
            if self.budget_check == "forecast":
                next_total = forecast_total(per_epoch, 1, total)
                crossed = next_total > budget
                why = (
                    f"the next epoch would bring the run to {next_total:.4g} {unit}, "
                    f"over its budget of {budget:.4g} {unit}"
                )
            else:
                crossed = total >= budget
                why = f"the run reached {total:.4g} {unit}, its budget is {budget:.4g} {unit}"
            if crossed:
                self.stop_reason = f"budget: {why}"
                action = "stopping training" if self.on_budget == "stop" else "training goes on"
                logger.warning("carbonlog: %s; %s", why, action)

    # -- ledger ------------------------------------------------------------------------

    def _open_ledger(self) -> None:
        """Open the ledger on the global rank-zero process; failures never stop training."""
        if not self._ledger_wanted or not self.ranks.is_global_zero:
            return
        try:
            from carbonlog.ledger import Ledger

            path = self._ledger_wanted if isinstance(self._ledger_wanted, str) else None
            self.ledger = Ledger(path)
            if self.run_id is None or not self.ledger.resume_run(self.run_id):
                self.run_id = self.ledger.begin_run(self)
        except Exception as exc:
            self.ledger = None
            warn_once(
                "ledger",
                f"carbonlog: the run ledger is unavailable ({exc}); "
                "training goes on and totals are kept in memory",
            )

    def _record(self, interval: Interval, metrics: Mapping[str, float] | None) -> None:
        if self.ledger is not None:
            self._ledger_call("add_interval", self.run_id, interval, dict(metrics or {}))

    def _ledger_call(self, method: str, *args) -> None:
        try:
            getattr(self.ledger, method)(*args)
        except Exception as exc:
            warn_once(
                "ledger-write",
                f"carbonlog: writing to the run ledger failed ({exc}); training goes on",
            )


def check_state(state: Mapping) -> None:
    """A ValueError unless `state` is what Tracker.state_dict() writes."""
    try:
        totals_ok = all(float(state["totals_j"][c]) >= 0 for c in COMPONENTS)
        float(state["energy_kwh_total"]), float(state["co2_kg_total"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a carbonlog tracker state: {exc!r}") from None
    if not totals_ok:
        raise ValueError("a carbonlog tracker state has negative totals")


@contextmanager
def track(**kwargs) -> Iterator[Tracker]:
    """`with carbonlog.track(location="FR") as t:` — start on entry, stop on exit."""
    tracker = Tracker(**kwargs)
    with tracker:
        yield tracker
