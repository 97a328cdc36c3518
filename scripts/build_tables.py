"""Build carbonlog's package data (src/carbonlog/data/*.csv) from ../shared/reference-data.

    python scripts/build_tables.py [REFERENCE_DATA_DIR]

Reads the figures of mlco2/impact, Green Algorithms v3, codecarbon 3.3.2 and
carbontracker 2.4.7 (see REFERENCE_DATA_DIR/SOURCES.md) and writes compact tables in
which every row names its source and the year its figure describes. The choices:

Grids (grids.csv)
- Countries: among the annual averages the sources carry for a country, the newest year
  wins; on equal years carbontracker (Ember/OWID) > codecarbon (Ember/OWID) > Green
  Algorithms > eGRID's national figure. codecarbon's nordic FI row is not used: the file
  says it is a "prior value, unchanged" yet stamps it 2025.
- Subdivisions: US states from EPA eGRID2023 (codecarbon, lbs/MWh -> g/kWh), Chinese
  provinces (MEE 2023, CO2 only), Swedish and Norwegian bidding zones (ENTSO-E 2025,
  production-based, a lower bound where coverage < 100 %), Electricity Maps yearly
  averages (mlco2/impact; the newest year with at least half a year of hourly data) and
  Green Algorithms regions (Canadian provinces, Australian states, US states). Newest
  year wins; on equal years official factors > Electricity Maps > Green Algorithms.
  codecarbon's canada_energy_mix.json carries generation shares without a year or an
  intensity, so it is not used; Green Algorithms' and Electricity Maps' provinces are.
- World: the IEA figure both Green Algorithms and codecarbon publish (475 g/kWh, 2019).
Clouds (clouds.csv)
- Regions: the union of mlco2/impact impact.csv, codecarbon cloud_impact.csv and Green
  Algorithms' data centres, each placed on a grid (state or province when known).
- Intensity: Google's own 2023 region figures for GCP (codecarbon cloud_impact.csv);
  elsewhere the figure of the grid the region sits in, from grids.csv. mlco2/impact's
  AWS and Azure intensities are 2018-2019 spot readings and are not used.
- PUE: the data centre's published PUE (Green Algorithms 2020, then mlco2/impact), else
  the provider's fleet PUE (Green Algorithms defaults_PUE.csv), else none.
- Offset ratio: mlco2/impact's per-region figure, else codecarbon's, else the provider
  default of Green Algorithms' servers_offset.csv, else 0.
Hardware (hardware.csv)
- mlco2/impact gpus.csv and Green Algorithms' TDP_gpu/TDP_cpu, with the corrections in
  HARDWARE_FIXES (datasheet figures, each with its URL and year); see the notes there.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference-data"
OUT = REPO / "src" / "carbonlog" / "data"

G_PER_KWH_PER_LBS_PER_MWH = 0.45359237  # 1 lb/MWh = 453.59237 g / 1000 kWh
MIN_HOURS_OF_DATA = 4380  # half a year: Electricity Maps zone-years with less are skipped

CT = "Ember / Our World in Data (via carbontracker 2.4.7)"
CC_MIX = "Ember / Our World in Data (via codecarbon 3.3.2)"
EGRID = "EPA eGRID2023 (via codecarbon 3.3.2)"
MEE = "China MEE/NBS 2023 provincial factors, CO2 only (via codecarbon 3.3.2)"
NORDIC = "ENTSO-E 2025 generation mix, production-based (via codecarbon 3.3.2)"
EMAPS = "Electricity Maps yearly average (via mlco2/impact)"
GA = "Green Algorithms v3"
GOOGLE = "Google Cloud region carbon data 2023 (via codecarbon 3.3.2)"

# Source priority on equal years (higher wins).
PRIORITY = {CT: 5, CC_MIX: 4, EGRID: 4, MEE: 4, NORDIC: 4, EMAPS: 3, GA: 2}

# Code fixes: codecarbon's Namibia has no alpha-2 in carbontracker (pandas read "NA" as
# NaN); Green Algorithms writes Manitoba "CA-MT" (ISO 3166-2 is CA-MB) and Hong Kong
# "CN-HK" (ISO 3166-1 is HK); Electricity Maps writes Australia "AUS-".
ALPHA3_EXTRA = {"NAM": "NA"}
GA_CODE_FIXES = {"CA-MT": "CA-MB", "CN-HK": "HK"}

PROVIDERS = {  # provider -> (label, name)
    "gcp": ("GCP", "Google Cloud Platform"),
    "aws": ("AWS", "Amazon Web Services"),
    "azure": ("Azure", "Microsoft Azure"),
    "ovh": ("OVHcloud", "OVHcloud"),
    "scaleway": ("Scaleway", "Scaleway"),
    "coreweave": ("CoreWeave", "CoreWeave"),
    "seeweb": ("Seeweb", "Seeweb"),
}
PROVIDER_CODES = {"ovhcloud": "ovh"}

# Where regions whose rows name no state sit (the providers' region pages).
REGION_GRIDS = {
    "aws:us-east-1": "US-VA",
    "aws:us-east-2": "US-OH",
    "aws:us-west-1": "US-CA",
    "aws:us-west-2": "US-OR",
    "aws:us-gov-east-1": "US-OH",
    "aws:us-gov-west-1": "US-OR",
    "aws:ca-central-1": "CA-QC",
    "gcp:us-east5": "US-OH",
    "gcp:us-south1": "US-TX",
    "gcp:northamerica-northeast2": "CA-ON",
    "gcp:australia-southeast2": "AU-VIC",
    "coreweave:las1": "US-NV",
    "aws:ap-east-1": "HK",
    "gcp:asia-east2": "HK",
}
REGION_FIXES = {"me-cenrtal1": "me-central1", "germanynortheastt": "germanynortheast"}
COUNTRY_NAMES = {
    "usa": "US",
    "korea": "KR",
    "south korea": "KR",
    "hong kong": "HK",
    "united kingdom": "GB",
    "taiwan": "TW",
    "russia": "RU",
}


@dataclass
class Row:
    code: str
    name: str
    kind: str
    g_per_kwh: float
    source: str
    year: int | None
    alpha3: str = ""


def best(candidates: list[Row]) -> Row:
    """Newest year first, then the source priority."""
    return max(candidates, key=lambda r: (r.year or 0, PRIORITY.get(r.source.split(":")[0], 0)))


def read_csv(path: Path, skip: int = 0) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = f.readlines()[skip:]
    return [
        {k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(lines)
    ]


def data_year(text: str) -> int | None:
    """The year a Green Algorithms row's figure describes, from its source/comment text."""
    for pattern in (r"data from (?:[A-Za-z]+ )?(\d{4})", r"using (\d{4})", r"based on (\d{4})"):
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            return int(match.group(1))
    return None


