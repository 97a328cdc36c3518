"""What every framework adapter does with a tracker, written once and framework-free.

An adapter translates its hooks into these calls and the returned metric dicts into its
framework's logging call; it holds no arithmetic of its own and never sees the Tracker. One
session spans one callback object: a fit, then perhaps standalone validate/test/predict runs,
each its own Tracker (and ledger run).
"""

from __future__ import annotations

from collections.abc import Mapping

from carbonlog import equivalents, metrics, savings
from carbonlog._log import logger
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.interval import Summary
from carbonlog.report.text import format_co2, format_interval, format_summary
from carbonlog.tracking import EPOCH, Tracker, check_options, check_state
from carbonlog.units import co2_kg

FIT = "fit"
RESERVED = ("ranks", "reduce", "sync", "planned_epochs", "run_info")
"""Tracker options the adapter sets from its framework; a user passing one is an error."""
FORECAST_AFTER_EPOCHS = 2
NOTE_DEVICE_KWH = 1.0
"""The energy the cleaner-region note compares regions on (only the ratio is said)."""


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
        check_options(**tracker_options)  # meters open at start(), with the stage's tracker
        self._framework = framework
        self._prefix = prefix
        self._verbose = verbose
        self._declared = {"pretrained": pretrained, "base_model": base_model, "task": task}
        self._tracker_options = tracker_options
        self._tracker: Tracker | None = None
        self._stage: str | None = None
        self._ranks = Ranks.from_env()
        self._pretrained: bool | None = None
        self._last_summary: Summary | None = None
        self._fit_summary: Summary | None = None
        self._reference: savings.Reference | None = None
        self._fit_state: dict | None = None
        self._resume_state: dict | None = None
        self._forecast_said = False

    # -- what adapters read ------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The key prefix of every published dict (`carbon/` by default)."""
        return self._prefix

    @property
    def stage(self) -> str | None:
        """The stage being measured ("fit", "validate", ...), None between stages."""
        return self._stage

    @property
    def is_measuring(self) -> bool:
        """A stage has begun and not yet ended."""
        return self._tracker is not None

    @property
    def is_global_zero(self) -> bool:
        """This process is global rank zero (of the last stage begun), the one that writes."""
        return self._ranks.is_global_zero

    @property
    def pretrained(self) -> bool | None:
        """The last fit fine-tunes a pretrained model (declared, else detected); None: unknown."""
        return self._pretrained

    @property
    def last_summary(self) -> Summary | None:
        """The Summary of the last stage that ended (fit or standalone)."""
        return self._last_summary

    @property
    def fit_summary(self) -> Summary | None:
        """The Summary of the last fit that ended."""
        return self._fit_summary

    @property
    def should_stop(self) -> bool:
        """A budget with on_budget="stop" was reached: the adapter asks its framework to stop."""
        return self._tracker is not None and self._tracker.should_stop

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
    ) -> None:
        """Start measuring `stage` ("fit", "validate", "test", "predict").

        `gpus` are the CUDA devices this process drives, as the framework knows them;
        `detected` is what the framework tells of the model (name, base model, pretrained).
        Explicit arguments given at construction win over detection.
        """
        if self._tracker is not None:
            self.end(status="interrupted")
        options = dict(self._tracker_options)
        if gpus is not None and options.get("gpus", "auto") == "auto":
            options["gpus"] = gpus
        run_info = {"framework": self._framework, "stage": stage, **(detected or {})}
        run_info.update({k: v for k, v in self._declared.items() if v is not None})
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
        self._tracker, self._stage, self._ranks = tracker, stage, tracker.ranks
        self._forecast_said = False
        tracker.start()
        self._reference = None
        if stage == FIT:
            self._pretrained = run_info.get("pretrained")
            self._reference = self._share_reference(tracker, reduce)
            if self._verbose and self.is_global_zero:
                self._say_begin_notes(tracker)

    def epoch_end(self, framework_metrics: Mapping[str, object] | None = None) -> dict[str, float]:
        """Close the epoch's interval; the schema dict to log (empty when not measuring).

        `framework_metrics` (loss, accuracy: the framework's logs as they are) go to the
        ledger with the interval; see `scalars` for what is kept.
        """
        if self._tracker is None:
            return {}
        interval = self._tracker.mark(EPOCH, metrics=self.scalars(framework_metrics or {}))
        if self._verbose and self.is_global_zero:
            logger.info("carbonlog: %s", format_interval(interval))
        self._say_forecast_once()
        saved_kg = savings.saved_vs_scratch_kg(self._reference, interval.co2_kg_total)
        return metrics.to_dict(interval, self._prefix, saved_vs_scratch_kg=saved_kg)

    def annotate_epoch(self, framework_metrics: Mapping[str, object]) -> None:
        """Metrics of the evaluation a framework runs after the epoch closed, for its record."""
        tracker = self._tracker
        epochs = [iv for iv in tracker.intervals if iv.label == EPOCH] if tracker else []
        if epochs:
            tracker.annotate(epochs[-1], self.scalars(framework_metrics))

    def scalars(self, values: Mapping[str, object]) -> dict[str, float]:
        """The framework's own scalar metrics as floats: numbers and one-element tensors
        (duck-typed, no framework import); carbonlog's keys (the prefix in the name) left out."""
        found = {}
        for name, value in values.items():
            if self._prefix in name or isinstance(value, bool):
                continue
            numel = getattr(value, "numel", None)
            if isinstance(value, int | float) or (callable(numel) and numel() == 1):
                found[name] = float(value)
        return found

    def step(self) -> dict[str, float]:
        """Energy since the last step log, for step-level logging, under `<prefix>step/`."""
        if self._tracker is None:
            return {}
        return metrics.to_dict(self._tracker.peek("step"), self._prefix, stage="step")

    def end(self, status: str = "completed") -> dict[str, float]:
        """Stop the stage's tracker; its totals as a dict (training keys for fit, else staged)."""
        if self._tracker is None:
            return {}
        tracker, stage = self._tracker, self._stage
        self._tracker = self._stage = None
        summary = tracker.stop(status=status)
        self._last_summary = summary
        if stage == FIT:
            self._fit_state = tracker.state_dict()
            self._fit_summary = summary
        if self.is_global_zero:
            logger.info(format_summary(summary, stage))
            if stage == FIT and self._reference is not None and summary.intervals:
                logger.info("carbonlog: %s", self._reference.statement(summary.co2_kg))
        if stage == FIT:
            saved_kg = savings.saved_vs_scratch_kg(self._reference, summary.co2_kg)
            return metrics.totals_dict(summary, self._prefix, saved_vs_scratch_kg=saved_kg)
        return metrics.totals_dict(summary, self._prefix, stage=stage)

    def plan(self, planned_epochs: int | None) -> None:
        """The fit's planned length, for the forecast, once the framework knows it."""
        if self._tracker is not None:
            self._tracker.planned_epochs = planned_epochs

    # -- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The fit's totals so far (or at its end), for the framework's checkpoint."""
        if self._tracker is not None and self._stage == FIT:
            return self._tracker.state_dict()
        return dict(self._fit_state or self._resume_state or {})

    def load_state_dict(self, state: Mapping) -> None:
        """Totals of an earlier part of this fit; applied when the fit begins. Checked now."""
        if state:
            check_state(state)
        self._resume_state = dict(state) if state else None

    # -- internals ---------------------------------------------------------------------

    def _share_reference(
        self, tracker: Tracker, reduce: ReduceFn | None
    ) -> savings.Reference | None:
        """A fine-tuning's from-scratch reference: rank zero looks it up and every rank joins
        the sum that carries it to the others; every rank skips both for other runs."""
        run_info = tracker.run_info
        if run_info.get("pretrained") is not True:
            return None
        found = None
        if self.is_global_zero:
            found = savings.reference_for(
                tracker.ledger,
                run_info.get("base_model") or run_info.get("model"),
                run_info.get("task"),
                exclude_run_id=tracker.run_id,
            )
        return savings.share_reference(found, reduce, tracker.ranks.world_size)

    def _say_begin_notes(self, tracker: Tracker) -> None:
        """At a fit's start: that fine-tuning exists (for a scratch run), a cleaner region."""
        for note in (
            savings.scratch_hint(tracker.run_info, tracker.ledger),
            cleaner_region_note(tracker.site.grid),
        ):
            if note:
                logger.info("carbonlog: %s", note)

    def _say_forecast_once(self) -> None:
        tracker = self._tracker
        if not self._verbose or self._forecast_said or tracker is None or not tracker.intervals:
            return
        forecast_kg = tracker.intervals[-1].forecast_co2_kg
        if forecast_kg is None or len(tracker.intervals) < FORECAST_AFTER_EPOCHS:
            return
        self._forecast_said = True
        if self.is_global_zero:
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
        """The framework-free part: what is being measured and the last summaries."""
        return self._session

    @property
    def summary(self) -> Summary | None:
        """The last fit's Summary (totals, intervals, hardware), once it has ended."""
        return self._session.fit_summary


def cleaner_region_note(grid) -> str | None:
    """For a cloud region: the same provider's cleanest region and how many times less it emits."""
    from carbonlog.estimate import cleanest_region

    best, best_kg = cleanest_region(grid, device_kwh=NOTE_DEVICE_KWH, user_pue=None)
    if best is None or best.code == grid.code:
        return None
    here_kg = co2_kg(NOTE_DEVICE_KWH * (grid.pue or 1.0), grid.g_per_kwh)
    factor = f"{here_kg / best_kg:.0f}x less" if best_kg > 0 else "almost nothing"
    return f"{best.name} ({best.code}) would emit {factor} than {grid.name} for the same energy"
