"""Near-duplicate tasks: ROUGE-L between instructions, and one task kept per group of near duplicates.

Self-Instruct (Wang et al., 2023) keeps a generated instruction only when its ROUGE-L with every instruction
kept so far is below 0.7. Here two tasks of one source are near duplicates only when they also read the same
input fields (as a set) and write the same output field: then their instances are the very same (input, output)
pairs and only the instruction's wording differs, so the second one adds no example, only a rewording. Tasks
over different fields are never near duplicates, however alike their instructions read.

ROUGE-L here is the F1 of the longest common subsequence of word tokens, as `rouge_score` computes it with
its default tokenizer (lower case, no stemming), except that words are Unicode letters and digits rather than
ASCII only, so instructions in other scripts compare too. It is small and pure on purpose: the pipeline never
imports the training extras.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dynosaur.core.records import Task

WORD = re.compile(r"[^\W_]+")

Mapping = tuple[frozenset[str], str]


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) · len(b)) time and O(len(b)) memory."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 between two texts on word tokens: 1.0 for the same words in the same order."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 1.0 if wa == wb else 0.0
    common = lcs_length(wa, wb)
    if common == 0:
        return 0.0
    precision, recall = common / len(wa), common / len(wb)
    return 2 * precision * recall / (precision + recall)


def mapping(task: Task) -> Mapping:
    """What a task's instances are made of: its input fields as a set, and its output field."""
    return frozenset(task.input_fields), task.output_field


def merge_near_duplicates(tasks: Sequence[Task], threshold: float) -> list[Task]:
    """Keep the first valid task of each near-duplicate group; reject the later ones as `near_duplicate`,
    each naming (`duplicate_of`) the kept task it repeats. The order of `tasks` decides which one is kept
    (judge passes proposal order, which is stable), and a task is compared only with tasks kept, so every
    `duplicate_of` names a valid task. `threshold` 0 merges every task that repeats a kept task's fields."""
    kept: dict[Mapping, list[Task]] = {}
    out: list[Task] = []
    for task in tasks:
        if task.verdict == "valid":
            group = kept.setdefault(mapping(task), [])
            original = next((k for k in group if rouge_l(task.instruction, k.instruction) >= threshold), None)
            if original is None:
                group.append(task)
            else:
                task = task.model_copy(
                    update={
                        "verdict": "rejected",
                        "reason": "near_duplicate",
                        "label_options": None,
                        "duplicate_of": original.task_id,
                    }
                )
        out.append(task)
    return out


def near_duplicate_pairs(tasks: Sequence[Task], threshold: float) -> list[tuple[str, str]]:
    """Pairs of valid tasks (task ids, in input order) that `merge_near_duplicates` would merge: what a
    corpus still holds that it should not. Compare tasks of one source at a time."""
    valid = [t for t in tasks if t.verdict == "valid"]
    return [
        (a.task_id, b.task_id)
        for i, a in enumerate(valid)
        for b in valid[i + 1 :]
        if mapping(a) == mapping(b) and rouge_l(a.instruction, b.instruction) >= threshold
    ]