def countries(ref: Path) -> dict[str, Row]:
    """Country rows by alpha-2: the newest annual average of each."""
    cands: dict[str, list[Row]] = {}
    alpha3: dict[str, str] = dict(ALPHA3_EXTRA)
    names: dict[str, str] = {}
    for r in read_csv(ref / "carbontracker-2.4.7" / "carbon-intensities.csv"):
        code = r["alpha-2"]
        alpha3[r["Code"]] = code
        names[code] = r["Entity"]
        value = r["Carbon intensity of electricity (gCO2eq/kWh)"]
        cands.setdefault(code, []).append(
            Row(code, r["Entity"], "country", float(value), CT, int(r["Year"]))
        )
    mix = json.loads((ref / "codecarbon-3.3.2" / "global_energy_mix.json").read_text())
    for a3, r in mix.items():
        code = alpha3.get(a3)
        if code is None:
            raise SystemExit(f"no alpha-2 for {a3} ({r['country_name']}); add it to ALPHA3_EXTRA")
        names.setdefault(code, r["country_name"])
        cands.setdefault(code, []).append(
            Row(code, r["country_name"], "country", float(r["carbon_intensity"]), CC_MIX, r["year"])
        )
    for r in read_csv(ref / "green-algorithms" / "CI_aggregated.csv", skip=1):
        if r["Type"] != "Country":
            continue
        code = r["location"]
        year = data_year(r["source"] + " " + r["comments"])
        cands.setdefault(code, []).append(
            Row(
                code,
                r["countryName"],
                "country",
                float(r["carbonIntensity"]),
                f"{GA}: {r['source']}",
                year,
            )
        )
    usa = json.loads((ref / "codecarbon-3.3.2" / "usa_emissions.json").read_text())["usa"]
    cands["US"].append(
        Row(
            "US",
            "United States",
            "country",
            usa["emissions"] * G_PER_KWH_PER_LBS_PER_MWH,
            EGRID,
            2023,
        )
    )
    out = {}
    by_code = {a2: a3 for a3, a2 in alpha3.items()}
    for code, rows in cands.items():
        row = best(rows)
        row.name = names.get(code, row.name)
        row.alpha3 = by_code.get(code, "")
        out[code] = row
    return out


