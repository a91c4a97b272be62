"""`dynosaur.core.records`: task and instance ids, digests, and the frozen, strict records."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from pydantic import ValidationError

from dynosaur.core.records import (
    Feature,
    FeatureStats,
    SourceMeta,
    Task,
    TaskSpec,
    digest,
    instance_id,
    instance_ids,
    task_id,
)
from tests.factories import make_meta, make_stats, make_task

TASK_ARGS = ("reviews", "sha256:abc", "Classify the review.", ["text"], "label")

# --- task_id -----------------------------------------------------------------------------------------


def test_task_id_is_stable_and_short_hex():
    assert task_id(*TASK_ARGS) == task_id(*TASK_ARGS)
    assert re.fullmatch(r"[0-9a-f]{16}", task_id(*TASK_ARGS))
    assert task_id(*TASK_ARGS) == "b598634fc9e5e1c8"  # guards the id scheme: changing it renames every task


def test_task_id_is_sha256_of_the_canonical_payload():
    payload = json.dumps(list(TASK_ARGS), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert task_id(*TASK_ARGS) == hashlib.sha256(payload.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "position, value",
    [
        (0, "reviews-2"),
        (1, "sha256:abd"),
        (2, "Classify the review!"),
        (3, ["text", "title"]),
        (3, ["title"]),
        (4, "title"),
    ],
)
def test_task_id_depends_on_each_input(position, value):
    args = list(TASK_ARGS)
    args[position] = value
    assert task_id(*args) != task_id(*TASK_ARGS)


def test_task_id_input_order_matters_and_fields_do_not_run_together():
    assert task_id("s", "r", "i", ["a", "b"], "o") != task_id("s", "r", "i", ["b", "a"], "o")
    assert task_id("s", "r", "i", ["ab"], "o") != task_id("s", "r", "i", ["a", "b"], "o")
    assert task_id("s", "r", "i x", [], "o") != task_id("s", "r", "i", ["x"], "o")


# --- instance ids ------------------------------------------------------------------------------------


def reference_instance_id(task: str, split: str, row: int) -> str:
    """The documented scheme in plain Python: hex(splitmix64(k + row)), k from sha256(task, split)."""
    mask = (1 << 64) - 1
    k = int.from_bytes(hashlib.sha256(f"{task}\x1f{split}".encode()).digest()[:8], "big")
    x = (k + row + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return f"{x ^ (x >> 31):016x}"


def test_instance_id_known_values():
    # computed once; guards the id scheme against accidental change
    assert instance_id("0123456789abcdef", "train", 0) == "b0ae3bf3da3db4e1"
    assert instance_id("0123456789abcdef", "train", 12345) == "1ab4611915227517"


@pytest.mark.parametrize("row", [0, 1, 7, 12345, 2**31, 2**40 + 3])
def test_instance_id_matches_the_documented_scheme(row):
    assert instance_id("0123456789abcdef", "validation", row) == reference_instance_id(
        "0123456789abcdef", "validation", row
    )


def test_vectorised_equals_scalar():
    rows = np.array([0, 1, 2, 99, 1000, 65535, 10**9], dtype=np.int64)
    ids = instance_ids("fedcba9876543210", "train", rows)
    assert [i.decode() for i in ids] == [instance_id("fedcba9876543210", "train", int(r)) for r in rows]


def test_instance_ids_distinct_for_100k_rows():
    ids = instance_ids("fedcba9876543210", "train", np.arange(100_000))
    assert len(ids) == 100_000
    assert len(np.unique(ids)) == 100_000
    assert all(re.fullmatch(rb"[0-9a-f]{16}", i) for i in ids[:1000])


def test_instance_id_depends_on_task_split_and_row():
    base = instance_id("fedcba9876543210", "train", 5)
    assert instance_id("fedcba9876543211", "train", 5) != base
    assert instance_id("fedcba9876543210", "validation", 5) != base
    assert instance_id("fedcba9876543210", "train", 6) != base


def test_instance_ids_of_empty_rows():
    assert len(instance_ids("fedcba9876543210", "train", np.array([], dtype=np.int64))) == 0


# --- digest ------------------------------------------------------------------------------------------


def test_digest_format():
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest({"a": 1}))


def test_digest_is_key_order_independent():
    assert digest({"b": 1, "a": [1, "é"]}) == digest({"a": [1, "é"], "b": 1})
    assert (
        digest({"b": 1, "a": [1, "é"]})
        == "sha256:8717ac25ea6b88548fae92fcf938c6f0764f85913ba025812e1859bf0166f5d8"
    )


def test_digest_sees_list_order_and_values():
    assert digest([1, 2]) != digest([2, 1])
    assert digest({"a": 1}) != digest({"a": "1"})


def test_digest_of_a_model_is_the_digest_of_its_dump():
    meta = make_meta()
    assert digest(meta) == digest(meta.model_dump(mode="json"))
    assert meta.fingerprint == digest(meta)
    assert make_meta(description="other").fingerprint != meta.fingerprint


# --- records -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, field, value",
    [
        (make_task(), "verdict", "rejected"),
        (make_meta(), "revision", "sha256:changed"),
        (make_stats(), "empty", 3),
        (Feature(name="text", dtype="string"), "dtype", "int64"),
    ],
)
def test_records_are_frozen(record, field, value):
    with pytest.raises(ValidationError):
        setattr(record, field, value)


@pytest.mark.parametrize(
    "model, data",
    [
        (Task, {**make_task().model_dump(), "surprise": 1}),
        (SourceMeta, {**make_meta().model_dump(), "surprise": 1}),
        (FeatureStats, {**make_stats().model_dump(), "surprise": 1}),
        (Feature, {"name": "text", "dtype": "string", "surprise": 1}),
    ],
)
def test_records_forbid_extra_keys(model, data):
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_task_spec_is_lenient_about_extra_keys():
    spec = TaskSpec.model_validate(
        {"instruction": "x", "input_fields": ["a"], "output_field": "b", "why": "?"}
    )
    assert spec.output_field == "b"


def test_records_round_trip_through_json():
    meta = make_meta()
    assert SourceMeta.model_validate_json(meta.model_dump_json()) == meta
    task = make_task(label_options=["a", "b"])
    assert Task.model_validate_json(task.model_dump_json()) == task


def test_final_instruction():
    assert make_task(instruction="Pick one. ", label_options=["x", "y"]).final_instruction == (
        "Pick one. Answer with one of: x, y."
    )
    assert make_task(instruction="Pick one.", label_options=None).final_instruction == "Pick one."
    assert make_task(instruction="Pick one.", label_options=[]).final_instruction == "Pick one."


@pytest.mark.parametrize("md5", ["xx/etc/hostname", "../" + "a" * 30, "A" * 32, "a" * 31, "a" * 32 + ".dir"])
def test_a_manifest_entry_cannot_name_a_path_outside_the_dvc_cache(md5: str):
    from pydantic import ValidationError

    from tests.factories import make_entry

    with pytest.raises(ValidationError):
        make_entry(shard_md5=md5)
