"""How long to wait between two polls of one operation: google-api-core's LRO schedule.

The ceiling starts at POLL_INITIAL_SECONDS and grows by POLL_MULTIPLIER up to
POLL_MAX_SECONDS; each wait is drawn uniformly below the ceiling (full jitter), so
thousands of watches started together spread out instead of polling in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    initial_ms: int = 1000
    multiplier: float = 1.5
    max_ms: int = 20_000

    def first_ceiling(self) -> int:
        return min(self.initial_ms, self.max_ms)

    def next_ceiling(self, ceiling_ms: int) -> int:
        return min(int(ceiling_ms * self.multiplier), self.max_ms)

    def wait(self, ceiling_ms: int) -> int:
        return int(random.uniform(0, ceiling_ms))

    def busy_wait(self) -> int:
        """Google said slow down (429/503): wait the longest the schedule allows."""
        return self.max_ms
