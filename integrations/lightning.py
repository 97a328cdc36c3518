"""PyTorch Lightning: energy and CO2 per training epoch, in every logger the Trainer has.

    from carbonlog.integrations.lightning import EmissionsCallback
    trainer = Trainer(callbacks=[EmissionsCallback(location="FR")])

Works with both namespaces, `lightning.pytorch` and `pytorch_lightning`: the callback derives
from the Callback of each one installed, and imports neither when it is absent.
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
from typing import Any

from carbonlog._log import warn_once
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.integrations import _lightning_publish as publish
from carbonlog.integrations._common import (
    cuda_devices,
    is_available,
    new_session,
    require,
    with_options_doc,
)
from carbonlog.session import FIT, INTERRUPTED, SessionOwner

_CALLBACK_MODULES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}
"""Each Lightning namespace and the module that holds its Callback."""
_PREDICT = "predict"


def is_lightning_available() -> bool:
    """True when `lightning` or `pytorch_lightning` can be imported."""
    return any(is_available(name) for name in _CALLBACK_MODULES)


def _callback_bases() -> tuple[type, ...]:
    """Lightning's Callback from each installed namespace, so either Trainer accepts ours."""
    require(is_lightning_available(), "lightning", "Lightning")
    return tuple(
        importlib.import_module(module).Callback
        for name, module in _CALLBACK_MODULES.items()
        if is_available(name)
    )


def _planned_epochs(
    max_epochs: int | None,
    max_steps: int | None,
    batches_per_epoch: float | None,
    accumulate_grad_batches: int = 1,
) -> int | None:
    """The fit's length in epochs for the forecast: max_epochs, or max_steps in epochs.

    Lightning stops at whichever limit comes first; -1 or None means no limit, and an
    unknown or infinite epoch length (an iterable dataset) leaves max_steps unconvertible.
    """
    limits = []
    if max_epochs is not None and max_epochs > 0:
        limits.append(max_epochs)
    if (
        max_steps is not None
        and max_steps > 0
        and batches_per_epoch
        and math.isfinite(batches_per_epoch)
    ):
        steps_per_epoch = math.ceil(batches_per_epoch / max(accumulate_grad_batches, 1))
        limits.append(math.ceil(max_steps / steps_per_epoch))
    return min(limits) if limits else None


def _is_pruned(exception: BaseException) -> bool:
    """Whether a hyperparameter search pruned the trial (Optuna's TrialPruned, by name: the
    adapter does not import Optuna)."""
    return type(exception).__name__ == "TrialPruned"


