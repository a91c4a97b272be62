"""Training with TRL's `SFTTrainer`: encoded examples, threads and processes, the run's fingerprint and
checkpoints, the trainer's config and loss, and `train_model`, which trains and saves a model (see train.py
for the whole recipe)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import resource
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynosaur.core.errors import ParamsError, TrainingError
from dynosaur.core.fingerprint import fingerprint
from dynosaur.core.io import read_json
from dynosaur.core.params import TrainParams
from dynosaur.core.progress import Progress as Reporter
from dynosaur.core.records import Record, digest
from dynosaur.core.runner import log
from dynosaur.training.examples import Example, encode_example, format_prompt
from dynosaur.training.models import TRAIN_CONFIG, apply_lora, context_length, initial_model, save_model

FORMAT_VERSION = 2  # bump when the encoding of examples or the training loop changes (2: TRL's SFTTrainer)


class LossPoint(Record):
    step: int
    loss: float


class TrainResult(Record):
    steps: int
    losses: list[LossPoint]  # every step's, those before a resume included
    examples: int  # encoded training examples
    dropped_too_long: int  # prompt alone fills max_length
    tokens_seen: int  # non-padding tokens through the forward pass, in this run (after a resume: since it)
    tokens_per_s: float
    seconds: float  # the training loop, without loading, preparing or saving
    peak_rss_mb: float  # of the whole process
    peak_gpu_mb: float | None = None
    device: str
    parameters: int
    resumed_from_step: int | None = None  # the checkpoint this run continued from


def planned_steps(n_examples: int, params: TrainParams, processes: int = 1) -> int:
    """Optimizer steps: `max_steps`, or fewer when `epochs` over `n_examples` come first; each step takes
    `batch_size × grad_accum` examples on each of `processes` (data-parallel) processes."""
    per_epoch = math.ceil(n_examples / (params.batch_size * params.grad_accum * processes))
    candidates = [params.max_steps] if params.max_steps is not None else []
    if params.epochs is not None:
        candidates.append(max(1, math.ceil(params.epochs * per_epoch)))
    return min(candidates)


def _texts(examples: Sequence[Example], fmt: str) -> Callable[[], Iterator[str]]:
    return lambda: (format_prompt(ex, fmt=fmt) + ex.output for ex in examples)


def encode_examples(
    examples: Sequence[Example], tokenizer: Any, fmt: str, max_length: int
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(encoded examples, how many were dropped because the prompt alone fills `max_length`)."""
    prompts = tokenizer([format_prompt(ex, fmt=fmt) for ex in examples]).input_ids
    responses = tokenizer([ex.output for ex in examples], add_special_tokens=False).input_ids
    encoded = [
        encode_example(p, r, tokenizer.eos_token_id, max_length)
        for p, r in zip(prompts, responses, strict=True)
    ]
    data = [e for e in encoded if e is not None]
    return data, len(encoded) - len(data)


def set_threads(threads: int | None) -> None:
    """Small models on a busy CPU run faster with fewer threads (OpenMP's workers wait for each other)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def processes() -> int:
    """Data-parallel processes of this run: `accelerate launch` and `torchrun` set WORLD_SIZE."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def is_main_process() -> bool:
    """The one process (of `processes()`) that writes the stage's outputs."""
    return int(os.environ.get("RANK") or 0) == 0


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run_fingerprint(
    data: Sequence[tuple[list[int], list[int]]], params: TrainParams, init_from: Path | None, n_processes: int
) -> str:
    """What a checkpoint may be resumed under: the encoded examples, the params that change the model (not
    `threads`, `save_steps`, `gradient_checkpointing`), the model it starts from, the number of processes."""
    tokens = hashlib.sha256()
    for ids, mask in data:
        tokens.update(np.asarray(ids, dtype=np.int64).tobytes() + bytes(mask) + b"|")
    start = None
    if init_from is not None:
        config = init_from / TRAIN_CONFIG
        start = [str(init_from), digest(read_json(config)) if config.is_file() else None]
    inputs = {"data": tokens.hexdigest(), "init_from": start, "processes": n_processes}
    return fingerprint(inputs=inputs, params=params, version=FORMAT_VERSION)


def checkpoint_dir(root: Path, run_id: str) -> Path:
    """This run's checkpoint folder under `root`; other runs' folders there are stale and removed."""
    name = run_id.removeprefix("sha256:")[:16]
    if root.is_dir():
        for old in root.iterdir():
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    return root / name


def last_checkpoint(run_dir: Path) -> Path | None:
    """The latest complete checkpoint in `run_dir` (the trainer writes `trainer_state.json` last, straight into
    `checkpoint-<step>`: a run killed while saving leaves one without it, which is removed)."""
    steps = sorted(
        (int(p.name.removeprefix("checkpoint-")), p)
        for p in (run_dir.glob("checkpoint-*") if run_dir.is_dir() else [])
        if p.name.removeprefix("checkpoint-").isdigit()
    )
    for _, path in reversed(steps):
        if (path / "trainer_state.json").is_file():
            return path
        shutil.rmtree(path, ignore_errors=True)
    return None


