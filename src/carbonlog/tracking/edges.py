"""The meters and the clock at interval edges: joules since the last edge and the last peek.

Counters are read only at edges, after waiting for the device, and the edge time is taken
between the two. A meter that fails is swapped for its estimate: the open interval's part
before the failure is carried at the meter's mean measured power, said once per component.
Each edge also gives each component's band and method: a component measured two ways in one
interval (a fallback) has both parts' bands in quadrature and both methods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from carbonlog._log import logger, warn_once
from carbonlog.interval import MIXED, quadrature
from carbonlog.meters import COMPONENTS, ConstantPowerMeter, Meter
from carbonlog.meters.base import METHODS
from carbonlog.meters.uncertainty import short_window_note
from carbonlog.tracking.joules import Joules
from carbonlog.tracking.sync import SyncFn, wait_for_devices


@dataclass
class _Slot:
    """One meter: its reading now, at the last edge and at the last peek, what it carries
    over from a failed meter (with that part's band and method), when the meter's own part of
    the open interval began, and its history of measured (not estimated) energy and time."""

    meter: Meter
    now_j: float = 0.0
    read_s: float = 0.0
    edge_j: float = 0.0
    peek_j: float = 0.0
    carried_since_edge_j: float = 0.0
    carried_since_peek_j: float = 0.0
    faulted_since_edge: bool = False
    faulted_since_peek: bool = False
    carried_band_j: float = 0.0
    carried_methods: tuple[str, ...] = ()
    own_from_s: float = 0.0
    measured_j: float = 0.0
    measured_s: float = 0.0

    def mean_power_w(self) -> float:
        """Mean measured power over the closed intervals, else 0 (nothing measured yet)."""
        return self.measured_j / self.measured_s if self.measured_s > 0 else 0.0


class Window(NamedTuple):
    """This process's joules over a stretch of time: wall-clock start, length, estimates; at an
    edge, the band of each component (J) and its methods (`counter`, `counter+model`)."""

    started_at_s: float
    duration_s: float
    joules: Joules
    estimated: frozenset[str] = frozenset()
    band_j: Mapping[str, float] = {}
    methods: Mapping[str, str] = {}


class Edges:
    """Opens the meters and turns each edge (mark) or peek into this process's Window."""

    def __init__(self, meters: list[Meter], sync: SyncFn | None):
        self._slots = [_Slot(meter) for meter in meters]
        self._sync = sync
        self._first_s = self._edge_s = self._peek_s = 0.0
        self._edge_wall_s = self._peek_wall_s = 0.0
        self._methods: dict[str, str] | None = None  # the meters' methods, while none fails
        self._faulted = False  # a meter failed since the last edge

    @property
    def components(self) -> frozenset[str]:
        """The components this process has a meter for."""
        return frozenset(slot.meter.component for slot in self._slots)

    @property
    def estimating(self) -> frozenset[str]:
        """The components whose meter is an estimate (a model, sampled or constant power)."""
        return frozenset(slot.meter.component for slot in self._slots if slot.meter.estimated)

    @property
    def elapsed_s(self) -> float:
        """From the first edge to the last: the run's time, not a sum's wait."""
        return self._edge_s - self._first_s

    def open(self) -> None:
        """The first edge: wait for the device, take the time, start every meter."""
        wait_for_devices(self._sync)
        self._first_s = self._edge_s = self._peek_s = time.monotonic()
        self._edge_wall_s = self._peek_wall_s = time.time()
        for slot in self._slots:
            slot.read_s = slot.own_from_s = self._edge_s
            try:
                slot.meter.start()
            except Exception as exc:  # a device that fails to start degrades to its estimate
                self._degrade(slot, exc)

    def close(self) -> Window:
        """The interval since the last edge; the next one opens now."""
        now_s = self._read_all()
        duration_s = now_s - self._edge_s
        joules, estimated = self._since(edge=True)
        band_j, methods = self._bands(now_s)
        for slot in self._slots:
            if not slot.meter.estimated:
                slot.measured_j += max(slot.now_j - slot.edge_j, 0.0)
                slot.measured_s += duration_s
            slot.edge_j = slot.peek_j = slot.now_j
            slot.carried_since_edge_j = slot.carried_since_peek_j = 0.0
            slot.faulted_since_edge = slot.faulted_since_peek = False
            slot.carried_band_j, slot.carried_methods, slot.own_from_s = 0.0, (), now_s
        self._faulted = False
        window = Window(self._edge_wall_s, duration_s, joules, estimated, band_j, methods)
        self._edge_s = self._peek_s = now_s
        self._edge_wall_s += duration_s
        self._peek_wall_s = self._edge_wall_s
        return window

    def peek(self) -> tuple[Window, Joules]:
        """The stretch since the last peek (or edge), and the joules since the edge."""
        now_s = self._read_all()
        since_peek, estimated = self._since(edge=False)
        since_edge, _ = self._since(edge=True)
        for slot in self._slots:
            slot.peek_j = slot.now_j
            slot.carried_since_peek_j = 0.0
            slot.faulted_since_peek = False
        window = Window(self._peek_wall_s, now_s - self._peek_s, since_peek, estimated)
        self._peek_wall_s += now_s - self._peek_s
        self._peek_s = now_s
        return window, since_edge

    def hardware(self) -> dict[str, list[dict]]:
        """The devices measured, by component."""
        found: dict[str, list[dict]] = {c: [] for c in COMPONENTS}
        for slot in self._slots:
            try:
                found[slot.meter.component].extend(slot.meter.devices())
            except Exception as exc:
                logger.debug("describing %s meter failed: %s", slot.meter.component, exc)
        return found

    def shut(self) -> None:
        """Release every meter (NVML handles, sampling threads)."""
        for slot in self._slots:
            try:
                slot.meter.close()
            except Exception as exc:
                logger.debug("closing %s meter failed: %s", slot.meter.component, exc)

    def _read_all(self) -> float:
        """Wait for the device, take the time, then read every counter once (now_j)."""
        wait_for_devices(self._sync)
        now_s = time.monotonic()
        for slot in self._slots:
            try:
                slot.now_j = slot.meter.energy_j()
                slot.read_s = now_s
            except Exception as exc:
                self._carry_over_fault(slot, exc, now_s)
        return now_s

    def _carry_over_fault(self, slot: _Slot, exc: Exception, now_s: float) -> None:
        """Keep what the failed meter measured up to its last good read and estimate the gap
        since then: at the mean measured power, else the estimate meter's own power."""
        measured_since_edge_j = max(slot.now_j - slot.edge_j, 0.0)
        measured_since_peek_j = max(slot.now_j - slot.peek_j, 0.0)
        failed, gap_s = slot.meter, now_s - slot.read_s
        failed_band_j = _band_j(failed, measured_since_edge_j, slot.read_s - slot.own_from_s)
        self._degrade(slot, exc)
        gap_j = (slot.mean_power_w() or _constant_power_w(slot.meter)) * gap_s
        gap_band_j = _band_j(slot.meter, gap_j, gap_s)
        slot.carried_band_j = quadrature((slot.carried_band_j, failed_band_j, gap_band_j))
        slot.carried_methods += (failed.method, slot.meter.method)
        self._faulted = True
        slot.carried_since_edge_j += measured_since_edge_j + gap_j
        slot.carried_since_peek_j += measured_since_peek_j + gap_j
        slot.faulted_since_edge = slot.faulted_since_peek = True
        slot.read_s = slot.own_from_s = now_s

    def _since(self, edge: bool) -> tuple[Joules, frozenset[str]]:
        """Joules per component since the last edge (or peek), and which are estimated.

        A component is estimated when its meter is an estimate or failed in this stretch.
        """
        joules = dict.fromkeys(COMPONENTS, 0.0)
        estimated = set()
        for slot in self._slots:
            base_j = slot.edge_j if edge else slot.peek_j
            carried_j = slot.carried_since_edge_j if edge else slot.carried_since_peek_j
            faulted = slot.faulted_since_edge if edge else slot.faulted_since_peek
            joules[slot.meter.component] += max(slot.now_j - base_j, 0.0) + carried_j
            if slot.meter.estimated or faulted:
                estimated.add(slot.meter.component)
        return Joules.of(joules), frozenset(estimated)

    def _bands(self, now_s: float) -> tuple[dict[str, float], dict[str, str]]:
        """The band (J) since the last edge of each component this process measures, and its
        methods in METHODS order. A meter's own part and what it carries from a failed one are
        independent (quadrature); meters of one component add up (like devices, one method:
        the same bias)."""
        bands: dict[str, float] = {}
        for slot in self._slots:
            meter, energy_j = slot.meter, slot.now_j - slot.edge_j
            component = meter.component
            own_j = _band_j(meter, energy_j if energy_j > 0 else 0.0, now_s - slot.own_from_s)
            note = short_window_note(component, meter.method, own_j, energy_j)
            if note:
                warn_once(f"short-window:{component}", note)
            carried_j = slot.carried_band_j
            band_j = math.hypot(own_j, carried_j) if carried_j else own_j
            bands[component] = bands.get(component, 0.0) + band_j
        return bands, self._methods_since_edge()

    def _methods_since_edge(self) -> dict[str, str]:
        """Each component's methods since the last edge, in METHODS order: its meters', and
        those of the meters that failed since (kept from one edge to the next while none did)."""
        if self._methods is not None and not self._faulted:
            return self._methods
        used: dict[str, set[str]] = {}
        for slot in self._slots:
            found = used.setdefault(slot.meter.component, set())
            found.update((slot.meter.method, *slot.carried_methods))
        methods = {c: MIXED.join(m for m in METHODS if m in found) for c, found in used.items()}
        self._methods = None if self._faulted else methods
        return methods

    def _degrade(self, slot: _Slot, exc: Exception) -> None:
        """Swap a failed meter for its estimate, started at zero; said once per component."""
        failed = slot.meter
        slot.meter = failed.fallback()
        self._methods = None
        slot.meter.start()
        slot.now_j = slot.edge_j = slot.peek_j = 0.0
        try:
            failed.close()
        except Exception as close_exc:
            logger.debug("closing the failed %s meter: %s", failed.component, close_exc)
        warn_once(
            f"degrade:{failed.component}",
            f"carbonlog: the {failed.component} meter failed ({exc}); "
            f"{failed.component} energy is estimated from now on",
            own=True,
        )


def _band_j(meter: Meter, energy_j: float, window_s: float) -> float:
    """The meter's band of `energy_j` over `window_s`; 0 (said once) when it cannot say."""
    try:
        return meter.band_j(energy_j, window_s)
    except Exception as exc:  # a band is a courtesy: never the training's failure
        warn_once(
            f"band:{meter.component}",
            f"carbonlog: the {meter.component} meter gave no error band ({exc}); "
            "its band counts as 0",
            own=True,
        )
        return 0.0


def _constant_power_w(meter: Meter) -> float:
    """The wattage of a constant-power estimate (what NVML and RAPL fall back to), else 0."""
    return meter.power_w if isinstance(meter, ConstantPowerMeter) else 0.0
