"""The records that pass between pipeline stages, and the ids that name tasks and instances.

Every record is a frozen pydantic model with `extra="forbid"` and a `schema_version`, written as sorted-key
JSON so `git diff` and `dvc diff` show only what changed.

Ids are content hashes over a canonical form (`dynosaur.core.io.canonical_json`):
- `task_id`     = sha256 of (source id, source revision, instruction, input fields, output field), 16 hex chars;
- `instance_id` = a 64-bit mix of (task_id, split) and the row number (see `instance_ids`), 16 hex chars.
Both are stable across runs and machines, so a re-run names the same tasks and instances the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dynosaur.core.errors import Ambiguous, NotFound, some
from dynosaur.core.io import canonical_json
from dynosaur.core.text import clean_line, clean_value, clean_values

SCHEMA_VERSION = 1


def digest(obj: Any) -> str:
    """`sha256:<hex>` over the canonical JSON of `obj` (pydantic models are dumped first)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return "sha256:" + hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    files: list[str] = []  # relative to the source folder (local sources only)


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


# --- ids -------------------------------------------------------------------------------------------------


def task_id(
    source_id: str, source_revision: str, instruction: str, input_fields: list[str], output_field: str
) -> str:
    payload = [source_id, source_revision, instruction, list(input_fields), output_field]
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:16]


_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on uint64, so distinct rows of one (task, split) never collide."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def instance_ids(task: str, split: str, rows: np.ndarray) -> np.ndarray:
    """Instance ids for many rows at once (vectorised: organize names millions of rows).

    id = hex(splitmix64(k + row)), k = the first 8 bytes of sha256(task_id, split). Within one (task, split)
    ids are distinct by construction; across tasks they collide with 64-bit birthday odds.
    """
    key = np.uint64(int.from_bytes(hashlib.sha256(f"{task}\x1f{split}".encode()).digest()[:8], "big"))
    with np.errstate(over="ignore"):
        mixed = splitmix64(rows.astype(np.uint64) + key)
    as_bytes = mixed.astype(">u8").view(np.uint8).reshape(-1, 8)
    return _HEX[as_bytes].view("S16").ravel()


def instance_id(task: str, split: str, row: int) -> str:
    return instance_ids(task, split, np.array([row]))[0].decode()


# --- the release registry (ledger/*.jsonl, committed to git) ---------------------------------------------


class LedgerRecord(Record):
    """A line in the ledger. `hash` covers the record's canonical form without the hash itself.

    Every ledger file is a hash chain: the field named by `LINK` holds the hash of the line before (None on
    a file's first line). See `dynosaur.registry.ledger` for how lines written before the chain existed read.
    """

    LINK: ClassVar[str] = "prev"

    schema_version: int = SCHEMA_VERSION
    hash: str = ""

    def content_hash(self) -> str:
        return digest(self.model_dump(mode="json", exclude={"hash"}))

    def sealed(self):
        return self.model_copy(update={"hash": self.content_hash()})

    @property
    def link(self) -> str | None:
        """The previous line's hash, as this record names it."""
        return getattr(self, self.LINK)


class ChainedRecord(LedgerRecord):
    """A ledger record whose chain link is its own field, `prev` (added after the first ledgers were
    written: lines without the key are read as written before the chain began)."""

    prev: str | None = None


class SourceVersion(ChainedRecord):
    source_id: str
    origin: str
    revision: str
    license: str | None
    metadata_fingerprint: str  # SourceMeta.fingerprint: what the LLM and the filter saw
    languages: list[str] = []  # SourceMeta.languages (records released before issue 23 §7 have none)

    @property
    def key(self) -> str:
        return f"{self.source_id}@{self.revision}"


class TaskVersion(ChainedRecord):
    task_id: str
    source_id: str
    source_revision: str
    instruction: str  # as proposed; instances carry it with the label options appended
    label_options: list[str] | None = None
    input_fields: list[str]
    output_field: str
    prompt_version: str
    model: str
    verdict: str
    reason: str | None = None

    @property
    def final_instruction(self) -> str:
        return final_instruction(self.instruction, self.label_options)


class Retraction(ChainedRecord):
    """A tombstone: from the next release on, the task (every version of it) or the whole source is out."""

    kind: Literal["task", "source"]
    target: str  # a task_id or a source_id
    identity: str | None = None  # task: its identity key, so a new version of the same task stays out too
    reason: str
    created_at: str


class RetractionIndex:
    """The one answer to "is this source or task retracted, and why": every reader of tombstones asks here.

    A task is out when its own id, its identity (every version of the task) or its source is retracted.
    """

    def __init__(self, retractions: Iterable[Retraction] = ()):
        self.sources: dict[str, str] = {}
        self.tasks: dict[str, str] = {}  # task ids and task identities → reason
        for r in retractions:
            if r.kind == "source":
                self.sources.setdefault(r.target, r.reason)
            else:
                for key in (r.target, r.identity):
                    if key:
                        self.tasks.setdefault(key, r.reason)

    def source(self, source_id: str) -> str | None:
        """Why the source is retracted, or None."""
        return self.sources.get(source_id)

    def task(self, task_id: str, identity: str | None = None, source_id: str | None = None) -> str | None:
        """Why the task (by id or identity) or its source is retracted, or None."""
        for key in (task_id, identity):
            if key and key in self.tasks:
                return self.tasks[key]
        return self.source(source_id) if source_id else None

    def task_keys(self) -> list[str]:
        """Sorted retracted task ids and identities: what a stage's fingerprint covers."""
        return sorted(self.tasks)


