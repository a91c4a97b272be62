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

Where: the examples and prompts in `dynosaur.training.examples`, the loop in `dynosaur.training.sft`; this
module is the stage (its inputs, outputs and `main`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dynosaur.core.charts import line_chart
from dynosaur.core.errors import NotFound, ParamsError, some
from dynosaur.core.io import atomic_write, write_json
from dynosaur.core.params import TrainParams, load_params
from dynosaur.core.runner import log, run, write_metrics
from dynosaur.training.examples import (
    EvalSet,
    Example,
    corpus_sources,
    group_by_task,
    label_options,
    load_examples,
    split_holdout,
)
from dynosaur.training.sft import LossPoint, TrainResult, is_main_process, quiet_transformers, train_model

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


def read_corpus(
    corpus: Path, name: str, holdout: set[str], p: TrainParams
) -> tuple[list[Example], dict[str, list[Example]]]:
    """(the examples to train on, the unseen tasks): `corpus` without and with only the held-out sources."""
    sources = corpus_sources(corpus)
    if missing := sorted(holdout - set(sources)):
        raise ParamsError(
            f"evaluate.holdout_sources: {missing[0]!r} is not a source of {name} (sources: {some(sources)})"
        )
    examples = load_examples(corpus, exclude_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
    unseen = group_by_task(
        load_examples(corpus, only_sources=holdout, max_per_task=p.max_per_task, seed=p.seed)
    )
    return examples, unseen


def run_log(
    name: str, result: TrainResult, heldout: dict[str, list[Example]], unseen: dict[str, list[Example]]
) -> dict[str, Any]:
    """The stage's run log: the corpus, what was dropped and held out, the steps, the mean loss of the first
    and last 10 steps, throughput and peak memory."""
    first, last = result.losses[:10], result.losses[-10:]
    loss_first, loss_last = (round(sum(x.loss for x in xs) / len(xs), 4) for xs in (first, last))
    return {
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
    }


def main(args: argparse.Namespace) -> None:
    params = load_params()
    quiet_transformers()
    p, holdout = params.train, set(params.evaluate.holdout_sources)
    with corpus_for(p.release, args.corpus) as (corpus, name):
        examples, unseen = read_corpus(corpus, name, holdout, p)
    train, heldout = split_holdout(examples, p.holdout_fraction, p.seed)
    log(
        f"train: {len(train)} examples of {len(group_by_task(train))} tasks from {name};"
        f" {sum(map(len, heldout.values()))} held out; {len(unseen)} unseen tasks"
    )
    result = train_model(train, p, args.model, describe={"corpus": name}, checkpoints=args.checkpoints)
    if not is_main_process():
        return
    options = label_options(group_by_task(examples) | unseen)
    write_json(args.evalset, EvalSet(heldout=heldout, unseen=unseen, label_options=options))
    atomic_write(args.losses, loss_csv(result.losses))
    atomic_write(args.plot, loss_chart(result.losses))
    summary = run_log(name, result, heldout, unseen)
    # loss: the mean of the last 10 steps' losses; instances: those trained on
    write_metrics(
        args.metrics,
        {"tasks": len(group_by_task(train)), "instances": result.examples, "loss": summary["loss_last10"]},
    )
    write_json(args.run_log, summary)
    log(
        f"train: {result.steps} steps, mean loss of the first/last 10 {summary['loss_first10']:.3f}"
        f" → {summary['loss_last10']:.3f}, {result.tokens_per_s:,.0f} tokens/s,"
        f" peak RSS {result.peak_rss_mb:,.0f} MB"
    )


if __name__ == "__main__":
    run(main, "corpus", "model", "evalset", "metrics", "run-log", "losses", "plot", "checkpoints")
