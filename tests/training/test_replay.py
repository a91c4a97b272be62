"""`dynosaur.training.replay`: each strategy on hand-made embeddings, determinism, coverage, and the budget errors."""

from __future__ import annotations

import numpy as np
import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.training.replay import STRATEGIES, ReplayCandidate, k_center_greedy, select_replay

E1, E2, E3 = np.eye(3)


def make_pool(n: int) -> list[ReplayCandidate]:
    return [
        ReplayCandidate(task_id=f"t{i:02d}", source_id=f"s{i % 2}", instruction=f"task {i}") for i in range(n)
    ]


def clusters(seed: int = 0) -> np.ndarray:
    """Nine points, three per axis, interleaved: rows 0, 3, 6 near e1; 1, 4, 7 near e2; 2, 5, 8 near e3."""
    noise = np.random.default_rng(seed).normal(scale=0.05, size=(9, 3))
    return np.array([E1, E2, E3] * 3) + noise


def cluster_of(i: int) -> int:
    return i % 3


def ids(plan) -> list[str]:
    return [p.task_id for p in plan.chosen]


# --- k-center greedy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_k_center_picks_one_point_per_cluster(seed: int):
    picks = k_center_greedy(clusters(), 3, seed=seed)
    assert len(set(picks)) == 3
    assert sorted(cluster_of(i) for i in picks) == [0, 1, 2]


def test_k_center_is_deterministic_per_seed_and_takes_the_farthest_point():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]])
    assert k_center_greedy(x, 4, seed=3) == k_center_greedy(x, 4, seed=3)
    first = k_center_greedy(x, 1, seed=3)[0]
    picks = k_center_greedy(x, 2, seed=3)
    assert picks[0] == first
    # Whatever the first center, the second is the point at the largest cosine distance from it.
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert picks[1] == int(np.argmax(1 - unit @ unit[first]))


def test_k_center_ties_go_to_the_lower_index():
    same = np.ones((5, 4))
    picks = k_center_greedy(same, 5, seed=0)
    assert sorted(picks) == [0, 1, 2, 3, 4]
    assert picks[1:] == sorted(picks[1:])


def test_k_center_budget_out_of_range():
    assert k_center_greedy(clusters(), 0, seed=0) == []
    with pytest.raises(ParamsError):
        k_center_greedy(clusters(), 10, seed=0)


def test_instr_diverse_uses_instruction_embeddings_and_reports_coverage():
    plan = select_replay("instr_diverse", make_pool(9), 3, seed=0, pool_instr_emb=clusters())
    assert sorted(cluster_of(int(t[1:])) for t in ids(plan)) == [0, 1, 2]
    assert plan.chosen[0].why.startswith("k-center pick 1 over instruction embeddings: first center")
    assert "k-center pick 2 over instruction embeddings: min cosine distance" in plan.chosen[1].why
    assert plan.coverage is not None and plan.coverage.space == "instruction"
    assert plan.coverage.max_distance < 0.05  # every point is near a pick of its own cluster
    assert 0 <= plan.coverage.mean_distance <= plan.coverage.max_distance


def test_data_diverse_uses_input_embeddings():
    same_instructions = np.tile([1.0, 0.0, 0.0], (9, 1))
    plan = select_replay(
        "data_diverse", make_pool(9), 3, seed=1, pool_instr_emb=same_instructions, pool_input_emb=clusters()
    )
    assert sorted(cluster_of(int(t[1:])) for t in ids(plan)) == [0, 1, 2]
    assert "over input embeddings" in plan.chosen[1].why
    assert plan.coverage is not None and plan.coverage.space == "input"
    with pytest.raises(ValueError, match="pool_input_emb"):
        select_replay("data_diverse", make_pool(9), 3, seed=1, pool_instr_emb=same_instructions)


# --- similarity to the new stage -----------------------------------------------------------------------


def test_instr_similar_picks_the_earlier_tasks_nearest_the_new_stage():
    new = np.array([[0.1, 1.0, 0.0]])
    plan = select_replay(
        "instr_similar",
        make_pool(9),
        3,
        seed=0,
        pool_instr_emb=clusters(),
        new_instruction_emb=new,
        new_task_ids=["abc"],
    )
    assert sorted(ids(plan)) == ["t01", "t04", "t07"]
    prefix = "nearest to new task abc: cosine "
    assert all(p.why.startswith(prefix) and float(p.why[len(prefix) :]) > 0.9 for p in plan.chosen)