def electricity_maps_zones(ref: Path) -> list[Row]:
    """Each zone's newest yearly average backed by at least half a year of data."""
    newest: dict[str, dict[str, str]] = {}
    for r in read_csv(ref / "mlco2-impact" / "2021-10-27yearly_averages.csv"):
        if not r["carbon_intensity_avg"] or int(r["no_hours_with_data"]) < MIN_HOURS_OF_DATA:
            continue
        if r["zone_key"] not in newest or int(r["year"]) > int(newest[r["zone_key"]]["year"]):
            newest[r["zone_key"]] = r
    rows = []
    for zone, r in newest.items():
        code = re.sub(r"^AUS-", "AU-", zone)
        rows.append(
            Row(
                code,
                r["Zone Name"],
                "subdivision",
                float(r["carbon_intensity_avg"]),
                f"{EMAPS}: {r['no_hours_with_data']} h of data",
                int(r["year"]),
            )
        )
    return rows


def subdivisions(ref: Path) -> dict[str, Row]:
    """Subdivision and zone rows by code: the newest figure of each."""
    cc = ref / "codecarbon-3.3.2"
    cands: list[Row] = []
    usa = json.loads((cc / "usa_emissions.json").read_text())
    year = usa["_source"]["year"]
    for name, r in usa.items():
        if name.startswith("_") or name == "usa":
            continue
        title = " ".join(w if w == "of" else w.capitalize() for w in name.split())
        g_per_kwh = r["emissions"] * G_PER_KWH_PER_LBS_PER_MWH
        cands.append(Row(f"US-{r['regionCode']}", title, "subdivision", g_per_kwh, EGRID, year))
    china = json.loads((cc / "china_provincial_emissions.json").read_text())["data"]
    for code, r in china.items():
        cands.append(
            Row(code, r["description"], "subdivision", r["emission_factor"], MEE, r["year"])
        )
    nordic = json.loads((cc / "nordic_emissions.json").read_text())["data"]
    for zone, r in nordic.items():
        if zone == "FI":  # a country, and "prior value, unchanged" despite its 2025 stamp
            continue
        code = f"{zone[:2]}-{zone}"  # Electricity Maps' zone keys: SE-SE3, NO-NO1
        source = f"{NORDIC}: coverage {r['coverage'].split(' ')[0]}"
        cands.append(
            Row(code, r["description"], "subdivision", r["emission_factor"], source, r["year"])
        )
    cands += electricity_maps_zones(ref)
    for r in read_csv(ref / "green-algorithms" / "CI_aggregated.csv", skip=1):
        if r["Type"] != "Region":
            continue
        code = GA_CODE_FIXES.get(r["location"], r["location"])
        if "-" not in code:  # Taiwan, Hong Kong: countries, covered by the country tables
            continue
        year = data_year(r["source"] + " " + r["comments"])
        cands.append(
            Row(
                code,
                r["regionName"],
                "subdivision",
                float(r["carbonIntensity"]),
                f"{GA}: {r['source']}",
                year,
            )
        )
    grouped: dict[str, list[Row]] = {}
    for row in cands:
        grouped.setdefault(row.code, []).append(row)
    return {code: best(rows) for code, rows in grouped.items()}


def world(ref: Path) -> Row:
    """The IEA world average both calculators publish."""
    for r in read_csv(ref / "green-algorithms" / "CI_aggregated.csv", skip=1):
        if r["location"] == "WORLD":
            return Row(
                "WORLD",
                "World",
                "world",
                float(r["carbonIntensity"]),
                f"IEA Global Energy & CO2 Status Report 2019 (via {GA})",
                data_year(r["comments"]),
            )
    raise SystemExit("no WORLD row in CI_aggregated.csv")


def slug(provider: str, region: str) -> str:
    """Canonical region id: GCP/AWS ids as written, Azure display names folded."""
    region = re.sub(r"\s*\(.*\)\s*", "", region).strip()
    region = region.lower().replace(" ", "") if provider == "azure" else region.lower()
    return REGION_FIXES.get(region, region)


