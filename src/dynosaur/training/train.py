"""train: supervised fine-tuning of a causal LM on the corpus (or a release), with LoRA when configured.

    examples   `load_examples`: every `<corpus>/<source>/<task>.parquet` shard, minus the sources held out for
               evaluation (`evaluate.holdout_sources`), at most `train.max_per_task` instances per task (a
               seeded sample); `split_holdout` keeps a seeded slice of every task out of training as well
    model      `train.base_model`: `scratch:<preset>` is a small GPT-2 initialised from the seed, with a
               byte-level BPE tokenizer trained on the training texts by `tokenizers` (nothing downloaded);
               a local model directory, or a Hub id already in the local cache, is loaded with
               `local_files_only=True`: the stage never downloads
    loop       plain PyTorch: AdamW, linear warmup then linear decay (or constant), gradient clipping,
               `grad_accum` micro-batches per step; the loss covers the response tokens only (the prompt is
               masked with -100). CUDA when present (bf16 autocast where supported), else the CPU
    save       model, tokenizer and `train_config.json` go to a temporary directory next to the output, which
               is renamed into place only when complete: a failed run leaves the previous model, or none

Sequences are `prompt + response + eos`, cut at `train.max_length` tokens; an example whose prompt leaves no
room for a response token is dropped and counted. Prompt and response are tokenized separately, as they are
at generation time (`dynosaur.training.evaluate`), so a boundary never merges differently in training and inference.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import math
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from dynosaur.core.errors import DynoError, ModelError, NotFound, ParamsError, first_line, some
from dynosaur.core.io import atomic_write, read_json, replace_dir, write_json
from dynosaur.core.params import HUB_REPO, SCRATCH_MODELS, SCRATCH_PREFIX, TrainParams, load_params
from dynosaur.core.records import Record
from dynosaur.core.runner import log, run, write_metrics
from dynosaur.training.evaluation import is_classification

FORMAT_VERSION = 1  # bump when the encoding of examples changes
EOS, PAD = "<|endoftext|>", "<pad>"
TRAIN_CONFIG = "train_config.json"
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
    losses: list[LossPoint]
    examples: int  # encoded training examples
    dropped_too_long: int  # prompt alone fills max_length
    tokens_seen: int  # non-padding tokens through the forward pass
    tokens_per_s: float
    seconds: float  # the training loop, without loading or saving
    peak_rss_mb: float  # of the whole process
    peak_gpu_mb: float | None = None
    device: str
    parameters: int


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
    """(input ids, labels) with the prompt masked as -100; None when the prompt leaves no room to learn."""
    if len(prompt_ids) >= max_length:
        return None
    ids = (prompt_ids + response_ids + [eos_id])[:max_length]
    labels = [-100] * len(prompt_ids) + ids[len(prompt_ids) :]
    return ids, labels


def planned_steps(n_examples: int, params: TrainParams) -> int:
    per_epoch = math.ceil(n_examples / (params.batch_size * params.grad_accum))
    candidates = [params.max_steps] if params.max_steps is not None else []
    if params.epochs is not None:
        candidates.append(max(1, math.ceil(params.epochs * per_epoch)))
    return min(candidates)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of `lr` at optimizer step `step` (0-based): linear warmup, then linear decay or constant."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


# --- models and tokenizers --------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on `texts` (offline), as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)


def scratch_model(preset: str, tokenizer: Any, n_positions: int, seed: int) -> Any:
    """A GPT-2 of the preset's size, initialised from `seed` (the same seed gives the same weights)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    # No dropout: a small model on a few thousand examples for about an epoch underfits rather than
    # overfits, and dropout costs a fifth of a CPU step.
    shape: dict[str, Any] = SCRATCH_MODELS[preset]  # Any: GPT2Config's stubs type each keyword differently
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        **shape,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def load_pretrained(name: str | Path, what: str = "base model") -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory, or a Hub id already in the local cache; never downloads.

    Args:
        what: names the model in errors ("base model 'x' cannot be loaded offline: ...").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    fail = f"{what} {str(name)!r} cannot be loaded offline"
    if not path.exists() and not HUB_REPO.match(str(name)):
        raise ModelError(f"{fail}: no such directory")
    if path.exists() and not (path / "config.json").is_file():
        raise ModelError(f"{fail}: {path} has no config.json (not a transformers model directory)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(name), local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        if path.exists():
            raise ModelError(f"{fail}: {first_line(exc)}") from None
        raise ModelError(
            f"{fail}: not in the local Hugging Face cache, and the stage never downloads;"
            f" run `hf download {name}` once, or give a local model directory"
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{what} {str(name)!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def initial_model(
    params: TrainParams, texts: Callable[[], Iterator[str]] | None, init_from: Path | None = None
) -> tuple[Any, Any]:
    """The model training starts from: `init_from`, a scratch model (its tokenizer trained on `texts()`), or
    the pretrained `base_model`."""
    if init_from is not None:
        return load_pretrained(init_from, "model to continue from")
    if not params.scratch:
        return load_pretrained(params.base_model)
    if texts is None:
        raise ValueError("a scratch model needs training texts for its tokenizer")
    tokenizer = train_tokenizer(list(texts()), params.vocab_size)
    return scratch_model(
        params.base_model.removeprefix(SCRATCH_PREFIX), tokenizer, params.max_length, params.seed
    ), tokenizer


def load_base(model_dir: Path) -> tuple[Any, Any]:
    """The model that `model_dir` was trained from, for comparison: the `init_from` model, the pretrained
    base, or for a scratch model its seeded initialisation (rebuilt, with the trained tokenizer)."""
    from transformers import AutoTokenizer

    try:
        config = read_json(model_dir / TRAIN_CONFIG)
        params = TrainParams.model_validate(config["params"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{model_dir}: not a model of the train stage ({first_line(exc)})") from None
    if config.get("init_from"):
        return load_pretrained(Path(config["init_from"]), "model it continued from")
    if not params.scratch:
        return load_pretrained(params.base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    preset = params.base_model.removeprefix(SCRATCH_PREFIX)
    return scratch_model(preset, tokenizer, config["max_length"], config["seed"]), tokenizer


def context_length(model: Any) -> int | None:
    """Positions the model can attend over (None when its config does not say)."""
    for name in ("n_positions", "max_position_embeddings"):
        if value := getattr(model.config, name, None):
            return int(value)
    return None


def apply_lora(model: Any, params: TrainParams) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=params.lora.r,
        lora_alpha=params.lora.alpha,
        lora_dropout=params.lora.dropout,
        target_modules=params.lora.target_modules,
        task_type="CAUSAL_LM",
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores weights transposed
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ParamsError(f"train.lora: {first_line(exc)}") from None


# --- the training loop ------------------------------------------------------------------------------------


def _texts(examples: Sequence[Example], fmt: str) -> Callable[[], Iterator[str]]:
    return lambda: (format_prompt(ex, fmt=fmt) + ex.output for ex in examples)


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, window: int = 32
) -> Iterator[list[int]]:
    """Endless batches of indices: each epoch is a seeded shuffle, cut into windows of `window` batches;
    within a window, examples of similar length are batched together and the batches are shuffled, so
    little of each batch is padding while the order stays random. Every example appears once per epoch."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size * window):
            chunk = sorted(order[start : start + batch_size * window].tolist(), key=lambda i: (lengths[i], i))
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            for b in rng.permutation(len(batches)).tolist():
                yield batches[b]


def set_threads(threads: int | None) -> None:
    """Small models on a busy CPU run faster with fewer threads (OpenMP's workers wait for each other)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def train_model(
    examples: list[Example],
    params: TrainParams,
    out_dir: Path,
    *,
    init_from: Path | None = None,
    describe: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on `examples` and write the model, its tokenizer and `train_config.json` to `out_dir`.

    Args:
        init_from: a model directory written by an earlier run to continue from (its tokenizer too).
        describe: extra provenance for `train_config.json` (e.g. which corpus or release).
    """
    import torch

    if not examples:
        raise DynoError("no training examples: the corpus is empty once the held-out sources are removed")
    set_threads(params.threads)
    torch.manual_seed(params.seed)
    model, tokenizer = initial_model(params, _texts(examples, params.prompt_format), init_from)
    limit = context_length(model)
    max_length = params.max_length if limit is None else min(params.max_length, limit)
    prompts = tokenizer([format_prompt(ex, fmt=params.prompt_format) for ex in examples]).input_ids
    responses = tokenizer([ex.output for ex in examples], add_special_tokens=False).input_ids
    encoded = [
        encode_example(p, r, tokenizer.eos_token_id, max_length)
        for p, r in zip(prompts, responses, strict=False)
    ]
    data = [e for e in encoded if e is not None]
    if not data:
        raise ParamsError(
            f"train.max_length: {max_length} tokens leave no room for a response in any example"
        )

    if getattr(model, "loss_type", None) is None:
        model.loss_type = "ForCausalLM"  # what transformers falls back to anyway, with a warning
    if params.lora.enabled:
        model = apply_lora(model, params)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" or not params.lora.enabled:
        # fp32 weights: the CPU's kernels, and full fine-tuning's optimizer state, want them (bf16 weights
        # stall AdamW); on a GPU the forward pass runs under bf16 autocast. LoRA keeps a frozen GPU base.
        model.float()
    model.to(device).train()
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    total = planned_steps(len(data), params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, params.warmup_steps, params.schedule)
    )
    stream = length_grouped_batches([len(ids) for ids, _ in data], params.batch_size, params.seed)
    losses: list[LossPoint] = []
    tokens = 0
    every = max(1, total // 10)
    start = time.perf_counter()
    for step in range(1, total + 1):
        step_loss = 0.0
        for _ in range(params.grad_accum):
            batch = _collate([data[i] for i in next(stream)], tokenizer.pad_token_id)
            tokens += int(batch["attention_mask"].sum())
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss / params.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
        if not math.isfinite(step_loss):
            raise DynoError(f"training diverged at step {step} (loss {step_loss}): lower train.lr")
        if params.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trainable, params.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(LossPoint(step=step, loss=round(step_loss, 5)))
        if step % every == 0 or step == total:
            rate = tokens / (time.perf_counter() - start)
            log(f"train: step {step}/{total} loss {step_loss:.4f} ({rate:,.0f} tokens/s on {device.type})")
    seconds = time.perf_counter() - start

    if params.lora.enabled:
        model = model.merge_and_unload()
    model.to("cpu")
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
    return TrainResult(
        steps=total,
        losses=losses,
        examples=len(data),
        dropped_too_long=len(encoded) - len(data),
        tokens_seen=tokens,
        tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
        seconds=round(seconds, 2),
        peak_rss_mb=_peak_rss_mb(),
        peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
        device=str(device),
        parameters=sum(p.numel() for p in model.parameters()),
    )


def save_model(model: Any, tokenizer: Any, config: dict[str, Any], out_dir: Path) -> None:
    """Write to a temporary sibling of `out_dir`, then swap it into place: all or nothing."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / TRAIN_CONFIG, config)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def loss_csv(losses: Sequence[LossPoint]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "loss"])
    writer.writerows([p.step, p.loss] for p in losses)
    return buf.getvalue()


def quiet_transformers() -> None:
    """No progress bars or advisory warnings from transformers in stage logs (errors still show)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


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
    result = train_model(train, p, args.model, describe={"corpus": name})
    options = label_options(group_by_task(examples) | unseen)
    evalset = EvalSet(heldout=heldout, unseen=unseen, label_options=options)
    write_json(args.evalset, evalset)
    atomic_write(args.plots, loss_csv(result.losses))
    first, last = result.losses[:10], result.losses[-10:]
    loss_first, loss_last = (round(sum(x.loss for x in xs) / len(xs), 4) for xs in (first, last))
    write_metrics(
        args.metrics,
        {
            "corpus": name,
            "tasks": len(group_by_task(train)),
            "examples": result.examples,
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
                }
            ),
        },
    )
    log(
        f"train: {result.steps} steps, mean loss of the first/last 10 {loss_first:.3f} → {loss_last:.3f},"
        f" {result.tokens_per_s:,.0f} tokens/s, peak RSS {result.peak_rss_mb:,.0f} MB"
    )


if __name__ == "__main__":
    run(main, "corpus", "model", "evalset", "metrics", "plots")
