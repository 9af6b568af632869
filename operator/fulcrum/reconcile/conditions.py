"""kstatus conditions: set a condition, keeping lastTransitionTime unless the status flips."""

from __future__ import annotations

from typing import Literal

from fulcrum.api import Condition

CONDITION_ORDER = ["Ready", "Reconciling", "Stalled", "RepositoryReady", "Available", "SLOMet", "WithinBudget"]


def set_condition(
    previous: list[Condition],
    type_: str,
    *,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    """The new condition; its lastTransitionTime is kept when its status did not change."""
    text: Literal["True", "False", "Unknown"] = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in previous if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == text else now
    return Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=since,
    )


def ordered(conditions: list[Condition]) -> list[Condition]:
    rank = {name: i for i, name in enumerate(CONDITION_ORDER)}
    return sorted(conditions, key=lambda c: rank.get(c.type, len(rank)))
