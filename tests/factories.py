"""Tiny factories for test inputs: plain functions with sensible defaults, overridden per test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from dynosaur.core.records import (
    AuditItem,
    AuditSample,
    Feature,
    FeatureStats,
    GeneratedSource,
    ManifestEntry,
    Proposal,
    Release,
    Retraction,
    SourceMeta,
    SourceVersion,
    SplitInfo,
    Task,
    TaskSpec,
    TaskVersion,
    Totals,
    task_identity,
)
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.releases import manifest_totals

LABELS = ["negative", "positive"]


def make_stats(**overrides: Any) -> FeatureStats:
    """Plain statistics of a free-text field: nothing empty, nothing dominant, not an identifier."""
    values: dict[str, Any] = dict(
        scanned=100, empty=0, distinct=100, top_share=0.01, id_like=False, mean_chars=40.0
    )
    return FeatureStats(**{**values, **overrides})


def make_feature(
    name: str, dtype: str = "string", class_names: list[str] | None = None, **stats: Any
) -> Feature:
    """A feature with plain stats (`stats=None` for none); keyword arguments override single stats."""
    if "stats" in stats:
        return Feature(name=name, dtype=dtype, class_names=class_names, stats=stats["stats"])
    return Feature(name=name, dtype=dtype, class_names=class_names, stats=make_stats(**stats))


def label_feature(name: str = "label", class_names: list[str] | None = None, **stats: Any) -> Feature:
    names = list(class_names or LABELS)
    values = dict(distinct=len(names), top_share=1 / len(names), mean_chars=1.0)
    return make_feature(name, "class_label", names, **{**values, **stats})


def default_features() -> list[Feature]:
    return [
        make_feature("text"),
        make_feature("title", mean_chars=12.0),
        label_feature(),
        make_feature("image", "image", stats=None),
    ]


def make_meta(**overrides: Any) -> SourceMeta:
    """A small local source: text, title, a two-class label and an image; train 100 rows, validation 20."""
    values: dict[str, Any] = dict(
        source_id="reviews",
        origin="local:data/sources/reviews",
        kind="local",
        location="data/sources/reviews",
        config="default",
        revision="sha256:" + "0" * 64,
        pretty_name="Reviews",
        description="Short product reviews labelled with their sentiment.",
        features=default_features(),
        splits=[SplitInfo(name="train", num_rows=100), SplitInfo(name="validation", num_rows=20)],
        samples=[
            {"text": "Great value, works as described.", "title": "Works", "label": 1},
            {"text": "Broke after two days.", "title": "Broke", "label": 0},
        ],
    )
    return SourceMeta(**{**values, **overrides})


def make_spec(**overrides: Any) -> TaskSpec:
    """A valid task over `make_meta()`: classify the sentiment of the text."""
    values: dict[str, Any] = dict(
        instruction="Classify the sentiment of the given review.",
        input_fields=["text"],
        output_field="label",
    )
    return TaskSpec(**{**values, **overrides})


def make_proposal(*tasks: TaskSpec, **overrides: Any) -> Proposal:
    values: dict[str, Any] = dict(variant="with_description", cache_key="k" * 64, tasks=list(tasks))
    return Proposal(**{**values, **overrides})


def make_generated(*proposals: Proposal, **overrides: Any) -> GeneratedSource:
    values: dict[str, Any] = dict(
        source_id="reviews",
        fingerprint="sha256:" + "1" * 64,
        model="fake-model",
        prompt_version="v1",
        proposals=list(proposals),
    )
    return GeneratedSource(**{**values, **overrides})


def make_task(**overrides: Any) -> Task:
    """A valid task as the filter writes it."""
    values: dict[str, Any] = dict(
        task_id="0123456789abcdef",
        source_id="reviews",
        source_revision="sha256:" + "0" * 64,
        variant="with_description",
        instruction="Classify the sentiment of the given review.",
        input_fields=["text"],
        output_field="label",
        prompt_version="v1",
        model="fake-model",
        verdict="valid",
    )
    values = {**values, **overrides}
    values.setdefault(
        "identity",
        task_identity(
            values["source_id"], values["instruction"], values["input_fields"], values["output_field"]
        ),
    )
    return Task(**values)


# --- the release registry ------------------------------------------------------------------------------


def make_entry(task_id: str = "0123456789abcdef", **overrides: Any) -> ManifestEntry:
    """One task of a release manifest: 10 instances of `reviews`, MIT, identity = task id unless given."""
    source_id = overrides.get("source_id", "reviews")
    values: dict[str, Any] = dict(
        task_id=task_id,
        source_id=source_id,
        source_revision="rev1",
        identity=f"id-{task_id}",
        instances=10,
        digest="sha256:" + task_id.ljust(64, "0")[:64],
        license="mit",
        shard=f"{source_id}/{task_id}.parquet",
    )
    return ManifestEntry(**{**values, **overrides})


def make_source_version(**overrides: Any) -> SourceVersion:
    values: dict[str, Any] = dict(
        source_id="reviews",
        origin="local:data/sources/reviews",
        revision="sha256:" + "0" * 64,
        license="mit",
        metadata_fingerprint="sha256:" + "2" * 64,
    )
    return SourceVersion(**{**values, **overrides})


def make_task_version(**overrides: Any) -> TaskVersion:
    values: dict[str, Any] = dict(
        task_id="0123456789abcdef",
        source_id="reviews",
        source_revision="sha256:" + "0" * 64,
        instruction="Classify the sentiment of the given review.",
        label_options=["negative", "positive"],
        input_fields=["text"],
        output_field="label",
        prompt_version="v1",
        model="fake-model",
        verdict="valid",
    )
    return TaskVersion(**{**values, **overrides})


def make_retraction(**overrides: Any) -> Retraction:
    values: dict[str, Any] = dict(
        kind="task",
        target="0123456789abcdef",
        identity=None,
        reason="toxic outputs",
        created_at="2026-01-02T00:00:00Z",
    )
    return Retraction(**{**values, **overrides})


def make_release(version: int = 1, parent: str | None = None, **overrides: Any) -> Release:
    """Release `version` (unsealed), pointing at ledger/manifests/v<version>.jsonl."""
    values: dict[str, Any] = dict(
        version=version,
        tag=f"v{version}",
        parent=parent,
        message=f"release {version}",
        created_at="2026-01-01T00:00:00Z",
        manifest=f"ledger/manifests/v{version}.jsonl",
        manifest_digest="sha256:" + "3" * 64,
        corpus_md5="d41d8cd98f00b204e9800998ecf8427e.dir",
        totals=Totals(sources=1, tasks=1, instances=10),
        licenses={"mit": 10},
    )
    return Release(**{**values, **overrides})


def record_release(
    ledger: Ledger, version: int, manifest: list[ManifestEntry], *, corpus_md5: str, **overrides: Any
) -> Release:
    """What `dyno release` records, by hand: manifest v<version> and its release line after the last one (no
    git, no DVC); totals and licences from the manifest, as `dyno release` counts them."""
    totals, licenses = manifest_totals(manifest)
    previous = ledger.releases()
    values: dict[str, Any] = dict(
        parent=previous[-1].hash if previous else None,
        message="",
        manifest_digest=ledger.write_manifest(version, manifest),
        corpus_md5=corpus_md5,
        totals=totals,
        licenses=licenses,
    )
    release = make_release(version, **{**values, **overrides})
    ledger.append(Release, [release])
    return release


def git_project(root: Path, env: dict[str, str] | None = None, *, user: str = "test") -> None:
    """A git repository on branch main with a committer, `/data/` ignored and an empty retraction ledger: the
    skeleton of a project whose registry a test writes by hand (no DVC)."""
    for args in (
        ("init", "-q", "-b", "main"),
        ("config", "user.email", "test@example.com"),
        ("config", "user.name", user),
    ):
        subprocess.run(
            ["git", *args], cwd=root, check=True, capture_output=True, env={**os.environ, **(env or {})}
        )
    (root / ".gitignore").write_text("/data/\n")
    (root / "ledger").mkdir(exist_ok=True)
    (root / "ledger" / "retractions.jsonl").touch()


def make_audit_sample(
    n: int,
    release: str = "v1",
    seed: int = 0,
    strata: tuple[tuple[str, str], ...] = (("t", "s"),),
    **overrides: Any,
) -> AuditSample:
    """An unsealed audit sample of `n` items; item i is of task and source `strata[i % len(strata)]`."""
    items = [
        AuditItem(
            instance_id=f"{i:016x}", task_id=strata[i % len(strata)][0], source_id=strata[i % len(strata)][1]
        )
        for i in range(n)
    ]
    values: dict[str, Any] = dict(
        audit_id=f"{release}-seed{seed}-n{n}",
        release=release,
        release_hash="sha256:x",
        seed=seed,
        n=n,
        method="test",
        items=items,
        code_version="test",
        prompt_versions=["p"],
        models=["m"],
        created_at="2026-12-07T09:00:00Z",
    )
    return AuditSample(**{**values, **overrides})
