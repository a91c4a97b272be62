"""How an instruction reads: the template shape and raw field identifiers (what a reader rejects), human
names for fields (what the prompt shows instead), and whether an instruction states its label set.

One definition each, shared by the prompts (never show the model an identifier it might copy), the filter
(`templated_instruction`) and `bench/quality.py` (its `natural` and `label_set` figures).
"""

from __future__ import annotations

import re

# "Given the title, body, produce the category." — the bare shape of a template, whatever the verb.
TEMPLATE_SHAPE = re.compile(
    r"^\s*(?:given|using|with|from)\s+(?:the|a|an|its|this|these)?\s*[^.;:!?]{0,120}?,?\s*"
    r"(?:produce|output|return|give|provide|generate|predict|determine|find|get|write)\s+"
    r"(?:the|a|an|its|their)\s+[\w.` -]{1,60}?[.!]?\s*$",
    re.IGNORECASE,
)
# A raw identifier: anything in backticks, a word joined by `_` (`sentence_1`, `atu_topic`), a word with
# digits glued on (`label2`, `sentence1`), or a camelCase name (`retweetCount`).
RAW_IDENTIFIER = re.compile(
    r"`[^`\n]+`|\b[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+\b|\b[A-Za-z]{2,}\d+\b|\b[a-z]+[A-Z][a-z]+[A-Za-z]*\b"
)
ORDINALS = ("zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")


def templated_reason(instruction: str) -> str | None:
    """Why `instruction` reads as a template ("bare shape" or "raw identifier `x`"), or None when it reads
    as something a person would write."""
    if TEMPLATE_SHAPE.match(instruction):
        return "bare shape"
    match = RAW_IDENTIFIER.search(instruction)
    if match:
        return f"raw identifier {match.group(0)!r}"
    return None


def is_natural(instruction: str) -> bool:
    """Neither the bare "Given X, produce Y" shape nor a raw field identifier."""
    return templated_reason(instruction) is None


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
    """True when every label is named in the instruction in words (case-insensitive, whole words)."""
    return bool(labels) and all(
        re.search(
            rf"(?<!\w){re.escape(str(label).replace('_', ' '))}(?!\w)", instruction.replace("_", " "), re.I
        )
        for label in labels
    )
