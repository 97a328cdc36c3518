"""Hugging Face Transformers: energy and CO2 per epoch and per log, in every `report_to` reporter.

    from carbonlog.integrations.transformers import EmissionsCallback
    trainer = Trainer(..., callbacks=[EmissionsCallback(location="FR")])

What goes where (prefix `carbon/`; TensorBoard and W&B show training keys under `train/`):

- Epoch end: the epoch's interval (`carbon/energy_kwh`, `carbon/co2_kg`, ..., the schema of
  `carbonlog.metrics`), plus the energy since the last log (`carbon/step/*`), as one log
  event of its own at the epoch's last global step, sent through the Trainer's callback
  handler to every reporter and into `state.log_history` (so `trainer_state.json` and
  checkpoints keep it). Evaluation and checkpoint saves after an epoch count in the next.
- Each training log (`logging_steps`): `carbon/step/*`, the energy since the previous log.
  Counters are read only at these edges. The `carbon/step/` pieces and the evaluation pieces
  below tile the run: their energies add up to `carbon/energy_kwh_total`, but for the
  microseconds between reading a piece and reading the epoch edge right after it.
- Evaluation: `<metric_key_prefix>_carbon/*` (`eval_carbon/energy_kwh`, shown as
  `eval/carbon/...`) in the evaluation's metrics, so reporters and the dict `evaluate()`
  returns carry it; `predict()` (which the Trainer does not log) gets `test_carbon/*` in its
  returned metrics. Inside training it is the energy from the evaluation's start (the step
  or epoch end where the Trainer's `control.should_evaluate` is set; an evaluation started
  some other way counts from the previous log); a
  standalone `evaluate()`/`predict()` is its own run, begun at its first prediction step
  (the Trainer has no hook before it), so its dataloader set-up and first batch are not
  counted. These keys stay out of `log_history`: the Trainer's model card makes a results
  column of every `eval_*` key found there.
- End of training (the Trainer's last log): `carbon/energy_kwh_total`, `carbon/co2_kg_total`
  and `carbon/duration_s_total` of the whole run; `co2_eq_emissions` (grams) goes into the model
  card that `trainer.create_model_card()` and `trainer.push_to_hub()` write.

Reporters only see keys added before they run, and callbacks passed as `callbacks=[...]`
come after them, so the callback moves itself ahead of them (right after DefaultFlowCallback)
when the Trainer first calls it; the handler and the Trainer are found up the call stack,
since hooks are not given them. Where that fails, a warning says how to order callbacks.
"""

from __future__ import annotations

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
from carbonlog.session import FIT, SessionOwner

STATE_KEY = "carbonlog"
"""Where the run's totals travel in `trainer_state.json` (`stateful_callbacks`), for resume."""
STATE_SOURCE = "the checkpoint's trainer_state.json"
INFERENCE = "inference"
_RUNTIME = "_runtime"
_FINAL_LOG_KEY = "train_runtime"
_STEP = "step"

__all__ = [
    "EmissionsCallback",
    "detect_model",
    "inference_prefix",
    "is_transformers_available",
]


def is_transformers_available() -> bool:
    """True when transformers and torch can be imported."""
    return is_available("transformers", "torch")


require(is_transformers_available(), "transformers", "transformers and torch")

from transformers import TrainerCallback  # noqa: E402  (after the check naming the extra)

from carbonlog._log import warn_once  # noqa: E402
from carbonlog.integrations._transformers_bridge import TrainerBridge  # noqa: E402


def inference_prefix(logs: Mapping[str, Any]) -> str | None:
    """The `metric_key_prefix` of an evaluate/predict metrics dict ("eval", "test", "eval_a").

    The Trainer's speed metrics always add `<prefix>_runtime`; training logs have none, and
    the final training log has `train_runtime`. None for a training log.
    """
    for key in logs:
        if key.endswith(_RUNTIME) and key != _FINAL_LOG_KEY:
            return key[: -len(_RUNTIME)]
    return None


def _unwrap(model: Any) -> Any:
    """The model inside DDP/DataParallel (`.module`), torch.compile and PEFT wrappers."""
    for _ in range(8):
        if hasattr(model, "get_base_model"):  # PEFT
            inner = model.get_base_model()
        elif type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
            inner = model.module
        else:
            inner = getattr(model, "_orig_mod", None)  # torch.compile
        if inner is None or inner is model:
            return model
        model = inner
    return model


