"""The filter's figures on the Dynosaur paper's published task specs (`instructions-full.json`, 5,740 tasks).

The published file holds task specs only: `task_name`, `instruction`, `input_fields`, `output_field`. There
are no field statistics and no sample rows, so each `task_name` is judged as one source whose features are
exactly the fields its tasks name (plain strings, no stats, no samples), through the same `judge()` that the
filter stage runs. Rules that read statistics or sample rows can't fire there (`INAPPLICABLE_RULES`), and
`meta_field` and `empty_output` judge names only (`NAME_ONLY_RULES`).

Which tasks are bad is decided here by a labelling of its own (`known_bad`), not by the filter, or the figure
would measure the filter against itself. It is a hand-made list of the output field names that occur in the
file, each read with its instructions, grouped into five categories:
- `multi_output`: more than one output field (one target per instance is the corpus' format);
- `repository_metadata`: a code file's size, path, repository name or licence as the output;
- `code_from_metadata`: a file's code from nothing but such metadata (licence, path, repository, size,
  language);
- `bad_target`: an answer readers voted down, a distractor, a wrong description;
- `bookkeeping`: row ids and indices, record timestamps, page addresses and file names, annotator and worker
  records.
Names the list doesn't hold are not known-bad, so a new field in another file is never counted as bad.

Figures (`PaperTaskFigures`):
- known-bad rejected: the share of known-bad tasks the filter rejects;
- paraphrase groups: tasks that are not known-bad and share a `task_name`, input fields (as a set) and
  output field, two or more to a group: the same (input, output) pairs under reworded instructions. Merged:
  the groups left with at most one kept task;
- redundancy: the share of kept tasks that repeat an earlier kept task's fields within their `task_name`
  (1,517 of 4,874, 31%, before issue 9);
- the rest kept: the share of tasks that are not known-bad which no rule rejects except as a duplicate of a
  task that is kept (`near_duplicate`, `duplicate_instruction`): merged paraphrases are counted above.

    python -m dynosaur.pipeline.paper_tasks PATH [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dynosaur.core.params import PARAMS_FILE, FilterParams, load_params
from dynosaur.core.records import Feature, GeneratedSource, Proposal, SourceMeta, Task, TaskSpec
from dynosaur.pipeline.filter import judge

KNOWN_BAD_CATEGORIES = (
    "multi_output",
    "repository_metadata",
    "code_from_metadata",
    "bad_target",
    "bookkeeping",
)
DUPLICATE_REASONS = frozenset({"near_duplicate", "duplicate_instruction"})
# Rules that need field statistics or sample rows, which the published specs don't have.
INAPPLICABLE_RULES = ("unknown_field", "quotes_sample", "underdetermined_output", "degenerate_label")
# Rules that also read statistics; on the published specs they judge field names only.
NAME_ONLY_RULES = ("empty_output", "meta_field")

# --- the known-bad labelling: output field names of instructions-full.json, read one by one ---------------

REPOSITORY_METADATA = frozenset({"size", "path", "repo_name", "license", "file_path", "filepath"})
CODE_FIELDS = frozenset({"code", "code_text", "content"})
# With a code output, the file's language is metadata too (`language` → `code`: "Extract the language…").
CODE_METADATA_INPUTS = REPOSITORY_METADATA | {"language"}
BAD_TARGETS = frozenset({"downvoted_answer", "distractor", "wrong_description"})
BOOKKEEPING = frozenset(
    {
        # row ids and indices
        "id",
        "Idx",
        "__index_level_0__",
        "Dialogue_ID",
        "conversationId",
        "fold",
        # when the record was made, fetched or scored
        "timestamp",
        "created_timestamp",
        "downloaded_timestamp",
        "created_utc",
        "prediction_ts",
        "CreationDate",
        "published_at",
        # where the record was found
        "url",
        "answer_url",
        "language_url",
        "permalink",
        "wdcFile",
        # who annotated it
        "initiatorWorkerId",
        "respondentWorkerId",
        "annotatorAge",
        "annotatorGender",
        "annotatorPolitics",
        "worker_quality_assessment",
    }
)


class PaperTask(BaseModel):
    """One entry of the published file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_name: str
    instruction: str
    input_fields: list[str]
    output_field: list[str]


