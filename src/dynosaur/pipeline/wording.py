"""How an instruction reads: the template shape and raw field identifiers (what a reader rejects), human
names for fields (what the prompt shows instead), and whether an instruction states its label set.

One definition each, shared by the prompts (never show the model an identifier it might copy), the filter
(`templated_instruction`) and `bench/quality.py` (its `natural` and `label_set` figures).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from dynosaur.core.records import Feature, SourceMeta

# The bare shape of our old prompt's template, "Given the title, body, produce the category.": "Given the"
# a list of names, then "produce/output/return the" a name, and nothing else; or the same with a generic
# object ("predict the label"). "Given a tweet, provide the associated hashtag." (the paper's own style,
# accepted by its raters) is not a template: it says what the input is and what to give.
TEMPLATE_SHAPE = re.compile(
    r"^\s*given\s+the\s+[^.;:!?]{1,80}?,?\s+(?:produce|output|return)\s+(?:the|a|an)\s+[^.;:!?,]{1,40}[.!]?\s*$"
    r"|^\s*given\s+the\s+[^.;:!?]{1,80}?,?\s+(?:predict|give|provide|generate|determine|find|write)\s+the\s+"
    r"(?:label|class|output|value|target|field|answer|result)[.!]?\s*$",
    re.IGNORECASE,
)
# A raw identifier: anything in backticks, a word joined by `_` (`sentence_1`, `atu_topic`), a word with
# digits glued on (`label2`, `sentence1`), or a camelCase name (`retweetCount`).
RAW_IDENTIFIER = re.compile(
    r"`[^`\n]+`|\b[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+\b|\b[A-Za-z]{2,}\d+\b|\b[a-z]+[A-Z][a-z]+[A-Za-z]*\b"
)
ORDINALS = ("zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")


def templated_reason(
    instruction: str, field_names: Iterable[str] | None = None, labels: Iterable[str] = ()
) -> str | None:
    """Why `instruction` reads as a template ("bare shape" or "raw identifier `x`"), or None when it reads
    as something a person would write.

    Without `field_names`, any identifier-shaped word counts (backticks, `_`, glued digits, camelCase); with
    them, only backticked text and the source's own identifier-shaped field names do, so "epub3" or a label
    such as `not_entailment` (exempt through `labels` too) is not taken for a field."""
    if TEMPLATE_SHAPE.match(instruction):
        return "bare shape"
    exempt = {part.lower() for label in labels for part in [str(label), *re.split(r"[^\w]+", str(label))]}
    fields = None if field_names is None else {n.lower() for n in field_names}
    for match in RAW_IDENTIFIER.finditer(instruction):
        token = match.group(0)
        if token.startswith("`") or (
            token.lower() not in exempt and (fields is None or token.lower() in fields)
        ):
            return f"raw identifier {token!r}"
    return None


def is_natural(
    instruction: str, field_names: Iterable[str] | None = None, labels: Iterable[str] = ()
) -> bool:
    """Neither the bare "Given X, produce Y" shape nor a raw field identifier (`templated_reason`)."""
    return templated_reason(instruction, field_names, labels) is None


def human_name(name: str) -> str:
    """A field's name in words: `sentence_1` → "first sentence", `word_a` → "word A", `retweetCount` →
    "retweet count", `answers.text` → "answers text", `atu_topic` → "atu topic"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    parts = [p for p in re.split(r"[\s_.\-/]+", spaced) if p]
    if not parts:
        return name
    ordinal = None
    if len(parts) > 1 and parts[-1].isdigit() and 0 < int(parts[-1]) < len(ORDINALS):
        ordinal = ORDINALS[int(parts.pop())]
    elif len(parts) == 1 and (m := re.fullmatch(r"([A-Za-z]+?)(\d)", parts[0])) and m.group(2) != "0":
        parts, ordinal = [m.group(1)], ORDINALS[int(m.group(2))]
    words = [p.upper() if len(p) == 1 and p.isalpha() and len(parts) > 1 else p.lower() for p in parts]
    text = " ".join(words)
    return f"{ordinal} {text}" if ordinal else text


def states_labels(instruction: str, labels: list[str]) -> bool:
    """True when every label is named in the instruction in words (case-insensitive, whole words). A label
    written with its gloss, "acq (acquisitions)", is named by either part."""
    text = instruction.replace("_", " ")

    def named(label: str) -> bool:
        code, _, gloss = str(label).partition(" (")
        forms = [code, gloss.rstrip(")")] if gloss else [code]
        return any(
            f and re.search(rf"(?<!\w){re.escape(f.replace('_', ' '))}(?!\w)", text, re.I) for f in forms
        )

    return bool(labels) and all(named(label) for label in labels)


def label_set(feature: Feature) -> list[str] | None:
    """A label field's values in words: its class names, else the short values the scan saw (all of them,
    when there are at most 20 and they recur: 16 rows with 16 different answers are answers, not labels);
    None for free-form fields."""
    if feature.class_names:
        return list(feature.class_names)
    stats = feature.stats
    if stats is None or not stats.values or 2 * stats.distinct > stats.scanned - stats.empty:
        return None
    return list(stats.values)


# --- repairs: what generate does to the model's instruction before the filter reads it ---------------------

# "... from the WordSim-353 dataset", "... in the given dataset": where the examples came from, which the
# solver never sees and the filter rejects (`procedure_talk`); the task reads the same without it.
PROVENANCE = re.compile(
    r"\s+(?:from|in|of)\s+(?:the|this|a)\s+(?:given\s+|provided\s+)?(?:[\w'’.\-]+\s+){0,4}?"
    r"(?:dataset|data set|corpus)\b(?=\s*[.,;!?]|\s*$)",
    re.IGNORECASE,
)


def strip_provenance(instruction: str) -> str:
    """The instruction without a trailing "from the X dataset" phrase (`PROVENANCE`)."""
    return PROVENANCE.sub("", instruction)


def scale(feature: Feature | None) -> tuple[str, str] | None:
    """A score's scale from the scan (0.23 … 10.0 → "0" to "10"), or None for labels and non-numbers."""
    if feature is None or feature.stats is None or label_set(feature) is not None:
        return None
    low, high = feature.stats.low, feature.stats.high
    if low is None or high is None or low == high:
        return None
    if high - low > 2:
        low, high = math.floor(low), math.ceil(high)
    return f"{low:g}", f"{high:g}"


def with_scale(instruction: str, feature: Feature | None) -> str:
    """A score's instruction that names no number gets its scale: "... Answer with a number from 0 to 10."
    (a similarity or rating is underspecified without it: 2.94 on which scale?)."""
    found = scale(feature)
    if found is None or re.search(r"\d", instruction):
        return instruction
    return f"{instruction.rstrip()} Answer with a number from {found[0]} to {found[1]}."


def humanize_identifiers(instruction: str, meta: SourceMeta) -> str:
    """The model's instruction with any of the source's raw field names it copied (`sentence_1`,
    `` `label` ``) replaced by their names in words ("first sentence")."""
    names = sorted((f.name for f in meta.features), key=len, reverse=True)
    for name in names:
        words = human_name(name)
        instruction = instruction.replace(f"`{name}`", words)
        if words != name and RAW_IDENTIFIER.fullmatch(name):
            instruction = re.sub(rf"(?<![\w`]){re.escape(name)}(?![\w`])", words, instruction)
    return instruction
