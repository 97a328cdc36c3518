"""Everyday equivalents of a mass of CO2: car km, smartphone charges, flights, tree-months.

Each figure names its source and the year it describes, so a report can cite it. They are
orders of magnitude for a reader, not accounting factors: the car figure is the EU fleet
of new cars, the flight a single published trip, the tree a mean urban tree. An equivalent is
shown only from MEANINGFUL units up ("0.000000045 flights" pictures nothing).
The ML CO2 Impact calculator uses US EPA figures instead (its car: 247.3 g/km, the average US
passenger vehicle, 2.3 times the new EU car): `dataset="mlco2"` gives its three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from carbonlog.errors import ConfigurationError
from carbonlog.units import G_PER_KG

MEANINGFUL = 0.01
"""The fewest units of an equivalent worth showing: 1 % of one (0.01 km, 0.01 flights)."""


@dataclass(frozen=True)
class Equivalent:
    """`kg_per_unit` kg CO2(e) per unit of something familiar, with where the figure comes from."""

    key: str
    unit: str
    kg_per_unit: float
    source: str
    year: int
    phrase: str  # "like driving {n} km": {n} is the formatted amount

    def amount(self, kg: float) -> float:
        """How many units `kg` CO2 is."""
        return kg / self.kg_per_unit

    def means_something(self, kg: float) -> bool:
        """Whether `kg` CO2 is at least MEANINGFUL units of this equivalent."""
        return abs(self.amount(kg)) >= MEANINGFUL

    def describe(self, kg: float) -> str:
        """`kg` CO2 in words: "like driving 19 km in an average new car"."""
        return self.phrase.format(n=_amount(self.amount(kg)))

    def cite(self) -> str:
        """`106.8 g CO2 per km: EEA ... (2024)` for footnotes."""
        return f"{_grams(self.kg_per_unit)} CO2 per {self.unit}: {self.source} ({self.year})"


CAR_KM = Equivalent(
    key="car_km",
    unit="km by car",
    kg_per_unit=0.1068,
    source=(
        "European Environment Agency, average CO2 emissions of new passenger cars registered "
        "in the EU in 2024, provisional data (WLTP), as carried by carbontracker 2.4.7"
    ),
    year=2024,
    phrase="like driving {n} km in an average new car",
)
SMARTPHONE_CHARGES = Equivalent(
    key="smartphone_charges",
    unit="smartphone charge",
    kg_per_unit=8.22e-3,
    source=(
        "US EPA Greenhouse Gas Equivalencies Calculator, 8.22e-6 metric tons CO2 per "
        "smartphone charged"
    ),
    year=2022,
    phrase="like charging a smartphone {n} times",
)
FLIGHTS = Equivalent(
    key="flights",
    unit="one-way economy flight Paris-London per passenger",
    kg_per_unit=50.0,
    source=(
        "Green Algorithms v3 reference values (flight_PAR-LON, from the carbonfootprint.com "
        "flight calculator)"
    ),
    year=2022,
    phrase="like {n} one-way Paris-London flights",
)
TREE_MONTHS = Equivalent(
    key="tree_months",
    unit="tree-month",
    kg_per_unit=11.0 / 12.0,
    source=(
        "Green Algorithms v3 reference values (a tree absorbs 11 kg CO2 a year, from "
        "https://www.sciencedirect.com/science/article/pii/S0269749101002640)"
    ),
    year=2022,
    phrase="what a tree absorbs in {n} months",
)
EQUIVALENTS = (CAR_KM, SMARTPHONE_CHARGES, FLIGHTS, TREE_MONTHS)
BY_KEY = {e.key: e for e in EQUIVALENTS}

_CALCULATOR = (
    "US EPA Greenhouse Gas Equivalencies Calculator, as the ML CO2 Impact calculator carries "
    "it (mlco2/impact js/grayscale.js fillComparisonTable)"
)
KM_PER_MILE = 1.609344
LB_PER_KG = 2.204623  # the calculator's conversion
CALCULATOR_CAR_KM = Equivalent(
    key="car_km",
    unit="km by car",
    kg_per_unit=3.98e-4 * 1e3 / KM_PER_MILE,
    source=f"{_CALCULATOR}: 3.98e-4 metric tons CO2e per mile, the average passenger vehicle",
    year=2019,
    phrase="like driving {n} km in an average US passenger vehicle",
)
CALCULATOR_COAL_KG = Equivalent(
    key="coal_kg",
    unit="kg of coal burned",
    kg_per_unit=9.05e-4 * 1e3 * LB_PER_KG,
    source=f"{_CALCULATOR}: 9.05e-4 metric tons CO2 per pound of coal burned",
    year=2019,
    phrase="like burning {n} kg of coal",
)
CALCULATOR_SEEDLINGS = Equivalent(
    key="tree_seedlings",
    unit="urban tree seedling grown for 10 years",
    kg_per_unit=0.060 * 1e3,
    source=f"{_CALCULATOR}: 0.060 metric tons CO2 per urban tree planted",
    year=2019,
    phrase="what {n} urban tree seedlings absorb in 10 years",
)
CALCULATOR_EQUIVALENTS = (CALCULATOR_CAR_KM, CALCULATOR_COAL_KG, CALCULATOR_SEEDLINGS)
_SETS = {"carbonlog": EQUIVALENTS, "mlco2": CALCULATOR_EQUIVALENTS}


def equivalents_of(dataset: str = "carbonlog") -> tuple[Equivalent, ...]:
    """carbonlog's equivalents, or the calculator's (dataset="mlco2")."""
    if dataset not in _SETS:
        raise ConfigurationError(f"dataset must be one of {tuple(_SETS)}, got {dataset!r}")
    return _SETS[dataset]


def _amount(value: float) -> str:
    """Two significant digits below 100, never in exponent form: 0.000034, 0.42, 19; whole
    numbers with separators above: 1,234."""
    if value == 0 or abs(value) >= 99.5:
        return f"{value:,.0f}"
    digits = max(0, 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _grams(kg: float) -> str:
    return f"{kg * G_PER_KG:.4g} g" if kg < 1 else f"{kg:.4g} kg"


def equivalents(kg: float, dataset: str = "carbonlog") -> dict[str, float]:
    """Every equivalent of `kg` CO2 of a dataset, by key."""
    return {e.key: e.amount(kg) for e in equivalents_of(dataset)}


def describe(kg: float, key: str = "car_km") -> str:
    """One equivalent in words: describe(2.0) -> "like driving 19 km in an average new car"."""
    if key not in BY_KEY:
        raise ConfigurationError(f"unknown equivalent {key!r}; choose one of {tuple(BY_KEY)}")
    return BY_KEY[key].describe(kg)


def describe_tangible(kg: float) -> str | None:
    """The car, else the smartphone equivalent, whichever counts at least one unit; None for
    amounts too small to picture (a fraction of one phone charge)."""
    for equivalent in (CAR_KM, SMARTPHONE_CHARGES):
        if equivalent.amount(kg) >= 1:
            return equivalent.describe(kg)
    return None


def meaningful(kg: float, dataset: str = "carbonlog") -> list[Equivalent]:
    """The equivalents of a dataset of which `kg` CO2 is at least MEANINGFUL units, in their
    order; none for a mass too small to picture."""
    return [e for e in equivalents_of(dataset) if e.means_something(kg)]


def describe_all(kg: float, dataset: str = "carbonlog") -> list[str]:
    """The meaningful equivalents of `kg` CO2 in words, in the order of the dataset's set."""
    return [e.describe(kg) for e in meaningful(kg, dataset)]
