"""Pretrained or scratch: what fine-tuning a pretrained model saved against training from scratch.

The reference is the best one available, in this order: (a) a scratch run of the same task
in the ledger; (b) the base model's own `co2_eq_emissions` in its model card on disk (a
local directory or the Hugging Face cache; the Hub wants grams); (c) the table shipped
with carbonlog of published training figures (data/published_training.csv, each row with
its source and year).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from carbonlog import units
from carbonlog._log import logger
from carbonlog.report.text import KG_PER_TONNE, format_co2

SCRATCH_STAGES = ("fit", None)
_UNITS_KG = {
    "g": 1 / units.G_PER_KG,
    "kg": 1.0,
    "t": KG_PER_TONNE,
    "ton": KG_PER_TONNE,
    "tons": KG_PER_TONNE,
    "tonnes": KG_PER_TONNE,
}
_MASS = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-z]*)", re.IGNORECASE)
_CLASS_SUFFIXES = ("for", "model", "lm", "encoder", "decoder", "pretrained", "pre")


@dataclass(frozen=True)
class Reference:
    """What training from scratch cost: `kg` CO2 (and `kwh` where known), and where it comes
    from (`kind`: "ledger", "model_card", "published", or "shared" from global rank zero;
    `description` says which run, card or paper)."""

    kg: float
    kwh: float | None
    description: str
    kind: str

    def saved_kg(self, run_co2_kg: float) -> float:
        """CO2 this fine-tuning saved so far against the reference (negative: it cost more)."""
        return self.kg - run_co2_kg

    def statement(self, run_co2_kg: float) -> str:
        """`fine-tuning used 420 g CO2; from scratch (run 12, same task) used 8.1 kg: 19x less`."""
        used = (
            f"fine-tuning used {format_co2(run_co2_kg)} CO2; from scratch "
            f"({self.description}) used {format_co2(self.kg)}"
        )
        if run_co2_kg <= 0 or self.kg <= 0:
            return used
        ratio = self.kg / run_co2_kg
        if ratio >= 1:
            return f"{used}: {_times(ratio)} less"
        return f"{used}: fine-tuning used {_times(1 / ratio)} more"


@dataclass(frozen=True)
class Published:
    """One row of the shipped table of published training figures."""

    model: str
    family: str
    match: str
    params_m: float
    co2_kg: float | None
    energy_kwh: float | None
    energy_basis: str
    hardware: str
    scale_from: str
    source: str
    year: int | None
    notes: str

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.match, name) is not None


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def saved_vs_scratch_kg(reference: Reference | None, co2_kg_total: float) -> float | None:
    """The per-epoch `co2_saved_vs_scratch_kg`: reference minus the run's CO2 so far."""
    return None if reference is None else reference.saved_kg(co2_kg_total)


# -- (c) the published table --------------------------------------------------------------


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.lru_cache(maxsize=1)
def published_table() -> tuple[Published, ...]:
    """Every row of data/published_training.csv, in file order."""
    text = (
        resources.files("carbonlog")
        .joinpath("data", "published_training.csv")
        .read_text(encoding="utf-8")
    )
    return tuple(
        Published(
            model=row["model"],
            family=row["family"],
            match=row["match"],
            params_m=float(row["params_m"]),
            co2_kg=_float(row["co2_kg"]),
            energy_kwh=_float(row["energy_kwh"]),
            energy_basis=row["energy_basis"],
            hardware=row["hardware"],
            scale_from=row["scale_from"],
            source=row["source"],
            year=int(row["year"]) if row["year"] else None,
            notes=row["notes"],
        )
        for row in csv.DictReader(io.StringIO(text))
    )


def normalize_model_name(name: str) -> str:
    """A Hub id, a cache path or a local directory as a lower-case `org/name` or `name`.

    `/cache/hub/models--google-bert--bert-base-uncased/snapshots/abc` -> `google-bert/
    bert-base-uncased`; `./checkpoints/llama-2-7b-hf/` -> `llama-2-7b` (the -hf suffix of
    converted checkpoints goes).
    """
    text = str(name).strip().replace("\\", "/").rstrip("/").lower()
    cached = re.search(r"models--([^/]+)", text)
    if cached:
        text = cached.group(1).replace("--", "/")
    elif text.startswith(("/", ".", "~")) or text.count("/") > 1:
        text = text.rsplit("/", 1)[-1]
    return text.removesuffix("-hf")


def published_row(name: str | None) -> Published | None:
    """The table row for a checkpoint name, or None."""
    if not name:
        return None
    normalized = normalize_model_name(name)
    return next((row for row in published_table() if row.matches(normalized)), None)


