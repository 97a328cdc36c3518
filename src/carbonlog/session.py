"""What every framework adapter does with a tracker, written once and framework-free.

An adapter translates its hooks into these calls and the returned metric dicts into its
framework's logging call; it holds no arithmetic of its own and never sees the Tracker. One
session spans one callback object: a fit, then perhaps standalone validate/test/predict runs,
each its own Tracker (and ledger run).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Mapping, Sequence

from carbonlog import metrics, savings
from carbonlog._log import say
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.interval import Summary
from carbonlog.notes import Notes, planning_forecast
from carbonlog.report import model_card
from carbonlog.tracking import EPOCH, Tracker, check_options
from carbonlog.tracking.totals import STATE_VERSION, RunTotals
from carbonlog.trials import SearchTrial

FIT = "fit"
INTERRUPTED = "interrupted"
RESERVED = ("ranks", "reduce", "sync", "planned_epochs", "run_info")
"""Tracker options the adapter sets from its framework; a user passing one is an error."""


class Session:
    """Options checked once at construction; a Tracker per stage; the schema dicts out, in
    the `metrics` set ("compact" by default, or "full": see carbonlog.metrics.METRIC_SETS).

    `search`, `trial` and `trial_params` mark each run as a trial of a hyperparameter search
    (carbonlog.trials.SearchTrial); `intensity_forecast` (a forecast file or Forecast the user
    has) adds the greenest start it held to the fit's summary (carbonlog.notes.greenest_note).
    `tracker_options` are Tracker's own arguments (location, pue, intensity, gpus, cpu, ram,
    power_w, live, run_name, tags, ledger, budget_kg, budget_kwh, on_budget, budget_check);
    they fail here, in the user's script, not mid-training.
    """

    def __init__(
        self,
        framework: str,
        prefix: str = metrics.DEFAULT_PREFIX,
        verbose: bool = True,
        pretrained: bool | None = None,
        base_model: str | None = None,
        task: str | None = None,
        metrics: str = "compact",
        search: object = None,
        trial: object = None,
        trial_params: Mapping[str, object] | None = None,
        intensity_forecast: object = None,
        **tracker_options,
    ):
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {prefix!r}")
        self._metrics = _metric_set(metrics)
        taken = sorted(set(tracker_options) & set(RESERVED))
        if taken:
            raise TypeError(f"{', '.join(taken)}: set by the {framework} callback, not an option")
        check_options(**tracker_options)  # meters open at start(), with the stage's tracker
        self._framework = framework
        self._prefix = prefix
        self._notes = Notes(verbose, planning_forecast(intensity_forecast))
        self._declared = {"pretrained": pretrained, "base_model": base_model, "task": task}
        self._search = SearchTrial(search, trial, trial_params)
        self._tracker_options = tracker_options
        self._tracker: Tracker | None = None
        self._stage: str | None = None
        self._at_exit: weakref.finalize | None = None
        self._ranks = Ranks.from_env()
        self._pretrained: bool | None = None
        self._last_summary: Summary | None = None
        self._fit_summary: Summary | None = None
        self._reference: savings.Reference | None = None
        self._fit_state: dict | None = None
        self._resume = _Resume()
        self._work = _Work()

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
    def resume_epochs(self) -> int | None:
        """Epochs the resume state the next fit continues holds; None without one."""
        return self._resume.epochs

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
        Explicit arguments given at construction win over detection. A stage still open is
        one its framework abandoned: it ends first, as "interrupted".
        """
        self.abandon()
        options = dict(self._tracker_options)
        if gpus is not None and options.get("gpus", "auto") == "auto":
            options["gpus"] = gpus
        run_info = {"framework": self._framework, "stage": stage, **(detected or {})}
        run_info.update({k: v for k, v in self._declared.items() if v is not None})
        run_info.update(self._search.facts())
        stage_sum = _StageSum(reduce) if reduce is not None else None
        tracker = Tracker(
            **options,
            ranks=ranks,
            reduce=stage_sum,
            planned_epochs=planned_epochs,
            run_info=run_info,
        )
        resumed, resume_note = self._resume.take() if stage == FIT else (None, None)
        if resumed is not None:
            tracker.load_state_dict(resumed)
        tracker.start()
        self._tracker, self._stage, self._ranks = tracker, stage, tracker.ranks
        self._work = _Work()
        self._at_exit = weakref.finalize(self, _close_abandoned, tracker, stage_sum)
        if resume_note:
            say(resume_note)
        self._reference = None
        if stage == FIT:
            self._pretrained = run_info.get("pretrained")
            self._reference = _fit_reference(tracker, reduce)
            self._notes.fit_begins(tracker)

    def epoch_end(
        self, framework_metrics: Mapping[str, object] | None = None, label: str = EPOCH
    ) -> dict[str, float]:
        """Close the epoch's interval (or a custom loop's, under `label`: the budget and the
        forecast count "epoch" marks); the schema dict to log (empty when not measuring).

        `framework_metrics` (loss, accuracy: the framework's logs as they are) go to the
        ledger with the interval; see `scalars` for what is kept.
        """
        if self._tracker is None:
            return {}
        interval = self._tracker.mark(
            label, metrics=self.scalars(framework_metrics or {}), **self._work.take()
        )
        self._notes.epoch_ends(self._tracker, interval)
        saved_kg = savings.saved_vs_scratch_kg(self._reference, interval.co2_kg_total)
        return metrics.to_dict(
            interval, self._prefix, saved_vs_scratch_kg=saved_kg, keys=self._metrics
        )

    def add_work(
        self, samples: float | None = None, tokens: float | None = None, everywhere: bool = False
    ) -> None:
        """Count work done in the open interval: samples (a batch's size) and input tokens of
        this process, or with `everywhere` a count the framework already summed over processes
        (the Trainer's tokens), which global rank zero alone brings to the interval's sum."""
        if self._tracker is None:
            return
        mine = not everywhere or self._ranks.is_global_zero
        self._work.add(samples if mine else 0.0, tokens if mine else 0.0)

    def annotate_epoch(self, framework_metrics: Mapping[str, object]) -> None:
        """Metrics of the evaluation a framework runs after the epoch closed, for its record."""
        tracker = self._tracker
        epochs = [iv for iv in tracker.intervals if iv.label == EPOCH] if tracker else []
        if epochs:
            tracker.annotate(epochs[-1], self.scalars(framework_metrics))

    def scalars(self, values: Mapping[str, object]) -> dict[str, float]:
        """The framework's own scalar metrics as floats (see `framework_scalars`)."""
        return framework_scalars(values, self._prefix)

    def step(self, summed: bool = False) -> dict[str, float]:
        """Energy since the last step log, for step-level logging, under `<prefix>step/`.

        This process's own reading unless `summed` (then one sum over processes: every
        process must call it alike); the epoch's sum corrects it either way.
        """
        if self._tracker is None:
            return {}
        piece = self._tracker.peek("step", summed=summed)
        return metrics.to_dict(piece, self._prefix, stage="step", keys=self._metrics)

    def running_totals(self, now: bool = False) -> dict[str, float]:
        """The stage's `<prefix>energy_kwh_total` and `<prefix>co2_kg_total`: as of the last
        epoch edge (no counter read), or with `now` up to this moment, summed over processes
        (a peek: every process must call it alike, and the next `step()` piece starts here).
        Empty when not measuring."""
        if self._tracker is None:
            return {}
        source = self._tracker.peek("step", summed=True) if now else self._tracker
        return {
            metrics.metric_key("energy_kwh_total", self._prefix): source.energy_kwh_total,
            metrics.metric_key("co2_kg_total", self._prefix): source.co2_kg_total,
        }

    def provenance(self) -> dict[str, str | float]:
        """The running stage's provenance under the prefix, for a logger's run metadata
        (location, intensity with its source and year, PUE, which components are measured
        and which estimated); empty when not measuring."""
        if self._tracker is None:
            return {}
        return self._tracker.provenance(self._prefix)

    def end(self, status: str = "completed") -> dict[str, float]:
        """Stop the stage's tracker; its totals as a dict (training keys for fit, else staged)."""
        if self._tracker is None:
            return {}
        tracker, stage = self._tracker, self._stage
        self._tracker = self._stage = None
        self._at_exit.detach()
        summary = tracker.stop(status=status, **self._work.take())
        self._last_summary = summary
        if stage == FIT:
            self._fit_state = tracker.state_dict()
            self._fit_summary = summary
        self._notes.stage_ends(summary, stage, self._reference if stage == FIT else None)
        if stage == FIT:
            saved_kg = savings.saved_vs_scratch_kg(self._reference, summary.co2_kg)
            return metrics.totals_dict(summary, self._prefix, saved_vs_scratch_kg=saved_kg)
        return metrics.totals_dict(summary, self._prefix, stage=stage)

    def abandon(self) -> None:
        """End a stage its framework left without calling its end hook (Ctrl-C, an error the
        framework reports to no callback) as "interrupted", with this process's own figures
        for the last interval: the other processes may never join a sum now."""
        if self._tracker is None:
            return
        say(
            f"carbonlog: the {self._stage} left unfinished is closed as interrupted",
            level=logging.INFO,
        )
        self._at_exit()  # stops the tracker alone; end() then finds it stopped
        self.end(INTERRUPTED)

    def plan(self, planned_epochs: int | None) -> None:
        """The fit's planned length, for the forecast, once the framework knows it."""
        if self._tracker is not None:
            self._tracker.planned_epochs = planned_epochs

    # -- resume ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The fit's totals so far (or at its end), for the framework's checkpoint."""
        if self._tracker is not None and self._stage == FIT:
            return self._tracker.state_dict()
        return dict(self._fit_state or self._resume.state or {})

    def load_state_dict(self, state: object, source: str = "the checkpoint") -> bool:
        """Totals of an earlier part of this fit, continued when the fit begins; True if taken.

        None carries nothing. A state that is not sound is refused, and the fit's totals start
        over; a newer carbonlog's state is read where every field this one reads is sound.
        Either is said once, as the fit begins (on global rank zero, once the rank is known).
        """
        return self._resume.load(state, source)

    def refuse_state(self, why: str) -> None:
        """A resume state that could not even be read (`why`): the fit's totals start over."""
        self._resume.refuse(why)

    # -- the model card ----------------------------------------------------------------

    def model_card_co2(self, processes: int = 1) -> dict[str, object] | None:
        """The last fit's `co2_eq_emissions` for a Hugging Face model card (in grams), None
        before a fit ended; `processes`: the training processes, each driving as many GPUs as
        this one."""
        if self._fit_summary is None:
            return None
        return model_card.co2_eq_emissions(self._fit_summary, self._pretrained, processes)

    @staticmethod
    def add_to_model_card(path: str | os.PathLike, co2: Mapping[str, object]) -> None:
        """Set `co2_eq_emissions` in the card's front matter at `path`, the rest kept."""
        model_card.add_co2_to_model_card(path, co2)


