"""A small but realistic project for looking at `dyno`'s tables: Hub-style source ids (`owner__name__config`),
long origins, long instructions and reasons, and two releases in git whose diff adds a source and gives one
a licence. Built without dvc (workspace records and shards written directly; releases recorded by hand), so
the terminal tests start in a second.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pyarrow as pa

from dynosaur.core.io import write_json
from dynosaur.core.records import FilteredSource, ManifestEntry, task_id, task_identity
from dynosaur.registry.ledger import Ledger
from tests.cli.test_cli import write_shard
from tests.factories import git_project, make_generated, make_meta, make_task, record_release

REPO = Path(__file__).resolve().parents[2]
ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

# source id → (origin, licence, [instructions of its valid tasks])
SOURCES: dict[str, tuple[str, str | None, list[str]]] = {
    "stanfordnlp__imdb__plain_text": (
        "hub:stanfordnlp/imdb",
        "other",
        [
            "Read the movie review and decide whether the reviewer liked the film overall, taking sarcasm"
            " and mixed opinions into account.",
            "Write a one-line title that summarises the main point of the given movie review.",
        ],
    ),
    "allenai__ai2_arc__arc-challenge": (
        "hub:allenai/ai2_arc",
        "cc-by-sa-4.0",
        ["Answer the grade-school science question by choosing the correct option."],
    ),
    "vader-amazon-reviews": (
        "local:data/sources/vader-amazon-reviews",
        None,
        ["Rate the sentiment of the product review on a scale from very negative to very positive."],
    ),
    "chatterbot-conversations": (
        "local:data/sources/chatterbot-conversations",
        "bsd-3-clause",
        ["Given the first turn of a casual conversation, write a friendly and relevant reply."],
    ),
}
NEW_IN_V2 = "fancyzhx__ag_news__default"
GATED = "meta-llama__llama-3.1-8b-evals__details"
ROWS = {
    "text": ["Great value.", "Broke after two days.", "Fine for the price.", "Would buy again.", "Meh."],
    "title": ["Value", "Broke", "Fine", "Again", "Meh"],
    "label": [1, 0, 1, 1, 0],
}


def revision(source_id: str) -> str:
    return "sha256:" + hashlib.sha256(source_id.encode()).hexdigest()


def _tasks(source_id: str, rev: str, instructions: list[str]) -> list:
    return [
        make_task(
            task_id=task_id(source_id, rev, text, ["text"], "title"),
            identity=task_identity(source_id, text, ["text"], "title"),
            source_id=source_id,
            source_revision=rev,
            instruction=text,
            output_field="title",
        )
        for text in instructions
    ]


def build(root: Path) -> dict[str, list[str]]:
    """The project in `root`: returns source id → its valid task ids."""
    (root / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    sources = {
        **SOURCES,
        NEW_IN_V2: ("hub:fancyzhx/ag_news", "unknown", ["Classify the news article by topic."]),
    }
    ids: dict[str, list[str]] = {}
    entries: dict[str, ManifestEntry] = {}
    for sid, (origin, licence, instructions) in sources.items():
        rev = revision(sid)
        kind = "hub" if origin.startswith("hub:") else "local"
        meta = make_meta(
            source_id=sid,
            origin=origin,
            kind=kind,
            location=origin.split(":", 1)[1],
            revision=rev,
            license=licence,
        )
        tasks = _tasks(sid, rev, instructions)
        rejected = make_task(
            task_id=task_id(sid, rev, "Copy the label.", ["label"], "label"),
            source_id=sid,
            source_revision=rev,
            instruction="Copy the label.",
            input_fields=["label"],
            verdict="rejected",
            reason="io_overlap",
        )
        write_json(root / "data/collected" / f"{sid}.json", meta)
        write_json(root / "data/generated" / f"{sid}.json", make_generated(source_id=sid))
        filtered = FilteredSource(source_id=sid, fingerprint="sha256:" + "3" * 64, tasks=[*tasks, rejected])
        write_json(root / "data/tasks" / f"{sid}.json", filtered)
        for task in tasks:
            table: pa.Table = write_shard(
                root / "data/corpus" / sid / f"{task.task_id}.parquet", ROWS, task, meta
            )
            entries[task.task_id] = ManifestEntry(
                task_id=task.task_id,
                source_id=sid,
                source_revision=rev,
                identity=task.identity,
                instances=table.num_rows * 25_013,  # thousands separators in the tables
                digest="sha256:" + task.task_id * 4,
                license=licence,
                shard=f"{sid}/{task.task_id}.parquet",
            )
        ids[sid] = [t.task_id for t in tasks]
    write_json(
        root / "data/collected" / f"{GATED}.json",
        make_meta(
            source_id=GATED,
            origin="hub:meta-llama/Llama-3.1-8B-evals",
            kind="hub",
            location="meta-llama/Llama-3.1-8B-evals",
            status="skipped",
            reason="gated dataset: accept its terms on the Hub, then run `dyno refresh` and `dvc repro` again",
        ),
    )

    git = lambda *args: subprocess.run(  # noqa: E731
        ["git", *args], cwd=root, check=True, capture_output=True, env={**os.environ, **ISOLATED}
    )
    git_project(root, ISOLATED, user="Test")
    ledger = Ledger(root)
    v1 = [e for e in entries.values() if e.source_id != NEW_IN_V2]
    # v1 had no licence for vader-amazon-reviews; v2 has mit (its card gained one).
    v1 = [e.model_copy(update={"license": None}) if e.source_id == "vader-amazon-reviews" else e for e in v1]
    v2 = [
        e.model_copy(update={"license": "mit"}) if e.source_id == "vader-amazon-reviews" else e
        for e in entries.values()
    ]
    messages = {
        1: "first corpus: four sources",
        2: "add AG News; the Amazon reviews card now names its licence",
    }
    for version, manifest in ((1, v1), (2, v2)):
        record_release(
            ledger,
            version,
            manifest,
            corpus_md5="0" * 32 + ".dir",
            message=messages[version],
            created_at=f"2026-0{version}-01T12:00:00Z",
        )
        git("add", "-A")
        git("commit", "-qm", f"release v{version}")
        git("tag", "-a", f"v{version}", "-m", f"v{version}")
    # v2 has the licence; the workspace has it too.
    meta_path = root / "data/collected/vader-amazon-reviews.json"
    from dynosaur.core.io import read_model
    from dynosaur.core.records import SourceMeta

    write_json(meta_path, read_model(meta_path, SourceMeta).model_copy(update={"license": "mit"}))
    return ids


if __name__ == "__main__":  # python -m tests.cli.demo_project DIR: a project to try `dyno` in by hand
    import sys

    target = Path(sys.argv[1])
    target.mkdir(parents=True)
    build(target)
    print(target)
