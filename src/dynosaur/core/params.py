"""`params.yaml` as typed pydantic models: one per section, unknown keys forbidden, bounds checked.

`load_params()` is the only reader of `params.yaml`; a mistake fails there with one line naming the key path
(`ParamsError`, exit code 2), before any stage writes anything. The file must be UTF-8, and a key given twice
in one mapping (a second `llm:` block) is an error, not a silent override. Every number has a lower and an
upper bound (a test checks), so a value that validates can't overflow later: `organize.batch_rows: 1e20` or
`llm.timeout_s: 1e300` fail here, not as a traceback in a stage (issue 11).
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynosaur.core.errors import ParamsError, first_line
from dynosaur.core.fingerprint import tuning
from dynosaur.core.licenses import LicensePolicy
from dynosaur.core.packaged_model import PACKAGED_MODELS

PARAMS_FILE = "params.yaml"
# Replay strategies of the continual stage (dynosaur.training.replay implements them).
STRATEGIES = ("none", "random", "data_diverse", "instr_diverse", "instr_similar", "instr_support")
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
VERSION = re.compile(r"^[vV]?[1-9][0-9]*$")
# `train.base_model: scratch:<name>`: a GPT-2 made from scratch (seeded) with a byte-level BPE tokenizer
# trained offline on the training texts. `n_positions` comes from `train.max_length`.
SCRATCH_MODELS: dict[str, dict[str, int]] = {
    "tiny-gpt2": {"n_layer": 2, "n_head": 4, "n_embd": 128},
    "small-gpt2": {"n_layer": 4, "n_head": 4, "n_embd": 256},
}
SCRATCH_PREFIX = "scratch:"
# `train.base_model: gguf:local`: the packaged Qwen2.5-Coder-0.5B-Instruct GGUF (dynosaur.core.packaged_model),
# converted once into a transformers model; a path ending in `.gguf` names another GGUF file.
GGUF_MODELS = ("gguf:local",)
HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Upper bounds for numbers that have no natural one: far beyond any real use, well inside every C type
# and timer they end up in (int64 row counts, uint32 seeds, a timeout added to a clock).
MAX_COUNT = 1_000_000_000
MAX_CHARS = 10_000_000
MAX_THREADS = 1024
MAX_SEED = 2**31 - 1  # fits every provider (OpenAI, llama.cpp), numpy and torch
# Evaluation benchmarks that may never be sources (`collect.eval_benchmarks`): an entry with an owner matches
# that Hub id; one without matches any owner's dataset of that name, and a local source's id or folder name.
# Case, `-` and `_` are ignored (dynosaur.pipeline.decontaminate.eval_benchmark).
EVAL_BENCHMARKS = (
    "super_natural_instructions",
    "natural-instructions",
    "Muennighoff/natural-instructions",
    "mmlu",
    "cais/mmlu",
    "hendrycks_test",
    "mmlu_pro",
    "hellaswag",
    "ai2_arc",
    "gsm8k",
    "truthful_qa",
    "winogrande",
    "openai_humaneval",
    "humaneval",
    "mbpp",
    "bigbench",
    "bbh",
    "big_bench_hard",
    "piqa",
    "openbookqa",
    "competition_math",
    "gpqa",
    "ifeval",
    "lambada",
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(Section):
    """One source dataset: a local folder laid out like a Hub dataset repo, or a Hub dataset."""

    id: str
    path: str | None = None
    hub: str | None = None
    config: str | None = None
    splits: list[str] | None = None  # default: every split but test
    revision: str | None = None  # hub only: branch, tag or sha, resolved to a sha at collect time

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not SOURCE_ID.match(v) or v in {".", ".."} or ".." in v:
            raise ValueError(
                f"{v!r} is not a safe source id (use [a-z0-9._-], starting with a letter or digit)"
            )
        return v

    @field_validator("hub")
    @classmethod
    def _repo_id(cls, v: str | None) -> str | None:
        if v is not None and not HUB_REPO.match(v):
            raise ValueError(f"{v!r} is not a Hub dataset id of the form owner/name")
        return v

    @model_validator(mode="after")
    def _one_origin(self) -> SourceSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` (local folder) or `hub` (owner/name)")
        if self.path is not None and self.revision is not None:
            raise ValueError(
                "`revision` applies to hub sources only (a local source's revision is its content)"
            )
        return self


class CollectParams(Section):
    sample_rows: int = Field(default=2, ge=1, le=10)  # rows shown to the LLM
    stats_rows: int = Field(
        default=1000, ge=10, le=MAX_COUNT
    )  # rows scanned for field statistics (filter signals)
    description_max_chars: int = Field(default=2000, ge=0, le=MAX_CHARS)
    max_field_chars: int = Field(
        default=300, ge=20, le=MAX_CHARS
    )  # sample values are cut to this in the record
    allow_failures: bool = False  # true: a source that fails to load is recorded and the pipeline goes on
    eval_benchmarks: list[str] = list(EVAL_BENCHMARKS)  # dataset ids never collected (`eval_benchmark`)
    concurrency: int = tuning(default=8, ge=1, le=256)  # sources read at once (threads)
    timeout_s: float = tuning(
        default=20.0, gt=0, le=86_400
    )  # per source; past it the source is `failed` (timed_out)

    @field_validator("eval_benchmarks")
    @classmethod
    def _dataset_ids(cls, v: list[str]) -> list[str]:
        for entry in v:
            if not re.match(r"^[\w.-]+(/[\w.-]+)?$", entry):
                raise ValueError(f"{entry!r} is not a dataset id (name or owner/name)")
        return v


class HubParams(Section):
    """How Dynosaur talks to the Hugging Face Hub (`HF_ENDPOINT`): discover, refresh, collect, publish."""

    # The token is never sent over plain http to a host that is not loopback, unless this says so.
    allow_insecure_http: bool = False


class DiscoverParams(Section):
    """`dyno discover`'s default query (its options override each field). The licence policy is `licenses`."""

    task_categories: list[str] = []  # any of these Hub task categories (empty: any)
    languages: list[str] = []  # any of these languages (empty: any)
    min_downloads: int = Field(default=0, ge=0, le=MAX_COUNT)
    search: str | None = None  # a substring of the dataset id
    limit: int | None = Field(default=None, ge=1, le=MAX_COUNT)  # at most this many new sources per run
    revision: str = "main"  # the branch new sources follow; `dyno refresh` pins it to a commit

    @field_validator("task_categories", "languages")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not re.match(r"^[\w.-]+$", tag):
                raise ValueError(f"{tag!r} is not a Hub tag value")
        return v


