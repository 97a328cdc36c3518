"""What the Transformers callback costs: Trainer.train() time with and without it.

A tiny BERT (built from a config, hidden size 32) trains on random tokens on the CPU; runs
with and without the callback alternate so that drift of the machine hits both alike (the
paired ratio compares each run with the baseline run next to it). torch uses one thread. The
callback runs with its default meters (on a CPU-only machine: the CPU and RAM models),
with and without the run ledger; it reads the counters at every log (`--logging-steps`)
and every epoch end. Only `train()` is timed, not building the Trainer.
The resolution is the spread of the baseline itself (interquartile range of its per-epoch
time over the repeats): an overhead below it is not distinguishable from noise.

Run: python benchmarks/bench_transformers.py [--epochs 3] [--repeats 7] [--steps 10]
[--logging-steps 5]. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time

from timing import quartiles, time_methods

BATCH = 8
SEQ_LEN = 16
VOCAB = 128


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LEN,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def dataset(n: int):
    import torch

    ids = torch.randint(5, VOCAB, (n, SEQ_LEN), generator=torch.Generator().manual_seed(0))
    labels = (ids[:, 0] >= VOCAB // 2).long()
    mask = torch.ones(SEQ_LEN, dtype=torch.long)
    return [
        {"input_ids": i, "attention_mask": mask, "labels": y}
        for i, y in zip(ids, labels, strict=True)
    ]


def train_seconds(data, out: str, epochs: int, logging_steps: int, callbacks: list) -> float:
    from transformers import PrinterCallback, Trainer, TrainingArguments

    args = TrainingArguments(
        out,
        num_train_epochs=epochs,
        per_device_train_batch_size=BATCH,
        logging_steps=logging_steps,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # printing every log would dominate the timing
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


HOOKS = ("on_init_end", "on_train_begin", "on_step_end", "on_epoch_end", "on_log", "on_train_end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per epoch")
    parser.add_argument("--logging-steps", type=int, default=5)
    args = parser.parse_args()

    import torch
    import transformers

    from carbonlog.integrations.transformers import EmissionsCallback

    torch.set_num_threads(1)  # steadier timings on a shared machine
    transformers.logging.set_verbosity_error()
    logging.getLogger("carbonlog").setLevel(logging.WARNING)
    data = dataset(args.steps * BATCH)
    home = tempfile.mkdtemp(prefix="carbonlog-bench-")
    variants = {
        "without": lambda: [],
        "callback, ledger off": lambda: [
            EmissionsCallback(intensity=50.0, ledger=False, verbose=False, model_card=False)
        ],
        "callback, ledger on": lambda: [
            EmissionsCallback(intensity=50.0, ledger=os.path.join(home, "ledger.db"), verbose=False)
        ],
    }
    for make in variants.values():  # warm-up: torch kernels, carbonlog tables and meters
        train_seconds(data, home, 1, args.logging_steps, make())

    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():
            times[name].append(train_seconds(data, home, args.epochs, args.logging_steps, make()))

    print(
        f"transformers {transformers.__version__} (CPU), tiny BERT, {args.epochs} epochs x "
        f"{args.steps} steps of {BATCH}, a log every {args.logging_steps} steps, "
        f"{args.repeats} repeats, {os.cpu_count()} cores"
    )
    base_q1, base_s, base_q3 = quartiles(times["without"])
    resolution_ms = (base_q3 - base_q1) / args.epochs * 1000
    print(
        f"  without: median {base_s:.3f} s per train(), "
        f"{base_s / args.epochs * 1000:.1f} ms per epoch"
    )
    for name in list(variants)[1:]:
        _, median_s, _ = quartiles(times[name])
        overhead_ms = (median_s - base_s) / args.epochs * 1000
        paired = statistics.median(
            t / b for t, b in zip(times[name], times["without"], strict=True)
        )
        print(
            f"  {name}: median {median_s:.3f} s, ratio {median_s / base_s:.3f} "
            f"(median of paired ratios {paired:.3f}), overhead {overhead_ms:+.2f} ms per epoch"
        )
    print(f"  resolution (IQR of the baseline per epoch): {resolution_ms:.2f} ms")
    per_train_ms = []
    for _ in range(args.repeats):
        callback = EmissionsCallback(intensity=50.0, ledger=False, verbose=False)
        spent = time_methods(callback, HOOKS)
        train_seconds(data, home, args.epochs, args.logging_steps, [callback])
        per_train_ms.append(sum(spent) * 1000)
    inside_ms = statistics.median(per_train_ms)
    print(
        f"  time inside the callback's hooks (ledger off): median {inside_ms:.2f} ms per train(), "
        f"{inside_ms / args.epochs:.2f} ms per epoch (start and end included)"
    )


if __name__ == "__main__":
    main()
