"""Tiny real fits for the adapter fault tests: Lightning's BoringModel, a one-layer BERT under the
Trainer and a Dense Keras model (torch backend), all on the CPU with constant power forced, and
a callback of each framework that raises where it is told to (a Ctrl-C mid-epoch)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
OPTIONS = {"intensity": 100.0, "power_w": WATTS, "verbose": False}
"""The callbacks' options: the default ledger, under the test's own CARBONLOG_HOME."""


def ledger_path() -> Path:
    return Path(os.environ["CARBONLOG_HOME"]) / "ledger.sqlite3"


# -- Lightning -------------------------------------------------------------------------------


def lightning_fit(tmp_path: Path, callback, epochs: int, ckpt_path=None, extra=(), save=None):
    """BoringModel for `epochs` epochs of 2 batches (from `ckpt_path` if given), a CSV logger;
    `save`: a folder where the last checkpoint is written."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.loggers import CSVLogger

    callbacks = [callback, *extra]
    if save is not None:
        callbacks.append(ModelCheckpoint(dirpath=save, save_last=True))
    trainer = Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        callbacks=callbacks,
        logger=CSVLogger(tmp_path, name="logs"),
        enable_checkpointing=save is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel(), ckpt_path=ckpt_path)
    return trainer


def lightning_interrupt(at_epoch: int, at_batch: int):
    """A Lightning callback that raises KeyboardInterrupt after that batch of that epoch."""
    from lightning.pytorch import Callback

    class CtrlC(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if (trainer.current_epoch, batch_idx) == (at_epoch, at_batch):
                raise KeyboardInterrupt

    return CtrlC()


# -- Transformers ----------------------------------------------------------------------------


def hf_trainer(out: Path, callback, epochs: int, extra=(), **args):
    """A Trainer of a one-layer BERT: 16 examples, 2 steps per epoch, a checkpoint per epoch."""
    from transformers import Trainer

    from tests.integration.transformers_ddp_script import Tokens, tiny_bert, training_args

    options = {"num_train_epochs": epochs, "eval_strategy": "no", "logging_steps": 1, **args}
    return Trainer(
        model=tiny_bert(),
        args=training_args(out, **options),
        train_dataset=Tokens(16),
        eval_dataset=Tokens(8, seed=1),
        callbacks=[callback, *extra],
    )


def hf_interrupt(at_step: int):
    """A Trainer callback that raises KeyboardInterrupt at the end of that global step, once."""
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):
        fired = False

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == at_step and not self.fired:
                self.fired = True
                raise KeyboardInterrupt

    return CtrlC()


# -- Keras -----------------------------------------------------------------------------------


def keras_data():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")


def keras_model():
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def keras_fit(model, callbacks, epochs: int, initial_epoch: int = 0):
    """`model.fit` on 32 examples, 4 batches an epoch; its History."""
    x, y = keras_data()
    return model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=list(callbacks),
    )


def keras_interrupt(at_epoch: int, at_batch: int):
    """A Keras callback that raises KeyboardInterrupt after that batch of that epoch."""
    import keras

    class CtrlC(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == at_epoch and batch == at_batch:
                raise KeyboardInterrupt

    return CtrlC()
