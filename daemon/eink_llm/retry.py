"""When to try a failed request again: capped exponential backoff with jitter, honouring Retry-After.

Pure functions; the schedule itself is stored in the queue (``jobs.next_attempt_at``) so it survives restarts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
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


class CircuitBreaker:
    """Stops the backlog burning into ERROR_ PDFs while the model is down.

    After ``threshold`` transient failures in a row the breaker opens: workers stop claiming jobs, and one probe
    job is let through every ``probe_interval`` seconds. While it is open, a failed attempt does not count
    against the job's ``max_attempts`` (the outage is not the page's fault). The first success closes it.
    """

    def __init__(self, threshold: int = 3, probe_interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold

    def allow_claim(self) -> bool:
        """Whether a worker may take a job now: always when closed; once per probe interval when open."""
        with self._lock:
            if self._failures < self.threshold:
                return True
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self.probe_interval
                return True
            return False

    def probe_due(self) -> bool:
        """Whether :meth:`allow_claim` would let a job through now (without using up the probe)."""
        with self._lock:
            return self._failures < self.threshold or self._clock() >= self._next_probe

    def seconds_to_probe(self) -> float:
        with self._lock:
            return max(self._next_probe - self._clock(), 0.0)

    def state(self) -> tuple[int, bool, float]:
        """Failures in a row, whether it is open, and seconds until the next probe (0 when closed)."""
        with self._lock:
            down = self._failures >= self.threshold
            return self._failures, down, max(self._next_probe - self._clock(), 0.0) if down else 0.0

    def record_success(self) -> bool:
        """Returns True when this success ended an outage."""
        with self._lock:
            was_open = self._failures >= self.threshold
            self._failures = 0
            return was_open

    def record_failure(self) -> bool:
        """A transient backend failure. Returns True when this one opened the breaker."""
        with self._lock:
            self._failures += 1
            if self._failures == self.threshold:
                self._next_probe = self._clock() + self.probe_interval
                return True
            return False


class Breakers:
    """One :class:`CircuitBreaker` per AI service (backend and address), so that one provider's outage pauses
    only the folders it answers: a cloud model being down never holds up the local one."""

    def __init__(self, threshold: int = 3, probe_interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, service: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(service)
            if breaker is None:
                breaker = CircuitBreaker(self.threshold, self.probe_interval, self._clock)
                self._breakers[service] = breaker
            return breaker

    def states(self) -> dict[str, tuple[int, bool, float]]:
        """:meth:`CircuitBreaker.state` of every service known so far (for the status heartbeat)."""
        with self._lock:
            items = list(self._breakers.items())
        return {service: breaker.state() for service, breaker in items}

    def open_services(self) -> list[str]:
        with self._lock:
            items = list(self._breakers.items())
        return [service for service, breaker in items if breaker.is_open]

    def may_claim(self) -> bool:
        """Whether a worker should take a job now: unless every service is down and none is due a probe. (The
        job's own service decides, once it is claimed, whether it runs or waits: :meth:`CircuitBreaker.allow_claim`.)"""
        with self._lock:
            breakers = list(self._breakers.values())
        return not breakers or any(breaker.probe_due() for breaker in breakers)