def cloud_regions(ref: Path, grids: dict[str, Row], alpha2_by_name: dict[str, str]) -> list[dict]:
    """One row per provider region: intensity, grid, PUE and offset, each with its source."""
    ga_dir = ref / "green-algorithms"
    regions: dict[str, dict] = {}

    def region(provider: str, name: str) -> dict:
        return regions.setdefault(f"{provider}:{name}", {"provider": provider, "region": name})

    for r in read_csv(ref / "mlco2-impact" / "impact.csv"):
        name = slug(r["provider"], r["region"] or ("fr-par" if r["provider"] == "scaleway" else ""))
        reg = region(r["provider"], name)
        reg["mlco2"] = r
    for r in read_csv(ref / "codecarbon-3.3.2" / "cloud_impact.csv"):
        region(r["provider"], slug(r["provider"], r["region"]))["google"] = r
    for r in read_csv(ga_dir / "cloudProviders_datacenters.csv", skip=1):
        region(r["provider"], slug(r["provider"], r["Name"]))["ga"] = r

    fleet_pue = {}
    for r in read_csv(ga_dir / "defaults_PUE.csv", skip=1):
        provider = PROVIDER_CODES.get(r["provider"].lower(), r["provider"].lower())
        fleet_pue[provider] = (float(r["PUE"]), f"{GA} defaults_PUE: {r['source']}")
    default_offset = {
        r["provider"]: float(r["offsetRatio"]) / 100
        for r in read_csv(ga_dir / "servers_offset.csv", skip=1)
    }
    subdivision_by_name = {}
    for code, row in grids.items():
        if row.kind == "subdivision" and re.fullmatch(r"(US|CA|AU)-[A-Z]{2,3}", code):
            subdivision_by_name[row.name.lower()] = code
    subdivision_by_name.update({"northern virginia": "US-VA", "québec": "CA-QC", "nevada": "US-NV"})

    out = []
    for key, reg in sorted(regions.items()):
        m, g, ga = reg.get("mlco2"), reg.get("google"), reg.get("ga")
        location = place(key, m, g, ga, grids, subdivision_by_name, alpha2_by_name)
        if g:
            g_per_kwh, source, year = float(g["impact"]), GOOGLE, 2023
        else:
            grid = grids[location]
            g_per_kwh, year = grid.g_per_kwh, grid.year
            source = f"grid {location}: {grid.source}"
        pue, pue_source = "", ""
        if ga and ga["PUE"]:
            pue, pue_source = ga["PUE"], f"{GA} data centre PUE: {ga['source_PUE']}"
        elif m and m["PUE"]:
            pue, pue_source = m["PUE"], f"mlco2/impact data centre PUE: {m['PUE source']}"
        elif reg["provider"] in fleet_pue:
            pue, pue_source = str(fleet_pue[reg["provider"]][0]), fleet_pue[reg["provider"]][1]
        if m:
            offset, offset_source = float(m["offsetRatio"]) / 100, "mlco2/impact"
        elif g:
            offset, offset_source = float(g["offsetRatio"]) / 100, "codecarbon 3.3.2"
        elif reg["provider"] in default_offset:
            offset, offset_source = default_offset[reg["provider"]], f"{GA} servers_offset"
        else:
            offset, offset_source = 0.0, "unknown"
        out.append(
            {
                "provider": reg["provider"],
                "region": reg["region"],
                "name": display_name(m, g, ga, reg["region"]),
                "location": location,
                "g_per_kwh": fmt(g_per_kwh),
                "pue": pue,
                "pue_source": pue_source,
                "offset_ratio": fmt(offset),
                "offset_source": offset_source,
                "source": source,
                "year": year or "",
            }
        )
    return out


def place(key, m, g, ga, grids, subdivision_by_name, alpha2_by_name) -> str:
    """The grid code a region draws from: its state or province when known, else its country."""
    if key in REGION_GRIDS:
        return REGION_GRIDS[key]
    if ga and ga["location"]:
        code = GA_CODE_FIXES.get(ga["location"], ga["location"])
        if code in grids:
            return code
    for r in (m, g):
        if not r:
            continue
        for field in ("state", "city"):
            code = subdivision_by_name.get(r.get(field, "").lower())
            if code:
                return code
    for r in (m, g):
        if not r:
            continue
        if r.get("city", "").lower() == "hong kong":
            return "HK"
        country = r.get("country") or r.get("country_name", "")
        code = COUNTRY_NAMES.get(country.lower()) or alpha2_by_name.get(country.lower())
        if code:
            return code
    if ga and ga["location_freeForm"].lower() == "doha":
        return "QA"
    raise SystemExit(f"cannot place cloud region {key} on a grid")


