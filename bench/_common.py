"""Shared helpers for the benchmarks: synthetic sources in Hugging Face layout, the fake server, result output."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OFFLINE_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
os.environ.update(OFFLINE_ENV)

WORDS = np.array(
    "the a river model small quick data blue city night learn paper green north answer test light music "
    "story water field market house voice stone world table letter garden energy cloud window road".split()
)


def text_column(rng: np.random.Generator, n: int, chars: int, tag: str = "") -> pa.Array:
    """n distinct-ish strings of about `chars` characters (random words + the row number)."""
    per_row = max(1, chars // 6)
    pool = [" ".join(rng.choice(WORDS, per_row)) for _ in range(4096)]
    picks = rng.integers(0, len(pool), n)
    return pa.array([f"{tag}{pool[p]} {i}" for i, p in enumerate(picks.tolist())], pa.string())


def write_hf_source(
    folder: Path, table: pa.Table, features: dict, *, n_files: int = 1, description: str = "", name: str = ""
) -> None:
    """A local folder laid out like a Hub dataset repo: README.md card (YAML front matter) + parquet shards."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    feature_list = []
    for col, spec in features.items():
        if isinstance(spec, list):  # class label names
            feature_list.append(
                {"name": col, "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(spec)}}}}
            )
        else:
            feature_list.append({"name": col, "dtype": spec})
    card = {
        "pretty_name": name or folder.name,
        "license": "mit",
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
        ],
        "dataset_info": {"features": feature_list},
    }
    text = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n# {name or folder.name}\n\n{description}\n"
    (folder / "README.md").write_text(text, encoding="utf-8")
    step = -(-table.num_rows // n_files)
    for i in range(n_files):
        pq.write_table(
            table.slice(i * step, step), folder / "data" / f"train-{i:05d}-of-{n_files:05d}.parquet"
        )


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0


def report(name: str, rows: list[tuple[str, object, str]], extra: dict) -> None:
    """Print a (metric, value, target) table and write bench/results/<name>.json."""
    width = max(len(r[0]) for r in rows)
    print(f"\n== {name} ==")
    for metric, value, target in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {metric:<{width}}  {shown:>12}  {target}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"metrics": {r[0]: r[1] for r in rows}, "targets": {r[0]: r[2] for r in rows if r[2]}, **extra}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(f"  → {RESULTS / f'{name}.json'}")
