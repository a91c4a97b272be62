"""Replay plans over releases: which tasks a release adds, which earlier tasks may be replayed, and which are.

Definitions (shared by `dyno replay-plan` and the continual run in `dynosaur.training.continual`):
- A task is named across source revisions by its manifest `identity` (source, instruction, inputs, output),
  so a task whose source got a new revision is the same task, not a new one.
- The NEW tasks of a stage are the tasks in its release's manifest whose identity is not in the previous
  stage's release (`dyno replay-plan --release vN`: not in v(N-1)).
- The POOL is the earlier tasks still relevant: the union of the earlier releases' manifests (v1..v(N-1)),
  one entry per identity (its latest version), less the tasks retracted since (task or source tombstones in
  `ledger/retractions.jsonl`) and less the new tasks themselves. Ordered by task id, for stable ties.

Instructions come from the TaskVersion records (`ledger/tasks.jsonl`), as proposed (without the label options
that instances append). Embeddings come from `dynosaur.training.embed` (all-MiniLM-L6-v2). `data_diverse` needs input
embeddings: the mean embedding of the first 5 inputs of each pool task's shard, read from the local DVC cache
(`.dvc/cache/files/md5/<md5[:2]>/<md5[2:]>`, the manifest's `shard_md5`); when a shard is not cached there,
the plan falls back to instruction embeddings and says so in `note`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynosaur.core.errors import ParamsError, TrainingError
from dynosaur.core.records import ManifestEntry, Record, Release, Retraction, RetractionIndex, TaskVersion
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.vcs import ObjectStore
from dynosaur.training.replay import (
    NEEDS_NEW,
    STRATEGIES,
    ReplayCandidate,
    ReplayPlan,
    normalize_rows,
    select_replay,
)

INPUT_ROWS = 5  # inputs per task for `data_diverse`


class StageTask(Record):
    """A task of a release, with what replay selection and training need to find it."""

    task_id: str
    source_id: str
    identity: str
    instruction: str
    shard: str
    shard_md5: str | None = None
    release: str  # the tag of the release it was taken from


class Neighbour(Record):
    """A chosen earlier task's nearest new task (cosine similarity of their instructions)."""

    task_id: str
    new_task_id: str
    cosine: float


class ReplayPlanReport(Record):
    release: str
    earlier: list[str]  # the earlier releases the pool comes from
    new_tasks: list[str]
    pool: int
    plan: ReplayPlan
    neighbours: list[Neighbour] = []  # one per chosen task, in plan order (empty without new tasks)
    note: str | None = None


def release_tasks(ledger: Ledger, release: Release, instructions: dict[str, str]) -> list[StageTask]:
    """A release's tasks in manifest (task id) order."""
    return [_stage_task(e, release.tag, instructions) for e in ledger.read_manifest(release)]


def _stage_task(entry: ManifestEntry, tag: str, instructions: dict[str, str]) -> StageTask:
    try:
        instruction = instructions[entry.task_id]
    except KeyError:
        raise TrainingError(f"task {entry.task_id} of {tag} has no record in ledger/tasks.jsonl") from None
    return StageTask(
        task_id=entry.task_id,
        source_id=entry.source_id,
        identity=entry.identity,
        instruction=instruction,
        shard=entry.shard,
        shard_md5=entry.shard_md5,
        release=tag,
    )


def task_instructions(ledger: Ledger) -> dict[str, str]:
    return {t.task_id: t.instruction for t in ledger.read(TaskVersion)}


def new_tasks(current: Sequence[StageTask], previous: Sequence[StageTask]) -> list[StageTask]:
    """Tasks of `current` whose identity is not in `previous`."""
    seen = {t.identity for t in previous}
    return [t for t in current if t.identity not in seen]


def replay_pool(
    earlier: Sequence[Sequence[StageTask]], new: Sequence[StageTask], retractions: Sequence[Retraction]
) -> list[StageTask]:
    """Earlier tasks still relevant: one per identity (the latest), not retracted, not new; by task id."""
    latest: dict[str, StageTask] = {}
    for tasks in earlier:
        for t in tasks:
            latest[t.identity] = t
    gone = RetractionIndex(retractions)
    fresh = {t.identity for t in new}
    return sorted(
        (
            t
            for t in latest.values()
            if t.identity not in fresh and gone.task(t.task_id, t.identity, t.source_id) is None
        ),
        key=lambda t: t.task_id,
    )


def shard_inputs(store: ObjectStore, task: StageTask, n: int = INPUT_ROWS) -> list[str] | None:
    """The first `n` inputs of a task's shard from the local DVC cache; None when it is not cached."""
    if not task.shard_md5:
        return None
    path = store.path(task.shard_md5)
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=n, columns=["input"]), None)
    except (OSError, ValueError):  # a damaged cache object: `dyno verify` names it; here, fall back
        return None
    return [] if batch is None else [str(v or "") for v in batch.column(0).to_pylist()]