def support_setup() -> tuple[np.ndarray, np.ndarray]:
    """Pool rows 0-2 very close to new task n1; rows 3-4 fairly close to new task n2; row 5 far from both."""
    pool = np.array(
        [[1.0, 0.01, 0], [1.0, 0.05, 0], [1.0, 0.1, 0], [0, 0.5, 1.0], [0, 0.6, 1.0], [0, 1.0, 0]]
    )
    new = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return pool, new


def test_instr_support_gives_each_new_task_its_nearest_earlier_task():
    pool, new = support_setup()
    args = {"seed": 0, "pool_instr_emb": pool, "new_instruction_emb": new, "new_task_ids": ["n1", "n2"]}
    similar = select_replay("instr_similar", make_pool(6), 2, **args)
    assert ids(similar) == ["t00", "t01"]  # both near n1: n2 gets nothing
    support = select_replay("instr_support", make_pool(6), 2, **args)
    assert ids(support) == ["t00", "t03"]
    assert support.chosen[0].why.startswith("support for new task n1 (round 1): cosine 1.00")
    assert support.chosen[1].why.startswith("support for new task n2 (round 1): cosine 0.89")
    # A second round serves each new task again with its next nearest.
    assert ids(select_replay("instr_support", make_pool(6), 4, **args)) == ["t00", "t03", "t01", "t04"]


def test_instr_support_resolves_a_shared_nearest_task_by_similarity():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    new = np.array([[0.7, 0.7], [0.8, 0.6]])  # both nearest to row 2; the first is closer to it
    plan = select_replay(
        "instr_support", make_pool(3), 2, seed=0, pool_instr_emb=pool, new_instruction_emb=new
    )
    assert ids(plan) == ["t02", "t00"]
    assert "new task #0" in plan.chosen[0].why and "new task #1" in plan.chosen[1].why


@pytest.mark.parametrize("strategy", ["instr_similar", "instr_support"])
def test_new_stage_strategies_need_new_embeddings(strategy: str):
    with pytest.raises(ValueError, match="new_instruction_emb"):
        select_replay(strategy, make_pool(9), 2, seed=0, pool_instr_emb=clusters())


# --- random, none, budgets -----------------------------------------------------------------------------


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    pool = make_pool(30)
    a, b = (select_replay("random", pool, 5, seed=7) for _ in range(2))
    assert a == b and len(set(ids(a))) == 5
    assert any(ids(select_replay("random", pool, 5, seed=s)) != ids(a) for s in range(8, 11))
    assert all(p.why == "random draw with seed 7" for p in a.chosen)
    assert a.coverage is None  # no embeddings given
    emb = np.random.default_rng(0).normal(size=(30, 4))
    assert select_replay("random", pool, 5, seed=7, pool_instr_emb=emb).coverage is not None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_budget_is_an_empty_plan(strategy: str):
    plan = select_replay(strategy, make_pool(3), 0, seed=0)
    assert (plan.chosen, plan.coverage, plan.k) == ([], None, 0)


def test_strategy_none_is_an_empty_plan():
    plan = select_replay("none", make_pool(3), 2, seed=0)
    assert plan.strategy == "none" and plan.chosen == []


def test_budget_larger_than_the_pool():
    with pytest.raises(ParamsError) as exc:
        select_replay("random", make_pool(3), 4, seed=0)
    assert exc.value.exit_code == 2
    assert str(exc.value) == "replay budget 4 is larger than the pool of 3 earlier tasks"


def test_unknown_strategy_names_it_and_the_known_ones():
    with pytest.raises(ParamsError) as exc:
        select_replay("instr_diversity", make_pool(3), 1, seed=0)
    assert exc.value.exit_code == 2
    assert "'instr_diversity'" in str(exc.value) and all(s in str(exc.value) for s in STRATEGIES)


def test_negative_budget():
    with pytest.raises(ParamsError) as exc:
        select_replay("random", make_pool(3), -1, seed=0)
    assert exc.value.exit_code == 2 and "-1" in str(exc.value)


def test_misaligned_embeddings_are_a_caller_bug():
    with pytest.raises(ValueError, match="9 rows"):
        select_replay("instr_diverse", make_pool(9), 2, seed=0, pool_instr_emb=clusters()[:8])


def test_plan_is_json_serialisable_and_stable():
    plan = select_replay("instr_diverse", make_pool(9), 3, seed=0, pool_instr_emb=clusters())
    again = select_replay("instr_diverse", make_pool(9), 3, seed=0, pool_instr_emb=clusters())
    assert plan.model_dump_json() == again.model_dump_json()
    assert type(plan).model_validate_json(plan.model_dump_json()) == plan
