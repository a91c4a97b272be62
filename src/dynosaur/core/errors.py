"""Every error type of dynosaur, and how one is shown. Library code raises these; the CLI and the stage
entry points print them as one line (`error_line`) and exit with `exit_code`.

Exit codes: 2 for usage and configuration errors (`ParamsError`), 1 for everything else. Each error carries
the ids a user needs to act on it (`source_id`, `task_id`, `version`, `repo_id`) as attributes, so callers
and tests never parse messages. `DYNO_DEBUG=1` turns the one line back into the traceback; the line says so
only for errors whose traceback can help (`debug_hint`), not for a usage mistake or an unknown id.
"""

from __future__ import annotations

from collections.abc import Iterable

DEBUG_HINT = "(DYNO_DEBUG=1 shows the traceback)"
# Ctrl-C, as every stage and `dyno` command says it (exit 130): the LLM cache and finished sources are kept.
INTERRUPTED = "Interrupted: finished work is kept; run again to resume."


class DynoError(Exception):
    """Base class: a one-line message saying what went wrong and what to do."""

    exit_code = 1
    debug_hint = True  # the line ends with DEBUG_HINT: the traceback may show more than the message

    def __init__(
        self,
        message: str,
        *,
        source_id: str | None = None,
        task_id: str | None = None,
        version: str | None = None,
        repo_id: str | None = None,
    ):
        super().__init__(message)
        self.source_id = source_id
        self.task_id = task_id
        self.version = version
        self.repo_id = repo_id


class ParamsError(DynoError, ValueError):
    """`params.yaml` (or a command-line option) is invalid."""

    exit_code = 2
    debug_hint = False


class SourceError(DynoError):
    """A source dataset cannot be read."""

    def __init__(self, source_id: str, message: str):
        super().__init__(f"source {source_id!r}: {message}", source_id=source_id)


class LLMError(DynoError):
    """An LLM call failed after the client's retries."""


class BudgetExceeded(LLMError):
    """The next call would pass `llm.max_calls` or `llm.budget_usd`; nothing past the cap was spent."""


class ModelError(DynoError):
    """The local model cannot be assembled, verified or served."""


class NotFound(DynoError, LookupError):
    """A task, source or version that does not exist."""

    debug_hint = False


class Ambiguous(DynoError, LookupError):
    """An id prefix that names more than one task (or source): a usage error, give more characters."""

    exit_code = 2
    debug_hint = False


class NotInProject(DynoError):
    """`dyno` run outside any Dynosaur project (no folder up from here holds its `dvc.yaml`)."""

    exit_code = 2
    debug_hint = False


class StageFailed(DynoError):
    """A stage finished the sources it could, but some failed (each is recorded with its reason)."""


class EmptyInput(DynoError):
    """A stage's source list or input records are empty while it has outputs: it refuses to remove them all,
    since that is what an empty or unreadable `params.yaml` looks like (issue 11)."""

    exit_code = 2
    debug_hint = False


class RecordError(DynoError, ValueError):
    """A record file (a stage's input or output) is not what its model says: damaged or hand-edited."""


class LedgerError(DynoError):
    """A ledger record or manifest does not match its hash (tampered with, or damaged)."""


class SchemaError(LedgerError):
    """A ledger line whose schema this version of dynosaur cannot read."""


class PublishConflict(DynoError):
    """The Hub repo moved since the last publish: someone else pushed."""


class LockHeld(DynoError):
    """Another live `dyno` process holds the registry lock (release, retract or recovery)."""

    debug_hint = False

    def __init__(self, message: str, *, pid: int | None = None, host: str | None = None):
        super().__init__(message)
        self.pid = pid
        self.host = host


class UsageError(ParamsError):
    """A command was given options that do not go together, or lacks one it needs."""


class PipelineFileError(ParamsError):
    """`dvc.yaml` is missing or does not name what dynosaur reads from it."""


class InputFileError(DynoError):
    """A file the user points dynosaur at (an evaluation set, a Super-NI task) cannot be read as one."""


class TrainingError(DynoError):
    """Training, evaluation or the continual stage cannot go on (diverged, nothing to train or replay)."""


class GitError(DynoError):
    """A git or DVC operation failed, or the repository is in no state for it (detached HEAD, no remote)."""


class DvcBusy(GitError):
    """Another DVC command (a `dvc repro`) holds the repository's lock."""

    debug_hint = False


class NotReady(DynoError):
    """The workspace is not ready to release: uncommitted changes, stale stages, stray files in the corpus."""

    debug_hint = False


class AlreadyRetracted(DynoError):
    """The task or source is retracted already."""

    debug_hint = False


class PullError(DynoError):
    """A release cannot be pulled: not tagged, a destination that cannot be used, objects DVC cannot fetch."""


class DamagedCopy(PullError):
    """A shard DVC served (local cache or remote) differs from the released file."""


class HubError(DynoError):
    """The Hugging Face Hub refused, failed, or answered what cannot be used."""


class AuditError(DynoError):
    """An audit's sample or answers do not fit its release."""


def first_line(exc: BaseException, *, typed: bool = False, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), at most `limit`
    characters; `typed` prefixes the type name, for errors from third-party code."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), "")
    if typed or not line:
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line[:limit]


def error_line(exc: DynoError) -> str:
    """What a user sees for a DynoError: one line, with the hint that shows the rest when a traceback can help
    (`debug_hint`). Control characters a message may quote (from a file, a dataset, a model) are shown
    escaped, never sent raw to the terminal."""
    from dynosaur.core.text import printable

    line = f"Error: {printable(first_line(exc))}"
    return f"{line} {DEBUG_HINT}" if exc.debug_hint else line


def some(items: Iterable[object], shown: int = 3) -> str:
    """A list for a one-line message, capped: `a, b, c and 497 more`; `none` when empty. Never thousands of
    ids on one line."""
    names = [str(x) for x in items]
    if not names:
        return "none"
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"