def display_name(m, g, ga, region: str) -> str:
    """A human name: the provider's ("West Europe", "EU Stockholm"), else the place's."""
    if m and m["regionName"] and m["regionName"] != region:
        return re.sub(r"\s*\((.*)\)", r" \1", m["regionName"])  # "EU (Stockholm)"
    if ga and ga["provider"] == "azure":
        return re.sub(r"\s*\(.*\)", "", ga["Name"]).replace("Northeastt", "Northeast")
    if ga and ga["location_freeForm"]:
        return ga["location_freeForm"]
    for r in (g, m):
        if r and (r.get("state") or r.get("city")):
            return r.get("state") or r["city"]
    return region


# Hardware ------------------------------------------------------------------------------

NVIDIA_H100 = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
NVIDIA_H200 = "https://www.nvidia.com/en-us/data-center/h200/"
NVIDIA_A100 = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
    "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
)
NVIDIA_V100 = (
    "https://images.nvidia.com/content/technologies/volta/pdf/"
    "volta-v100-datasheet-update-us-1165301-r5.pdf"
)
NVIDIA_L4 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/l4/PB-11316-001_v01.pdf"
NVIDIA_L40S = "https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413"
NVIDIA_A10 = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf"
)
TPU_DOCS = "https://cloud.google.com/tpu/docs/system-architecture-tpu-vm"
PATTERSON = "https://arxiv.org/abs/2104.10350"
JOUPPI = "https://arxiv.org/abs/2304.01433"

