"""train: supervised fine-tuning of a causal LM on the corpus (or a release) with TRL's `SFTTrainer`.

    examples   `load_examples`: every `<corpus>/<source>/<task>.parquet` shard, minus the sources held out for
               evaluation (`evaluate.holdout_sources`), at most `train.max_per_task` instances per task (a
               seeded sample); `split_holdout` keeps a seeded slice of every task out of training as well
    model      `train.base_model` (`dynosaur.training.models`): a seeded scratch GPT-2 with a tokenizer
               trained offline, the packaged GGUF (`gguf:local`) or another `.gguf` file converted once, a
               local model directory, or a Hub id already in the local cache; never downloaded
    loop       TRL's `SFTTrainer` on a tokenized prompt-completion dataset (`input_ids` and a `completion_mask`)
               with `completion_only_loss`: the loss covers the response and its eos only. AdamW, linear
               warmup then linear decay (or constant), gradient clipping, `grad_accum` micro-batches per step,
               batches grouped by length. LoRA via peft (`train.lora`), merged before saving; bf16 mixed
               precision on a GPU that supports it (`train.bf16`); gradient checkpointing as a param
    devices    one process: CUDA when present, else the CPU. Under `accelerate launch` the same code trains
               data-parallel on every GPU (`train.batch_size` is per GPU); only the main process writes
    resume     with a checkpoint folder (the stage's `--checkpoints`), a checkpoint every `train.save_steps`
               steps goes to a subfolder named by the run's fingerprint (examples, the params that change the
               model, the model it starts from, the number of processes). Killed and run again with the same
               inputs, it resumes from the last one (weights, optimizer, schedule, data order and RNG states)
               and ends with the model an uninterrupted run writes. A finished run removes its checkpoints;
               other fingerprints' are stale and removed when a run starts
    save       model, tokenizer and `train_config.json` are swapped into place only when complete
               (`dynosaur.training.models.save_model`): a failed run leaves the previous model, or none

Sequences are `prompt + response + eos`, cut at `train.max_length` tokens; an example whose prompt leaves no
room for a response token is dropped and counted. Prompt and response are tokenized separately, as they are
at generation time (`dynosaur.training.evaluate`), so a boundary never merges differently in training and
inference (TRL's own tokenization of `prompt + completion` could merge across it: `Output: ` + `yes`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
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
import pyarrow.parquet as pq

from dynosaur.core.charts import line_chart
from dynosaur.core.errors import NotFound, ParamsError, TrainingError, some
from dynosaur.core.fingerprint import fingerprint
from dynosaur.core.io import atomic_write, read_json, write_json
from dynosaur.core.params import TrainParams, load_params
from dynosaur.core.progress import Progress as Reporter
from dynosaur.core.records import Record, digest
from dynosaur.core.runner import log, run, write_metrics
from dynosaur.training.evaluation import is_classification
from dynosaur.training.models import TRAIN_CONFIG, apply_lora, context_length, initial_model, save_model

FORMAT_VERSION = 2  # bump when the encoding of examples or the training loop changes (2: TRL's SFTTrainer)
COLUMNS = ["instruction", "input", "output", "task_id", "source_id"]

ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
PLAIN = "{instruction}\n\nInput: {input}\n\nOutput: "
PLAIN_NO_INPUT = "{instruction}\n\nOutput: "
PROMPT_FORMATS = {"alpaca": (ALPACA, ALPACA_NO_INPUT), "plain": (PLAIN, PLAIN_NO_INPUT)}


class Example(Record):
    task_id: str
    source_id: str
    instruction: str
    input: str
    output: str


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


class EvalSet(Record):
    """What the evaluate stage scores: held-out instances of trained tasks, and the unseen tasks."""

    heldout: dict[str, list[Example]]
    unseen: dict[str, list[Example]]
    label_options: dict[str, list[str]]  # classification-like tasks: their distinct outputs


# --- examples (pure, but for reading shards) --------------------------------------------------------------


def _task_seed(seed: int, task_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(task_id.encode()).hexdigest()[:15], 16)])


def corpus_sources(corpus_dir: Path) -> list[str]:
    return sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def load_examples(
    corpus_dir: Path,
    *,
    exclude_sources: set[str] | frozenset[str] = frozenset(),
    only_sources: set[str] | frozenset[str] | None = None,
    max_per_task: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Every instance of the corpus shards `<corpus>/<source>/<task>.parquet`, in shard then row order.

    With `max_per_task`, a task with more instances keeps a sample drawn with (seed, task id), in row order.
    """
    examples: list[Example] = []
    for shard in sorted(corpus_dir.glob("*/*.parquet")):
        source = shard.parent.name
        if source in exclude_sources or (only_sources is not None and source not in only_sources):
            continue
        rows = pq.read_table(shard, columns=COLUMNS).to_pylist()
        if max_per_task is not None and len(rows) > max_per_task:
            rng = _task_seed(seed, rows[0]["task_id"])
            keep = np.sort(rng.choice(len(rows), max_per_task, replace=False))
            rows = [rows[i] for i in keep]
        examples.extend(Example(**{k: r[k] or "" for k in COLUMNS}) for r in rows)
    return examples