class GenerateParams(Section):
    prompt_version: str = Field(default="v5", min_length=1)
    variants: list[Literal["with_description", "without_description"]] = [
        "with_description",
        "without_description",
    ]
    tasks_per_prompt: int = Field(default=3, ge=1, le=10)
    # propose: the model proposes whole tasks (the paper's way); fields_first: plausible (inputs → output)
    # mappings are enumerated from the field statistics and the model writes each one's instruction.
    mode: Literal["propose", "fields_first"] = "fields_first"
    max_mappings: int = Field(default=10, ge=1, le=30)  # fields_first: at most this many mappings per source
    mappings_per_request: int = Field(
        default=1, ge=1, le=30
    )  # fields_first: instructions asked for per request
    demonstrations: bool = False  # the paper's demonstrations (SQuAD, ANLI / MathQA, CommonGen) as turns
    repair: bool = True  # an output also listed as an input is dropped from the inputs (if others remain)
    limit: int | None = Field(default=None, ge=1, le=MAX_COUNT)  # smoke runs: only the first N sources
    allow_failures: bool = False  # true: a source whose calls failed is recorded and the pipeline goes on


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


class FilterParams(Section):
    min_instruction_words: int = Field(default=4, ge=1, le=10_000)
    max_instruction_chars: int = Field(default=600, ge=20, le=MAX_CHARS)
    max_label_options: int = Field(
        default=10, ge=2, le=10_000
    )  # at most this many distinct values → classification-like
    max_options_chars: int = Field(
        default=600, ge=10, le=MAX_CHARS
    )  # append the options to the instruction only when this short
    degenerate_top_share: float = Field(default=0.95, gt=0.5, le=1.0)
    max_empty_share: float = Field(default=0.5, ge=0, le=1.0)
    # quotes_sample: this many consecutive words of a sample row's high-cardinality value in the instruction
    quote_min_words: int = Field(default=4, ge=2, le=10_000)
    # underdetermined_output: every input has at most this share of the free-form output's distinct values
    underdetermined_ratio: float = Field(default=0.25, gt=0, le=1.0)
    # ... unless the instruction asks to write/generate/compose and outputs average at least this many chars
    generative_min_chars: int = Field(default=20, ge=0, le=MAX_CHARS)
    # near_duplicate: same inputs (as a set) and output within a source, and instructions this similar (ROUGE-L
    # F1). Self-Instruct's 0.7 leaves 26% of the paper's kept tasks repeating another's fields; read by hand,
    # such pairs below 0.7 were paraphrases or misdescribed the data, never two valid tasks: 0 merges them all.
    near_duplicate_rouge: float = Field(default=0.0, ge=0, le=1.0)
    # propose mode: keep a task only when its output and some input match a mapping that fields-first would
    # enumerate (propose, then snap; issue 19); fields-first tasks always do
    snap_to_mappings: bool = False


