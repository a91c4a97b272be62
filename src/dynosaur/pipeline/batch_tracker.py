"""The Batch API tracker: the batches a generate run has in flight, kept in a JSON file across runs.

A persisted DVC output of the generate stage (`llm.mode: batch`, dynosaur.pipeline.batch): per batch its
chunk digest, attempt, custom_ids, provider batch id and last known state. One run at a time holds it
(`tracker_lock`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dynosaur.core.errors import LLMError, first_line
from dynosaur.core.io import read_model, write_json

SCHEMA_VERSION = 1
BatchState = Literal[
    "submitting",  # ours: recorded before upload; the provider may or may not have the batch
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "failed",
    "cancelling",
    "cancelled",
]
TERMINAL = {"completed", "expired", "failed", "cancelled"}


class TrackedBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk: str  # sha256 over model, attempt and sorted custom_ids: the idempotency key
    attempt: int = 1
    custom_ids: list[str]  # sorted
    batch_id: str | None = None  # None while `submitting`
    state: BatchState = "submitting"
    recorded_at: int  # our clock when the intent was recorded (shown only: no search compares clocks)
    in_progress_at: int | None = None
    expires_at: int | None = None
    total: int = 0
    completed: int = 0


class Tracker(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    batches: list[TrackedBatch] = []


def load_tracker(path: Path) -> Tracker:
    if not path.exists():
        return Tracker()
    try:
        return read_model(path, Tracker)
    except (ValidationError, ValueError) as exc:
        raise LLMError(
            f"{path}: the batch tracker is unreadable ({first_line(exc)}); restore it (git/dvc checkout) or"
            " delete it to submit the requests again"
        ) from None


@contextlib.contextmanager
def tracker_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<tracker>.lock` for one run; a second process refuses in one line. The kernel
    drops the lock with its process, so a killed run never leaves it behind."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LLMError(
                f"{path} is in use by another generate (an earlier run still polling its batches?); "
                "wait for it to end, or stop it, then run again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_tracker(path: Path) -> None:
    """Write an empty tracker if there is none: the file is a DVC output, in sync mode too."""
    if not path.exists():
        write_json(path, Tracker())
