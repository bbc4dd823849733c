"""When to try a failed request again: capped exponential backoff with jitter, honouring Retry-After.

Pure functions; the schedule itself is stored in the queue (``jobs.next_attempt_at``) so it survives restarts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from eink_llm.errors import EinkError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay: float = 2.0
    max_delay: float = 300.0


def should_retry(error: EinkError, attempts: int, policy: RetryPolicy) -> bool:
    """Retry only what may succeed later, and only while attempts remain (``attempts`` made so far)."""
    return error.retryable and attempts < policy.max_attempts


def next_attempt(
    error: EinkError, attempts: int, policy: RetryPolicy, now: datetime, rng: random.Random | None = None
) -> datetime:
    """When to try again after the ``attempts``-th failure."""
    backoff = min(policy.max_delay, policy.initial_delay * 2 ** max(0, attempts - 1))
    delay = backoff * (rng or random).uniform(0.75, 1.0)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        delay = max(delay, min(float(retry_after), policy.max_delay))
    return now + timedelta(seconds=delay)
