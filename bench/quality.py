"""Corpus quality on 23 real annotated datasets: collect → generate → filter → organize with a real model.

The sources are built by `scripts/build_quality_sources.py` (into `bench/quality/sources/` unless `--sources`
names a folder that already holds them). They are copied into a temporary git + DVC project with this checkout's
code and `params.yaml` (llm: the default local Qwen2.5-Coder-1.5B, unless `--provider` / `--base-url` /
`--model` say otherwise; `--param section.key=value` overrides any lever), and `dvc repro organize` runs.

Then, per source and overall, scored against the hand-written `bench/quality/valid_mappings.yaml`:
- proposals: tasks the model proposed (unparseable answers counted apart);
- kept: tasks the filter kept (its `copies_demonstration` rule included);
- precision: the share of kept tasks whose (inputs → output) mapping is on the valid list;
- yield: distinct valid mappings kept (entries of the list matched), per source;
- dataset talk: kept instructions that speak of the dataset, its fields or splits rather than a task (a
  proxy for instructions that do not fit their mapping, which precision, judged on mappings, cannot see);
- near-duplicate pairs: kept tasks of one source with the same inputs and output whose instructions have
  ROUGE-L F ≥ 0.7 (Self-Instruct's threshold; tokens are lower-cased words);
- duplicate instances: instances of one task whose (input, output) already occurred in it;
- cut targets: instances whose output is not the source row's value but a cut of it (a prefix, or ending in
  a truncation marker);
- natural: the share of kept instructions that read as a person's (`dynosaur.pipeline.wording.is_natural`: not
  the bare "Given X, produce Y" shape, no raw field identifier);
- label set: among kept tasks whose output is a label (the matched valid entry lists `labels:`, or the filter
  attached `label_options`), the share whose instruction names every label in words (`wording.states_labels`);
- same text: kept tasks of one source whose instruction repeats another's word for word (lower-cased,
  whitespace collapsed);
- the filter's figures on the paper's 5,740 published tasks (from `dynosaur.pipeline.paper_tasks`, when present).

The instruction scored (natural, label set, same text, the listing, the judging key) is the final one, the text
the corpus instances carry: the proposed instruction with any label options the filter appended.

Hand judgements (MUFFIN's three questions per instance: is the instruction valid, does the input suffice, is the
output correct) live in `bench/quality/judgements.jsonl`, keyed by `task_key` (source, final instruction, input
fields, output field), so a task whose text is unchanged keeps its judgements across runs. A run prints the
judgements that match its kept tasks and the tasks still to judge; `--sample-for-judging PATH` writes, for each
kept task, seeded-random instances not judged yet (up to 3 judged per task) with the three answers left null,
for a person to fill in and append to the judgements file.

`--llm-cache DIR` reuses LLM answers across runs (the call cache is content-addressed, so a changed prompt is
asked again and an unchanged one is not). Results go to `bench/results/<name>.json` (default `quality`;
`--results-dir` elsewhere). After the table, every kept instruction is listed per source (`--no-listing`: not).
Run: `.venv/bin/python bench/quality.py [--sources DIR] [--keep] [--llm-cache DIR] [--param k=v ...]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from _common import OFFLINE_ENV, RESULTS, ROOT

from dynosaur.pipeline.near_duplicates import rouge_l  # the filter's own measure, ROUGE-L F1 on words
from dynosaur.pipeline.wording import is_natural, states_labels  # one definition of a templated instruction

sys.path.insert(0, str(ROOT / "scripts"))
QUALITY = ROOT / "bench" / "quality"
VALID = QUALITY / "valid_mappings.yaml"
JUDGEMENTS = QUALITY / "judgements.jsonl"
QUESTIONS = ("instruction_valid", "input_suffices", "output_correct")  # MUFFIN's three, per instance
JUDGED_PER_TASK = 3  # instances a person judges per kept task
MIN_JUDGED = 60  # the fully-valid share counts toward its target from this many judged instances on
PAPER_TASKS = ROOT.parent / "shared" / "data" / "dynosaur" / "instructions-full.json"
# Instructions about the dataset instead of a task ("read the dataset's metadata and extract the fields"): a
# proxy for instructions that make no sense for their mapping, which the mapping-level precision cannot see.
DATASET_TALK = re.compile(r"\b(dataset|metadata|fields?|train(ing)?|validation|split)\b", re.IGNORECASE)
CUT_MARKERS = ("…", "...", "[…]", "[...]", "[truncated]")
# key in the overall figures → (target as printed, met?); a figure that is None (nothing to measure) is n/a
TARGETS: dict[str, tuple[str, Any]] = {
    "natural": ("≥ 90%", lambda v: v >= 0.9),
    "label_set": ("≥ 90%", lambda v: v >= 0.9),
    "precision": ("≥ 0.9", lambda v: v >= 0.9),
    "yield": ("≥ 2.5", lambda v: v >= 2.5),
    "same_text": ("0", lambda v: v == 0),
    "near_duplicate_pairs": ("0", lambda v: v == 0),
    "duplicate_instances": ("0", lambda v: v == 0),
    "cut_targets": ("0", lambda v: v == 0),
}
# hand judgements and the paper's tasks, printed with the same marks (see judged_target, paper_lines)
JUDGED_TARGET = f"≥ 80% of ≥ {MIN_JUDGED} judged"
PAPER_WRONGLY_REJECTED = ("≤ 0.2%", lambda v: v <= 0.002)


# --- scoring (pure) --------------------------------------------------------------------------------------


def match_entry(inputs: list[str], output: str, spec: dict[str, Any]) -> int | None:
    """Index of the first valid entry this mapping matches (see valid_mappings.yaml), or None."""
    given = set(inputs)
    if output in given:
        return None
    extra_ok = set(spec.get("extra_inputs_ok", []))
    for i, entry in enumerate(spec["valid"]):
        need = set(entry["inputs"])
        if entry["output"] == output and need <= given and given - need <= extra_ok:
            return i
    return None


def near_duplicate_pairs(tasks: list[dict[str, Any]], threshold: float = 0.7) -> list[tuple[str, str, float]]:
    """Pairs of tasks with the same inputs and output whose instructions have ROUGE-L ≥ threshold."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        groups[(frozenset(t["input_fields"]), t["output_field"])].append(t)
    pairs = []
    for group in groups.values():
        for a, b in combinations(group, 2):
            score = rouge_l(a["instruction"], b["instruction"])
            if score >= threshold:
                pairs.append((a["task_id"], b["task_id"], round(score, 3)))
    return pairs


