"""The run: a Tracker turns interval edges into Intervals, totals, a budget verdict and ledger rows.

from carbonlog.tracking import Tracker, track
"""

from carbonlog.tracking.options import check_options
from carbonlog.tracking.totals import check_state
from carbonlog.tracking.tracker import EPOCH, Tracker, track

__all__ = ["EPOCH", "Tracker", "check_options", "check_state", "track"]
