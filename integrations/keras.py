"""Keras 3: each epoch's energy and CO2 in `logs`, so History, CSVLogger and the loggers after it
keep it.

    model.fit(x, y, epochs=10, callbacks=[EmissionsCallback(location="FR"), CSVLogger("log.csv")])

Works on the torch and jax backends (set KERAS_BACKEND before the first `import keras`). Keras'
own TensorBoard callback needs TensorFlow: docs/quickstart/keras.md shows a writer for torch/JAX.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from carbonlog._log import say, warn_once
from carbonlog.integrations._common import (
    find_caller,
    is_available,
    new_session,
    require,
    with_options_doc,
)
from carbonlog.session import FIT, SessionOwner


def is_keras_available() -> bool:
    """True when Keras can be imported (its backend may still fail to load)."""
    return is_available("keras")


require(is_keras_available(), "keras", "Keras 3")
try:
    import keras
except ImportError as exc:
    raise ImportError(
        f"Keras is installed but its backend could not load ({exc}); set KERAS_BACKEND=torch "
        "or KERAS_BACKEND=jax before the first `import keras`, or install TensorFlow"
    ) from exc

from carbonlog.integrations._keras_support import (  # noqa: E402  (needs Keras loaded)
    epoch_samples,
    gpus_driven,
    process_group,
    reads_logs,
    write_json_atomically,
)

TEST = "test"
PREDICT = "predict"
_CALLER_FRAMES = 6  # how far up the stack the CallbackList calling on_train_begin may be


@with_options_doc
class EmissionsCallback(SessionOwner, keras.callbacks.Callback):
    """Measures every epoch (its validation included) and adds the carbonlog metrics to `logs`.

    Order matters: Keras hands one `logs` dict down the callback list, so only callbacks
    listed *after* this one (CSVLogger, MLflow's callback, a LambdaCallback, EarlyStopping on
    a `carbon/` key) see its keys; History and the progress bar (which prints them) come last
    by default. A warning says so when a callback listed before it would want them: one that
    monitors a `carbon/` key, or any whose `on_epoch_end` reads its `logs` (found from the
    CallbackList that calls `on_train_begin`; Keras exposes that list neither on the model nor
    in `params`).

    `evaluate()` and `predict()` are measured, each as a run of its own, when this callback
    is passed to them too (`model.evaluate(x, y, callbacks=[emissions])`): Keras gives a
    callback no hook into calls it was not passed to, and keeps no callback of `fit()`. Their
    figures are in `self.totals["test"]` / `self.totals["predict"]` (`carbon/test/*`,
    `carbon/predict/*`) and, for evaluate, in the `logs` later callbacks see at `on_test_end`;
    not in what `evaluate(return_dict=True)` returns, since Keras hands callbacks a copy of
    that dict. Validation inside `fit()` belongs to its epoch.

    Resume (`fit(initial_epoch=k)`, BackupAndRestore): a fit that starts past epoch 0
    continues the totals of this callback's previous fit, or, in a new process, those of
    `state_path`: a JSON file the global-zero process rewrites atomically after every epoch
    and at the end of fit (in multi-node runs, put it where every node reads it, as
    BackupAndRestore's `backup_dir`). A fit from epoch 0 starts new totals. A damaged or
    unreadable state is refused with a warning and the totals start over.

    Keras calls no hook when fit, evaluate or predict raises (a Ctrl-C): the run left open
    ends "interrupted" at this callback's next fit, evaluate or predict (whose new
    CallbackList sets its params), else when it is discarded or the process exits.

    Multi-process (torch DDP under Keras, mp.spawn included, JAX multi-process): ranks from an
    initialised torch.distributed group or the launcher's variables (JAX's process index where
    it runs several); one float64 sum per interval through torch.distributed when it is
    initialised, else JAX (float64 whatever jax_enable_x64 says). On JAX the GPUs measured
    are JAX's local devices (none where JAX computes on the CPU). Before counters are read,
    queued device work is waited for by the core (torch and JAX, whichever is loaded: JAX
    dispatch is asynchronous, and predict's outputs are still in flight at `on_predict_end`).
    No batch hook is overridden, so Keras keeps its async dispatch; `on_budget="stop"` sets
    `model.stop_training`. An epoch's samples (its batches x the batch size, the last batch as
    it is: what fit's data adapter knows of arrays and tensors) give the energy per sample.

    Args:
        {options}
        state_path: the JSON file that carries the totals to a fit resumed in a new process.

    Raises:
        ValueError, TypeError: a bad option, here rather than mid-training.
    """

    def __init__(
        self,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        *,
        state_path: str | os.PathLike | None = None,
        **options,
    ):
        super().__init__()
        if state_path is not None and not isinstance(state_path, str | os.PathLike):
            raise TypeError(f"state_path must be a path or None, got {state_path!r}")
        self._session = new_session("keras", location, pue, intensity, options)
        self.state_path = os.fspath(state_path) if state_path is not None else None
        self.totals: dict[str, dict[str, float]] = {}
        self._fitting = False
        self._fit_begun = False
        self._blind: list[str] = []
        self._epoch_samples: int | None = None

    def set_params(self, params):
        # Only a new fit/evaluate/predict builds a CallbackList, which sets params (fit's own
        # validation reuses fit's): a stage still measured here was left by one that raised.
        super().set_params(params)
        self._fitting = False
        self._session.abandon()

    # -- fit ---------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._fitting, self._fit_begun = True, False
        self._blind = self._listed_before(_calling_callbacks())
        steps = self.params.get("steps") if self.params else None
        self._epoch_samples = epoch_samples(_fit_data_adapter(), steps)

    def on_epoch_begin(self, epoch, logs=None):
        if self._fitting and not self._fit_begun:
            self._fit_begun = True
            self._begin_fit(first_epoch=epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._session.add_work(samples=self._epoch_samples)
        values = self._session.epoch_end(logs)
        if logs is not None:
            logs.update(values)
        if self._session.is_measuring:
            self._write_sidecar()
        if self._session.should_stop:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self._fitting = False
        if self._session.stage != FIT:
            return
        self._report(FIT, self._session.end("completed"), logs)
        self._write_sidecar()

    # -- evaluate and predict ----------------------------------------------------------

    def on_test_begin(self, logs=None):
        if not self._fitting:  # validation inside fit() belongs to its epoch
            self._begin(TEST)

    def on_test_end(self, logs=None):
        if not self._fitting:
            self._report(TEST, self._session.end(), logs)

    def on_predict_begin(self, logs=None):
        if not self._fitting:
            self._begin(PREDICT)

    def on_predict_end(self, logs=None):
        if not self._fitting:
            self._report(PREDICT, self._session.end(), logs)

    # -- internals ---------------------------------------------------------------------

    def _begin(self, stage: str, planned_epochs: int | None = None) -> None:
        ranks, reduce = process_group()
        model = self.model
        self._session.begin(
            stage,
            ranks=ranks,
            reduce=reduce,
            gpus=gpus_driven(model),
            planned_epochs=planned_epochs,
            detected={"model": getattr(model, "name", type(model).__name__)},
        )

    def _begin_fit(self, first_epoch: int) -> None:
        """Open the fit's tracker at its first epoch, once the resume point is known."""
        if first_epoch > 0:
            self._load_state(first_epoch)
        done = self._session.resume_epochs or 0
        planned = self.params.get("epochs") if self.params else None
        self._begin(FIT, planned_epochs=planned - first_epoch + done if planned else None)
        if self._blind:  # said once the fit's ranks are known: on global rank zero
            say(
                f"carbonlog: {', '.join(self._blind)} listed before EmissionsCallback will not "
                f"see the {self._session.prefix}* keys; list EmissionsCallback first"
            )

    def _report(self, stage: str, values: dict[str, float], logs) -> None:
        self.totals[stage] = values
        if logs is not None:
            logs.update(values)

    def _load_state(self, first_epoch: int) -> None:
        """Totals of the fit's earlier part, for the session: this callback's last fit, else
        the sidecar (a file that cannot be read is refused like a damaged state)."""
        state, source = self._session.state_dict() or None, "this callback's last fit"
        path = self.state_path
        if state is None and path is not None and os.path.exists(path):
            source = path
            try:
                with open(path, encoding="utf-8") as file:
                    state = json.load(file)
            except (OSError, ValueError, RecursionError) as exc:  # a cut, foreign or hostile file
                self._session.refuse_state(f"the resume state in {path} could not be read ({exc})")
                return
        if state is None:
            why = "no state_path is set" if path is None else f"{path} does not exist"
            say(
                f"carbonlog: fit starts at epoch {first_epoch} and {why}; energy and CO2 "
                "totals count from this epoch"
            )
        elif self._session.load_state_dict(state, source) and (
            self._session.resume_epochs != first_epoch
        ):
            say(
                f"carbonlog: the fit's earlier part holds {self._session.resume_epochs} epochs "
                f"and fit resumes at epoch {first_epoch}; totals continue from it (energy "
                "spent on repeated epochs counts again)",
                level=logging.INFO,
            )

    def _write_sidecar(self) -> None:
        """Global zero writes the fit's totals so far to `state_path`, for a resume."""
        if self.state_path is None or not self._session.is_global_zero:
            return
        try:
            write_json_atomically(self.state_path, self._session.state_dict())
        except OSError as exc:
            warn_once(
                f"keras-state:{self.state_path}",
                f"carbonlog: writing {self.state_path} failed ({exc}); training goes on",
            )

    def _listed_before(self, callbacks: Sequence | None) -> list[str]:
        """The callbacks listed before this one that would want its keys, by class name."""
        if not callbacks or self not in callbacks:
            return []
        before = callbacks[: callbacks.index(self)]
        return [type(c).__name__ for c in before if reads_logs(c, self._session.prefix)]


def _fit_data_adapter():
    """The data adapter of the fit whose on_train_begin calls ours: its epoch iterator is a
    local of fit(), a few frames up (Keras hands callbacks neither)."""
    iterator = find_caller(lambda it: hasattr(it, "data_adapter"), _CALLER_FRAMES, "epoch_iterator")
    return None if iterator is None else iterator.data_adapter


def _calling_callbacks() -> list | None:
    """The callbacks of the CallbackList whose hook called ours, found a few frames up."""
    caller = find_caller(lambda it: isinstance(it, keras.callbacks.CallbackList), _CALLER_FRAMES)
    return None if caller is None else caller.callbacks