def framework_scalars(values: Mapping[str, object], prefix: str) -> dict[str, float]:
    """Numbers and one-element tensors (duck-typed, no framework import) as floats;
    carbonlog's keys (`prefix` in the name) and booleans left out."""
    found = {}
    for name, value in values.items():
        if prefix in name or isinstance(value, bool):
            continue
        numel = getattr(value, "numel", None)
        if isinstance(value, int | float) or (callable(numel) and numel() == 1):
            found[name] = float(value)
    return found


def _metric_set(name: object) -> str:
    """The per-interval set's name, checked against carbonlog.metrics.METRIC_SETS."""
    if not isinstance(name, str):
        raise TypeError(f"metrics must be a string, one of {tuple(metrics.METRIC_SETS)}")
    return metrics.check_metric_set(name)


class _Resume:
    """A fit's resume state from its loading to the fit's beginning: the state to continue and
    its epochs, or none; and what the user is told of it, said when the fit begins."""

    def __init__(self) -> None:
        self.state: dict | None = None
        self.epochs: int | None = None
        self.note: str | None = None

    def load(self, state: object, source: str) -> bool:
        self.state = self.epochs = self.note = None
        if state is None:
            return False
        try:
            totals = RunTotals.from_state(state)  # checks every field it reads
        except ValueError as exc:
            self.refuse(f"the resume state in {source} is refused ({exc})")
            return False
        self.state, self.epochs = dict(state), totals.epochs_done
        version = state.get("version", STATE_VERSION)
        if version > STATE_VERSION:
            self.note = (
                f"carbonlog: the resume state in {source} was written by a newer carbonlog "
                f"(state version {version}; this one reads {STATE_VERSION}): its totals "
                "continue, what this version does not know of it is left out"
            )
        return True

    def refuse(self, why: str) -> None:
        self.state = self.epochs = None
        self.note = f"carbonlog: {why}; energy and CO2 totals start over"

    def take(self) -> tuple[dict | None, str | None]:
        """The state to continue and the note to say, for the fit that begins now."""
        taken = self.state, self.note
        self.state = self.epochs = self.note = None
        return taken


