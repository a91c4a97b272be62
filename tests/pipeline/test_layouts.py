"""Real-world source layouts go through collect (`collect_source`) and organize's row reading
(`iter_batches`, `organize_source`), or are recorded as one failed source with a one-line reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dynosaur.core.errors import SourceError, StageFailed
from dynosaur.core.params import CollectParams, OrganizeParams, SourceSpec, parse_params
from dynosaur.core.records import SourceMeta
from dynosaur.core.segments import RecordFolder
from dynosaur.pipeline import collect
from dynosaur.pipeline.organize import organize_source
from dynosaur.pipeline.sources import collect_source, iter_batches, local_revision
from tests.factories import make_task
from tests.fixtures import layouts

PARAMS = CollectParams(stats_rows=10, sample_rows=2)


def spec_for(root: Path, folder: Path, config: str | None = None, **kw: Any) -> SourceSpec:
    return SourceSpec(
        id=folder.name + (f"-{config}" if config else ""),
        path=folder.relative_to(root).as_posix(),
        config=config,
        **kw,
    )


def collected(root: Path, folder: Path, config: str | None = None) -> SourceMeta:
    return collect_source(spec_for(root, folder, config), PARAMS, local_revision(folder), root)


def rows(meta: SourceMeta, split: str, root: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for table in iter_batches(meta, split, 2, root):
        out.extend(table.to_pylist())
    return out


def organized(
    meta: SourceMeta, inputs: list[str], output: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The instances organize writes for one hand-made task (organize reads sources relative to the cwd)."""
    monkeypatch.chdir(root)
    task = make_task(source_id=meta.source_id, input_fields=inputs, output_field=output)
    out = root / "organized" / meta.source_id
    organize_source(meta, [task], out, OrganizeParams(batch_rows=2))
    return pq.read_table(out / f"{task.task_id}.parquet").to_pylist()


def names(meta: SourceMeta) -> dict[str, str]:
    return {f.name: f.dtype for f in meta.features}


def split_sizes(meta: SourceMeta) -> dict[str, int]:
    return {s.name: s.num_rows for s in meta.splits}


# --- no card, card without configs (NamedSplit keys) ---------------------------------------------------


def test_no_card(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.no_card(tmp_path))
    assert meta.status == "ok", meta.reason
    assert split_sizes(meta) == {"train": 4}  # test.csv is found, and left out
    assert all(type(s.name) is str for s in meta.splits)
    assert meta.splits[0].files == ["train.csv"]
    assert names(meta) == {"text": "string", "label": "int64"}
    assert meta.description == "" and meta.license is None
    instances = organized(meta, ["text"], "label", tmp_path, monkeypatch)
    assert [i["output"] for i in instances] == ["1", "0", "1", "0"]
    assert instances[0]["input"] == layouts.REVIEWS[0][0]


def test_collect_keeps_the_cards_languages_for_publish(tmp_path):
    """Publish lists the sources' languages on the corpus card from what collect read here (issue 23 §7)."""
    assert collected(tmp_path, layouts.no_card(tmp_path)).languages == []
    folder = layouts.no_card(tmp_path / "with-card")
    (folder / "README.md").write_text("---\nlanguage:\n- fr\n- en\n- ' '\n- en\n---\n\nReviews.\n")
    assert collected(tmp_path, folder).languages == ["en", "fr"]
    (folder / "README.md").write_text("---\nlanguage: de\n---\n")
    assert collected(tmp_path, folder).languages == ["de"]


