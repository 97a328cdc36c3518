"""Hardware -> joules: NVML for GPUs, RAPL for CPU and DRAM, models where no counter exists."""

from carbonlog.meters.base import COMPONENTS, ConstantPowerMeter, Meter, MeterError

__all__ = ["COMPONENTS", "ConstantPowerMeter", "Meter", "MeterError"]