@with_options_doc
class EmissionsCallback(SessionOwner, *_callback_bases()):
    """Logs each training epoch's energy (kWh) and CO2 (kg) to every logger of the Trainer.

    Each epoch's dict of `carbonlog.metrics` goes straight to every `trainer.loggers` (on
    the step Lightning logs the epoch's own metrics at) and, as tensors, into
    `trainer.callback_metrics`, so EarlyStopping and ModelCheckpoint can monitor
    `carbon/co2_kg_total`; nothing goes through `pl_module.log`, whose keys Lightning carries
    through every later training step. The running totals are in `callback_metrics` from
    the first training batch on; a validation inside the fit updates them when a callback
    monitors a `carbon/` key (one small sum over processes per such validation). The run's
    provenance (location, intensity and its source, PUE, which components are measured and
    which estimated) goes to each logger once, as hyperparameters. The epoch's validation
    counts in that epoch. Standalone `trainer.validate/test/predict` runs log under
    `carbon/<stage>/...`. Each training batch's size (as Lightning infers it for `self.log`)
    counts the fit's samples, for the energy per sample (`carbon/energy_per_sample_j` with
    `metrics="full"`, and the Summary's). Totals travel in checkpoints, so
    `fit(ckpt_path=...)` continues them; a damaged state there is refused with a warning and
    the totals start over. A fit that raises ends its ledger run as "failed", one stopped by
    Ctrl-C as "interrupted".

    Distributed: one all-reduce of a small float64 vector per epoch edge (and one at the
    fit's end) through torch.distributed, on the strategy's root device.

    Args:
        {options}
        log_every_n_steps: also log the energy since the last step log every n training
            batches, under `<prefix>step/` (summed over processes: one small all-reduce per
            step log); None (default) logs per epoch only.

    Raises:
        ValueError, TypeError: a bad option, here rather than mid-training.
    """

    def __init__(
        self,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        *,
        log_every_n_steps: int | None = None,
        **options: Any,
    ) -> None:
        if log_every_n_steps is not None and (
            not isinstance(log_every_n_steps, int)
            or isinstance(log_every_n_steps, bool)
            or log_every_n_steps < 1
        ):
            raise ValueError(
                f"log_every_n_steps must be a positive integer or None, got {log_every_n_steps!r}"
            )
        self._session = new_session("lightning", location, pue, intensity, options)
        self.log_every_n_steps = log_every_n_steps
        self._batches = 0
        self._failed = False
        self._monitored = False

    # -- hooks -------------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._check_loggers(trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        # Strategies that restore checkpoints after setup (FSDP, DeepSpeed) call
        # load_state_dict after this hook: the fit then begins at the next one.
        if not trainer.strategy.restore_checkpoint_after_setup:
            self._begin_fit(trainer, pl_module)

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self._begin_fit(trainer, pl_module)

    def on_train_start(self, trainer, pl_module) -> None:
        self._begin_fit(trainer, pl_module)
        self._plan(trainer)
        self._monitored = publish.monitors(trainer.callbacks, self._session.prefix)
        # after the sanity check, which empties callback_metrics, and Lightning's own hparams
        publish.to_callback_metrics(trainer, self._session.running_totals())
        publish.provenance(trainer, self._session.provenance())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count(batch)
        if self.log_every_n_steps is not None:
            self._log_step(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._log_epoch(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._end_run(trainer, "completed")

    def on_validation_start(self, trainer, pl_module) -> None:
        self._begin_standalone(trainer, pl_module, "validate")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._session.stage == FIT and self._monitored and not trainer.sanity_checking:
            # monitors read at validation end, before this epoch's edge: the totals up to now
            publish.to_callback_metrics(trainer, self._session.running_totals(now=True))
        self._end_evaluation(pl_module, "validate")

    def on_test_start(self, trainer, pl_module) -> None:
        self._begin_standalone(trainer, pl_module, "test")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end_evaluation(pl_module, "test")

    def on_predict_start(self, trainer, pl_module) -> None:
        self._begin_standalone(trainer, pl_module, _PREDICT)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self._session.stage == _PREDICT:  # predict cannot log through pl_module.log
            publish.to_loggers(trainer, self._session.end("completed"))

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # stopped on purpose, by hand or by a search's pruner (optuna.TrialPruned), not failed
        stopped = isinstance(exception, KeyboardInterrupt) or _is_pruned(exception)
        self._end_run(trainer, INTERRUPTED if stopped else "failed", failed=True)

    def state_dict(self) -> dict[str, Any]:
        # After the fit, the finished fit's totals: trainer.save_checkpoint() then resumes.
        return self._session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._session.load_state_dict(state_dict)

    # -- helpers -----------------------------------------------------------------------

    def _check_loggers(self, trainer) -> None:
        """One clear warning when nothing will receive the figures; distributed set-up."""
        if not trainer.loggers and trainer.is_global_zero:
            warn_once(
                f"lightning-no-logger:{id(self)}",
                "carbonlog: the Trainer has no logger, so energy and CO2 reach only "
                "trainer.callback_metrics and the ledger",
            )
        if trainer.world_size > 1:
            # Standalone validate/test log their totals through pl_module.log: they are
            # summed over ranks already, so Lightning's advice to sync_dist them does not apply.
            warnings.filterwarnings(
                "ignore",
                message=rf"It is recommended to use `self.log\('{re.escape(self._session.prefix)}",
            )

    def _begin(self, trainer, pl_module, stage: str) -> None:
        self._failed = False
        self._batches = 0
        self._session.begin(
            stage,
            ranks=Ranks(
                rank=trainer.global_rank,
                local_rank=trainer.local_rank,
                world_size=trainer.world_size,
            ),
            reduce=self._reduce_fn(trainer),
            gpus=cuda_devices(trainer.strategy.root_device),
            detected={"model": type(pl_module).__name__},
        )

    def _begin_fit(self, trainer, pl_module) -> None:
        """Start the fit's tracker once, with any totals restored from a checkpoint."""
        if self._session.stage != FIT:
            self._begin(trainer, pl_module, FIT)

    def _plan(self, trainer) -> None:
        """The epoch length is known from here on: the forecast's planned length."""
        self._session.plan(
            _planned_epochs(
                trainer.max_epochs,
                trainer.max_steps,
                trainer.num_training_batches,
                trainer.accumulate_grad_batches,
            )
        )

    def _begin_standalone(self, trainer, pl_module, stage: str) -> None:
        """validate/test/predict outside a fit: inference has its own run and keys."""
        if trainer.state.fn == stage and not trainer.sanity_checking:
            self._begin(trainer, pl_module, stage)
            publish.provenance(trainer, self._session.provenance())

    def _reduce_fn(self, trainer) -> ReduceFn | None:
        """The one sum over ranks (every rank calls it); None when alone."""
        if trainer.world_size <= 1:
            return None
        summed = publish.sum_over_ranks(trainer.strategy)
        # once this rank raised, the others may never join: a collective could wait forever
        return lambda values: values if self._failed else summed(values)

    def _count(self, batch) -> None:
        """The batch's samples, for the energy per sample (a batch of no tensor is said once,
        and not counted)."""
        if self._session.stage != FIT:
            return
        size = publish.batch_size(batch)
        if size is None:
            warn_once(
                f"lightning-batch-size:{id(self)}",
                "carbonlog: a training batch holds no tensor to count its samples by; "
                "the energy per sample leaves such batches out",
            )
        self._session.add_work(samples=size)

    def _log_step(self, trainer) -> None:
        if self._session.stage != FIT:
            return
        self._batches += 1
        if self._batches % self.log_every_n_steps == 0:
            publish.to_loggers(trainer, self._session.step(summed=True))

    def _log_epoch(self, trainer) -> None:
        """Close the epoch's interval, publish its dict, and stop the fit if over budget."""
        if self._session.stage != FIT:
            return
        values = self._session.epoch_end(trainer.callback_metrics)
        publish.to_callback_metrics(trainer, values)
        publish.to_loggers(trainer, values, epoch_end=True)
        if self._session.should_stop:
            trainer.should_stop = True

    def _end_run(self, trainer, status: str, failed: bool = False) -> None:
        """Close the fit (or whatever stage was open): totals to every logger and the ledger."""
        self._failed = failed
        totals = self._session.end(status)
        publish.to_callback_metrics(trainer, totals)
        publish.to_loggers(trainer, totals)

    def _end_evaluation(self, pl_module, stage: str) -> None:
        """validate/test: staged totals through pl_module.log, so trainer.test() returns them
        (logged once, at the end of the loop: nothing is carried through training steps)."""
        if self._session.stage == stage:
            totals = self._session.end("completed")
            pl_module.log_dict(
                totals, on_step=False, on_epoch=True, batch_size=1, add_dataloader_idx=False
            )
