"""The run: a Tracker turns interval edges into Intervals, totals, a budget verdict and ledger rows.

    from carbonlog.tracking import Tracker, track
"""

from carbonlog.tracking.tracker import EPOCH, Tracker, check_state, track

__all__ = ["EPOCH", "Tracker", "check_state", "track"]
