"""Energy and CO2 of a Hugging Face Trainer run, per epoch, offline on the CPU in seconds.

A tiny BERT built from a config (so: pre-training) learns to tell generated positive reviews
from negative ones. EmissionsCallback puts `carbon/*` figures in the Trainer's logs (and so
in TensorBoard, W&B, MLflow... whatever `report_to` names), in `trainer_state.json`, and
`co2_eq_emissions` in the model card.

Run: python examples/transformers_example.py [--location FR] [--epochs 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    Trainer,
    TrainingArguments,
)

from carbonlog.integrations.transformers import EmissionsCallback

POSITIVE = ["great", "superb", "lovely", "moving", "brilliant", "delightful", "fresh", "witty"]
NEGATIVE = ["dull", "awful", "boring", "clumsy", "tedious", "bland", "messy", "flat"]
FILLER = [
    "the",
    "film",
    "plot",
    "cast",
    "was",
    "and",
    "a",
    "very",
    "quite",
    "with",
    "music",
    "story",
    "acting",
]


def reviews(n: int, seed: int) -> list[tuple[str, int]]:
    """Short generated reviews: filler words around two opinion words of one polarity."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, 6) + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def tokenizer(folder: Path) -> BertTokenizerFast:
    """A word-level BERT tokenizer whose vocabulary is exactly the generator's words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(specials + POSITIVE + NEGATIVE + FILLER) + "\n")
    return BertTokenizerFast.from_pretrained(str(folder))


class Reviews(torch.utils.data.Dataset):
    def __init__(self, rows: list[tuple[str, int]], tok: BertTokenizerFast):
        texts, labels = zip(*rows, strict=True)
        self.encoded = tok(list(texts), padding="max_length", max_length=12, return_tensors="pt")
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {name: values[i] for name, values in self.encoded.items()}
        item["labels"] = self.labels[i]
        return item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", default="FR", help='where the energy is drawn: "FR", ...')
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="carbonlog-transformers-"))
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(out / "tokenizer")
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    callback = EmissionsCallback(location=args.location)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            str(out),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=16,
            learning_rate=5e-3,
            logging_strategy="epoch",
            eval_strategy="epoch",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
        ),
        train_dataset=Reviews(reviews(256, seed=0), tok),
        eval_dataset=Reviews(reviews(64, seed=1), tok),
        callbacks=[callback],
    )
    trainer.train()
    trainer.create_model_card()

    print(f"\n{'epoch':>5} {'energy (Wh)':>12} {'CO2 (mg)':>10} {'eval loss':>10}")
    history = trainer.state.log_history
    for entry in (e for e in history if "carbon/energy_kwh" in e):
        loss = next(
            (
                e["eval_loss"]
                for e in history
                if e.get("epoch") == entry["epoch"] and "eval_loss" in e
            ),
            float("nan"),
        )
        print(
            f"{entry['epoch']:>5.0f} {entry['carbon/energy_kwh'] * 1e3:>12.4f} "
            f"{entry['carbon/co2_kg'] * 1e6:>10.4f} {loss:>10.4f}"
        )
    summary = callback.summary
    print(f"total: {summary.energy_kwh * 1e3:.4f} Wh, {summary.co2_kg * 1e6:.4f} mg CO2e")
    print(f"model card: {out / 'README.md'} carries co2_eq_emissions {callback.co2_eq_emissions}")


if __name__ == "__main__":
    main()