def test_card_without_configs_and_nested_answers(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.card_without_configs(tmp_path))
    assert meta.status == "ok", meta.reason
    assert (meta.license, meta.pretty_name) == ("cc-by-4.0", "Tiny SQuAD")
    assert split_sizes(meta) == {"train": 3, "validation": 1}
    assert [s.files for s in meta.splits] == [["data/train.jsonl"], ["data/validation.jsonl"]]
    feats = names(meta)
    assert "answers" not in feats
    assert feats["answers.text"] == "list<string>"
    assert feats["answers.answer_start"] == "list<int64>"
    answers = meta.feature("answers.text")
    assert answers is not None and answers.stats is not None and answers.stats.scanned == 4
    assert all("answers.text" in s and "answers" not in s for s in meta.samples)

    assert [r["answers.text"] for r in rows(meta, "train", tmp_path)] == [
        ["The Normans"],
        ["O"],
        ["South America"],
    ]
    instances = organized(meta, ["context", "question"], "answers.text", tmp_path, monkeypatch)
    assert [i["output"] for i in instances] == ["The Normans", "O", "South America", "light energy"]
    assert [i["split"] for i in instances] == ["train"] * 3 + ["validation"]


# --- several configs ---------------------------------------------------------------------------------


def test_each_config_of_a_card_is_its_own_source(tmp_path, monkeypatch):
    folder = layouts.multi_config(tmp_path)
    sst2 = collected(tmp_path, folder, "sst2")
    qa = collected(tmp_path, folder, "qa")
    assert (sst2.status, qa.status) == ("ok", "ok")
    assert (sst2.config, qa.config) == ("sst2", "qa")
    assert split_sizes(sst2) == {"train": 3, "validation": 1}
    assert split_sizes(qa) == {"train": 4}
    assert set(names(sst2)) == {"sentence", "label"}
    assert set(names(qa)) == {"question", "answer"}

    assert [i["output"] for i in organized(sst2, ["sentence"], "label", tmp_path, monkeypatch)] == [
        "1",
        "0",
        "1",
        "0",
    ]
    assert [i["output"] for i in organized(qa, ["question"], "answer", tmp_path, monkeypatch)][
        0
    ] == "The Normans"


@pytest.mark.parametrize("config", [None, "nope"])
def test_a_card_config_must_be_named_and_exist(tmp_path, config):
    with pytest.raises(SourceError) as err:
        collected(tmp_path, layouts.multi_config(tmp_path), config)
    assert "qa" in str(err.value) and "sst2" in str(err.value)
    assert "\n" not in str(err.value)


# --- the parquet export: <config>/<split>/0000.parquet ------------------------------------------------


def test_parquet_export_config_with_nested_answers(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.parquet_export(tmp_path), "plain_text")
    assert meta.status == "ok", meta.reason
    assert meta.config == "plain_text"
    assert split_sizes(meta) == {"train": 3, "validation": 1}  # the `ner` config's rows are not mixed in
    assert [s.files for s in meta.splits] == [
        ["plain_text/train/0000.parquet"],
        ["plain_text/validation/0000.parquet"],
    ]
    feats = names(meta)
    assert (feats["answers.text"], feats["answers.answer_start"]) == ("list<string>", "list<int32>")
    instances = organized(meta, ["question"], "answers.text", tmp_path, monkeypatch)
    assert [i["output"] for i in instances] == ["The Normans", "O", "South America", "light energy"]


def test_parquet_export_sequence_and_class_label(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.parquet_export(tmp_path), "ner")
    assert meta.status == "ok", meta.reason
    assert split_sizes(meta) == {"train": 3}
    tags, domain, tokens = meta.feature("ner_tags"), meta.feature("domain"), meta.feature("tokens")
    assert tags is not None and domain is not None and tokens is not None
    assert (tags.dtype, tags.class_names) == ("list<class_label>", ["O", "B-PER", "I-PER", "B-LOC"])
    assert (domain.dtype, domain.class_names) == ("class_label", ["news", "web"])
    assert tokens.dtype == "list<string>"

    assert [i["output"] for i in organized(meta, ["tokens"], "ner_tags", tmp_path, monkeypatch)] == [
        "B-PER, I-PER, O",
        "O, O, B-LOC",
        "B-PER, O, B-LOC",
    ]
    assert [i["output"] for i in organized(meta, ["tokens"], "domain", tmp_path, monkeypatch)] == [
        "news",
        "web",
        "news",
    ]


