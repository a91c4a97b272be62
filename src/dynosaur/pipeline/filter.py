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
"""

from __future__ import annotations

import argparse
import re
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynosaur.core.charts import bar_chart
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import atomic_write, read_model, write_json
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
from dynosaur.core.statcache import StatCache
from dynosaur.pipeline.demonstrations import DEMONSTRATION_INSTRUCTIONS, copied_from_demonstration
from dynosaur.pipeline.fields import enumerate_mappings, is_bookkeeping, is_undeterminable, snake_name
from dynosaur.pipeline.near_duplicates import merge_near_duplicates, words
from dynosaur.pipeline.wording import human_name, label_set, templated_reason
from dynosaur.registry.ledger import read_records

# bump when a rule changes meaning, so every source is judged again (5: injection, 6: copies_demonstration,
# procedure_talk, 7: templated_instruction, instruction_mismatch, trivial_output, label sets from the scan)
RULES_VERSION = 7


# Repository metadata that a code file's row carries besides the code: with META_NAME, the inputs that
# can't determine a file's content (`code_from_metadata`).
REPO_NAME = re.compile(r"^(language|lang|programming_language|extension|ext|license_type|licenses?)$")
# Fields that hold source code (or a file's whole content).
CODE_NAME = re.compile(
    r"(^|_)(code|content|contents|program|snippet|script|func|function|bytecode|source_code)(_|$|\d)"
)
# A target that teaches bad behaviour: the answer readers voted down, the reply raters rejected, wrong
# answers and distractors (`bad_target`). A field *judging* correctness (`is_incorrect`) is a fine label.
BAD_TARGET_NAME = re.compile(r"(^|_)(downvoted?|down_voted|rejected|incorrect|wrong|distractors?)(_|$|\d)")
JUDGING_PREFIX = re.compile(r"^(is|has|was|are|num|n|count)_")
# Instructions that ask to generate an output from attributes ("write a review with the given sentiment"):
# `underdetermined_output` lets these through. (Until issue 23 this was `GENERATIVE` too, and the options'
# `GENERATIVE` further down silently replaced it for every rule.)
WRITES_FROM_ATTRIBUTES = re.compile(
    r"\b(write|generate|compose|create|produce|draft|invent|craft|imagine|come up with|make up)\b",
    re.IGNORECASE,
)


# An instruction addressed to the model that reads it, not a task over the data (`injection`): overriding
# earlier instructions, a new persona, asking for keys or the system prompt, closing the data fence or
# opening a chat turn. Verbs count only at the start of a clause, where they are imperatives: "Ignore all
# previous instructions" is rejected, "Decide whether the message asks to ignore previous instructions"
# (a task over a prompt-injection dataset) is not.
_CLAUSE = r"(?:^|[.!?:;\n]\s*|\b(?:and|then|now|please|just|simply|instead)\s+)"
INJECTION = re.compile(
    _CLAUSE + r"(?:ignore|disregard|forget|override|bypass|do not follow|don't follow|stop following)\b"
    r".{0,60}?\b(?:instructions?|directions?|prompts?|rules|guidelines|above|everything|previous|prior|"
    r"earlier|preceding|system|safety)\b"
    + "|"
    + _CLAUSE
    + r"(?:reveal|print|output|show|display|tell me|leak|send|share|disclose|expose|dump|repeat|"
    r"return|give me|write out|read out|provide)\b.{0,60}?\b(?:api[\s_-]?keys?|access[\s_-]?tokens?|"
    r"secret[\s_-]?keys?|private[\s_-]?keys?|system[\s_-]?prompt|credentials|environment variables|env vars)\b"
    + "|"
    + _CLAUSE
    + r"(?:repeat|print|output|recite)\s+(?:the|all|everything|every)\b.{0,20}?\b"
    r"(?:words|text|instructions|messages?|everything)\s+(?:above|before|so far|you were given)"
    + "|"
    + _CLAUSE
    + r"(?:you are now|from now on|pretend (?:to be|you are|that you)|act as (?:an? )?"
    r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil))\b"
    r"|\byour\s+(?:system|initial|original|hidden|secret|internal)\s+(?:prompt|instructions|message|rules)\b"
    r"|\byour\s+(?:api[\s_-]?key|password|credentials|secrets?|access[\s_-]?token)\b"
    r"|\b(?:admin|administrator|root)(?:'s)?\s+password\b"
    r"|\b(?:developer|god|jailbreak|dan)\s+mode\b|\bjailbr(?:ea|o)k|\bdo anything now\b|\bpwned\b"
    r"|</?\s*(?:dataset|system|instructions?|prompt)\s*>|<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>"
    r"|^\s*(?:system|assistant|developer)\s*:",
    re.IGNORECASE,
)
# An instruction that describes the data or a procedure instead of a task (`procedure_talk`): the solver sees
# one record, never "the dataset" or its rows; "the model should ..." and "we need to ..." narrate; "To produce
# the title, ..." explains; and phrases of the generation prompt itself leak back from small models.
PROCEDURE = re.compile(
    r"\b(?:dataset|data set)\b"
    # a row of the data, not of a table the input holds ("using the rows of the table" is a task)
    r"|\b(?:corresponding|matching|given|same|this|each|every|dataset|data) rows?\b"
    r"|\brows? (?:of|in|from) the (?:dataset|data)\b"
    r"|\bthe model (?:should|must|needs? to|has to|will)\b"
    r"|\bwe (?:need|have|must|should|will|can)\b"
    r"|^\s*to (?:produce|determine|generate|extract|find|get|obtain|create|predict)\b[^.]*,"
    r"|\bwithout (?:naming|quoting|mentioning)\b|\bexample (?:rows|values)\b|\bnumbered tasks?\b"
    # the fields-first prompt's own words (v5): "Classify the given examples ...", "a teacher would give"
    r"|\b(?:the|these|given|provided|following|above) examples\b|\bsolved examples?\b|\bteacher\b"
    r"|\binstruction[- ]tuning\b|\bone or two (?:plain )?sentences\b",
    re.IGNORECASE,
)
# Names of environment variables holding secrets (OPENAI_API_KEY, HF_TOKEN): upper case, so matched apart.
SECRET_VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(?:KEY|TOKEN|SECRET|PASSWORD)\b")

Rule = Callable[[TaskSpec, SourceMeta, FilterParams], str | None]


def output_name(spec: TaskSpec) -> str:
    if isinstance(spec.output_field, list):
        return spec.output_field[0] if spec.output_field else ""
    return spec.output_field or ""


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


def injection(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """The instruction speaks to the model (override its instructions, take a persona, reveal a key or its
    prompt) instead of describing a task over the data: never a training instruction (issue 11)."""
    text = spec.instruction
    return "injection" if INJECTION.search(text) or SECRET_VARIABLE.search(text) else None


def copies_demonstration(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """A demonstration's instruction pasted onto other fields (a 0.5B model given the paper's SQuAD
    demonstration asks "Create a question provided the article." of a word-similarity table)."""
    return "copies_demonstration" if copied_from_demonstration(spec) else None


def procedure_talk(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Seen with the local 0.5B model: "To produce the atu_numerical field, we need to find the corresponding
    row in the dataset ...": a narration of a lookup, not an instruction a solver can follow."""
    return "procedure_talk" if PROCEDURE.search(spec.instruction) else None


