"""The Hugging Face Hub's `co2_eq_emissions` model-card metadata, from a carbonlog Summary.

Framework-free (PyYAML only), so any README.md model card can get it:

    from carbonlog.report.model_card import add_co2_to_model_card, co2_eq_emissions
    add_co2_to_model_card("my-model/README.md", co2_eq_emissions(summary, pretrained=True))

The Hub documents the fields at https://huggingface.co/docs/hub/model-cards-co2: `emissions`
in grams of CO2e, `source`, `training_type` ("pre-training" or "fine-tuning"),
`geographical_location`, `hardware_used`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping

from carbonlog.interval import Summary
from carbonlog.units import G_PER_KG

SOURCE = "carbonlog"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)


def co2_eq_emissions(
    summary: Summary, pretrained: bool | None, processes: int = 1
) -> dict[str, object]:
    """The card's `co2_eq_emissions` mapping for a finished training run.

    `pretrained` says fine-tuning (True) or pre-training (False/None: no base model known).
    `processes` is the number of training processes; with GPUs, each drove as many as the
    process that measured `summary` (data parallelism), so the count is theirs times it.
    """
    metadata: dict[str, object] = {
        "emissions": summary.co2_kg * G_PER_KG,
        "source": SOURCE,
        "training_type": "fine-tuning" if pretrained else "pre-training",
    }
    location = geographical_location(summary.site)
    if location:
        metadata["geographical_location"] = location
    hardware = hardware_used(summary.hardware, processes)
    if hardware:
        metadata["hardware_used"] = hardware
    return metadata


def geographical_location(site: Mapping[str, object]) -> str | None:
    """ "France (FR)", "California (US-CA)"; None for a user-supplied intensity (no place)."""
    kind, name, code = site.get("kind"), site.get("name"), site.get("location")
    if not name or kind == "user":
        return None
    return str(name) if kind == "world" or not code else f"{name} ({code})"


def hardware_used(hardware: Mapping[str, list], processes: int = 1) -> str | None:
    """ "2 x NVIDIA H100 80GB HBM3" for GPU runs, else the CPU: "AMD EPYC 7763 (CPU)"."""
    names = Counter(str(d.get("name", "GPU")) for d in hardware.get("gpu", []))
    if names:
        return ", ".join(f"{count * max(processes, 1)} x {name}" for name, count in names.items())
    cpus = [str(d["name"]) for d in hardware.get("cpu", []) if d.get("name")]
    return f"{cpus[0]} (CPU)" if cpus else None


def add_co2_to_model_card(path: str | os.PathLike, co2: Mapping[str, object]) -> None:
    """Set `co2_eq_emissions` in the YAML front matter of the model card at `path`.

    Every other metadata key and the Markdown body are kept; a card without front matter
    gets one; a missing file becomes a card holding only the metadata.
    """
    import yaml

    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    found = _FRONT_MATTER.match(text)
    metadata = (yaml.safe_load(found.group(1)) if found else None) or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the model card's front matter is not a YAML mapping")
    metadata["co2_eq_emissions"] = dict(co2)
    body = text[found.end() :] if found else text
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"---\n{front}---\n{body}")
