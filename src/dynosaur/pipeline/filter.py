"""filter: judge every proposed task; keep the valid ones, keep the rejected ones with a reason code.

Each rule is a small pure function returning `None` (keep) or a stable snake_case reason. Rules run in a
fixed order and the first reason wins, so every rejection has exactly one code, counted per reason in
data/stats/filter.json (drawn in data/plots/rejections.svg). Structural rules come first (one output, known
fields, a usable instruction); then the rules that judge meaning from names, field statistics and sample
rows: bookkeeping outputs (`meta_field`), code from repository metadata, targets that teach bad behaviour,
instructions quoting a sample row, outputs the inputs can't determine, degenerate labels. Last, within the
source, tasks that repeat an earlier valid task's fields with a reworded instruction are merged into it
(`near_duplicate`, dynosaur.pipeline.near_duplicates).
Classification-like outputs (class names from the features, or few distinct values in the scan) get their
label options appended to the instruction when the options are short.

The rules live by what they judge: dynosaur.pipeline.filter_fields (the mapping: inputs → output),
filter_output (the output and its labels), filter_wording (the instruction's wording). This module holds
their order (`RULES`), every reason code (`REASONS`), the judge and the stage.
"""

from __future__ import annotations

import argparse
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynosaur.core.charts import bar_chart
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import atomic_write, write_json
from dynosaur.core.params import FilterParams, load_params
from dynosaur.core.records import (
    FilteredSource,
    GeneratedSource,
    Retraction,
    RetractionIndex,
    SourceMeta,
    Task,
    TaskSpec,
    task_id,
    task_identity,
)
from dynosaur.core.runner import progress, prune, run, write_metrics
from dynosaur.core.segments import RecordFolder, RecordRef
from dynosaur.core.statcache import Stamped, StatCache
from dynosaur.pipeline.demonstrations import DEMONSTRATION_INSTRUCTIONS
from dynosaur.pipeline.filter_fields import (
    code_from_metadata,
    duplicate_input,
    io_overlap,
    meta_field,
    multi_output,
    no_input,
    output_name,
    unknown_field,
    unlisted_mapping,
)
from dynosaur.pipeline.filter_output import (
    bad_target,
    complete_options,
    degenerate_label,
    empty_output,
    label_options,
    options_to_append,
    trivial_output,
    underdetermined_output,
)
from dynosaur.pipeline.filter_wording import (
    copies_demonstration,
    injection,
    instruction_mismatch,
    instruction_too_long,
    instruction_too_short,
    procedure_talk,
    quotes_sample,
    templated_instruction,
)
from dynosaur.pipeline.near_duplicates import merge_near_duplicates
from dynosaur.registry.ledger import read_records

# bump when a rule changes meaning, so every source is judged again (5: injection, 6: copies_demonstration,
# procedure_talk, 7: templated_instruction, instruction_mismatch, trivial_output, label sets from the scan)
RULES_VERSION = 7


Rule = Callable[[TaskSpec, SourceMeta, FilterParams], str | None]


RULES: tuple[Rule, ...] = (
    multi_output,
    empty_output,
    no_input,
    duplicate_input,
    unknown_field,
    io_overlap,
    instruction_too_short,
    instruction_too_long,
    injection,
    copies_demonstration,
    meta_field,
    code_from_metadata,
    bad_target,
    quotes_sample,
    underdetermined_output,
    trivial_output,
    degenerate_label,
    procedure_talk,  # after the field rules: a bookkeeping output is reported as such
    templated_instruction,
    instruction_mismatch,
    unlisted_mapping,
)
# Every reason code, once: each rule's name is its code; the judge adds the other four (issue 23).
REASONS: tuple[str, ...] = (
    "unparseable",
    *(rule.__name__ for rule in RULES),
    "duplicate_instruction",
    "near_duplicate",
    "retracted",
)


