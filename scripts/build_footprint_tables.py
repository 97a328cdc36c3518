"""Build carbonlog's embodied and water tables (src/carbonlog/data/embodied.csv, wue.csv,
water.csv) from the published figures below and ../shared/reference-data.

    python scripts/build_footprint_tables.py [REFERENCE_DATA_DIR]

Every figure names where it was read: the page, table or sentence, and, where the primary
document could not be opened, the public transcriptions that agree on it. A figure that
could not be checked is not here (see docs/footprint.md for what was left out and why).

embodied.csv: manufacturing emissions per device, kg CO2e, with the boundary the figure
  covers: "die" (the logic die alone), "card" (the accelerator card or module with its
  memory and board) or "card+server" (the card plus its share of the host server).
wue.csv: on-site water, L per kWh of IT energy (the provider's published WUE); an empty
  region is the provider's fleet average.
water.csv: water consumed by the power plants per kWh generated, per country: Macknick et
  al. (2012) median operational consumption factors weighted by the country's generation
  mix (Ember / Our World in Data, via codecarbon 3.3.2 global_energy_mix.json). A country
  is left out when the sources with a factor cover less than MIN_COVERAGE of its
  generation; elsewhere the uncovered share (oil, other renewables) is taken to consume
  like the rest of the mix.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference-data"
OUT = REPO / "src" / "carbonlog" / "data"

L_PER_GALLON = 3.785411784  # US gallon, exact by definition
MIN_COVERAGE = 0.9  # share of a country's generation that must have a water factor

# Where each figure was read, in full (the tables carry the short form):
# - A100 PCIe 40 GB: the GPU embedded impacts calculator at https://data.hubblo.org (the
#   ADEME/Hubblo/Tide parametric model, Falk et al. 2025; report: Lees-Perasso, Ekchajzer,
#   Roussilhe, De Latour, "Analyses de cycle de vie de GPU pour l'intelligence
#   artificielle", ADEME 2026): card "NVIDIA A100 PCIe 40GB", global warming potential
#   181 kg CO2eq over manufacturing, transport and end of life, use excluded.
# - A100 SXM4: Chien et al., "Reducing the Carbon Impact of Generative AI Inference (today
#   and in 2035)", HotCarbon '23: E_hw = 1/8 (PF + E_GPU + E_CPU + E_DRAM + E_SSD + E_HDD)
#   of an 8-GPU A100 instance = 318 kgCO2 per GPU, as quoted with the paper's formula by
#   https://preview.methodology.scope3.com/nvidia_a100. The paper names no memory size, so
#   both SXM4 parts carry it.
# - H100 SXM: NVIDIA HGX H100 PCF Summary (ISO 14067, reviewed by WSP, 2025),
#   https://images.nvidia.com/aem-dam/Solutions/documents/HGX-H100-PCF-Summary.pdf: "the
#   carbon footprint from cradle-to-gate for one HGX H100 GPU baseboard is 1,312 kg CO2",
#   divided by its 8 GPUs. The PDF is not in the search corpus; the sentence was read as
#   quoted verbatim in public repositories, which agree on 1,312 kg (164 kg per GPU).
# - AWS WUE: 0.12 L/kWh for 2025 (Amazon News, 2026, as quoted by humanprogress.org; a
#   second public summary agrees); 0.25 L/kWh for 2021 (AWS re:Invent release, 2022-11-28).
# - Azure WUE: 0.27 L/kWh for 2025 (Microsoft, 2026-06-24, as reported by windowsforum.com;
#   a second public summary agrees): litres for humidification and cooling per IT kWh
#   (datacenters.microsoft.com/sustainability/efficiency); 0.30 FY2024, 0.49 in 2021.
# Not found or not verifiable, so not here: HGX B200 (2,274 kg per baseboard: hardware.csv
# has no B200 row), TPU rows of Schneider et al. 2025 (no per-chip figure readable),
# LLMCarbon die-area figures, Google's WUE (Google publishes none).
HUBBLO = (
    "ADEME/Hubblo GPU LCA (Lees-Perasso et al., ADEME 2026; model of Falk et al. 2025): "
    "data.hubblo.org GPU calculator, NVIDIA A100 PCIe 40GB, GWP 181 kg CO2eq"
)
CHIEN = (
    "Chien et al., HotCarbon '23: 318 kgCO2 per GPU, 1/8 of an 8-GPU A100 instance (memory "
    "size not named); read via preview.methodology.scope3.com/nvidia_a100"
)
NVIDIA_HGX_H100 = (
    "NVIDIA HGX H100 PCF Summary (ISO 14067): 1,312 kg CO2e cradle-to-gate per 8-GPU "
    "baseboard, / 8; read as quoted verbatim in public repositories"
)

EMBODIED = [  # hardware.csv name, kg CO2e per device, boundary, life-cycle stages, source, year
    ("A100 PCIe 40 GB", 181.0, "card", "cradle-to-grave, use excluded", HUBBLO, 2026),
    ("A100 SXM4 40 GB", 318.0, "card+server", "manufacture", CHIEN, 2023),
    ("A100 SXM4 80 GB", 318.0, "card+server", "manufacture", CHIEN, 2023),
    ("H100 SXM", 1312.0 / 8, "card", "cradle-to-gate", NVIDIA_HGX_H100, 2025),
]

WUE = [  # provider, region ("" = fleet average), L/kWh of IT energy, year, source
    ("aws", "", 0.12, 2025, "AWS global data centre WUE (Amazon News 2026, via humanprogress.org)"),
    ("azure", "", 0.27, 2025, "Microsoft datacenter fleet WUE (2026-06-24, via windowsforum.com)"),
]

# Macknick et al. 2012, Environ. Res. Lett. 7 045802, median operational water consumption.
# The paper's tables were read as transcribed in public data sets that agree on each figure
# (kravitsjacob/multi-objective-opf macknick_2012_coefficients.csv; Lucas-Doctorate-Project/
# env_research_scripts intensity-factors/intensities.json; a third for coal, nuclear, hydro
# and biopower). Where transcriptions disagree (NGCC tower 205 or 198; PV 1 or 26), the
# figure both 2012 transcriptions give is kept: 198 and 26 are the 2011 NREL report's.
MACKNICK = "Macknick et al. 2012 median consumption factors"
# global_energy_mix.json field -> (gal/MWh consumed, the technology row it is read from);
# oil_TWh and other_renewable_exc_biofuel_TWh have no single Macknick row.
GAL_PER_MWH = {
    "coal_TWh": (687.0, "coal, generic, cooling tower"),
    "gas_TWh": (205.0, "natural gas combined cycle, cooling tower"),
    "nuclear_TWh": (672.0, "nuclear, cooling tower"),
    "hydroelectricity_TWh": (4491.0, "hydropower (reservoir evaporation)"),
    "biofuel_TWh": (553.0, "biopower steam, cooling tower"),
    "solar_TWh": (1.0, "photovoltaic, utility scale"),
    "wind_TWh": (0.0, "wind"),
}
MIX = "Ember / Our World in Data (via codecarbon 3.3.2)"


def check_hardware_names() -> None:
    """Every embodied row names a row of hardware.csv, exactly, and no row twice."""
    with (OUT / "hardware.csv").open(encoding="utf-8") as f:
        names = {r["name"] for r in csv.DictReader(f)}
    named = [row[0] for row in EMBODIED]
    unknown = sorted(set(named) - names)
    if unknown:
        raise SystemExit(f"not in hardware.csv: {unknown}")
    if len(set(named)) != len(named):
        raise SystemExit("one embodied row per hardware: carbonlog.embodied reads one")


def alpha2_by_alpha3() -> dict[str, str]:
    """ISO alpha-3 -> the grid code carbonlog uses, from grids.csv."""
    with (OUT / "grids.csv").open(encoding="utf-8") as f:
        return {r["alpha3"]: r["code"] for r in csv.DictReader(f) if r["alpha3"]}


def l_per_kwh(gal_per_mwh: float) -> float:
    """gal/MWh -> L/kWh."""
    return gal_per_mwh * L_PER_GALLON / 1000


def electricity_water(ref: Path) -> tuple[list[dict], list[str]]:
    """(rows of water.csv, the alpha-3 codes left out and why)."""
    mix = json.loads((ref / "codecarbon-3.3.2" / "global_energy_mix.json").read_text("utf-8"))
    codes = alpha2_by_alpha3()
    rows, skipped = [], []
    for alpha3, country in sorted(mix.items()):
        total = country["total_TWh"]
        code = codes.get(alpha3)
        if code is None or not total:
            skipped.append(f"{alpha3} ({'no grid code' if code is None else 'no generation'})")
            continue
        covered = sum(country.get(field) or 0.0 for field in GAL_PER_MWH)
        coverage = covered / total
        if coverage < MIN_COVERAGE:
            skipped.append(f"{alpha3} ({coverage:.0%} of generation has a factor)")
            continue
        litres = sum(
            (country.get(field) or 0.0) * l_per_kwh(gal) for field, (gal, _) in GAL_PER_MWH.items()
        )
        rows.append(
            {
                "code": code,
                "l_per_kwh": round(litres / covered, 4),
                "coverage": round(coverage, 4),
                "year": country["year"],
                "source": f"{MACKNICK} x generation mix: {MIX}",
            }
        )
    return sorted(rows, key=lambda row: row["code"]), skipped


def write(name: str, columns: list[str], rows: list[dict]) -> None:
    with (OUT / name).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{name}: {len(rows)} rows")


def main(argv: list[str]) -> None:
    ref = Path(argv[1]) if len(argv) > 1 else DEFAULT_REFERENCE
    check_hardware_names()
    embodied = ["hardware", "kg_co2e", "boundary", "stages", "source", "year"]
    write("embodied.csv", embodied, [dict(zip(embodied, row, strict=True)) for row in EMBODIED])
    wue = ["provider", "region", "wue_l_per_kwh", "year", "source"]
    write("wue.csv", wue, [dict(zip(wue, row, strict=True)) for row in WUE])
    rows, skipped = electricity_water(ref)
    write("water.csv", ["code", "l_per_kwh", "coverage", "year", "source"], rows)
    print(f"left out of water.csv: {len(skipped)}: {', '.join(skipped)}")


if __name__ == "__main__":
    main(sys.argv)
