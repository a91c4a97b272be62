"""collect: one metadata record per source (`<out>/<source_id>.json`).

A source whose revision (local content fingerprint or Hub commit sha) and collect params are unchanged keeps
its record untouched, so downstream stages see nothing new. A source that cannot serve is recorded as
`skipped` with a reason; one that fails to load is recorded as `failed`, the others proceed, and the stage
exits non-zero unless `collect.allow_failures` is set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from registry.errors import SourceError, StageFailed
from registry.io import read_model, write_json
from registry.records import SourceMeta, digest
from stages.params import CollectParams, SourceSpec, load_params
from stages.runner import log, progress, prune, run, write_metrics
from stages.sources import collect_source, source_revision


def collect_one(spec: SourceSpec, params: CollectParams, previous: SourceMeta | None) -> tuple[SourceMeta, bool]:
    """(record, reused). Failures become `failed` records rather than exceptions."""
    location = spec.path or spec.hub or ""
    try:
        revision = source_revision(spec)
        inputs = digest([spec.model_dump(mode="json"), revision, params.model_dump(mode="json")])
        if previous is not None and previous.inputs_digest == inputs and previous.status != "failed":
            return previous, True
        meta = collect_source(spec, params, revision)
        return meta.model_copy(update={"inputs_digest": inputs}), False
    except SourceError as exc:
        return SourceMeta(
            source_id=spec.id,
            origin=f"local:{spec.path}" if spec.path else f"hub:{spec.hub}",
            kind="local" if spec.path else "hub",
            location=location,
            revision="",
            status="failed",
            reason=str(exc),
        ), False


def main(args: argparse.Namespace) -> None:
    params = load_params()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    records: list[SourceMeta] = []
    reused = 0
    for spec in progress(params.sources, "collect"):
        path = out / f"{spec.id}.json"
        previous = read_model(path, SourceMeta) if path.exists() else None
        meta, was_reused = collect_one(spec, params.collect, previous)
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
    run(main, "out", "metrics")