def _progress(total: int) -> Any:
    """A TrainerCallback: stops on a non-finite loss, reports progress (steps, loss, tokens/s: a bar on a
    terminal, plain lines otherwise), and times the loop and its tokens."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.start = self.seconds = 0.0
            self.tokens_at_start = self.tokens = 0
            self.bar: Reporter | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.tokens_at_start = state.num_input_tokens_seen
            self.start = time.perf_counter()
            if state.is_world_process_zero:
                self.bar = Reporter("train", total, "steps", rate_of="tokens").__enter__()
                self.bar.update(completed=state.global_step)  # resumed from a checkpoint: not at 0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            step = state.global_step
            if not math.isfinite(loss):
                self.close()
                raise TrainingError(f"training diverged at step {step} (loss {loss}): lower train.lr")
            if self.bar is not None:
                tokens = state.num_input_tokens_seen - self.tokens_at_start
                self.bar.update(completed=step, loss=loss, tokens=tokens)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_save = False  # the finished model is saved as the stage's output instead

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seconds = time.perf_counter() - self.start
            self.tokens = state.num_input_tokens_seen - self.tokens_at_start
            self.close()

        def close(self) -> None:
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None

    return Progress()


def sft_config(
    params: TrainParams, steps: int, max_length: int, output_dir: Path, *, bf16: bool, save: bool
) -> Any:
    """The train params as TRL's `SFTConfig` (a `transformers.TrainingArguments`)."""
    import torch
    from trl import SFTConfig

    # transformers 5.2x renamed gradient_checkpointing (TRL defaults it to True) to activation_checkpointing
    renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
    checkpointing: dict[str, Any] = {
        "activation_checkpointing" if renamed else "gradient_checkpointing": params.gradient_checkpointing
    }
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum,
        learning_rate=params.lr,
        lr_scheduler_type="linear" if params.schedule == "linear" else "constant_with_warmup",
        warmup_steps=params.warmup_steps,
        weight_decay=params.weight_decay,
        max_grad_norm=params.grad_clip or 0.0,  # 0: no clipping
        seed=params.seed,
        data_seed=params.seed,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        **checkpointing,
        completion_only_loss=True,  # labels are -100 wherever the completion mask is 0
        max_length=max_length,
        train_sampling_strategy="group_by_length",  # little padding per batch, still a random order
        logging_steps=1,
        logging_nan_inf_filter=False,  # a non-finite loss must reach the divergence check
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps" if save and params.save_steps else "no",
        save_steps=params.save_steps or 500,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )


def response_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """The causal-LM loss over the labelled positions, with the LM head applied to those positions only.

    The backbone runs on every token; the vocabulary projection (for Qwen2.5 a 151,936 × 896 matrix) only
    where a label is, so a prompt costs no logits. This is what TRL's fused head does on GPUs with Triton;
    on the CPU TRL scores every position. Normalised like transformers' loss: by `num_items_in_batch` (the
    labelled tokens of all the step's micro-batches) when the trainer passes it, else by this batch's."""
    import torch.nn.functional as F

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
    labels = inputs["labels"][:, 1:]
    kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    hidden = lm.base_model(**kwargs, use_cache=False).last_hidden_state[:, :-1]
    mask = labels != -100
    logits = lm.get_output_embeddings()(hidden[mask]).float()
    total = F.cross_entropy(logits, labels[mask], reduction="sum")
    return total / (num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1))


