"""What DVC's bookkeeping costs for one stage output, by the output's layout, side by side in one run.

Issue 25 asks whether per-source files should become hash-bucketed segments (e.g. 256 per output) so that DVC
hashes a few hundred files instead of thousands. This measures DVC alone, without Dynosaur's stages: a
temporary git + DVC repo with one stage whose `persist: true` output holds N sources' records (about 2 KB
each, the size of a `data/collected` record) laid out three ways:

- `files`: one file per source in one folder (today's `data/collected`, `data/generated`, `data/tasks`);
- `folders`: one folder per source holding its files (today's `data/corpus/<source>/<task>.parquet`, and a
  local source's Hub layout in `data/sources`): here two files per folder;
- `buckets`: 256 segment files, each holding the records of the sources whose id hashes to it.

For each: `dvc status` with nothing changed (the no-op's share), and `dvc repro` after one more source (the
stage's command writes one new file, or rewrites one segment; DVC checks, runs, hashes and commits the output).
Each figure is the best of `--repeat` runs; the layouts alternate.

Run: `python bench/dvc_layout.py [--sources 2000 20000] [--repeat 3] [--name dvc_layout]`.
Results: bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report
from incremental import BIN

LAYOUTS = ("files", "folders", "buckets")
BUCKETS = 256
RECORD = "x" * 2000  # about the size of one collect record


def bucket_of(source: str) -> str:
    return f"{int(hashlib.sha256(source.encode()).hexdigest()[:8], 16) % BUCKETS:03d}.jsonl"


def write_source(out: Path, layout: str, i: int) -> None:
    """Source i's record in `out`: its own file, its own folder, or a line appended to its segment."""
    sid = f"src-{i:05d}"
    if layout == "files":
        (out / f"{sid}.json").write_text(f'{{"id": "{sid}", "x": "{RECORD}"}}\n')
    elif layout == "folders":
        (out / sid).mkdir(exist_ok=True)
        for task in ("a", "b"):
            (out / sid / f"{task}.json").write_text(f'{{"id": "{sid}", "x": "{RECORD[:1000]}"}}\n')
    else:
        with open(out / bucket_of(sid), "a") as fh:
            fh.write(f'{{"id": "{sid}", "x": "{RECORD}"}}\n')


STAGE_CMD = f"{sys.executable} write.py"
WRITER = f"""import sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from dvc_layout import write_source
layout, n = Path("layout").read_text().split()
out = Path("out")
out.mkdir(exist_ok=True)
have = int(Path("count").read_text()) if Path("count").exists() else 0
for i in range(have, int(n)):
    write_source(out, layout, i)
Path("count").write_text(n)
"""


# the offline settings (`_common` puts them in os.environ) and this virtualenv's dvc first; not CI's
ENV = {k: v for k, v in os.environ.items() if k != "CI"} | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def run(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - t0


def make_repo(root: Path, layout: str, sources: int) -> Path:
    repo = root / f"{layout}-{sources}"
    repo.mkdir()
    (repo / "write.py").write_text(WRITER)
    (repo / "layout").write_text(f"{layout} {sources}")
    (repo / "dvc.yaml").write_text(
        "stages:\n  make:\n"
        f"    cmd: {STAGE_CMD}\n"
        "    deps: [layout]\n"
        "    outs:\n      - out:\n          persist: true\n      - count:\n          cache: false\n"
    )
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([str(BIN / "dvc"), "repro", "-q"], repo)
    return repo


def one_more(repo: Path, layout: str) -> float:
    n = int((repo / "layout").read_text().split()[1]) + 1
    (repo / "layout").write_text(f"{layout} {n}")
    return run([str(BIN / "dvc"), "repro", "-q"], repo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--name", default="dvc_layout")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-dvc-layout-"))
    rows: list[tuple[str, object, str]] = []
    extra: dict = {"files_per_output": {}}
    try:
        for n in args.sources:
            repos = {layout: make_repo(root, layout, n) for layout in LAYOUTS}
            for layout, repo in repos.items():
                files = sum(1 for p in (repo / "out").rglob("*") if p.is_file())
                folders = 1 + sum(1 for p in (repo / "out").rglob("*") if p.is_dir())
                extra["files_per_output"][f"{layout}_{n}"] = {"files": files, "folders": folders}
            status: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
            plus_one: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
            for _ in range(args.repeat):
                for layout, repo in repos.items():  # alternating: the machine's noise hits each alike
                    status[layout].append(run([str(BIN / "dvc"), "status", "-q"], repo))
                    plus_one[layout].append(one_more(repo, layout))
            print(f"  {n} sources: " + ", ".join(f"{k} status {min(status[k]):.2f}s" for k in LAYOUTS))
            for layout in LAYOUTS:
                shape = extra["files_per_output"][f"{layout}_{n}"]
                rows.append(
                    (
                        f"{n}_{layout}_status_seconds",
                        min(status[layout]),
                        f"{shape['files']} files in {shape['folders']} folders",
                    )
                )
                rows.append(
                    (f"{n}_{layout}_plus_one_seconds", min(plus_one[layout]), "dvc repro, one more source")
                )
            for layout in ("folders", "buckets"):
                rows.append(
                    (
                        f"{n}_{layout}_over_files_plus_one",
                        min(plus_one[layout]) / min(plus_one["files"]),
                        "same run",
                    )
                )
            for repo in repos.values():
                shutil.rmtree(repo)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args.name, rows, extra)


if __name__ == "__main__":
    main()
