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

import functools
import os
import sys
from collections.abc import Mapping
from typing import Any

from carbonlog import metrics
from carbonlog._log import warn_once
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.report.model_card import add_co2_to_model_card, co2_eq_emissions
from carbonlog.session import FIT, Session, SessionOwner

_INSTALL_HINT = (
    "carbonlog's Transformers callback needs transformers and torch: "
    'pip install "carbonlog[transformers]"'
)
STATE_KEY = "carbonlog"
"""Where the run's totals travel in `trainer_state.json` (`stateful_callbacks`), for resume."""
INFERENCE = "inference"
_RUNTIME = "_runtime"
_FINAL_LOG_KEY = "train_runtime"
_STEP = "step"
_FRAMES = 12

__all__ = [
    "EmissionsCallback",
    "add_co2_to_model_card",
    "co2_eq_emissions",
    "detect_model",
    "inference_prefix",
]

try:
    from transformers import TrainerCallback
    from transformers.trainer_callback import DefaultFlowCallback
except ImportError as exc:
    raise ImportError(_INSTALL_HINT) from exc


def inference_prefix(logs: Mapping[str, Any]) -> str | None:
    """The `metric_key_prefix` of an evaluate/predict metrics dict ("eval", "test", "eval_a").

    The Trainer's speed metrics always add `<prefix>_runtime`; training logs have none, and
    the final training log has `train_runtime`. None for a training log.
    """
    for key in logs:
        if key.endswith(_RUNTIME) and key != _FINAL_LOG_KEY:
            return key[: -len(_RUNTIME)]
    return None


def _renamed(values: Mapping[str, float], old: str, new: str) -> dict[str, float]:
    """Keys re-prefixed: `carbon/step/energy_kwh` -> `eval_carbon/energy_kwh`."""
    return {new + key[len(old) :]: value for key, value in values.items() if key.startswith(old)}


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


def _ranks(args) -> Ranks:
    return Ranks(args.process_index, args.local_process_index, args.world_size)


def _gpus(args) -> list[int]:
    """The CUDA devices this process drives: its own under DDP, all under DataParallel."""
    device = args.device
    if device.type != "cuda":
        return []
    if args.n_gpu > 1:
        return list(range(args.n_gpu))
    if device.index is not None:
        return [device.index]
    import torch

    return [torch.cuda.current_device()]


def _reduce_fn(args) -> ReduceFn | None:
    """Sum over processes through Accelerate (what `Trainer.accelerator.reduce` calls)."""
    if args.world_size <= 1:
        return None
    import torch
    from accelerate.utils import reduce

    def sum_over_processes(values):
        local = torch.tensor(values, dtype=torch.float64, device=args.device)
        return reduce(local, reduction="sum").tolist()

    return sum_over_processes


def _caller_handler_and_trainer(callback) -> tuple[Any, Any]:
    """The callback handler calling `callback` now, and the Trainer that owns that handler.

    Hooks are given neither: the handler is `self` in its `call_event` frame (the one whose
    `callbacks` list holds this very callback) and the Trainer is `self` further up, in the
    method that fired the event (`__init__`, the training loop).
    """
    handler = trainer = None
    frame = sys._getframe(1)
    for _ in range(_FRAMES):
        frame = frame.f_back
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if handler is None:
            callbacks = getattr(owner, "callbacks", None)
            if isinstance(callbacks, list) and any(cb is callback for cb in callbacks):
                handler = owner
        elif getattr(owner, "callback_handler", None) is handler:
            trainer = owner
            break
    return handler, trainer


