"""What a user sees of the pipeline through DVC's own commands, in a temporary project on the demo sources.

One module fixture runs it all once (the corpus stages, then a tiny training run, a release and a fresh
clone) and keeps each command's output; each test reads what it needs: `dvc metrics show` fits in 120
columns and loads every file, `dvc status` is clean after `dvc repro`, no stage warns about an empty
dependency, a fresh clone's bare `dvc pull` succeeds, and the page of `dvc plots show` draws its charts in a
headless Chromium with the network unreachable.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.project import Project

pytestmark = pytest.mark.integration

DEMO = ("vader-tweets", "chatterbot-conversations")
TINY_TRAIN = {
    "max_steps": 6,
    "max_length": 96,
    "batch_size": 4,
    "warmup_steps": 1,
    "vocab_size": 600,
    "max_per_task": 40,
    "threads": 1,
}
TINY_EVAL = {"holdout_sources": [], "max_instances_per_task": 2, "max_new_tokens": 4, "threads": 1}


@dataclass
class Journey:
    project: Project
    outputs: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    trained: bool = False

    def step(self, name: str, *cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
        self.outputs[name] = self.project.run(*cmd, timeout=timeout)
        return self.outputs[name]


def can_train() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("journey")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=tasks_from_schema) as server:
        for var, value in {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "DVC_NO_ANALYTICS": "1",
        }.items():
            mp.setenv(var, value)
        mp.setenv("HF_HOME", str(tmp / "hf_home"))
        mp.setenv("COLUMNS", "200")
        project = Project(tmp / "repo", server.base_url)
        journey = Journey(project)
        project.run("dvc", "remote", "add", "-d", "store", str(tmp / "remote"))
        for name in DEMO:
            project.add_demo_source(name)
        project.set("train", **TINY_TRAIN)
        project.set("evaluate", **TINY_EVAL)
        project.commit("demo sources")

        journey.step("repro corpus", "dvc", "repro", "organize")
        journey.step("metrics corpus", "dvc", "metrics", "show")
        journey.step("status corpus", "dvc", "status", "organize", "--with-deps")
        journey.trained = can_train()
        if journey.trained:
            journey.step("repro all", "dvc", "repro")
            journey.step("status all", "dvc", "status")
            journey.step("metrics all", "dvc", "metrics", "show")
        journey.step("plots", "dvc", "plots", "show", "-o", str(tmp / "plots"))
        project.commit("built")
        journey.step("release", "dyno", "release", "-m", "first")
        if journey.trained:
            journey.step("status after release", "dvc", "status")

        clone = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(project.root), str(clone)], check=True)
        pulled = subprocess.run(
            [shutil.which("dvc", path=str(Path(project.env()["PATH"]).parent)) or "dvc", "pull"],
            cwd=clone,
            env=project.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        journey.outputs["clone pull"] = pulled
        journey.outputs["plots dir"] = subprocess.CompletedProcess([], 0, str(tmp / "plots"), "")
        yield journey


def widest(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def test_metrics_show_fits_in_120_columns_and_loads_every_file(journey: Journey):
    corpus = journey.outputs["metrics corpus"]
    assert "failed to load" not in corpus.stdout + corpus.stderr  # train and evaluate have not run
    assert widest(corpus.stdout) <= 120, corpus.stdout
    header = corpus.stdout.splitlines()[0].split()
    assert header == ["Path", "failed", "instances", "rejected", "sources", "tasks"]
    rows = {line.split()[0] for line in corpus.stdout.splitlines()[1:]}
    assert rows == {f"data/metrics/{s}.json" for s in ("collect", "generate", "filter", "organize")}
    if journey.trained:
        trained = journey.outputs["metrics all"]
        assert "failed to load" not in trained.stdout + trained.stderr
        assert widest(trained.stdout) <= 120, trained.stdout
        assert "data/metrics/evaluate.json" in trained.stdout and "data/metrics/train.json" in trained.stdout


def test_metrics_are_totals_and_run_counters_live_elsewhere(journey: Journey):
    project = journey.project
    organize, corpus = project.metrics("organize"), project.stats("organize")["per_source"]
    assert organize["instances"] == sum(s["instances"] for s in corpus.values()) > 0
    assert organize["tasks"] == sum(s["tasks"] for s in corpus.values())
    assert "calls_made" in project.run_log("generate") and "calls_made" not in project.metrics("generate")
    assert "rows_seen" in project.run_log("organize") and "rows_seen" not in organize


def test_status_is_clean_after_repro(journey: Journey):
    assert "Data and pipelines are up to date." in journey.outputs["status corpus"].stdout
    if not journey.trained:
        pytest.skip("torch is not installed: the training stages were not run")
    assert "Data and pipelines are up to date." in journey.outputs["status all"].stdout
    # A release appends to ledger/: no stage may depend on it (continual depended on ledger/ as a whole).
    assert "Data and pipelines are up to date." in journey.outputs["status after release"].stdout


def test_no_stage_warns_about_an_empty_dependency(journey: Journey):
    for name in ("repro corpus", "repro all"):
        if name in journey.outputs:
            proc = journey.outputs[name]
            assert "is empty" not in proc.stdout + proc.stderr


def test_a_fresh_clone_pulls_everything_a_release_recorded(journey: Journey):
    pulled = journey.outputs["clone pull"]
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    clone = Path(journey.project.root).parent / "clone"
    assert list((clone / "data/corpus").glob("*/*.parquet"))
    if journey.trained:
        assert (clone / "models/model/config.json").is_file() and (clone / "data/evalset.json").is_file()


# --- the plots page, offline in a headless Chromium ------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB(A), non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and color in (2, 6), (depth, color)
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x * channels : x * channels + 3]) for row in rows for x in range(width)]
    return width, height, pixels  # type: ignore[return-value]


def colored(pixels: list[tuple[int, int, int]]) -> int:
    """Pixels in colour (the bars and lines), not white, grey or black (the page, borders and text)."""
    return sum(max(p) - min(p) > 60 for p in pixels)


def screenshot(chromium: str, url: str, out: Path) -> bytes:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # no network: every host resolves to nothing, and any request goes to a proxy that is not there
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1000,1400",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.read_bytes()


def test_the_plots_page_draws_its_charts_offline(journey: Journey, tmp_path: Path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = Path(journey.outputs["plots dir"].stdout) / "index.html"
    html = page.read_text()
    assert "<script" not in html and "https://" not in html  # nothing to fetch: Vega comes from a CDN
    names = ["rejections.svg", "sources.svg"] + (["train_loss.svg"] if journey.trained else [])
    assert all(f"data_plots_{name}" in html for name in names), html

    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    _, _, empty = png_pixels(screenshot(chromium, blank.as_uri(), tmp_path / "blank.png"))
    _, _, shown = png_pixels(screenshot(chromium, page.as_uri(), tmp_path / "plots.png"))
    assert colored(empty) == 0
    assert colored(shown) > 5000, colored(shown)  # the bars of both corpus charts, drawn
