"""train + evaluate end to end: the real `dvc repro` in a temporary repo on a tiny corpus, on the CPU.

The corpus comes from the scripted LLM server (three small sources, one held out); a scratch GPT-2 trains for
a few dozen steps through TRL. Then: the stage killed mid-run resumes under `dvc repro`, training on a release
pulled from the DVC remote, and bad input failing with one line and leaving the model as it was.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import Project

pytestmark = pytest.mark.integration

pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY_TRAIN = {
    "max_steps": 30,
    "max_length": 160,
    "batch_size": 8,
    "lr": 3e-3,
    "warmup_steps": 3,
    "vocab_size": 800,
    "holdout_fraction": 0.1,
    "threads": 1,
}
TINY_EVAL = {"holdout_sources": ["gamma"], "max_instances_per_task": 4, "max_new_tokens": 8, "threads": 1}


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(responder=tasks_from_schema) as srv:
        yield srv


def new_project(root: Path, server: FakeOpenAI) -> Project:
    project = Project(root, server.base_url)
    project.run("dvc", "remote", "add", "-d", "store", "../remote")  # relative: a copy gets its own
    for name in ("alpha", "beta", "gamma"):
        project.add_source(name)
    project.params["train"] = {**project.params["train"], **TINY_TRAIN}
    project.params["evaluate"] = {**project.params["evaluate"], **TINY_EVAL}
    project.write_params()
    project.commit("sources")
    return project


@pytest.fixture
def project(tmp_path: Path, server: FakeOpenAI) -> Project:
    return new_project(tmp_path / "repo", server)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, server: FakeOpenAI) -> Project:
    """The project after `dvc repro evaluate` (corpus, training and evaluation), built once per module."""
    project = new_project(tmp_path_factory.mktemp("evaluated") / "repo", server)
    project.repro("evaluate")
    return project


@pytest.fixture
def trained(evaluated: Project, tmp_path: Path) -> Project:
    """A private copy of `evaluated`, its DVC remote with it."""
    return evaluated.copy(tmp_path / "w")


def losses(project: Project) -> list[float]:
    with open(project.root / "data/stats/train_loss.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    return [float(r["loss"]) for r in rows]


def test_repro_trains_and_evaluates_on_the_cpu(trained: Project):
    project = trained  # `dvc repro evaluate` ran once for the module
    loss = losses(project)
    assert len(loss) == 30 and sum(loss[-5:]) / 5 < sum(loss[:5]) / 5
    train = project.run_log("train")
    assert train["steps"] == 30 and train["unseen_tasks"] == 2
    assert train["loss_last10"] < train["loss_first10"] and train["tokens_per_s"] > 0
    totals = project.metrics("train")
    assert totals == {"tasks": 4, "instances": totals["instances"], "loss": train["loss_last10"]}
    assert totals["instances"] > 0
    model = project.root / "models/model"
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_config.json"} <= {
        p.name for p in model.iterdir()
    }
    assert not [p for p in (project.root / "models").iterdir() if p.name.startswith(".model")]

    ev = project.stats("evaluate")
    assert set(ev) == {"trained", "base", "lift", "counts", "per_task"}
    assert project.metrics("evaluate") == {
        "rouge_l": ev["trained"]["heldout_rouge_l"],
        "lift": ev["lift"]["heldout_rouge_l"],
    }
    assert ev["counts"] == {
        "heldout_tasks": 4,
        "heldout_instances": 16,
        "unseen_tasks": 2,
        "unseen_instances": 8,
    }
    for key in ("heldout_rouge_l", "unseen_rouge_l", "heldout_exact_match", "unseen_exact_match"):
        assert ev["trained"][key] is not None and ev["base"][key] is not None
        assert ev["lift"][key] == round(ev["trained"][key] - ev["base"][key], 4)
    assert {t["source_id"] for t in ev["per_task"]["heldout"].values()} == {"alpha", "beta"}
    assert {t["source_id"] for t in ev["per_task"]["unseen"].values()} == {"gamma"}
    # The label task (yes / no / maybe) is classification-like: exact match; the question task is not.
    unseen = ev["per_task"]["unseen"].values()
    assert sorted(t["trained_exact_match"] is None for t in unseen) == [False, True]

    shown = json.loads(project.run("dvc", "metrics", "show", "--json").stdout)
    data = next(iter(shown.values()))["data"]
    assert data["data/metrics/evaluate.json"]["data"]["lift"] == ev["lift"]["heldout_rouge_l"]
    assert data["data/metrics/train.json"]["data"]["tasks"] == 4
    plots = json.loads(project.run("dvc", "plots", "show", "--json").stdout)
    assert "data/plots/train_loss.svg" in json.dumps(plots)

    # Deterministic and incremental: nothing changed → nothing runs; an evaluate param → evaluate only.
    project.commit("trained")
    again = project.repro("evaluate").stdout
    assert "Stage 'train' didn't change, skipping" in again and "Stage 'evaluate' didn't change" in again
    project.set("evaluate", max_instances_per_task=2)
    out = project.repro("evaluate").stdout
    assert "Stage 'train' didn't change, skipping" in out and "Running stage 'evaluate'" in out
    assert project.stats("evaluate")["counts"]["heldout_instances"] == 8


def test_a_killed_train_stage_resumes_under_dvc_repro(project: Project):
    project.repro("organize")
    project.set("train", max_steps=40, save_steps=10)
    project.commit("params")
    cmd = project.pipeline()["stages"]["train"]["cmd"].split()
    proc = subprocess.Popen(cmd, cwd=project.root, env=project.env(), stderr=subprocess.PIPE, text=True)
    checkpoints = project.root / "models" / "checkpoints"
    deadline = time.monotonic() + 600
    while not list(checkpoints.glob("*/checkpoint-*/trainer_state.json")):  # a complete checkpoint
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project.root / "models/model").exists()

    out = project.repro("train")
    assert "train: resuming from the checkpoint at step" in out.stderr
    train = project.run_log("train")  # what the run did
    assert train["steps"] == 40 and train["resumed_from_step"] in (10, 20, 30)
    assert len(losses(project)) == 40  # the steps before the kill too
    assert not checkpoints.exists()  # a finished run keeps no checkpoints


def run_train(project: Project):
    return project.run(
        "python",
        "-m",
        "dynosaur.training.train",
        "--corpus",
        "data/corpus",
        "--model",
        "models/model",
        "--evalset",
        "data/evalset.json",
        "--metrics",
        "m.json",
        "--run-log",
        "r.json",
        "--losses",
        "l.csv",
        "--plot",
        "l.svg",
        "--checkpoints",
        "models/checkpoints",
        check=False,
    )


def test_train_on_a_release_and_bad_input_fails_with_one_line(trained: Project):
    project = trained  # `dvc repro evaluate` ran once for the module
    project.commit("corpus")
    assert json.loads(project.dyno("release", "-m", "first", "--json").stdout)["release"]["tag"] == "v1"
    before = (project.root / "models/model/model.safetensors").read_bytes()

    project.set("train", release="v1")
    project.repro("evaluate")
    assert project.run_log("train")["corpus"] == "v1"
    config = json.loads((project.root / "models/model/train_config.json").read_text())
    assert config["corpus"] == "v1"
    # The release holds the same corpus, and training is seeded: the same weights.
    assert (project.root / "models/model/model.safetensors").read_bytes() == before

    cases = [
        ("train", {"release": "v9"}, 1, "Error: train.release: unknown version 'v9' (releases: v1)"),
        (
            "evaluate",
            {"holdout_sources": ["nope"]},
            2,
            "Error: evaluate.holdout_sources: 'nope' is not a source of v1 (sources: alpha, beta, gamma)",
        ),
        (
            "train",
            {"continual": {"releases": ["v1"], "replay": {"strategy": "fancy", "tasks": 1}}},
            2,
            "Error: params.yaml: train.continual.replay.strategy: unknown replay strategy 'fancy'",
        ),
        (
            "train",
            {"base_model": "no-such-owner/no-such-model"},
            1,
            "Error: base model 'no-such-owner/no-such-model' cannot be loaded offline: ",
        ),
    ]
    good = {s: dict(project.params[s]) for s in ("train", "evaluate")}
    for section, values, code, message in cases:
        project.params[section] = {**good[section], **values}
        project.write_params()
        proc = run_train(project)
        lines = proc.stderr.strip().splitlines()  # progress lines may come first; the cause ends it
        assert proc.returncode == code, proc.stderr
        assert lines[-1].startswith(message) and "Traceback" not in proc.stderr, proc.stderr
        assert [line for line in lines if line.startswith("Error")] == lines[-1:], proc.stderr
        project.params[section] = good[section]
    project.write_params()
    assert (project.root / "models/model/model.safetensors").read_bytes() == before
    # a failed run may leave its resumable checkpoints, never a half-written model
    assert sorted(p.name for p in (project.root / "models").iterdir() if p.name != "checkpoints") == [
        ".gitignore",
        "model",
    ]
    assert not (project.root / "m.json").exists()