def normalise(instruction: str) -> str:
    text = instruction.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def judge(
    meta: SourceMeta, generated: GeneratedSource, p: FilterParams, retracted: RetractionIndex | None = None
) -> list[Task]:
    """Every proposal of one source → a Task with its verdict, in proposal order; a task the ledger has
    tombstoned (by id or identity) is rejected as `retracted`. Valid tasks
    that repeat an earlier valid task's fields with a similar instruction are then merged into it
    (`near_duplicate`, dynosaur.pipeline.near_duplicates)."""
    tasks: list[Task] = []
    seen: set[str] = set()
    retracted = retracted or RetractionIndex()
    base: dict[str, Any] = dict(
        source_id=meta.source_id,
        source_revision=meta.revision,
        prompt_version=generated.prompt_version,
        model=generated.model,
    )
    for proposal in generated.proposals:
        if proposal.parse_error is not None:
            marker = f"<unparseable:{proposal.cache_key}>"
            tasks.append(
                Task(
                    **base,
                    task_id=task_id(meta.source_id, meta.revision, marker, [], ""),
                    identity=task_identity(meta.source_id, marker, [], ""),
                    variant=proposal.variant,
                    instruction="",
                    input_fields=[],
                    output_field="",
                    verdict="rejected",
                    reason="unparseable",
                )
            )
            continue
        for spec in proposal.tasks:
            output = output_name(spec)
            inputs = [f for f in spec.input_fields if f.strip()]
            reason = next((r for rule in RULES if (r := rule(spec, meta, p))), None)
            if reason is None and normalise(spec.instruction) in seen:
                reason = "duplicate_instruction"
            the_id = task_id(meta.source_id, meta.revision, spec.instruction.strip(), inputs, output)
            identity = task_identity(meta.source_id, spec.instruction.strip(), inputs, output)
            if reason is None and retracted.task(the_id, identity, meta.source_id):
                reason = "retracted"
            options = None
            if reason is None:
                seen.add(normalise(spec.instruction))
                options = label_options(output, meta, p)
                too_long = options and len(", ".join(options)) > p.max_options_chars
                if too_long or (options and not complete_options(options, output, meta)):
                    options = None
                options = options_to_append(spec.instruction, options)
            tasks.append(
                Task(
                    **base,
                    task_id=the_id,
                    identity=identity,
                    variant=proposal.variant,
                    instruction=spec.instruction.strip()[: p.max_instruction_chars * 2],
                    input_fields=inputs,
                    output_field=output if isinstance(output, str) else "",
                    verdict="rejected" if reason else "valid",
                    reason=reason,
                    label_options=options,
                )
            )
    return merge_near_duplicates(_dedupe_ids(tasks), p.near_duplicate_rouge)


def _dedupe_ids(tasks: list[Task]) -> list[Task]:
    """The very same task proposed again is one task: later copies are rejected as duplicates and their ids
    get a `#n` suffix, so every record in the output has its own id."""
    copies: Counter = Counter()
    out = []
    for t in tasks:
        copies[t.task_id] += 1
        if copies[t.task_id] > 1:
            update: dict[str, Any] = {"task_id": f"{t.task_id}#{copies[t.task_id]}"}
            if t.verdict == "valid":
                update |= {"verdict": "rejected", "reason": "duplicate_instruction", "label_options": None}
            t = t.model_copy(update=update)
        out.append(t)
    return out


@dataclass
class Folders:
    """filter's inputs and output: the generated tasks, the collect records and the verdicts."""

    generated: RecordFolder[GeneratedSource]
    collected: RecordFolder[SourceMeta]
    out: RecordFolder[FilteredSource]

    def files(self, source_id: str) -> list[Stamped]:
        return [RecordRef(folder, source_id) for folder in (self.generated, self.collected, self.out)]


def judge_source(
    source_id: str, folders: Folders, params: FilterParams, retracted: RetractionIndex
) -> tuple[FilteredSource, bool]:
    """One source's verdicts, stored in `folders.out`, and whether they were reused: a record whose
    fingerprint (its generated tasks, its metadata, the retractions, the rules and params) is unchanged is
    kept as is."""
    generated = folders.generated[source_id]
    meta = folders.collected[source_id]
    fingerprint = stage_fingerprint(
        inputs=[generated.fingerprint, meta.fingerprint, retracted.task_keys()],
        params=params,
        version=RULES_VERSION,
    )
    previous = folders.out.get(source_id)
    if previous is not None and previous.fingerprint == fingerprint:
        return previous, True
    result = FilteredSource(
        source_id=meta.source_id, fingerprint=fingerprint, tasks=judge(meta, generated, params, retracted)
    )
    folders.out.put(result)
    return result, False