class EmissionsCallback(SessionOwner, TrainerCallback):
    """Measures a Trainer run and adds the carbonlog schema to its logs (see the module doc).

    Args:
        location, pue, intensity: where the energy is drawn (see `carbonlog.Tracker`).
        prefix: the key prefix, `carbon/` by default.
        verbose: a line per epoch and a summary on the "carbonlog" logger.
        pretrained, base_model, task: what the run is; they win over what is detected from
            the model (`name_or_path`), and `pretrained` sets the card's training_type.
        model_card: add `co2_eq_emissions` to the card `trainer.create_model_card()` writes.
        tracker_options: any other `carbonlog.Tracker` option (gpus, cpu, ram, power_w,
            run_name, tags, ledger, budget_kg, budget_kwh, on_budget, budget_check, live);
            `on_budget="stop"` sets `control.should_training_stop` at the epoch end.

    Distributed (torchrun, Accelerate): every process measures the GPU it drives, local
    process zero its host's CPU and RAM, and each interval is summed once over processes, so
    every process logs the same figures; only world process zero writes files. Resume:
    the totals as of the last epoch end ride in checkpoints' `trainer_state.json` (under
    `stateful_callbacks["carbonlog"]`) and continue on `train(resume_from_checkpoint=...)`;
    what was spent after that epoch end in the interrupted run (its evaluation, the save,
    the steps of a mid-epoch checkpoint) is not carried. A crash is not seen (the Trainer
    has no hook for it): the ledger run ends as "interrupted" when the callback next
    begins one.

    Raises:
        ValueError, TypeError: a bad option, here rather than mid-training.
    """

    def __init__(
        self,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        *,
        prefix: str = metrics.DEFAULT_PREFIX,
        verbose: bool = True,
        pretrained: bool | None = None,
        base_model: str | None = None,
        task: str | None = None,
        model_card: bool = True,
        **tracker_options: Any,
    ) -> None:
        self._session = Session(
            "transformers",
            prefix=prefix,
            verbose=verbose,
            pretrained=pretrained,
            base_model=base_model,
            task=task,
            location=location,
            pue=pue,
            intensity=intensity,
            **tracker_options,
        )
        self.model_card = model_card
        self._handler = None
        self._pending: dict[str, float] = {}
        self._piece_step: int | None = None
        self._emitting = False
        self._pretrained: bool | None = None
        self._co2: dict | None = None
        self._epoch_log_index = 0
        self._epoch_end_step: int | None = None

    @property
    def co2_eq_emissions(self) -> dict | None:
        """The model card's `co2_eq_emissions` (grams) once training has ended, else None."""
        return dict(self._co2) if self._co2 else None

    # -- hooks -------------------------------------------------------------------------

    def on_init_end(self, args, state, control, **kwargs):
        self._attach()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._attach()  # again: the callback may have been added after __init__
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(STATE_KEY)
        if saved:
            self._session.load_state_dict(saved)
        tracker = self._session.begin(
            FIT,
            ranks=_ranks(args),
            reduce=_reduce_fn(args),
            gpus=_gpus(args),
            planned_epochs=int(state.num_train_epochs) or None,
            detected=detect_model(model),
        )
        self._pretrained = tracker.run_info.get("pretrained")
        self._pending, self._co2 = {}, None
        self._piece_step = state.global_step
        self._epoch_log_index = len(state.log_history)
        self._save_state(state)

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_evaluate and self._session.stage == FIT:
            self._take_piece(state)  # the evaluation about to run starts here

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._session.stage != FIT:
            return
        self._take_piece(state)  # the mark must not swallow the energy since the last log
        # the Trainer's logs of this epoch, later entries winning (the last loss)
        logged = {
            k: v for entry in state.log_history[self._epoch_log_index :] for k, v in entry.items()
        }
        self._pending.update(self._session.epoch_end(logged))
        self._save_state(state)
        self._emit(args, state, control)
        self._epoch_log_index = len(state.log_history)
        self._epoch_end_step = state.global_step
        if self._session.should_stop:
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """The evaluation the Trainer runs right after an epoch end belongs to that epoch's
        record (the ledger's, for compare's energy-to-target), not to the next one's."""
        if self._session.stage == FIT and metrics and state.global_step == self._epoch_end_step:
            self._session.annotate_epoch(metrics)
            self._epoch_log_index = len(state.log_history)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._emitting or logs is None:
            return
        stage_prefix = inference_prefix(logs)
        if stage_prefix is not None:
            self._log_inference(args, state, control, logs, stage_prefix)
        elif self._session.stage == FIT:
            if _FINAL_LOG_KEY in logs:
                values = self._finish(args)
            elif self._piece_step != state.global_step:
                values = {**self._pending, **self._take_piece(state)}
            else:  # a piece was taken at this step already (epoch end, evaluation start)
                values = dict(self._pending)
            self._pending = {}
            self._publish(state, logs, values)

    def on_prediction_step(self, args, state, control, model=None, **kwargs):
        if self._session.tracker is None:  # a standalone evaluate/predict: its first batch
            self._session.begin(
                INFERENCE,
                ranks=_ranks(args),
                reduce=_reduce_fn(args),
                gpus=_gpus(args),
                detected=detect_model(model),
            )

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        if metrics is not None:
            metrics.update(self._inference_values(inference_prefix(metrics) or "test"))

    def on_train_end(self, args, state, control, **kwargs):
        if self._session.stage == FIT:  # the Trainer's final log did not come through
            self._pending.update(self._finish(args))
            self._emit(args, state, control)

    # -- helpers -----------------------------------------------------------------------

    def _attach(self) -> None:
        """Find the handler calling us and take our place ahead of the reporters in it."""
        handler, trainer = _caller_handler_and_trainer(self)
        if handler is None:
            if self._handler is None:
                self._warn_placement("it is not being called through a Trainer's callback list")
            return
        self._handler = handler
        callbacks = handler.callbacks
        twins = [cb for cb in callbacks if isinstance(cb, EmissionsCallback) and cb is not self]
        if twins:
            warn_once(
                f"transformers-twins:{id(handler)}",
                "carbonlog: the Trainer has more than one EmissionsCallback; each measures the "
                "same run and their keys collide. Keep one.",
            )
        place = 0  # after DefaultFlowCallback, which sets control.should_evaluate for us
        while isinstance(callbacks[place], DefaultFlowCallback):
            place += 1
        if callbacks.index(self) > place:  # never move back: the handler may be mid-event
            callbacks.remove(self)
            callbacks.insert(place, self)
        if trainer is not None and self.model_card:
            self._wrap_model_card(trainer)

    def _warn_placement(self, why: str) -> None:
        warn_once(
            f"transformers-placement:{id(self)}",
            f"carbonlog: EmissionsCallback could not move itself ahead of the Trainer's "
            f"reporting callbacks ({why}), so reporters listed before it miss the energy of "
            "each log and evaluation. Put it first: Trainer(..., report_to='none', "
            "callbacks=[EmissionsCallback(...), TensorBoardCallback()]), the reporters after it.",
        )

    def _take_piece(self, state) -> dict[str, float]:
        """The energy since the last piece, kept until a log event carries it."""
        piece = self._session.step()
        self._piece_step = state.global_step
        self._pending.update(piece)
        return piece

    def _emit(self, args, state, control) -> None:
        """Pending figures as a log event of their own, the way `Trainer.log` makes one.

        Without the handler they wait for the next Trainer log to carry them.
        """
        if self._handler is None or not self._pending:
            return
        logs = dict(self._pending)
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        self._pending = {}
        state.log_history.append({**logs, "step": state.global_step})
        self._emitting = True
        try:
            self._handler.call_event("on_log", args, state, control, logs=logs)
        finally:
            self._emitting = False

    def _publish(self, state, logs: dict, values: Mapping[str, float]) -> None:
        """Into the logs reporters get and into the `log_history` entry the Trainer made of them."""
        if not values:
            return
        history = state.log_history
        entry = history[-1] if history else None
        made_from_logs = entry is not None and entry.keys() - {"step"} == logs.keys()
        logs.update(values)
        if made_from_logs:
            entry.update(values)

    def _log_inference(self, args, state, control, logs: dict, stage_prefix: str) -> None:
        """An evaluation's metrics get its energy under `<prefix>_carbon/`.

        A piece still pending (the training up to the evaluation's start) goes out first as
        its own log event: added to the evaluation's `log_history` entry, it would become a
        column of the model card's results table.
        """
        self._emit(args, state, control)
        logs.update(self._inference_values(stage_prefix))

    def _inference_values(self, stage_prefix: str) -> dict[str, float]:
        """During training, the energy since the evaluation began; standalone, its whole run."""
        prefix = self._session.prefix
        to = f"{stage_prefix}_{prefix}"
        if self._session.stage == FIT:
            return _renamed(self._session.step(), metrics.metric_key("", prefix, _STEP), to)
        if self._session.stage == INFERENCE:
            return _renamed(self._session.end(), metrics.metric_key("", prefix, INFERENCE), to)
        return {}

    def _finish(self, args) -> dict[str, float]:
        """End the fit: the last piece and the run's totals; the model card's metadata."""
        values = {**self._pending, **self._session.step()}
        self._pending = {}
        values.update(self._session.end("completed"))
        summary = self._session.last_summary
        if summary is not None:
            self._co2 = co2_eq_emissions(summary, self._pretrained, processes=args.world_size)
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

    def _wrap_model_card(self, trainer) -> None:
        """Make `trainer.create_model_card()` (and so `push_to_hub()`) add co2_eq_emissions."""
        original = trainer.create_model_card
        if getattr(original, "_carbonlog", False):
            return

        @functools.wraps(original)
        def create_model_card(*args, **kwargs):
            result = original(*args, **kwargs)
            self._write_card(trainer)
            return result

        create_model_card._carbonlog = True
        trainer.create_model_card = create_model_card

    def _write_card(self, trainer) -> None:
        path = os.path.join(trainer.args.output_dir, "README.md")
        if not self._co2 or not trainer.is_world_process_zero() or not os.path.exists(path):
            return
        try:
            add_co2_to_model_card(path, self._co2)
        except Exception as exc:  # the card is a courtesy: never fail the user's call
            warn_once(
                "transformers-card", f"carbonlog: could not add co2_eq_emissions to {path} ({exc})"
            )
