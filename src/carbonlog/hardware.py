"""The calculator's hardware table: GPUs, TPUs and CPUs with TDP and peak FLOPS.

Rows come from carbonlog/data/hardware.csv (built by scripts/build_tables.py from the
ML CO2 Impact and Green Algorithms tables, with datasheet corrections). Names match
loosely ("Tesla T4", "NVIDIA A100-SXM4-80GB", "tpu v3"); an unknown or ambiguous name
is a ConfigurationError (a ValueError) that lists the close matches.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache

from carbonlog.errors import ConfigurationError

# Vendor words that NVML and users add or drop ("NVIDIA GeForce RTX 4090" = "RTX 4090").
_NOISE = ("nvidia", "tesla", "geforce", "intel", "amd")


@dataclass(frozen=True)
class Hardware:
    """One accelerator or CPU: TDP in W, dense peak TFLOPS (FP32; FP16/BF16 on matrix units)."""

    name: str
    kind: str  # "gpu" | "tpu" | "cpu"
    tdp_w: float | None
    tflops32: float | None
    tflops16: float | None
    memory_gb: float | None
    source: str
    year: int | None

    def tflops(self, precision: str) -> float | None:
        """Peak TFLOPS at "fp16" (FP16/BF16 matrix units) or "fp32"."""
        return {"fp16": self.tflops16, "fp32": self.tflops32}[precision]


def _norm(name: str) -> str:
    name = name.lower()
    for word in _NOISE:
        name = name.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", name)


def _float(text: str) -> float | None:
    return float(text) if text else None


@cache
def _table() -> tuple[dict[str, Hardware], dict[str, str]]:
    """(normalised name -> row, normalised alias -> normalised name)."""
    from importlib import resources  # lazily: it costs ~9 ms at import

    text = resources.files("carbonlog").joinpath("data", "hardware.csv").read_text("utf-8")
    rows: dict[str, Hardware] = {}
    aliases: dict[str, str] = {}
    for r in csv.DictReader(io.StringIO(text)):
        key = _norm(r["name"])
        rows[key] = Hardware(
            name=r["name"],
            kind=r["kind"],
            tdp_w=_float(r["tdp_w"]),
            tflops32=_float(r["tflops32"]),
            tflops16=_float(r["tflops16"]),
            memory_gb=_float(r["memory_gb"]),
            source=r["source"],
            year=int(r["year"]) if r["year"] else None,
        )
        for alias in filter(None, r["aliases"].split(";")):
            aliases[_norm(alias)] = key
    return rows, aliases


def all_hardware() -> list[Hardware]:
    """Every row of the table."""
    return list(_table()[0].values())


def lookup(name: str) -> Hardware:
    """The row for `name`: exact (ignoring case, spaces, punctuation, vendor words), else a
    unique row containing it; otherwise a ConfigurationError listing the close matches."""
    if not isinstance(name, str) or not _norm(name):
        raise ConfigurationError(f"hardware must be a name such as 'A100 SXM4 80 GB', got {name!r}")
    rows, aliases = _table()
    key = _norm(name)
    if key in rows:
        return rows[key]
    if key in aliases:
        return rows[aliases[key]]
    containing = sorted(
        {rows[k].name for k in rows if key in k}
        | {rows[v].name for a, v in aliases.items() if key in a}
    )
    if len(containing) == 1 and len(key) >= 3:
        return next(r for r in rows.values() if r.name == containing[0])
    by_norm = {_norm(r.name): r.name for r in rows.values()}
    import difflib

    close = [by_norm[k] for k in difflib.get_close_matches(key, list(by_norm), n=6, cutoff=0.6)]
    matches = containing or close
    hint = f"; did you mean one of: {', '.join(repr(m) for m in matches[:8])}" if matches else ""
    what = "ambiguous" if len(containing) > 1 else "unknown"
    raise ConfigurationError(f"{what} hardware {name!r}{hint}")
