"""The calculator's hardware table: GPUs, TPUs and CPUs with TDP and peak FLOPS.

Rows come from carbonlog/data/hardware.csv (built by scripts/build_tables.py from the
ML CO2 Impact and Green Algorithms tables, with datasheet corrections). Names match
loosely ("Tesla T4", "NVIDIA A100-SXM4-80GB", "tpu v3"); a bare family name is the alias of
its SXM part ("A100" is the A100 SXM4 80 GB row, "H100" the H100 SXM), and a partial name
that one row alone contains is that row ("A6000"). A name that several rows contain ("A100
PCIe", "A100 80GB": the PCIe and the SXM4 part) is ambiguous, and an unknown or ambiguous
name is a ConfigurationError (a ValueError) that lists the candidates or close matches.
`candidates` lists the rows a name could mean, for showing which one it resolved to.
`dataset="mlco2"` reads the ML CO2 Impact calculator's own 48 rows instead (mlco2_hardware.csv:
its names and TDPs as it uses them, uncorrected, with no FLOPS).
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
    kind: str  # "gpu" | "tpu" | "hpu" (Intel Gaudi) | "cpu"
    tdp_w: float | None
    tflops32: float | None
    tflops16: float | None
    memory_gb: float | None
    source: str
    year: int | None

    def tflops(self, precision: str) -> float | None:
        """Peak TFLOPS at "fp16" (FP16/BF16 matrix units) or "fp32"."""
        return {"fp16": self.tflops16, "fp32": self.tflops32}[precision]

    def named(self, name: str) -> bool:
        """Whether `name` is this row's own name (ignoring case, spaces, punctuation and vendor
        words), not an alias or a part of it."""
        return _norm(name) == _norm(self.name)


def _norm(name: str) -> str:
    name = name.lower()
    for word in _NOISE:
        name = name.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", name)


def _tokens(name: str) -> list[str]:
    """The words and numbers of a name, vendor words left out: "Tesla V100-SXM2-32GB" ->
    v, 100, sxm, 2, 32, gb."""
    return [t for t in re.findall(r"[a-z]+|\d+", name.lower()) if t not in _NOISE]


def _within(query: list[str], tokens: list[str]) -> bool:
    """Whether every word and number of `query` is in `tokens`, in order."""
    rest = iter(tokens)
    return all(word in rest for word in query)


def _float(text: str) -> float | None:
    return float(text) if text else None


_FILES = {"carbonlog": "hardware.csv", "mlco2": "mlco2_hardware.csv"}


@cache
def _table(
    dataset: str = "carbonlog",
) -> tuple[dict[str, Hardware], dict[str, str], dict[str, list[list[str]]]]:
    """(normalised name -> row, normalised alias -> normalised name, normalised name -> the
    tokens of the row's name and of each alias) of a dataset's table."""
    from importlib import resources  # lazily: it costs ~9 ms at import

    if dataset not in _FILES:
        raise ConfigurationError(f"dataset must be one of {tuple(_FILES)}, got {dataset!r}")
    text = resources.files("carbonlog").joinpath("data", _FILES[dataset]).read_text("utf-8")
    rows: dict[str, Hardware] = {}
    aliases: dict[str, str] = {}
    spellings: dict[str, list[list[str]]] = {}
    for r in csv.DictReader(io.StringIO(text)):
        key = _norm(r["name"])
        rows[key] = Hardware(
            name=r["name"],
            kind=r["kind"],
            tdp_w=_float(r["tdp_w"]),
            tflops32=_float(r.get("tflops32", "")),
            tflops16=_float(r.get("tflops16", "")),
            memory_gb=_float(r.get("memory_gb", "")),
            source=r["source"],
            year=int(r["year"]) if r.get("year") else None,
        )
        spellings[key] = [_tokens(r["name"])]
        for alias in filter(None, r.get("aliases", "").split(";")):
            aliases[_norm(alias)] = key
            spellings[key].append(_tokens(alias))
    return rows, aliases, spellings


def all_hardware(dataset: str = "carbonlog") -> list[Hardware]:
    """Every row of a dataset's table."""
    return list(_table(dataset)[0].values())


def candidates(name: str, dataset: str = "carbonlog") -> list[Hardware]:
    """The rows whose name or an alias contains `name` (ignoring case, spaces, punctuation and
    vendor words; its words and numbers in order, or as one piece), by name."""
    rows, aliases, spellings = _table(dataset)
    key, query = _norm(name), _tokens(name)
    found = {k for k in rows if key in k} | {v for a, v in aliases.items() if key in a}
    found |= {k for k, spelled in spellings.items() if any(_within(query, t) for t in spelled)}
    return sorted((rows[k] for k in found), key=lambda row: row.name)


def lookup(name: str, dataset: str = "carbonlog") -> Hardware:
    """The row for `name` in a dataset's table: exact (ignoring case, spaces, punctuation, vendor
    words) or an alias, else the one row of `candidates`; otherwise a ConfigurationError listing
    the candidates (ambiguous) or the close matches (unknown)."""
    if not isinstance(name, str) or not _norm(name):
        raise ConfigurationError(f"hardware must be a name such as 'A100 SXM4 80 GB', got {name!r}")
    rows, aliases, _ = _table(dataset)
    key = _norm(name)
    if key in rows:
        return rows[key]
    if key in aliases:
        return rows[aliases[key]]
    containing = [row.name for row in candidates(name, dataset)]
    if len(containing) == 1 and len(key) >= 3:
        return next(r for r in rows.values() if r.name == containing[0])
    by_norm = {_norm(r.name): r.name for r in rows.values()}
    import difflib

    close = [by_norm[k] for k in difflib.get_close_matches(key, list(by_norm), n=6, cutoff=0.6)]
    matches = containing or close
    hint = f"; did you mean one of: {', '.join(repr(m) for m in matches[:8])}" if matches else ""
    what = "ambiguous" if len(containing) > 1 else "unknown"
    raise ConfigurationError(f"{what} hardware {name!r}{hint}")