def test_parquet_export_without_a_config_names_the_configs(tmp_path):
    with pytest.raises(SourceError) as err:
        collected(tmp_path, layouts.parquet_export(tmp_path))
    assert "ner" in str(err.value) and "plain_text" in str(err.value)
    assert "\n" not in str(err.value)


def test_parquet_export_unknown_config(tmp_path):
    with pytest.raises(SourceError) as err:
        collected(tmp_path, layouts.parquet_export(tmp_path), "nope")
    assert "'nope' not found" in str(err.value) and "\n" not in str(err.value)


# --- ClassLabel from the card, a list of structs, file formats ------------------------------------------


def test_class_label_declared_in_the_card(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.card_class_label(tmp_path))
    label = meta.feature("label")
    assert label is not None and label.class_names == ["negative", "positive"]
    outputs = [i["output"] for i in organized(meta, ["text"], "label", tmp_path, monkeypatch)]
    assert outputs == ["positive", "negative", "positive", "negative"]


def test_list_of_structs_becomes_one_list_per_field(tmp_path, monkeypatch):
    meta = collected(tmp_path, layouts.list_of_structs(tmp_path))
    assert meta.status == "ok", meta.reason
    assert names(meta) == {"topic": "string", "turns.speaker": "list<string>", "turns.text": "list<string>"}
    assert rows(meta, "train", tmp_path)[0] == {
        "topic": "history",
        "turns.speaker": ["user", "bot"],
        "turns.text": [layouts.QUESTIONS[0], "The Normans"],
    }
    instances = organized(meta, ["topic"], "turns.text", tmp_path, monkeypatch)
    assert instances[0]["output"] == f"{layouts.QUESTIONS[0]}, The Normans"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_file_formats(tmp_path, monkeypatch, fmt):
    meta = collected(tmp_path, layouts.file_format(tmp_path, fmt))
    assert meta.status == "ok", meta.reason
    assert split_sizes(meta) == {"train": 4}
    assert names(meta) == {"text": "string", "label": "int64"}
    assert [r["label"] for r in rows(meta, "train", tmp_path)] == [1, 0, 1, 0]
    instances = organized(meta, ["text"], "label", tmp_path, monkeypatch)
    assert [i["input"] for i in instances] == [t for t, _ in layouts.REVIEWS]
    assert [i["output"] for i in instances] == ["1", "0", "1", "0"]


# --- a hostile card stays data ---------------------------------------------------------------------------


def test_hostile_card_is_stored_as_data(tmp_path):
    meta = collected(tmp_path, layouts.hostile_card(tmp_path))
    assert meta.status == "ok", meta.reason
    assert layouts.INJECTION in meta.description
    uid, lang = meta.feature("uid"), meta.feature("lang")
    assert uid is not None and uid.stats is not None and uid.stats.id_like is True
    assert lang is not None and lang.stats is not None
    assert (lang.stats.top_share, lang.stats.distinct, lang.stats.id_like) == (1.0, 1, False)


# --- determinism -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [layouts.card_without_configs, layouts.no_card, layouts.list_of_structs])
def test_collect_is_deterministic(tmp_path, make):
    folder = make(tmp_path)
    first = collected(tmp_path, folder).model_dump(mode="json")
    second = collected(tmp_path, folder).model_dump(mode="json")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


# --- one bad source fails alone ----------------------------------------------------------------------------


def test_unreadable_source_is_a_one_line_source_error(tmp_path):
    with pytest.raises(SourceError) as err:
        collected(tmp_path, layouts.broken(tmp_path))
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_an_unexpected_error_in_one_source_is_recorded_as_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = layouts.no_card(tmp_path)

    def boom(*args: Any, **kwargs: Any) -> SourceMeta:
        raise TypeError("expected string or bytes-like object, got 'NamedSplit'\nsecond line")

    monkeypatch.setattr(collect, "collect_source", boom)
    meta, reused = collect.collect_one(spec_for(tmp_path, folder), parse_params({}), None, {})
    assert (meta.status, reused) == ("failed", False)
    assert meta.reason is not None and "TypeError" in meta.reason and "\n" not in meta.reason


