"""Every LLM call goes through here: one `openai` client, the call cache, budget and cost accounting.

Providers differ only in where the client points:
- `local`: llama.cpp's OpenAI-compatible server, started in-process by xllamacpp on 127.0.0.1, and only
  when a call misses the cache (a fully cached run never loads the model);
- `openai`: the OpenAI API, key from the environment variable named by `llm.api_key_env` (OPENAI_API_KEY);
- `compatible`: any OpenAI-compatible server at `llm.base_url` (vLLM, Ollama, a llama.cpp server), sent a
  key only when `llm.api_key_env` names its variable: `$OPENAI_API_KEY` never goes to another server unasked.
A key never travels over plain http to a host that is not loopback unless `llm.allow_insecure_http` says so
(a `ParamsError` naming `llm.base_url`, before anything is sent). Retries with backoff on 429/5xx/timeouts are
the openai client's own (`max_retries`). `llm.timeout_s` bounds a call's own service time. For the local
model it bounds a call's silence instead: the answer is streamed, with llama.cpp's prompt progress
(`return_progress`) while it reads the prompt, so a call on a busy machine that is still reading or writing
is never killed; only `timeout_s` without a single byte is a timeout, asked again up to `max_retries`
times. The local server answers `llm.local.n_parallel` calls at once, so a call takes a slot before its
clock starts and never times out while queued behind others. An answer cut at `max_tokens` (finish_reason
"length") or empty is asked again up to `llm.retry_incomplete` times and then fails the call; it is never
cached as an answer.

Call cache (content-addressed): the key is sha256 over the canonical request (model identity, messages,
sampling parameters, response schema, prompt_version). Each answer is written atomically to
`<cache>/<key[:2]>/<key>.json` the moment it arrives, so a crash or Ctrl-C loses at most the calls in flight
and a re-run pays only for what is missing. Failed calls go to `<cache>/failures/` with their reason and are
tried again next run. The cache directory is a DVC output (`persist: true`), so `dvc push`/`dvc pull` carry
it and a fresh clone reuses it.

Caps (`llm.max_calls`, `llm.budget_usd`) apply to one run's new calls. A call is made only if its worst
case (estimated prompt tokens + `max_tokens` of output) still fits; the rest are reported as not made.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dynosaur.core.errors import BudgetExceeded, LLMError, ParamsError, first_line
from dynosaur.core.io import read_json, write_json
from dynosaur.core.params import LLMParams
from dynosaur.core.records import Usage, digest
from dynosaur.core.transport import in_clear


class ChatRequest(BaseModel):
    """Everything that determines an answer; its digest is the cache key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_identity: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float
    max_tokens: int
    seed: int | None
    response_schema: dict[str, Any] | None
    prompt_version: str

    @property
    def cache_key(self) -> str:  # not cached: a cached value would survive `model_copy(update=...)`
        return digest(self).removeprefix("sha256:")


class ChatResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str | None = None
    finish_reason: str | None = None
    usage: Usage = Usage()
    cost_usd: float = 0.0  # of the original call; a cache hit costs this run nothing
    cached: bool = False
    error: str | None = None  # the call failed after retries (not cached; tried again next run)
    skipped: str | None = None  # not made: the cap would have been exceeded
    retries: int = 0  # cut or empty answers asked again (`llm.retry_incomplete`); not cached
    incomplete: bool = False  # failed because every answer was cut or empty


def incomplete_answer(result: ChatResult, max_tokens: int) -> str | None:
    """Why an answer that arrived is not a whole answer (cut at max_tokens, empty), or None."""
    if result.error is not None or result.skipped is not None:
        return None
    if result.finish_reason == "length":
        return f"answer cut at llm.max_tokens ({max_tokens}): raise llm.max_tokens"
    if result.finish_reason == "content_filter":
        return "answer stopped by the provider's content filter"
    if not (result.content or "").strip():
        return "empty answer"
    return None


def _read_answer(response: Any) -> tuple[str | None, str | None, Any]:
    """(content, finish_reason, usage) of a chat completion; content None when it has no choices.

    A hostile or broken server can send any shape: only what has the expected type is read."""
    choices = getattr(response, "choices", None)
    if not choices or not isinstance(choices, list):
        return None, None, None
    content = getattr(getattr(choices[0], "message", None), "content", None)
    finish_reason = getattr(choices[0], "finish_reason", None)
    return (
        content if isinstance(content, str) else "",
        finish_reason if isinstance(finish_reason, str) else None,
        getattr(response, "usage", None),
    )