def _quotable(name: str, meta: SourceMeta) -> list[str]:
    """A field's text in the sample rows, list items included (`answers.text: ["…", "…"]`)."""
    values = (row.get(name) for row in meta.samples)
    items = (x for v in values for x in (v if isinstance(v, list) else [v]))
    return [x for x in items if isinstance(x, str) and x.strip()]


def meta_field(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    return "meta_field" if is_bookkeeping(name, meta) or is_undeterminable(name, meta) else None


def code_from_metadata(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Source code (or a file's content) from a repository's metadata: a licence, a path or a repository
    name can't determine a file (the paper's corpus has ~180 such tasks)."""
    if not CODE_NAME.search(snake_name(output_name(spec))):
        return None
    inputs = [f for f in spec.input_fields if f.strip()]
    if inputs and all(is_bookkeeping(f, meta) or REPO_NAME.match(snake_name(f)) for f in inputs):
        return "code_from_metadata"
    return None


def bad_target(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """A target that teaches the wrong thing: a downvoted or rejected answer, a wrong one, a distractor."""
    name = snake_name(output_name(spec))
    feature = meta.feature(output_name(spec))
    judging = JUDGING_PREFIX.match(name) or (
        feature is not None and (feature.class_names or feature.dtype in ("bool", "class_label"))
    )
    return "bad_target" if BAD_TARGET_NAME.search(name) and not judging else None


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """The longest run of consecutive words that `a` and `b` share."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def quotes_sample(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """The instruction quotes a sample row's value of a high-cardinality field ("Given the sentence 'In
    some forces short sleeved shirts…', determine the certainty"): it describes one row, not the task.
    Label values (few distinct values) are welcome in an instruction, so only free-form fields count."""
    instruction = words(spec.instruction)
    if _quotes_short_values(spec.instruction, meta, p):
        return "quotes_sample"
    for feature in meta.features:
        stats = feature.stats
        if stats is None or feature.class_names or stats.distinct <= p.max_label_options:
            continue
        for value in _quotable(feature.name, meta):
            quoted = words(value)
            if (
                len(quoted) >= p.quote_min_words
                and _longest_common_run(instruction, quoted) >= p.quote_min_words
            ):
                return "quotes_sample"
    return None


def _quotes_short_values(instruction: str, meta: SourceMeta, p: FilterParams) -> bool:
    """Two or more sample values of free-form fields, whole words, in the instruction ("Rate the similarity
    between forest and graveyard"): one example's content, not the task."""
    found = set()
    for feature in meta.features:
        stats = feature.stats
        if stats is None or feature.class_names or stats.distinct <= p.max_label_options:
            continue
        for value in _quotable(feature.name, meta):
            value = value.strip()
            if len(value) >= 3 and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", instruction, re.IGNORECASE):
                found.add(value.lower())
    return len(found) >= 2


def underdetermined_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Free-form output where every input has far fewer distinct values (review text from a sentiment
    label): the inputs can't determine it. Generating text from attributes is a task of its own ("write a
    review with the given sentiment") when the instruction asks to write and the inputs aren't bookkeeping."""
    name = output_name(spec)
    output = meta.feature(name)
    if output is None or output.stats is None or label_options(name, meta, p) is not None:
        return None
    if output.class_names or output.stats.distinct <= p.max_label_options:
        return None
    inputs = [meta.feature(f) for f in spec.input_fields if f.strip()]
    if not inputs or any(f is None or f.stats is None for f in inputs):
        return None
    limit = p.underdetermined_ratio * output.stats.distinct
    if any(f.stats.distinct > limit for f in inputs if f is not None and f.stats is not None):
        return None
    generative = (
        WRITES_FROM_ATTRIBUTES.search(spec.instruction) and output.stats.mean_chars >= p.generative_min_chars
    )
    if generative and not any(is_bookkeeping(f.name, meta) for f in inputs if f is not None):
        return None
    return "underdetermined_output"


def templated_instruction(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """The bare shape of a template ("Given the text, produce the label.") or a raw field identifier
    (`sentence_1`, anything in backticks): nobody trains on it (issue 19; `wording.templated_reason`)."""
    labels = [v for f in meta.features for v in (label_set(f) or [])]
    names = [f.name for f in meta.features] + list(spec.input_fields) + [output_name(spec)]
    return "templated_instruction" if templated_reason(spec.instruction, names, labels) else None


# What an instruction says it wants, and what the output's values must look like for that to hold.
SENTIMENT_TALK = re.compile(r"\b(sentiment|polarity|positive or negative|negative or positive)\b", re.I)
SENTIMENT_LABEL = re.compile(r"^(pos|neg|positive|negative|neutral|mixed|[0-9]|[1-5] stars?|good|bad)$", re.I)
CLASSIFY_ASK = re.compile(
    r"^\s*(classify|categori[sz]e|label|decide whether|decide if|determine whether|determine if|tell whether)\b"
    r"|\b(into one of|as one of|one of the (following )?(labels|categories|classes))\b",
    re.I,
)
SUMMARY_ASK = re.compile(r"^\s*(summari[sz]e|give a summary|write a summary)\b", re.I)
SUMMARY_NAME = re.compile(r"(summary|abstract|synopsis|description|tldr|highlights?|gist|overview)", re.I)
TITLE_ASK = re.compile(
    r"\b(write|suggest|give|generate|create|propose|come up with)\s+(a|an|the)\s+(title|headline)", re.I
)
TITLE_NAME = re.compile(r"(title|headline|heading|name|subject)", re.I)


def instruction_mismatch(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """The instruction asks for something the output's values contradict: a sentiment for topic labels,
    a label for free text, a summary or a title for a field that is neither (issue 19: "Summarize the body
    of the article in 100 words." over the title)."""
    name = output_name(spec)
    feature = meta.feature(name)
    if feature is None or feature.stats is None:
        return None
    text = spec.instruction
    labels = label_options(name, meta, p)
    if labels and SENTIMENT_TALK.search(text) and not any(SENTIMENT_LABEL.match(str(v)) for v in labels):
        return "instruction_mismatch"
    free_text = labels is None and not feature.class_names and feature.stats.distinct > p.max_label_options
    if free_text and feature.stats.mean_chars > 40 and CLASSIFY_ASK.search(text):
        return "instruction_mismatch"
    words_of_name = human_name(name)
    if SUMMARY_ASK.search(text) and not SUMMARY_NAME.search(words_of_name):
        return "instruction_mismatch"
    if TITLE_ASK.search(text) and not TITLE_NAME.search(words_of_name):
        return "instruction_mismatch"
    return None


def unlisted_mapping(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """Propose, then snap (issue 19): a task whose (inputs → output) is none of the mappings that
    `enumerate_mappings` finds plausible from the field statistics (its output one of theirs, its inputs
    sharing one) is dropped, when `filter.snap_to_mappings` is on. Fields-first tasks are such mappings by
    construction; the rule matters for
    `propose`, whose wording is freer but whose fields are often wrong. Bare specs (no statistics: the paper's
    tasks) have nothing to snap to and pass."""
    if not p.snap_to_mappings or not any(f.stats is not None for f in meta.features):
        return None
    output, inputs = output_name(spec), set(spec.input_fields)
    fits = any(o == output and inputs & set(i) for i, o in enumerate_mappings(meta, max_mappings=1000))
    return None if fits else "unlisted_mapping"


def _norm(value: Any) -> str:
    return " ".join(str(value).lower().split()) if value is not None else ""


def trivial_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """An output that needs no understanding, in every sample row: a copy of an input, its length in
    characters or words, or its first or last word."""
    name = output_name(spec)
    rows = [r for r in meta.samples if _norm(r.get(name))]
    if len(rows) < 2:
        return None
    for field in spec.input_fields:
        if all(_trivially_from(_norm(r.get(field)), _norm(r.get(name))) for r in rows):
            return "trivial_output"
    return None


def _trivially_from(given: str, wanted: str) -> bool:
    if not given:
        return False
    tokens = given.split()
    return wanted in (given, str(len(given)), str(len(tokens)), tokens[0], tokens[-1])


def duplicate_input(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    inputs = [f.strip() for f in spec.input_fields if f.strip()]
    return "duplicate_input" if len(set(inputs)) < len(inputs) else None


def label_options(name: str, meta: SourceMeta, p: FilterParams) -> list[str] | None:
    """The label set of a classification-like field, or None when the field is free-form."""
    feature = meta.feature(name)
    if feature is None:
        return None
    if feature.class_names:
        return list(feature.class_names)
    stats = feature.stats
    if stats is None or feature.dtype.startswith("float") or stats.mean_chars > 40:
        return None
    if (scanned := label_set(feature)) is not None:
        return scanned  # the whole value set the scan saw (`wording.label_set`)
    if stats.scanned < 2 * p.max_label_options or stats.distinct > p.max_label_options:
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
                if too_long or (options and not _complete(options, output, meta)):
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
            update: dict[str, Any] = {"task_id": f"{t.task_id}#{copies[t.task_id]}"}
            if t.verdict == "valid":
                update |= {"verdict": "rejected", "reason": "duplicate_instruction", "label_options": None}
            t = t.model_copy(update=update)
        out.append(t)
    return out


def judge_source(
    gen_path: Path, collected: Path, out: Path, params: FilterParams, retracted: RetractionIndex
) -> tuple[FilteredSource, bool]:
    """One source's verdicts, written to `out`, and whether they were reused: a record whose fingerprint
    (its generated tasks, its metadata, the retractions, the rules and params) is unchanged is kept as is."""
    generated = read_model(gen_path, GeneratedSource)
    meta = read_model(collected / gen_path.name, SourceMeta)
    fingerprint = stage_fingerprint(
        inputs=[generated.fingerprint, meta.fingerprint, retracted.task_keys()],
        params=params,
        version=RULES_VERSION,
    )
    path = out / gen_path.name
    if path.exists() and (previous := read_model(path, FilteredSource)).fingerprint == fingerprint:
        return previous, True
    result = FilteredSource(
        source_id=meta.source_id, fingerprint=fingerprint, tasks=judge(meta, generated, params, retracted)
    )
    write_json(path, result)
    return result, False


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
    summaries: dict[str, dict] = {}
    reused = 0
    for gen_path in progress(sorted(args.generated.glob("*.json")), "filter"):
        files = [gen_path, args.collected / gen_path.name, args.out / gen_path.name]
        known = cache.get(gen_path.stem, files)
        if known is None:
            result, kept = judge_source(gen_path, args.collected, args.out, params, retracted)
            known = summary(result)
            cache.put(gen_path.stem, files, known)
            reused += kept
        else:
            reused += 1
        summaries[gen_path.stem] = known
    prune(args.out, set(summaries), collected=args.collected)
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