class DecontaminateParams(Section):
    """Instances sharing a word n-gram with an evaluation set are removed (dynosaur.pipeline.decontaminate)."""

    ngram: int = Field(default=13, ge=4, le=64)  # 13 words, as GPT-3 and lm-eval's decontamination
    files: list[str] = []  # parquet or jsonl evaluation sets: every string value of a row is its text
    superni: bool = True  # also the Super-NI task files in `evaluate.superni_dir`, when it is set

    @field_validator("files")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        for path in v:
            if not path.endswith((".parquet", ".jsonl")):
                raise ValueError(f"{path!r}: give parquet or jsonl files")
        if len(set(v)) != len(v):
            raise ValueError("a file is listed twice")
        return v


class OrganizeParams(Section):
    max_instances_per_task: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    splits: list[str] = ["train", "validation"]
    max_input_chars: int = Field(
        default=4000, ge=16, le=MAX_CHARS
    )  # longer inputs are cut at a word boundary, with a marker
    max_output_chars: int = Field(
        default=2000, ge=1, le=MAX_CHARS
    )  # a longer target is never cut: its row is dropped
    batch_rows: int = tuning(default=65536, ge=1, le=10_000_000)  # memory, not output
    # true: a source or task that fails is recorded and the pipeline goes on
    allow_failures: bool = tuning(default=False)
    decontaminate: DecontaminateParams = DecontaminateParams()

    @field_validator("splits")
    @classmethod
    def _no_test(cls, v: list[str]) -> list[str]:
        if "test" in v:
            raise ValueError("the test split never becomes training instances")
        return v


class LoRAParams(Section):
    """LoRA adapters (peft) on a pretrained base model; merged into the weights before saving."""

    enabled: bool = False
    r: int = Field(default=8, ge=1, le=1024)
    alpha: int = Field(default=16, ge=1, le=1_000_000)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: peft's default for the architecture


class ReplayParams(Section):
    strategy: str = "none"  # one of STRATEGIES
    tasks: int = Field(default=0, ge=0, le=MAX_COUNT)  # earlier tasks replayed per stage
    instances_per_task: int = Field(default=50, ge=1, le=MAX_COUNT)

    @field_validator("strategy")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in STRATEGIES:
            raise ValueError(f"unknown replay strategy {v!r} (known: {', '.join(STRATEGIES)})")
        return v


class ContinualParams(Section):
    """Continual training: one stage per release, in order, each starting from the previous stage's model."""

    releases: list[str] = Field(min_length=1)
    replay: ReplayParams = ReplayParams()

    @field_validator("releases")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        for version in v:
            if not VERSION.match(version):
                raise ValueError(f"{version!r} is not a release version (use v1, v2, ...)")
        if len({int(x.lstrip("vV")) for x in v}) != len(v):
            raise ValueError("a release is listed twice")
        return v


