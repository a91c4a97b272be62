"""The records the pipeline stages pass on: collect (`SourceMeta` and its features), generate (`Proposal`,
`GeneratedSource`), filter (`Task`, `FilteredSource`) and organize (`INSTANCE_COLUMNS`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from dynosaur.core.records.base import SCHEMA_VERSION, Record, digest
from dynosaur.core.text import clean_line, clean_value, clean_values

# --- collect ---------------------------------------------------------------------------------------------


LABEL_VALUES = 20  # a field with at most this many short values records them (FeatureStats.values)


class FeatureStats(Record):
    """What a scan of the first `collect.stats_rows` train/validation rows says about one field."""

    scanned: int
    empty: int
    distinct: int  # capped at `distinct_cap`; equal to the cap means "at least"
    top_share: float  # share of the most frequent value among non-empty values
    id_like: bool  # every non-empty value is a short token without spaces, all distinct
    mean_chars: float
    # A label-like field's whole value set in the scan (at most LABEL_VALUES values of at most 40 characters
    # each), sorted: the label set in words that instructions state. None: free-form, or too many.
    values: list[str] | None = None
    # A numeric field's smallest and largest value in the scan (a score's scale); None when not all numbers.
    low: float | None = None
    high: float | None = None

    @field_validator("values")
    @classmethod
    def _clean_values(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [clean_line(value) for value in v]


class Feature(Record):
    name: str
    dtype: str  # "string", "int64", "float64", "bool", "class_label", "list<string>", "image", "audio", ...
    class_names: list[str] | None = None
    stats: FeatureStats | None = None

    @field_validator("class_names")
    @classmethod
    def _clean_names(cls, v: list[str] | None) -> list[str] | None:
        # From a dataset card: untrusted. They become label options in instructions (issue 11).
        return None if v is None else [clean_line(name) for name in v]

    @property
    def is_media(self) -> bool:
        return self.dtype in MEDIA_DTYPES


MEDIA_DTYPES = frozenset({"image", "audio", "video", "pdf", "binary", "large_binary"})


class SplitInfo(Record):
    name: str
    num_rows: int
    files: list[str] = []  # relative to the source folder, or to the Hub repo at the pinned revision


SourceStatus = Literal["ok", "skipped", "failed"]


class SourceMeta(Record):
    """collect's record of one source: enough to prompt the LLM, filter its answer and find the rows."""

    schema_version: int = SCHEMA_VERSION
    source_id: str
    origin: str  # "local:data/sources/x" or "hub:owner/name"
    kind: Literal["local", "hub"]
    location: str  # folder for local sources, repo id for hub sources
    config: str | None = None
    revision: str  # content fingerprint (local) or commit sha (hub)
    license: str | None = None
    pretty_name: str | None = None
    languages: list[str] = []  # the card's `language` list (publish puts their union on the corpus card)
    description: str = ""
    features: list[Feature] = []
    splits: list[SplitInfo] = []
    samples: list[dict[str, Any]] = []  # k rows from train/validation, never test
    status: SourceStatus = "ok"
    reason: str | None = None  # why skipped or failed
    inputs_digest: str = (
        ""  # over (source spec, revision, collect params): unchanged → collect reuses the record
    )

    # Card text and sample rows are untrusted: control characters never enter the record (issue 11).
    @field_validator("pretty_name", "license")
    @classmethod
    def _clean_line(cls, v: str | None) -> str | None:
        return None if v is None else clean_line(v)

    @field_validator("description")
    @classmethod
    def _clean_description(cls, v: str) -> str:
        return clean_value(v)

    @field_validator("samples")
    @classmethod
    def _clean_samples(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [clean_values(row) for row in v]

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    @property
    def fingerprint(self) -> str:
        """What downstream stages key their per-source work on."""
        return digest(self)


# --- generate --------------------------------------------------------------------------------------------


class TaskSpec(BaseModel):
    """One task as an LLM proposes it. Lenient on purpose: the filter, not the parser, judges it."""

    model_config = ConfigDict(extra="ignore")

    instruction: str = ""
    input_fields: list[str] = []
    output_field: str | list[str] = ""

    @field_validator("instruction")
    @classmethod
    def _clean(cls, v: str) -> str:
        # Model text: no escape sequence, NUL or bidi override reaches a record or an instance (issue 11).
        return clean_line(v)


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Proposal(Record):
    """One LLM call's answer for one prompt variant of one source."""

    variant: str
    cache_key: str
    cached: bool = False
    tasks: list[TaskSpec] = []
    parse_error: str | None = None  # set when the answer is not usable JSON: the `unparseable` rejection
    usage: Usage = Usage()
    cost_usd: float = 0.0


class GeneratedSource(Record):
    schema_version: int = SCHEMA_VERSION
    source_id: str
    fingerprint: str  # over the source record and the params generate reads
    model: str
    prompt_version: str
    proposals: list[Proposal] = []
    status: SourceStatus = "ok"
    reason: str | None = None


# --- filter ----------------------------------------------------------------------------------------------


Verdict = Literal["valid", "rejected"]


class Task(Record):
    """A proposed task after the filter: valid, or rejected with a stable snake_case reason code."""

    task_id: str
    identity: str  # task_identity(): the same task across source revisions (retractions, diffs, replay)
    source_id: str
    source_revision: str
    variant: str
    instruction: str  # as proposed
    input_fields: list[str]
    output_field: str
    prompt_version: str
    model: str
    verdict: Verdict
    reason: str | None = None
    label_options: list[str] | None = None  # classification-like output: the options, when short
    duplicate_of: str | None = None  # near_duplicate: the task_id of the kept task this one repeats

    @property
    def final_instruction(self) -> str:
        return final_instruction(self.instruction, self.label_options)


def final_instruction(instruction: str, label_options: list[str] | None) -> str:
    """The instruction instances carry: label options appended when the output is classification-like."""
    if not label_options:
        return instruction
    return f"{instruction.rstrip()} Answer with one of: {', '.join(label_options)}."


class FilteredSource(Record):
    schema_version: int = SCHEMA_VERSION
    source_id: str
    fingerprint: str
    tasks: list[Task] = []

    @property
    def valid(self) -> list[Task]:
        return [t for t in self.tasks if t.verdict == "valid"]


# --- organize --------------------------------------------------------------------------------------------

INSTANCE_COLUMNS = (
    "instance_id",
    "instruction",
    "input",
    "output",
    "source_id",
    "source_revision",
    "config",
    "split",
    "row",
    "task_id",
    "prompt_version",
    "model",
)
