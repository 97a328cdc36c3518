"""What every framework adapter does with a tracker, written once and framework-free.

An adapter translates its hooks into these calls and the returned metric dicts into its
framework's logging call; it holds no arithmetic of its own. One session spans one
callback object: a fit, then perhaps standalone validate/test/predict runs, each its own
Tracker (and ledger run).
"""

from __future__ import annotations

from collections.abc import Mapping

from carbonlog import equivalents, metrics, savings
from carbonlog._log import logger
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.interval import Summary
from carbonlog.text import format_co2, format_interval, format_summary
from carbonlog.tracking import EPOCH, Tracker, check_state

FIT = "fit"
RESERVED = ("ranks", "reduce", "sync", "planned_epochs", "run_info")
"""Tracker options the adapter sets from its framework; a user passing one is an error."""
FORECAST_AFTER_EPOCHS = 2


class Session:
    """Options checked once at construction; a Tracker per stage; the schema dicts out.

    `tracker_options` are Tracker's own arguments (location, pue, intensity, gpus, cpu,
    ram, power_w, live, run_name, tags, ledger, budget_kg, budget_kwh, on_budget,
    budget_check); they fail here, in the user's script, not mid-training.
    """

    def __init__(
        self,
        framework: str,
        prefix: str = metrics.DEFAULT_PREFIX,
        verbose: bool = True,
        pretrained: bool | None = None,
        base_model: str | None = None,
        task: str | None = None,
        **tracker_options,
    ):
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {prefix!r}")
        taken = sorted(set(tracker_options) & set(RESERVED))
        if taken:
            raise TypeError(f"{', '.join(taken)}: set by the {framework} callback, not an option")
        Tracker(**tracker_options)  # validates every option now; meters open at start()
        self.framework = framework
        self.prefix = prefix
        self.verbose = verbose
        self.declared = {"pretrained": pretrained, "base_model": base_model, "task": task}
        self.tracker_options = tracker_options
        self.tracker: Tracker | None = None
        self.stage: str | None = None
        self.last_summary: Summary | None = None
        self.fit_summary: Summary | None = None
        self.reference: savings.Reference | None = None
        self._fit_state: dict | None = None
        self._resume_state: dict | None = None
        self._forecast_said = False

    # -- stages ------------------------------------------------------------------------

    def begin(
        self,
        stage: str = FIT,
        *,
        ranks: Ranks | None = None,
        reduce: ReduceFn | None = None,
        gpus: list[int] | None = None,
        planned_epochs: int | None = None,
        detected: Mapping[str, object] | None = None,
    ) -> Tracker:
        """Start measuring `stage` ("fit", "validate", "test", "predict").

        `gpus` are the CUDA devices this process drives, as the framework knows them;
        `detected` is what the framework tells of the model (name, base model, pretrained).
        Explicit arguments given at construction win over detection.
        """
        if self.tracker is not None:
            self.end(status="interrupted")
        options = dict(self.tracker_options)
        if gpus is not None and options.get("gpus", "auto") == "auto":
            options["gpus"] = gpus
        run_info = {"framework": self.framework, "stage": stage, **(detected or {})}
        run_info.update({k: v for k, v in self.declared.items() if v is not None})
        tracker = Tracker(
            **options,
            ranks=ranks,
            reduce=reduce,
            planned_epochs=planned_epochs,
            run_info=run_info,
        )
        if stage == FIT and self._resume_state is not None:
            tracker.load_state_dict(self._resume_state)
            self._resume_state = None
        self.tracker, self.stage = tracker, stage
        self._forecast_said = False
        tracker.start()
        # every rank joins: rank zero looks the reference up, the sum carries it to the others
        self.reference = savings.reference_for(tracker, reduce=reduce) if stage == FIT else None
        if stage == FIT and self.verbose and tracker.ranks.is_global_zero:
            for note in (
                savings.scratch_hint(tracker.run_info, tracker.ledger),
                cleaner_region_note(tracker.site.grid),
            ):
                if note:
                    logger.info("carbonlog: %s", note)
        return tracker

    def epoch_end(self, framework_metrics: Mapping[str, object] | None = None) -> dict[str, float]:
        """Close the epoch's interval; the schema dict to log (empty when not measuring).

        `framework_metrics` (loss, accuracy: the framework's logs as they are) go to the
        ledger with the interval; see `scalars` for what is kept.
        """
        if self.tracker is None:
            return {}
        interval = self.tracker.mark(EPOCH, metrics=self.scalars(framework_metrics or {}))
        if self.verbose and self.tracker.ranks.is_global_zero:
            logger.info("carbonlog: %s", format_interval(interval))
        self._say_forecast_once()
        saved_kg = savings.saved_vs_scratch_kg(self.reference, interval.co2_kg_total)
        return metrics.to_dict(interval, self.prefix, saved_vs_scratch_kg=saved_kg)

    def annotate_epoch(self, framework_metrics: Mapping[str, object]) -> None:
        """Metrics of the evaluation a framework runs after the epoch closed, for its record."""
        tracker = self.tracker
        epochs = [iv for iv in tracker.intervals if iv.label == EPOCH] if tracker else []
        if epochs:
            tracker.annotate(epochs[-1], self.scalars(framework_metrics))

    def scalars(self, values: Mapping[str, object]) -> dict[str, float]:
        """The framework's own scalar metrics as floats: numbers and one-element tensors
        (duck-typed, no framework import); carbonlog's keys (the prefix in the name) left out."""
        found = {}
        for name, value in values.items():
            if self.prefix in name or isinstance(value, bool):
                continue
            numel = getattr(value, "numel", None)
            if isinstance(value, int | float) or (callable(numel) and numel() == 1):
                found[name] = float(value)
        return found

    def step(self) -> dict[str, float]:
        """Energy since the last step log, for step-level logging, under `<prefix>step/`."""
        if self.tracker is None:
            return {}
        return metrics.to_dict(self.tracker.peek("step"), self.prefix, stage="step")

    def end(self, status: str = "completed") -> dict[str, float]:
        """Stop the stage's tracker; its totals as a dict (training keys for fit, else staged)."""
        if self.tracker is None:
            return {}
        tracker, stage = self.tracker, self.stage
        self.tracker = self.stage = None
        summary = tracker.stop(status=status)
        self.last_summary = summary
        if stage == FIT:
            self._fit_state = tracker.state_dict()
            self.fit_summary = summary
        if tracker.ranks.is_global_zero:
            logger.info(format_summary(summary, stage or "run"))
        if not summary.intervals:
            return {}
        last = summary.intervals[-1]
        totals = {"energy_kwh_total": summary.energy_kwh, "co2_kg_total": summary.co2_kg}
        if stage == FIT:  # not `duration_s`: that key is each epoch's own length
            totals["duration_s_total"] = summary.duration_s
        if stage == FIT and self.reference is not None:
            if tracker.ranks.is_global_zero:
                logger.info("carbonlog: %s", self.reference.statement(summary.co2_kg))
            totals["co2_saved_vs_scratch_kg"] = self.reference.saved_kg(summary.co2_kg)
        if stage != FIT:
            totals["duration_s"] = summary.duration_s
            totals["energy_kwh"] = summary.energy_kwh
            totals["co2_kg"] = summary.co2_kg
            totals["intensity_g_per_kwh"] = last.intensity_g_per_kwh
        key_stage = None if stage == FIT else stage
        return {metrics.metric_key(k, self.prefix, key_stage): float(v) for k, v in totals.items()}

    def plan(self, planned_epochs: int | None) -> None:
        """The fit's planned length, for the forecast, once the framework knows it."""
        if self.tracker is not None:
            self.tracker.planned_epochs = planned_epochs

    @property
    def should_stop(self) -> bool:
        """A budget with on_budget="stop" was reached: the adapter asks its framework to stop."""
        return self.tracker is not None and self.tracker.should_stop

    # -- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The fit's totals so far (or at its end), for the framework's checkpoint."""
        if self.tracker is not None and self.stage == FIT:
            return self.tracker.state_dict()
        return dict(self._fit_state or self._resume_state or {})

    def load_state_dict(self, state: Mapping) -> None:
        """Totals of an earlier part of this fit; applied when the fit begins. Checked now."""
        if state:
            check_state(state)
        self._resume_state = dict(state) if state else None

    # -- internals ---------------------------------------------------------------------

    def _say_forecast_once(self) -> None:
        tracker = self.tracker
        if not self.verbose or self._forecast_said or tracker is None or not tracker.intervals:
            return
        forecast_kg = tracker.intervals[-1].forecast_co2_kg
        if forecast_kg is None or len(tracker.intervals) < FORECAST_AFTER_EPOCHS:
            return
        self._forecast_said = True
        if tracker.ranks.is_global_zero:
            kwh = tracker.intervals[-1].forecast_energy_kwh
            picture = equivalents.describe_tangible(forecast_kg)
            logger.info(
                "carbonlog: this run will use about %.3g kWh and emit about %s CO2%s",
                kwh,
                format_co2(forecast_kg),
                f", {picture}" if picture else "",
            )


class SessionOwner:
    """What every adapter's callback exposes: its Session and the last fit's Summary."""

    _session: Session

    @property
    def session(self) -> Session:
        """The framework-free part: the current tracker and the last summaries."""
        return self._session

    @property
    def summary(self) -> Summary | None:
        """The last fit's Summary (totals, intervals, hardware), once it has ended."""
        return self._session.fit_summary


def cleaner_region_note(grid) -> str | None:
    """For a cloud region: the same provider's cleanest region and how many times less it emits."""
    from carbonlog.estimate import cleanest_region

    best, best_kg = cleanest_region(grid, device_kwh=1.0, user_pue=None)
    if best is None or best.code == grid.code:
        return None
    here_kg = (grid.pue or 1.0) * grid.g_per_kwh / 1000.0
    factor = f"{here_kg / best_kg:.0f}x less" if best_kg > 0 else "almost nothing"
    return f"{best.name} ({best.code}) would emit {factor} than {grid.name} for the same energy"