class TrainParams(Section):
    release: str | None = None  # null: the workspace corpus; "vN": that release, pulled and checked
    # scratch:<preset>, gguf:local, a .gguf file, a local model dir, or a Hub id in the local cache
    base_model: str = "scratch:tiny-gpt2"
    prompt_format: Literal["alpaca", "plain"] = "alpaca"
    max_length: int = Field(
        default=256, ge=16, le=32768
    )  # tokens per example (prompt + response), cut beyond
    max_steps: int | None = Field(
        default=1000, ge=1, le=MAX_COUNT
    )  # optimizer steps; with `epochs` too, the smaller count wins
    epochs: float | None = Field(default=None, gt=0, le=100_000)
    lr: float = Field(default=2e-3, gt=0, le=1)
    schedule: Literal["linear", "constant"] = "linear"  # after warmup: linear decay to 0, or constant
    warmup_steps: int = Field(default=10, ge=0, le=MAX_COUNT)
    weight_decay: float = Field(default=0.0, ge=0, le=100)
    grad_clip: float | None = Field(default=1.0, gt=0, le=1e6)
    batch_size: int = Field(default=16, ge=1, le=1_000_000)
    grad_accum: int = Field(
        default=1, ge=1, le=1_000_000
    )  # micro-batches per optimizer step (effective batch = batch_size × this)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    max_per_task: int | None = Field(
        default=2000, ge=1, le=MAX_COUNT
    )  # a seeded sample of each task's instances; null: all
    holdout_fraction: float = Field(default=0.05, ge=0, lt=1)  # per task, held out of training for evaluation
    vocab_size: int = Field(
        default=2000, ge=300, le=65536
    )  # scratch models: the BPE vocabulary trained offline
    threads: int | None = tuning(
        default=None, ge=1, le=MAX_THREADS
    )  # CPU threads for torch; null: every core
    bf16: bool | None = None  # bf16 mixed precision; null: on a GPU that supports it, else fp32
    gradient_checkpointing: bool = tuning(default=False)  # recompute activations: less memory, ~30% slower
    save_steps: int | None = tuning(
        default=200, ge=1, le=MAX_COUNT
    )  # a checkpoint to resume from every this many steps
    lora: LoRAParams = LoRAParams()
    continual: ContinualParams | None = None

    @field_validator("release")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not VERSION.match(v):
            raise ValueError(f"{v!r} is not a release version (v1, v2, ...; null for the workspace corpus)")
        return v

    @field_validator("base_model")
    @classmethod
    def _scratch_preset(cls, v: str) -> str:
        if v.startswith(SCRATCH_PREFIX) and v.removeprefix(SCRATCH_PREFIX) not in SCRATCH_MODELS:
            known = ", ".join(SCRATCH_PREFIX + k for k in SCRATCH_MODELS)
            raise ValueError(f"unknown scratch model {v!r} (known: {known})")
        if v.startswith("gguf:") and v not in GGUF_MODELS:
            known = ", ".join(GGUF_MODELS)
            raise ValueError(f"unknown GGUF model {v!r} (known: {known}, or a path to a .gguf file)")
        if not v.strip():
            raise ValueError("give a model: scratch:tiny-gpt2, gguf:local, a local directory or a Hub id")
        return v

    @model_validator(mode="after")
    def _length(self) -> TrainParams:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("set max_steps or epochs (or both: the smaller count of steps wins)")
        return self

    @property
    def scratch(self) -> bool:
        return self.base_model.startswith(SCRATCH_PREFIX)


class EvaluateParams(Section):
    holdout_sources: list[str] = []  # never trained on: their tasks are the unseen tasks
    max_instances_per_task: int | None = Field(
        default=20, ge=1, le=MAX_COUNT
    )  # per task and suite; null: all
    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    batch_size: int = Field(default=32, ge=1, le=1_000_000)
    superni_dir: str | None = None  # a folder of Super-NaturalInstructions task files (taskNNN_*.json)
    threads: int | None = Field(
        default=None, ge=1, le=MAX_THREADS
    )  # CPU threads for torch; null: torch's default (every core)

    @field_validator("holdout_sources")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for source_id in v:
            if not SOURCE_ID.match(source_id):
                raise ValueError(f"{source_id!r} is not a source id")
        if len(set(v)) != len(v):
            raise ValueError("a source is listed twice")
        return v


