"""Benchmark `dynosaur.pipeline.organize.organize_source` on a 1,000,000-row source against the plain-pyarrow I/O floor.

Target: organize (3 tasks × every row) takes ≤ 3× the floor (read the same parquet files, write 3 × the rows
as zstd parquet), with peak RSS < 1 GB. Each side runs in its own child process so its peak RSS is its own
(VmHWM, see `vm_hwm_mb`). Run: `.venv/bin/python bench/organize.py [--rows 1000000] [--repeat 1]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from _common import ROOT, Timer, report, text_column, write_hf_source

LABELS = ["negative", "neutral", "positive"]


def build(work: Path, rows: int, files: int) -> None:
    """Source (HF layout) → collect → meta.json + tasks.json in `work`."""
    from dynosaur.core.params import CollectParams, SourceSpec
    from dynosaur.core.records import Task, task_id, task_identity
    from dynosaur.pipeline.sources import collect_source, source_revision

    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "question": text_column(rng, rows, 60, "Q: "),
            "context": text_column(rng, rows, 200),
            "label": pa.array(rng.integers(0, 3, rows), pa.int64()),
            "answer": text_column(rng, rows, 20),
        }
    )
    features = {"question": "string", "context": "string", "label": LABELS, "answer": "string"}
    write_hf_source(
        work / "src", table, features, n_files=files, description="Synthetic QA with sentiment labels."
    )
    spec = SourceSpec(id="bench-src", path=str(work / "src"))
    with Timer() as t:
        meta = collect_source(spec, CollectParams(), source_revision(spec))
    print(f"collect of {rows} rows: {t.s:.1f}s (not part of the comparison)", flush=True)
    label = meta.feature("label")
    assert meta.status == "ok" and label is not None and label.class_names == LABELS, meta
    specs = [  # (instruction, inputs, output, label options)
        ("Answer the question using the passage as context.", ["context", "question"], "answer", None),
        ("Classify the sentiment of the passage below.", ["context"], "label", LABELS),
        ("Give a short answer to the following question.", ["question"], "answer", None),
    ]
    tasks = [
        Task(
            task_id=task_id(meta.source_id, meta.revision, ins, inp, out),
            identity=task_identity(meta.source_id, ins, inp, out),
            source_id=meta.source_id,
            source_revision=meta.revision,
            variant="with_description",
            instruction=ins,
            input_fields=inp,
            output_field=out,
            prompt_version="v1",
            model="bench",
            verdict="valid",
            label_options=opts,
        )
        for ins, inp, out, opts in specs
    ]
    (work / "meta.json").write_text(meta.model_dump_json())
    (work / "tasks.json").write_text(json.dumps([t.model_dump(mode="json") for t in tasks]))


def child_organize(work: Path) -> dict:
    import pyarrow.parquet as pq

    from dynosaur.core.params import OrganizeParams
    from dynosaur.core.records import SourceMeta, Task
    from dynosaur.pipeline.organize import organize_source

    meta = SourceMeta.model_validate_json((work / "meta.json").read_text())
    tasks = [Task.model_validate(t) for t in json.loads((work / "tasks.json").read_text())]
    out = work / "out-organize"
    with Timer() as t:
        result = organize_source(meta, tasks, out, OrganizeParams())
    assert not result.failed, result.failed
    written = sum(pq.read_metadata(p).num_rows for p in out.glob("*.parquet"))
    return {"seconds": t.s, "rows_written": written, "counts": dict(result.counts)}


def child_floor(work: Path) -> dict:
    import pyarrow.parquet as pq

    files = sorted((work / "src" / "data").glob("*.parquet"))
    out = work / "out-floor"
    out.mkdir(exist_ok=True)
    with Timer() as t:
        schema = pq.read_schema(files[0]).remove_metadata()
        writers = [pq.ParquetWriter(out / f"copy{i}.parquet", schema, compression="zstd") for i in range(3)]
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=65536):
                table = pa.Table.from_batches([batch]).replace_schema_metadata(None)
                for w in writers:
                    w.write_table(table)
        for w in writers:
            w.close()
    written = sum(pq.read_metadata(p).num_rows for p in out.glob("*.parquet"))
    return {"seconds": t.s, "rows_written": written}


def vm_hwm_mb() -> float:
    """This process's peak RSS. Not `ru_maxrss`: Linux carries that over fork+exec, so a child would report
    the (large) parent's RSS at fork time; VmHWM belongs to the post-exec address space only."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found, "no VmHWM in /proc/self/status"
    return int(found.group(1)) / 1024


def measure(kind: str, work: Path) -> dict:
    """Run one side in a fresh interpreter; it reports its own wall time and peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--work", str(work)], stdout=subprocess.PIPE
    )
    if proc.returncode:
        raise SystemExit(f"{kind} child failed ({proc.returncode})")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="alternate runs of each side; best time, worst RSS")
    ap.add_argument("--child", choices=["organize", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = (child_organize if args.child == "organize" else child_floor)(args.work)
        print(json.dumps({**result, "peak_rss_mb": vm_hwm_mb()}))
        return

    with tempfile.TemporaryDirectory(prefix="bench-organize-") as tmp:
        work = Path(tmp)
        build(work, args.rows, args.files)
        runs: dict[str, list[dict[str, float]]] = {"floor": [], "organize": []}
        for _ in range(args.repeat):
            for kind in runs:  # side by side, alternating
                runs[kind].append(measure(kind, work))
                print(
                    f"  {kind}: {runs[kind][-1]['seconds']:.2f}s, {runs[kind][-1]['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    best = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
    instances = runs["organize"][0]["rows_written"]
    ratio = best["organize"] / best["floor"]
    report(
        "organize",
        [
            ("source_rows", args.rows, ""),
            ("instances_written", instances, f"= 3 × {args.rows}"),
            ("floor_seconds", best["floor"], ""),
            ("organize_seconds", best["organize"], ""),
            ("organize_instances_per_s", instances / best["organize"], ""),
            ("organize_over_floor", ratio, "≤ 3.0" + (" ✓" if ratio <= 3 else " ✗ MISSED")),
            ("floor_peak_rss_mb", rss["floor"], ""),
            (
                "organize_peak_rss_mb",
                rss["organize"],
                "< 1024" + (" ✓" if rss["organize"] < 1024 else " ✗ MISSED"),
            ),
        ],
        {"runs": runs, "root": str(ROOT), "cpus": os.cpu_count()},
    )


if __name__ == "__main__":
    main()
