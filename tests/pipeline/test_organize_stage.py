"""The organize stage's `main()`: per-source and per-task isolation, footer counts, decontamination.

Sources are local jsonl folders; their collect records are written by hand (no `datasets` import), so each
test takes well under a second, the 50 MB cell included.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from dynosaur.core.errors import ParamsError, StageFailed
from dynosaur.core.io import read_json, write_json
from dynosaur.core.records import FilteredSource, SplitInfo, instance_id, task_id
from dynosaur.core.runner import run
from dynosaur.core.shards import footer, footer_counts, shard_digest
from dynosaur.pipeline import organize
from tests.factories import label_feature, make_feature, make_meta, make_task

SUPERNI = Path(__file__).resolve().parents[1] / "fixtures" / "superni"
PASSAGE = (
    "The committee met on a rainy Tuesday to decide whether the old lighthouse should be restored, "
    "sold to a private buyer, or left to the sea and the gulls that had claimed it."
)


@dataclass
class Written:
    """What a run wrote besides the corpus: the totals (metrics), their breakdown (stats), the run's counters."""

    metrics: dict[str, Any]
    stats: dict[str, Any]
    run: dict[str, Any]

    def contaminated(self) -> dict[str, int]:
        per_source = self.stats["per_source"].items()
        return {sid: n["dropped_contaminated"] for sid, n in per_source if n["dropped_contaminated"]}


