"""`dynosaur.registry.diff`: task and instance changes between two manifests, and the changelog lines."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynosaur.registry.diff import (
    InstanceDelta,
    SourceDiff,
    TaskChange,
    changelog,
    diff_manifests,
    instance_delta,
)
from tests.factories import make_entry, make_retraction

T1, T2, T3, T4, T5 = (c * 16 for c in "12345")


def diff(a, b, retractions=()):
    return diff_manifests("v1", a, "v2", b, retractions)


def changes(report) -> dict[str, TaskChange]:
    return {c.task_id: c for c in report.tasks}


# --- tasks -------------------------------------------------------------------------------------------


def test_identical_manifests_have_no_changes():
    entries = [make_entry(T1), make_entry(T2, source_id="news")]
    report = diff(entries, list(reversed(entries)))
    assert (report.a, report.b) == ("v1", "v2")
    assert report.tasks == [] and report.sources == []
    assert report.totals.model_dump() == dict(
        tasks_before=2,
        tasks_after=2,
        instances_before=20,
        instances_after=20,
        tasks_added=0,
        tasks_removed=0,
        tasks_retracted=0,
        tasks_changed=0,
        instances_added=0,
        instances_removed=0,
    )


def test_added_removed_and_changed_by_id():
    a = [make_entry(T1), make_entry(T2, instances=7), make_entry(T3)]
    b = [
        make_entry(T1),
        make_entry(T3, instances=12, digest="sha256:" + "f" * 64),
        make_entry(T4, instances=5),
    ]
    report = diff(a, b)
    assert report.tasks == [  # sorted by (source, change, task)
        TaskChange(task_id=T4, source_id="reviews", change="added", instances_after=5, instances_added=5),
        TaskChange(
            task_id=T3,
            source_id="reviews",
            change="changed",
            previous_task_id=T3,
            instances_before=10,
            instances_after=12,
            instances_added=2,  # no churn given: the net change
        ),
        TaskChange(
            task_id=T2, source_id="reviews", change="removed", instances_before=7, instances_removed=7
        ),
    ]
    assert not report.churn_from_ids
    assert T1 not in changes(report)


def test_same_digest_is_unchanged_even_if_other_fields_differ():
    report = diff([make_entry(T1)], [make_entry(T1, shard_md5="0" * 32)])
    assert report.tasks == []


def test_a_new_revision_of_a_task_is_changed_not_removed_and_added():
    a = [make_entry(T1, identity="same", source_revision="rev1", instances=10)]
    b = [make_entry(T2, identity="same", source_revision="rev2", instances=8)]
    report = diff(a, b)
    assert report.tasks == [
        TaskChange(
            task_id=T2,
            source_id="reviews",
            change="changed",
            previous_task_id=T1,
            instances_before=10,
            instances_after=8,
            instances_removed=2,
        )
    ]
    [source] = report.sources
    assert (source.revision_before, source.revision_after) == ("rev1", "rev2")
    assert (source.tasks_changed, source.tasks_added, source.tasks_removed) == (1, 0, 0)
    assert (source.instances_added, source.instances_removed) == (0, 2)


def test_identity_matches_pair_one_to_one():
    a = [make_entry(T1, identity="same"), make_entry(T2, identity="same")]
    b = [make_entry(T3, identity="same")]
    report = diff(a, b)
    assert {(c.task_id, c.change, c.previous_task_id) for c in report.tasks} == {
        (T3, "changed", T1),
        (T2, "removed", None),
    }


def test_identity_of_a_task_still_present_does_not_pair():
    a = [make_entry(T1, identity="same")]
    b = [make_entry(T1, identity="same"), make_entry(T2, identity="same")]
    assert [(c.task_id, c.change) for c in diff(a, b).tasks] == [(T2, "added")]


@pytest.mark.parametrize(
    "tombstone",
    [
        dict(kind="task", target=T2),
        dict(kind="task", target="other-task-id", identity="id-T2"),
        dict(kind="source", target="news"),
    ],
    ids=["by-task-id", "by-identity", "by-source"],
)
def test_a_task_gone_under_a_tombstone_is_retracted_with_the_reason(tombstone):
    a = [make_entry(T1), make_entry(T2, source_id="news", identity="id-T2", instances=4)]
    b = [make_entry(T1)]
    report = diff(a, b, [make_retraction(reason="toxic outputs", **tombstone)])
    assert report.tasks == [
        TaskChange(
            task_id=T2,
            source_id="news",
            change="retracted",
            instances_before=4,
            instances_removed=4,
            reason="toxic outputs",
        )
    ]
    assert report.totals.tasks_retracted == 1 and report.totals.tasks_removed == 0
    [news] = report.sources
    assert (news.source_id, news.tasks_retracted, news.instances_removed) == ("news", 1, 4)


@pytest.mark.parametrize(
    "tombstone",
    [
        dict(kind="task", target=T3),  # another task
        dict(kind="source", target="reviews"),  # another source
        dict(kind="source", target=T2),  # a source tombstone never names a task
        dict(kind="task", target="news"),  # a task tombstone never names a source
    ],
)
def test_a_task_gone_without_its_tombstone_is_removed(tombstone):
    a = [make_entry(T2, source_id="news")]
    report = diff(a, [], [make_retraction(**tombstone)])
    assert [(c.change, c.reason) for c in report.tasks] == [("removed", None)]


def test_a_tombstone_does_not_touch_tasks_still_present():
    a = [make_entry(T1)]
    report = diff(a, [make_entry(T1)], [make_retraction(kind="task", target=T1)])
    assert report.tasks == []


# --- sources and totals ------------------------------------------------------------------------------


def test_per_source_counts_and_instance_totals_are_exact():
    a = [
        make_entry(T1, instances=10),  # unchanged
        make_entry(T2, instances=7),  # removed
        make_entry(T3, instances=10),  # changed: 10 → 12
        make_entry(T5, source_id="news", instances=20, identity="n"),  # changed by identity: 20 → 15
    ]
    b = [
        make_entry(T1, instances=10),
        make_entry(T3, instances=12, digest="sha256:" + "f" * 64),
        make_entry(T4, instances=5),  # added
        make_entry("6" * 16, source_id="news", instances=15, identity="n", source_revision="rev2"),
    ]
    report = diff_manifests("v1", a, "v2", b, churn={T3: (36, 34)})  # news: no ids, the net change
    assert report.sources == [
        SourceDiff(
            source_id="news",
            tasks_changed=1,
            instances_removed=5,
            license_before="mit",
            license_after="mit",
            revision_before="rev1",
            revision_after="rev2",
        ),
        SourceDiff(
            source_id="reviews",
            tasks_added=1,
            tasks_removed=1,
            tasks_changed=1,
            instances_added=5 + 36,
            instances_removed=7 + 34,
            license_before="mit",
            license_after="mit",
            revision_before="rev1",
            revision_after="rev1",
        ),
    ]
    assert report.totals.model_dump() == dict(
        tasks_before=4,
        tasks_after=4,
        instances_before=47,
        instances_after=42,
        tasks_added=1,
        tasks_removed=1,
        tasks_retracted=0,
        tasks_changed=2,
        instances_added=41,
        instances_removed=46,
    )
    assert not report.churn_from_ids  # news's changed task had no ids
    net = sum(s.instances_added - s.instances_removed for s in report.sources)
    assert net == report.totals.instances_after - report.totals.instances_before


def test_a_new_and_a_dropped_source():
    report = diff(
        [make_entry(T1, source_id="old", license="mit")], [make_entry(T2, source_id="new", license="gpl")]
    )
    new, old = report.sources
    assert (new.source_id, new.tasks_added, new.instances_added, new.license_before, new.license_after) == (
        "new",
        1,
        10,
        None,
        "gpl",
    )
    assert (
        old.source_id,
        old.tasks_removed,
        old.instances_removed,
        old.license_before,
        old.license_after,
    ) == ("old", 1, 10, "mit", None)
    assert not new.license_changed and not old.license_changed  # appearing or going is not a licence change


def test_a_licence_change_is_detected_without_task_changes():
    report = diff([make_entry(T1, license="mit")], [make_entry(T1, license="apache-2.0")])
    assert report.tasks == []
    [source] = report.sources
    assert (source.license_before, source.license_after, source.license_changed) == (
        "mit",
        "apache-2.0",
        True,
    )


def test_unchanged_sources_are_left_out():
    a = [make_entry(T1), make_entry(T2, source_id="news")]
    b = [make_entry(T1), make_entry(T2, source_id="news", instances=11, digest="sha256:" + "e" * 64)]
    assert [s.source_id for s in diff(a, b).sources] == ["news"]


# --- changelog ---------------------------------------------------------------------------------------


def test_changelog_lines():
    a = [
        make_entry(T1, instances=1000),
        make_entry(T2, instances=7),
        make_entry(T3, source_id="news", identity="n", source_revision="sha256:" + "a" * 64, license="mit"),
        make_entry(T4, source_id="blogs", instances=3),
        make_entry(T5, source_id="blogs", instances=4),
    ]
    b = [
        make_entry("6" * 16, instances=2500, identity=f"id-{T1}", source_revision="rev1"),
        make_entry("7" * 16, instances=1),
        make_entry(
            "8" * 16,
            source_id="news",
            identity="n",
            source_revision="sha256:" + "b" * 64,
            license="cc-by-4.0",
            instances=4,
        ),
    ]
    report = diff(a, b, [make_retraction(kind="task", target=T2, reason="toxic outputs")])
    lines = changelog(report, {"blogs": "license_denied: gpl-3.0"})
    assert lines == [
        "blogs: 2 tasks removed, -7 instances (license_denied: gpl-3.0)",
        "news: 1 task changed, -6 instances, revision aaaaaaaaaaaa → bbbbbbbbbbbb, licence mit → cc-by-4.0",
        "reviews: 1 task added, 1 task changed, 1 task retracted, +1,494 instances (toxic outputs)",
    ]


def test_changelog_of_no_change_is_empty():
    assert changelog(diff([make_entry(T1)], [make_entry(T1)]), {"other": "license_unknown"}) == []


# --- instance_delta ----------------------------------------------------------------------------------


def write_ids(path: Path, ids: list[str]) -> Path:
    pq.write_table(pa.table({"instance_id": ids, "output": ["x"] * len(ids)}), path)
    return path


def test_instance_delta_lists_added_and_removed_ids(tmp_path):
    old = write_ids(tmp_path / "old.parquet", ["c", "a", "b", "z"])
    new = write_ids(tmp_path / "new.parquet", ["e", "b", "c", "d", "z"])
    assert instance_delta(old, new) == InstanceDelta(added=["d", "e"], removed=["a"])
    assert instance_delta(new, old) == InstanceDelta(added=["a"], removed=["d", "e"])
    assert instance_delta(old, old) == InstanceDelta(added=[], removed=[])


def test_instance_delta_with_a_missing_side(tmp_path):
    shard = write_ids(tmp_path / "s.parquet", ["b", "a"])
    assert instance_delta(None, shard) == InstanceDelta(added=["a", "b"], removed=[])
    assert instance_delta(shard, None) == InstanceDelta(added=[], removed=["a", "b"])


def test_churn_shows_every_instance_of_a_task_that_changed_all_of_them():
    """The case of issue 10: 36 added, 32 removed is +36 −32, not a net +4 (or −0)."""
    a = [make_entry(T1, instances=32)]
    b = [make_entry(T1, instances=36, digest="sha256:" + "f" * 64)]
    report = diff_manifests("v1", a, "v2", b, churn={T1: (36, 32)})
    [task] = report.tasks
    assert (task.instances_added, task.instances_removed) == (36, 32)
    [source] = report.sources
    assert (source.instances_added, source.instances_removed) == (36, 32)
    assert (report.totals.instances_added, report.totals.instances_removed) == (36, 32)
    assert report.churn_from_ids
