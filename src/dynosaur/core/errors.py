"""Typed errors. Library code raises these; the CLI and stage entry points print them as one line.

Exit codes: 2 for usage and configuration errors (`ParamsError`), 1 for everything else.
"""

from __future__ import annotations


class DynoError(Exception):
    """Base class: a one-line message saying what went wrong and what to do."""

    exit_code = 1


class ParamsError(DynoError, ValueError):
    """`params.yaml` (or a command-line option) is invalid."""

    exit_code = 2


class SourceError(DynoError):
    """A source dataset cannot be read."""

    def __init__(self, source_id: str, message: str):
        super().__init__(f"source {source_id!r}: {message}")
        self.source_id = source_id


class LLMError(DynoError):
    """An LLM call failed after the client's retries."""


class BudgetExceeded(LLMError):
    """The next call would pass `llm.max_calls` or `llm.budget_usd`; nothing past the cap was spent."""


class ModelError(DynoError):
    """The local model cannot be assembled, verified or served."""


class NotFound(DynoError, LookupError):
    """A task, source or version that does not exist."""


class StageFailed(DynoError):
    """A stage finished the sources it could, but some failed (each is recorded with its reason)."""


def one_line(exc: BaseException, max_chars: int = 300) -> str:
    """An unexpected exception as one line for a record or a log: its type and the first line of its text."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:max_chars]
