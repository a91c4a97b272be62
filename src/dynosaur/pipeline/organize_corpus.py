"""The corpus folder as a whole, for organize: its shards' summaries, totals, stats and chart, and removing
what no live task owns.

A shard's summary is its instance count and footer counts (dynosaur.core.shards); the stage keeps them in its
stat cache, so these sum the corpus without opening unchanged shards.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from dynosaur.core.charts import bar_chart
from dynosaur.core.shards import SUFFIX, footer_counts
from dynosaur.core.shards import instances as shard_instances
from dynosaur.pipeline.organize_instances import COUNTS


def shard_summary(path: Path) -> dict[str, int]:
    """One shard's instances and its footer counts (rows seen, dropped per reason)."""
    return {"instances": shard_instances(path), **footer_counts(path)}


def corpus_totals(shards: dict[str, dict[str, dict[str, int]]]) -> dict[str, int]:
    """The corpus as it stands (every shard, rebuilt this run or not): tasks, instances, rows rejected."""
    summaries = [s for tasks in shards.values() for s in tasks.values()]
    return {
        "tasks": len(summaries),
        "instances": sum(s["instances"] for s in summaries),
        "rows_rejected": sum(v for s in summaries for k, v in s.items() if k.startswith("dropped_")),
    }


def corpus_stats(shards: dict[str, dict[str, dict[str, int]]], failures: dict[str, str]) -> dict:
    """The breakdown behind the metrics: per source, and the corpus's rows per count (`COUNTS`)."""
    per_source = {}
    for source_id, tasks in sorted(shards.items()):
        counts: Counter = Counter({k: 0 for k in COUNTS})
        for summary in tasks.values():
            counts.update({k: v for k, v in summary.items() if k in COUNTS})
        per_source[source_id] = {
            "tasks": len(tasks),
            "instances": sum(s["instances"] for s in tasks.values()),
            **dict(sorted(counts.items())),
        }
    corpus: Counter = Counter({k: 0 for k in COUNTS})
    for numbers in per_source.values():
        corpus.update({k: numbers[k] for k in COUNTS})
    return {
        "corpus": dict(sorted(corpus.items())),
        "failures": dict(sorted(failures.items())),
        "per_source": per_source,
    }


CHART_SOURCES = 30  # a chart of thousands of sources is unreadable (and a large file in git)


def sources_chart(shards: dict[str, dict[str, dict[str, int]]], top: int = CHART_SOURCES) -> str:
    """Instances and valid tasks per source: the `top` largest by instances, the rest as one row."""
    instances = {n: sum(s["instances"] for s in tasks.values()) for n, tasks in shards.items()}
    names = sorted(shards, key=lambda n: (-instances[n], n))
    shown, rest = sorted(names[:top]), names[top:]
    labels = [*shown, *([f"{len(rest):,} other sources"] if rest else [])]
    return bar_chart(
        "The corpus per source" + (f" (the {top} largest)" if rest else ""),
        labels,
        {
            "instances": [instances[n] for n in shown] + ([sum(instances[n] for n in rest)] if rest else []),
            "valid tasks": [len(shards[n]) for n in shown]
            + ([sum(len(shards[n]) for n in rest)] if rest else []),
        },
    )


def remove_stale(out: Path, live: dict[str, set[str]]) -> tuple[int, list[str]]:
    """Leave in `out` only the shards of live tasks, `<source_id>/<task_id>.parquet`. Returns how many shards
    of tasks or sources that are gone were removed, and the other files removed, which organize never writes
    (an editor's or a file browser's files, a killed run's leftovers), as paths under `out`."""
    removed, strays = 0, []
    for path in sorted(out.iterdir()):
        if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
            tasks = live.get(path.name)
            for inner in sorted(path.iterdir()):
                if inner.is_file() and inner.suffix == SUFFIX:  # (a link, with DVC's link cache types)
                    if tasks is not None and inner.stem in tasks:
                        continue
                    if not inner.name.startswith("."):
                        removed += 1
                        inner.unlink()
                        continue
                strays += _remove(inner, out)
            if tasks is None:
                path.rmdir()
            continue
        strays += _remove(path, out)
    return removed, strays


def _remove(path: Path, out: Path) -> list[str]:
    """Remove a file, link or folder under `out`; the files it held, as paths under `out`."""
    if path.is_dir() and not path.is_symlink():
        files = [p.relative_to(out).as_posix() for p in sorted(path.rglob("*")) if not p.is_dir()]
        shutil.rmtree(path)
        return files or [path.relative_to(out).as_posix() + "/"]
    path.unlink()
    return [path.relative_to(out).as_posix()]
