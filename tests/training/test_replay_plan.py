"""`dynosaur.training.replay_plan`: new tasks, the replay pool and the plan, on hand-made tasks and a fake encoder.

The real encoder and real releases are exercised in tests/stages/test_continual.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynosaur.core.errors import DynoError, ParamsError
from dynosaur.core.records import Retraction
from dynosaur.training import embed as embed_mod
from dynosaur.training.replay_plan import (
    StageTask,
    check_request,
    new_tasks,
    plan_replay,
    replay_pool,
    shard_inputs,
)


def make_stage_task(name: str, **overrides) -> StageTask:
    fields = dict(
        task_id=f"{name:0>16}",
        source_id="alpha",
        identity=f"id-{name}",
        instruction=f"Instruction {name}.",
        shard=f"alpha/{name}.parquet",
        release="v1",
    )
    return StageTask(**(fields | overrides))


def retraction(kind: str, target: str, identity: str | None = None) -> Retraction:
    return Retraction(
        kind=kind, target=target, identity=identity, reason="r", created_at="2026-01-01T00:00:00Z"
    )


@pytest.fixture
def fake_embed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deterministic stand-in for all-MiniLM-L6-v2: a hash-seeded unit vector per text."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=8)
            for t in texts
        ]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 8)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-9)

    monkeypatch.setattr(embed_mod, "embed", embed)


def test_new_tasks_are_named_by_identity_not_task_id():
    a, b = make_stage_task("a"), make_stage_task("b")
    a_new_revision = make_stage_task("a2", identity=a.identity, release="v2")
    c = make_stage_task("c", release="v2")
    assert new_tasks([a_new_revision, c], [a, b]) == [c]


def test_pool_is_the_latest_version_of_earlier_tasks_less_retracted_and_new_ones():
    a, b, c = make_stage_task("a"), make_stage_task("b"), make_stage_task("c", source_id="gone")
    a_v2 = make_stage_task("a9", identity=a.identity, release="v2")
    d, e = make_stage_task("d"), make_stage_task("e")
    pool = replay_pool(
        [[a, b, c, d, e], [a_v2, b, e]],
        new=[make_stage_task("x", identity=e.identity)],
        retractions=[retraction("source", "gone"), retraction("task", "other", identity=d.identity)],
    )
    assert [t.task_id for t in pool] == sorted([a_v2.task_id, b.task_id])


def test_request_checks_come_before_any_embedding():
    with pytest.raises(ParamsError, match="unknown replay strategy 'nope'"):
        check_request("nope", 1)
    with pytest.raises(ParamsError, match="larger than the pool of 2"):
        check_request("random", 3, 2)
    check_request("none", 3, 0)  # no replay: any budget


def test_plan_names_each_picks_nearest_new_task(fake_embed):
    pool = [make_stage_task(n) for n in "abcd"]
    new = [make_stage_task(n, release="v2") for n in "xy"]
    plan, neighbours, note = plan_replay("instr_support", pool, new, 2, seed=0)
    assert note is None and len(plan.chosen) == 2
    assert [n.task_id for n in neighbours] == [p.task_id for p in plan.chosen]
    assert {n.new_task_id for n in neighbours} <= {t.task_id for t in new}
    none, nothing, _ = plan_replay("none", pool, new, 2, seed=0)
    assert (none.chosen, nothing) == ([], [])
    with pytest.raises(DynoError, match="needs new tasks"):
        plan_replay("instr_similar", pool, [], 1, seed=0)


def test_data_diverse_reads_inputs_from_the_dvc_cache_or_falls_back_with_a_note(fake_embed, tmp_path: Path):
    from dvc.repo import Repo

    from dynosaur.registry.vcs import ObjectStore

    Repo.init(str(tmp_path), no_scm=True).close()
    # a custom cache.dir must work: the path comes from DVC, not from a hand-built .dvc/cache
    with open(tmp_path / ".dvc" / "config", "a") as fh:
        fh.write("[cache]\n    dir = ../elsewhere-cache\n")
    store = ObjectStore(tmp_path)
    cached = make_stage_task("a", shard_md5="ab" + "1" * 30)
    obj = store.path("ab" + "1" * 30)
    assert "elsewhere-cache" in obj.parts and ".dvc" not in obj.parts
    obj.parent.mkdir(parents=True)
    pq.write_table(pa.table({"input": [f"row {i}" for i in range(9)], "output": ["o"] * 9}), obj)
    assert shard_inputs(store, cached) == [f"row {i}" for i in range(5)]
    uncached = make_stage_task("b", shard_md5="cd" + "2" * 30)
    assert shard_inputs(store, uncached) is None

    plan, _, note = plan_replay(
        "data_diverse", [cached, make_stage_task("c", shard_md5=None)], [], 1, seed=0, root=tmp_path
    )
    assert plan.coverage.space == "input" and "1 of 2 pool shards are not in the local DVC cache" in note
