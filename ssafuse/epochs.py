"""One policy for element-set epochs that cannot be right for the time they are used at.

* **From the future.** An element set is a fit to observations already made, so its epoch
  is never much later than the moment it was received. One whose epoch is later than its
  ingest time by more than :data:`FUTURE_TOLERANCE_DAYS` is rejected at ingest
  (:func:`future_reason`), with the reason: left in, it would win the catalogue as "the
  newest" and hide the object's real element sets (an ISS record re-sent with epoch
  2100-01-01 made the ISS look decayed). The tolerance admits predicted element sets such as
  CelesTrak's SupGP fits to operator ephemerides, whose epochs may lead by hours.
* **Far from the window.** SGP4's error grows by kilometres per day away from epoch, so an
  element set whose epoch is more than ``max_epoch_gap_days`` (default
  :data:`MAX_EPOCH_GAP_DAYS`, the 30 days of Space-Track's "current catalogue" query
  ``epoch/>now-30``) outside the screening window is excluded from screening, with its gap
  in the reason (:func:`window_gap_days`), and counted in the run's exclusions.
* **Disagreement.** Two sources' element sets of one object are compared only when their
  epochs are within ``disagree_max_gap_days`` (default :data:`DISAGREE_MAX_GAP_DAYS`) of each
  other: a 10-month-old set propagated to today's epoch differs by thousands of km because
  of its age, not because a source is wrong.
"""

from __future__ import annotations

import numpy as np

from .constants import NS_PER_DAY

__all__ = ["FUTURE_TOLERANCE_DAYS", "MAX_EPOCH_GAP_DAYS", "DISAGREE_MAX_GAP_DAYS",
           "future_mask", "future_reason", "window_gap_days"]

#: How far an element set's epoch may lead its ingest time (days) before it is rejected.
FUTURE_TOLERANCE_DAYS = 2.0
#: Default largest distance (days) between an element set's epoch and the screening window.
MAX_EPOCH_GAP_DAYS = 30.0
#: Default largest epoch difference (days) between two element sets compared for disagreement.
DISAGREE_MAX_GAP_DAYS = 3.0


def future_mask(epoch_ns, at_ns: int, tolerance_days: float = FUTURE_TOLERANCE_DAYS):
    """Which epochs (ns since 1970 UTC, an array) are later than ``at_ns`` by more than
    ``tolerance_days``."""
    return np.asarray(epoch_ns, dtype=np.int64) > at_ns + int(tolerance_days * NS_PER_DAY)


def future_reason(epoch_ns: int, at_ns: int) -> str:
    """Why an element set of epoch ``epoch_ns`` received at ``at_ns`` is rejected."""
    lead = (int(epoch_ns) - int(at_ns)) / NS_PER_DAY
    return (f"epoch is {lead:,.1f} days after the ingest time: an element set cannot come "
            f"from the future (tolerance {FUTURE_TOLERANCE_DAYS:g} days)")


def window_gap_days(epoch_ns, start_ns: int, end_ns: int) -> np.ndarray:
    """Days between each epoch (ns since 1970 UTC) and the window ``[start_ns, end_ns]``:
    0 inside it, else the distance to its nearer end."""
    epoch = np.asarray(epoch_ns, dtype=np.int64)
    gap = np.maximum(start_ns - epoch, epoch - end_ns)
    return np.maximum(gap, 0) / NS_PER_DAY