# Columns: tflops32 is dense FP32 (no tensor cores), tflops16 dense FP16/BF16 on the
# matrix units (tensor cores, MXUs); no sparsity figures. Notes on what was wrong:
# - H100 rows of gpus.csv carry the with-sparsity TF32/FP16 figures under FP32/FP16.
# - A100 PCIe: one "40/80GB" row at 250 W; the 80 GB card is 300 W.
# - V100: gpus.csv has PCIe at 300 W and SXM2 16 GB at 250 W, the reverse of the
#   datasheet (SXM2 300 W, PCIe 250 W), and non-tensor FP16 for some rows.
# - A10G: 8 fields for 9 columns (the TFLOPS16 field is missing, the rest shifted left).
# - TPU v2/v3: gpus.csv says 221 W / 283 W, Green Algorithms 280 W / 220 W, both citing
#   Patterson et al. 2021, whose table gives mean measured power per chip of 221 W (v2)
#   and 283 W (v3); Green Algorithms has them swapped and rounded. 221/283 is kept, and
#   TPU v4 is likewise its mean power (170 W, Jouppi et al. 2023; 192 W max).
#   Memory is per chip (gpus.csv gives the four-chip board's).
# - TPU v5e/v5p: Google publishes no per-chip power; the rows carry FLOPS and memory,
#   and estimate() asks for tdp_w= for them.
# - GTX 750: TFLOPS given in GFLOPS and a 250 W TDP (the card is 55 W).
# - FP16: gpus.csv's column mixes tensor-core, plain (1:1, 2:1) and 1:64 rates, so only
#   the datasheet FP16/BF16 matrix figures of HARDWARE_FIXES are kept; comparisons fall
#   back to FP32 for the other rows.
# - A bare family name ("A100", "H100", "V100") means its SXM part, the form that cloud
#   training instances (p4d, a2, p5, a3) use.
# fmt: off
HARDWARE_FIXES = [
    # name, kind, tdp_w, tflops32, tflops16, memory_gb, source, year, aliases, replaces
    ("H200 SXM", "gpu", 700, 67, 989.5, 141, NVIDIA_H200, 2024, "H200;H200 141GB HBM3e", ""),
    ("H200 NVL", "gpu", 600, 60, 835.5, 141, NVIDIA_H200, 2024, "", ""),
    ("H100 SXM", "gpu", 700, 67, 989.5, 80, NVIDIA_H100, 2023,
     "H100;H100 80GB HBM3;H100 SXM5 80GB", "H100 SXM"),
    ("H100 PCIe", "gpu", 350, 51, 756.5, 80, NVIDIA_H100, 2023, "H100 PCIe 80GB", ""),
    ("H100 NVL", "gpu", 400, 60, 835.5, 94, NVIDIA_H100, 2023, "", "H100 NVL"),
    ("A100 SXM4 80 GB", "gpu", 400, 19.5, 312, 80, NVIDIA_A100, 2021, "A100;A100-SXM4-80GB",
     "A100 SXM4 80 GB"),
    ("A100 SXM4 40 GB", "gpu", 400, 19.5, 312, 40, NVIDIA_A100, 2021, "A100-SXM4-40GB", ""),
    ("A100 PCIe 40 GB", "gpu", 250, 19.5, 312, 40, NVIDIA_A100, 2021,
     "A100-PCIE-40GB;A100 40GB PCIe;A100 PCIe 40/80GB", "A100 PCIe 40/80GB"),
    ("A100 PCIe 80 GB", "gpu", 300, 19.5, 312, 80, NVIDIA_A100, 2021, "A100 80GB PCIe", ""),
    ("Tesla V100-SXM2-16GB", "gpu", 300, 15.7, 125, 16, NVIDIA_V100, 2020, "V100 SXM2 16GB",
     "Tesla V100-SXM2-16GB"),
    ("Tesla V100-SXM2-32GB", "gpu", 300, 15.7, 125, 32, NVIDIA_V100, 2020,
     "V100;V100 SXM2 32GB",
     "Tesla V100-SXM2-32GB"),
    ("Tesla V100-PCIE-16GB", "gpu", 250, 14, 112, 16, NVIDIA_V100, 2020, "V100 PCIe 16GB",
     "Tesla V100-PCIE-16GB"),
    ("Tesla V100-PCIE-32GB", "gpu", 250, 14, 112, 32, NVIDIA_V100, 2020, "V100 PCIe 32GB", ""),
    ("Tesla V100S-PCIE-32GB", "gpu", 250, 16.4, 130, 32, NVIDIA_V100, 2020, "V100S", ""),
    ("L4", "gpu", 72, 30.3, 121, 24, NVIDIA_L4, 2023, "", "L4"),
    ("L40S", "gpu", 350, 91.6, 362.05, 48, NVIDIA_L40S, 2023, "", "L40S"),
    ("A10", "gpu", 150, 31.2, 125, 24, NVIDIA_A10, 2021, "", ""),
    ("A10G", "gpu", 150, 31.52, None, 24, "https://www.techpowerup.com/gpu-specs/a10g.c3798",
     None, "", "A10G"),
    ("T4", "gpu", 70, 8.141, 65.13, 16,
     "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/"
     "t4-tensor-core-datasheet-951643.pdf", 2019, "Tesla T4", "T4"),
    ("GTX 750", "gpu", 55, 1.111, None, 1,
     "https://www.techpowerup.com/gpu-specs/geforce-gtx-750.c1986", None, "", "GTX 750"),
    ("TPU v2", "tpu", 221, None, 45, 16,
     f"power: mean per chip, Patterson et al. 2021 {PATTERSON}; FLOPS: {TPU_DOCS}", 2021,
     "TPUv2 Chip", "TPUv2 Chip"),
    ("TPU v3", "tpu", 283, None, 123, 32,
     f"power: mean per chip, Patterson et al. 2021 {PATTERSON}; FLOPS: {TPU_DOCS}", 2021,
     "TPUv3 Chip", "TPUv3 Chip"),
    ("TPU v4", "tpu", 170, None, 275, 32,
     f"power: mean per chip, Jouppi et al. 2023 {JOUPPI}; FLOPS: {TPU_DOCS}", 2023, "", ""),
    ("TPU v5e", "tpu", None, None, 197, 16,
     "FLOPS: https://cloud.google.com/tpu/docs/v5e; no per-chip power published", 2023,
     "TPU v5 lite;v5litepod", ""),
    ("TPU v5p", "tpu", None, None, 459, 95,
     "FLOPS: https://cloud.google.com/tpu/docs/v5p; no per-chip power published", 2023,
     "", ""),
]
# fmt: on
HARDWARE_COLUMNS = [
    "name",
    "kind",
    "tdp_w",
    "tflops32",
    "tflops16",
    "memory_gb",
    "source",
    "year",
    "aliases",
]


