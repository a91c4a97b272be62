"""A throwaway Dynosaur project for integration tests: a git + DVC repo with the real code and small sources.

`dvc repro` runs for real (stages as subprocesses); the LLM is a `FakeOpenAI` server on 127.0.0.1 that the
stages reach through the real `openai` client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CODE = ("src", "dvc.yaml", "pyproject.toml", "sources.yaml", "sources.lock")
# What a fresh clone has besides the code: the committed ignore rules (every DVC output's entry among them).
IGNORES = (".gitignore", "data/.gitignore", "models/.gitignore")


def write_source(
    root: Path,
    source_id: str,
    rows: dict[str, list[dict[str, Any]]],
    *,
    features: list[dict[str, Any]] | None = None,
    description: str = "A small test dataset.",
    license: str = "mit",
) -> Path:
    """A local source in Hub layout: README.md card (front matter + description) and one jsonl per split."""
    folder = root / "data" / "sources" / source_id
    (folder / "data").mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {
        "license": license,
        "pretty_name": source_id.replace("-", " ").title(),
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}.jsonl"} for s in rows],
            }
        ],
    }
    if features is not None:
        card["dataset_info"] = {"features": features}
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n{description}\n")
    for split, split_rows in rows.items():
        with open(folder / "data" / f"{split}.jsonl", "w") as fh:
            for row in split_rows:
                fh.write(json.dumps(row) + "\n")
    return folder


def qa_source(root: Path, source_id: str, n: int = 30, test_rows: int = 5, **kw: Any) -> Path:
    """question / answer / label(class) rows: a source the fake LLM proposes valid tasks for."""

    def rows(split: str, count: int) -> list[dict[str, Any]]:
        return [
            {
                "question": f"{source_id} {split} question number {i}?",
                "answer": f"answer {i} of {source_id}",
                "label": i % 3,
            }
            for i in range(count)
        ]

    features = [
        {"name": "question", "dtype": "string"},
        {"name": "answer", "dtype": "string"},
        {"name": "label", "dtype": {"class_label": {"names": {"0": "yes", "1": "no", "2": "maybe"}}}},
    ]
    splits = {"train": rows("train", n), "validation": rows("validation", n // 3)}
    if test_rows:
        splits["test"] = rows("test", test_rows)
    return write_source(root, source_id, splits, features=features, **kw)


class Project:
    def __init__(self, root: Path, base_url: str):
        self.root = root
        self.base_url = base_url
        for name in CODE:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, root / name)
        for name in IGNORES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, root / name)
        # The repository's own params.yaml (DVC needs every section a stage lists), pointed at the fake.
        self.params: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
        self.params["sources"] = []
        # The fake's scripted answers are whole tasks, and these tests count two calls per source (with and
        # without the description): the `propose` mode. `fields_first` has its own tests
        # (tests/pipeline/test_generate.py) and the quality bench.
        self.params["generate"]["mode"] = "propose"
        self.params["llm"].update(
            provider="compatible",
            base_url=base_url,
            model="fake-model",
            concurrency=2,
            max_retries=2,
            timeout_s=5,
        )
        self.write_params()
        (root / "data" / "sources").mkdir(parents=True)
        (root / "data" / "sources" / ".gitkeep").touch()
        (root / "ledger").mkdir()
        (root / "ledger" / "retractions.jsonl").write_text("\n")  # as the repository ships it
        self.git("init", "-q")
        self.git("config", "user.email", "test@example.com")
        self.git("config", "user.name", "test")
        self.run("dvc", "init", "-q")
        self.git("add", "-A")
        self.git("commit", "-qm", "init")

    @classmethod
    def at(cls, root: Path, base_url: str, params: dict[str, Any]) -> Project:
        """A `Project` over a repository that already exists (a copy, a clone): nothing is written."""
        project = object.__new__(cls)
        project.root, project.base_url, project.params = root, base_url, params
        return project

    def copy(self, dest: Path) -> Project:
        """A private copy of the built project and of the folder around it (a relative DVC remote comes along),
        with a DVC site cache of its own: the expensive `dvc repro` is shared, the files are not."""
        shutil.copytree(self.root.parent, dest, symlinks=True)
        copy = Project.at(dest / self.root.name, self.base_url, json.loads(json.dumps(self.params)))
        copy.run("dvc", "config", "--local", "core.site_cache_dir", str(dest / ".dvc-site"))
        return copy

    def clone(self, dest: Path) -> Project:
        """`git clone` of the project at `dest`: what git holds, no DVC cache."""
        subprocess.run(["git", "clone", "-q", str(self.root), str(dest)], check=True)
        return Project.at(dest, self.base_url, self.params)

    # --- editing ---------------------------------------------------------------------------------------

    def add_source(self, source_id: str, **kw: Any) -> None:
        qa_source(self.root, source_id, **kw)
        self.params["sources"].append({"id": source_id, "path": f"data/sources/{source_id}"})
        self.write_params()

    def add_demo_source(self, source_id: str) -> None:
        """One of the repository's bundled demo sources, copied in."""
        shutil.copytree(REPO / "data" / "sources" / source_id, self.root / "data" / "sources" / source_id)
        self.params["sources"].append({"id": source_id, "path": f"data/sources/{source_id}"})
        self.write_params()

    def remove_source(self, source_id: str) -> None:
        self.params["sources"] = [s for s in self.params["sources"] if s["id"] != source_id]
        self.write_params()

    def set(self, section: str, **values: Any) -> None:
        self.params.setdefault(section, {}).update(values)
        self.write_params()

    def write_params(self) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    # --- running ---------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env["PYTHONPATH"] = str(self.root / "src")  # the project's own copy of the code runs
        env.pop("PYTHONHOME", None)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        exe = shutil.which(cmd[0], path=str(Path(sys.executable).parent)) or cmd[0]
        proc = subprocess.run(
            [exe, *cmd[1:]], cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        ).stdout

    def commit(self, message: str = "update") -> None:
        """Commit everything git tracks or should (params, sources, dvc.lock), as a user does before releasing."""
        self.git("add", "-A")
        if self.git("status", "--porcelain").strip():
            self.git("commit", "-qm", message)

    def repro(self, *targets: str, check: bool = True) -> subprocess.CompletedProcess:
        """`dvc repro` of the corpus pipeline (up to organize) unless other targets are named."""
        return self.run("dvc", "repro", *(targets or ("organize",)), check=check)

    def dyno(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dyno", *args, check=check)

    def metrics(self, stage: str) -> dict[str, Any]:
        """The stage's totals (`dvc metrics show`)."""
        return json.loads((self.root / "data" / "metrics" / f"{stage}.json").read_text())

    def stats(self, stage: str) -> dict[str, Any]:
        """The breakdown of the stage's totals (per source, per reason, per task)."""
        return json.loads((self.root / "data" / "stats" / f"{stage}.json").read_text())

    def run_log(self, stage: str) -> dict[str, Any]:
        """What the stage's last run did (calls made, sources reused, ...)."""
        return json.loads((self.root / "data" / "runs" / f"{stage}.json").read_text())

    def pipeline(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "dvc.yaml").read_text())

    def status(self) -> dict[str, Any]:
        return json.loads(self.dyno("status", "--json").stdout)

    def shards(self) -> dict[str, float]:
        """Shard path → mtime, to tell rewritten shards from kept ones."""
        return {
            str(p.relative_to(self.root)): p.stat().st_mtime_ns
            for p in (self.root / "data/corpus").glob("*/*.parquet")
        }

    def instances(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = []
        for shard in sorted((self.root / "data/corpus").glob("*/*.parquet")):
            rows.extend(pq.read_table(shard).to_pylist())
        return rows


def press_ctrl_c_when(
    argv: list[str], cwd: Path, env: dict[str, str], ready: Callable[[], bool], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `argv` in its own process group and send SIGINT to the whole group once `ready()`, as a terminal's
    Ctrl-C does; then wait for it to end."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):  # it ended by itself: the caller's assertions say how
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