def make_trainer(
    model: Any, tokenizer: Any, data: Sequence[tuple[list[int], list[int]]], config: Any, callbacks: list[Any]
) -> Any:
    """TRL's `SFTTrainer` over the encoded examples: `input_ids` and `completion_mask` columns, from which TRL
    builds the labels (-100 over the prompt; the collator pads them with -100 too).

    On the CPU the loss is `response_loss` rather than TRL's fused LM head, which without Triton scores every
    position in Python-driven tiles and adds entropy and token accuracy for its logs: the scratch default
    trained at 8,700–12,100 tokens/s with it, 18,700 with the model's own loss, up to 30,200 with
    `response_loss` (docs/training.md#throughput)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTTrainer

    class DynoSFTTrainer(SFTTrainer):
        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            # one process only: under DDP the wrapped model's own forward is what synchronises gradients
            if self.args.device.type != "cpu" or return_outputs or self.accelerator.num_processes > 1:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return response_loss(model, inputs, num_items_in_batch)

    dataset = Dataset.from_dict({"input_ids": [x for x, _ in data], "completion_mask": [m for _, m in data]})
    trainer = DynoSFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks
    )
    trainer.remove_callback(PrinterCallback)  # every step's log dict on stdout; `_progress` logs instead
    return trainer


def train_model(
    examples: list[Example],
    params: TrainParams,
    out_dir: Path,
    *,
    init_from: Path | None = None,
    describe: dict[str, Any] | None = None,
    checkpoints: Path | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train on `examples` with TRL's `SFTTrainer` and write the model, its tokenizer and `train_config.json`
    to `out_dir` (from the main process only, when several train data-parallel).

    Args:
        init_from: a model directory written by an earlier run to continue from (its tokenizer too).
        describe: extra provenance for `train_config.json` (e.g. which corpus or release).
        checkpoints: a folder for checkpoints (`train.save_steps`), to resume from when the run is killed;
            None: no checkpoints.
        callbacks: extra `transformers.TrainerCallback`s.
    """
    import torch

    if not examples:
        raise TrainingError("no training examples: the corpus is empty once the held-out sources are removed")
    set_threads(params.threads)
    torch.manual_seed(params.seed)
    model, tokenizer = initial_model(params, _texts(examples, params.prompt_format), init_from)
    limit = context_length(model)
    max_length = params.max_length if limit is None else min(params.max_length, limit)
    data, dropped = encode_examples(examples, tokenizer, params.prompt_format, max_length)
    if not data:
        raise ParamsError(
            f"train.max_length: {max_length} tokens leave no room for a response in any example"
        )
    cuda = torch.cuda.is_available()
    if not cuda or not params.lora.enabled:
        # fp32 weights: the CPU's kernels, and full fine-tuning's optimizer state, want them (bf16 weights
        # stall AdamW); on a GPU the forward pass runs under bf16 autocast. LoRA keeps a frozen GPU base.
        model.float()
    if params.lora.enabled:
        torch.manual_seed(params.seed)  # the adapters' initialisation
        model = apply_lora(model, params)
    bf16 = params.bf16 if params.bf16 is not None else cuda and torch.cuda.is_bf16_supported()
    n_processes = processes()
    total = planned_steps(len(data), params, n_processes)
    with contextlib.ExitStack() as stack:
        if checkpoints is None:
            output_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dyno-sft-")))
        else:
            output_dir = checkpoint_dir(checkpoints, run_fingerprint(data, params, init_from, n_processes))
        last = last_checkpoint(output_dir) if checkpoints is not None else None
        progress = _progress(total)
        config = sft_config(params, total, max_length, output_dir, bf16=bf16, save=checkpoints is not None)
        trainer = make_trainer(model, tokenizer, data, config, [progress, *callbacks])
        resumed = int(last.name.removeprefix("checkpoint-")) if last else None
        if resumed is not None:
            log(f"train: resuming from the checkpoint at step {resumed} of {total} ({last})")
        try:
            trainer.train(resume_from_checkpoint=None if last is None else str(last))
        finally:  # Ctrl-C or out of memory: a terminal's live bar must not keep the cursor and streams
            progress.close()
        losses = [
            LossPoint(step=int(e["step"]), loss=round(float(e["loss"]), 5))
            for e in trainer.state.log_history
            if "loss" in e
        ]
        device = str(trainer.args.device)
        model = trainer.model
        if params.lora.enabled:
            model = model.merge_and_unload()
        model.to("cpu")
        if trainer.is_world_process_zero():
            train_config = {
                "format_version": FORMAT_VERSION,
                "base_model": params.base_model,
                "init_from": None if init_from is None else str(init_from),
                "max_length": max_length,
                "prompt_format": params.prompt_format,
                "seed": params.seed,
                "steps": total,
                "examples": len(data),
                "params": params.model_dump(mode="json", exclude={"continual"}),
                **(describe or {}),
            }
            save_model(model, tokenizer, train_config, out_dir)
            if checkpoints is not None:
                shutil.rmtree(output_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    checkpoints.rmdir()  # when no other run's checkpoints are left there
        trainer.accelerator.wait_for_everyone()
    return TrainResult(
        steps=total,
        losses=losses,
        examples=len(data),
        dropped_too_long=dropped,
        tokens_seen=progress.tokens,
        tokens_per_s=round(progress.tokens / progress.seconds, 1) if progress.seconds > 0 else 0.0,
        seconds=round(progress.seconds, 2),
        peak_rss_mb=_peak_rss_mb(),
        peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        device=device,
        parameters=sum(p.numel() for p in model.parameters()),
        resumed_from_step=resumed,
    )


def quiet_transformers() -> None:
    """No progress bars or advisory warnings from transformers, datasets or TRL in stage logs (errors show)."""
    import datasets
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    # peft (0.21) calls a method transformers (5.2x) deprecates: one warning per run, nothing to act on
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
