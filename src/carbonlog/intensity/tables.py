"""The offline tables (package data built by scripts/build_tables.py), read on first use.

Three files under carbonlog/data: grids.csv (world, countries, subdivisions), clouds.csv
(cloud regions with the provider's PUE and offset share) and providers.csv (names).
Each row keeps the source, the year its figure describes and its convention (CONVENTIONS).
mlco2_regions.csv is the ML CO2 Impact calculator's own region table, as it reads it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache

CONVENTIONS = {
    "life-cycle": "CO2e over the plants' life cycle (fuel supply, construction) per kWh",
    "direct": "CO2e emitted at the plants (combustion) per kWh, nothing upstream",
    "direct CO2": "CO2 alone emitted at the plants per kWh, no other gas, nothing upstream",
    "mixed": "the ML CO2 Impact calculator's figures, each as its own source publishes it",
}
"""What a row's figure counts. The tables prefer life-cycle figures; see docs/methodology.md."""
DATASETS = ("carbonlog", "mlco2")
"""carbonlog's own tables, or the ML CO2 Impact calculator's (`estimate(dataset="mlco2")`)."""


@dataclass(frozen=True)
class Grid:
    """One location's grid carbon intensity, resolved from the tables.

    `code` is canonical: "FR", "US-CA", "gcp:us-central1", "WORLD". `pue` is the
    provider's published PUE for a cloud region (None elsewhere); `offset_ratio` is the
    share of emissions the provider offsets, 0..1 (0 when unknown). `kind` is "world",
    "country", "subdivision", "cloud" or "user"; `location` is the grid a cloud region
    draws from ("US-IA"), or `code` itself for a grid; `convention` is a key of CONVENTIONS
    (None for a figure the user gave).
    """

    code: str
    name: str
    g_per_kwh: float
    source: str
    year: int | None
    provider: str | None = None
    pue: float | None = None
    offset_ratio: float = 0.0
    kind: str = "country"
    location: str | None = None
    pue_source: str | None = None
    convention: str | None = None


@dataclass(frozen=True)
class Tables:
    """Every row, keyed by canonical code (grids upper-case, clouds "provider:region")."""

    grids: dict[str, Grid]
    clouds: dict[str, Grid]
    alpha3: dict[str, str]
    providers: dict[str, tuple[str, str]]  # provider -> (short label, full name)


def _rows(name: str) -> list[dict[str, str]]:
    from importlib import resources  # lazily: it costs ~9 ms at import

    text = resources.files("carbonlog").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _year(text: str) -> int | None:
    return int(text) if text else None


def _float(text: str) -> float | None:
    return float(text) if text else None


@cache
def tables() -> Tables:
    """Load the three CSV files once per process."""
    grids: dict[str, Grid] = {}
    alpha3: dict[str, str] = {}
    for row in _rows("grids.csv"):
        code = row["code"]
        grids[code] = Grid(
            code=code,
            name=row["name"],
            g_per_kwh=float(row["g_per_kwh"]),
            source=row["source"],
            year=_year(row["year"]),
            kind=row["kind"],
            location=code,
            convention=row["convention"],
        )
        if row["alpha3"]:
            alpha3[row["alpha3"]] = code
    providers = {r["provider"]: (r["label"], r["name"]) for r in _rows("providers.csv")}
    clouds: dict[str, Grid] = {}
    for row in _rows("clouds.csv"):
        provider, region = row["provider"], row["region"]
        code = f"{provider}:{region}"
        label = providers.get(provider, (provider, provider))[0]
        clouds[code] = Grid(
            code=code,
            name=f"{label} {region} ({row['name']})"
            if row["name"] != region
            else f"{label} {region}",
            g_per_kwh=float(row["g_per_kwh"]),
            source=row["source"],
            year=_year(row["year"]),
            provider=provider,
            pue=_float(row["pue"]),
            offset_ratio=float(row["offset_ratio"] or 0.0),
            kind="cloud",
            location=row["location"] or None,
            pue_source=row["pue_source"] or None,
            convention=row["convention"],
        )
    return Tables(grids=grids, clouds=clouds, alpha3=alpha3, providers=providers)


@cache
def mlco2_regions() -> dict[str, Grid]:
    """The calculator's regions by "provider:region", in its file's order (its cleanest-region
    pick keeps the first of equal regions), each figure as the file writes it."""
    providers = tables().providers
    regions: dict[str, Grid] = {}
    for row in _rows("mlco2_regions.csv"):
        provider, region = row["provider"], row["region"]
        label = providers.get(provider, (provider, provider))[0]
        regions[f"{provider}:{region}"] = Grid(
            code=f"{provider}:{region}",
            name=f"{label} {region} ({row['name'] if row['name'] != region else row['city']})",
            g_per_kwh=float(row["g_per_kwh"]),
            source=row["source"],
            year=_year(row["year"]),
            provider=provider,
            offset_ratio=float(row["offset_ratio"]),
            kind="cloud",
            location=None,
            pue_source="none: the calculator's formula has no PUE",
            convention="mixed",
        )
    return regions


def coverage() -> dict:
    """How many countries, subdivisions and cloud regions ship, and the years they describe."""
    t = tables()
    out: dict = {}
    for kind in ("country", "subdivision"):
        rows = [g for g in t.grids.values() if g.kind == kind]
        years = [g.year for g in rows if g.year]
        out[kind] = {"count": len(rows), "years": (min(years), max(years)) if years else None}
    per_provider: dict[str, int] = {}
    for g in t.clouds.values():
        per_provider[g.provider] = per_provider.get(g.provider, 0) + 1
    cloud_years = [g.year for g in t.clouds.values() if g.year]
    out["cloud"] = {
        "count": len(t.clouds),
        "per_provider": dict(sorted(per_provider.items())),
        "years": (min(cloud_years), max(cloud_years)) if cloud_years else None,
    }
    world = t.grids["WORLD"]
    out["world"] = {"g_per_kwh": world.g_per_kwh, "year": world.year, "source": world.source}
    return out