def plan_replay(
    strategy: str, pool: list[StageTask], new: list[StageTask], k: int, *, seed: int, root: Path | None = None
) -> tuple[ReplayPlan, list[Neighbour], str | None]:
    """Embed what `strategy` needs and select `k` pool tasks: (plan, nearest new task per pick, note)."""
    from dynosaur.training.embed import embed

    check_request(strategy, k, len(pool))
    if strategy == "none" or k == 0:
        return select_replay(strategy, [], k, seed=seed), [], None
    if strategy in NEEDS_NEW and not new:
        raise TrainingError(f"replay strategy {strategy!r} needs new tasks, and this stage adds none")
    candidates = [
        ReplayCandidate(task_id=t.task_id, source_id=t.source_id, instruction=t.instruction) for t in pool
    ]
    pool_emb = embed([t.instruction for t in pool])
    new_emb = embed([t.instruction for t in new])
    input_emb, note = None, None
    if strategy == "data_diverse":
        input_emb, note = _input_embeddings(root, pool, pool_emb)
    plan = select_replay(
        strategy,
        candidates,
        k,
        seed=seed,
        pool_instr_emb=pool_emb,
        pool_input_emb=input_emb,
        new_instruction_emb=new_emb if new else None,
        new_task_ids=[t.task_id for t in new] if new else None,
    )
    return plan, _neighbours(plan, pool, pool_emb, new, new_emb), note


def check_request(strategy: str, k: int, pool_size: int | None = None) -> None:
    """`select_replay`'s checks, made before any embedding (the budget only once the pool size is known)."""
    if strategy not in STRATEGIES:
        raise ParamsError(f"unknown replay strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if k < 0:
        raise ParamsError(f"replay budget {k} is negative; use 0 or more")
    if pool_size is not None and strategy != "none" and k > pool_size:
        raise ParamsError(f"replay budget {k} is larger than the pool of {pool_size} earlier tasks")


def _input_embeddings(
    root: Path | None, pool: list[StageTask], fallback: np.ndarray
) -> tuple[np.ndarray, str | None]:
    """Per pool task, the mean embedding of its first inputs; the fallback (with a note) if any is missing."""
    from dynosaur.training.embed import embed

    store = ObjectStore(root) if root is not None else None
    inputs = [shard_inputs(store, t) if store is not None else None for t in pool]
    missing = [t.task_id for t, rows in zip(pool, inputs, strict=True) if not rows]
    if missing:
        note = (
            f"{len(missing)} of {len(pool)} pool shards are not in the local DVC cache (first: task"
            f" {missing[0]}): data_diverse used instruction embeddings instead (`dvc pull` them to fix)"
        )
        return fallback, note
    flat = [text for rows in inputs for text in rows or []]
    emb = embed(flat)
    means, start = [], 0
    for rows in inputs:
        means.append(emb[start : start + len(rows or [])].mean(axis=0))
        start += len(rows or [])
    return np.stack(means), None


def _neighbours(
    plan: ReplayPlan, pool: list[StageTask], pool_emb: np.ndarray, new: list[StageTask], new_emb: np.ndarray
) -> list[Neighbour]:
    if not new or not plan.chosen:
        return []
    index = {t.task_id: i for i, t in enumerate(pool)}
    rows = [index[p.task_id] for p in plan.chosen]
    sim = normalize_rows(pool_emb[rows]) @ normalize_rows(new_emb).T
    best = sim.argmax(axis=1)
    return [
        Neighbour(task_id=p.task_id, new_task_id=new[int(j)].task_id, cosine=round(float(sim[i, j]), 4))
        for i, (p, j) in enumerate(zip(plan.chosen, best, strict=True))
    ]


def replay_plan(root: Path, release: str, strategy: str, k: int, seed: int = 0) -> ReplayPlanReport:
    """Which earlier tasks `strategy` would replay with release `release`'s new tasks, and why."""
    ledger = Ledger(root)
    current = ledger.release(release)
    earlier = [r for r in ledger.releases() if r.version < current.version]
    if not earlier:
        raise TrainingError(f"{current.tag} has no earlier releases to replay from")
    check_request(strategy, k)
    instructions = task_instructions(ledger)
    earlier_tasks = [release_tasks(ledger, r, instructions) for r in earlier]
    new = new_tasks(release_tasks(ledger, current, instructions), earlier_tasks[-1])
    pool = replay_pool(earlier_tasks, new, ledger.read(Retraction))
    plan, neighbours, note = plan_replay(strategy, pool, new, k, seed=seed, root=root)
    return ReplayPlanReport(
        release=current.tag,
        earlier=[r.tag for r in earlier],
        new_tasks=[t.task_id for t in new],
        pool=len(pool),
        plan=plan,
        neighbours=neighbours,
        note=note,
    )
