"""The filter's rules on an instruction's wording: could a person follow it as a task over one record?

Length, injection (an instruction addressed to the model), a demonstration's instruction copied, narration of
a procedure, quoting a sample row, template shapes and raw identifiers (`wording.templated_reason`), and asks
the output's values contradict (`instruction_mismatch`). Each rule is `(spec, meta, params) -> reason | None`;
its name is its reason code; dynosaur.pipeline.filter runs them in order (`RULES`).
"""

from __future__ import annotations

import re

from dynosaur.core.params import FilterParams
from dynosaur.core.records import SourceMeta, TaskSpec
from dynosaur.pipeline.demonstrations import copied_from_demonstration
from dynosaur.pipeline.filter_fields import output_name
from dynosaur.pipeline.filter_output import label_options
from dynosaur.pipeline.near_duplicates import words
from dynosaur.pipeline.wording import human_name, label_set, templated_reason

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
