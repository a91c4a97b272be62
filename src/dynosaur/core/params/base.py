"""What every section of params.yaml shares: `Section` (frozen, unknown keys forbidden) and the upper bounds
of numbers that have no natural one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Upper bounds for numbers that have no natural one: far beyond any real use, well inside every C type
# and timer they end up in (int64 row counts, uint32 seeds, a timeout added to a clock).
MAX_COUNT = 1_000_000_000
MAX_CHARS = 10_000_000
MAX_THREADS = 1024
MAX_SEED = 2**31 - 1  # fits every provider (OpenAI, llama.cpp), numpy and torch


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