def _read_stream(client: Any, kwargs: dict[str, Any]) -> tuple[str | None, str | None, Any]:
    """The same triple as `_read_answer`, from a streamed answer. Each chunk (prompt progress included)
    resets the client's read timeout, so only silence times out."""
    stream = client.chat.completions.create(
        **kwargs,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"return_progress": True},
    )
    pieces: list[str] = []
    finish_reason = usage = None
    chose = False
    with contextlib.closing(stream):
        for chunk in stream:
            usage = getattr(chunk, "usage", None) or usage
            choices = getattr(chunk, "choices", None)
            if not choices or not isinstance(choices, list):
                continue
            chose = True
            piece = getattr(getattr(choices[0], "delta", None), "content", None)
            if isinstance(piece, str):
                pieces.append(piece)
            reason = getattr(choices[0], "finish_reason", None)
            finish_reason = reason if isinstance(reason, str) else finish_reason
    return ("".join(pieces) if chose else None), finish_reason, usage


def backoff_s(attempt: int) -> float:
    """Seconds to wait after failed try number `attempt` before the next: 0.5, 1, 2, … at most 8."""
    return min(0.5 * 2 ** (attempt - 1), 8.0)


def estimate_tokens(text: str) -> int:
    """A rough count (≈4 characters a token); used only for dry runs and worst-case budget checks."""
    return math.ceil(len(text) / 4)


class CallCache:
    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatResult | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            result = ChatResult.model_validate(read_json(path)).model_copy(update={"cached": True})
        except ValueError:  # a damaged entry is a miss, not a crash; the call is made again
            return None
        # A cut or empty answer cached before issue 11 is a miss: asked again, never final.
        return None if incomplete_answer(result, 0) else result

    def put(self, key: str, request: ChatRequest, result: ChatResult) -> None:
        entry = result.model_dump(
            mode="json", exclude={"cached", "error", "skipped", "retries", "incomplete"}
        )
        write_json(self.path(key), {**entry, "request_digest": key, "model_identity": request.model_identity})
        with contextlib.suppress(FileNotFoundError):
            self.failure_path(key).unlink()

    def failure_path(self, key: str) -> Path:
        return self.root / "failures" / f"{key}.json"

    def record_failure(self, key: str, reason: str) -> None:
        write_json(self.failure_path(key), {"request_digest": key, "reason": reason})


class Budget:
    """Thread-safe accounting of this run's calls and spend against the caps."""

    def __init__(self, params: LLMParams):
        self.max_calls = params.max_calls
        self.budget_usd = params.budget_usd
        self.price = params.price()
        self.calls = 0
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = 0
        self._lock = threading.Lock()

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.price.input_per_mtok + completion_tokens * self.price.output_per_mtok
        ) / 1e6

    def reserve(self, request: ChatRequest) -> float | None:
        """Reserve the worst-case cost of one call, or None if a cap would be exceeded."""
        worst = self.cost(sum(estimate_tokens(c) for _, c in request.messages), request.max_tokens)
        with self._lock:
            if self.max_calls is not None and self.calls + 1 > self.max_calls:
                self.refused += 1
                return None
            if self.budget_usd is not None and self.spent_usd + self.reserved_usd + worst > self.budget_usd:
                self.refused += 1
                return None
            self.calls += 1
            self.reserved_usd += worst
            return worst

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self.reserved_usd -= reserved
            self.spent_usd += actual


