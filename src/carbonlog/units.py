"""The unit arithmetic, in one place: joules -> kWh (x PUE), kWh x g/kWh -> kg CO2.

Every module that turns energy into kWh or CO2 calls these, so a convention changes here once.
"""

from __future__ import annotations

J_PER_KWH = 3.6e6
"""Joules in one kilowatt-hour."""
G_PER_KG = 1000.0
W_PER_KW = 1000.0


def kwh_from_j(energy_j: float) -> float:
    """Energy in kWh of `energy_j` joules."""
    return energy_j / J_PER_KWH


def facility_kwh(device_j: float, pue: float) -> float:
    """The facility's energy (kWh) for `device_j` joules drawn at the devices."""
    return device_j * pue / J_PER_KWH


def kwh_from_w_h(power_w: float, hours: float) -> float:
    """Energy in kWh of a constant `power_w` for `hours`."""
    return power_w * hours / W_PER_KW


def co2_kg(energy_kwh: float, g_per_kwh: float) -> float:
    """kg CO2e of `energy_kwh` drawn from a grid of `g_per_kwh` gCO2e/kWh."""
    return energy_kwh * g_per_kwh / G_PER_KG
