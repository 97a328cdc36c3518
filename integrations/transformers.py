"""Hugging Face Transformers: energy and CO2 per epoch, in every `report_to` reporter.

    from carbonlog.integrations.transformers import EmissionsCallback
    trainer = Trainer(..., callbacks=[EmissionsCallback(location="FR")])

What goes where (docs/quickstart/transformers.md; TensorBoard and W&B add `train/`):

- Each epoch's last optimizer step (before that step's log, evaluation and save, so its
  checkpoint holds the epoch): the epoch in the chosen set (`metrics=`), as a log event of its
  own through the Trainer's callback handler (every reporter, `state.log_history`). Counters
  are read, and summed over processes, there and at the end of training only.
- The Trainer's last log (what `train()` returns): the run's totals; the model card that
  `create_model_card()` and `push_to_hub()` write gets `co2_eq_emissions` (grams).
- As a `train()`'s first epoch begins: the run's provenance, in each reporter's run metadata.
- Each epoch's work, for the energy per sample and per token (`metrics="full"`, the Summary):
  its optimizer steps x the total batch, at most the training set, and the Trainer's own
  `num_input_tokens_seen` (with `include_num_input_tokens_seen`).
- A standalone `evaluate()`/`predict()` is its own run, from its first prediction step (no
  hook comes before it): `<metric_key_prefix>_carbon/*` are its figures, no running totals.
- `log_steps=True` (under the "steps" logging strategy): pieces summed over processes, the
  energy since the last piece at each training log (`carbon/step/*`) and of each evaluation
  inside training (`eval_carbon/*`, from the step or epoch end that set should_evaluate);
  with the last one, in the final log, they tile the run. Evaluation keys stay out of
  `log_history`, where the model card would make columns of them.

Reporters only see keys added before they run, and callbacks passed as `callbacks=[...]`
come after them, so the callback moves itself ahead of them (right after DefaultFlowCallback)
when the Trainer first calls it; the handler and the Trainer are found up the call stack,
since hooks are not given them. Where that fails, a warning says how to order callbacks.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from carbonlog import metrics
from carbonlog.distributed import Ranks
from carbonlog.integrations._common import (
    cuda_devices,
    is_available,
    new_session,
    require,
    torch_sum,
    with_options_doc,
)
from carbonlog.session import FIT, INTERRUPTED, SessionOwner

STATE_KEY = "carbonlog"
"""Where the run's totals travel in `trainer_state.json` (`stateful_callbacks`), for resume."""
STATE_SOURCE = "the checkpoint's trainer_state.json"
INFERENCE = "inference"
_RUNTIME = "_runtime"
_TRAIN_RUNTIME = "train_runtime"
_FINAL_LOG_KEY = "train_steps_per_second"
"""A key of the Trainer's final log alone: with include_num_input_tokens_seen every training log
holds `train_runtime` (and `train_tokens_per_second`) too."""
_TOTAL = "_total"
_STEP = "step"

__all__ = [
    "EmissionsCallback",
    "detect_model",
    "evaluation_keys",
    "inference_prefix",
    "is_transformers_available",
]


def is_transformers_available() -> bool:
    """True when transformers and torch can be imported."""
    return is_available("transformers", "torch")


require(is_transformers_available(), "transformers", "transformers and torch")

from transformers import TrainerCallback  # noqa: E402  (after the check naming the extra)

from carbonlog._log import warn_once  # noqa: E402
from carbonlog.integrations._transformers_bridge import TrainerBridge, detect_model  # noqa: E402

_CALLBACKS: weakref.WeakSet = weakref.WeakSet()
"""This process's callbacks: a fit that begins closes another one's fit left open (Ctrl-C)."""


def inference_prefix(logs: Mapping[str, Any]) -> str | None:
    """The `metric_key_prefix` of an evaluate/predict metrics dict ("eval", "test", "eval_a"):
    its speed metrics add `<prefix>_runtime`; None for a training log (the last has
    `train_runtime`)."""
    for key in logs:
        if key.endswith(_RUNTIME) and key != _TRAIN_RUNTIME:
            return key[: -len(_RUNTIME)]
    return None


