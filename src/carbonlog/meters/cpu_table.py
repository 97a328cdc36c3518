"""Rated TDP of a CPU model, looked up by the name /proc/cpuinfo gives.

The table (data/cpu_tdp.csv) is built by scripts/build_cpu_table.py from CodeCarbon's and
Green Algorithms' figures (TDP, and cores where Green Algorithms gives them); it loads on the
first lookup, never at import.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

_DROP = [
    r"\((?:r|tm|c)\)|[®™]",  # trademarks
    r"@.*$",  # "@ 2.20GHz"
    r"\b\d+(?:st|nd|rd|th) gen\b",  # "11th Gen Intel ..."
    r"\b(?:with|w/) radeon.*$",  # "with Radeon Graphics"
    r"\b(?:r\d+, )?\d+ compute cores.*$",  # AMD APUs: "R5, 6 Compute Cores 2C+4G"
    r"\([^)]*\)",  # "(OEM Only)", "(125W)"
    r"\b\w+-cores?\b",  # "64-Core", "Quad-Core", "64-Cores"
    r"\b(?:intel|amd|cpu|processor|apu)\b",  # brand and filler words
    r",",
]
_DROP_RE = re.compile("|".join(_DROP))


class CpuRow(NamedTuple):
    """One model of the table: its rated TDP (W), where the figure comes from and its year, and
    its physical cores per socket (Green Algorithms v3, 2022; 0 where the table has none)."""

    name: str
    tdp_w: float
    source: str
    year: int
    cores: int = 0


def normalize(model_name: str) -> str:
    """Lower-case key of a CPU name without brand, trademarks, clock or core-count words.

    "Intel(R) Xeon(R) Platinum 8480+" -> "xeon platinum 8480+";
    "AMD EPYC 7763 64-Core Processor" -> "epyc 7763".
    """
    return " ".join(_DROP_RE.sub(" ", model_name.lower()).split())


_TABLE = Path(__file__).resolve().parent.parent / "data" / "cpu_tdp.csv"


@cache
def _text() -> str:
    """The table as one string; "\n<key>," finds a row without parsing the other thousands."""
    return "\n" + _TABLE.read_text("utf-8")


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)]


def _row(line: str) -> CpuRow:
    _key, name, tdp_w, source, year, cores = next(csv.reader([line]))
    return CpuRow(name, float(tdp_w), source, int(year), int(cores))


def _contains(tokens: list[str], part: list[str]) -> bool:
    n = len(part)
    return any(tokens[i : i + n] == part for i in range(len(tokens) - n + 1))


@cache
def lookup(model_name: str) -> CpuRow | None:
    """The table row for `model_name`, or None when the model is not known.

    Exact key first; otherwise the longest table name that appears, word for word, inside
    the given name and contains its model number (its last word with a digit), so
    "xeon e5-2680 v4" never falls back to the older "xeon e5-2680".
    """
    text, key = _text(), normalize(model_name)
    if not key:
        return None
    pos = text.find(f"\n{key},")
    if pos >= 0:
        return _row(_line_at(text, pos + 1))
    tokens = key.split()
    numbered = [t for t in tokens if any(c.isdigit() for c in t)]
    if not numbered:
        return None
    best: tuple[int, int, str] | None = None
    pos = text.find(numbered[-1])
    while pos >= 0:
        line = _line_at(text, pos)
        words = line.split(",", 1)[0].split()
        if numbered[-1] in words and _contains(tokens, words):
            best = max(best or (0, 0, ""), (len(words), len(line), line))
        pos = text.find(numbered[-1], text.find("\n", pos) + 1 or len(text))
    return None if best is None else _row(best[2])


def cpu_tdp_w(model_name: str) -> tuple[float, str] | None:
    """(rated TDP in W, the matched table name) for a /proc/cpuinfo model name, or None."""
    row = lookup(model_name)
    return None if row is None else (row.tdp_w, row.name)