def judge_all(
    folders: Folders, cache: StatCache, params: FilterParams, retracted: RetractionIndex
) -> tuple[dict[str, dict], dict[str, bool]]:
    """Every generated source's verdict summary, and the sources the memory could not vouch for (each with
    whether its stored verdicts were still right)."""
    summaries: dict[str, dict] = {}
    judged: dict[str, bool] = {}
    for source_id in progress(folders.generated.ids(), "filter"):
        known = cache.get(source_id, folders.files(source_id))
        if known is None:
            result, judged[source_id] = judge_source(source_id, folders, params, retracted)
            known = summary(result)
        summaries[source_id] = known
    return summaries, judged


def summary(result: FilteredSource) -> dict[str, Any]:
    """What the stats keep of one source's verdicts."""
    return {
        "proposed": len(result.tasks),
        "valid": len(result.valid),
        "reasons": dict(Counter(t.reason for t in result.tasks if t.reason)),
    }


def rejected_by_reason(summaries: dict[str, dict]) -> dict[str, int]:
    """Every reason code (in REASONS' order) with the number of tasks it rejected, zeros included."""
    reasons: Counter[str] = Counter()
    for one in summaries.values():
        reasons.update(one["reasons"])
    return {reason: reasons.get(reason, 0) for reason in REASONS}


def main(args: argparse.Namespace) -> None:
    params = load_params().filter
    retracted = RetractionIndex(read_records(args.retractions, Retraction))
    args.out.mkdir(parents=True, exist_ok=True)
    # A source whose three files (its generated tasks, its collect record, its verdicts) are the very files of
    # its last judgement keeps it, counts included, without opening any of them (dynosaur.core.statcache).
    # The demonstrations are an input of `copies_demonstration`: a changed one judges every source again.
    inputs = [retracted.task_keys(), DEMONSTRATION_INSTRUCTIONS]
    cache = StatCache(
        "filter", stage_fingerprint(inputs=inputs, params=params, version=RULES_VERSION), args.out
    )
    folders = Folders(
        RecordFolder(args.generated, GeneratedSource),
        RecordFolder(args.collected, SourceMeta),
        RecordFolder(args.out, FilteredSource),
    )
    folders.out.migrate()
    summaries, judged = judge_all(folders, cache, params, retracted)
    prune(folders.out, set(summaries), collected=args.collected)
    folders.out.flush()
    for source_id in judged:  # once the verdicts landed: the memory stamps their segments
        cache.put(source_id, folders.files(source_id), summaries[source_id])
    reused = len(summaries) - len(judged) + sum(judged.values())
    cache.keep_only(set(summaries))
    cache.save()
    rejected = rejected_by_reason(summaries)
    valid = sum(s["valid"] for s in summaries.values())  # what organize builds
    write_metrics(
        args.metrics, {"sources": len(summaries), "tasks": valid, "rejected": sum(rejected.values())}
    )
    proposed = sum(s["proposed"] for s in summaries.values())
    per_source = {sid: summaries[sid] for sid in sorted(summaries)}
    write_json(args.stats, {"tasks_proposed": proposed, "rejected": rejected, "per_source": per_source})
    write_json(args.run_log, {"sources_judged": len(summaries) - reused, "sources_reused": reused})
    shown = sorted(((r, n) for r, n in rejected.items() if n), key=lambda rn: (-rn[1], rn[0]))
    chart = bar_chart("Tasks rejected, by reason", [r for r, _ in shown], {"tasks": [n for _, n in shown]})
    atomic_write(args.plot, chart)


if __name__ == "__main__":
    run(main, "collected", "generated", "retractions", "out", "metrics", "stats", "run-log", "plot")