def group_by_task(examples: Sequence[Example]) -> dict[str, list[Example]]:
    tasks: dict[str, list[Example]] = {}
    for ex in examples:
        tasks.setdefault(ex.task_id, []).append(ex)
    return tasks


def split_holdout(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], dict[str, list[Example]]]:
    """(training examples, held-out examples per task): per task, `round(n × fraction)` instances, at least
    one when `fraction > 0`, never all of them; drawn with (seed, task id). Both keep the input order.

    Duplicates of a held-out instance (same task, input and output) are dropped from training, so a held-out
    instance is never trained on under another row number."""
    train: list[Example] = []
    heldout: dict[str, list[Example]] = {}
    for task_id, items in group_by_task(examples).items():
        n = len(items)
        k = min(n - 1, max(1, round(n * fraction))) if fraction > 0 else 0
        held = set(_task_seed(seed, task_id).choice(n, k, replace=False).tolist()) if k > 0 else set()
        if held:
            heldout[task_id] = [ex for i, ex in enumerate(items) if i in held]
        seen = set(heldout.get(task_id, []))
        train.extend(ex for i, ex in enumerate(items) if i not in held and ex not in seen)
    return train, heldout


def label_options(tasks: dict[str, list[Example]]) -> dict[str, list[str]]:
    """The distinct outputs of each classification-like task (few, short), by `dynosaur.training.evaluation`'s rule."""
    return {
        task_id: sorted({ex.output for ex in items})
        for task_id, items in sorted(tasks.items())
        if is_classification([ex.output for ex in items], None)
    }


def format_prompt(instruction: str | Example, input: str = "", fmt: str = "alpaca") -> str:
    """The prompt the model completes: `alpaca` (Stanford Alpaca's template) or `plain`."""
    if isinstance(instruction, Example):
        example = instruction
        instruction, input = example.instruction, example.input
    try:
        with_input, without = PROMPT_FORMATS[fmt]
    except KeyError:
        raise ParamsError(f"unknown prompt format {fmt!r} (known: {', '.join(PROMPT_FORMATS)})") from None
    template = with_input if input.strip() else without
    return template.format(instruction=instruction.strip(), input=input.strip())


def encode_example(
    prompt_ids: list[int], response_ids: list[int], eos_id: int, max_length: int
) -> tuple[list[int], list[int]] | None:
    """(input ids, completion mask): 0 over the prompt, 1 over the response and eos, which the loss covers;
    None when the prompt leaves no room to learn."""
    if len(prompt_ids) >= max_length:
        return None
    ids = (prompt_ids + response_ids + [eos_id])[:max_length]
    return ids, [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))


def planned_steps(n_examples: int, params: TrainParams, processes: int = 1) -> int:
    """Optimizer steps: `max_steps`, or fewer when `epochs` over `n_examples` come first; each step takes
    `batch_size × grad_accum` examples on each of `processes` (data-parallel) processes."""
    per_epoch = math.ceil(n_examples / (params.batch_size * params.grad_accum * processes))
    candidates = [params.max_steps] if params.max_steps is not None else []
    if params.epochs is not None:
        candidates.append(max(1, math.ceil(params.epochs * per_epoch)))
    return min(candidates)


