"""The release registry's records (ledger/*.jsonl, committed to git): source and task versions, retractions
and the index that answers them, releases and their manifests, and quality audits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from dynosaur.core.io import canonical_json
from dynosaur.core.records.base import SCHEMA_VERSION, Record, digest
from dynosaur.core.records.stages import final_instruction
from dynosaur.core.text import clean_value

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
