"""filter: judge every proposed task; keep the valid ones, keep the rejected ones with a reason code.

Each rule is a small pure function returning `None` (keep) or a stable snake_case reason. Rules run in a
fixed order and the first reason wins, so every rejection has exactly one code, counted per reason in
metrics. Classification-like outputs (class names from the features, or few distinct values in the scan)
get their label options appended to the instruction when the options are short.
"""

from __future__ import annotations

import argparse
import re
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from dynosaur.core.io import read_model, write_json
from dynosaur.core.params import FilterParams, load_params
from dynosaur.core.records import (
    FilteredSource,
    GeneratedSource,
    Retraction,
    SourceMeta,
    Task,
    TaskSpec,
    digest,
    task_id,
    task_identity,
)
from dynosaur.core.runner import progress, prune, run, write_metrics
from dynosaur.registry.ledger import read_records

RULES_VERSION = 4  # bump when a rule changes meaning, so every source is judged again

REASONS = (
    "unparseable",
    "multi_output",
    "empty_output",
    "no_input",
    "unknown_field",
    "io_overlap",
    "instruction_too_short",
    "instruction_too_long",
    "meta_field",
    "degenerate_label",
    "duplicate_instruction",
    "retracted",
)

# Identifier and bookkeeping columns: predicting them teaches nothing (the paper's corpus has hundreds of
# tasks predicting a code file's size, path or licence).
META_NAME = re.compile(
    r"^(id|idx|index|key|uuid|guid|url|uri|link|href|path|file|filename|file_name|filepath|file_path|hash|"
    r"sha|sha1|sha256|md5|checksum|size|bytes|length|license|licence|licenses|repo|repo_name|repository|"
    r"stars|forks|copies|timestamp|created|created_at|updated_at|date_added|split|source|row)$"
    r"|(_id|_ids|_idx|_url|_uri|_path|_hash|_uuid|_md5|_sha|_timestamp)$|^(id_|url_|path_)",
    re.IGNORECASE,
)

Rule = Callable[[TaskSpec, SourceMeta, FilterParams], str | None]


def output_name(spec: TaskSpec) -> str:
    return (
        spec.output_field[0]
        if isinstance(spec.output_field, list) and spec.output_field
        else spec.output_field or ""
    )


def multi_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "multi_output" if isinstance(spec.output_field, list) and len(spec.output_field) > 1 else None


def empty_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    if not name.strip():
        return "empty_output"
    feature = meta.feature(name)
    stats = feature.stats if feature else None
    if stats and stats.scanned and stats.empty / stats.scanned > p.max_empty_share:
        return "empty_output"
    return None