def detect_model(model: Any) -> dict[str, object]:
    """What the model says of itself: a Hub id or directory it was loaded from, or none.

    `from_pretrained` records its argument in `name_or_path` (`config._name_or_path`): then it
    is fine-tuning from that base model. A model built from a config has an empty name:
    pre-training. (A config itself loaded with from_pretrained carries the name too; pass
    `pretrained=False` for random weights built from such a config.)
    """
    if model is None:
        return {}
    inner = _unwrap(model)
    config = getattr(inner, "config", None)
    name = getattr(inner, "name_or_path", None) or getattr(config, "_name_or_path", None) or ""
    detected: dict[str, object] = {"model": type(inner).__name__, "pretrained": bool(name)}
    if name:
        detected["base_model"] = str(name)
    return detected


def _processes(args) -> dict[str, Any]:
    """The Session's view of the Trainer's processes: ranks, the one sum, the GPUs driven.

    The sum goes through Accelerate (what `Trainer.accelerator.reduce` calls); a process
    drives its own GPU under DDP, all of them under DataParallel.
    """
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

    Distributed (torchrun, Accelerate): every process measures the GPU it drives, local
    process zero its host's CPU and RAM, and each interval is summed once over processes, so
    every process logs the same figures; only world process zero writes files. Resume:
    the totals as of the last epoch end ride in checkpoints' `trainer_state.json` (under
    `stateful_callbacks["carbonlog"]`) and continue on `train(resume_from_checkpoint=...)`;
    what was spent after that epoch end in the interrupted run (its evaluation, the save,
    the steps of a mid-epoch checkpoint) is not carried; a damaged state there is refused
    with a warning and the totals start over. A crash or a Ctrl-C is not seen (the Trainer
    has no hook for it): the ledger run ends as "interrupted" when the callback is next
    given to a Trainer or trained with, else when it is discarded or the process exits. (A
    standalone `evaluate()` right after such a train still counts as inside it, as for the
    Trainer itself, whose `is_in_train` stays set.)

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
        **options: Any,
    ) -> None:
        self._session = new_session("transformers", location, pue, intensity, options)
        self._bridge = TrainerBridge(self, self._session, model_card)

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
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(STATE_KEY)
        self._session.load_state_dict(saved, STATE_SOURCE)
        self._session.begin(
            FIT,
            **_processes(args),
            planned_epochs=int(state.num_train_epochs) or None,
            detected=detect_model(model),
        )
        self._bridge.begin_run(state)
        self._save_state(state)

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_evaluate and self._session.stage == FIT:
            self._bridge.take_piece(state)  # the evaluation about to run starts here

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._session.stage != FIT:
            return
        self._bridge.take_piece(state)  # the mark must not swallow the energy since the last log
        self._bridge.carry(self._session.epoch_end(self._bridge.epoch_logs(state)))
        self._save_state(state)
        self._bridge.emit(args, state, control)
        self._bridge.end_epoch(state)
        if self._session.should_stop:
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """The evaluation the Trainer runs right after an epoch end belongs to that epoch's
        record (the ledger's, for compare's energy-to-target), not to the next one's."""
        if self._session.stage == FIT and metrics and self._bridge.at_epoch_end(state):
            self._session.annotate_epoch(metrics)
            self._bridge.skip_logged(state)

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
                values = self._bridge.for_training_log(state)
            self._bridge.publish(state, logs, values)

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        if not self._session.is_measuring:  # a standalone evaluate/predict: its first batch
            self._session.begin(INFERENCE, **_processes(args), detected=detect_model(model))

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        if metrics is not None:
            metrics.update(self._inference_values(inference_prefix(metrics) or "test"))

    def on_train_end(self, args, state, control, **kwargs):
        if self._session.stage == FIT:  # the Trainer's final log did not come through
            self._bridge.carry(self._finish(args))
            self._bridge.emit(args, state, control)

    # -- helpers -----------------------------------------------------------------------

    def _inference_values(self, stage_prefix: str) -> dict[str, float]:
        """An evaluation's energy under `<stage_prefix>_<prefix>`: during training, the energy
        since it began; standalone, its whole run."""
        prefix = self._session.prefix
        to = f"{stage_prefix}_{prefix}"
        if self._session.stage == FIT:
            return metrics.renamed(self._session.step(), metrics.metric_key("", prefix, _STEP), to)
        if self._session.stage == INFERENCE:
            old = metrics.metric_key("", prefix, INFERENCE)
            return metrics.renamed(self._session.end(), old, to)
        return {}

    def _finish(self, args) -> dict[str, float]:
        """End the fit: the last piece and the run's totals; the model card's metadata."""
        values = {**self._bridge.take_pending(), **self._session.step()}
        values.update(self._session.end("completed"))
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
