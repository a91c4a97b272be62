"""The default `local` provider for real: `dvc repro` on a demo source with Qwen2.5-Coder-0.5B via llama.cpp.

Slow (the model answers in seconds per prompt on 2 cores), so there are few of these; CI runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.project import Project

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_dvc_repro_with_the_local_model_builds_a_corpus(tmp_path: Path):
    pytest.importorskip("xllamacpp")
    project = Project(tmp_path / "repo", base_url="unused")
    project.params["llm"] = {
        **project.params["llm"],
        "provider": "local",
        "base_url": None,
        "model": "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "timeout_s": 300,
    }
    # The default mode (Project pins `propose` for its scripted fakes): one call per enumerated mapping,
    # two at most here
    project.params["generate"].update(mode="fields_first", max_mappings=2)
    project.add_demo_source("vader-tweets")
    # two real model calls on 2 shared cores: minutes, not seconds
    project.run("dvc", "repro", "organize", timeout=1200)

    generate = {**project.run_log("generate"), **project.stats("generate")}
    calls = generate["calls_made"]
    assert 1 <= calls <= 2
    assert generate["unparseable_answers"] == 0  # json_schema-constrained decoding
    assert generate["completion_tokens"] > 0
    status = project.status()
    source = status["sources"][0]
    assert source["status"] == "ok" and source["license"] == "mit"
    assert status["tasks_valid"] >= 1
    # Every valid task covers every train + validation row (1,600 + 200; the 200 test rows never), less the
    # rows organize drops and counts (empty, too long, duplicate input and output within a task).
    organize = project.run_log("organize")
    dropped = project.metrics("organize")["rejected"]  # the corpus total: the rows of every shard
    assert organize["rows_seen"] == status["tasks_valid"] * 1800
    assert status["instances"] == status["tasks_valid"] * 1800 - dropped
    rows = project.instances()
    assert {r["split"] for r in rows} == {"train", "validation"}
    assert all(r["model"].startswith("local:qwen2.5-coder-0.5b-instruct-q4_k_m.gguf@sha256:") for r in rows)

    # Nothing changed: generate is skipped. Its outputs lost: it runs, but every answer is in the cache
    # (the model is not even loaded).
    assert (
        "Stage 'generate' didn't change, skipping"
        in project.run("dvc", "repro", "organize", timeout=1200).stdout
    )
    import shutil

    shutil.rmtree(project.root / "data/generated")
    project.run("dvc", "repro", "organize", timeout=1200)
    assert (project.run_log("generate")["calls_made"], project.run_log("generate")["cache_hits"]) == (
        0,
        calls,
    )
