"""Replay selection for continual instruction tuning: which earlier tasks to train again with a new release.

The corpus grows release by release; training stage by stage on each release's new tasks forgets the old
ones unless a few earlier tasks are replayed (Dynosaur, EMNLP 2023). `select_replay` picks `k` of them from
the pool of earlier tasks. Selectors are pure: embeddings come in as numpy arrays whose rows are aligned
with the pool list (instruction embeddings from all-MiniLM-L6-v2, input embeddings e.g. the mean embedding of
a task's inputs; computing them is the caller's job). Similarity is cosine on L2-normalised rows, distance is
1 - cosine. Ties go to the lower index, so callers should pass the pool in a stable order (by task id).

Strategies:
- `none`: no replay.
- `random`: `k` tasks drawn without replacement by `numpy.random.default_rng(seed)`.
- `instr_diverse`: k-center greedy over instruction embeddings (`k_center_greedy`).
- `data_diverse`: k-center greedy over input embeddings.
- `instr_similar`: the `k` earlier tasks with the highest cosine similarity to *any* new-stage instruction.
- `instr_support`: every new-stage task gets its own nearest earlier task. Picks come in rounds; within a
  round, the (new task, earlier task) pair with the highest cosine similarity is taken first, among new tasks
  not yet served in this round and earlier tasks not yet chosen, until every new task is served once or the
  budget is spent; then the next round starts. With `k >= #new tasks` each new task gets one support (its
  nearest earlier task, or its next nearest when a better-matched new task claimed that one first); with
  `k < #new tasks` the `k` best-supported new tasks get one each. Unlike `instr_similar`, one cluster of new
  tasks cannot take the whole budget.

Every pick carries a `why`, and the plan reports coverage: over the pool, the cosine distance from each task
to its nearest chosen task (max and mean), in the space the strategy works in (instruction embeddings, or
input embeddings for `data_diverse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import STRATEGIES
from dynosaur.core.records import Record

NEEDS_NEW = frozenset({"instr_similar", "instr_support"})


class ReplayCandidate(Record):
    """An earlier task that may be replayed. Its embeddings are rows of arrays aligned with the pool."""

    task_id: str
    source_id: str
    instruction: str


class ReplayPick(Record):
    task_id: str
    source_id: str
    instruction: str
    why: str


class ReplayCoverage(Record):
    """How well the picks cover the pool: cosine distance from each pool task to its nearest pick."""

    space: Literal["instruction", "input"]
    max_distance: float
    mean_distance: float


class ReplayPlan(Record):
    strategy: str
    k: int
    seed: int
    chosen: list[ReplayPick] = []
    coverage: ReplayCoverage | None = None  # None when nothing is chosen or no embeddings were given


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised float64 rows; an all-zero row stays zero (cosine 0 to everything)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _k_center(embeddings: np.ndarray, k: int, seed: int) -> tuple[list[int], list[float]]:
    """Indices in pick order and, for each, its min cosine distance to the earlier picks (first: nan)."""
    x = normalize_rows(embeddings)
    n = len(x)
    if not 0 <= k <= n:
        raise ParamsError(f"k-center budget {k} must be between 0 and the number of points ({n})")
    if k == 0:
        return [], []
    picks = [int(np.random.default_rng(seed).integers(n))]
    gaps = [float("nan")]
    min_dist = 1.0 - x @ x[picks[0]]
    for _ in range(1, k):
        min_dist[picks] = -np.inf  # chosen points never win, even against float noise below zero
        nxt = int(np.argmax(min_dist))  # argmax returns the first maximum: ties go to the lower index
        picks.append(nxt)
        gaps.append(float(min_dist[nxt]))
        min_dist = np.minimum(min_dist, 1.0 - x @ x[nxt])
    return picks, gaps


def k_center_greedy(embeddings: np.ndarray, k: int, *, seed: int) -> list[int]:
    """Indices of `k` rows that spread over the embedding space (greedy 2-approximation of k-center).

    The first center is drawn by `default_rng(seed)`, as in the classic algorithm (so seeds give different,
    equally valid covers); then each step takes the row with the largest cosine distance to its nearest
    chosen center, ties going to the lower index.
    """
    return _k_center(embeddings, k, seed)[0]


def _check_emb(name: str, emb: np.ndarray | None, rows: int | None, strategy: str) -> np.ndarray:
    if emb is None:
        raise ValueError(f"replay strategy {strategy!r} needs {name}")
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or (rows is not None and emb.shape[0] != rows) or not np.isfinite(emb).all():
        want = f"{rows} rows" if rows is not None else "rows"
        raise ValueError(f"{name} must be a finite 2-D array with {want}, got shape {emb.shape}")
    return emb


def _coverage(space: Literal["instruction", "input"], emb: np.ndarray, picks: list[int]) -> ReplayCoverage:
    x = normalize_rows(emb)
    nearest = (1.0 - x @ x[picks].T).min(axis=1).clip(min=0.0)
    return ReplayCoverage(
        space=space,
        max_distance=round(float(nearest.max()), 6),
        mean_distance=round(float(nearest.mean()), 6),
    )


def _name(new_ids: Sequence[str] | None, j: int) -> str:
    return new_ids[j] if new_ids is not None else f"#{j}"


def _similar(sim: np.ndarray, k: int, new_ids: Sequence[str] | None) -> tuple[list[int], list[str]]:
    best = sim.max(axis=0)
    order = np.argsort(-best, kind="stable")[:k]  # stable: ties go to the lower pool index
    whys = [
        f"nearest to new task {_name(new_ids, int(sim[:, i].argmax()))}: cosine {best[i]:.2f}" for i in order
    ]
    return [int(i) for i in order], whys


def _support(sim: np.ndarray, k: int, new_ids: Sequence[str] | None) -> tuple[list[int], list[str]]:
    n_new, n_pool = sim.shape
    pairs = np.argsort(-sim, axis=None, kind="stable")  # all (new, pool) pairs, best first; ties by index
    picks: list[int] = []
    whys: list[str] = []
    taken = np.zeros(n_pool, dtype=bool)
    rnd = 0
    while len(picks) < k:
        rnd += 1
        served = np.zeros(n_new, dtype=bool)
        for flat in pairs:
            j, i = divmod(int(flat), n_pool)
            if served[j] or taken[i]:
                continue
            served[j] = taken[i] = True
            picks.append(i)
            whys.append(f"support for new task {_name(new_ids, j)} (round {rnd}): cosine {sim[j, i]:.2f}")
            if len(picks) == k or served.all():
                break
    return picks, whys


def select_replay(
    strategy: str,
    pool: list[ReplayCandidate],
    k: int,
    *,
    seed: int,
    pool_instr_emb: np.ndarray | None = None,
    pool_input_emb: np.ndarray | None = None,
    new_instruction_emb: np.ndarray | None = None,
    new_task_ids: Sequence[str] | None = None,
) -> ReplayPlan:
    """Choose `k` earlier tasks to replay with `strategy` (see the module docstring for each strategy).

    Args:
        pool_instr_emb: one row per pool task (instruction embeddings); needed by every strategy but
            `none`, `random` and `data_diverse` (which use it for coverage when given).
        pool_input_emb: one row per pool task (input embeddings); needed by `data_diverse`.
        new_instruction_emb: one row per new-stage task; needed by `instr_similar` and `instr_support`.
        new_task_ids: names the new-stage tasks in `why` (default: their row numbers, `#0`, `#1`, ...).

    Raises ParamsError for an unknown strategy or a budget out of range, ValueError (a caller bug) for
    missing or misshapen embeddings.
    """
    if strategy not in STRATEGIES:
        raise ParamsError(f"unknown replay strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if k < 0:
        raise ParamsError(f"replay budget {k} is negative; use 0 or more")
    if strategy == "none" or k == 0:
        return ReplayPlan(strategy=strategy, k=k, seed=seed)
    if k > len(pool):
        raise ParamsError(f"replay budget {k} is larger than the pool of {len(pool)} earlier tasks")
    n = len(pool)
    instr = None if pool_instr_emb is None else _check_emb("pool_instr_emb", pool_instr_emb, n, strategy)
    space: Literal["instruction", "input"] = "instruction"
    cover = instr
    if strategy == "random":
        picks = sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=k, replace=False))
        whys = [f"random draw with seed {seed}"] * k
    elif strategy in ("instr_diverse", "data_diverse"):
        if strategy == "data_diverse":
            space, cover = "input", _check_emb("pool_input_emb", pool_input_emb, n, strategy)
        else:
            cover = _check_emb("pool_instr_emb", instr, n, strategy)
        picks, gaps = _k_center(cover, k, seed)
        first = f"k-center pick 1 over {space} embeddings: first center, drawn with seed {seed}"
        whys = [first] + [
            f"k-center pick {p} over {space} embeddings: min cosine distance {g:.2f} to earlier picks"
            for p, g in enumerate(gaps[1:], 2)
        ]
    else:
        instr = _check_emb("pool_instr_emb", instr, n, strategy)
        new = _check_emb("new_instruction_emb", new_instruction_emb, None, strategy)
        if new.shape[1] != instr.shape[1] or len(new) == 0:
            raise ValueError(
                f"new_instruction_emb has shape {new.shape}; pool rows have width {instr.shape[1]}"
            )
        if new_task_ids is not None and len(new_task_ids) != len(new):
            raise ValueError(f"{len(new_task_ids)} new_task_ids for {len(new)} new_instruction_emb rows")
        sim = normalize_rows(new) @ normalize_rows(instr).T
        picks, whys = (_similar if strategy == "instr_similar" else _support)(sim, k, new_task_ids)
    chosen = [
        ReplayPick(
            task_id=pool[i].task_id, source_id=pool[i].source_id, instruction=pool[i].instruction, why=w
        )
        for i, w in zip(picks, whys, strict=True)
    ]
    coverage = None if cover is None else _coverage(space, cover, picks)
    return ReplayPlan(strategy=strategy, k=k, seed=seed, chosen=chosen, coverage=coverage)