def share(n: int, of: int) -> float | None:
    """n / of, or None when there is nothing to measure."""
    return n / of if of else None


def normalised(text: str) -> str:
    """Lower-cased, runs of whitespace as one space, stripped: what `same_text` compares."""
    return " ".join(text.lower().split())


def same_text(instructions: list[str]) -> int:
    """How many instructions repeat an earlier one word for word (after `normalised`): 0 when all differ."""
    counts = Counter(normalised(i) for i in instructions)
    return sum(n - 1 for n in counts.values())


def natural_count(instructions: list[str], labels: list[list[str] | None] | None = None) -> int:
    """How many instructions read as a person's (`wording.is_natural`). A task's own label values, which
    the filter appends ("Answer with one of: HillaryClinton, realDonaldTrump."), are data, not identifiers."""
    exempt = labels or [None] * len(instructions)
    return sum(is_natural(i, labels=ls or ()) for i, ls in zip(instructions, exempt, strict=True))


def task_labels(entry: dict[str, Any] | None, label_options: list[str] | None) -> list[str] | None:
    """The labels a task's output takes: the matched valid entry's `labels:` when it lists them, else the
    filter's `label_options`; None when the output is not a classification label."""
    if entry is not None and entry.get("labels"):
        return [str(label) for label in entry["labels"]]
    return list(label_options) if label_options else None


def label_set_stated(instruction: str, labels: list[str] | None) -> bool | None:
    """Whether the instruction names its labels in words (`wording.states_labels`); None for a task whose
    output is not a label."""
    return states_labels(instruction, labels) if labels else None