def known_bad(task: PaperTask) -> str | None:
    """The known-bad category of a published task, or None: the hand-made labelling above, not the filter."""
    outputs, inputs = task.output_field, set(task.input_fields)
    if len(outputs) > 1:
        return "multi_output"
    output = outputs[0] if outputs else ""
    if output in REPOSITORY_METADATA:
        return "repository_metadata"
    if output in CODE_FIELDS and inputs and inputs <= CODE_METADATA_INPUTS:
        return "code_from_metadata"
    if output in BAD_TARGETS:
        return "bad_target"
    if output in BOOKKEEPING:
        return "bookkeeping"
    return None


# --- judging ------------------------------------------------------------------------------------------------


class PaperTaskFigures(BaseModel):
    """What the filter does to the published tasks (see the module docstring for each figure)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: int
    task_names: int
    near_duplicate_rouge: float
    kept: int
    rejected_by_reason: dict[str, int]
    known_bad: int
    known_bad_by_category: dict[str, int]
    known_bad_rejected: int
    known_bad_rejected_share: float
    known_bad_kept_by_category: dict[str, int]  # the misses
    paraphrase_groups: int
    paraphrase_groups_merged: int
    redundant_kept: int
    redundancy: float
    rest: int
    rest_kept: int
    rest_kept_share: float
    rest_valid: int  # the rest with a valid verdict (duplicates merged away not counted)
    inapplicable_rules: list[str]
    name_only_rules: list[str]


def load_paper_tasks(path: str | Path) -> list[PaperTask]:
    return [PaperTask.model_validate(e) for e in json.loads(Path(path).read_text(encoding="utf-8"))]


def source_for(task_name: str, tasks: Sequence[PaperTask]) -> SourceMeta:
    """A source whose features are exactly the fields its tasks name: strings, no stats, no samples."""
    names = dict.fromkeys(f for t in tasks for f in [*t.input_fields, *t.output_field])
    return SourceMeta(
        source_id=task_name,
        origin=f"hub:{task_name}",
        kind="hub",
        location=task_name,
        revision="published",
        features=[Feature(name=n, dtype="string") for n in names],
    )


def judge_paper_tasks(tasks: Sequence[PaperTask], params: FilterParams) -> list[Task]:
    """Each published task → the filter's verdict, in file order; each `task_name` judged as one source."""
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_name[t.task_name].append(i)
    verdicts: list[Task | None] = [None] * len(tasks)
    for name, positions in by_name.items():
        group = [tasks[i] for i in positions]
        specs = [
            TaskSpec(instruction=t.instruction, input_fields=t.input_fields, output_field=t.output_field)
            for t in group
        ]
        generated = GeneratedSource(
            source_id=name,
            fingerprint="published",
            model="gpt-3.5-turbo",
            prompt_version="dynosaur-paper",
            proposals=[Proposal(variant="published", cache_key=name, tasks=specs)],
        )
        for i, verdict in zip(positions, judge(source_for(name, group), generated, params), strict=True):
            verdicts[i] = verdict
    return [v for v in verdicts if v is not None]


def _mapping(task: PaperTask) -> tuple[str, frozenset[str], tuple[str, ...]]:
    return task.task_name, frozenset(task.input_fields), tuple(task.output_field)


