"""Spending caps per profile: daily and monthly, in tokens or cost, in UTC calendar periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eink_llm.config import Profile
from eink_llm.errors import BudgetExceededError
from eink_llm.store.ports import BudgetUsage


def period_starts(now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """Start of today, start of tomorrow, start of this month, start of next month (UTC)."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=UTC)
    month = day.replace(day=1)
    next_month = (
        month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)
    )
    return day, tomorrow, month, next_month


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """What is left of a profile's tightest cap, in input tokens (a cost cap counted at the input price)."""

    tokens: int
    label: str  # "daily" or "monthly"
    resets_at: datetime


def budget_left(store: BudgetUsage, profile: Profile, now: datetime) -> BudgetLeft | None:
    """The fewest input tokens any of the profile's caps still allows; ``None`` when it has no cap that counts
    tokens (a cost cap without an input price cannot be turned into tokens)."""
    budget = profile.budget
    day, tomorrow, month, next_month = period_starts(now)
    periods = (
        ("daily", day, tomorrow, budget.daily_tokens, budget.daily_cost),
        ("monthly", month, next_month, budget.monthly_tokens, budget.monthly_cost),
    )
    tightest: BudgetLeft | None = None
    for label, start, resets, token_cap, cost_cap in periods:
        if token_cap is None and (cost_cap is None or not budget.input_price_per_million):
            continue
        tokens, cost = store.usage_since(profile.name, start)
        lefts = []
        if token_cap is not None:
            lefts.append(token_cap - tokens)
        if cost_cap is not None and budget.input_price_per_million:
            lefts.append(int((cost_cap - cost) / budget.input_price_per_million * 1_000_000))
        left = max(min(lefts), 0)
        if tightest is None or left < tightest.tokens:
            tightest = BudgetLeft(left, label, resets)
    return tightest


def check_budget(store: BudgetUsage, profile: Profile, now: datetime) -> BudgetExceededError | None:
    """The first cap the profile has reached, as an error that says which and when it resets; else None."""
    budget = profile.budget
    day, tomorrow, month, next_month = period_starts(now)
    periods = (
        ("daily", day, tomorrow, budget.daily_tokens, budget.daily_cost),
        ("monthly", month, next_month, budget.monthly_tokens, budget.monthly_cost),
    )
    for label, start, resets, token_cap, cost_cap in periods:
        if token_cap is None and cost_cap is None:
            continue
        tokens, cost = store.usage_since(profile.name, start)
        spent = None
        if token_cap is not None and tokens >= token_cap:
            spent = f"{tokens:,} of {token_cap:,} tokens"
        elif cost_cap is not None and cost >= cost_cap:
            spent = f"{cost:.2f} of {cost_cap:.2f}"
        if spent:
            return BudgetExceededError(
                f"The {label} budget of the profile {profile.name!r} is spent ({spent}).",
                f"It resets at {resets:%Y-%m-%d %H:%M} UTC; export the page again after that, or raise "
                f"profiles.{profile.name}.budget in the config.",
                resets_at=resets,
            )
    return None