class LLM:
    """The one client. Use as a context manager: `with LLM(params, cache_dir) as llm: llm.complete(...)`."""

    def __init__(self, params: LLMParams, cache_dir: Path, *, base_url: str | None = None):
        self.params = params
        self.cache = CallCache(cache_dir)
        self.budget = Budget(params)
        self._base_url = base_url or params.base_url
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._api_key = ""
        # The local server answers n_parallel calls at once and queues the rest; a call waits for a slot
        # here, before the client's clock (llm.timeout_s) starts, so queueing never times it out.
        self._slots = (
            threading.BoundedSemaphore(params.local.n_parallel) if params.provider == "local" else None
        )

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def model_identity(self) -> str:
        """Names the model that answers, so a different model (or GGUF file) never hits another's cache."""
        p = self.params
        if p.provider == "local":
            from dynosaur.pipeline import local_model

            return local_model.model_identity(Path(p.model_path) if p.model_path else None, p.model)
        if p.provider == "openai":
            return f"openai:{p.model}"
        return f"compatible:{p.model}"

    def request(
        self, messages: list[tuple[str, str]], schema: dict | None, prompt_version: str
    ) -> ChatRequest:
        p = self.params
        return ChatRequest(
            model_identity=self.model_identity,
            messages=tuple(messages),
            temperature=p.temperature,
            max_tokens=p.max_tokens,
            seed=p.seed,
            response_schema=schema if p.structured_output else None,
            prompt_version=prompt_version,
        )

    # --- the client ------------------------------------------------------------------------------------

    def _openai(self) -> Any:
        """The openai client, created (and for `local`, the server started) on the first cache miss."""
        with self._client_lock:
            if self._client is None:
                import openai

                base_url = self._base_url
                key_variable = self.params.key_variable()
                self._api_key = os.environ.get(key_variable, "") if key_variable else ""
                if self.params.provider == "openai" and not self._api_key:
                    raise LLMError(f"provider openai needs the environment variable {key_variable}")
                if self.params.provider == "local" and base_url is None:
                    from dynosaur.pipeline import local_model

                    model_path = local_model.resolve_model_path(self.params.model_path, self.params.model)
                    lp = self.params.local
                    server = local_model.LocalServer(
                        model_path,
                        n_ctx=lp.n_ctx,
                        n_parallel=lp.n_parallel,
                        threads=lp.threads,
                        seed=self.params.seed or 0,
                    )
                    base_url = self._stack.enter_context(server).base_url
                client = openai.OpenAI(
                    base_url=base_url,
                    api_key=self._api_key or "not-needed",
                    max_retries=self.params.max_retries,
                    timeout=self.params.timeout_s,
                )
                if self._api_key:  # where the client really points (OPENAI_BASE_URL included)
                    check_key_transport(str(client.base_url), self.params.allow_insecure_http, key_variable)
                self._client = client
            return self._client

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _call(self, request: ChatRequest) -> ChatResult:
        import openai

        kwargs = self.body(request)
        client = self._openai()
        streamed = self.params.provider == "local"
        tries = 0
        while True:  # a 200 whose body is not JSON (a proxy's page, half a body) is asked again like a 5xx
            tries += 1
            raw = None
            try:
                with self._slots or contextlib.nullcontext():
                    if streamed:
                        content, finish_reason, usage_obj = _read_stream(client, kwargs)
                    else:
                        raw = client.chat.completions.with_raw_response.create(**kwargs)
                        content, finish_reason, usage_obj = _read_answer(raw.parse())
                break
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMError(f"the LLM provider refused the credentials ({type(exc).__name__})") from None
            except openai.APITimeoutError as exc:
                if not streamed:  # the SDK has already asked again max_retries times
                    return ChatResult(error=self._redact(first_line(exc, typed=True)))
                if tries > self.params.max_retries:
                    silent = f"{self.params.timeout_s:g} s"
                    return ChatResult(error=f"local model: no progress for {silent} ({tries} tries)")
                time.sleep(backoff_s(tries))
            except openai.APIError as exc:
                return ChatResult(error=self._redact(first_line(exc, typed=True)))
            except ValueError:  # the SDK could not decode the body
                if tries > self.params.max_retries:
                    body = self._redact(raw.http_response.text[:80] if raw is not None else "")
                    return ChatResult(error=f"bad response: not JSON after {tries} tries: {body!r}")
                time.sleep(backoff_s(tries))
        if content is None:
            return ChatResult(error="bad response: no choices")
        usage = Usage(
            prompt_tokens=_count(usage_obj, "prompt_tokens"),
            completion_tokens=_count(usage_obj, "completion_tokens"),
        )
        return ChatResult(
            content=content,
            finish_reason=finish_reason,
            usage=usage,
            cost_usd=round(self.budget.cost(usage.prompt_tokens, usage.completion_tokens), 8),
        )

    def _complete_uncached(self, request: ChatRequest) -> ChatResult:
        tries = 0
        while True:
            reserved = self.budget.reserve(request)
            if reserved is None:
                skipped = "cap reached (llm.max_calls / llm.budget_usd)"
                return ChatResult(skipped=skipped, retries=max(tries - 1, 0))
            tries += 1
            result = ChatResult(error="interrupted")
            try:
                result = self._call(request)
            finally:
                self.budget.settle(reserved, result.cost_usd)
            problem = incomplete_answer(result, request.max_tokens)
            if problem is None:
                break
            if tries > self.params.retry_incomplete:  # never cached: the next run asks again
                said = f"{tries} tr{'y' if tries == 1 else 'ies'}"
                result = result.model_copy(update={"error": f"{problem} ({said})", "incomplete": True})
                break
        result = result.model_copy(update={"retries": tries - 1})
        key = request.cache_key
        if result.error is None:
            self.cache.put(key, request, result)
        else:
            self.cache.record_failure(key, result.error)
        return result

    def complete_many(self, requests: list[ChatRequest]) -> Iterator[tuple[ChatRequest, ChatResult]]:
        """Answers as they arrive: cache hits first, then new calls with at most `llm.concurrency` in flight."""
        misses = []
        for request in _unique(requests):  # the same request twice is one call
            hit = self.cache.get(request.cache_key)
            if hit is not None:
                yield request, hit
            else:
                misses.append(request)
        if not misses:
            return
        pool = ThreadPoolExecutor(max_workers=self.params.concurrency, thread_name_prefix="llm")
        try:
            futures = {pool.submit(self._complete_uncached, r): r for r in misses}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # Ctrl-C: drop the calls not yet started; those in flight finish and are cached.
            pool.shutdown(wait=True, cancel_futures=True)

    # --- shared with the Batch API (dynosaur.pipeline.batch) -------------------------------------------

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat completion's body: what a synchronous call sends, and each line of a batch input file."""
        body: dict[str, Any] = dict(
            model=self.params.model,
            messages=[{"role": r, "content": c} for r, c in request.messages],
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        if request.seed is not None:
            body["seed"] = request.seed
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tasks", "strict": True, "schema": request.response_schema},
            }
        return body

    def client(self) -> Any:
        """The one openai client (key, base_url, retries and timeout as for synchronous calls)."""
        return self._openai()

    def redact(self, text: str) -> str:
        """`text` with the API key blanked out."""
        return self._redact(text)

    def dry_run(self, requests: list[ChatRequest]) -> DryRun:
        """What `complete_many` would spend, without calling anything."""
        unique = _unique(requests)
        misses = [r for r in unique if self.cache.get(r.cache_key) is None]
        prompt = sum(estimate_tokens(c) for r in misses for _, c in r.messages)
        completion = sum(r.max_tokens for r in misses)
        calls = len(misses) if self.params.max_calls is None else min(len(misses), self.params.max_calls)
        return DryRun(
            requests=len(unique),
            cached=len(unique) - len(misses),
            calls=len(misses),
            prompt_tokens=prompt,
            max_completion_tokens=completion,
            max_cost_usd=round(self.budget.cost(prompt, completion), 6),
            calls_within_caps=calls,
        )


