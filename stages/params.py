"""`params.yaml` as typed pydantic models: one per section, unknown keys forbidden, bounds checked.

`load_params()` is the only reader of `params.yaml`; a mistake fails there with one line naming the key path
(`ParamsError`, exit code 2), before any stage writes anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from registry.errors import ParamsError
from registry.licenses import LicensePolicy

PARAMS_FILE = "params.yaml"
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


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
            raise ValueError(f"{v!r} is not a safe source id (use [a-z0-9._-], starting with a letter or digit)")
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
            raise ValueError("`revision` applies to hub sources only (a local source's revision is its content)")
        return self


class CollectParams(Section):
    sample_rows: int = Field(2, ge=1, le=10)  # rows shown to the LLM
    stats_rows: int = Field(1000, ge=10)  # rows scanned for field statistics (filter signals)
    description_max_chars: int = Field(2000, ge=0)
    max_field_chars: int = Field(300, ge=20)  # sample values are cut to this in the record
    allow_failures: bool = False  # true: a source that fails to load is recorded and the pipeline goes on


class GenerateParams(Section):
    prompt_version: str = Field("v1", min_length=1)
    variants: list[Literal["with_description", "without_description"]] = [
        "with_description",
        "without_description",
    ]
    tasks_per_prompt: int = Field(3, ge=1, le=10)
    limit: int | None = Field(None, ge=1)  # smoke runs: only the first N sources
    allow_failures: bool = False  # true: a source whose calls failed is recorded and the pipeline goes on


class Price(Section):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class LocalServerParams(Section):
    n_ctx: int = Field(4096, ge=512)
    n_parallel: int = Field(2, ge=1, le=64)
    threads: int | None = Field(None, ge=1)


class LLMParams(Section):
    provider: Literal["local", "openai", "compatible"] = "local"
    model: str = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    model_path: str | None = None  # local provider: a GGUF file; default: the packaged Qwen2.5-Coder-0.5B
    base_url: str | None = None  # compatible provider: e.g. http://localhost:8000/v1 (vLLM, Ollama, llama.cpp)
    api_key_env: str = "OPENAI_API_KEY"  # the *name* of the variable; the key itself never enters params
    structured_output: bool = True  # response_format json_schema; false → the tolerant parser alone
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=16, le=16384)
    seed: int | None = 0
    concurrency: int = Field(4, ge=1, le=256)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    max_calls: int | None = Field(None, ge=0)
    budget_usd: float | None = Field(None, ge=0)
    prices: dict[str, Price] = {}
    local: LocalServerParams = LocalServerParams()

    @model_validator(mode="after")
    def _provider_needs(self) -> LLMParams:
        if self.provider == "compatible" and not self.base_url:
            raise ValueError("provider `compatible` needs `base_url` (e.g. http://localhost:8000/v1)")
        if self.provider != "compatible" and self.base_url:
            raise ValueError("`base_url` is for provider `compatible`")
        return self

    def price(self) -> Price:
        return self.prices.get(self.model, Price(input_per_mtok=0, output_per_mtok=0))


class FilterParams(Section):
    min_instruction_words: int = Field(4, ge=1)
    max_instruction_chars: int = Field(600, ge=20)
    max_label_options: int = Field(10, ge=2)  # at most this many distinct values → classification-like
    max_options_chars: int = Field(200, ge=10)  # append the options to the instruction only when this short
    degenerate_top_share: float = Field(0.95, gt=0.5, le=1.0)
    max_empty_share: float = Field(0.5, ge=0, le=1.0)


class OrganizeParams(Section):
    max_instances_per_task: int | None = Field(None, ge=1)
    seed: int = 0
    splits: list[str] = ["train", "validation"]
    max_input_chars: int = Field(4000, ge=16)
    max_output_chars: int = Field(2000, ge=1)
    batch_rows: int = Field(65536, ge=1)

    @field_validator("splits")
    @classmethod
    def _no_test(cls, v: list[str]) -> list[str]:
        if "test" in v:
            raise ValueError("the test split never becomes training instances")
        return v


class Params(Section):
    sources: list[SourceSpec] = []
    collect: CollectParams = CollectParams()
    generate: GenerateParams = GenerateParams()
    llm: LLMParams = LLMParams()
    filter: FilterParams = FilterParams()
    organize: OrganizeParams = OrganizeParams()
    licenses: LicensePolicy = LicensePolicy()

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, v: list[SourceSpec]) -> list[SourceSpec]:
        seen: set[str] = set()
        for s in v:
            if s.id in seen:
                raise ValueError(f"duplicate source id {s.id!r}")
            seen.add(s.id)
        return v


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """`sources[1].id` rather than pydantic's `sources.1.id`; source entries are named by their id."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            ident = node[item].get("id") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts[-1] += f"[{ident!r}]" if ident else f"[{item}]"
        elif item not in ("function-after", "function-before") and not str(item).startswith(("function-", "literal")):
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) or "params"


def parse_params(data: Any, origin: str = PARAMS_FILE) -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{origin}: expected a mapping at the top level")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ParamsError(f"{origin}: {_key_path(err['loc'], data)}: {msg}{more}") from None


def load_params(path: str | Path | None = None) -> Params:
    path = Path(path or os.environ.get("DYNO_PARAMS", PARAMS_FILE))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_params(data, str(path))
