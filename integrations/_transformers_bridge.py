"""What the Trainer does not hand a callback: its handler, a place ahead of the reporters, log
events of the callback's own, the reporters' run metadata, what the model is and the model
card. Imported by the Transformers adapter only, once transformers is known to be installed.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback
from transformers.trainer_callback import DefaultFlowCallback

from carbonlog._log import say, warn_once
from carbonlog.integrations._common import find_caller
from carbonlog.session import Session

CALLER_FRAMES = 12
"""How far up the stack the handler and the Trainer are looked for, from a hook."""
PIECES_WITH = "steps"
"""The logging_strategy under which pieces add something to the epoch figures."""


@dataclass
class RunLog:
    """One `train()`'s bookkeeping of what its log events have carried so far."""

    pending: dict[str, float] = field(default_factory=dict)
    """Figures waiting for a log event to carry them."""
    piece_step: int | None = None
    """The global step at which the last piece (energy since the one before) was taken."""
    epoch_first_log: int = 0
    """Index in `state.log_history` of the current epoch's first log entry."""
    epoch_end_step: int | None = None
    """The global step of the last epoch end, where an evaluation belongs to that epoch."""
    pieces: bool = False
    """Pieces are taken (`log_steps`, under the "steps" logging strategy)."""
    told: bool = False
    """The run's provenance has gone to the reporters."""
    work_step: int = 0
    work_tokens: float = 0.0
    """The global step and the Trainer's input tokens seen at the last epoch edge."""