# A DVC object id: md5 hex, `.dir` for a directory listing.
DVC_OID = re.compile(r"[0-9a-f]{32}(\.dir)?")


class ManifestEntry(Record):
    task_id: str
    source_id: str
    source_revision: str
    identity: str  # source, instruction, inputs, output: what stays the same across source revisions
    instances: int
    digest: str  # over the task's instance ids and contents (see dynosaur.registry.manifest)
    license: str | None
    shard: str  # path in the corpus: <source_id>/<task_id>.parquet
    shard_md5: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")  # the shard's DVC object id
    shard_sha256: str | None = None  # sha256 of the shard file's bytes: a pull checks these, not every row


class Exclusion(Record):
    source_id: str
    reason: str


class Totals(Record):
    sources: int
    tasks: int
    instances: int


class Release(LedgerRecord):
    LINK: ClassVar[str] = "parent"  # the previous release is the previous line: one field for both

    version: int
    tag: str  # git tag, "v<version>"
    parent: str | None  # the previous release's hash: the chain
    message: str
    created_at: str
    manifest: str  # ledger/manifests/v<version>.jsonl
    manifest_digest: str
    corpus_md5: str  # DVC's hash of the corpus directory (its .dir object)
    totals: Totals
    licenses: dict[str, int]  # licence → instances
    excluded: list[Exclusion] = []
    changelog: list[str] = []


def task_identity(source_id: str, instruction: str, input_fields: list[str], output_field: str) -> str:
    """Names a task across source revisions: the same proposal on a new revision is the same task."""
    payload = [source_id, " ".join(instruction.lower().split()), list(input_fields), output_field]
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:16]


# --- audits: a release's measured quality (ledger/audits.jsonl; answers in audits/<audit_id>/) ----------

AuditLabel = Literal["yes", "no", "unsure"]
# MUFFIN's three questions, in the order the review page asks them.
AUDIT_QUESTIONS = ("valid_instruction", "input_suffices", "output_correct")


class AuditItem(Record):
    """One sampled instance, with the task and source it came from (the sample's strata)."""

    instance_id: str
    task_id: str
    source_id: str


class AuditSample(ChainedRecord):
    """A sample of one release drawn for a quality audit: reproducible from (release, seed, n)."""

    audit_id: str  # "<tag>-seed<seed>-n<n>": answers name their audit by it
    release: str  # the release's tag
    release_hash: str  # the release record's hash: the very version that was sampled
    seed: int
    n: int  # asked for; fewer items when the release has fewer instances
    method: str  # how the draw was made (see dynosaur.registry.audit)
    items: list[AuditItem]
    code_version: str  # dynosaur's version, and the commit the release's tag names
    prompt_versions: list[str]  # of the sampled instances' tasks
    models: list[str]  # that proposed the sampled instances' tasks
    created_at: str


class AuditAnswer(ChainedRecord):
    """One reviewer's answers about one sampled instance, as they stood when written. The latest line per
    (reviewer, instance) counts; an undo is a line with the answer taken back (None)."""

    audit_id: str
    instance_id: str
    reviewer: str  # a person's name, or "judge" for the LLM judge (stored apart, in judge.jsonl)
    kind: Literal["human", "judge"] = "human"
    valid_instruction: AuditLabel | None = None
    input_suffices: AuditLabel | None = None
    output_correct: AuditLabel | None = None
    note: str = ""
    model: str | None = None  # judge: the model identity that answered
    prompt_version: str | None = None  # judge: the judge prompt's version
    created_at: str

    @field_validator("note")
    @classmethod
    def _clean_note(cls, v: str) -> str:
        return clean_value(v)

    @property
    def complete(self) -> bool:
        return all(getattr(self, q) is not None for q in AUDIT_QUESTIONS)

    @property
    def fully_valid(self) -> bool:
        return all(getattr(self, q) == "yes" for q in AUDIT_QUESTIONS)


T = TypeVar("T")


def resolve_prefix(prefix: str, matches: dict[str, T], kind: str) -> T:
    """The one match of an id prefix (a task's, a release's): every command that takes an id resolves it
    here. `NotFound` for none, `Ambiguous` (exit 2) naming a few for several."""
    if len(matches) == 1:
        return next(iter(matches.values()))
    if not matches:
        raise NotFound(f"unknown {kind} {prefix!r} (see `dyno {kind}s`)")
    raise Ambiguous(
        f"{kind} id prefix {prefix!r} matches {len(matches)} {kind}s: {some(sorted(matches))};"
        " give more characters"
    )