def evaluation_keys(values: Mapping[str, float], old: str, new: str) -> dict[str, float]:
    """An evaluation's own figures: the keys under `old` moved under `new`
    (`carbon/step/energy_kwh` -> `eval_carbon/energy_kwh`), running totals left out."""
    return {k: v for k, v in metrics.renamed(values, old, new).items() if not k.endswith(_TOTAL)}


def _ends_epoch(state, control) -> bool:
    """This optimizer step is its epoch's last: the epoch count is whole (its last batch), or
    the flow callback has training or the epoch stop here (max_steps)."""
    return bool(
        float(state.epoch).is_integer() or control.should_training_stop or control.should_epoch_stop
    )


def _processes(args) -> dict[str, Any]:
    """The Session's view of the Trainer's processes: ranks, the one sum (through Accelerate,
    as `Trainer.accelerator.reduce`), the GPUs driven (its own under DDP, all under DP)."""
    reduce = None
    if args.world_size > 1:
        from accelerate.utils import reduce as accelerate_reduce

        reduce = torch_sum(args.device, lambda t: accelerate_reduce(t, reduction="sum"))
    many = args.device.type == "cuda" and args.n_gpu > 1
    return {
        "ranks": Ranks(args.process_index, args.local_process_index, args.world_size),
        "reduce": reduce,
        "gpus": list(range(args.n_gpu)) if many else cuda_devices(args.device),
    }


