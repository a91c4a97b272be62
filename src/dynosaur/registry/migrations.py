"""Ordered, named migrations of ledger lines from one `schema_version` to the next.

A sealed line is never rewritten: its hash covers the bytes as stored. When a record's format changes, bump
`dynosaur.core.records.SCHEMA_VERSION` and register a step here that turns the stored dict of version N into
version N + 1. Readers check the hash on the stored form first, then migrate, then validate the model, so old
lines keep verifying and still parse. A line from a newer schema than this code knows is an error, not a guess.
(The pattern follows simonw/llm's `migrations.py`: named steps, applied in order, each tested.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynosaur.core.errors import SchemaError
from dynosaur.core.records import SCHEMA_VERSION

Step = Callable[[dict[str, Any]], dict[str, Any]]

# record type name → {from_version: step to from_version + 1}. Empty while the schema is at version 1.
MIGRATIONS: dict[str, dict[int, Step]] = {}


def migrate(kind: str, data: dict[str, Any], current: int = SCHEMA_VERSION) -> dict[str, Any]:
    """`data` (a stored line less nothing) brought from its `schema_version` up to `current`."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise SchemaError(f"{kind}: schema_version {version!r} is not a positive integer")
    if version > current:
        raise SchemaError(
            f"{kind}: schema_version {version} is newer than this dynosaur reads ({current}); upgrade dynosaur"
        )
    steps = MIGRATIONS.get(kind, {})
    while version < current:
        if version not in steps:
            raise SchemaError(f"{kind}: no migration from schema_version {version} to {version + 1}")
        data = {**steps[version](dict(data)), "schema_version": version + 1}
        version += 1
    return data
