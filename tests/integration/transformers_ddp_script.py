"""A tiny BERT trained by the Trainer, with EmissionsCallback; shared by the Transformers tests.

Under `torchrun --nproc_per_node 2 transformers_ddp_script.py OUT [log_steps]` it trains on gloo
(CPU), with constant power forced (and `log_steps=True` if asked), and every rank writes
OUT/rank<N>.json: its log history, the fit's Summary figures, the card metadata and every
collective carbonlog's code made (found by wrapping torch.distributed's), for
test_transformers.py to read back.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

SEQ_LEN = 12
VOCAB = 64
POWER_W = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}


class Tokens(torch.utils.data.Dataset):
    """Random token sequences labelled by whether their first token is in the upper half."""

    def __init__(self, n: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, VOCAB, (n, SEQ_LEN), generator=generator)
        self.labels = (self.ids[:, 0] >= VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        mask = torch.ones(SEQ_LEN, dtype=torch.long)
        return {"input_ids": self.ids[i], "attention_mask": mask, "labels": self.labels[i]}


def tiny_bert(layers: int = 1) -> BertForSequenceClassification:
    """A BERT built from a config (random weights: pre-training), hidden size 32."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LEN + 4,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def training_args(output_dir, **overrides) -> TrainingArguments:
    """CPU, a couple of epochs of 5 steps, quiet; logging every 2 steps, eval each epoch."""
    options = {
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "logging_strategy": "steps",
        "logging_steps": 2,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "report_to": [],
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        **overrides,
    }
    return TrainingArguments(str(output_dir), **options)


COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "broadcast",
    "barrier",
    "reduce",
)
"""What torch.distributed offers to sum, gather or wait; carbonlog may use one all_reduce."""


def count_collectives() -> dict[str, list]:
    """Wrap torch.distributed's collectives; each call is recorded under "carbonlog" when
    carbonlog's code (core or adapter) is on the stack, else under "others": its name, its
    tensor's size and dtype, and the EmissionsCallback hook and global step it came from."""
    import carbonlog
    import carbonlog.integrations

    ours = (os.path.dirname(carbonlog.__file__), *carbonlog.integrations.__path__)
    calls: dict[str, list] = {"carbonlog": [], "others": []}

    def wrapped(name, collective):
        def call(*args, **kwargs):
            frames = list(_callers(sys._getframe(1)))
            hooks = [f for f in frames if _is_hook(f)]  # innermost first
            tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
            mine = any(f.f_code.co_filename.startswith(ours) for f in frames)
            calls["carbonlog" if mine else "others"].append(
                {
                    "name": name,
                    "numel": None if tensor is None else tensor.numel(),
                    "dtype": None if tensor is None else str(tensor.dtype),
                    "hook": hooks[0].f_code.co_name if hooks else None,
                    "step": hooks[0].f_locals["state"].global_step if hooks else None,
                }
            )
            return collective(*args, **kwargs)

        return call

    for name in COLLECTIVES:
        setattr(torch.distributed, name, wrapped(name, getattr(torch.distributed, name)))
    return calls


def _callers(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def _is_hook(frame) -> bool:
    owner = type(frame.f_locals.get("self")).__name__
    return owner == "EmissionsCallback" and frame.f_code.co_name.startswith("on_")


def main(output_dir: str, log_steps: bool) -> None:
    from carbonlog.integrations.transformers import EmissionsCallback

    collectives = count_collectives()
    callback = EmissionsCallback(
        intensity=50.0, ledger=False, verbose=False, power_w=POWER_W, log_steps=log_steps
    )
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(output_dir, per_device_train_batch_size=4),
        train_dataset=Tokens(80),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[callback],
    )
    trainer.train()
    trainer.create_model_card()
    summary = callback.summary
    report = {
        "rank": trainer.args.process_index,
        "world_size": trainer.args.world_size,
        "log_history": trainer.state.log_history,
        "energy_kwh": summary.energy_kwh,
        "co2_kg": summary.co2_kg,
        "duration_s": summary.duration_s,
        "intervals": [[iv.label, iv.energy_kwh, iv.duration_s] for iv in summary.intervals],
        "co2_eq_emissions": callback.co2_eq_emissions,
        "collectives": collectives,
    }
    with open(f"{output_dir}/rank{trainer.args.process_index}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] == ["log_steps"])
