"""Corpus quality on nine real annotated datasets: collect → generate → filter → organize with a real model.

The sources are built by `scripts/build_quality_sources.py` (into `bench/quality/sources/` unless `--sources`
names a folder that already holds them). They are copied into a temporary git + DVC project with this checkout's
code and `params.yaml` (llm: the default local Qwen2.5-Coder-0.5B, unless `--provider` / `--base-url` /
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
- the filter's figures on the paper's 5,740 published tasks (from `dynosaur.pipeline.paper_tasks`, when present).

`--llm-cache DIR` reuses LLM answers across runs (the call cache is content-addressed, so a changed prompt is
asked again and an unchanged one is not). Results go to `bench/results/<name>.json` (default `quality`).
Run: `.venv/bin/python bench/quality.py [--sources DIR] [--keep] [--llm-cache DIR] [--param k=v ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
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

sys.path.insert(0, str(ROOT / "scripts"))
QUALITY = ROOT / "bench" / "quality"
VALID = QUALITY / "valid_mappings.yaml"
PAPER_TASKS = ROOT.parent / "shared" / "data" / "dynosaur" / "instructions-full.json"
# Instructions about the dataset instead of a task ("read the dataset's metadata and extract the fields"): a
# proxy for instructions that make no sense for their mapping, which the mapping-level precision cannot see.
DATASET_TALK = re.compile(r"\b(dataset|metadata|fields?|train(ing)?|validation|split)\b", re.IGNORECASE)
CUT_MARKERS = ("…", "...", "[…]", "[...]", "[truncated]")
TARGETS = {
    "precision": ("≥ 0.8", lambda v: v >= 0.8),
    "yield": ("≥ 2.0", lambda v: v >= 2.0),
    "near_duplicate_pairs": ("0", lambda v: v == 0),
    "duplicate_instances": ("0", lambda v: v == 0),
    "cut_targets": ("0", lambda v: v == 0),
}


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
    from dynosaur.pipeline.organize import format_column
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

    from dynosaur.core.io import read_model
    from dynosaur.core.records import FilteredSource, GeneratedSource, SourceMeta

    meta = read_model(repo / "data" / "collected" / f"{sid}.json", SourceMeta)
    if meta.status != "ok":
        return {"status": meta.status, "reason": meta.reason}
    generated = read_model(repo / "data" / "generated" / f"{sid}.json", GeneratedSource)
    filtered = read_model(repo / "data" / "tasks" / f"{sid}.json", FilteredSource)
    valid_tasks = filtered.valid
    kept = [t.model_dump() for t in valid_tasks]
    entries = [match_entry(t["input_fields"], t["output_field"], spec) for t in kept]
    on_list = [e for e in entries if e is not None]
    duplicates = cut = altered = instances = 0
    expected_by_field: dict[str, dict[tuple[str, int], str | None]] = {}
    for task in valid_tasks:
        shard = repo / "data" / "corpus" / sid / f"{task.task_id}.parquet"
        if not shard.exists():
            continue
        table = pq.read_table(shard, columns=["input", "output", "split", "row"]).to_pylist()
        instances += len(table)
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
    return {
        "status": "ok",
        "proposals": sum(len(p.tasks) for p in generated.proposals),
        "unparseable": sum(p.parse_error is not None for p in generated.proposals),
        "kept": len(kept),
        "demo_copies": rejected.get("copies_demonstration", 0),
        "kept_valid": len(on_list),
        "precision": len(on_list) / len(kept) if kept else None,
        "yield": len(set(on_list)),
        "near_duplicate_pairs": len(near_duplicate_pairs(kept)),
        "dataset_talk": sum(bool(DATASET_TALK.search(t["instruction"])) for t in kept),
        "instances": instances,
        "duplicate_instances": duplicates,
        "cut_targets": cut,
        "altered_targets": altered,
        "rejected": dict(sorted(rejected.items())),
        "tasks": [
            {
                "instruction": t["instruction"],
                "inputs": t["input_fields"],
                "output": t["output_field"],
                "variant": t["variant"],
                "valid_mapping": e is not None,
            }
            for t, e in zip(kept, entries, strict=True)
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


def paper_figures() -> dict[str, Any] | str:
    """The filter's figures on the paper's published tasks (when ../shared/data sits beside the checkout)."""
    from dynosaur.pipeline.paper_tasks import load_paper_tasks, paper_task_figures

    if not PAPER_TASKS.exists():
        return f"n/a ({PAPER_TASKS} not found)"
    return paper_task_figures(load_paper_tasks(PAPER_TASKS)).model_dump()


def paper_lines(f: dict[str, Any]) -> str:
    """The paper-task figures against their targets (issue 9), one per line."""
    rows = [
        ("known-bad rejected", f["known_bad_rejected"], f["known_bad"], "≥ 95%", lambda s: s >= 0.95),
        ("paraphrase redundancy", f["redundant_kept"], f["kept"], "≤ 5%", lambda s: s <= 0.05),
        ("the rest kept", f["rest_kept"], f["rest"], "≥ 95%", lambda s: s >= 0.95),
    ]
    lines = [f"  paper's {f['tasks']:,} published tasks:"]
    for name, n, of, target, met in rows:
        share = n / of if of else 0.0
        mark = "✓" if met(share) else "✗ MISSED"
        lines.append(f"  {name:<22} {n:>5,} / {of:,} = {share:.1%}  target {target} {mark}")
    return "\n".join(lines)


def overall(per_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in per_source.values() if r["status"] == "ok"]
    kept = sum(r["kept"] for r in ok)
    total = {
        k: sum(r[k] for r in ok) for k in ("proposals", "unparseable", "kept", "kept_valid", "instances")
    }
    for k in (
        "demo_copies",
        "near_duplicate_pairs",
        "dataset_talk",
        "duplicate_instances",
        "cut_targets",
        "altered_targets",
    ):
        total[k] = sum(r[k] for r in ok)
    total["precision"] = total["kept_valid"] / kept if kept else 0.0
    total["yield"] = sum(r["yield"] for r in ok) / len(per_source) if per_source else 0.0
    return total


def table(per_source: dict[str, dict[str, Any]], total: dict[str, Any]) -> str:
    cols: tuple[str, ...] = (
        "proposals",
        "kept",
        "precision",
        "yield",
        "near_duplicate_pairs",
        "duplicate_instances",
    )
    cols += ("cut_targets", "instances")
    heads = ("proposed", "kept", "precision", "yield", "near-dup", "dup inst", "cut", "instances")

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    width = max(len(s) for s in [*per_source, "overall"])
    lines = [f"  {'source':<{width}}  " + "  ".join(f"{h:>9}" for h in heads)]
    for sid, r in per_source.items():
        if r["status"] != "ok":
            lines.append(f"  {sid:<{width}}  {r['status']}: {r['reason']}")
            continue
        lines.append(f"  {sid:<{width}}  " + "  ".join(f"{cell(r[c]):>9}" for c in cols))
    lines.append(f"  {'overall':<{width}}  " + "  ".join(f"{cell(total[c]):>9}" for c in cols))
    lines.append("")
    for key, (target, met) in TARGETS.items():
        mark = "✓" if met(total[key]) else "✗ MISSED"
        lines.append(f"  {key:<22} {cell(total[key]):>8}  target {target} {mark}")
    lines.append(f"  {'unparseable answers':<22} {total['unparseable']:>8}")
    copies = f"{total['demo_copies']:>8}  rejected by the filter as copied from a demonstration"
    lines.append(f"  {'demonstration copies':<22} {copies}")
    talk = f"{total['dataset_talk']:>8}  kept instructions about the dataset, not a task (a proxy)"
    lines.append(f"  {'dataset talk':<22} {talk}")
    lines.append(
        f"  {'altered targets':<22} {total['altered_targets']:>8}  (output ≠ source value, not a cut)"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=QUALITY / "sources", help="built quality sources (<id>/)")
    ap.add_argument("--only", default="", help="comma-separated source ids (default: all nine)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    ap.add_argument("--provider", choices=("local", "openai", "compatible"))
    ap.add_argument("--base-url", help="an OpenAI-compatible server (sets provider: compatible)")
    ap.add_argument("--model", help="llm.model")
    ap.add_argument("--param", action="append", default=[], help="section.key=value (YAML value); repeatable")
    ap.add_argument("--llm-cache", type=Path, help="reuse and extend this LLM call cache across runs")
    ap.add_argument("--name", default="quality", help="results file bench/results/<name>.json")
    args = ap.parse_args()

    import build_quality_sources

    if not all((args.sources / sid / "README.md").exists() for sid in build_quality_sources.SOURCE_IDS):
        print(f"building the quality sources into {args.sources} (pip download of 3 packages)", flush=True)
        build_quality_sources.build_all(args.sources)
    valid = yaml.safe_load(VALID.read_text())["sources"]
    ids = [s for s in args.only.split(",") if s] or list(build_quality_sources.SOURCE_IDS)

    repo = Path(tempfile.mkdtemp(prefix="dyno-quality-"))
    log = repo.parent / f"{repo.name}.log"
    try:
        params = make_project(repo, args.sources, ids, args)
        print(f"dvc repro organize in {repo} (log: {log})", flush=True)
        seconds = run_pipeline(repo, log, args.llm_cache)
        if args.llm_cache:
            shutil.copytree(repo / "data" / "llm_cache", args.llm_cache, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("failures"))  # fmt: skip
        per_source = {sid: measure_source(repo, sid, valid[sid]) for sid in ids}
        # generate's totals, their breakdown (tokens, cost) and its run's counters (calls, cache hits)
        generate_metrics = {
            k: v
            for kind in ("runs", "stats", "metrics")
            for k, v in json.loads((repo / "data" / kind / "generate.json").read_text()).items()
        }
    finally:
        if not args.keep:
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(repo.parent / f"{repo.name}-hf", ignore_errors=True)
    total = overall(per_source)
    paper = paper_figures()
    text = table(per_source, total)
    paper_text = paper_lines(paper) if isinstance(paper, dict) else f"  paper's tasks: {paper}"
    print(f"\n== {args.name}: {params['llm']['provider']}:{params['llm']['model']}, {seconds:.0f}s ==")
    print(text)
    print(paper_text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    data = {
        "overall": total,
        "targets": {k: t for k, (t, _) in TARGETS.items()},
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
