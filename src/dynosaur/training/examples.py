"""The training examples: read from corpus shards, grouped by task, split into training and held-out
instances, and turned into prompts (`alpaca` or `plain`) and token ids with a completion mask. Pure, but for
reading shards; the train, evaluate and continual stages share them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dynosaur.core.errors import ParamsError
from dynosaur.core.records import Record
from dynosaur.training.evaluation import is_classification

COLUMNS = ["instruction", "input", "output", "task_id", "source_id"]

ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
PLAIN = "{instruction}\n\nInput: {input}\n\nOutput: "
PLAIN_NO_INPUT = "{instruction}\n\nOutput: "
PROMPT_FORMATS = {"alpaca": (ALPACA, ALPACA_NO_INPUT), "plain": (PLAIN, PLAIN_NO_INPUT)}


class Example(Record):
    task_id: str
    source_id: str
    instruction: str
    input: str
    output: str


class EvalSet(Record):
    """What the evaluate stage scores: held-out instances of trained tasks, and the unseen tasks."""

    heldout: dict[str, list[Example]]
    unseen: dict[str, list[Example]]
    label_options: dict[str, list[str]]  # classification-like tasks: their distinct outputs


def _task_seed(seed: int, task_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(task_id.encode()).hexdigest()[:15], 16)])


def corpus_sources(corpus_dir: Path) -> list[str]:
    return sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def load_examples(
    corpus_dir: Path,
    *,
    exclude_sources: set[str] | frozenset[str] = frozenset(),
    only_sources: set[str] | frozenset[str] | None = None,
    max_per_task: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Every instance of the corpus shards `<corpus>/<source>/<task>.parquet`, in shard then row order.

    With `max_per_task`, a task with more instances keeps a sample drawn with (seed, task id), in row order.
    """
    examples: list[Example] = []
    for shard in sorted(corpus_dir.glob("*/*.parquet")):
        source = shard.parent.name
        if source in exclude_sources or (only_sources is not None and source not in only_sources):
            continue
        rows = pq.read_table(shard, columns=COLUMNS).to_pylist()
        if max_per_task is not None and len(rows) > max_per_task:
            rng = _task_seed(seed, rows[0]["task_id"])
            keep = np.sort(rng.choice(len(rows), max_per_task, replace=False))
            rows = [rows[i] for i in keep]
        examples.extend(Example(**{k: r[k] or "" for k in COLUMNS}) for r in rows)
    return examples


def group_by_task(examples: Sequence[Example]) -> dict[str, list[Example]]:
    tasks: dict[str, list[Example]] = {}
    for ex in examples:
        tasks.setdefault(ex.task_id, []).append(ex)
    return tasks


def split_holdout(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], dict[str, list[Example]]]:
    """(training examples, held-out examples per task): per task, `round(n × fraction)` instances, at least
    one when `fraction > 0`, never all of them; drawn with (seed, task id). Both keep the input order.

    Duplicates of a held-out instance (same task, input and output) are dropped from training, so a held-out
    instance is never trained on under another row number."""
    train: list[Example] = []
    heldout: dict[str, list[Example]] = {}
    for task_id, items in group_by_task(examples).items():
        n = len(items)
        k = min(n - 1, max(1, round(n * fraction))) if fraction > 0 else 0
        held = set(_task_seed(seed, task_id).choice(n, k, replace=False).tolist()) if k > 0 else set()
        if held:
            heldout[task_id] = [ex for i, ex in enumerate(items) if i in held]
        seen = set(heldout.get(task_id, []))
        train.extend(ex for i, ex in enumerate(items) if i not in held and ex not in seen)
    return train, heldout


def label_options(tasks: dict[str, list[Example]]) -> dict[str, list[str]]:
    """The distinct outputs of each classification-like task (few, short), by `dynosaur.training.evaluation`'s rule."""
    return {
        task_id: sorted({ex.output for ex in items})
        for task_id, items in sorted(tasks.items())
        if is_classification([ex.output for ex in items], None)
    }


def format_prompt(instruction: str | Example, input: str = "", fmt: str = "alpaca") -> str:
    """The prompt the model completes: `alpaca` (Stanford Alpaca's template) or `plain`."""
    if isinstance(instruction, Example):
        example = instruction
        instruction, input = example.instruction, example.input
    try:
        with_input, without = PROMPT_FORMATS[fmt]
    except KeyError:
        raise ParamsError(f"unknown prompt format {fmt!r} (known: {', '.join(PROMPT_FORMATS)})") from None
    template = with_input if input.strip() else without
    return template.format(instruction=instruction.strip(), input=input.strip())


def encode_example(
    prompt_ids: list[int], response_ids: list[int], eos_id: int, max_length: int
) -> tuple[list[int], list[int]] | None:
    """(input ids, completion mask): 0 over the prompt, 1 over the response and eos, which the loss covers;
    None when the prompt leaves no room to learn."""
    if len(prompt_ids) >= max_length:
        return None
    ids = (prompt_ids + response_ids + [eos_id])[:max_length]
    return ids, [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))
