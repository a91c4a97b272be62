"""Shared by bench/release.py and bench/pull.py: a synthetic released project, and measured child processes.

`SynthProject` is a temporary git + DVC repository (local directory remote as default) whose pipeline is
`bench/_synth_stage.py` run as four stages named like the real ones, so `dyno` sees an ordinary, up-to-date
project: `dvc repro` writes the outputs, the benchmark commits them, `dyno release` cuts a release.

`measured` runs a command under `/usr/bin/time` (GNU time) and returns its wall time and peak RSS: the
largest resident set of the command or of any descendant it waited for (wait4's `ru_maxrss`). GNU time is a
small C process, so the value Linux carries over fork+exec is its own ~2 MB, not this Python's. Without
GNU time, it polls the process tree with psutil every 20 ms and reports the largest single process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import OFFLINE_ENV, ROOT

BIN = ROOT / ".venv" / "bin"
DYNO, DVC = str(BIN / "dyno"), str(BIN / "dvc")
GNU_TIME = "/usr/bin/time"
STAGE_SCRIPT = Path(__file__).resolve().parent / "_synth_stage.py"

STAGES = {  # name → (cmd flags after the stage name, outs, params the stage reads)
    "collect": ("--out data/collected", ["data/collected"], ["bench.sources", "bench.seed"]),
    "generate": (
        "--collected data/collected --cache data/llm_cache --out data/generated",
        ["data/generated", "data/llm_cache"],
        ["bench.sources", "bench.seed"],
    ),
    "filter": (
        "--collected data/collected --out data/tasks",
        ["data/tasks"],
        ["bench.sources", "bench.tasks", "bench.seed"],
    ),
    "organize": (
        "--collected data/collected --tasks data/tasks --out data/corpus",
        ["data/corpus"],
        ["bench.sources", "bench.tasks", "bench.seed", "bench.instances", "bench.changed"],
    ),
}


def env(pythonpath: str | None = None) -> dict[str, str]:
    """The children's environment; `pythonpath` runs another checkout's `dynosaur` (a baseline)."""
    out = {
        **os.environ,
        **OFFLINE_ENV,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    out.pop("CI", None)
    out.pop("DYNO_DEBUG", None)
    if pythonpath:
        out["PYTHONPATH"] = pythonpath
    return out


def measured(cmd: list[str], cwd: Path, *, check: bool = True, pythonpath: str | None = None) -> dict:
    """Run `cmd` in `cwd`: {seconds, peak_rss_mb, rc, stdout, stderr}. Wall time is taken here, around it."""
    if Path(GNU_TIME).exists():
        with tempfile.NamedTemporaryFile("r", suffix=".time") as fh:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [GNU_TIME, "-q", "-o", fh.name, "-f", "%M", *cmd],
                cwd=cwd,
                env=env(pythonpath),
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - t0
            lines = [ln for ln in Path(fh.name).read_text().splitlines() if ln.strip()]
        peak = int(lines[-1]) / 1024 if lines and lines[-1].strip().isdigit() else float("nan")
    else:
        import psutil

        t0 = time.perf_counter()
        popen = subprocess.Popen(
            cmd, cwd=cwd, env=env(pythonpath), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        peak_b = 0
        parent = psutil.Process(popen.pid)
        while popen.poll() is None:
            try:
                for p in [parent, *parent.children(recursive=True)]:
                    peak_b = max(peak_b, p.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.02)
        out, err = popen.communicate()
        seconds = time.perf_counter() - t0
        proc = subprocess.CompletedProcess(cmd, popen.returncode, out, err)
        peak = peak_b / 2**20
    if check and proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return {
        "seconds": seconds,
        "peak_rss_mb": peak,
        "rc": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def tree_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) under a folder."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


class SynthProject:
    """A temporary git + DVC project whose pipeline writes `sources × tasks × instances` synthetic instances."""

    def __init__(
        self,
        parent: Path,
        name: str,
        *,
        sources: int,
        tasks: int,
        instances: int,
        seed: int = 0,
        pythonpath: str | None = None,
    ):
        self.pythonpath = pythonpath  # another checkout's src/ (a baseline), or None: this one's
        self.root = parent / name
        self.remote = parent / f"{name}-remote"
        self.params = {"sources": sources, "tasks": tasks, "instances": instances, "seed": seed, "changed": 0}
        self.root.mkdir(parents=True)
        self.remote.mkdir()
        shutil.copy(STAGE_SCRIPT, self.root / "synth_stage.py")
        stages = {}
        for stage, (flags, outs, params) in STAGES.items():
            prev = {
                "generate": ["data/collected"],
                "filter": ["data/collected"],
                "organize": ["data/collected", "data/tasks"],
            }.get(stage, [])
            stages[stage] = {
                "cmd": f"python synth_stage.py {stage} {flags}",
                "deps": ["synth_stage.py", *prev],
                "params": params,
                "outs": [{o: {"persist": True}} for o in outs],
            }
        (self.root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
        self.write_params()
        self.git("init", "-q", "-b", "main")
        self.run(DVC, "init", "-q")
        self.run(DVC, "remote", "add", "-d", "local", str(self.remote))  # absolute: clones find it too
        self.commit("init")

    @property
    def total_instances(self) -> int:
        return self.params["sources"] * self.params["tasks"] * self.params["instances"]

    def write_params(self) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump({"bench": self.params}, sort_keys=False))

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=env(self.pythonpath),
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            list(cmd), cwd=self.root, env=env(self.pythonpath), capture_output=True, text=True
        )
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        if self.git("status", "--porcelain").strip():
            self.git("commit", "-qm", message)

    def repro(self, message: str) -> float:
        """`dvc repro` then commit (dvc.lock, params): seconds for the repro."""
        t0 = time.perf_counter()
        self.run(DVC, "repro", "-q")
        seconds = time.perf_counter() - t0
        self.commit(message)
        return seconds

    def change(self, tasks: int) -> None:
        self.params["changed"] = tasks
        self.write_params()

    def release(self, message: str) -> dict:
        return measured([DYNO, "release", "-m", message, "--json"], self.root, pythonpath=self.pythonpath)

    def diff(self, a: str, b: str) -> tuple[dict, dict]:
        run = measured([DYNO, "diff", a, b, "--json"], self.root, pythonpath=self.pythonpath)
        return run, json.loads(run["stdout"])

    def verify_remote(self) -> tuple[dict, dict]:
        """`dyno verify --remote`: every release's listing and shards read back from the DVC remote."""
        run = measured([DYNO, "verify", "--remote", "--json"], self.root, pythonpath=self.pythonpath)
        return run, json.loads(run["stdout"])

    def shard_hashes(self) -> dict[str, str]:
        """Shard path → md5 as dvc.lock's directory object lists them (from the local DVC cache)."""
        from dynosaur.registry.vcs import dir_listing, locked_out_md5

        return dir_listing(self.root, locked_out_md5(self.root, "data/corpus"))
