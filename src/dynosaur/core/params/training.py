"""The params of the training stages: `train` (with `train.lora`), `evaluate` and `continual` (with its
replay), and the base models and replay strategies they may name."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dynosaur.core.fingerprint import tuning
from dynosaur.core.params.base import MAX_COUNT, MAX_SEED, MAX_THREADS, Section
from dynosaur.core.params.corpus import SOURCE_ID

# Replay strategies of the continual stage (dynosaur.training.replay implements them).
STRATEGIES = ("none", "random", "data_diverse", "instr_diverse", "instr_similar", "instr_support")
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
