"""`llm.mode: batch`: generate's requests through the provider's Batch API (`/v1/files` + `/v1/batches`).

One run: cache hits are answered at once; the other requests are written as OpenAI-format JSONL
(`{"custom_id", "method", "url", "body"}`), uploaded, and submitted as batches of at most
`llm.batch.max_requests` requests / `llm.batch.max_file_mb`; then the run polls every `llm.batch.poll_s`
for at most `llm.batch.wait_s` seconds. Answers land in the call cache under the same keys as synchronous
answers (a request's `custom_id` *is* its cache key), so switching modes never pays twice. Requests whose
batch is still running are reported as waiting (`WAITING`), and the run says when to come back.

The tracker (dynosaur.pipeline.batch_tracker: a JSON file, a persisted DVC output of the generate stage)
lists the batches in flight: for each, its chunk digest, attempt, custom_ids, provider batch id and last
known state. A batch leaves the tracker once its rows are in the cache (or resubmitted), so a finished run
leaves `{"batches": []}`.

Idempotent submission. The chunk digest is sha256 over the model, the attempt and the sorted custom_ids; it
is recorded in the tracker (state `submitting`) *before* anything is uploaded, and sent as the batch's
`metadata.dynosaur_chunk`. A run killed at any point therefore resumes without submitting twice:
- killed while polling: the tracker has the batch id; the next run polls it;
- killed between `POST /v1/batches` and the tracker's update: the next run lists the provider's batches
  created since the intent and adopts the one carrying the chunk's digest;
- killed before the batch was created: nothing was submitted; the intent is dropped and its requests are
  chunked again (an uploaded input file may be left behind; files cost nothing to keep).

A batch's answers are cached by the first run that finds it finished, for the requests that run asks for.
A running batch none of whose requests a run asks for (its source was removed or changed) does not hold
that run up; it stays tracked for a run that asks again, and when it has finished its rows are dropped.

Rows that failed (a non-200 answer, or no answer) and rows of an expired, cancelled or failed batch are
resubmitted in new batches, up to `llm.batch.max_attempts` in all; after that they fail like synchronous calls
(recorded in the cache's failures, tried again next run).

Cost: batch prices (`LLMParams.price()` in batch mode: half the synchronous price by default) for the dry
run, the budget cap and each answer's `cost_usd`. A run's caps cover what it submits: each new request
reserves its worst case before it goes into a batch; answers to batches submitted by an earlier run were
counted by that run.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from dynosaur.core.errors import LLMError, first_line
from dynosaur.core.io import write_json
from dynosaur.core.runner import log
from dynosaur.pipeline.batch_files import ENDPOINT, chunk_digest, input_line, parse_row, split_chunks
from dynosaur.pipeline.batch_tracker import (
    TERMINAL,
    BatchState,
    TrackedBatch,
    load_tracker,
    tracker_lock,
)
from dynosaur.pipeline.llm import LLM, ChatRequest, ChatResult, backoff_s, incomplete_answer

QUEUE_LIMIT_CODES = {"token_limit_exceeded"}  # a batch failed because the provider's queue is full
QUEUE_BACKOFF_MAX_S = 600.0
WAITING = "waiting_for_batch"  # ChatResult.skipped of a request whose batch is still running
METADATA_KEY = "dynosaur_chunk"
ADOPT_SCAN = 1000  # a killed run's batch is looked for among the provider's newest this many
FALLBACK_WAIT_S = 3600  # "run again after" when a batch shows no progress yet
CACHE_WRITERS = 16  # threads writing a finished batch's answers into the call cache


class Waiting(BaseModel):
    """What a run left running at the provider."""

    batches: int
    requests: int
    eta: int  # unix time: when to run again
    deadline: int | None  # the latest `expires_at`: the provider answers (or expires the rest) by then

    def line(self, sources: int, tracker: Path) -> str:
        when = _utc(self.eta, "%H:%M UTC" if self.eta - time.time() < 20 * 3600 else "%Y-%m-%d %H:%M UTC")
        deadline = (
            f"; the provider's deadline is {_utc(self.deadline, '%Y-%m-%d %H:%M UTC')}"
            if self.deadline
            else ""
        )
        return (
            f"generate: waiting for {self.batches} batch(es) at the provider ({self.requests} requests, "
            f"{sources} source(s) not written yet); run `dvc repro -f -s generate && dvc repro` again after "
            f"about {when}{deadline} (tracked in {tracker})"
        )


def _utc(ts: int, fmt: str) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)


class BatchRunner:
    """`complete_many` over the Batch API; `waiting` and `counts` describe the run afterwards."""

    def __init__(
        self,
        llm: LLM,
        tracker_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.llm = llm
        self.params = llm.params.batch
        self.path = tracker_path
        self.tracker = load_tracker(tracker_path)
        self.clock = clock
        self.sleep = sleep
        self.waiting: Waiting | None = None
        self.counts: Counter[str] = Counter()
        self._known: dict[str, ChatRequest] = {}
        self._yielded: set[str] = set()
        self._reserved: dict[str, float] = {}  # this run's worst-case reservations, by custom_id
        self._lines: dict[str, bytes] = {}  # chunk → input file, for intents recorded by this run
        self._batches: dict[str, Any] = {}  # chunk → the provider's batch object, as last seen this run
        self._held: list[str] = []  # rows of a batch the provider's queue limit failed: resubmitted later
        self._held_attempt = 1
        self._resubmit_at = 0.0
        self._queue_failures = 0

    # --- the run ---------------------------------------------------------------------------------------

    def complete_many(self, requests: list[ChatRequest]) -> Iterator[tuple[ChatRequest, ChatResult]]:
        """Cache hits, then answers from batches (this run's and earlier runs'), then the ones still waiting.
        The tracker is locked for the whole run: one process per tracker (issue 20, case 8)."""
        with tracker_lock(self.path):
            yield from self._complete_many(requests)

    def _complete_many(self, requests: list[ChatRequest]) -> Iterator[tuple[ChatRequest, ChatResult]]:
        self._known = {r.cache_key: r for r in requests}  # a digest each: computed once
        misses = []
        for key in self._known:
            hit = self.llm.cache.get(key)
            if hit is not None:
                yield from self._emit(key, hit)
            else:
                misses.append(key)
        self._resume_intents()
        in_flight = {cid for b in self.tracker.batches for cid in b.custom_ids}
        self.counts["resumed"] = sum(key in in_flight for key in misses)
        yield from self._submit([key for key in misses if key not in in_flight], attempt=1)

        deadline = self.clock() + self.params.wait_s
        while True:
            self._refresh()
            for tracked in [b for b in self.tracker.batches if b.state in TERMINAL]:
                yield from self._ingest(tracked)
            if self._held and self.clock() >= self._resubmit_at:
                held, self._held = self._held, []
                yield from self._submit(held, attempt=self._held_attempt)
            if (not self._awaited() and not self._held) or self.clock() >= deadline:
                break
            wake = self._resubmit_at if self._held and not self._awaited() else deadline
            self.sleep(max(0.0, min(self.params.poll_s, wake - self.clock(), deadline - self.clock())))

        awaited = self._awaited()
        waiting = [cid for b in awaited for cid in b.custom_ids if cid in self._known]
        waiting += [cid for cid in self._held if cid in self._known]  # asked again by the next run
        for cid in waiting:
            yield from self._emit(cid, ChatResult(skipped=WAITING))
        self.counts["waiting"] = len(waiting)
        self.waiting = self._waiting(awaited) if awaited else None

    def _hold(self, tracked: TrackedBatch, code: str) -> None:
        """A batch the provider's queue limit failed: its rows are resubmitted after a back-off that doubles
        each time (from `batch.poll_s`, at most QUEUE_BACKOFF_MAX_S), without using up their attempts."""
        rows = [cid for cid in tracked.custom_ids if cid in self._known]
        backoff = min(self.params.poll_s * 2**self._queue_failures, QUEUE_BACKOFF_MAX_S)
        self._queue_failures += 1
        self._held += rows
        self._held_attempt = tracked.attempt + 1  # a new chunk digest: never adopts the failed batch
        self._resubmit_at = self.clock() + backoff
        self.tracker.batches.remove(tracked)
        self._save()
        self.counts["queue_limited"] += len(rows)
        log(
            f"generate: the provider's batch queue limit ({code}) was reached; {len(rows)} request(s) are "
            f"resubmitted after {backoff:g}s (fewer requests in flight: lower llm.batch.max_requests)"
        )

    def _awaited(self) -> list[TrackedBatch]:
        """The running batches this run asks something of. A batch none of whose rows are asked for any more
        (its source removed or changed) does not hold a run up; it stays tracked, for a run that asks again."""
        return [
            b
            for b in self.tracker.batches
            if b.state not in TERMINAL and any(cid in self._known for cid in b.custom_ids)
        ]

    def _emit(self, key: str, result: ChatResult) -> Iterator[tuple[ChatRequest, ChatResult]]:
        if key not in self._yielded:
            self._yielded.add(key)
            yield self._known[key], result

    def _save(self) -> None:
        write_json(self.path, self.tracker)

    # --- submission ------------------------------------------------------------------------------------

    def _submit(self, keys: list[str], attempt: int) -> Iterator[tuple[ChatRequest, ChatResult]]:
        """Reserve, chunk, record the intents, then upload and create each batch."""
        accepted = []
        for key in sorted(keys):
            if key not in self._reserved:
                reserved = self.llm.budget.reserve(self._known[key])
                if reserved is None:
                    yield from self._emit(
                        key, ChatResult(skipped="cap reached (llm.max_calls / llm.budget_usd)")
                    )
                    continue
                self._reserved[key] = reserved
            accepted.append(key)
        if not accepted:
            return
        lines = [(key, input_line(key, self.llm.body(self._known[key]))) for key in accepted]
        chunks = split_chunks(lines, self.params.max_requests, int(self.params.max_file_mb * 1_000_000))
        identity = self.llm.model_identity
        intents = []
        for chunk in chunks:
            ids = [key for key, _ in chunk]
            tracked = TrackedBatch(
                chunk=chunk_digest(identity, attempt, ids),
                attempt=attempt,
                custom_ids=ids,
                recorded_at=int(self.clock()),
            )
            self._lines[tracked.chunk] = b"".join(line for _, line in chunk)
            intents.append(tracked)
        self.tracker.batches.extend(intents)
        self._save()  # the intents first: a kill from here on never leads to a second submission
        for tracked in intents:
            self._create(tracked)
        self.counts["submitted"] += len(accepted)

    def _create(self, tracked: TrackedBatch) -> None:
        """Upload, then create the batch once per try: the SDK's own retry would make a second batch when a
        created one's answer is lost (issue 20, case 3). On any doubt, the provider's newest batches are
        searched for this chunk's metadata before another is created."""

        client = self.llm.client()
        data = self._lines.pop(tracked.chunk)
        with self._provider("upload"):
            file = client.files.create(file=(f"dynosaur-{tracked.chunk[:16]}.jsonl", data), purpose="batch")
        once = client.with_options(max_retries=0)
        tries = self.llm.params.max_retries + 1
        for attempt in range(1, tries + 1):
            try:
                with self._provider("create batch"):
                    batch = once.batches.create(
                        input_file_id=file.id,
                        endpoint=ENDPOINT,
                        completion_window="24h",
                        metadata={METADATA_KEY: tracked.chunk},
                    )
                self.counts["batches_submitted"] += 1
                break
            except LLMError:
                found = self._find({tracked.chunk}).get(tracked.chunk)
                if found is not None:  # it was created after all: adopt it
                    batch = found
                    self.counts["batches_adopted"] += 1
                    break
                if attempt == tries:
                    raise
                time.sleep(backoff_s(attempt))
        self._update(tracked, batch)
        self._save()

    def _find(self, chunks: set[str]) -> dict[str, Any]:
        """The provider's batches carrying these chunks' metadata, looked for among its newest ADOPT_SCAN by
        metadata alone: no clock is compared (issue 20, case 7)."""
        found: dict[str, Any] = {}
        with self._provider("list batches"):
            for i, batch in enumerate(self.llm.client().batches.list(limit=100)):
                chunk = (batch.metadata or {}).get(METADATA_KEY)
                if chunk in chunks and chunk not in found:
                    found[chunk] = batch
                if len(found) == len(chunks) or i + 1 >= ADOPT_SCAN:
                    break
        return found

    def _resume_intents(self) -> None:
        """Intents left by a killed run: adopt the batch the provider has for each, else drop the intent."""
        intents = [b for b in self.tracker.batches if b.batch_id is None]
        if not intents:
            return
        found = self._find({b.chunk for b in intents})
        for tracked in intents:
            if tracked.chunk in found:
                self._update(tracked, found[tracked.chunk])
                self.counts["batches_adopted"] += 1
            else:
                self.tracker.batches.remove(tracked)
                self.counts["intents_dropped"] += 1
        self._save()

    # --- polling and results ---------------------------------------------------------------------------

    def _update(self, tracked: TrackedBatch, batch: Any) -> None:
        counts = batch.request_counts
        tracked.batch_id = batch.id
        if batch.status in get_args(BatchState):
            tracked.state = batch.status
        else:  # providers add statuses: an unknown one is waited on, never written into the tracker
            log(f"generate: batch {batch.id} has status {batch.status!r}, unknown here: waiting on it")
            tracked.state = "in_progress"
        tracked.in_progress_at = batch.in_progress_at
        tracked.expires_at = batch.expires_at
        tracked.total = getattr(counts, "total", 0) or 0
        tracked.completed = getattr(counts, "completed", 0) or 0
        self._batches[tracked.chunk] = batch

    def _refresh(self) -> None:
        client = self.llm.client()
        changed = False
        for tracked in self.tracker.batches:
            if tracked.batch_id is None or (tracked.state in TERMINAL and tracked.chunk in self._batches):
                continue  # a terminal batch is fetched once per run: its result files are needed
            with self._provider("poll batch"):
                batch = client.batches.retrieve(tracked.batch_id)
            before = (tracked.state, tracked.completed)
            self._update(tracked, batch)
            changed |= before != (tracked.state, tracked.completed)
        if changed:
            self._save()

    def _ingest(self, tracked: TrackedBatch) -> Iterator[tuple[ChatRequest, ChatResult]]:
        """Cache a finished batch's answers, resubmit its failed rows, and drop it from the tracker."""
        batch = self._batches.get(tracked.chunk)
        rows: dict[str, ChatResult] = {}
        import openai

        gone = False
        for file_id in (getattr(batch, "output_file_id", None), getattr(batch, "error_file_id", None)):
            if file_id:
                try:
                    with self._provider("download results"):
                        text = self.llm.client().files.content(file_id).text
                except LLMError as exc:
                    if not isinstance(exc.__context__, openai.NotFoundError):
                        raise
                    gone = True  # past the provider's retention: its rows are asked again below
                    continue
                for line in text.splitlines():
                    if line.strip():
                        row = json.loads(line)
                        rows.setdefault(str(row.get("custom_id")), parse_row(row, self.llm.budget.cost))
        reason = f"batch {tracked.state}" + (": its result file is gone (404)" if gone else "")
        errors = getattr(getattr(batch, "errors", None), "data", None)
        if errors:
            reason += f": {errors[0].code}"
        if (
            errors and errors[0].code in QUEUE_LIMIT_CODES
        ):  # the provider's queue is full: not the rows' fault
            self._hold(tracked, errors[0].code)
            return

        retry: list[str] = []
        answers: list[tuple[str, ChatResult]] = []
        for cid in tracked.custom_ids:
            if cid not in self._known:
                self.counts["orphaned_rows"] += 1  # no longer asked for: its answer is not needed
                continue
            result = rows.get(cid) or ChatResult(error=f"{reason}: no result for this request")
            problem = incomplete_answer(result, self._known[cid].max_tokens)
            if problem is not None:  # cut or empty: asked again as in sync mode, then a loud failure
                tries = f"{tracked.attempt} tr{'y' if tracked.attempt == 1 else 'ies'}"
                result = result.model_copy(update={"error": f"{problem} ({tries})", "incomplete": True})
                self.counts["incomplete_answers"] += 1
            if result.error is None:
                answers.append((cid, result))
            elif problem is not None and tracked.attempt <= self.llm.params.retry_incomplete:
                self.llm.budget.settle(0.0, result.cost_usd)  # billed: a cut answer is an answer
                retry.append(cid)
            elif problem is None and tracked.attempt < self.params.max_attempts:
                retry.append(cid)
            else:
                self.llm.cache.record_failure(cid, result.error)
                self.llm.budget.settle(self._reserved.pop(cid, 0.0), result.cost_usd)
                self.counts["failed"] += 1
                yield from self._emit(cid, result)
        # Each cache entry is fsynced (~6 ms on a shared disk): written by a pool, 10,000 take seconds, not a minute.
        with ThreadPoolExecutor(max_workers=CACHE_WRITERS, thread_name_prefix="batch-cache") as pool:
            list(pool.map(lambda a: self.llm.cache.put(a[0], self._known[a[0]], a[1]), answers))
        for cid, result in answers:
            self.llm.budget.settle(self._reserved.pop(cid, 0.0), result.cost_usd)
            self.counts["answered"] += 1
            yield from self._emit(cid, result)
        self.tracker.batches.remove(tracked)
        self._save()  # answers are cached first: a kill here re-reads this batch, never resubmits twice
        self.counts["resubmitted"] += len(retry)
        yield from self._submit(retry, attempt=tracked.attempt + 1)

    def _waiting(self, awaited: list[TrackedBatch]) -> Waiting:
        now = int(self.clock())
        etas, deadlines = [], []
        for b in awaited:
            if b.expires_at:
                deadlines.append(b.expires_at)
            if b.in_progress_at and b.completed and b.total:
                etas.append(int(b.in_progress_at + (now - b.in_progress_at) * b.total / b.completed))
        deadline = max(deadlines) if deadlines else None
        eta = max(etas) if etas else now + FALLBACK_WAIT_S
        if deadline is not None:
            eta = min(eta, deadline)
        return Waiting(
            batches=len(awaited),
            requests=sum(cid in self._known for b in awaited for cid in b.custom_ids),
            eta=max(eta, now + 60),
            deadline=deadline,
        )

    @contextlib.contextmanager
    def _provider(self, what: str) -> Iterator[None]:
        """Provider errors as one-line LLMErrors; the tracker on disk stays consistent for the next run."""
        import openai

        try:
            yield
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMError(f"the LLM provider refused the credentials ({type(exc).__name__})") from None
        except openai.NotFoundError as exc:
            if what in {"upload", "list batches"}:
                raise LLMError(
                    f"the server has no Batch API ({what}: {self.llm.redact(first_line(exc, typed=True))});"
                    " set llm.mode: sync"
                ) from None
            raise LLMError(f"batch API: {what}: {self.llm.redact(first_line(exc, typed=True))}") from None
        except openai.APIError as exc:
            raise LLMError(
                f"batch API: {what}: {self.llm.redact(first_line(exc, typed=True))}"
                " (what was submitted is tracked; run again to resume)"
            ) from None
