"""The `llm` params: which provider and model every LLM call goes to, with its limits, prices, the local
server and the Batch API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dynosaur.core.fingerprint import tuning
from dynosaur.core.packaged_model import PACKAGED_MODELS
from dynosaur.core.params.base import MAX_COUNT, MAX_SEED, MAX_THREADS, Section

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class Price(Section):
    input_per_mtok: float = Field(ge=0, le=1e6)
    output_per_mtok: float = Field(ge=0, le=1e6)


class LocalServerParams(Section):
    n_ctx: int = Field(default=4096, ge=512, le=1_048_576)
    n_parallel: int = Field(default=2, ge=1, le=64)
    threads: int | None = Field(default=None, ge=1, le=MAX_THREADS)


class BatchParams(Section):
    """`llm.mode: batch`: generate's requests go through the provider's Batch API (dynosaur.pipeline.batch)."""

    max_requests: int = tuning(default=50_000, ge=1, le=50_000)  # per batch: OpenAI's limit
    max_file_mb: float = tuning(default=190, gt=0, le=200)  # per input file: OpenAI's limit is 200 MB
    wait_s: float = tuning(
        default=60, ge=0, le=7 * 24 * 3600
    )  # how long one run polls before it stops and says when to return
    poll_s: float = tuning(default=10, gt=0, le=3600)  # seconds between polls of a batch's state
    max_attempts: int = tuning(
        default=3, ge=1, le=10
    )  # a row that failed or expired is resubmitted until then
    # Batch price = discount × the synchronous price (`llm.prices`): OpenAI, Anthropic and Gemini charge half.
    discount: float = Field(default=0.5, gt=0, le=1)
    prices: dict[str, Price] = {}  # per model, overrides the discount


class LLMParams(Section):
    provider: Literal["local", "openai", "compatible"] = "local"
    mode: Literal["sync", "batch"] = (
        "sync"  # batch: the provider's Batch API (half price, answers within 24 h)
    )
    model: str = (
        "qwen2.5-coder-1.5b-instruct-q4_k_m"  # the default, chosen on bench/quality.py (docs/quality.md)
    )
    # local provider: a packaged model (core.packaged_model: the 0.5B, or the 1.5B from `.[local-1-5b]`)
    model_path: str | None = None  # local provider: a GGUF file instead of the packaged model `model` names
    base_url: str | None = (
        None  # compatible provider: e.g. http://localhost:8000/v1 (vLLM, Ollama, llama.cpp)
    )
    # The *name* of the variable holding the key; the key itself never enters params. Unset: OPENAI_API_KEY
    # for `openai`, and no key at all for `compatible` (such servers often need none, or another one).
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME)
    # A key is never sent over plain http to a host that is not loopback, unless this says so.
    allow_insecure_http: bool = False
    structured_output: bool = True  # response_format json_schema; false → the tolerant parser alone
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=16, le=16384)
    seed: int | None = Field(default=0, ge=0, le=MAX_SEED)
    concurrency: int = Field(default=4, ge=1, le=256)
    # One call's own service time, not its wait; for the local model, its longest silence (streamed answers).
    timeout_s: float = Field(default=120, gt=0, le=86_400)
    max_retries: int = Field(default=5, ge=0, le=20)
    # A cut (finish_reason "length") or empty answer is asked again this many times, then the call fails.
    retry_incomplete: int = Field(default=2, ge=0, le=10)
    max_calls: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    budget_usd: float | None = Field(default=None, ge=0, le=1e6)
    prices: dict[str, Price] = {}
    local: LocalServerParams = LocalServerParams()
    batch: BatchParams = BatchParams()

    @model_validator(mode="after")
    def _provider_needs(self) -> LLMParams:
        if self.provider == "compatible" and not self.base_url:
            raise ValueError("provider `compatible` needs `base_url` (e.g. http://localhost:8000/v1)")
        if self.provider != "compatible" and self.base_url:
            raise ValueError("`base_url` is for provider `compatible`")
        if self.provider == "local" and self.model_path is None and self.model not in PACKAGED_MODELS:
            known = ", ".join(PACKAGED_MODELS)
            raise ValueError(
                f"provider `local` serves a packaged model ({known}) or the GGUF file in `model_path`; "
                f"no packaged model is named {self.model!r}"
            )
        if self.mode == "batch" and self.provider == "local":
            raise ValueError(
                "`mode: batch` needs provider `openai` or `compatible` (a server with /v1/batches)"
            )
        return self

    def price(self) -> Price:
        """USD per million tokens that this run's calls cost: in batch mode the batch price (`batch.prices`,
        else `batch.discount` × `prices`), which the dry run and `budget_usd` then use."""
        sync = self.prices.get(self.model, Price(input_per_mtok=0, output_per_mtok=0))
        if self.mode == "sync":
            return sync
        if self.model in self.batch.prices:
            return self.batch.prices[self.model]
        return Price(
            input_per_mtok=sync.input_per_mtok * self.batch.discount,
            output_per_mtok=sync.output_per_mtok * self.batch.discount,
        )

    def key_variable(self) -> str | None:
        """The environment variable whose value is sent as the API key, if any (issue 11): `api_key_env`
        when it is set; else OPENAI_API_KEY for `openai` and none for `compatible`. `local` never sends one."""
        if self.provider == "local":
            return None
        return self.api_key_env or ("OPENAI_API_KEY" if self.provider == "openai" else None)
