"""Time budgets for OCR work: how long one file, or one batch of files, may take.

A budget is checked between pages and between files, never by interrupting an engine
call, so a page in progress always finishes and everything read before the stop is
kept. The profile sets the budgets (``ocr.file_time_budget_s``,
``ocr.batch_time_budget_s``); ``None`` means no limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeBudget:
    """Seconds a piece of work may take, counted from when the budget is made."""

    def __init__(
        self,
        seconds: float | None,
        setting: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.setting = setting  # the profile key, so a message can say what to raise
        self._clock = clock
        self._started = clock()

    @property
    def spent(self) -> float:
        return self._clock() - self._started

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.spent >= self.seconds

    def stop_message(self, what: str, unit: str, reached: int, total: int) -> str:
        """E.g. "scan.pdf stopped after 601 s at page 12 of 200 (...)"; ``reached`` is the
        1-based item that was not started."""
        done = reached - 1
        if done == 0:
            kept = "nothing was read before it"
        elif done == 1:
            kept = f"the {unit} read before it is kept"
        else:
            kept = f"the {done} {unit}s read before it are kept"
        return (
            f"{what} stopped after {self.spent:.0f} s at {unit} {reached} of {total}: "
            f"over the time budget of {self.seconds:g} s ({self.setting} in the profile); "
            f"{kept}."
        )


def first_expired(*budgets: TimeBudget | None) -> TimeBudget | None:
    """The first of ``budgets`` that has run out, or None."""
    return next((budget for budget in budgets if budget is not None and budget.expired), None)