def _row_named(model: str) -> Published:
    return next(row for row in published_table() if row.model == model)


def _cite(row: Published) -> str:
    """`Strubell, Ganesh & McCallum 2019`, or `Meta Llama 3 model card (...) (2024)`."""
    head, found, _ = row.source.partition(f" {row.year}")
    if row.year and found:
        return f"{head} {row.year}"
    return row.source.split(", ")[0] + (f" ({row.year})" if row.year else "")


def published_reference(name: str | None) -> Reference | None:
    """The table's figure for the checkpoint `name`, or None."""
    row = published_row(name)
    return None if row is None else _row_reference(row)


def _row_reference(row: Published) -> Reference | None:
    """A row's figure; sizes without their own are scaled by parameters from the family
    member that has one (same training recipe), and say so."""
    if row.co2_kg is not None:
        return Reference(
            row.co2_kg, row.energy_kwh, f"{row.model} pre-training, {_cite(row)}", "published"
        )
    if not row.scale_from:
        return None
    base = _row_named(row.scale_from)
    if base.co2_kg is None:
        return None
    ratio = row.params_m / base.params_m
    kwh = None if base.energy_kwh is None else base.energy_kwh * ratio
    return Reference(
        base.co2_kg * ratio,
        kwh,
        f"{row.model} pre-training: {base.model} ({_cite(base)}) scaled by parameters, "
        f"{row.params_m:,g}M / {base.params_m:,g}M",
        "published",
    )


# -- (b) the model card on disk -----------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, or
    ~/.cache/huggingface/hub (XDG_CACHE_HOME honoured)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def model_card_path(name: str, hub_cache: str | os.PathLike | None = None) -> Path | None:
    """README.md of a local model directory, or of the newest cached snapshot of a Hub id."""
    local = Path(name).expanduser()
    if local.is_dir():
        card = local / "README.md"
        return card if card.is_file() else None
    cache = Path(hub_cache) if hub_cache is not None else hub_cache_dir()
    snapshots = cache / f"models--{name.strip().replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    cards = [s / "README.md" for s in snapshots.iterdir() if (s / "README.md").is_file()]
    return max(cards, key=lambda card: card.stat().st_mtime, default=None)


def _front_matter(text: str) -> str | None:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:end])
    return None


def _scalar(text: str):
    text = text.split(" #", 1)[0].strip().strip("\"'")
    try:
        return float(text)
    except ValueError:
        return text


def _co2_field_minimal(front: str):
    """`co2_eq_emissions` without pyyaml: a scalar, or a one-level mapping beneath it."""
    lines = front.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("co2_eq_emissions:"):
            continue
        value = line.split(":", 1)[1].strip()
        if value:
            return _scalar(value)
        fields = {}
        for child in lines[number + 1 :]:
            if child.strip() and not child[0].isspace():
                break
            if ":" in child:
                key, raw = child.split(":", 1)
                fields[key.strip()] = _scalar(raw)
        return fields
    return None


def card_co2_field(text: str):
    """The `co2_eq_emissions` value of a model card's YAML front matter, or None."""
    front = _front_matter(text)
    if front is None:
        return None
    try:
        import yaml
    except ImportError:
        return _co2_field_minimal(front)
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError:
        return _co2_field_minimal(front)
    return meta.get("co2_eq_emissions") if isinstance(meta, dict) else None