class Project:
    """data/collected, data/tasks and a params.yaml in a temporary folder (the working directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.params: dict[str, Any] = {"organize": {}}
        self.args = argparse.Namespace(
            collected=root / "collected",
            tasks=root / "tasks",
            out=root / "corpus",
            metrics=root / "m.json",
            stats=root / "stats.json",
            run_log=root / "run.json",
            plot=root / "sources.svg",
        )

    def source(self, source_id: str, lines: list[str], features=None, tasks=None) -> list[str]:
        """A jsonl source (raw lines) with its collect record and its valid tasks; returns the task ids."""
        folder = self.root / "sources" / source_id
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "train.jsonl").write_text("".join(line + "\n" for line in lines))
        meta = make_meta(
            source_id=source_id,
            location=str(folder),
            features=features or [make_feature("text"), label_feature()],
            splits=[SplitInfo(name="train", num_rows=len(lines), files=["data/train.jsonl"])],
        )
        write_json(self.args.collected / f"{source_id}.json", meta)
        made = []
        for i, (inputs, output) in enumerate(tasks or [(["text"], "label")]):
            instruction = f"Classify the sentiment of the given review, variant {i}."
            made.append(
                make_task(
                    task_id=task_id(source_id, meta.revision, instruction, inputs, output),
                    source_id=source_id,
                    instruction=instruction,
                    input_fields=inputs,
                    output_field=output,
                )
            )
        write_json(
            self.args.tasks / f"{source_id}.json",
            FilteredSource(source_id=source_id, fingerprint="f", tasks=made),
        )
        return [t.task_id for t in made]

    def run(self) -> Written:
        (self.root / "params.yaml").write_text(yaml.safe_dump(self.params))
        organize.main(self.args)
        return self.written()

    def written(self) -> Written:
        return Written(read_json(self.args.metrics), read_json(self.args.stats), read_json(self.args.run_log))

    def shard(self, source_id: str, the_id: str) -> Path:
        return self.args.out / source_id / f"{the_id}.parquet"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


def rows(*pairs: tuple[str, int]) -> list[str]:
    return [json.dumps({"text": text, "label": label}) for text, label in pairs]


GOOD = rows(("good", 1), ("bad", 0), ("good", 1), ("fine", 1))


def test_good_source_gets_its_shard_and_footer_counts(project):
    (the_id,) = project.source("good", GOOD)
    out = project.run()
    shard = project.shard("good", the_id)
    assert pq.read_table(shard).column("input").to_pylist() == ["good", "bad", "fine"]
    assert footer(shard) == shard_digest(shard)
    assert footer_counts(shard) == {k: 0 for k in organize.COUNTS} | {"rows_seen": 4, "dropped_duplicate": 1}
    assert (out.metrics["instances"], out.metrics["rejected"], out.stats["failures"]) == (3, 1, {})
    assert out.stats["corpus"]["dropped_duplicate"] == out.run["dropped_duplicate"] == 1
    # the totals are the corpus's, the counters the run's: a second run organizes nothing, the totals stay
    again = project.run()
    assert again.metrics == out.metrics and again.stats == out.stats
    assert (again.run["rows_seen"], again.run["tasks_reused"]) == (0, 1)


# --- isolation (issue 9 §1, issue 11 item 2) -------------------------------------------------------------


def bad_sources(project: Project) -> dict[str, list[str]]:
    """The three inputs that took the whole stage down, and a good source next to them."""
    big = json.dumps({"text": "word " * 10_500_000, "label": 1})  # a 50 MB cell
    return {
        "good": project.source("good", GOOD),
        "big-cell": project.source("big-cell", [*GOOD, big]),
        "type-change": project.source(
            "type-change", rows(("a", 1), ("b", 0)) + ['{"text": 5, "label": "x"}']
        ),
        "list-struct": project.source(
            "list-struct",
            [json.dumps({"text": f"t{i}", "label": [{"a": i, "b": "x"}]}) for i in range(3)],
            # collect flattens a list of objects into one list per key (dynosaur.pipeline.sources)
            features=[make_feature("text"), make_feature("label.a", "list<int64>"), make_feature("label.b")],
            tasks=[(["text"], "label.a")],
        ),
    }


def test_one_bad_source_fails_alone_and_the_stage_says_so(project, capsys):
    ids = bad_sources(project)
    with pytest.raises(StageFailed, match="organize.allow_failures"):
        project.run()
    out = project.written()
    assert set(out.stats["failures"]) == {"big-cell", "type-change"}
    assert all("\n" not in reason and reason for reason in out.stats["failures"].values())
    assert out.metrics["failed"] == 2
    assert project.shard("good", ids["good"][0]).exists()
    # a list<struct> column is no longer a failure: flattened, each key is a field of its own
    outputs = pq.read_table(project.shard("list-struct", ids["list-struct"][0])).column("output").to_pylist()
    assert sorted(outputs) == ["0", "1", "2"]
    assert not project.shard("big-cell", ids["big-cell"][0]).exists()
    failed_lines = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert len(failed_lines) == 2


def test_allowed_failures_let_the_stage_succeed(project):
    bad_sources(project)
    project.params["organize"]["allow_failures"] = True
    out = project.run()
    assert set(out.stats["failures"]) == {"big-cell", "type-change"}
    assert out.metrics["tasks"] == 2


def test_a_failing_stage_ends_on_one_error_line(project, monkeypatch, capsys):
    bad_sources(project)
    (project.root / "params.yaml").write_text(yaml.safe_dump(project.params))
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(project.args).items()]
    monkeypatch.setattr(sys, "argv", ["organize", *argv])
    with pytest.raises(SystemExit) as exit_:
        run(organize.main, "collected", "tasks", "out", "metrics", "stats", "run-log", "plot")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("Error:")]) == 1
    assert "Traceback" not in err


def test_a_failing_task_fails_alone_and_loses_its_old_shard(project):
    good, missing = project.source("good", GOOD, tasks=[(["text"], "label"), (["text"], "no_such_column")])
    stale = project.shard("good", missing)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old shard of the failing task")
    project.params["organize"]["allow_failures"] = True
    out = project.run()
    assert list(out.stats["failures"]) == [f"good/{missing}"]
    assert out.stats["failures"][f"good/{missing}"].startswith("KeyError")
    assert project.shard("good", good).exists()
    assert not stale.exists()
    assert (out.run["tasks_organized"], out.run["tasks_failed"]) == (1, 1)


def test_a_failed_source_is_tried_again_next_run(project):
    (the_id,) = project.source("flaky", rows(("a", 1)) + ['{"text": 5, "label": "x"}'])
    project.params["organize"]["allow_failures"] = True
    assert project.run().run["tasks_failed"] == 1
    (project.root / "sources" / "flaky" / "data" / "train.jsonl").write_text("\n".join(rows(("a", 1))) + "\n")
    out = project.run()
    assert (out.run["tasks_organized"], out.stats["failures"]) == (1, {})
    assert project.shard("flaky", the_id).exists()


# --- decontamination -------------------------------------------------------------------------------------


def planted(project: Project) -> str:
    """An evaluation file with PASSAGE; a source whose rows share 13, 12 and 0 of its words in a row."""
    (project.root / "eval.jsonl").write_text(json.dumps({"passage": PASSAGE, "answer": "restored"}) + "\n")
    project.params["organize"]["decontaminate"] = {"files": ["eval.jsonl"]}
    words = PASSAGE.split()
    (the_id,) = project.source(
        "reviews",
        rows(
            ("I read that " + " ".join(words[3:16]) + " in the paper.", 1),  # 13 words shared
            ("I read that " + " ".join(words[3:15]) + " in the paper.", 1),  # 12 words shared
            ("Nothing in common here at all.", 0),
        ),
    )
    return the_id


def test_an_instance_sharing_13_words_with_an_eval_set_is_removed(project):
    the_id = planted(project)
    out = project.run()
    shard = project.shard("reviews", the_id)
    assert pq.read_table(shard).column("row").to_pylist() == [1, 2]
    assert footer_counts(shard)["dropped_contaminated"] == 1
    assert out.run["dropped_contaminated"] == out.stats["corpus"]["dropped_contaminated"] == 1
    assert out.contaminated() == {"reviews": 1}


def test_contamination_counts_survive_reuse_and_follow_the_eval_set(project):
    the_id = planted(project)
    project.run()
    again = project.run()
    assert (again.run["tasks_reused"], again.contaminated()) == (1, {"reviews": 1})
    (project.root / "eval.jsonl").write_text(json.dumps({"passage": "something else entirely"}) + "\n")
    changed = project.run()
    assert (changed.run["tasks_organized"], changed.contaminated()) == (1, {})
    assert pq.read_table(project.shard("reviews", the_id)).num_rows == 3


def test_superni_dir_is_an_eval_set(project):
    # task001's instance "The blender is loud but crushes ice well." → positive, whole (shorter than 13 words)
    (the_id,) = project.source(
        "reviews", rows(("The blender is loud but crushes ice well.", 1), ("Loud blender.", 1))
    )
    project.params["evaluate"] = {"superni_dir": str(SUPERNI)}
    out = project.run()
    assert pq.read_table(project.shard("reviews", the_id)).column("input").to_pylist() == ["Loud blender."]
    assert out.contaminated() == {"reviews": 1}
    project.params["organize"]["decontaminate"] = {"superni": False}
    assert project.run().contaminated() == {}


def test_a_missing_eval_file_stops_the_stage_before_anything_is_written(project):
    project.source("good", GOOD)
    project.params["organize"]["decontaminate"] = {"files": ["missing.jsonl"]}
    with pytest.raises(ParamsError, match="missing.jsonl"):
        project.run()
    assert not project.args.out.exists()


def test_ids_do_not_depend_on_what_was_dropped(project):
    (the_id,) = project.source("good", GOOD)
    project.run()
    table = pq.read_table(project.shard("good", the_id))
    assert table.column("instance_id").to_pylist() == [instance_id(the_id, "train", r) for r in (0, 1, 3)]


def test_the_sources_chart_shows_the_largest_sources_and_one_row_for_the_rest():
    from dynosaur.pipeline.organize_corpus import sources_chart

    shards = {f"s{i:02d}": {"t": {"instances": i}} for i in range(35)}
    svg = sources_chart(shards, top=30)
    assert "5 other sources" in svg and "the 30 largest" in svg
    assert ">s34<" in svg and ">s05<" in svg and ">s04<" not in svg  # s00..s04 are the smallest
    assert ">10<" in svg  # 0 + 1 + 2 + 3 + 4 instances in the rest
    small = sources_chart({"a": {"t": {"instances": 3}}})
    assert "other sources" not in small and "largest" not in small


# --- the corpus holds only what organize wrote (issue 21 F1, F8) -----------------------------------------


def test_stray_files_and_killed_run_leftovers_are_removed_in_one_line(project, capsys):
    (the_id,) = project.source("good", GOOD)
    project.run()
    corpus = project.args.out
    strays = [
        corpus / ".DS_Store",
        corpus / "good" / ".DS_Store",
        corpus / "good" / f".{the_id}.parquet.swp",
        corpus / "good" / ".tmp" / f"{the_id}.parquet",  # a SIGKILL during organize_source left these
        corpus / "good" / f".{the_id}.parquet.x1y2.tmp",
        corpus / "gone-source" / "notes.txt",
    ]
    for path in strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a shard")
    capsys.readouterr()
    project.run()
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*"))
    assert files == ["good", f"good/{the_id}.parquet"]
    lines = [line for line in capsys.readouterr().err.splitlines() if "did not write" in line]
    assert len(lines) == 1 and "6 file(s)" in lines[0] and "good/.DS_Store" in lines[0], lines
    # a shard DVC checked out as a link (cache.type: symlink) is a shard, not a stray
    shard = corpus / "good" / f"{the_id}.parquet"
    cached = project.root / "cache-object"
    shard.rename(cached)
    shard.symlink_to(cached)
    project.run()
    assert shard.is_symlink() and "did not write" not in capsys.readouterr().err


def test_a_run_killed_while_writing_leaves_nothing_in_the_corpus(project):
    """Shards are written in a folder outside the corpus and renamed into it: a SIGKILL mid-write leaves the
    corpus as it was, and the next run clears that folder."""
    (the_id,) = project.source("good", GOOD)
    (project.root / "params.yaml").write_text(yaml.safe_dump(project.params))
    args = {k: str(v) for k, v in vars(project.args).items()}
    script = (
        "import argparse, os, signal\n"
        "from pathlib import Path\n"
        "from dynosaur.pipeline import organize\n"
        "organize.DuplicateFilter.__call__ = lambda self, t: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"organize.main(argparse.Namespace(**{{k: Path(v) for k, v in {args!r}.items()}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=project.root, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    corpus = project.args.out
    assert [p for p in corpus.rglob("*") if p.is_file()] == []
    project.run()
    assert sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()) == [
        f"good/{the_id}.parquet"
    ]
    assert not (project.root / ".dyno-cache" / "organize.tmp").exists()


def test_shard_bytes_are_those_of_the_format_before_dynosaur_core_shards(project):
    """The corpus digest must not move: a shard is byte for byte what organize wrote before the shard format
    had one owner (sha256 recorded from that code, with pyarrow 26.0.1; another pyarrow may write other
    bytes, its `created_by` for one)."""
    import hashlib

    import pyarrow

    (the_id,) = project.source("good", GOOD + rows(("x" * 50, 0), ("ça va, 日本", 1)))
    project.run()
    written = hashlib.sha256(project.shard("good", the_id).read_bytes()).hexdigest()
    if pyarrow.__version__ != "26.0.1":
        pytest.skip(f"bytes recorded with pyarrow 26.0.1, not {pyarrow.__version__}")
    assert written == "88690bcd1eeca788da9aef86d7698c6e9be02192b47ce4746b93f59f54e401a3"