@with_options_doc
class EmissionsCallback(SessionOwner, TrainerCallback):
    """Measures a Trainer run and adds the carbonlog schema to its logs (see the module doc).

    Args:
        {options}
        model_card: add `co2_eq_emissions` to the card `trainer.create_model_card()` writes
            (its training_type says fine-tuning when the run is `pretrained`).
        log_steps: also log the energy at each training log and evaluation (a counter read
            and a sum over processes each time); off by default.

    Distributed (torchrun, Accelerate): every process measures the GPU it drives, local
    process zero its host's CPU and RAM, and each epoch is summed once over processes; only
    world process zero writes files. Resume: the totals as of the last epoch end (what the
    ledger has recorded of the run by then) ride in every checkpoint's `trainer_state.json`
    (`stateful_callbacks["carbonlog"]`) and continue on `train(resume_from_checkpoint=...)`;
    a damaged state is refused with a warning and the totals start over. A crash or a Ctrl-C
    is not seen (no hook): the ledger run ends as "interrupted" when the callback is next
    used, when another callback's fit begins in this process, or at exit. (A standalone
    `evaluate()` right after such a train counts as inside it, as `is_in_train` stays set.)

    Raises:
        ValueError, TypeError: a bad option, here rather than mid-training.
    """

    def __init__(
        self,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        *,
        model_card: bool = True,
        log_steps: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(log_steps, bool):
            raise TypeError(f"log_steps must be True or False, got {log_steps!r}")
        self._session = new_session("transformers", location, pue, intensity, options)
        self._bridge = TrainerBridge(self, self._session, model_card, log_steps)
        _CALLBACKS.add(self)

    @property
    def co2_eq_emissions(self) -> dict | None:
        """The model card's `co2_eq_emissions` (grams) once training has ended, else None."""
        return self._bridge.card_co2

    # -- hooks -------------------------------------------------------------------------

    def on_init_end(self, args, state, control, **kwargs):
        self._session.abandon()  # a new Trainer: a run this callback still measures was left
        self._bridge.attach()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._bridge.attach()  # again: the callback may have been added after __init__
        for other in list(_CALLBACKS):  # one fit at a time, or the hardware counts twice
            if other is not self and other.session.stage == FIT:
                other.session.abandon()
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(STATE_KEY)
        self._session.load_state_dict(saved, STATE_SOURCE)
        self._session.begin(
            FIT,
            **_processes(args),
            planned_epochs=int(state.num_train_epochs) or None,
            detected={**detect_model(model), **self._bridge.search_facts(state)},
        )
        self._bridge.begin_run(args, state)
        self._save_state(state)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self._session.stage == FIT:  # the reporters have set up in their on_train_begin
            self._bridge.tell_provenance(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self._session.stage != FIT:
            return
        if _ends_epoch(state, control):  # before the step's save: its checkpoint holds the epoch
            self._end_epoch(args, state, control)
        elif control.should_evaluate:
            self._bridge.take_piece(state)  # the evaluation about to run starts here

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._session.stage == FIT and not self._bridge.at_epoch_end(state):
            self._end_epoch(args, state, control)  # an epoch no step said was ending

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self._session.stage == FIT and metrics:
            self._annotate_epoch(state, metrics)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._bridge.emitting or logs is None:
            return
        stage_prefix = inference_prefix(logs)
        if stage_prefix is not None:
            # a pending piece (training up to the evaluation's start) goes out first, as its
            # own event: in the evaluation's log_history entry it would become a column of
            # the model card's results table
            self._bridge.emit(args, state, control)
            logs.update(self._inference_values(stage_prefix))
        elif self._session.stage == FIT:
            if _FINAL_LOG_KEY in logs:
                values = self._finish(args)
            else:
                self._annotate_epoch(state, logs)
                values = self._bridge.for_training_log(state)
            self._bridge.publish(state, logs, values)

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        if not self._session.is_measuring:  # a standalone evaluate/predict: its first batch
            detected = {**detect_model(model), **self._bridge.search_facts(state)}
            self._session.begin(INFERENCE, **_processes(args), detected=detected)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        if metrics is not None:
            metrics.update(self._inference_values(inference_prefix(metrics) or "test"))

    def on_train_end(self, args, state, control, **kwargs):
        if self._session.stage == FIT:  # the Trainer's final log did not come through
            # in a hyperparameter search, the Trainer ends a trial it prunes so (then raises)
            pruned = getattr(state, "is_hyper_param_search", False)
            self._bridge.carry(self._finish(args, INTERRUPTED if pruned else "completed"))
            self._bridge.emit(args, state, control)

    # -- helpers -----------------------------------------------------------------------

    def _end_epoch(self, args, state, control) -> None:
        """Close the epoch: its figures as a log event, its totals into the trainer state."""
        self._bridge.take_piece(state)  # the mark must not swallow the energy since the last log
        self._bridge.count_epoch(args, state)
        self._bridge.carry(self._session.epoch_end(self._bridge.epoch_logs(state)))
        self._save_state(state)
        self._bridge.emit(args, state, control)
        self._bridge.end_epoch(state)
        if self._session.should_stop:
            control.should_training_stop = True

    def _annotate_epoch(self, state, values: Mapping[str, Any]) -> None:
        """What the Trainer logs or evaluates at the step its epoch closed belongs to that
        epoch's record (the ledger's, for compare's energy-to-target), not the next one's."""
        if self._bridge.at_epoch_end(state):
            self._session.annotate_epoch(values)
            self._bridge.skip_logged(state)

    def _inference_values(self, stage_prefix: str) -> dict[str, float]:
        """An evaluation's own energy under `<stage_prefix>_<prefix>`: inside training, the
        piece since it began (with `log_steps`); standalone, its whole run."""
        prefix = self._session.prefix
        to = f"{stage_prefix}_{prefix}"
        if self._session.stage == FIT:
            piece = metrics.metric_key("", prefix, _STEP)
            return evaluation_keys(self._bridge.read_piece(), piece, to)
        if self._session.stage == INFERENCE:
            old = metrics.metric_key("", prefix, INFERENCE)
            return evaluation_keys(self._session.end(), old, to)
        return {}

    def _finish(self, args, status: str = "completed") -> dict[str, float]:
        """End the fit: the last piece and the run's totals; the model card's metadata."""
        values = {**self._bridge.take_pending(), **self._bridge.read_piece()}
        values.update(self._session.end(status))
        self._bridge.keep_card(self._session.model_card_co2(processes=args.world_size))
        return values

    def _save_state(self, state) -> None:
        """The totals so far into `trainer_state.json`, which every checkpoint writes."""
        saved = getattr(state, "stateful_callbacks", None)
        if isinstance(saved, dict):
            saved[STATE_KEY] = self._session.state_dict()
        else:
            warn_once(
                "transformers-no-stateful",
                "carbonlog: this transformers version keeps no callback state in checkpoints; "
                "a resumed run starts its energy totals from zero",
            )
