"""Vendor a small, deterministic sample of Dynosaur's published task specs for the tests.

Whole `task_name`s are taken (every task of a name), so the sample judges each name as the full file does,
paraphrase groups included. Chosen, in this order, until about `--size` tasks:
- every `glue-<config>` task name (the GLUE label tasks the filter must keep, with their options);
- two `codeparrot/xlcost` names (code from a description, and a description from code: kept);
- for every known-bad output name (dynosaur.pipeline.paper_tasks), the first task name that uses it (three
  for bad targets, three for multi-output tasks);
- task names with the largest paraphrase groups (same inputs and output, reworded instructions);
- then task names drawn with a fixed seed.

    python scripts/sample_paper_tasks.py ../shared/data/dynosaur/instructions-full.json \
        tests/fixtures/dynosaur/instructions-sample.json
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from dynosaur.pipeline.paper_tasks import PaperTask, known_bad

# Task names per known-bad output name (multi-output tasks: per category, their output lists vary).
PER_BAD_NAME = {"multi_output": 3, "bad_target": 3}
PARAPHRASE_NAMES = 8


def sample(entries: list[dict], size: int, seed: int = 0) -> list[dict]:
    by_name: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_name[e["task_name"]].append(e)
    labels = [known_bad(PaperTask.model_validate(e)) for e in entries]
    chosen: dict[str, None] = {}

    def take(names: list[str]) -> None:
        for name in names:
            if sum(len(by_name[n]) for n in chosen) >= size:
                return
            chosen.setdefault(name)

    take(sorted(n for n in by_name if n.startswith("glue-")))
    take(sorted(n for n in by_name if n.startswith("codeparrot/xlcost"))[:2])
    bad_names: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e, category in zip(entries, labels, strict=True):
        if category:
            key = (category, "" if category == "multi_output" else e["output_field"][0])
            if e["task_name"] not in bad_names[key]:
                bad_names[key].append(e["task_name"])
    take([n for (category, _), names in bad_names.items() for n in names[: PER_BAD_NAME.get(category, 1)]])
    groups = Counter(
        (e["task_name"], frozenset(e["input_fields"]), tuple(e["output_field"]))
        for e, category in zip(entries, labels, strict=True)
        if category is None
    )
    largest = dict.fromkeys(name for (name, _, _), n in groups.most_common() if n > 2)
    take(list(largest)[:PARAPHRASE_NAMES])
    rest = sorted(set(by_name) - set(chosen))
    random.Random(seed).shuffle(rest)
    take(rest)
    keep = set(chosen)
    return [e for e in entries if e["task_name"] in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=300)
    args = parser.parse_args()
    entries = json.loads(args.source.read_text(encoding="utf-8"))
    picked = sample(entries, args.size)
    args.out.write_text(json.dumps(picked, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(picked)} tasks over {len({e['task_name'] for e in picked})} task names → {args.out}")


if __name__ == "__main__":
    main()