def number(text: str) -> float | None:
    """A figure of gpus.csv: "", "NaN", "unk" are unknown."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None


def norm(name: str) -> str:
    """As carbonlog.hardware matches names: case, punctuation and vendor words ignored."""
    name = name.lower()
    for word in ("nvidia", "tesla", "geforce", "intel", "amd"):
        name = name.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", name)


def hardware(ref: Path) -> list[dict]:
    rows: dict[str, dict] = {}
    replaced = {norm(fix[9]) for fix in HARDWARE_FIXES if fix[9]}
    with (ref / "mlco2-impact" / "gpus.csv").open(encoding="utf-8") as f:
        for fields in csv.reader(f):
            if fields[0] == "name" or norm(fields[0]) in replaced:
                continue
            if len(fields) != 9:
                raise SystemExit(
                    f"gpus.csv row {fields[0]!r} has {len(fields)} fields; fix it here"
                )
            name, kind, tdp, t32, t16, _, _, memory, source = (x.strip() for x in fields)
            rows[norm(name)] = {
                "name": name,
                "kind": kind,
                "tdp_w": number(tdp),
                "tflops32": number(t32),
                "tflops16": None,
                "memory_gb": number(memory),
                "source": source,
                "year": None,
                "aliases": "",
            }
    for fix in HARDWARE_FIXES:
        row = dict(zip(HARDWARE_COLUMNS, fix[:9], strict=True))
        rows[norm(row["name"])] = row
    known_aliases = {norm(a) for r in rows.values() for a in r["aliases"].split(";") if a}
    ga_dir = ref / "green-algorithms"
    for file, kind in (("TDP_gpu.csv", "gpu"), ("TDP_cpu.csv", "cpu")):
        for r in read_csv(ga_dir / file, skip=1):
            name = re.sub(r"^NVIDIA ", "", r["model"]) if kind == "gpu" else r["model"]
            key = norm(name)
            if name in ("Any", "") or not r["TDP"] or key in rows or key in known_aliases:
                continue
            if kind == "gpu" and any(
                min(len(key), len(k)) >= 4 and (key in k or k in key) for k in rows
            ):
                continue  # a variant of a row already there ("Jetson AGX Xavier", "Tesla V100")
            if kind == "gpu" and name.startswith("TPU"):
                continue  # TPUs come from HARDWARE_FIXES (see the TPU v2/v3 note)
            year = int(r["Release_year"]) if r.get("Release_year") else None
            rows[key] = {
                "name": name,
                "kind": kind,
                "tdp_w": float(r["TDP"]),
                "tflops32": None,
                "tflops16": None,
                "memory_gb": number(r.get("memory", "")),
                "source": f"{GA}: {r['source']}",
                "year": year,
                "aliases": "",
            }
    return sorted(rows.values(), key=lambda r: (r["kind"], r["name"].lower()))


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def write(name: str, columns: list[str], rows: list[dict]) -> None:
    with (OUT / name).open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: fmt(row[k]) for k in columns})
    print(f"wrote {len(rows)} rows to {(OUT / name).relative_to(REPO)}")


def main(argv: list[str]) -> None:
    ref = Path(argv[0]) if argv else DEFAULT_REFERENCE
    if not (ref / "SOURCES.md").exists():
        raise SystemExit(f"{ref} does not look like the reference-data directory")
    OUT.mkdir(parents=True, exist_ok=True)
    country_rows = countries(ref)
    subdivision_rows = subdivisions(ref)
    grids = {
        "WORLD": world(ref),
        **dict(sorted(country_rows.items())),
        **dict(sorted(subdivision_rows.items())),
    }
    alpha2_by_name = {row.name.lower(): code for code, row in country_rows.items()}
    write(
        "grids.csv",
        ["code", "alpha3", "name", "kind", "g_per_kwh", "source", "year"],
        [vars(row) for row in grids.values()],
    )
    clouds = cloud_regions(ref, grids, alpha2_by_name)
    write(
        "clouds.csv",
        [
            "provider",
            "region",
            "name",
            "location",
            "g_per_kwh",
            "pue",
            "pue_source",
            "offset_ratio",
            "offset_source",
            "source",
            "year",
        ],
        clouds,
    )
    used = sorted({c["provider"] for c in clouds})
    write(
        "providers.csv",
        ["provider", "label", "name"],
        [{"provider": p, "label": PROVIDERS[p][0], "name": PROVIDERS[p][1]} for p in used],
    )
    write("hardware.csv", HARDWARE_COLUMNS, hardware(ref))


if __name__ == "__main__":
    main(sys.argv[1:])
