"""What every record shares: `Record` (frozen, unknown keys forbidden), the schema version, and `digest`
(sha256 over canonical JSON)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from dynosaur.core.io import canonical_json

SCHEMA_VERSION = 1


def digest(obj: Any) -> str:
    """`sha256:<hex>` over the canonical JSON of `obj` (pydantic models are dumped first)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return "sha256:" + hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
