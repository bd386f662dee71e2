"""Run ids and timestamps for stored records: the one place that makes them.

Both are UTC, so files written on machines in different time zones sort together.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

#: How much of the time ``utc_now_iso`` keeps (``datetime.isoformat``'s ``timespec``).
Timespec = Literal["auto", "hours", "minutes", "seconds", "milliseconds", "microseconds"]


def new_run_id() -> str:
    """A new id like ``20240101T120000Z-3fa9c1``: sortable by start time, unique in practice.

    The second it was made in UTC, then 6 random hex digits so two runs started in
    the same second differ. Safe as a file or folder name.
    """
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def utc_now_iso(*, timespec: Timespec = "seconds") -> str:
    """The time now in UTC as ISO 8601, e.g. ``2024-01-01T12:00:00+00:00`` (``timespec`` as
    in ``datetime.isoformat``: ``"microseconds"`` keeps the order of quick edits)."""
    return datetime.now(UTC).isoformat(timespec=timespec)
