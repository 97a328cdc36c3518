"""How a meter reads accelerators that misbehave, shared by the AMD, Intel and Apple meters.

The same fault rules as NVML's: a reading is retried before it counts as a fault; a fault
raises MeterError, and fallback() gives the estimate that takes over (the mean power measured
so far, else the power limits). Cumulative counters are polled between edges by a watch
thread, so that a counter that wraps, resets (amdsmi#115) or reads near zero for a moment
(compute-runtime#938) costs one poll, bridged at the power measured so far and flagged, not
an interval. Devices with no counter have their power sampled and integrated (trapezoid).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic  # the meter's clock, one name for tests to replace

from carbonlog._log import warn_once
from carbonlog.meters.base import ConstantPowerMeter, MeterError

READ_ATTEMPTS = 3
"""A reading is tried this often before the device counts as failed: one busy-driver error
must not turn a run's energy into an estimate (the rule NVML's meter follows)."""
RETRY_PAUSE_S = 0.005
WATCH_S = 1.0  # counters are polled this often, so that a wrap or a glitch costs one poll
SAMPLE_S = 0.1  # power, where there is no counter, is sampled this often
GLITCH_FACTOR = 2.0
"""A counter that moves faster than this many times its device's power limit between two
polls is glitching (a near-zero read and back, compute-runtime#938): the step is bridged."""


def retried(read: Callable[[], float], errors: tuple[type[BaseException], ...]) -> float:
    """`read()`, tried READ_ATTEMPTS times before one of `errors` counts."""
    for _ in range(READ_ATTEMPTS - 1):
        try:
            return read()
        except errors:
            time.sleep(RETRY_PAUSE_S)
    return read()


def mean_power_fallback(
    component: str, energy_j: float, elapsed_s: float, limit_w: float, library: str
) -> ConstantPowerMeter:
    """The estimate after a fault: constant power at the mean measured so far, else the limits."""
    if elapsed_s > 0 and energy_j > 0:
        return ConstantPowerMeter(
            component,
            energy_j / elapsed_s,
            f"{component} estimate after a fault of {library}: mean power so far",
        )
    return ConstantPowerMeter(
        component, limit_w, f"{component} estimate after a fault of {library}: sum of power limits"
    )


@dataclass
class Device:
    """One accelerator as a meter reads it: a cumulative counter (J), else its power (W).

    `update_s` is how often the counter (or power reading) changes and `step_j` / `step_w`
    its resolution: they size the meter's band.
    """

    info: dict
    limit_w: float | None
    read_j: Callable[[], float] | None = None
    read_w: Callable[[], float] | None = None
    update_s: float = 0.0
    step_j: float = 0.0
    step_w: float = 0.0
    share: float = 1.0

    @property
    def method(self) -> str:
        return "counter" if self.read_j is not None else "sampled"

    def read(self) -> float:
        """The counter (J), else the power now (W)."""
        return self.read_j() if self.read_j is not None else self.read_w()

    def describe(self) -> dict:
        return {**self.info, "power_limit_w": self.limit_w, "method": self.method}


@dataclass
class _Track:
    """One device's joules since start, from its counter or its sampled power."""

    device: Device
    last: float  # the last counter reading (J) or power sample (W)
    last_s: float
    t0_s: float
    total_j: float = 0.0
    misses: int = 0
    bridged: list[float] = field(default_factory=list)  # seconds of each bridged step

    def mean_w(self) -> float:
        elapsed_s = self.last_s - self.t0_s
        if elapsed_s > 0 and self.total_j > 0:
            return self.total_j / elapsed_s
        return self.device.limit_w or 0.0

    def count(self, reading: float, now_s: float) -> None:
        """Add what the counter moved since the last poll, or the power's trapezoid."""
        step_s = now_s - self.last_s
        if self.device.read_j is None:
            self.total_j += (self.last + reading) / 2 * step_s
        else:
            moved_j = reading - self.last
            limit_w = self.device.limit_w
            window_s = step_s + self.device.update_s  # a poll may see one update more
            if moved_j < 0 or (limit_w and moved_j > GLITCH_FACTOR * limit_w * window_s):
                moved_j = self.mean_w() * step_s
                self.bridged.append(step_s)
            self.total_j += moved_j
        self.last, self.last_s, self.misses = reading, now_s, 0


class AcceleratorMeter:
    """Joules of some accelerators of one component since start(), summed (each at its share).

    `errors`: the library's exceptions for a failed reading; `release`: gives the library back
    in close(). `estimated` when a device is sampled or a counter's step had to be bridged.
    """

    def __init__(
        self,
        component: str,
        devices: list[Device],
        errors: tuple[type[BaseException], ...],
        library: str,
        release: Callable[[], None] | None = None,
        watch_s: float | None = WATCH_S,
        sample_s: float = SAMPLE_S,
    ):
        self.component = component
        self._devices = devices
        self._errors = errors
        self._library = library
        self._release = release
        sampled = any(d.read_j is None for d in devices)
        self._period_s = sample_s if sampled else watch_s
        self.method = "sampled" if sampled else "counter"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracks: list[_Track] = []
        self._fault: BaseException | None = None
        self._good = (0.0, 0.0)  # (joules, seconds since start) at the last good reading
        self._t0_s: float | None = None
        self._closed = False

    @property
    def estimated(self) -> bool:
        return self.method == "sampled" or any(t.bridged for t in self._tracks)

    def start(self) -> None:
        self._stop_watch()
        self._fault = None
        try:
            readings = [retried(d.read, self._errors) for d in self._devices]
        except self._errors as exc:
            raise MeterError(f"{self._library} failed at start: {exc}") from exc
        now_s = monotonic()
        pairs = zip(self._devices, readings, strict=True)
        self._tracks = [_Track(device, reading, now_s, now_s) for device, reading in pairs]
        self._t0_s, self._good = now_s, (0.0, 0.0)
        if self._period_s:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._watch, daemon=True, name=f"carbonlog-{self._library}-watch"
            )
            self._thread.start()

    def energy_j(self) -> float:
        if self._t0_s is None:
            return 0.0
        with self._lock:
            if self._fault is None:
                try:
                    self._poll()
                except self._errors as exc:
                    self._fault = exc
            if self._fault is not None:
                raise MeterError(f"{self._library} read failed: {self._fault}") from self._fault
            energy_j = sum(t.total_j * t.device.share for t in self._tracks)
        self._good = (energy_j, monotonic() - self._t0_s)
        self._say_bridged()
        return energy_j

    def band_j(self, energy_j: float, window_s: float) -> float:
        """At each edge a reading lags by up to one update period (that period's energy at the
        window's mean power) and rounds by one step; sampled power also rounds by its step."""
        if window_s <= 0 or energy_j <= 0:
            return 0.0
        power_w = energy_j / window_s
        lag_s = max(d.update_s for d in self._devices)
        steps_j = sum(2 * d.step_j + 0.5 * d.step_w * window_s for d in self._devices)
        return min(energy_j, 2 * power_w * lag_s + steps_j)

    def devices(self) -> list[dict]:
        return [d.describe() for d in self._devices]

    def fallback(self) -> ConstantPowerMeter:
        energy_j, elapsed_s = self._good
        limit_w = sum((d.limit_w or 0.0) * d.share for d in self._devices)
        return mean_power_fallback(self.component, energy_j, elapsed_s, limit_w, self._library)

    def close(self) -> None:
        self._stop_watch()
        if not self._closed:
            self._closed = True
            if self._release is not None:
                self._release()

    def _poll(self) -> None:
        """Read every device once, each reading retried; under the lock."""
        for track in self._tracks:
            track.count(retried(track.device.read, self._errors), monotonic())

    def _watch(self) -> None:
        """Poll between edges; a missed poll is bridged by the next, READ_ATTEMPTS in a row fail."""
        while not self._stop.wait(self._period_s):
            with self._lock:
                if self._fault is not None:
                    return
                for track in self._tracks:
                    try:
                        track.count(track.device.read(), monotonic())
                    except self._errors as exc:
                        track.misses += 1
                        if track.misses >= READ_ATTEMPTS:
                            self._fault = exc
                            return

    def _say_bridged(self) -> None:
        for track in self._tracks:
            if track.bridged:
                warn_once(
                    f"bridged:{self._library}:{track.device.info.get('name')}",
                    f"carbonlog: the {self._library} energy counter of "
                    f"{track.device.info.get('name')} went back or leapt between two reads "
                    f"(a wrap, a reset or a glitch); {sum(track.bridged):.1f} s were estimated "
                    "at its mean power and its energy is flagged as estimated",
                    own=True,
                )

    def _stop_watch(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
