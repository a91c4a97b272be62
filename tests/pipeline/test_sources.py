"""`dynosaur.pipeline.sources`: a local source's content revision and the field statistics behind the filter."""

from __future__ import annotations

import re

import pytest

from dynosaur.pipeline.source_features import feature_stats
from dynosaur.pipeline.sources import TEST_SPLIT, local_revision


def make_source(root):
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text("---\nlicense: mit\n---\n# Reviews\n")
    (root / "data" / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    return root


# --- local_revision ----------------------------------------------------------------------------------


def test_revision_is_stable(tmp_path):
    source = make_source(tmp_path / "src")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", local_revision(source))
    assert local_revision(source) == local_revision(source)


def test_revision_does_not_depend_on_the_folder_location(tmp_path):
    assert local_revision(make_source(tmp_path / "a")) == local_revision(make_source(tmp_path / "b" / "c"))


def test_revision_changes_with_content(tmp_path):
    source = make_source(tmp_path / "src")
    before = local_revision(source)
    (source / "data" / "train.csv").write_text("text,label\ngood,1\nbad,1\n")
    assert local_revision(source) != before


def test_revision_changes_with_a_new_file(tmp_path):
    source = make_source(tmp_path / "src")
    before = local_revision(source)
    (source / "data" / "validation.csv").write_text("text,label\nok,1\n")
    assert local_revision(source) != before


def test_revision_changes_with_a_rename(tmp_path):
    source = make_source(tmp_path / "src")
    before = local_revision(source)
    (source / "data" / "train.csv").rename(source / "data" / "training.csv")
    assert local_revision(source) != before


def test_revision_ignores_hidden_files_and_folders(tmp_path):
    source = make_source(tmp_path / "src")
    before = local_revision(source)
    (source / ".DS_Store").write_bytes(b"\0\1")
    (source / "data" / ".train.csv.swp").write_text("x")
    (source / ".cache").mkdir()
    (source / ".cache" / "anything.arrow").write_text("x")
    (source / "empty-dir").mkdir()
    assert local_revision(source) == before


def test_revision_of_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert local_revision(tmp_path / "empty") != local_revision(make_source(tmp_path / "src"))


# --- feature_stats -----------------------------------------------------------------------------------


def test_row_tokens_are_id_like():
    stats = feature_stats([f"row_{i}" for i in range(1, 51)])
    assert stats.id_like is True
    assert (stats.scanned, stats.empty, stats.distinct) == (50, 0, 50)
    assert stats.top_share == pytest.approx(1 / 50)


@pytest.mark.parametrize(
    "values",
    [
        ["abc123", "def456", "https://example.com/x/1"],
        ["owner/repo", "other/name"],
    ],
)
def test_id_like_tokens(values):
    assert feature_stats(values).id_like is True


@pytest.mark.parametrize(
    "values",
    [
        ["apple", "banana", "cherry"],  # words: no digit, no slash
        ["row_1", "row_1", "row_2"],  # repeated
        ["row 1", "row 2"],  # spaces
        ["row_1"],  # a single value says nothing
        [],
        ["x" * 81 + "1", "y" * 81 + "2"],  # too long for a token
        ["positive", "negative", "positive"],
    ],
)
def test_not_id_like(values):
    assert feature_stats(values).id_like is False


def test_top_share_and_distinct_count_non_empty_values_only():
    stats = feature_stats(["pos", "pos", "pos", "neg", "", None, "  "])
    assert (stats.scanned, stats.empty, stats.distinct) == (7, 3, 2)
    assert stats.top_share == pytest.approx(0.75)
    assert stats.mean_chars == pytest.approx(3.0)


def test_all_empty():
    stats = feature_stats([None, "", " "])
    assert (stats.scanned, stats.empty, stats.distinct, stats.top_share, stats.mean_chars) == (
        3,
        3,
        0,
        0.0,
        0.0,
    )
    assert stats.id_like is False


def test_whole_floats_count_as_their_integer():
    stats = feature_stats([1.0, 1, "1", 2.5])
    assert stats.distinct == 2
    assert stats.top_share == pytest.approx(0.75)


def test_top_share_of_a_dominant_label():
    stats = feature_stats([0] * 99 + [1])
    assert stats.top_share == pytest.approx(0.99)
    assert stats.distinct == 2
    assert stats.id_like is False


@pytest.mark.parametrize(
    "name, is_test",
    [
        ("test", True),
        ("TEST", True),
        ("test_matched", True),
        ("validation-test", True),
        ("train", False),
        ("validation", False),
        ("latest", False),
        ("contest_data", False),
        ("testing", False),
    ],
)
def test_test_split_names(name, is_test):
    assert bool(TEST_SPLIT.search(name)) is is_test


# --- flattening nested fields ------------------------------------------------------------------------


def test_flatten_table_keeps_nulls_and_slices():
    import pyarrow as pa

    from dynosaur.pipeline.source_features import flatten_table

    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "answers": [
                {"text": ["x"], "start": [0]},
                None,
                {"text": [], "start": []},
                {"text": ["y", "z"], "start": [1, 2]},
            ],
            "turns": [
                [{"who": "u", "say": "hi"}],
                None,
                [],
                [{"who": "b", "say": None}, {"who": "u", "say": "ok"}],
            ],
        }
    ).slice(1)
    flat = flatten_table(table)
    assert flat.column_names == ["id", "answers.text", "answers.start", "turns.who", "turns.say"]
    assert flat.to_pylist() == [
        {"id": "b", "answers.text": None, "answers.start": None, "turns.who": None, "turns.say": None},
        {"id": "c", "answers.text": [], "answers.start": [], "turns.who": [], "turns.say": []},
        {
            "id": "d",
            "answers.text": ["y", "z"],
            "answers.start": [1, 2],
            "turns.who": ["b", "u"],
            "turns.say": [None, "ok"],
        },
    ]


def test_flat_features_names_match_flatten_table():
    import datasets
    import pyarrow as pa

    from dynosaur.pipeline.source_features import flat_features, flatten_table

    features = datasets.Features(
        {
            "answers": datasets.Sequence(
                {"text": datasets.Value("string"), "start": datasets.Value("int32")}
            ),
            "turns": datasets.List({"who": datasets.ClassLabel(names=["user", "bot"])}),
            "meta": {"source": {"url": datasets.Value("large_string")}},
        }
    )
    assert flat_features(features) == [
        ("answers.text", "list<string>", None),
        ("answers.start", "list<int32>", None),
        ("turns.who", "list<class_label>", ["user", "bot"]),
        ("meta.source.url", "string", None),
    ]
    empty = pa.Table.from_pylist([], schema=features.arrow_schema)
    assert flatten_table(empty).column_names == [name for name, _, _ in flat_features(features)]