def paper_task_figures(tasks: Sequence[PaperTask], params: FilterParams | None = None) -> PaperTaskFigures:
    """Judge the published tasks with the filter and measure it against the known-bad labelling."""
    params = params or FilterParams()
    verdicts = judge_paper_tasks(tasks, params)
    labels = [known_bad(t) for t in tasks]
    bad = [i for i, label in enumerate(labels) if label]
    rest = [i for i, label in enumerate(labels) if label is None]
    kept = [i for i, v in enumerate(verdicts) if v.verdict == "valid"]

    groups: dict[tuple, list[int]] = defaultdict(list)
    for i in rest:
        groups[_mapping(tasks[i])].append(i)
    paraphrase = [g for g in groups.values() if len(g) > 1]
    kept_set = set(kept)
    seen: set[tuple] = set()
    redundant = 0
    for i in kept:
        key = _mapping(tasks[i])
        redundant += key in seen
        seen.add(key)
    rest_kept = [i for i in rest if verdicts[i].verdict == "valid" or verdicts[i].reason in DUPLICATE_REASONS]

    def share(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else 0.0

    return PaperTaskFigures(
        tasks=len(tasks),
        task_names=len({t.task_name for t in tasks}),
        near_duplicate_rouge=params.near_duplicate_rouge,
        kept=len(kept),
        rejected_by_reason=dict(sorted(Counter(v.reason for v in verdicts if v.reason).items())),
        known_bad=len(bad),
        known_bad_by_category={c: labels.count(c) for c in KNOWN_BAD_CATEGORIES},
        known_bad_rejected=sum(verdicts[i].verdict == "rejected" for i in bad),
        known_bad_rejected_share=share(sum(verdicts[i].verdict == "rejected" for i in bad), len(bad)),
        known_bad_kept_by_category={
            c: sum(labels[i] == c for i in bad if i in kept_set) for c in KNOWN_BAD_CATEGORIES
        },
        paraphrase_groups=len(paraphrase),
        paraphrase_groups_merged=sum(sum(i in kept_set for i in g) <= 1 for g in paraphrase),
        redundant_kept=redundant,
        redundancy=share(redundant, len(kept)),
        rest=len(rest),
        rest_kept=len(rest_kept),
        rest_kept_share=share(len(rest_kept), len(rest)),
        rest_valid=sum(i in kept_set for i in rest),
        inapplicable_rules=list(INAPPLICABLE_RULES),
        name_only_rules=list(NAME_ONLY_RULES),
    )


def render(figures: PaperTaskFigures) -> str:
    f = figures
    lines = [
        f"published tasks: {f.tasks} over {f.task_names} task names; kept {f.kept}"
        f" (near_duplicate_rouge {f.near_duplicate_rouge})",
        f"known-bad rejected: {f.known_bad_rejected}/{f.known_bad} = {f.known_bad_rejected_share:.1%}"
        f"  (target ≥ 95%)",
        "  by category: "
        + ", ".join(
            f"{c} {f.known_bad_by_category[c] - f.known_bad_kept_by_category[c]}/{f.known_bad_by_category[c]}"
            for c in KNOWN_BAD_CATEGORIES
        ),
        f"paraphrase groups merged: {f.paraphrase_groups_merged}/{f.paraphrase_groups}",
        f"paraphrase redundancy left: {f.redundant_kept}/{f.kept} = {f.redundancy:.1%}  (target ≤ 5%)",
        f"the rest kept: {f.rest_kept}/{f.rest} = {f.rest_kept_share:.1%}  (target ≥ 95%;"
        f" {f.rest_valid} valid, the others merged as duplicates)",
        "rejected by reason: " + ", ".join(f"{r} {n}" for r, n in f.rejected_by_reason.items()),
        "rules that can't apply without statistics or samples: "
        + ", ".join(f.inapplicable_rules)
        + "; judging names only: "
        + ", ".join(f.name_only_rules),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dynosaur.pipeline.paper_tasks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("path", type=Path, help="instructions-full.json from the Dynosaur repository")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    has_params = Path(os.environ.get("DYNO_PARAMS", PARAMS_FILE)).exists()
    params = load_params().filter if has_params else FilterParams()
    figures = paper_task_figures(load_paper_tasks(args.path), params)
    print(figures.model_dump_json(indent=2) if args.json else render(figures))


if __name__ == "__main__":
    main()
