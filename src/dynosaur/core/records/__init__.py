"""The records that pass between pipeline stages, and the ids that name tasks and instances.

Every record is a frozen pydantic model with `extra="forbid"` and a `schema_version`, written as sorted-key
JSON so `git diff` and `dvc diff` show only what changed.

Ids are content hashes over a canonical form (`dynosaur.core.io.canonical_json`):
- `task_id`     = sha256 of (source id, source revision, instruction, input fields, output field), 16 hex chars;
- `instance_id` = a 64-bit mix of (task_id, split) and the row number (see `instance_ids`), 16 hex chars.
Both are stable across runs and machines, so a re-run names the same tasks and instances the same way.

Where: base.py (`Record`, `digest`), stages.py (what collect, generate, filter and organize pass on), ids.py
(task and instance ids, id prefixes), ledger.py (the release registry's records and audits).
"""

from dynosaur.core.records.base import SCHEMA_VERSION, Record, digest
from dynosaur.core.records.ids import instance_id, instance_ids, resolve_prefix, splitmix64, task_id
from dynosaur.core.records.ledger import (
    AUDIT_QUESTIONS,
    DVC_OID,
    AuditAnswer,
    AuditItem,
    AuditLabel,
    AuditSample,
    ChainedRecord,
    Exclusion,
    LedgerRecord,
    ManifestEntry,
    Release,
    Retraction,
    RetractionIndex,
    SourceVersion,
    TaskVersion,
    Totals,
    task_identity,
)
from dynosaur.core.records.stages import (
    INSTANCE_COLUMNS,
    LABEL_VALUES,
    MEDIA_DTYPES,
    Feature,
    FeatureStats,
    FilteredSource,
    GeneratedSource,
    Proposal,
    SourceMeta,
    SourceStatus,
    SplitInfo,
    Task,
    TaskSpec,
    Usage,
    Verdict,
    final_instruction,
)

__all__ = [
    "AUDIT_QUESTIONS",
    "DVC_OID",
    "INSTANCE_COLUMNS",
    "LABEL_VALUES",
    "MEDIA_DTYPES",
    "SCHEMA_VERSION",
    "AuditAnswer",
    "AuditItem",
    "AuditLabel",
    "AuditSample",
    "ChainedRecord",
    "Exclusion",
    "Feature",
    "FeatureStats",
    "FilteredSource",
    "GeneratedSource",
    "LedgerRecord",
    "ManifestEntry",
    "Proposal",
    "Record",
    "Release",
    "Retraction",
    "RetractionIndex",
    "SourceMeta",
    "SourceStatus",
    "SourceVersion",
    "SplitInfo",
    "Task",
    "TaskSpec",
    "TaskVersion",
    "Totals",
    "Usage",
    "Verdict",
    "digest",
    "final_instruction",
    "instance_id",
    "instance_ids",
    "resolve_prefix",
    "splitmix64",
    "task_id",
    "task_identity",
]
