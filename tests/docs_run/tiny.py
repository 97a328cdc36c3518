"""Tiny real objects for the names that the docs' snippets take from their prose.

Every factory builds the real thing (a torch MLP, a LightningModule, a BERT from a config, a
Keras model on the torch backend), just small enough that a block runs in a second or two on a
CPU. Each imports its framework only when called, so a prelude pays only for what it uses.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras picks its backend at first import

ROWS = 64
FEATURES = 8
SEQ_LEN = 12
VOCAB = 64


def _xy():
    """64 random rows of 8 features and a linear target, as float32 torch tensors."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, FEATURES, generator=generator)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(ROWS, 1, generator=generator)
    return x, y


def mlp():
    """A 2-layer torch MLP: 8 -> 16 -> 1."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
    )


def loader(batch_size: int = 16, shuffle: bool = True):
    """A DataLoader of the 64 random rows, yielding (x, y)."""
    import torch

    x, y = _xy()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle
    )


def plain_loop() -> dict:
    """`model`, `loader`, `optimizer` and a `train_one_epoch()` that trains them once over
    the loader: the names of the plain-Python pages."""
    import torch

    model = mlp()
    data = loader()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_one_epoch():
        for x, y in data:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()

    return {
        "model": model,
        "loader": data,
        "optimizer": optimizer,
        "train_one_epoch": train_one_epoch,
    }


def lightning_module():
    """The MLP as a LightningModule that logs `train_loss` and `val_loss`."""
    import lightning.pytorch as pl
    import torch

    class TinyModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return TinyModule()


def lightning_names() -> dict:
    """`model`, `train_loader`, `val_loader` (2 and 1 batches) and `Trainer`: the real
    `lightning.pytorch.Trainer` with CPU-and-quiet defaults that the block's own arguments
    override (max_epochs=1, limit_train_batches=2, no progress bar)."""
    import lightning.pytorch as pl

    return {
        "model": lightning_module(),
        "train_loader": loader(batch_size=32),
        "val_loader": loader(batch_size=64, shuffle=False),
        "Trainer": functools.partial(
            pl.Trainer,
            max_epochs=1,
            limit_train_batches=2,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
        ),
    }


class Tokens:
    """A torch Dataset of random token sequences, labelled by their first token's half."""

    def __init__(self, n: int, seed: int = 0):
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, VOCAB, (n, SEQ_LEN), generator=generator)
        self.labels = (self.ids[:, 0] >= VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        import torch

        mask = torch.ones(SEQ_LEN, dtype=torch.long)
        return {"input_ids": self.ids[i], "attention_mask": mask, "labels": self.labels[i]}


def tiny_bert():
    """A BertForSequenceClassification built from a config: 1 layer, hidden size 32."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LEN + 4,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def transformers_names() -> dict:
    """`model`, `args` (1 epoch, CPU, quiet, no reporter), `train` / `train_dataset` (16 rows:
    2 steps of 8) and `eval_dataset` (8 rows): the names of the Transformers pages."""
    from transformers import TrainingArguments

    train = Tokens(16)
    return {
        "model": tiny_bert(),
        "args": TrainingArguments(
            output_dir="out",
            num_train_epochs=1,
            per_device_train_batch_size=8,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        ),
        "train": train,
        "train_dataset": train,
        "eval_dataset": Tokens(8, seed=1),
    }


def keras_names() -> dict:
    """`keras`, a compiled `model` (8 -> 16 -> 1, Adam, MSE) and numpy `x`, `y` (64 rows)."""
    import keras

    x, y = _xy()
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return {"keras": keras, "model": model, "x": x.numpy(), "y": y.numpy()}
