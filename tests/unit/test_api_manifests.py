"""Every manifest in the shared table gets the verdict the table (and the API server) gives it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fulcrum.api import format_validation_error, parse_model_deployment
from tests.support.manifest_cases import CASES, Case, manifest


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pydantic_verdict_matches_table(case: Case) -> None:
    obj = manifest(case)
    if case.valid:
        parsed = parse_model_deployment(obj)
        assert parsed.spec.tiers
        return
    with pytest.raises(ValidationError) as info:
        parse_model_deployment(obj)
    if case.error:
        assert case.error in format_validation_error(info.value)


def test_table_covers_every_cel_rule() -> None:
    from fulcrum.api.spec import cel_rules

    covered = {c.error for c in CASES if c.error}
    from fulcrum.api.resource import NAME_RULE, SERVED_NAME_RULE

    for rule in [*cel_rules(), NAME_RULE, SERVED_NAME_RULE]:
        assert any(fragment in rule["message"] for fragment in covered), f"no case for rule: {rule['message']}"
