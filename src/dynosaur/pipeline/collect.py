"""collect: one metadata record per source (`<out>/<source_id>.json`).

A source whose revision (local content fingerprint or Hub commit sha), collect params and reader version
(`sources.READER_VERSION`) are unchanged keeps its record untouched, so downstream stages see nothing new. A
source that cannot serve is recorded as `skipped` with a reason; one that fails to load is recorded as
`failed` with a one-line reason (an unexpected error too; `DYNO_DEBUG=1` raises it with its traceback
instead), the others proceed, and the stage exits non-zero unless `collect.allow_failures` is set. A source
retracted in the ledger, or whose licence is outside `params.yaml: licenses`, is `skipped` with that reason,
so it costs no LLM call and its outputs go.
An evaluation benchmark (`collect.eval_benchmarks`) is `skipped` as `eval_benchmark` before anything is read.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dynosaur.core.errors import SourceError, StageFailed, first_line
from dynosaur.core.fingerprint import fingerprint as stage_fingerprint
from dynosaur.core.io import read_model, write_json
from dynosaur.core.licenses import license_exclusion
from dynosaur.core.params import Params, SourceSpec, load_params
from dynosaur.core.records import Retraction, SourceMeta, SourceStatus
from dynosaur.core.runner import log, progress, prune, run, write_metrics
from dynosaur.pipeline.decontaminate import eval_benchmark
from dynosaur.pipeline.sources import READER_VERSION, collect_source, source_revision
from dynosaur.registry.ledger import read_records


def collect_one(
    spec: SourceSpec, params: Params, previous: SourceMeta | None, retracted: dict[str, str]
) -> tuple[SourceMeta, bool]:
    """(record, reused). Failures become `failed` records rather than exceptions; a retracted source or one
    outside the licence policy becomes `skipped` with the reason."""
    if eval_benchmark(spec, params.collect.eval_benchmarks):
        return _unread(spec, "skipped", "eval_benchmark"), False
    try:
        revision = source_revision(spec)
        inputs = stage_fingerprint(
            inputs=[
                spec.model_dump(mode="json"),
                revision,
                params.licenses.model_dump(mode="json"),
                retracted.get(spec.id),
            ],
            params=params.collect,
            version=READER_VERSION,
        )
        if previous is not None and previous.inputs_digest == inputs and previous.status != "failed":
            return previous, True
        meta = collect_source(spec, params.collect, revision)
        excluded = (
            f"retracted: {retracted[spec.id]}"
            if spec.id in retracted
            else license_exclusion(meta.license, params.licenses)
        )
        if excluded and meta.status == "ok":
            meta = meta.model_copy(update={"status": "skipped", "reason": excluded})
        return meta.model_copy(update={"inputs_digest": inputs}), False
    except SourceError as exc:
        reason = str(exc)
    except Exception as exc:  # a bug met on this one source: record it and let the others proceed
        if os.environ.get("DYNO_DEBUG"):
            raise
        reason = (
            f"source {spec.id!r}: unexpected {first_line(exc, typed=True)} (DYNO_DEBUG=1 shows the traceback)"
        )
    return _unread(spec, "failed", reason), False


def _unread(spec: SourceSpec, status: SourceStatus, reason: str) -> SourceMeta:
    """The record of a source that was not read (failed, or skipped before reading)."""
    return SourceMeta(
        source_id=spec.id,
        origin=f"local:{spec.path}" if spec.path else f"hub:{spec.hub}",
        kind="local" if spec.path else "hub",
        location=spec.path or spec.hub or "",
        revision="",
        status=status,
        reason=reason,
    )


def main(args: argparse.Namespace) -> None:
    params = load_params()
    retracted = {r.target: r.reason for r in read_records(args.retractions, Retraction) if r.kind == "source"}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    records: list[SourceMeta] = []
    reused = 0
    for spec in progress(params.sources, "collect"):
        path = out / f"{spec.id}.json"
        previous = read_model(path, SourceMeta) if path.exists() else None
        meta, was_reused = collect_one(spec, params, previous, retracted)
        reused += was_reused
        if not was_reused:
            write_json(path, meta)
        if meta.status != "ok":
            log(f"collect: {spec.id}: {meta.status}: {meta.reason}")
        records.append(meta)
    removed = prune(out, {s.id for s in params.sources})

    failed = {m.source_id: m.reason or "" for m in records if m.status == "failed"}
    write_metrics(
        args.metrics,
        {
            "sources": len(records),
            "sources_ok": sum(m.status == "ok" for m in records),
            "sources_skipped": {m.source_id: m.reason for m in records if m.status == "skipped"},
            "sources_failed": len(failed),
            "sources_reused": reused,
            "sources_removed": len(removed),
            "rows": sum(s.num_rows for m in records for s in m.splits),
        },
    )
    if failed and not params.collect.allow_failures:
        first = next(iter(failed.values()))
        raise StageFailed(
            f"{len(failed)} source(s) failed: {first}"
            " (recorded in the collect output; fix or remove them, or set collect.allow_failures: true)"
        )


if __name__ == "__main__":
    run(main, "retractions", "out", "metrics")
