"""Stage fingerprints: when a stage may skip a unit of work (a source, a task's shard).

Each stage stores, next to what it wrote for a unit, a fingerprint of what that output depends on, and skips
the unit next run when today's fingerprint is the same. A fingerprint covers exactly:

- the unit's inputs: the upstream records (their own fingerprints), the source revision, the retractions
  that touch it;
- the params that change the output, and only those: a field declared with `affects_output=False` in its
  params model (a batch size, a thread count, a timeout) is left out, so tuning it reprocesses nothing;
- the stage's code version (`FORMAT_VERSION`, `RULES_VERSION`, ...), bumped by hand when the code changes what
  it writes for the same inputs.

Every stage builds its fingerprint with `fingerprint()`; nothing else hashes stage inputs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dynosaur.core.records import digest

NOT_OUTPUT = "affects_output"


def tuning(**kwargs: Any) -> Any:
    """A params field that changes how a stage runs, never what it writes: fingerprints leave it out."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[NOT_OUTPUT] = False
    return Field(json_schema_extra=extra, **kwargs)


def output_params(params: BaseModel) -> dict[str, Any]:
    """`params` as JSON, less the fields marked `tuning(...)`, recursively."""
    out: dict[str, Any] = {}
    for name, field in type(params).model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get(NOT_OUTPUT) is False:
            continue
        value = getattr(params, name)
        out[name] = output_params(value) if isinstance(value, BaseModel) else _json(params, name)
    return out


def _json(params: BaseModel, name: str) -> Any:
    return params.model_dump(mode="json", include={name})[name]


def fingerprint(*, inputs: Any, params: BaseModel | None = None, version: int | str) -> str:
    """`sha256:<hex>` over a unit's inputs, the output-relevant params and the stage's code version."""
    return digest([inputs, output_params(params) if params is not None else None, version])


def loaded_code(package: str = "dynosaur") -> str:
    """`sha256:<hex>` over the source files of every module of `package` this process has imported: the
    code version of a stage whose output is a function of much of the package (generate's requests: prompts,
    field roles, wording, demonstrations), for a memory of its work that no hand-bumped version can forget."""
    outer = hashlib.sha256()
    for name in sorted(n for n in sys.modules if n == package or n.startswith(package + ".")):
        origin = getattr(sys.modules[name], "__file__", None)
        if origin and origin.endswith(".py"):
            outer.update(f"{name}\0{hashlib.sha256(Path(origin).read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + outer.hexdigest()