class Params(Section):
    sources: list[SourceSpec] = []  # more in the sources file (`sources.yaml`, dynosaur.core.source_list)
    collect: CollectParams = CollectParams()
    discover: DiscoverParams = DiscoverParams()
    hub: HubParams = HubParams()
    generate: GenerateParams = GenerateParams()
    llm: LLMParams = LLMParams()
    filter: FilterParams = FilterParams()
    organize: OrganizeParams = OrganizeParams()
    licenses: LicensePolicy = LicensePolicy()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, v: list[SourceSpec]) -> list[SourceSpec]:
        return unique_source_ids(v)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


SourcesT = TypeVar("SourcesT", bound=_HasId)


def unique_source_ids(sources: list[SourcesT]) -> list[SourcesT]:
    """A source id names one source, in params.yaml and in sources.yaml alike: a repeat is a config error."""
    seen: set[str] = set()
    for s in sources:
        if s.id in seen:
            raise ValueError(f"duplicate source id {s.id!r}")
        seen.add(s.id)
    return sources


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """`sources[1].id` rather than pydantic's `sources.1.id`; source entries are named by their id."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            ident = node[item].get("id") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts[-1] += f"[{ident!r}]" if ident else f"[{item}]"
        elif item not in ("function-after", "function-before") and not str(item).startswith(
            ("function-", "literal")
        ):
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) or "params"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type (`X`, `X | None`, `list[X]`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_of(arg)) is not None:
            return found
    return None


def first_error(exc: ValidationError) -> Any:
    """The error to show first: a misspelt key makes two (the unknown key, and the key it meant as missing),
    and the unknown one says what to fix."""
    errors = exc.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def unknown_key(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """ "unknown key" for pydantic's `extra_forbidden` at `loc`, with a "did you mean" when a key of the model
    it sits in is close (`difflib`): `llm.modle` → `(did you mean 'model'?)`."""
    import difflib

    current: type[BaseModel] | None = model
    for item in loc[:-1]:
        if current is not None and isinstance(item, str) and item in current.model_fields:
            current = _model_of(current.model_fields[item].annotation)
        # list indexes and dict keys (`llm.prices.<model>`) stay in the model of their items
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, list(current.model_fields) if current else [], n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def parse_params(data: Any, origin: str = PARAMS_FILE) -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{origin}: expected a mapping at the top level")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        err = first_error(exc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = unknown_key(Params, err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ParamsError(f"{origin}: {_key_path(err['loc'], data)}: {msg}{more}") from None


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, strict about keys (a key given twice in one mapping raises `DuplicateKey`), with
    libyaml's C parser when PyYAML has it: ~10× faster on a list of 2,000 sources."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader's constructor)


class DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, but a key given twice in one mapping is an error: YAML says keys are unique,
    and PyYAML silently keeps the last (a second `llm:` block would replace the first)."""


def _unique_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges; explicit keys override it
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise DuplicateKey(
                    None, None, f"duplicate key {key!r} on line {line} (first on line {seen[key]})"
                )
            seen[key] = line
        except TypeError:  # an unhashable key: construct_mapping below says so
            continue
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_params_file(path: Path) -> Any:
    """The parsed YAML of a file the user writes (params.yaml, sources.yaml); every way it can't be read is
    one `ParamsError` line, a key given twice included (with both line numbers)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root)") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        return load_yaml(text)
    except DuplicateKey as exc:
        raise ParamsError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise ParamsError(f"{path}: not valid YAML (nested too deeply)") from None


def load_params(path: str | Path | None = None) -> Params:
    path = Path(path or os.environ.get("DYNO_PARAMS", PARAMS_FILE))
    return parse_params(read_params_file(path), str(path))
