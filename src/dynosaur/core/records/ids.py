"""The ids that name tasks and instances (content hashes, see the package docstring), and how an id prefix
a user types is resolved."""

from __future__ import annotations

import hashlib
from typing import TypeVar

import numpy as np

from dynosaur.core.errors import Ambiguous, NotFound, some
from dynosaur.core.io import canonical_json

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