# --- training with TRL ------------------------------------------------------------------------------------


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


# --- the stage --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def corpus_for(release: str | None, workspace_corpus: Path) -> Iterator[tuple[Path, str]]:
    """(corpus directory, its name): the workspace corpus, or release `vN` pulled into a temporary folder."""
    if release is None:
        if not workspace_corpus.is_dir():
            raise NotFound(f"{workspace_corpus}: no corpus yet; run `dvc repro organize` first")
        yield workspace_corpus, str(workspace_corpus)
        return
    from dynosaur.registry.pull import pull_release

    with tempfile.TemporaryDirectory(prefix="dyno-train-") as tmp:
        try:
            report = pull_release(Path("."), release, Path(tmp) / "corpus")
        except NotFound as exc:
            raise NotFound(f"train.release: {exc}") from None
        log(f"train: pulled {report.tag} ({report.instances} instances in {report.shards} shards)")
        yield report.out, report.tag


def loss_chart(losses: Sequence[LossPoint]) -> str:
    return line_chart("Training loss", "step", [p.step for p in losses], {"loss": [p.loss for p in losses]})


def loss_csv(losses: Sequence[LossPoint]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "loss"])
    writer.writerows([p.step, p.loss] for p in losses)
    return buf.getvalue()


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


def main(args: argparse.Namespace) -> None:
    params = load_params()
    quiet_transformers()
    p, holdout = params.train, set(params.evaluate.holdout_sources)
    with corpus_for(p.release, args.corpus) as (corpus, name):
        sources = corpus_sources(corpus)
        if missing := sorted(holdout - set(sources)):
            raise ParamsError(
                f"evaluate.holdout_sources: {missing[0]!r} is not a source of {name}"
                f" (sources: {some(sources)})"
            )
        examples = load_examples(corpus, exclude_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
        unseen = group_by_task(
            load_examples(corpus, only_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
        )
    train, heldout = split_holdout(examples, p.holdout_fraction, p.seed)
    log(
        f"train: {len(train)} examples of {len(group_by_task(train))} tasks from {name};"
        f" {sum(map(len, heldout.values()))} held out; {len(unseen)} unseen tasks"
    )
    result = train_model(train, p, args.model, describe={"corpus": name}, checkpoints=args.checkpoints)
    if not is_main_process():
        return
    options = label_options(group_by_task(examples) | unseen)
    evalset = EvalSet(heldout=heldout, unseen=unseen, label_options=options)
    write_json(args.evalset, evalset)
    atomic_write(args.losses, loss_csv(result.losses))
    atomic_write(args.plot, loss_chart(result.losses))
    first, last = result.losses[:10], result.losses[-10:]
    loss_first, loss_last = (round(sum(x.loss for x in xs) / len(xs), 4) for xs in (first, last))
    write_metrics(
        args.metrics,
        {
            "tasks": len(group_by_task(train)),
            "instances": result.examples,  # trained on
            "loss": loss_last,  # mean of the last 10 steps' losses
        },
    )
    write_json(
        args.run_log,
        {
            "corpus": name,
            "dropped_too_long": result.dropped_too_long,
            "heldout_instances": sum(map(len, heldout.values())),
            "unseen_tasks": len(unseen),
            "steps": result.steps,
            "loss_first10": loss_first,  # mean of the first 10 steps' losses
            "loss_last10": loss_last,
            **result.model_dump(
                include={
                    "tokens_seen",
                    "tokens_per_s",
                    "seconds",
                    "peak_rss_mb",
                    "peak_gpu_mb",
                    "device",
                    "parameters",
                    "resumed_from_step",
                }
            ),
        },
    )
    log(
        f"train: {result.steps} steps, mean loss of the first/last 10 {loss_first:.3f} → {loss_last:.3f},"
        f" {result.tokens_per_s:,.0f} tokens/s, peak RSS {result.peak_rss_mb:,.0f} MB"
    )


if __name__ == "__main__":
    run(main, "corpus", "model", "evalset", "metrics", "run-log", "losses", "plot", "checkpoints")
