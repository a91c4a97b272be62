"""The filter's rules on a task's output and its labels: can the inputs determine it, does it teach well?

Empty outputs, targets that teach the wrong thing (`bad_target`), free text the inputs can't determine
(`underdetermined_output`), outputs computed trivially from an input, degenerate label sets; and the label
options of a classification-like output, appended to its instruction (`label_options`, `options_to_append`).
Each rule is `(spec, meta, params) -> reason | None`; its name is its reason code; dynosaur.pipeline.filter
runs them in order (`RULES`).
"""

from __future__ import annotations

import re
from typing import Any

from dynosaur.core.params import FilterParams
from dynosaur.core.records import SourceMeta, TaskSpec
from dynosaur.pipeline.fields import is_bookkeeping, snake_name
from dynosaur.pipeline.filter_fields import output_name
from dynosaur.pipeline.wording import label_set

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


def empty_output(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    if not name.strip():
        return "empty_output"
    feature = meta.feature(name)
    stats = feature.stats if feature else None
    if stats and stats.scanned and stats.empty / stats.scanned > p.max_empty_share:
        return "empty_output"
    return None


def bad_target(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    """A target that teaches the wrong thing: a downvoted or rejected answer, a wrong one, a distractor."""
    name = snake_name(output_name(spec))
    feature = meta.feature(output_name(spec))
    judging = JUDGING_PREFIX.match(name) or (
        feature is not None and (feature.class_names or feature.dtype in ("bool", "class_label"))
    )
    return "bad_target" if BAD_TARGET_NAME.search(name) and not judging else None


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


def degenerate_label(spec: TaskSpec, meta: SourceMeta, p: FilterParams) -> str | None:
    name = output_name(spec)
    feature = meta.feature(name)
    stats = feature.stats if feature else None
    if stats is None or label_options(name, meta, p) is None:
        return None
    if stats.distinct <= 1 or stats.top_share >= p.degenerate_top_share:
        return "degenerate_label"
    return None


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


def complete_options(options: list[str], name: str, meta: SourceMeta) -> bool:
    """Class names are the whole label set; values seen only in the sample rows may be part of it."""
    feature = meta.feature(name)
    return bool(
        feature and (feature.class_names or (feature.stats and len(options) >= feature.stats.distinct))
    )