class _Work:
    """Samples and tokens counted since the last edge; None for what nobody counted."""

    def __init__(self) -> None:
        self.samples: float | None = None
        self.tokens: float | None = None

    def add(self, samples: float | None, tokens: float | None) -> None:
        if samples is not None:
            self.samples = (self.samples or 0.0) + float(samples)
        if tokens is not None:
            self.tokens = (self.tokens or 0.0) + float(tokens)

    def take(self) -> dict[str, float | None]:
        """The counts for the interval that closes now; the next one counts from zero."""
        taken = {"samples": self.samples, "tokens": self.tokens}
        self.samples = self.tokens = None
        return taken


class _StageSum:
    """A stage's sum over processes (the framework's), until the stage is abandoned: then each
    process keeps its own figures, since the others may never join a collective."""

    def __init__(self, reduce: ReduceFn):
        self._reduce = reduce
        self.abandoned = False

    def __call__(self, values: Sequence[float]) -> Sequence[float]:
        return list(values) if self.abandoned else self._reduce(values)


def _close_abandoned(tracker: Tracker, stage_sum: _StageSum | None) -> None:
    """The run of a stage still open when it is abandoned, its session is collected or the
    process exits: it ends "interrupted" in the ledger (never "running" for good)."""
    if stage_sum is not None:
        stage_sum.abandoned = True
    tracker.stop(status=INTERRUPTED)


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


def _fit_reference(tracker: Tracker, reduce: ReduceFn | None) -> savings.Reference | None:
    """A fine-tuning's from-scratch reference: rank zero looks it up and every rank joins
    the sum that carries it to the others; every rank skips both for other runs."""
    run_info = tracker.run_info
    if run_info.get("pretrained") is not True:
        return None
    found = None
    if tracker.ranks.is_global_zero:
        found = savings.reference_for(
            tracker.ledger,
            run_info.get("base_model") or run_info.get("model"),
            run_info.get("task"),
            exclude_run_id=tracker.run_id,
        )
    return savings.share_reference(found, reduce, tracker.ranks.world_size)
