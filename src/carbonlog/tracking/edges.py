"""The meters and the clock at interval edges: joules since the last edge and the last peek.

Counters are read only at edges, after waiting for the device, and the edge time is taken
between the two. A meter that fails is swapped for its estimate: the open interval's part
before the failure is carried at the meter's mean measured power, said once per component.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

from carbonlog._log import logger, warn_once
from carbonlog.meters import COMPONENTS, ConstantPowerMeter, Meter
from carbonlog.tracking.joules import Joules
from carbonlog.tracking.sync import SyncFn, wait_for_devices


@dataclass
class _Slot:
    """One meter: its reading now, at the last edge and at the last peek, what it carries
    over from a failed meter, and its history of measured (not estimated) energy and time."""

    meter: Meter
    now_j: float = 0.0
    read_s: float = 0.0
    edge_j: float = 0.0
    peek_j: float = 0.0
    carried_since_edge_j: float = 0.0
    carried_since_peek_j: float = 0.0
    faulted_since_edge: bool = False
    faulted_since_peek: bool = False
    measured_j: float = 0.0
    measured_s: float = 0.0

    def mean_power_w(self) -> float:
        """Mean measured power over the closed intervals, else 0 (nothing measured yet)."""
        return self.measured_j / self.measured_s if self.measured_s > 0 else 0.0


class Window(NamedTuple):
    """This process's joules over a stretch of time: wall-clock start, length, estimates."""

    started_at_s: float
    duration_s: float
    joules: Joules
    estimated: frozenset[str] = frozenset()


class Edges:
    """Opens the meters and turns each edge (mark) or peek into this process's Window."""

    def __init__(self, meters: list[Meter], sync: SyncFn | None):
        self._slots = [_Slot(meter) for meter in meters]
        self._sync = sync
        self._first_s = self._edge_s = self._peek_s = 0.0
        self._edge_wall_s = self._peek_wall_s = 0.0

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
            slot.read_s = self._edge_s
            try:
                slot.meter.start()
            except Exception as exc:  # a device that fails to start degrades to its estimate
                self._degrade(slot, exc)

    def close(self) -> Window:
        """The interval since the last edge; the next one opens now."""
        now_s = self._read_all()
        duration_s = now_s - self._edge_s
        joules, estimated = self._since(edge=True)
        for slot in self._slots:
            if not slot.meter.estimated:
                slot.measured_j += max(slot.now_j - slot.edge_j, 0.0)
                slot.measured_s += duration_s
            slot.edge_j = slot.peek_j = slot.now_j
            slot.carried_since_edge_j = slot.carried_since_peek_j = 0.0
            slot.faulted_since_edge = slot.faulted_since_peek = False
        window = Window(self._edge_wall_s, duration_s, joules, estimated)
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
        self._degrade(slot, exc)
        gap_j = (slot.mean_power_w() or _constant_power_w(slot.meter)) * (now_s - slot.read_s)
        slot.carried_since_edge_j += measured_since_edge_j + gap_j
        slot.carried_since_peek_j += measured_since_peek_j + gap_j
        slot.faulted_since_edge = slot.faulted_since_peek = True
        slot.read_s = now_s

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

    def _degrade(self, slot: _Slot, exc: Exception) -> None:
        """Swap a failed meter for its estimate, started at zero; said once per component."""
        failed = slot.meter
        slot.meter = failed.fallback()
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


def _constant_power_w(meter: Meter) -> float:
    """The wattage of a constant-power estimate (what NVML and RAPL fall back to), else 0."""
    return meter.power_w if isinstance(meter, ConstantPowerMeter) else 0.0