class TrainerBridge:
    """The callback's side of the Trainer (its handler and the Trainer are found up the call
    stack); pieces, provenance and the card's metadata come from the callback's `session`."""

    def __init__(self, callback: Any, session: Session, model_card: bool, log_steps: bool):
        self._callback = callback
        self._session = session
        self._model_card = model_card
        self._log_steps = log_steps
        self._handler: Any | None = None
        self._emitting = False
        self._card_co2: dict | None = None
        self._run = RunLog()
        self._examples: int | None = None

    @property
    def emitting(self) -> bool:
        """Inside a log event of the bridge's own: the callback's on_log leaves it alone."""
        return self._emitting

    @property
    def card_co2(self) -> dict | None:
        """The model card's `co2_eq_emissions` once training has ended, else None."""
        return dict(self._card_co2) if self._card_co2 else None

    # -- the handler and the Trainer ---------------------------------------------------

    def attach(self) -> None:
        """Find the handler calling the callback and take its place ahead of the reporters."""
        callback = self._callback
        handler = find_caller(_holds(callback), CALLER_FRAMES)
        if handler is None:
            if self._handler is None:
                self._warn_placement("it is not being called through a Trainer's callback list")
            return
        self._handler = handler
        callbacks = handler.callbacks
        if any(isinstance(cb, type(callback)) and cb is not callback for cb in callbacks):
            warn_once(
                f"transformers-twins:{id(handler)}",
                "carbonlog: the Trainer has more than one EmissionsCallback; each measures the "
                "same run and their keys collide. Keep one.",
            )
        place = 0  # after DefaultFlowCallback, which sets control.should_evaluate for us
        while isinstance(callbacks[place], DefaultFlowCallback):
            place += 1
        if callbacks.index(callback) > place:  # never move back: the handler may be mid-event
            callbacks.remove(callback)
            callbacks.insert(place, callback)
        trainer = find_caller(lambda owner: _handler_of(owner) is handler, CALLER_FRAMES)
        if trainer is not None:
            self._examples = _sized(getattr(trainer, "train_dataset", None))
        if trainer is not None and self._model_card:
            self._wrap_model_card(trainer)

    def _warn_placement(self, why: str) -> None:
        warn_once(
            f"transformers-placement:{id(self._callback)}",
            f"carbonlog: EmissionsCallback could not move itself ahead of the Trainer's "
            f"reporting callbacks ({why}), so reporters listed before it miss its keys "
            "and the run's provenance. Put it first: Trainer(..., report_to='none', "
            "callbacks=[EmissionsCallback(...), TensorBoardCallback()]), the reporters after it.",
        )

    # -- hyperparameter search ---------------------------------------------------------

    def search_facts(self, state) -> dict[str, object]:
        """A `hyperparameter_search` trial's facts for the ledger: its parameters
        (`state.trial_params`) and, with Optuna, the study's name and the trial's number (the
        Trainer's `_trial`), else the trial's `hp_name`; {} outside a search. Other backends
        name no search: pass `search=` to the callback."""
        if not getattr(state, "is_hyper_param_search", False):
            return {}
        handler = self._handler
        trainer = handler and find_caller(lambda o: _handler_of(o) is handler, CALLER_FRAMES)
        trial = getattr(trainer, "_trial", None)
        facts: dict[str, object] = {"trial_params": dict(state.trial_params or {})}
        study = getattr(getattr(trial, "study", None), "study_name", None)
        if study is not None:
            facts["search_id"] = study
        number = getattr(trial, "number", None)
        name = state.trial_name if number is None else str(number)
        if name is not None:
            facts["trial"] = name
        return facts

    # -- pieces and log events ---------------------------------------------------------

    def begin_run(self, args, state) -> None:
        """A `train()` begins: nothing pending, pieces and this epoch's logs start here."""
        pieces = self._log_steps and args.logging_strategy == PIECES_WITH
        if self._log_steps and not pieces:
            strategy = getattr(args.logging_strategy, "value", args.logging_strategy)
            say(f"carbonlog: log_steps=True adds nothing under logging_strategy={strategy!r}: "
                "the epoch figures are the pieces", level=logging.INFO)  # fmt: skip
        self._run = RunLog(
            piece_step=state.global_step,
            epoch_first_log=len(state.log_history),
            pieces=pieces,
            work_step=state.global_step,
            work_tokens=state.num_input_tokens_seen,
        )
        self._card_co2 = None

    def read_piece(self) -> dict[str, float]:
        """The energy since the last piece, summed over processes (the Trainer calls each hook
        on all of them alike), when pieces are taken; else {}, with no counter read."""
        return self._session.step(summed=True) if self._run.pieces else {}

    def take_piece(self, state) -> None:
        """The energy since the last piece, kept until a log event carries it."""
        if self._run.pieces:
            self._run.pending.update(self.read_piece())
            self._run.piece_step = state.global_step

    def carry(self, values: Mapping[str, float]) -> None:
        """Figures for the next log event (the bridge's own or the Trainer's)."""
        self._run.pending.update(values)

    def take_pending(self) -> dict[str, float]:
        """The pending figures, now carried by the caller's log event."""
        pending, self._run.pending = self._run.pending, {}
        return pending

    def for_training_log(self, state) -> dict[str, float]:
        """What a Trainer's training log carries: the pending figures and, unless one was taken
        at this step already (epoch end, evaluation start), a new piece."""
        if self._run.piece_step != state.global_step:
            self.take_piece(state)
        return self.take_pending()

    def count_epoch(self, args, state) -> None:
        """The work of the epoch that closes now, for the energy per unit of work: its optimizer
        steps x the total batch (every process's, accumulation included), at most the training
        set's size; and the Trainer's input tokens, where it counts them
        (include_num_input_tokens_seen). Both are every process's already."""
        run = self._run
        total_batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        samples = (state.global_step - run.work_step) * total_batch
        if self._examples is not None:
            samples = min(samples, self._examples)
        tokens = None
        if args.include_num_input_tokens_seen not in ("no", False):
            tokens = state.num_input_tokens_seen - run.work_tokens
        run.work_step, run.work_tokens = state.global_step, state.num_input_tokens_seen
        self._session.add_work(samples=samples, tokens=tokens, everywhere=True)

    # -- the reporters' run metadata ---------------------------------------------------

    def tell_provenance(self, state) -> None:
        """The run's provenance, once per `train()`, to each reporter in its place for run
        metadata: TensorBoard text, W&B config, MLflow params (process zero's reporters)."""
        if self._run.told or self._handler is None or not state.is_world_process_zero:
            return
        self._run.told = True
        values = self._session.provenance()
        for reporter in self._handler.callbacks if values else ():
            kind = next((kind for kind in _TELL if isinstance(reporter, kind)), None)
            if kind is None:
                continue
            try:
                _TELL[kind](reporter, values, f"{self._session.prefix}provenance")
            except Exception as exc:  # metadata is a courtesy: never fail training
                name = kind.__name__
                warn_once(f"transformers-provenance:{name}", f"carbonlog: {name} was not told "
                          f"the run's provenance ({exc})")  # fmt: skip

    def emit(self, args, state, control) -> None:
        """Pending figures as a log event of their own, the way `Trainer.log` makes one;
        without the handler they wait for the next Trainer log to carry them."""
        if self._handler is None or not self._run.pending:
            return
        logs = self.take_pending()
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        self._emitting = True
        try:
            self._handler.call_event("on_log", args, state, control, logs=logs)
        finally:
            self._emitting = False

    @staticmethod
    def publish(state, logs: dict, values: Mapping[str, float]) -> None:
        """Into the logs reporters get and into the `log_history` entry the Trainer made of them."""
        if not values:
            return
        history = state.log_history
        entry = history[-1] if history else None
        made_from_logs = entry is not None and entry.keys() - {"step"} == logs.keys()
        logs.update(values)
        if made_from_logs:
            entry.update(values)

    # -- the epoch's log window --------------------------------------------------------

    def epoch_logs(self, state) -> dict[str, object]:
        """The Trainer's logs of this epoch merged, later entries winning (the last loss)."""
        return {
            k: v
            for entry in state.log_history[self._run.epoch_first_log :]
            for k, v in entry.items()
        }

    def end_epoch(self, state) -> None:
        """The epoch ended at this step: the next epoch's logs start after what is logged now."""
        self._run.epoch_first_log = len(state.log_history)
        self._run.epoch_end_step = state.global_step

    def at_epoch_end(self, state) -> bool:
        """No step since the last epoch end: an evaluation now belongs to that epoch."""
        return state.global_step == self._run.epoch_end_step

    def skip_logged(self, state) -> None:
        """What is logged so far stays out of the next epoch's logs (its evaluation)."""
        self._run.epoch_first_log = len(state.log_history)

    # -- the model card ----------------------------------------------------------------

    def keep_card(self, co2: dict | None) -> None:
        """The run's `co2_eq_emissions`, for every card the Trainer writes from now on."""
        self._card_co2 = co2

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
        if not self._card_co2 or not trainer.is_world_process_zero() or not os.path.exists(path):
            return
        try:
            self._session.add_to_model_card(path, self._card_co2)
        except Exception as exc:  # the card is a courtesy: never fail the user's call
            warn_once(
                "transformers-card", f"carbonlog: could not add co2_eq_emissions to {path} ({exc})"
            )


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
    """What the model says of itself: the Hub id or directory `from_pretrained` loaded it from
    (`name_or_path`: fine-tuning that base model), or none (built from a config: pre-training;
    pass `pretrained=False` for random weights from a config that was itself loaded)."""
    if model is None:
        return {}
    inner = _unwrap(model)
    config = getattr(inner, "config", None)
    name = getattr(inner, "name_or_path", None) or getattr(config, "_name_or_path", None) or ""
    detected: dict[str, object] = {"model": type(inner).__name__, "pretrained": bool(name)}
    if name:
        detected["base_model"] = str(name)
    return detected


