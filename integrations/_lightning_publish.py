"""Where the Lightning callback's figures go, without `pl_module.log`: straight to each of the
Trainer's loggers (as LearningRateMonitor and DeviceStatsMonitor do), into
`trainer.callback_metrics` for the monitoring callbacks, the run's provenance to each logger's
hyperparameters once; and the one sum over ranks.

Lightning carries every key logged through `pl_module.log` through each later training step
(about 45 us per step for the dozen carbon keys); a logger's `log_metrics` costs nothing after.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from carbonlog._log import warn_once
from carbonlog.distributed import ReduceFn
from carbonlog.integrations._common import torch_sum

PROVENANCE_TAG = "carbon/provenance"
"""The TensorBoard text summary that holds the run's provenance."""


def monitors(callbacks: Iterable[Any], prefix: str) -> bool:
    """Whether one of `callbacks` (EarlyStopping, ModelCheckpoint, ...) monitors a key under
    `prefix`: then a validation inside the fit refreshes the running totals for it."""
    return any(
        str(getattr(callback, "monitor", None) or "").startswith(prefix) for callback in callbacks
    )


def logger_step(trainer, epoch_end: bool = False) -> int:
    """The x axis Lightning logs its own metrics on: batches that stepped (once a batch,
    whatever the number of optimizers, as LearningRateMonitor reads it), an epoch's own metrics
    on its last batch; the global step where Lightning does not expose that count."""
    stepped = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", None)
    if not isinstance(stepped, int):
        return trainer.global_step
    return max(stepped - 1, 0) if epoch_end else stepped


def to_loggers(trainer, values: Mapping[str, float], epoch_end: bool = False) -> None:
    """`values` to every logger of the Trainer, from global rank zero, with the epoch as
    Lightning adds it to its own rows (the CSV's `epoch` column)."""
    if not values or not trainer.is_global_zero:
        return
    row = {**values, "epoch": trainer.current_epoch}
    step = logger_step(trainer, epoch_end)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=step)


def to_callback_metrics(trainer, values: Mapping[str, float]) -> None:
    """`values` into `trainer.callback_metrics` as float64 tensors, on every rank (each holds
    the same summed figures), where EarlyStopping and ModelCheckpoint look for a monitor."""
    if not values:
        return
    import torch

    trainer.callback_metrics.update(
        {key: torch.tensor(value, dtype=torch.float64) for key, value in values.items()}
    )


def provenance(trainer, values: Mapping[str, object]) -> None:
    """The run's provenance to every logger once, as run metadata (hyperparameters, params,
    config), not as series. TensorBoard shows only the first hyperparameters of a run (and its
    logger writes hparams.yaml once), Lightning's own: there it is a text summary as well. A
    logger that refuses it (an MLflow run holding other values for these params) is said once
    and training goes on."""
    if not values or not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        try:
            logger.log_hyperparams(dict(values))
            add_text = getattr(logger.experiment, "add_text", None)  # a SummaryWriter
            if add_text is not None:
                add_text(PROVENANCE_TAG, provenance_table(values), logger_step(trainer))
        except Exception as exc:
            warn_once(
                f"lightning-provenance:{type(logger).__name__}",
                f"carbonlog: {type(logger).__name__} did not take the run's provenance ({exc})",
            )


def provenance_table(values: Mapping[str, object]) -> str:
    """The provenance as a two-column Markdown table (TensorBoard renders Markdown text)."""
    rows = "".join(f"\n| {key} | {value} |" for key, value in values.items())
    return "| key | value |\n|---|---|" + rows


def batch_size(batch: Any) -> int | None:
    """The number of samples in a training batch, as Lightning infers it for `self.log` (the
    first dimension of its tensors); None where it cannot tell."""
    try:
        from lightning.pytorch.utilities.data import extract_batch_size
    except ImportError:  # only the pytorch_lightning namespace is installed
        from pytorch_lightning.utilities.data import extract_batch_size
    try:
        return extract_batch_size(batch)
    except Exception:  # a batch of no tensor (MisconfigurationException), or too deep a one
        return None


def sum_over_ranks(strategy) -> ReduceFn:
    """One all-reduce of a float64 vector through torch.distributed on the strategy's root
    device (not `strategy.reduce`, which runs a barrier first); a strategy without a torch
    process group (XLA) sums through its own reduce."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return torch_sum(strategy.root_device)
    return torch_sum(strategy.root_device, lambda t: strategy.reduce(t, reduce_op="sum"))