def task_key(source: str, instruction: str, input_fields: list[str], output_field: str) -> str:
    """A short, stable key of a task as a reader sees it: its source, final instruction and mapping. A task
    whose text is unchanged keeps its judgements; a reworded one is judged again."""
    blob = json.dumps([source, instruction, list(input_fields), output_field], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_judged(judgement: dict[str, Any]) -> bool:
    """All three questions answered true or false (a sampled line not filled in yet has nulls)."""
    return all(isinstance(judgement.get(q), bool) for q in QUESTIONS)


def load_judgements(path: Path) -> list[dict[str, Any]]:
    """The judgements file, one JSON object a line (blank lines skipped); [] when it does not exist."""
    if not path.exists():
        return []
    judgements = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            judgements.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not JSON ({e})") from None
    return judgements


def instance_key(judgement: dict[str, Any]) -> tuple[str, str, str]:
    """One judged instance: its task and its (input, output)."""
    return (judgement["task_key"], judgement.get("input", ""), judgement.get("output", ""))


def judgement_summary(
    judgements: list[dict[str, Any]], kept: list[dict[str, Any]], per_task: int = JUDGED_PER_TASK
) -> dict[str, Any]:
    """The judgements that match this run's kept tasks (by `task_key`; an instance judged twice counts
    once, its last line), their fully-valid share (all three true), the share of each question, and the
    kept tasks with fewer than `per_task` judged instances (`to_judge`, in the order given).

    `kept`: dicts with `task_key`, `source`, `instruction` (the final one)."""
    keys = {t["task_key"] for t in kept}
    matched: dict[tuple[str, str, str], dict[str, Any]] = {}
    for j in judgements:
        if is_judged(j) and j.get("task_key") in keys:
            matched[instance_key(j)] = j
    judged = list(matched.values())
    per_key = Counter(j["task_key"] for j in judged)
    fully = sum(all(j[q] for q in QUESTIONS) for j in judged)
    to_judge = [
        {"task_key": t["task_key"], "source": t["source"], "instruction": t["instruction"],
         "judged": per_key[t["task_key"]]}
        for t in kept
        if per_key[t["task_key"]] < per_task
    ]  # fmt: skip
    return {
        "judged": len(judged),
        "fully_valid": fully,
        "fully_valid_share": share(fully, len(judged)),
        **{f"{q}_share": share(sum(j[q] for j in judged), len(judged)) for q in QUESTIONS},
        "tasks": len(kept),
        "tasks_judged": len(per_key),
        "to_judge_count": len(to_judge),
        "to_judge": to_judge,
        "unmatched": sum(is_judged(j) and j.get("task_key") not in keys for j in judgements),
    }


def judged_target_met(summary: dict[str, Any]) -> bool:
    """Hand-judged fully valid ≥ 80%, on at least MIN_JUDGED judged instances."""
    s = summary["fully_valid_share"]
    return summary["judged"] >= MIN_JUDGED and s is not None and s >= 0.8


def sample_for_judging(
    task: dict[str, Any],
    instances: list[dict[str, Any]],
    judgements: list[dict[str, Any]],
    *,
    seed: int = 0,
    per_task: int = JUDGED_PER_TASK,
) -> list[dict[str, Any]]:
    """Instances of one kept task to judge: seeded-random ones not judged yet, as many as it lacks to have
    `per_task` judged. Each comes in the judgements file's shape with the three answers null.

    `task`: `task_key`, `source`, `instruction` (final), `inputs`, `output`, `model`, `judged_commit`;
    `instances`: dicts with `input` and `output` (the corpus shard's rows). The draw depends on the seed and
    the task's key only, so adding a source does not change another's sample."""
    done = {instance_key(j) for j in judgements if is_judged(j) and j.get("task_key") == task["task_key"]}
    wanted = per_task - len(done)
    if wanted <= 0:
        return []
    fresh, seen = [], set(done)
    for inst in instances:
        key = (task["task_key"], inst["input"], inst["output"])
        if key not in seen:
            seen.add(key)
            fresh.append(inst)
    picks = random.Random(f"{seed}:{task['task_key']}").sample(fresh, min(wanted, len(fresh)))
    return [
        {
            "task_key": task["task_key"],
            "source": task["source"],
            "instruction": task["instruction"],
            "input_fields": task["inputs"],
            "output_field": task["output"],
            "input": inst["input"],
            "output": inst["output"],
            **dict.fromkeys(QUESTIONS),
            "note": "",
            "judged_commit": task.get("judged_commit"),
            "model": task.get("model"),
        }
        for inst in picks
    ]


def is_cut(output: str, expected: str) -> bool:
    """The instance's output is a shortened form of the source value (a prefix, or marked as cut)."""
    if output == expected:
        return False
    stripped = output
    for marker in CUT_MARKERS:
        stripped = stripped.removesuffix(marker)
    stripped = stripped.rstrip()
    return len(stripped) < len(expected) and (expected.startswith(stripped) or stripped != output)


# --- the project -----------------------------------------------------------------------------------------


def set_param(params: dict[str, Any], assignment: str) -> None:
    """`generate.mode=fields_first` → params["generate"]["mode"] = "fields_first" (the value is YAML)."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--param {assignment!r}: expected key=value")
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(raw)


def make_project(repo: Path, sources: Path, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    # sources.yaml and sources.lock are collect's deps beside params.yaml
    for name in ("dvc.yaml", "pyproject.toml", "sources.yaml", "sources.lock"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for sid in ids:
        shutil.copytree(sources / sid, repo / "data" / "sources" / sid)
    (repo / "ledger").mkdir()
    (repo / "ledger" / "retractions.jsonl").touch()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sources"] = [{"id": sid, "path": f"data/sources/{sid}"} for sid in ids]
    # A loaded 2-core box answers slowly; a call that times out fails the source and the run.
    params["llm"].update(timeout_s=1800, max_retries=1)
    if args.provider:
        params["llm"]["provider"] = args.provider
    if args.base_url:
        params["llm"].update(provider="compatible", base_url=args.base_url)
    if args.model:
        params["llm"]["model"] = args.model
    for assignment in args.param:
        set_param(params, assignment)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def run_pipeline(repo: Path, log: Path, llm_cache: Path | None) -> float:
    """git init, dvc init, commit; seed the call cache (a DVC output, so after the commit); dvc repro."""
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "PYTHONPATH": str(repo / "src"),
        "HF_HOME": str(repo.parent / f"{repo.name}-hf"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("CI", None)
    dvc = str(Path(sys.executable).parent / "dvc")

    def git(*a: str) -> None:
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=b@x", *a], cwd=repo, check=True,
                       capture_output=True)  # fmt: skip

    git("init", "-q")
    subprocess.run([dvc, "init", "-q"], cwd=repo, env=env, check=True)
    git("add", "-A")
    git("commit", "-qm", "bench: quality sources")
    if llm_cache and llm_cache.is_dir():
        shutil.copytree(llm_cache, repo / "data" / "llm_cache", ignore=shutil.ignore_patterns("failures"))
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(
            [dvc, "repro", "organize"], cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    if proc.returncode:
        raise SystemExit(f"dvc repro failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t0


# --- measuring -------------------------------------------------------------------------------------------


def source_rows(meta: Any, field: str, repo: Path) -> dict[tuple[str, int], str | None]:
    """(split, row) → the field's value formatted as organize formats an output."""
    from dynosaur.pipeline.organize_instances import format_column
    from dynosaur.pipeline.sources import iter_batches

    values: dict[tuple[str, int], str | None] = {}
    for split in meta.splits:
        row = 0
        for batch in iter_batches(meta, split.name, 65536, root=repo):
            formatted = format_column(batch.column(field), meta.feature(field), options=False).to_pylist()
            for value in formatted:
                values[(split.name, row)] = value
                row += 1
    return values


def measure_source(repo: Path, sid: str, spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dynosaur.core.records import FilteredSource, GeneratedSource, SourceMeta
    from dynosaur.core.segments import RecordFolder
    from dynosaur.core.text import clean_line

    meta = RecordFolder(repo / "data" / "collected", SourceMeta)[sid]
    if meta.status != "ok":
        return {"status": meta.status, "reason": meta.reason}
    generated = RecordFolder(repo / "data" / "generated", GeneratedSource)[sid]
    filtered = RecordFolder(repo / "data" / "tasks", FilteredSource)[sid]
    valid_tasks = filtered.valid
    kept = [t.model_dump() for t in valid_tasks]
    entries = [match_entry(t["input_fields"], t["output_field"], spec) for t in kept]
    on_list = [e for e in entries if e is not None]
    # the final instruction: what the corpus carries (label options appended), the shard's when it has rows
    finals = [clean_line(t.final_instruction) for t in valid_tasks]
    labels = [
        task_labels(spec["valid"][e] if e is not None else None, t["label_options"])
        for t, e in zip(kept, entries, strict=True)
    ]
    duplicates = cut = altered = instances = 0
    expected_by_field: dict[str, dict[tuple[str, int], str | None]] = {}
    for i, task in enumerate(valid_tasks):
        shard = repo / "data" / "corpus" / sid / f"{task.task_id}.parquet"
        if not shard.exists():
            continue
        table = pq.read_table(shard, columns=["instruction", "input", "output", "split", "row"]).to_pylist()
        instances += len(table)
        if table:
            finals[i] = table[0]["instruction"]
        seen: set[tuple[str, str]] = set()
        if task.output_field not in expected_by_field:
            expected_by_field[task.output_field] = source_rows(meta, task.output_field, repo)
        expected = expected_by_field[task.output_field]
        for inst in table:
            key = (inst["input"], inst["output"])
            duplicates += key in seen
            seen.add(key)
            want = expected.get((inst["split"], inst["row"]))
            if want is not None and inst["output"] != want:
                if is_cut(inst["output"], want):
                    cut += 1
                else:
                    altered += 1
    rejected = Counter(t.reason for t in filtered.tasks if t.reason)
    stated = [label_set_stated(f, ls) for f, ls in zip(finals, labels, strict=True)]
    options = [t["label_options"] for t in kept]
    label_tasks = sum(s is not None for s in stated)
    return {
        "status": "ok",
        "proposals": sum(len(p.tasks) for p in generated.proposals),
        "unparseable": sum(p.parse_error is not None for p in generated.proposals),
        "kept": len(kept),
        "demo_copies": rejected.get("copies_demonstration", 0),
        "kept_valid": len(on_list),
        "precision": len(on_list) / len(kept) if kept else None,
        "yield": len(set(on_list)),
        "natural_count": natural_count(finals, options),
        "natural": share(natural_count(finals, options), len(finals)),
        "label_tasks": label_tasks,
        "label_stated": sum(s is True for s in stated),
        "label_set": share(sum(s is True for s in stated), label_tasks),
        "same_text": same_text(finals),
        "near_duplicate_pairs": len(near_duplicate_pairs(kept)),
        "dataset_talk": sum(bool(DATASET_TALK.search(t["instruction"])) for t in kept),
        "instances": instances,
        "duplicate_instances": duplicates,
        "cut_targets": cut,
        "altered_targets": altered,
        "rejected": dict(sorted(rejected.items())),
        "tasks": [
            {
                "task_id": t["task_id"],
                "task_key": task_key(sid, final, t["input_fields"], t["output_field"]),
                "instruction": t["instruction"],
                "final_instruction": final,
                "inputs": t["input_fields"],
                "output": t["output_field"],
                "variant": t["variant"],
                "model": t["model"],
                "valid_mapping": e is not None,
                "natural": is_natural(final, labels=t["label_options"] or ()),
                "labels": ls,
                "labels_stated": st,
            }
            for t, e, final, ls, st in zip(kept, entries, finals, labels, stated, strict=True)
        ],
        "rejected_tasks": [
            {
                "instruction": t.instruction,
                "inputs": t.input_fields,
                "output": t.output_field,
                "reason": t.reason,
            }
            for t in filtered.tasks
            if t.reason
        ],
    }


def paper_figures(path: Path | None = PAPER_TASKS) -> dict[str, Any] | str:
    """The filter's figures on the paper's published tasks (when ../shared/data sits beside the checkout)."""
    from dynosaur.pipeline.paper_tasks import load_paper_tasks, paper_task_figures

    if path is None:
        return "n/a (--no-paper-tasks)"
    if not path.exists():
        return f"n/a ({path} not found)"
    return paper_task_figures(load_paper_tasks(path)).model_dump()


def mark(met: bool | None) -> str:
    return "n/a" if met is None else ("✓" if met else "✗ MISSED")


def paper_lines(f: dict[str, Any]) -> str:
    """The paper-task figures against their targets (issues 9 and 19), one per line."""
    rows = [
        ("known-bad rejected", f["known_bad_rejected"], f["known_bad"], "≥ 95%", lambda s: s >= 0.95),
        ("paraphrase redundancy", f["redundant_kept"], f["kept"], "≤ 5%", lambda s: s <= 0.05),
        ("the rest kept", f["rest_kept"], f["rest"], "≥ 95%", lambda s: s >= 0.95),
        ("good wrongly rejected", f["rest"] - f["rest_kept"], f["rest"], *PAPER_WRONGLY_REJECTED),
    ]
    lines = [f"  paper's {f['tasks']:,} published tasks:"]
    for name, n, of, target, met in rows:
        ratio = n / of if of else 0.0
        lines.append(f"  {name:<22} {n:>5,} / {of:,} = {ratio:.1%}  target {target} {mark(met(ratio))}")
    return "\n".join(lines)


def paper_wrongly_rejected(f: dict[str, Any] | str) -> float | None:
    """1 − the share of the paper's good tasks ("the rest") the filter keeps; None without the tasks."""
    if not isinstance(f, dict) or not f["rest"]:
        return None
    return 1 - f["rest_kept"] / f["rest"]


def overall(per_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in per_source.values() if r["status"] == "ok"]
    kept = sum(r["kept"] for r in ok)
    total = {
        k: sum(r[k] for r in ok) for k in ("proposals", "unparseable", "kept", "kept_valid", "instances")
    }
    for k in (
        "demo_copies",
        "natural_count",
        "label_tasks",
        "label_stated",
        "same_text",
        "near_duplicate_pairs",
        "dataset_talk",
        "duplicate_instances",
        "cut_targets",
        "altered_targets",
    ):
        total[k] = sum(r[k] for r in ok)
    total["precision"] = total["kept_valid"] / kept if kept else 0.0
    total["yield"] = sum(r["yield"] for r in ok) / len(per_source) if per_source else 0.0
    total["natural"] = share(total["natural_count"], kept)
    total["label_set"] = share(total["label_stated"], total["label_tasks"])
    return total


def table(per_source: dict[str, dict[str, Any]], total: dict[str, Any]) -> str:
    cols: tuple[str, ...] = (
        "proposals",
        "kept",
        "precision",
        "yield",
        "natural",
        "label_set",
        "same_text",
        "near_duplicate_pairs",
        "duplicate_instances",
    )
    cols += ("cut_targets", "instances")
    heads = ("proposed", "kept", "precision", "yield", "natural", "label set", "same text", "near-dup",
             "dup inst", "cut", "instances")  # fmt: skip
    percent = {"natural", "label_set"}

    def cell(value: Any, col: str = "") -> str:
        if value is None:
            return "-"
        if col in percent:
            return f"{value:.0%}"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    width = max(len(s) for s in [*per_source, "overall"])
    lines = [f"  {'source':<{width}}  " + "  ".join(f"{h:>9}" for h in heads)]
    for sid, r in per_source.items():
        if r["status"] != "ok":
            lines.append(f"  {sid:<{width}}  {r['status']}: {r['reason']}")
            continue
        lines.append(f"  {sid:<{width}}  " + "  ".join(f"{cell(r[c], c):>9}" for c in cols))
    lines.append(f"  {'overall':<{width}}  " + "  ".join(f"{cell(total[c], c):>9}" for c in cols))
    lines.append("")
    for key, (target, met) in TARGETS.items():
        value = total[key]
        lines.append(
            f"  {key:<22} {cell(value, key):>8}  target {target} {mark(None if value is None else met(value))}"
        )
    lines.append(f"  {'unparseable answers':<22} {total['unparseable']:>8}")
    copies = f"{total['demo_copies']:>8}  rejected by the filter as copied from a demonstration"
    lines.append(f"  {'demonstration copies':<22} {copies}")
    talk = f"{total['dataset_talk']:>8}  kept instructions about the dataset, not a task (a proxy)"
    lines.append(f"  {'dataset talk':<22} {talk}")
    lines.append(
        f"  {'altered targets':<22} {total['altered_targets']:>8}  (output ≠ source value, not a cut)"
    )
    return "\n".join(lines)


def judgement_lines(summary: dict[str, Any], path: Path, first: int = 5) -> str:
    """The hand judgements that match this run, against their target, and the tasks still to judge."""
    n = summary["judged"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    met = judged_target_met(summary)
    lines = [
        f"  hand judgements ({path}): {n} judged instances of {summary['tasks_judged']} / "
        f"{summary['tasks']} kept tasks ({summary['unmatched']} judged lines match no kept task)",
        f"  {'fully valid':<22} {pct(summary['fully_valid_share']):>8}  target {JUDGED_TARGET} {mark(met)}",
    ]
    for q in QUESTIONS:
        lines.append(f"  {q:<22} {pct(summary[f'{q}_share']):>8}")
    todo = summary["to_judge"]
    lines.append(
        f"  still to judge: {len(todo)} kept tasks with fewer than {JUDGED_PER_TASK} judged instances"
    )
    for t in todo[:first]:
        lines.append(f"    {t['source']} {t['task_key']} ({t['judged']} judged): {t['instruction']}")
    if len(todo) > first:
        lines.append(
            f"    … and {len(todo) - first} more (--sample-for-judging PATH writes instances to judge)"
        )
    return "\n".join(lines)


def listing(per_source: dict[str, dict[str, Any]]) -> str:
    """Every kept instruction, verbatim (the final text), with its inputs → output, per source."""
    lines = ["", "  kept instructions, verbatim (✓/✗: mapping on the valid list; [template]: not natural;",
             "  [labels not stated]: a label output whose instruction does not name its labels):"]  # fmt: skip
    for sid, r in per_source.items():
        if r["status"] != "ok":
            continue
        lines.append(f"  {sid} ({r['kept']} kept)")
        for t in r["tasks"]:
            flags = "" if t["natural"] else " [template]"
            flags += " [labels not stated]" if t["labels_stated"] is False else ""
            valid = "✓" if t["valid_mapping"] else "✗"
            lines.append(f"    {valid} {', '.join(t['inputs'])} → {t['output']}{flags}")
            lines.append(f"        {t['final_instruction']}")
    return "\n".join(lines)


def judging_sample(
    repo: Path,
    per_source: dict[str, dict[str, Any]],
    judgements: list[dict[str, Any]],
    seed: int,
    commit: str | None,
) -> list[dict[str, Any]]:
    """Instances to judge for every kept task, read from the corpus shards (see sample_for_judging)."""
    import pyarrow.parquet as pq

    lines: list[dict[str, Any]] = []
    for sid, r in per_source.items():
        if r["status"] != "ok":
            continue
        for t in r["tasks"]:
            shard = repo / "data" / "corpus" / sid / f"{t['task_id']}.parquet"
            rows = pq.read_table(shard, columns=["input", "output"]).to_pylist() if shard.exists() else []
            task = {**t, "source": sid, "instruction": t["final_instruction"], "judged_commit": commit}
            lines += sample_for_judging(task, rows, judgements, seed=seed)
    return lines


def checkout_commit() -> str | None:
    """This checkout's HEAD (`-dirty` with uncommitted changes), recorded with each sampled instance."""
    proc = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=QUALITY / "sources", help="built quality sources (<id>/)")
    ap.add_argument("--only", default="", help="comma-separated source ids (default: all 23)")
    ap.add_argument(
        "--mappings", type=Path, default=VALID, help="the valid mappings file (valid_mappings.yaml)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    ap.add_argument("--provider", choices=("local", "openai", "compatible"))
    ap.add_argument("--base-url", help="an OpenAI-compatible server (sets provider: compatible)")
    ap.add_argument("--model", help="llm.model")
    ap.add_argument("--param", action="append", default=[], help="section.key=value (YAML value); repeatable")
    ap.add_argument("--llm-cache", type=Path, help="reuse and extend this LLM call cache across runs")
    ap.add_argument("--name", default="quality", help="results file <results-dir>/<name>.json")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where the results JSON goes")
    ap.add_argument(
        "--no-listing", dest="listing", action="store_false", help="do not list kept instructions"
    )
    ap.add_argument("--judgements", type=Path, default=JUDGEMENTS, help="hand judgements (JSONL)")
    ap.add_argument("--sample-for-judging", type=Path, metavar="PATH",
                    help=f"write up to {JUDGED_PER_TASK} unjudged instances per kept task here (JSONL)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample-for-judging's draw")
    ap.add_argument(
        "--no-paper-tasks", action="store_true", help="skip the filter's figures on the paper's tasks"
    )
    args = ap.parse_args(argv)

    import build_quality_sources

    ids = [s for s in args.only.split(",") if s] or list(build_quality_sources.SOURCE_IDS)
    if not all((args.sources / sid / "README.md").exists() for sid in ids):
        print(f"building the quality sources into {args.sources} (pip download of 3 packages)", flush=True)
        build_quality_sources.build_all(args.sources)
    valid = yaml.safe_load(args.mappings.read_text())["sources"]
    judgements = load_judgements(args.judgements)
    commit = checkout_commit()

    repo = Path(tempfile.mkdtemp(prefix="dyno-quality-"))
    log = repo.parent / f"{repo.name}.log"
    try:
        params = make_project(repo, args.sources, ids, args)
        print(f"dvc repro organize in {repo} (log: {log})", flush=True)
        seconds = run_pipeline(repo, log, args.llm_cache)
        if args.llm_cache:
            shutil.copytree(repo / "data" / "llm_cache", args.llm_cache, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("failures"))  # fmt: skip
        per_source = {sid: measure_source(repo, sid, valid.get(sid, {"valid": []})) for sid in ids}
        # generate's totals, their breakdown (tokens, cost) and its run's counters (calls, cache hits)
        generate_metrics = {
            k: v
            for kind in ("runs", "stats", "metrics")
            for k, v in json.loads((repo / "data" / kind / "generate.json").read_text()).items()
        }
        sample = (
            judging_sample(repo, per_source, judgements, args.seed, commit) if args.sample_for_judging else []
        )
    finally:
        if not args.keep:
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(repo.parent / f"{repo.name}-hf", ignore_errors=True)
    total = overall(per_source)
    paper = paper_figures(None if args.no_paper_tasks else PAPER_TASKS)
    total["paper_wrongly_rejected"] = paper_wrongly_rejected(paper)
    kept = [
        {"task_key": t["task_key"], "source": sid, "instruction": t["final_instruction"]}
        for sid, r in per_source.items()
        if r["status"] == "ok"
        for t in r["tasks"]
    ]
    judged = judgement_summary(judgements, kept)
    total["judged"] = judged["judged"]
    total["judged_fully_valid"] = judged["fully_valid_share"]
    text = table(per_source, total)
    paper_text = paper_lines(paper) if isinstance(paper, dict) else f"  paper's tasks: {paper}"
    print(f"\n== {args.name}: {params['llm']['provider']}:{params['llm']['model']}, {seconds:.0f}s ==")
    print(text)
    print(paper_text)
    print(judgement_lines(judged, args.judgements))
    if args.listing:
        print(listing(per_source))
    if args.sample_for_judging:
        args.sample_for_judging.parent.mkdir(parents=True, exist_ok=True)
        with open(args.sample_for_judging, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in sample)
        print(f"  {len(sample)} instances to judge → {args.sample_for_judging} (fill in the three answers, "
              f"then append the lines to {args.judgements})")  # fmt: skip
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{args.name}.json"
    data = {
        "overall": total,
        "targets": {
            **{k: t for k, (t, _) in TARGETS.items()},
            "judged_fully_valid": JUDGED_TARGET,
            "paper_wrongly_rejected": PAPER_WRONGLY_REJECTED[0],
        },
        "met": {
            **{k: None if total[k] is None else bool(met(total[k])) for k, (_, met) in TARGETS.items()},
            "judged_fully_valid": judged_target_met(judged),
            "paper_wrongly_rejected": None
            if total["paper_wrongly_rejected"] is None
            else bool(PAPER_WRONGLY_REJECTED[1](total["paper_wrongly_rejected"])),
        },
        "judgements": judged,
        "paper_tasks": paper,
        "seconds": round(seconds, 1),
        "llm": params["llm"],
        "generate": params["generate"],
        "generate_metrics": generate_metrics,
        "param_overrides": args.param,
        "sources": per_source,
        "repo": str(repo) if args.keep else None,
    }
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")
    print(f"  → {out}")


if __name__ == "__main__":
    main()
