"""Stand-in for the pipeline's four stages in the release/pull benchmarks: no sources, no LLM.

Copied into a temporary project as `synth_stage.py` and run by `dvc repro` as four stages named like the
real ones (collect, generate, filter, organize), with the same `--out` / `--cache` flags, so that
`dynosaur.registry.workspace.Workspace.load` finds the outputs. Each stage writes, seeded from `params.yaml: bench`,
what its real counterpart would:

    collect    data/collected/   SourceMeta per source (status ok, licence one of three), in segments
    generate   data/generated/   an empty GeneratedSource per source; data/llm_cache/README (the call cache)
    filter     data/tasks/       FilteredSource per source: `tasks` valid Tasks
               (the three in hash-bucketed segments, as the real stages write them: dynosaur.core.segments)
    organize   data/corpus/<src>/<task>.parquet   `instances` rows per task, dynosaur.core.shards.schema(), zstd,
               written by dynosaur.core.shards.ShardWriter (footer `dyno.digest`, `dyno.instances`)

Text is random words from a 5,000-word pseudo-vocabulary (~250-char inputs, 3-word outputs), so shards
compress like text, not like a repeated pattern. `bench.changed: K` rewrites K tasks spread over the corpus
with different outputs (same ids, same count); every other shard is skipped (its `dyno.fingerprint`, the
variant, already matches), so it stays byte-identical, as organize's own incremental rule would keep it.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from dynosaur.core.records import (
    FilteredSource,
    GeneratedSource,
    SourceMeta,
    Task,
    instance_ids,
    task_id,
    task_identity,
)
from dynosaur.core.segments import RecordFolder, landing
from dynosaur.core.shards import ShardWriter, schema, shard_fingerprint_of

SCHEMA = schema()
LICENSES = ["mit", "cc-by-4.0", "apache-2.0"]
INPUT_WORDS, OUTPUT_WORDS = 40, 3


def load() -> dict:
    return yaml.safe_load(Path("params.yaml").read_text())["bench"]


def metas(p: dict) -> list[SourceMeta]:
    out = []
    for i in range(p["sources"]):
        sid = f"src-{i:03d}"
        rev = "sha256:" + hashlib.sha256(f"{sid}:{p['seed']}".encode()).hexdigest()
        out.append(
            SourceMeta(
                source_id=sid,
                origin=f"local:data/sources/{sid}",
                kind="local",
                location=f"data/sources/{sid}",
                revision=rev,
                license=LICENSES[i % len(LICENSES)],
                pretty_name=f"Synthetic source {i}",
                description=f"Synthetic source number {i}.",
            )
        )
    return out


def tasks_of(meta: SourceMeta, p: dict) -> list[Task]:
    out = []
    for j in range(p["tasks"]):
        instruction = f"Task {j} of {meta.source_id}: read the text and give its short label number {j}."
        inputs, output = ["text"], f"label_{j}"
        out.append(
            Task(
                task_id=task_id(meta.source_id, meta.revision, instruction, inputs, output),
                identity=task_identity(meta.source_id, instruction, inputs, output),
                source_id=meta.source_id,
                source_revision=meta.revision,
                variant="with_description",
                instruction=instruction,
                input_fields=inputs,
                output_field=output,
                prompt_version="v1",
                model="bench",
                verdict="valid",
            )
        )
    return out


def vocabulary(seed: int, size: int = 5000) -> pa.Array:
    rng = np.random.default_rng([seed, 7])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, size)
    return pa.array(["".join(rng.choice(letters, n)) for n in lengths], pa.string())


def words(rng: np.random.Generator, vocab: pa.Array, rows: int, per_row: int) -> pa.Array:
    picks = vocab.take(pa.array(rng.integers(0, len(vocab), rows * per_row)))
    offsets = pa.array(np.arange(0, rows * per_row + 1, per_row, dtype=np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, picks), " ")


def shard(task: Task, meta: SourceMeta, index: int, variant: str, p: dict, vocab: pa.Array) -> pa.Table:
    n = p["instances"]
    rows = np.arange(n, dtype=np.int64)
    rng_in = np.random.default_rng([p["seed"], index, 0])
    rng_out = np.random.default_rng([p["seed"], index, 1 if variant == "base" else 2])
    const = lambda v: pa.repeat(pa.scalar(v, pa.string()), n)  # noqa: E731
    return pa.Table.from_pydict(
        {
            "instance_id": pa.array(instance_ids(task.task_id, "train", rows).astype(str)),
            "instruction": const(task.final_instruction),
            "input": words(rng_in, vocab, n, INPUT_WORDS),
            "output": words(rng_out, vocab, n, OUTPUT_WORDS),
            "source_id": const(meta.source_id),
            "source_revision": const(meta.revision),
            "config": const(None),
            "split": const("train"),
            "row": pa.array(rows),
            "task_id": const(task.task_id),
            "prompt_version": const(task.prompt_version),
            "model": const(task.model),
        },
        schema=SCHEMA,
    )


def changed_indices(total: int, changed: int) -> set[int]:
    return set(range(0, total, max(1, total // changed))[:changed]) if changed else set()


def organize(out: Path, p: dict) -> None:
    vocab = vocabulary(p["seed"])
    all_metas = metas(p)
    total = len(all_metas) * p["tasks"]
    changed = changed_indices(total, p["changed"])
    written = kept = 0
    for i, meta in enumerate(all_metas):
        (out / meta.source_id).mkdir(parents=True, exist_ok=True)
        for j, task in enumerate(tasks_of(meta, p)):
            index = i * p["tasks"] + j
            variant = "changed" if index in changed else "base"
            key = f"{variant}:{p['instances']}:{p['seed']}"
            path = out / meta.source_id / f"{task.task_id}.parquet"
            if path.exists() and shard_fingerprint_of(path) == key:
                kept += 1
                continue
            table = shard(task, meta, index, variant, p, vocab)
            writer = ShardWriter(path, fingerprint=key)
            writer.write(table)
            writer.close()
            written += 1
    print(f"organize (synthetic): {written} shards written, {kept} kept", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["collect", "generate", "filter", "organize"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--collected", type=Path)
    ap.add_argument("--tasks", type=Path)
    args = ap.parse_args()
    p = load()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "collect":
        with landing(RecordFolder(args.out, SourceMeta)) as collected:
            for meta in metas(p):
                collected.put(meta)
    elif args.stage == "generate":
        args.cache.mkdir(parents=True, exist_ok=True)
        (args.cache / "README").write_text("synthetic: no LLM calls\n")
        with landing(RecordFolder(args.out, GeneratedSource)) as generated:
            for meta in metas(p):
                generated.put(
                    GeneratedSource(
                        source_id=meta.source_id,
                        fingerprint=meta.fingerprint,
                        model="synthetic",
                        prompt_version="0",
                    )
                )
    elif args.stage == "filter":
        with landing(RecordFolder(args.out, FilteredSource)) as filtered:
            for meta in metas(p):
                filtered.put(
                    FilteredSource(
                        source_id=meta.source_id, fingerprint=meta.fingerprint, tasks=tasks_of(meta, p)
                    )
                )
    else:
        organize(args.out, p)


if __name__ == "__main__":
    main()