def no_input(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "no_input" if not [f for f in spec.input_fields if f.strip()] else None


def unknown_field(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    for name in [*spec.input_fields, output_name(spec)]:
        feature = meta.feature(name)
        if feature is None or feature.is_media:
            return "unknown_field"
    return None


def io_overlap(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "io_overlap" if output_name(spec) in spec.input_fields else None


def instruction_too_short(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "instruction_too_short" if len(spec.instruction.split()) < p.min_instruction_words else None


def instruction_too_long(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    return "instruction_too_long" if len(spec.instruction) > p.max_instruction_chars else None


def meta_field(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    feature = meta.feature(name)
    if META_NAME.search(name) or (feature and feature.stats and feature.stats.id_like):
        return "meta_field"
    return None


def label_options(name: str, meta: SourceMeta, p: FilterParams) -> list[str] | None:
    """The label set of a classification-like field, or None when the field is free-form."""
    feature = meta.feature(name)
    if feature is None:
        return None
    if feature.class_names:
        return list(feature.class_names)
    stats = feature.stats
    if stats is None or stats.scanned < 2 * p.max_label_options or stats.distinct > p.max_label_options:
        return None
    if feature.dtype.startswith("float") or stats.mean_chars > 40:
        return None
    return sorted({str(row.get(name)) for row in meta.samples if row.get(name) not in (None, "")}) or None


# Label options go only to instructions that ask for a label (issue 9: "Write a sentence that uses all of the
# given words. Answer with one of: acq, crude, …"): one that asks for free text gets none, unless it also
# names the label it wants.
GENERATIVE = re.compile(
    r"\b(write|generate|compose|create|produce|summari[sz]e|translate|paraphrase|rewrite|rephrase|draft|"
    r"construct|continue|complete|describe|explain|make up|come up with)\b",
    re.IGNORECASE,
)
CLASSIFYING = re.compile(
    r"\b(classify|classification|categori[sz]e|category|categories|label|class|sentiment|topic|whether|"
    r"true or false|yes or no|which one|which of|determine|decide|identify|predict|detect|choose|select|"
    r"rate|rating)\b",
    re.IGNORECASE,
)


def options_to_append(instruction: str, options: list[str] | None) -> list[str] | None:
    """The label options to append to `instruction`: all of them, or None when it asks for free text or
    already names every option."""
    if not options or (GENERATIVE.search(instruction) and not CLASSIFYING.search(instruction)):
        return None
    named = all(
        re.search(rf"(?<!\w){re.escape(option)}(?!\w)", instruction, re.IGNORECASE) for option in options
    )
    return None if named else options


def degenerate_label(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    feature = meta.feature(name)
    stats = feature.stats if feature else None
    if stats is None or label_options(name, meta, p) is None:
        return None
    if stats.distinct <= 1 or stats.top_share >= p.degenerate_top_share:
        return "degenerate_label"
    return None


RULES: tuple[Rule, ...] = (
    multi_output,
    empty_output,
    no_input,
    unknown_field,
    io_overlap,
    instruction_too_short,
    instruction_too_long,
    meta_field,
    degenerate_label,
)


def normalise(instruction: str) -> str:
    text = instruction.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def judge(
    meta: SourceMeta, generated: GeneratedSource, p: FilterParams, retracted: frozenset[str] = frozenset()
) -> list[Task]:
    """Every proposal of one source → a Task with its verdict, in proposal order. `retracted` holds task ids
    and task identities (dynosaur.core.records.task_identity) that the ledger has tombstoned."""
    tasks: list[Task] = []
    seen: set[str] = set()
    base = dict(
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
            if reason is None and (the_id in retracted or identity in retracted):
                reason = "retracted"
            options = None
            if reason is None:
                seen.add(normalise(spec.instruction))
                options = label_options(output, meta, p)
                too_long = options and len(", ".join(options)) > p.max_options_chars
                if too_long or (options and not _complete(options, output, meta)):
                    options = None
                options = options_to_append(spec.instruction, options)
            tasks.append(
                Task(
                    **base,
                    task_id=the_id,
                    variant=proposal.variant,
                    instruction=spec.instruction.strip()[: p.max_instruction_chars * 2],
                    input_fields=inputs,
                    output_field=output if isinstance(output, str) else "",
                    verdict="rejected" if reason else "valid",
                    reason=reason,
                    label_options=options,
                )
            )
    return _dedupe_ids(tasks)


def _complete(options: list[str], name: str, meta: SourceMeta) -> bool:
    """Class names are the whole label set; values seen only in the sample rows may be part of it."""
    feature = meta.feature(name)
    return bool(
        feature and (feature.class_names or (feature.stats and len(options) >= feature.stats.distinct))
    )


def _dedupe_ids(tasks: list[Task]) -> list[Task]:
    """The very same task proposed again is one task: later copies are rejected as duplicates and their ids
    get a `#n` suffix, so every record in the output has its own id."""
    copies: Counter = Counter()
    out = []
    for t in tasks:
        copies[t.task_id] += 1
        if copies[t.task_id] > 1:
            update = {"task_id": f"{t.task_id}#{copies[t.task_id]}"}
            if t.verdict == "valid":
                update |= {"verdict": "rejected", "reason": "duplicate_instruction", "label_options": None}
            t = t.model_copy(update=update)
        out.append(t)
    return out


def main(args: argparse.Namespace) -> None:
    params = load_params().filter
    retracted = frozenset(
        key
        for r in read_records(args.retractions, Retraction)
        if r.kind == "task"
        for key in (r.target, r.identity)
        if key
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: list[FilteredSource] = []
    reused = 0
    for gen_path in progress(sorted(args.generated.glob("*.json")), "filter"):
        generated = read_model(gen_path, GeneratedSource)
        meta = read_model(args.collected / gen_path.name, SourceMeta)
        fingerprint = digest(
            [generated.fingerprint, meta.fingerprint, params.model_dump(), RULES_VERSION, sorted(retracted)]
        )
        path = out / gen_path.name
        if path.exists() and (previous := read_model(path, FilteredSource)).fingerprint == fingerprint:
            results.append(previous)
            reused += 1
            continue
        result = FilteredSource(
            source_id=meta.source_id, fingerprint=fingerprint, tasks=judge(meta, generated, params, retracted)
        )
        write_json(path, result)
        results.append(result)
    prune(out, {r.source_id for r in results})

    reasons = Counter(t.reason for r in results for t in r.tasks if t.reason)
    write_metrics(
        args.metrics,
        {
            "sources": len(results),
            "sources_reused": reused,
            "tasks_proposed": sum(len(r.tasks) for r in results),
            "tasks_valid": sum(len(r.valid) for r in results),
            "tasks_rejected": sum(reasons.values()),
            "rejected": {reason: reasons.get(reason, 0) for reason in REASONS},
        },
    )


if __name__ == "__main__":
    run(main, "collected", "generated", "retractions", "out", "metrics")
