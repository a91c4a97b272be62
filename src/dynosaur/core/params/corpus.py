"""The params of the corpus stages: `sources`, `collect`, `hub`, `discover`, `generate`, `filter` and
`organize` (with `organize.decontaminate`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dynosaur.core.fingerprint import tuning
from dynosaur.core.params.base import MAX_CHARS, MAX_COUNT, MAX_SEED, Section

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
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
    """How Dynosaur talks to the Hugging Face Hub (`HF_ENDPOINT`): discover, refresh, collect, organize,
    publish."""

    # The token is never sent over plain http to a host that is not loopback, unless this says so.
    allow_insecure_http: bool = False
    # organize downloads Hub sources' files this many at once (dynosaur.pipeline.hub_files) ...
    read_concurrency: int = tuning(default=16, ge=1, le=256)
    # ... and starts at most this many requests in any window_s seconds: the Hub allows a free user 5,000
    # /resolve/ requests per 5 minutes (3,000 anonymous; https://huggingface.co/docs/hub/rate-limits)
    requests_per_window: int = tuning(default=4500, ge=1, le=10_000_000)
    window_s: float = tuning(default=300.0, gt=0, le=86_400)


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
