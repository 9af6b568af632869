"""Rolling switches: how many replicas of the placement being left keep serving (pure, even traffic split)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fulcrum.policy import PolicyState
from fulcrum.policy.rollout import mixed_capacity, old_replicas_to_keep, replica_capacities
from tests.unit.test_policy_support import make_spec, make_table


def keep(old: int, old_capacity: float, new: int, new_capacity: float, rate: float | None, ref: float | None) -> int:
    return old_replicas_to_keep(
        old_ready=old, old_capacity=old_capacity, new_ready=new, new_capacity=new_capacity, rate=rate, reference=ref
    )


def test_an_even_split_serves_at_the_slower_replicas_capacity() -> None:
    assert mixed_capacity(3, 700.0, 1, 2100.0) == 4 * 700.0
    assert mixed_capacity(0, 700.0, 2, 2100.0) == 2 * 2100.0
    assert mixed_capacity(5, 6400.0, 1, 1800.0) == 6 * 1800.0  # one slow replica lowers what five fast serve
    assert mixed_capacity(0, 700.0, 0, 2100.0) == 0.0


def test_old_replicas_go_capacity_for_capacity_as_new_ones_become_ready() -> None:
    assert keep(6, 700.0, 0, 2100.0, None, 4200.0) == 6
    assert keep(6, 700.0, 1, 2100.0, None, 4200.0) == 5  # the new replica takes one replica's share
    assert keep(5, 700.0, 2, 2100.0, None, 4200.0) == 0  # two new replicas serve 4200 rps alone


def test_old_replicas_the_load_does_not_need_go_at_once() -> None:
    assert keep(6, 700.0, 0, 2100.0, 2000.0, 4200.0) == 3
    assert keep(6, 700.0, 1, 2100.0, 1900.0, 4200.0) == 0
    assert keep(6, 700.0, 0, 2100.0, 0.0, 4200.0) == 1  # one stays while nothing new serves


def test_without_a_reference_only_the_load_lets_old_replicas_go() -> None:
    assert keep(6, 700.0, 1, 2100.0, None, None) == 6
    assert keep(6, 700.0, 1, 2100.0, 3000.0, None) == 4


def test_slow_new_replicas_need_old_ones_until_enough_serve() -> None:
    assert keep(5, 6400.0, 15, 1800.0, 30000.0, 32000.0) == 2  # 17 x 1800 >= 30000
    assert keep(5, 6400.0, 17, 1800.0, 30000.0, 32000.0) == 0
    assert keep(5, 6400.0, 1, 1800.0, 30000.0, 32000.0) == 5  # not enough anywhere: keep what serves


@given(
    st.integers(0, 30),
    st.floats(1.0, 10000.0),
    st.integers(0, 30),
    st.floats(1.0, 10000.0),
    st.one_of(st.none(), st.floats(0.0, 200000.0)),
    st.one_of(st.none(), st.floats(0.0, 200000.0)),
)
def test_the_old_placement_only_shrinks_and_what_is_needed_stays_served(
    old: int, old_capacity: float, new: int, new_capacity: float, rate: float | None, ref: float | None
) -> None:
    kept = keep(old, old_capacity, new, new_capacity, rate, ref)
    assert 0 <= kept <= old
    need = mixed_capacity(old, old_capacity, new, new_capacity) if ref is None else ref
    if rate is not None:
        need = min(need, rate)
    served = mixed_capacity(kept, old_capacity, new, new_capacity)
    assert served >= need - 1e-6 or kept == old
    if new == 0 and old > 0:
        assert kept >= 1


def test_replica_capacities_are_the_policys_estimate() -> None:
    table = make_table()
    capacities = replica_capacities(make_spec(), table, PolicyState())
    assert capacities
    for placement, capacity in capacities.items():
        assert 0.0 < capacity <= table.capacity(placement.tier, placement.node_pool, 25.0, 99.0)
