"""What the Trainer does not hand a callback: its handler, a place ahead of the reporters, log
events of the callback's own, and the model card. Imported by the Transformers adapter only,
once transformers is known to be installed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transformers.trainer_callback import DefaultFlowCallback

from carbonlog._log import warn_once
from carbonlog.integrations._common import find_caller
from carbonlog.session import Session

CALLER_FRAMES = 12
"""How far up the stack the handler and the Trainer are looked for, from a hook."""


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


class TrainerBridge:
    """The callback's side of the Trainer: found up the call stack, since hooks get neither
    the handler nor the Trainer. Pieces (the energy since the last one) and the card's
    metadata come from the callback's `session`."""

    def __init__(self, callback: Any, session: Session, model_card: bool):
        self._callback = callback
        self._session = session
        self._model_card = model_card
        self._handler: Any | None = None
        self._emitting = False
        self._card_co2: dict | None = None
        self._run = RunLog()

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
        if trainer is not None and self._model_card:
            self._wrap_model_card(trainer)

    def _warn_placement(self, why: str) -> None:
        warn_once(
            f"transformers-placement:{id(self._callback)}",
            f"carbonlog: EmissionsCallback could not move itself ahead of the Trainer's "
            f"reporting callbacks ({why}), so reporters listed before it miss the energy of "
            "each log and evaluation. Put it first: Trainer(..., report_to='none', "
            "callbacks=[EmissionsCallback(...), TensorBoardCallback()]), the reporters after it.",
        )

    # -- pieces and log events ---------------------------------------------------------

    def begin_run(self, state) -> None:
        """A `train()` begins: nothing pending, pieces and this epoch's logs start here."""
        self._run = RunLog(piece_step=state.global_step, epoch_first_log=len(state.log_history))
        self._card_co2 = None

    def take_piece(self, state) -> dict[str, float]:
        """The energy since the last piece, kept until a log event carries it."""
        piece = self._session.step()
        self._run.piece_step = state.global_step
        self._run.pending.update(piece)
        return piece

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

    def emit(self, args, state, control) -> None:
        """Pending figures as a log event of their own, the way `Trainer.log` makes one.

        Without the handler they wait for the next Trainer log to carry them.
        """
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


def _holds(callback: Any) -> Callable[[Any], bool]:
    """Whether a frame's `self` is a handler whose `callbacks` list holds this very callback."""

    def holds(owner: Any) -> bool:
        callbacks = getattr(owner, "callbacks", None)
        return isinstance(callbacks, list) and any(cb is callback for cb in callbacks)

    return holds


def _handler_of(owner: Any) -> Any | None:
    return getattr(owner, "callback_handler", None)