def _kg(value) -> float | None:
    """A card's emissions in kg: a bare number is grams (the Hub's unit); "149.2 kg" has its own."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / units.G_PER_KG
    match = _MASS.match(str(value))
    if not match:
        return None
    unit = match.group(2).lower() or "g"
    return float(match.group(1)) * _UNITS_KG[unit] if unit in _UNITS_KG else None


def model_card_reference(
    name: str | None, hub_cache: str | os.PathLike | None = None
) -> Reference | None:
    """The base model's own training emissions from its card on disk, unless the card says
    they were for a fine-tuning (not a from-scratch figure)."""
    if not name:
        return None
    card = model_card_path(name, hub_cache)
    if card is None:
        return None
    field = card_co2_field(card.read_text(encoding="utf-8", errors="replace"))
    if isinstance(field, Mapping):
        if "fine" in str(field.get("training_type", "")).lower():
            return None
        kg = _kg(field.get("emissions"))
        source = field.get("source")
    else:
        kg, source = _kg(field), None
    if kg is None or kg <= 0:
        return None
    label = normalize_model_name(name)
    described = f"{label} model card" + (f", {source}" if source else "")
    return Reference(kg, None, described, "model_card")


# -- (a) the ledger -----------------------------------------------------------------------


def ledger_reference(
    ledger, task: str | None, exclude_run_id: int | None = None
) -> Reference | None:
    """The newest completed scratch run of the same task in the ledger."""
    if ledger is None or not task:
        return None
    for run in ledger.runs(task=task, status="completed", pretrained=False):
        if run.id != exclude_run_id and run.stage in SCRATCH_STAGES and run.co2_kg > 0:
            return Reference(run.co2_kg, run.energy_kwh, f"run {run.id}, same task", "ledger")
    return None


def find_reference(
    base_model: str | None = None,
    task: str | None = None,
    ledger=None,
    exclude_run_id: int | None = None,
    hub_cache: str | os.PathLike | None = None,
) -> Reference | None:
    """The best reference available: ledger scratch run, then model card, then the table."""
    return (
        ledger_reference(ledger, task, exclude_run_id)
        or model_card_reference(base_model, hub_cache)
        or published_reference(base_model)
    )


def reference_for(
    ledger, base_model: str | None, task: str | None, *, exclude_run_id: int | None = None
) -> Reference | None:
    """The reference of a fine-tuning run, as global rank zero looks it up in `ledger` (a
    reader with `Ledger.runs`, or None), the card and the table; `exclude_run_id` is the run
    itself. Never raises: a failed lookup is no reference."""
    try:
        return find_reference(
            base_model=base_model, task=task, ledger=ledger, exclude_run_id=exclude_run_id
        )
    except Exception as exc:  # the tracker never breaks training
        logger.debug("carbonlog: looking up the from-scratch reference failed: %s", exc)
        return None


def share_reference(found: Reference | None, reduce, world_size: int) -> Reference | None:
    """Rank zero's reference on every rank, so all ranks log the same keys.

    Called on every rank, with `found` from rank zero and None elsewhere; `reduce` is the
    framework's sum over ranks. Without it, or alone, `found` itself. Never raises.
    """
    if reduce is None or world_size <= 1:
        return found
    mine = [found.kg, found.kwh or 0.0, float(found.kwh is not None), 1.0] if found else [0.0] * 4
    try:
        kg, kwh, has_kwh, has = (float(v) for v in reduce(mine))
    except Exception as exc:
        logger.debug("carbonlog: sharing the from-scratch reference failed: %s", exc)
        return None
    if not has:
        return None
    return found or Reference(kg, kwh if has_kwh else None, "from global rank zero", "shared")


# -- the hint for scratch runs ------------------------------------------------------------


def _family_row(name: str) -> Published | None:
    """The first table row of the family a class or model name belongs to, e.g.
    BertForSequenceClassification -> bert, GPT2LMHeadModel -> gpt2."""
    text = normalize_model_name(name).rsplit("/", 1)[-1]
    families = sorted({row.family for row in published_table()}, key=len, reverse=True)
    for family in families:
        rest = text[len(family) :]
        if text.startswith(family) and (not rest[:1].isalpha() or rest.startswith(_CLASS_SUFFIXES)):
            return next(row for row in published_table() if row.family == family)
    return None


def _typical_finetune(ledger, task: str | None) -> str:
    runs = ledger.runs(task=task, status="completed", pretrained=True) if ledger and task else []
    costs = [run.co2_kg for run in runs if run.co2_kg > 0]
    if costs:
        return (
            f"your {len(costs)} fine-tuning run(s) of task {task!r} used a median of "
            f"{format_co2(statistics.median(costs))} CO2"
        )
    return "fine-tuning one typically takes a few GPU-hours, a small fraction of that"


def scratch_hint(run_info: Mapping[str, object], ledger=None) -> str | None:
    """For a scratch run of an architecture with a known pretrained checkpoint: say that
    fine-tuning exists and what it typically costs. None otherwise."""
    if run_info.get("pretrained") is not False:
        return None
    names = [str(run_info[k]) for k in ("base_model", "model", "model_name") if run_info.get(k)]
    row = next(
        (found for name in names if (found := published_row(name) or _family_row(name))), None
    )
    if row is None:
        return None
    reference = _row_reference(row)
    cost = (
        f"{reference.description}: {format_co2(reference.kg)} CO2"
        if reference
        else f"{row.model}: pre-trained on {row.hardware}, {_cite(row)}"
    )
    try:
        typical = _typical_finetune(ledger, run_info.get("task"))
    except Exception as exc:  # a ledger read never stops the hint
        logger.debug("carbonlog: reading fine-tuning runs failed: %s", exc)
        typical = _typical_finetune(None, None)
    return (
        f"{names[0]} is trained from scratch; pretrained {row.family} checkpoints "
        f"exist ({cost}, a cost already paid); {typical}"
    )
