"""carbonlog: energy and CO2 of machine-learning training, measured where it happens.

Importing it is cheap: meters, tables and frameworks load on first use.
"""

from carbonlog._version import __version__
from carbonlog.compare import compare
from carbonlog.estimate import estimate
from carbonlog.intensity import intensity
from carbonlog.intensity.forecast import best_window
from carbonlog.interval import Interval, Summary
from carbonlog.tracking import Tracker, track

__all__ = [
    "Interval",
    "Summary",
    "Tracker",
    "__version__",
    "best_window",
    "compare",
    "estimate",
    "intensity",
    "track",
]
