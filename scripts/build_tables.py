"""Build carbonlog's package data (src/carbonlog/data/*.csv) from ../shared/reference-data.

    python scripts/build_tables.py [REFERENCE_DATA_DIR]

Reads the figures of mlco2/impact, Green Algorithms v3, codecarbon 3.3.2 and
carbontracker 2.4.7 (see REFERENCE_DATA_DIR/SOURCES.md) and writes compact tables in
which every row names its source and the year its figure describes. The choices:

Grids (grids.csv)
- Conventions: every row says what its figure counts (CONVENTION): life-cycle, direct
  (at the plants) or direct CO2. A life-cycle figure wins over any other for the same place;
  the other conventions remain only where no source has a life-cycle figure for it.
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
  Canadian provinces: codecarbon's 2023 generation shares (canada_energy_mix.json, shipped
  under data/private_infra/2023/) times its per-source factors, life-cycle for hydro, wind,
  nuclear and solar, as codecarbon itself prices them.
- World: the IEA figure both Green Algorithms and codecarbon publish (475 g/kWh, 2019).
Clouds (clouds.csv)
- Regions: the union of mlco2/impact impact.csv, codecarbon cloud_impact.csv and Green
  Algorithms' data centres, each placed on a grid (state or province when known).
- Intensity: the life-cycle figure of the grid the region sits in, from grids.csv; where
  that grid has none, Google's own 2023 region figure for GCP (codecarbon cloud_impact.csv,
  operational emissions), else the grid's figure with its convention. mlco2/impact's
  AWS and Azure intensities are 2018-2019 spot readings and are not used.
- PUE: the data centre's published PUE (Green Algorithms 2020, then mlco2/impact), else
  the provider's fleet PUE (Green Algorithms defaults_PUE.csv), else none.
- Offset ratio: mlco2/impact's per-region figure, else codecarbon's, else the provider
  default of Green Algorithms' servers_offset.csv, else 0.
Hardware (hardware.csv)
- mlco2/impact gpus.csv and Green Algorithms' TDP_gpu/TDP_cpu, with the corrections in
  HARDWARE_FIXES (datasheet figures, each with its URL and year) and the AMD, Intel and Apple
  accelerators of ACCELERATORS; see the notes above each.
The calculator's own data (mlco2_regions.csv, mlco2_hardware.csv)
- mlco2/impact impact.csv and gpus.csv as the calculator reads them, in file order (its
  cleanest-region pick keeps the first of equal regions): every region with its figure as
  written, offset share and source; every hardware row with its TDP. Nothing is corrected
  here: `estimate(..., dataset="mlco2")` reproduces the calculator, defects included.
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
CC_CANADA = (
    "codecarbon 3.3.2 2023 generation shares (canada_energy_mix.json) x its per-source "
    "factors (carbon_intensity_per_source.json)"
)
GA = "Green Algorithms v3"
GOOGLE = "Google Cloud region carbon data 2023 (via codecarbon 3.3.2)"

# Source priority on equal years (higher wins).
PRIORITY = {CT: 5, CC_MIX: 4, EGRID: 4, MEE: 4, NORDIC: 4, CC_CANADA: 4, EMAPS: 3, GA: 2}

# What each source's figure counts (carbonlog.intensity.tables.CONVENTIONS):
# - Ember (via OWID, carbontracker, codecarbon): "full lifecycle emissions including upstream
#   methane, supply chain and manufacturing emissions, all gases, CO2e over 100 years"
#   (Ember, Global Electricity Review 2024, supporting material: methodology).
# - Electricity Maps: life-cycle factors, its default (app.electricitymaps.com methodology).
# - codecarbon's Nordic zones and Canadian provinces: generation x its per-source factors
#   (carbon_intensity_per_source.json), whose
#   hydro, wind, nuclear and solar factors are the World Nuclear Association's life-cycle ones.
# - EPA eGRID STC2ERTA: CO2e emitted at the plants. Google's region figures: "average
#   operational gross emissions" (GoogleCloudPlatform/region-carbon-info README). Green
#   Algorithms' rows: carbonfootprint.com generation factors and national inventories
#   (Canada's UNFCCC submission: Quebec 1.5 g/kWh), all at the plants, but for its
#   Electricity Maps rows.
# - China's MEE factors and the IEA world average (475 g/kWh): CO2 alone, at the plants.
CONVENTION = {
    CT: "life-cycle",
    CC_MIX: "life-cycle",
    EMAPS: "life-cycle",
    NORDIC: "life-cycle",
    CC_CANADA: "life-cycle",
    EGRID: "direct",
    GOOGLE: "direct",
    GA: "direct",
    MEE: "direct CO2",
}
LIFE_CYCLE = "life-cycle"

# Electricity Maps' old key "US-SC" is the Santee Cooper balancing authority (its newer key
# US-CAR-SC), not South Carolina. Its other old US keys are kept as their states' figures:
# CAISO (US-CA), ERCOT (US-TX), NYISO (US-NY) and TVA (US-TN) serve most of each state.
EMAPS_ZONE_FIXES = {"US-SC": "US-CAR-SC"}
# ISO 3166-2:CA codes of canada_energy_mix.json's provinces, and the per-source factor
# (carbon_intensity_per_source.json) of each of its generation columns; "other" and "tidal"
# have none and count 0 (0 % of every province's mix in the file).
CANADA_CODES = {
    "alberta": "CA-AB",
    "british columbia": "CA-BC",
    "manitoba": "CA-MB",
    "new brunswick": "CA-NB",
    "newfoundland and labrador": "CA-NL",
    "northwest territories": "CA-NT",
    "nova scotia": "CA-NS",
    "nunavut": "CA-NU",
    "ontario": "CA-ON",
    "prince edward island": "CA-PE",
    "quebec": "CA-QC",
    "saskatchewan": "CA-SK",
    "yukon": "CA-YT",
}
CANADA_FACTORS = {
    "naturalGas": "natural_gas",
    "petroleum": "petroleum",
    "coal": "coal",
    "biomass": "biomass",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "wind": "wind",
    "solar": "solar",
}
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
    convention: str = ""

    def __post_init__(self) -> None:
        if not self.convention:
            self.convention = convention(self.source)


def convention(source: str) -> str:
    """What a source's figure counts: Green Algorithms' Electricity Maps rows are life-cycle."""
    name = source.split(":")[0]
    if name == GA and "electricitymap" in source.lower():
        return LIFE_CYCLE
    return CONVENTION[name]


def best(candidates: list[Row]) -> Row:
    """A life-cycle figure first (the tables' one convention where any source has it), then
    the newest year, then the source priority."""
    return max(
        candidates,
        key=lambda r: (
            r.convention == LIFE_CYCLE,
            r.year or 0,
            PRIORITY.get(r.source.split(":")[0], 0),
        ),
    )


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
        code = EMAPS_ZONE_FIXES.get(zone, re.sub(r"^AUS-", "AU-", zone))
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


def canadian_provinces(ref: Path) -> list[Row]:
    """Each province's 2023 generation shares x codecarbon's per-source factors."""
    cc = ref / "codecarbon-3.3.2"
    mix = json.loads((cc / "canada_energy_mix.json").read_text())
    factor = json.loads((cc / "carbon_intensity_per_source.json").read_text())
    rows = []
    for name, shares in mix.items():
        g_per_kwh = sum(shares[k] * factor[f] for k, f in CANADA_FACTORS.items()) / shares["total"]
        title = " ".join(w if w == "and" else w.capitalize() for w in name.split())
        rows.append(Row(CANADA_CODES[name], title, "subdivision", g_per_kwh, CC_CANADA, 2023))
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
    cands += canadian_provinces(ref)
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
                convention="direct CO2",
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
        grid = grids[location]
        if g and grid.convention != LIFE_CYCLE:
            g_per_kwh, source, year, kind = float(g["impact"]), GOOGLE, 2023, CONVENTION[GOOGLE]
        else:
            g_per_kwh, year, kind = grid.g_per_kwh, grid.year, grid.convention
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
                "convention": kind,
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
TPU_V3 = "https://cloud.google.com/tpu/docs/v3"
NVIDIA_ADA = (
    "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"
)
NVIDIA_GA102 = (
    "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"
)
NVIDIA_TURING = (
    "https://images.nvidia.com/aem-dam/en-zz/Solutions/design-visualization/technologies/"
    "turing-architecture/NVIDIA-Turing-Architecture-Whitepaper.pdf"
)
NVIDIA_A5000 = "https://nvdam.widen.net/s/wrqrqt75vh/nvidia-rtx-a5000-datasheet"
NVIDIA_TITAN_V = "https://www.nvidia.com/en-us/titan/titan-v/: 110 TFLOPS deep learning"
PATTERSON = "https://arxiv.org/abs/2104.10350"
JOUPPI = "https://arxiv.org/abs/2304.01433"

# Columns: tflops32 is dense FP32 (no tensor cores), tflops16 dense FP16/BF16 on the
# matrix units (tensor cores, MXUs); no sparsity figures. Notes on what was wrong:
# - H100 rows of gpus.csv carry the with-sparsity TF32/FP16 figures under FP32/FP16.
# - A100 PCIe: one "40/80GB" row at 250 W; the 80 GB card is 300 W.
# - V100: gpus.csv has PCIe at 300 W and SXM2 16 GB at 250 W, the reverse of the
#   datasheet (SXM2 300 W, PCIe 250 W), and non-tensor FP16 for some rows.
# - A10G: 8 fields for 9 columns (the TFLOPS16 field is missing, the rest shifted left).
# - TPU v2/v3: gpus.csv says 221 W / 283 W (Patterson et al. 2021's mean per chip, which
#   counts the host's share), Green Algorithms 280 W / 220 W. Google's own TPU v3 page gives
#   the chip's measured min/mean/max power as 123/220/262 W: v3 is its mean, 220 W; v2 keeps
#   Patterson's 221 W, and TPU v4 is likewise its mean power (170 W, Jouppi et al. 2023; 192 W
#   max). Memory is per chip (gpus.csv gives the four-chip board's).
# - GeForce and RTX workstation cards: tflops16 is the whitepapers' dense "FP16 Tensor TFLOPS
#   with FP32 accumulate" (mixed-precision training accumulates in FP32; GeForce cards run it
#   at half the FP16-accumulate rate, Titan and Quadro/RTX cards at the full rate). gpus.csv's
#   FP16 figures for them are the plain rate. Every one is SMs x tensor FLOP per SM per clock
#   x boost clock: Turing and Ampere GA102 do 1024 (FP16 accumulate) per SM per clock, e.g. RTX
#   2080 Ti 68 x 1024 x 1.545 GHz / 2 = 53.8, A5000 64 x 1024 x 1.695 GHz = 111.1 (its
#   datasheet's 222.2 is with sparsity). The A10G and RTX 3080 Ti have no published figure.
# - AGX Xavier: gpus.csv's 16 TFLOPS FP32 is its INT8/FP16 deep-learning figure; its Volta GPU
#   has 512 CUDA cores at up to 1377 MHz, 512 x 2 FLOP x 1.377 GHz = 1.41 TFLOPS FP32.
# - Tesla M40 24GB: gpus.csv gives 12 GB, the memory of the 12 GB model.
# - TPU v5e/v5p: Google publishes no per-chip power; the rows carry FLOPS and memory,
#   and estimate() asks for tdp_w= for them.
# - GTX 750: TFLOPS given in GFLOPS and a 250 W TDP (the card is 55 W).
# - FP16: gpus.csv's column mixes tensor-core, plain (1:1, 2:1) and 1:64 rates, so only
#   the datasheet FP16/BF16 matrix figures of HARDWARE_FIXES are kept; comparisons fall
#   back to FP32 for the other rows.
# - A bare family name ("A100", "H100", "V100") means its SXM part, the form that cloud
#   training instances (p4d, a2, p5, a3) use.
# The accelerators the AMD, Intel and Apple meters see (issue 18), named as their drivers
# report them (amdsmi "AMD Instinct MI300X", torch.xpu "Intel(R) Data Center GPU Max 1550",
# torch.hpu "GAUDI2", the CPU brand "Apple M2 Max"). tflops16 is dense FP16/BF16 on the
# matrix units (AMD Matrix Cores, Intel XMX and MME); TDP is the board's (TBP).
# - Intel Max: Intel gives Xe cores, max clock and TBP; the peaks follow from Xe-HPC's 8 vector
#   engines (16 FP32 lanes, FMA) and 8 XMX engines (256 FP16 FMA) per Xe core:
#   FP32 = cores x 256 FLOP x GHz, FP16/BF16 = cores x 4096 FLOP x GHz.
#   Max 1550: 128 cores at 1.6 GHz; Max 1100: 56 cores at 1.55 GHz.
# - Arc A770: 32 Xe cores (4096 FP32 lanes) at its 2.1 GHz graphics clock: 17.2 TFLOPS FP32;
#   Intel publishes its XMX rate in INT8 TOPS only, so no tflops16.
# - Gaudi: the Gaudi 3 white paper's MME BF16 peaks (Gaudi 2 432, Gaudi 3 1835 TFLOPS); Gaudi
#   3 is the 900 W OAM module (HL-325L), not the 600 W PCIe card (HL-338).
# - Apple: Apple states GPU FP32 throughput for the M1 family only, and no chip's power:
#   estimate() asks for tdp_w= for every Apple row.
AMD_INSTINCT = "https://www.amd.com/en/products/accelerators/instinct"
AMD_MI200 = f"AMD Instinct MI250X data sheet, {AMD_INSTINCT}/mi200/mi250x.html"
AMD_MI300 = f"AMD Instinct MI300X data sheet, {AMD_INSTINCT}/mi300/mi300x.html"
AMD_MI325 = f"AMD Instinct MI325X data sheet, {AMD_INSTINCT}/mi300/mi325x.html"
INTEL_MAX = "Intel Data Center GPU Max Series product specifications (ark.intel.com)"
INTEL_ARC = "Intel Arc A770 Graphics product specifications (ark.intel.com)"
GAUDI3_PAPER = "Intel Gaudi 3 AI Accelerator White Paper, 2024"
APPLE_M1 = "Apple Newsroom, Apple unleashes M1 (2020-11-10): 2.6 teraflops"
APPLE_M1_PRO = "Apple, M1 Pro and M1 Max launch event (2021-10-18): 5.2 and 10.4 teraflops"
APPLE_M1_ULTRA = "Apple, M1 Ultra launch event (2022-03-08): 21 teraflops"
APPLE_NONE = "Apple publishes neither this chip's power nor its FLOPS"
# fmt: off
ACCELERATORS = [
    # name, kind, tdp_w, tflops32, tflops16, memory_gb, source, year, aliases, replaces
    ("AMD Instinct MI250X", "gpu", 560, 47.9, 383, 128, AMD_MI200, 2021, "", ""),
    ("AMD Instinct MI300X", "gpu", 750, 163.4, 1307.4, 192, AMD_MI300, 2023, "", ""),
    ("AMD Instinct MI325X", "gpu", 1000, 163.4, 1307.4, 256, AMD_MI325, 2024, "", ""),
    ("Intel Gaudi 2", "hpu", 600, None, 432, 96, GAUDI3_PAPER, 2024, "HL-225", ""),
    ("Intel Gaudi 3", "hpu", 900, None, 1835, 128, GAUDI3_PAPER, 2024, "HL-325L", ""),
    ("Intel Data Center GPU Max 1550", "gpu", 600, 52.4, 838.9, 128,
     f"{INTEL_MAX}: 128 Xe cores at 1.6 GHz, 600 W", 2023,
     "Intel(R) Data Center GPU Max 1550", ""),
    ("Intel Data Center GPU Max 1100", "gpu", 300, 22.2, 355.5, 48,
     f"{INTEL_MAX}: 56 Xe cores at 1.55 GHz, 300 W", 2023,
     "Intel(R) Data Center GPU Max 1100", ""),
    ("Intel Arc A770", "gpu", 225, 17.2, None, 16,
     f"{INTEL_ARC}: 32 Xe cores at 2.1 GHz, 225 W", 2022,
     "Intel(R) Arc(TM) A770 Graphics", ""),
    ("Apple M1", "gpu", None, 2.6, None, None, APPLE_M1, 2020, "", ""),
    ("Apple M1 Pro", "gpu", None, 5.2, None, None, APPLE_M1_PRO, 2021, "", ""),
    ("Apple M1 Max", "gpu", None, 10.4, None, None, APPLE_M1_PRO, 2021, "", ""),
    ("Apple M1 Ultra", "gpu", None, 21, None, None, APPLE_M1_ULTRA, 2022, "", ""),
    *((f"Apple {chip}", "gpu", None, None, None, None, APPLE_NONE, None, "", "")
      for chip in ("M2", "M2 Pro", "M2 Max", "M2 Ultra", "M3", "M3 Pro", "M3 Max",
                   "M3 Ultra", "M4", "M4 Pro", "M4 Max")),
]
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
    ("TPU v3", "tpu", 220, None, 123, 32,
     f"power: measured mean per chip (min/mean/max 123/220/262 W), {TPU_V3}; FLOPS: {TPU_V3}",
     None, "TPUv3 Chip", "TPUv3 Chip"),
    ("RTX 4090", "gpu", 450, 82.6, 165.2, 24, NVIDIA_ADA, 2022, "", "RTX 4090"),
    ("RTX 3090", "gpu", 350, 35.6, 71, 24, NVIDIA_GA102, 2020, "", "RTX 3090"),
    ("RTX 3080", "gpu", 320, 29.8, 59.5, 10, NVIDIA_GA102, 2020, "", "RTX 3080"),
    ("RTX A6000", "gpu", 300, 38.7, 154.8, 48, NVIDIA_GA102, 2020, "", "RTX A6000"),
    ("RTX A5000", "gpu", 230, 27.8, 111.1, 24, NVIDIA_A5000, 2021, "", "RTX A5000"),
    ("RTX 2080 Ti", "gpu", 250, 13.4, 53.8, 11, NVIDIA_TURING, 2018, "", "RTX 2080 Ti"),
    ("RTX 2080", "gpu", 215, 10.1, 40.3, 8, NVIDIA_TURING, 2018, "", "RTX 2080"),
    ("Titan RTX", "gpu", 280, 16.3, 130.5, 24, NVIDIA_TURING, 2018, "", "Titan RTX"),
    ("RTX 8000", "gpu", 260, 16.3, 130.5, 48, NVIDIA_TURING, 2018, "Quadro RTX 8000",
     "RTX 8000"),
    ("Titan V", "gpu", 250, 14.9, 110, 12, NVIDIA_TITAN_V, 2017, "", "Titan V"),
    ("AGX Xavier", "gpu", 30, 1.41, None, None,
     "https://elinux.org/Jetson_AGX_Xavier: 512 CUDA cores at up to 1377 MHz", None, "",
     "AGX Xavier"),
    ("Tesla M40 24GB", "gpu", 250, 6.844, None, 24,
     "https://www.techpowerup.com/gpu-specs/tesla-m40.c2771; memory: the model's 24 GB", None,
     "", "Tesla M40 24GB"),
    ("TPU v4", "tpu", 170, None, 275, 32,
     f"power: mean per chip, Jouppi et al. 2023 {JOUPPI}; FLOPS: {TPU_DOCS}", 2023, "", ""),
    ("TPU v5e", "tpu", None, None, 197, 16,
     "FLOPS: https://cloud.google.com/tpu/docs/v5e; no per-chip power published", 2023,
     "TPU v5 lite;v5litepod", ""),
    ("TPU v5p", "tpu", None, None, 459, 95,
     "FLOPS: https://cloud.google.com/tpu/docs/v5p; no per-chip power published", 2023,
     "", ""),
    *ACCELERATORS,
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


# The calculator's own data --------------------------------------------------------------

MLCO2_REGION_COLUMNS = [
    "provider",
    "region",
    "name",
    "provider_name",
    "country",
    "state",
    "city",
    "g_per_kwh",
    "offset_ratio",
    "source",
    "year",
]
MLCO2_HARDWARE_COLUMNS = ["name", "kind", "tdp_w", "source"]
MLCO2_SOURCE = "mlco2/impact data/impact.csv"


def figure_year(text: str) -> int | None:
    """The newest year a calculator row's source or comment names ("2018_8_electricity",
    "July 2, 2019", "average for oct21-oct22"), else None."""
    years = [int(y) for y in re.findall(r"(?<!\d)(20[0-2]\d)(?!\d)", text)]
    years += [2000 + int(y) for y in re.findall(r"\b[a-z]{3}(\d{2})\b", text.lower())]
    return max(years) if years else None


def mlco2_regions(ref: Path) -> list[dict]:
    """impact.csv's 82 regions in file order, figures as written; Scaleway's region, which
    the file leaves empty, is carbonlog's id for it (fr-par)."""
    rows = []
    for r in read_csv(ref / "mlco2-impact" / "impact.csv"):
        region = r["region"] or ("fr-par" if r["provider"] == "scaleway" else "")
        if not region:
            raise SystemExit(f"impact.csv row without a region: {r}")
        rows.append(
            {
                "provider": r["provider"],
                "region": region,
                "name": r["regionName"] or region,
                "provider_name": r["providerName"],
                "country": r["country"],
                "state": r["state"],
                "city": r["city"].rstrip(","),
                "g_per_kwh": float(r["impact"]),
                "offset_ratio": float(r["offsetRatio"]) / 100,
                "source": f"{MLCO2_SOURCE}: {r['source'] or 'no source given'}",
                "year": figure_year(f"{r['source']} {r['comment']}"),
            }
        )
    return rows


def mlco2_hardware(ref: Path) -> list[dict]:
    """gpus.csv's 48 rows in file order with the TDP the calculator uses: the third field and
    the last (the source), also in the A10G row that lacks a field between them."""
    rows = []
    with (ref / "mlco2-impact" / "gpus.csv").open(encoding="utf-8") as f:
        for fields in csv.reader(f):
            if fields[0] == "name":
                continue
            name, kind, tdp, source = (x.strip() for x in (*fields[:3], fields[-1]))
            rows.append(
                {
                    "name": name,
                    "kind": kind,
                    "tdp_w": float(tdp),
                    "source": f"mlco2/impact data/gpus.csv: {source}",
                }
            )
    return rows


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
        ["code", "alpha3", "name", "kind", "g_per_kwh", "source", "year", "convention"],
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
            "convention",
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
    write("mlco2_regions.csv", MLCO2_REGION_COLUMNS, mlco2_regions(ref))
    write("mlco2_hardware.csv", MLCO2_HARDWARE_COLUMNS, mlco2_hardware(ref))


if __name__ == "__main__":
    main(sys.argv[1:])