def test_collect_stage_records_the_bad_source_and_the_others_proceed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folders = [layouts.no_card(tmp_path), layouts.broken(tmp_path), layouts.card_without_configs(tmp_path)]
    sources = [spec_for(tmp_path, f).model_dump(exclude_none=True) for f in folders]
    for allow in (False, True):
        (tmp_path / "params.yaml").write_text(
            json.dumps({"sources": sources, "collect": {"allow_failures": allow}})
        )
        monkeypatch.setenv("DYNO_PARAMS", str(tmp_path / "params.yaml"))
        args = argparse.Namespace(
            sources=tmp_path / "sources.yaml",  # absent: no sources beyond params
            lock=tmp_path / "sources.lock",
            retractions=tmp_path / "retractions.jsonl",
            out=tmp_path / "collected",
            metrics=tmp_path / "m.json",
            stats=tmp_path / "stats.json",
            run_log=tmp_path / "run.json",
        )
        if allow:
            collect.main(args)
        else:
            with pytest.raises(StageFailed):
                collect.main(args)
        status = {sid: meta.status for sid, meta in RecordFolder(tmp_path / "collected", SourceMeta).items()}
        assert status == {"broken": "failed", "card-no-configs": "ok", "no-card": "ok"}
        metrics = json.loads((tmp_path / "m.json").read_text())
        assert (metrics["sources"], metrics["failed"]) == (2, 1)


def test_dyno_debug_raises_the_unexpected_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNO_DEBUG", "1")
    folder = layouts.no_card(tmp_path)

    def boom(*args: Any, **kwargs: Any) -> SourceMeta:
        raise TypeError("a bug")

    monkeypatch.setattr(collect, "collect_source", boom)
    with pytest.raises(TypeError):
        collect.collect_one(spec_for(tmp_path, folder), parse_params({}), None, {})


def test_a_new_reader_version_collects_every_source_again(tmp_path, monkeypatch):
    """Records made by an older reader (say, without flattened fields) are not reused."""
    monkeypatch.chdir(tmp_path)
    spec, params = spec_for(tmp_path, layouts.no_card(tmp_path)), parse_params({})
    first, _ = collect.collect_one(spec, params, None, {})
    assert collect.collect_one(spec, params, first, {})[1] is True
    monkeypatch.setattr(collect, "READER_VERSION", collect.READER_VERSION + 1)
    again, reused = collect.collect_one(spec, params, first, {})
    assert reused is False and again.inputs_digest != first.inputs_digest


# --- collect opens each file the way organize will (issue 21 F7) -----------------------------------------


def _jsonl_source(root: Path, name: str, text: str) -> Path:
    folder = root / "data" / "sources" / name
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text(text)
    return folder


@pytest.mark.parametrize(
    "text, why",
    [
        (
            json.dumps([{"text": f"row {i}", "label": i % 2} for i in range(4)]),
            "a JSON array saved as .jsonl",
        ),
        (
            "".join(json.dumps({"text": t, "label": 1}) + "\n" for t in ["a", "b", 5, "c"]),
            "a column that changes type",
        ),
    ],
    ids=["json-array", "type-change"],
)
def test_a_file_organize_cannot_read_fails_in_collect(tmp_path, monkeypatch, text, why):
    """datasets reads these, pyarrow (organize) does not: collect says so, before any LLM call is paid."""
    folder = _jsonl_source(tmp_path, "odd", text)
    with pytest.raises(SourceError) as err:
        collected(tmp_path, folder)
    message = str(err.value)
    assert "train.jsonl" in message and "organize cannot read" in message and "\n" not in message, why


def test_readable_formats_are_one_list():
    from dynosaur.pipeline import collect as collect_module
    from dynosaur.pipeline import organize, sources

    assert set(sources.READABLE_FORMATS) == {".parquet", ".jsonl", ".csv"}
    assert not hasattr(sources, "ARROW_FORMATS") and not hasattr(organize, "ARROW_FORMATS")
    assert not hasattr(collect_module, "ARROW_FORMATS")