def _count(usage: Any, name: str) -> int:
    value = getattr(usage, name, 0)
    return value if isinstance(value, int) and 0 <= value < 2**53 else 0


def check_key_transport(base_url: str, allow_insecure_http: bool, key_variable: str | None = None) -> None:
    """Refuse (`ParamsError`) to send an API key over plain http to a host that is not loopback: anyone on the
    path reads it. `llm.allow_insecure_http: true` is the explicit opt-in (a trusted private network)."""
    from urllib.parse import urlsplit

    if not in_clear(base_url) or allow_insecure_http:
        return
    parts = urlsplit(base_url)
    raise ParamsError(
        f"llm.base_url {parts.scheme}://{parts.hostname}: the API key (${key_variable or 'key'}) would go in"
        " clear to a host that is not loopback; use https, unset llm.api_key_env, or set"
        " llm.allow_insecure_http: true"
    )


def _unique(requests: list[ChatRequest]) -> list[ChatRequest]:
    return list({r.cache_key: r for r in requests}.values())


class DryRun(BaseModel):
    requests: int
    cached: int
    calls: int
    prompt_tokens: int  # estimated
    max_completion_tokens: int  # worst case: every answer uses max_tokens
    max_cost_usd: float
    calls_within_caps: int


def require_within_caps(budget: Budget) -> None:
    if budget.refused:
        raise BudgetExceeded(
            f"stopped at the cap: {budget.calls} call(s) made (${budget.spent_usd:.4f}), {budget.refused} not made;"
            " raise llm.max_calls / llm.budget_usd and run again (answers so far are cached)"
        )