def _tell_tensorboard(reporter: TensorBoardCallback, values: Mapping, tag: str) -> None:
    if reporter.tb_writer is not None:
        rows = "".join(f"| {key} | {value} |\n" for key, value in values.items())
        reporter.tb_writer.add_text(tag, "| key | value |\n|---|---|\n" + rows)


def _tell_wandb(reporter: WandbCallback, values: Mapping, tag: str) -> None:
    if reporter._wandb is not None and reporter._wandb.run is not None:
        reporter._wandb.config.update(dict(values), allow_val_change=True)


def _tell_mlflow(reporter: MLflowCallback, values: Mapping, tag: str) -> None:
    if reporter._initialized and reporter._ml_flow.active_run() is not None:
        reporter._ml_flow.log_params({key: str(value) for key, value in values.items()})


_TELL: dict[type, Callable[[Any, Mapping, str], None]] = {
    TensorBoardCallback: _tell_tensorboard,
    WandbCallback: _tell_wandb,
    MLflowCallback: _tell_mlflow,
}
"""How each reporter takes run metadata, through what its on_train_begin set up."""


def _sized(dataset: Any) -> int | None:
    """The number of examples of a sized dataset; None for an iterable one."""
    try:
        return len(dataset)
    except TypeError:
        return None


def _holds(callback: Any) -> Callable[[Any], bool]:
    """Whether a frame's `self` is a handler whose `callbacks` list holds this very callback."""

    def holds(owner: Any) -> bool:
        callbacks = getattr(owner, "callbacks", None)
        return isinstance(callbacks, list) and any(cb is callback for cb in callbacks)

    return holds


def _handler_of(owner: Any) -> Any | None:
    return getattr(owner, "callback_handler", None)
