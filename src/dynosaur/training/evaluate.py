"""evaluate: score the trained model, and the model it was trained from, on tasks it did not train on.

Three suites, each task scored by `dynosaur.training.evaluation` (ROUGE-L on every task, exact match on
classification-like ones) and macro-averaged over tasks:

    heldout  instances of the trained tasks that `train` kept out of training (`train.holdout_fraction`)
    unseen   every task of the sources in `evaluate.holdout_sources`, which never enter training
    superni  Super-NaturalInstructions task files (`taskNNN_*.json`) in `evaluate.superni_dir`, when set

Both come from `data/evalset.json`, written by `train` from the very corpus it trained on (the workspace or a
pulled release). A task is classification-like when its outputs in that corpus are few and short; those
outputs are its label options. At most `evaluate.max_instances_per_task` instances per task are scored.

Generation is greedy, batched with left padding; a prompt longer than the model's context minus
`max_new_tokens` keeps its end (where the instruction template asks for the response). The base model is
rebuilt by `dynosaur.training.models.load_base`: a scratch model's seeded initialisation with the trained tokenizer, the
pretrained base, or the `init_from` model, so `lift` (trained − base) shows what training added.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dynosaur.core.errors import ParamsError, TrainingError
from dynosaur.core.io import read_json, read_model, write_json
from dynosaur.core.params import EvaluateParams, load_params
from dynosaur.core.records import Record
from dynosaur.core.runner import log, run, write_metrics
from dynosaur.training.evaluation import EvalSummary, SuperNITask, aggregate, read_superni_tasks, score_task
from dynosaur.training.examples import EvalSet, Example, format_prompt
from dynosaur.training.models import TRAIN_CONFIG, context_length, load_base, load_pretrained
from dynosaur.training.sft import quiet_transformers, set_threads

SUITES = ("heldout", "unseen", "superni")


class EvalReport(Record):
    heldout: EvalSummary
    unseen: EvalSummary
    superni: EvalSummary | None = None  # None when no Super-NI folder was given


def _context(model: Any, tokenizer: Any) -> int:
    return context_length(model) or int(tokenizer.model_max_length)


def generate(
    model: Path | tuple[Any, Any],
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    context: int | None = None,
) -> list[str]:
    """Greedy completions of `prompts`, in order (the text after the prompt, up to eos, stripped).

    Args:
        model: a model directory, or an already loaded (model, tokenizer).
        context: tokens of prompt + completion at most (default: the model's position limit).
    """
    import torch

    lm, tokenizer = load_pretrained(model, "model") if isinstance(model, Path) else model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        lm.float()  # a bf16 checkpoint runs slowly, if at all, on CPU kernels
    lm.to(device).eval()
    room = min(context or _context(lm, tokenizer), _context(lm, tokenizer)) - max_new_tokens
    if room < 1:
        raise ParamsError(
            f"evaluate.max_new_tokens: {max_new_tokens} leaves no room for a prompt in the"
            f" model's context of {room + max_new_tokens} tokens"
        )
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    lengths = [len(ids) for ids in tokenizer(list(prompts)).input_ids]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # similar lengths pad less
    out: list[str] = [""] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [prompts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=room
            ).to(device)
            gen = lm.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, text in zip(idx, texts, strict=True):
                out[i] = text.strip()
    return out


Cases = dict[str, list[tuple[str, list[str]]]]  # task → (prompt, acceptable references) per instance


def _cases(tasks: dict[str, list[Example]], cap: int | None, fmt: str) -> Cases:
    return {
        task_id: [(format_prompt(ex, fmt=fmt), [ex.output]) for ex in items[:cap]]
        for task_id, items in sorted(tasks.items())
        if items
    }


def _superni_cases(tasks: Sequence[SuperNITask], fmt: str) -> Cases:
    return {
        t.name: [(format_prompt(t.definition, i.input, fmt), i.outputs) for i in t.instances]
        for t in tasks
        if t.instances
    }


def evaluate_model(
    model: Path | tuple[Any, Any],
    heldout: dict[str, list[Example]],
    unseen: dict[str, list[Example]],
    params: EvaluateParams,
    *,
    prompt_format: str,
    superni: Sequence[SuperNITask] | None = None,
    label_options: dict[str, list[str]] | None = None,
    context: int | None = None,
) -> EvalReport:
    """Generate for every case of every suite in one batched pass, then score each task.

    Args:
        label_options: per task id, its label options: makes the task classification-like (exact match).
    """
    cap = params.max_instances_per_task
    suites = {
        "heldout": _cases(heldout, cap, prompt_format),
        "unseen": _cases(unseen, cap, prompt_format),
        "superni": _superni_cases(superni or [], prompt_format),
    }
    flat = [
        (suite, task, case)
        for suite, tasks in suites.items()
        for task, cases in tasks.items()
        for case in cases
    ]
    start = time.perf_counter()
    prompts = [prompt for _, _, (prompt, _) in flat]
    predictions = generate(
        model, prompts, max_new_tokens=params.max_new_tokens, batch_size=params.batch_size, context=context
    )
    log(f"evaluate: {len(flat)} completions in {time.perf_counter() - start:.1f} s")
    by_task: dict[tuple[str, str], tuple[list[str], list[list[str]]]] = {}
    for (suite, task, (_, refs)), pred in zip(flat, predictions, strict=True):
        preds, references = by_task.setdefault((suite, task), ([], []))
        preds.append(pred)
        references.append(refs)
    options = label_options or {}
    summaries = {
        suite: aggregate({task: score_task(*by_task[suite, task], options.get(task)) for task in tasks})
        for suite, tasks in suites.items()
    }
    return EvalReport(
        heldout=summaries["heldout"],
        unseen=summaries["unseen"],
        superni=summaries["superni"] if superni is not None else None,
    )


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The metrics file: the trained model's ROUGE-L on held-out instances of trained tasks and its lift over
    the base model (the rest, unseen tasks and Super-NI included, is in the report)."""
    score, lift = report["trained"].get("heldout_rouge_l"), report["lift"].get("heldout_rouge_l")
    return {k: v for k, v in (("rouge_l", score), ("lift", lift)) if v is not None}


def report_metrics(trained: EvalReport, base: EvalReport, sources: dict[str, str]) -> dict[str, Any]:
    """The report: summary scores of both models, their lift, counts, and the per-task breakdown."""
    out: dict[str, Any] = {"trained": {}, "base": {}, "lift": {}, "counts": {}, "per_task": {}}
    for suite in SUITES:
        t, b = getattr(trained, suite), getattr(base, suite)
        if t is None:
            continue
        out["counts"][f"{suite}_tasks"], out["counts"][f"{suite}_instances"] = t.tasks, t.instances
        for metric in ("rouge_l", "exact_match"):
            key = f"{suite}_{metric}"
            tv, bv = getattr(t, metric), getattr(b, metric)
            out["trained"][key], out["base"][key] = _r(tv), _r(bv)
            out["lift"][key] = None if tv is None or bv is None else _r(tv - bv)
        out["per_task"][suite] = {
            task: {
                "source_id": sources.get(task, "super-ni"),
                "n": score.n,
                "trained_rouge_l": _r(score.rouge_l),
                "base_rouge_l": _r(b.per_task[task].rouge_l),
                "trained_exact_match": _r(score.exact_match),
                "base_exact_match": _r(b.per_task[task].exact_match),
            }
            for task, score in t.per_task.items()
        }
    return out


def main(args: argparse.Namespace) -> None:
    params = load_params().evaluate
    quiet_transformers()
    set_threads(params.threads)
    evalset = read_model(args.evalset, EvalSet)
    config = read_json(args.model / TRAIN_CONFIG)
    superni = None
    if params.superni_dir:
        superni = read_superni_tasks(Path(params.superni_dir), max_instances=params.max_instances_per_task)
    if not (evalset.heldout or evalset.unseen or superni):
        raise TrainingError(
            "nothing to evaluate: set train.holdout_fraction above 0, evaluate.holdout_sources,"
            " or evaluate.superni_dir"
        )
    kwargs = {
        "prompt_format": config["prompt_format"],
        "superni": superni,
        "label_options": evalset.label_options,
        "context": config["max_length"],
    }
    log("evaluate: the trained model")
    trained = evaluate_model(args.model, evalset.heldout, evalset.unseen, params, **kwargs)
    log("evaluate: its base model")
    base = evaluate_model(load_base(args.model), evalset.heldout, evalset.unseen, params, **kwargs)
    sources = {t: xs[0].source_id for tasks in (evalset.heldout, evalset.unseen) for t, xs in tasks.items()}
    metrics = report_metrics(trained, base, sources)
    write_json(args.report, metrics)
    write_metrics(args.metrics, headline(metrics))
    lines = [
        f"{k}: {metrics['base'][k]} → {v} ({metrics['lift'][k]:+})"
        for k, v in metrics["trained"].items()
        if v is not None and metrics["lift"][k] is not None
    ]
    log("evaluate: " + "; ".join(lines))


if __name__ == "__main__":
    run(main, "model", "evalset", "metrics", "report")
