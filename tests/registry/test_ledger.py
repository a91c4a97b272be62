"""`dynosaur.registry.ledger`: sealed records, append-only files, release lookup and manifests."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dynosaur.core.errors import LedgerError, NotFound
from dynosaur.core.records import (
    Exclusion,
    LedgerRecord,
    Release,
    Retraction,
    SourceVersion,
    TaskVersion,
    Totals,
)
from dynosaur.registry.ledger import Ledger, parse_version
from tests.factories import make_entry, make_release, make_retraction, make_source_version, make_task_version

HASH = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path)


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- sealing -----------------------------------------------------------------------------------------

FACTORIES = {
    SourceVersion: make_source_version,
    TaskVersion: make_task_version,
    Retraction: make_retraction,
    Release: make_release,
}

# One changed value per field of every ledger record (the guard below keeps this list complete).
CHANGES: list[tuple[type[LedgerRecord], str, Any]] = [
    (SourceVersion, "schema_version", 2),
    (SourceVersion, "source_id", "reviews-2"),
    (SourceVersion, "origin", "hub:owner/reviews"),
    (SourceVersion, "revision", "sha256:" + "1" * 64),
    (SourceVersion, "license", None),
    (SourceVersion, "metadata_fingerprint", "sha256:" + "9" * 64),
    (SourceVersion, "languages", ["en"]),
    (SourceVersion, "prev", "sha256:" + "8" * 64),
    (TaskVersion, "schema_version", 2),
    (TaskVersion, "task_id", "fedcba9876543210"),
    (TaskVersion, "source_id", "reviews-2"),
    (TaskVersion, "source_revision", "sha256:" + "1" * 64),
    (TaskVersion, "instruction", "Classify the sentiment of the given review!"),
    (TaskVersion, "label_options", ["positive", "negative"]),
    (TaskVersion, "input_fields", ["text", "title"]),
    (TaskVersion, "output_field", "title"),
    (TaskVersion, "prompt_version", "v2"),
    (TaskVersion, "model", "other-model"),
    (TaskVersion, "verdict", "rejected"),
    (TaskVersion, "reason", "io_overlap"),
    (TaskVersion, "prev", "sha256:" + "8" * 64),
    (Retraction, "schema_version", 2),
    (Retraction, "kind", "source"),
    (Retraction, "target", "fedcba9876543210"),
    (Retraction, "identity", "abcdefabcdefabcd"),
    (Retraction, "reason", "licence withdrawn"),
    (Retraction, "created_at", "2026-01-02T00:00:01Z"),
    (Retraction, "prev", "sha256:" + "8" * 64),
    (Release, "schema_version", 2),
    (Release, "version", 2),
    (Release, "tag", "v2"),
    (Release, "parent", "sha256:" + "4" * 64),
    (Release, "message", "release 1."),
    (Release, "created_at", "2026-01-01T00:00:01Z"),
    (Release, "manifest", "ledger/manifests/v2.jsonl"),
    (Release, "manifest_digest", "sha256:" + "5" * 64),
    (Release, "corpus_md5", "00000000000000000000000000000000.dir"),
    (Release, "totals", Totals(sources=1, tasks=1, instances=11)),
    (Release, "licenses", {"mit": 9, "apache-2.0": 1}),
    (Release, "excluded", [Exclusion(source_id="news", reason="license_unknown")]),
    (Release, "changelog", ["reviews: 1 task added"]),
]


def test_every_ledger_field_has_a_change_below():
    for model in FACTORIES:
        covered = {field for m, field, _ in CHANGES if m is model}
        assert covered == set(model.model_fields) - {"hash"}, model.__name__


@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m.__name__)
def test_sealed_hash_is_the_content_hash_of_the_canonical_form(model):
    record = FACTORIES[model]()
    sealed = record.sealed()
    assert HASH.fullmatch(sealed.hash)
    assert sealed.hash == sealed.content_hash() == record.content_hash()
    body = record.model_dump(mode="json", exclude={"hash"})
    assert sealed.hash == "sha256:" + hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()
    assert sealed.model_dump(exclude={"hash"}) == record.model_dump(exclude={"hash"})


@pytest.mark.parametrize(
    "model, field, value", CHANGES, ids=lambda x: x.__name__ if isinstance(x, type) else None
)
def test_the_hash_covers_every_field(model, field, value):
    sealed = FACTORIES[model]().sealed()
    assert getattr(sealed, field) != value
    changed = sealed.model_copy(update={field: value})
    assert changed.content_hash() != sealed.hash


def test_the_hash_does_not_cover_itself():
    sealed = make_task_version().sealed()
    assert sealed.model_copy(update={"hash": "sha256:" + "f" * 64}).content_hash() == sealed.hash


# --- append and read ---------------------------------------------------------------------------------


def linked(records: list[LedgerRecord]) -> list[LedgerRecord]:
    """What `append` makes of unsealed records written to an empty file: each linked to the one before."""
    out: list[LedgerRecord] = []
    for r in records:
        out.append(r.model_copy(update={r.LINK: out[-1].hash if out else None}).sealed())
    return out


def test_append_then_read_round_trips_sealed_records(ledger):
    records = [
        make_task_version(),
        make_task_version(task_id="fedcba9876543210", verdict="rejected", reason="x"),
    ]
    ledger.append(TaskVersion, records)
    assert ledger.read(TaskVersion) == linked(records)
    assert all(r.hash == r.content_hash() for r in ledger.read(TaskVersion))


def test_read_of_a_missing_file_is_empty(ledger):
    assert ledger.read(SourceVersion) == []
    assert ledger.releases() == []


def test_each_model_has_its_own_file(ledger):
    ledger.append(SourceVersion, [make_source_version()])
    ledger.append(Retraction, [make_retraction()])
    assert sorted(p.name for p in ledger.dir.iterdir()) == ["retractions.jsonl", "sources.jsonl"]
    assert ledger.read(TaskVersion) == []


def test_append_keeps_the_old_bytes_and_adds_lines(ledger):
    ledger.append(TaskVersion, [make_task_version()])
    before = ledger.path(TaskVersion).read_bytes()
    ledger.append(TaskVersion, [make_task_version(task_id="1" * 16), make_task_version(task_id="2" * 16)])
    after = ledger.path(TaskVersion).read_bytes()
    assert after.startswith(before)
    assert after[len(before) :].count(b"\n") == 2 and after.endswith(b"\n")
    assert [t.task_id for t in ledger.read(TaskVersion)] == ["0123456789abcdef", "1" * 16, "2" * 16]


def test_append_of_nothing_creates_nothing(ledger):
    ledger.append(TaskVersion, [])
    assert not ledger.path(TaskVersion).exists()


def test_append_keeps_a_valid_hash_and_refuses_a_stale_one(ledger):
    sealed = make_task_version().sealed()
    ledger.append(TaskVersion, [sealed])
    assert ledger.read(TaskVersion) == [sealed]
    stale = sealed.model_copy(update={"instruction": "Something else."})
    with pytest.raises(LedgerError):
        ledger.append(TaskVersion, [stale])
    assert ledger.read(TaskVersion) == [sealed]


def test_append_refuses_a_sealed_record_linked_to_another_line(ledger):
    """Two releases cut from the same ledger: the second names a parent that is no longer the last line."""
    first = make_release(1).sealed()
    ledger.append(Release, [first])
    second = make_release(2, parent=first.hash).sealed()
    rival = make_release(2, parent=first.hash, message="a concurrent v2").sealed()
    ledger.append(Release, [second])
    with pytest.raises(LedgerError, match="changed since the record was made"):
        ledger.append(Release, [rival])
    assert ledger.releases() == [first, second]


def test_the_api_has_no_update_or_delete():
    public = {name for name in dir(Ledger) if not name.startswith("_")}
    assert not public & {"update", "delete", "remove", "replace", "set", "edit", "truncate", "write"}
    verbs = ("update", "delete", "remove", "replace", "set_", "edit", "truncate", "rewrite")
    assert not [name for name in public if name.startswith(verbs)]


@pytest.mark.parametrize(
    "edit",
    [
        lambda rec: {**rec, "instruction": rec["instruction"] + " Now."},  # content changed, hash kept
        lambda rec: {**rec, "hash": "sha256:" + "0" * 64},  # hash changed
        lambda rec: {k: v for k, v in rec.items() if k != "hash"},  # hash removed
    ],
    ids=["content", "hash", "no-hash"],
)
def test_a_line_edited_on_disk_is_an_error_naming_file_and_line(ledger, edit):
    ledger.append(TaskVersion, [make_task_version(), make_task_version(task_id="1" * 16)])
    path = ledger.path(TaskVersion)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = canonical(edit(json.loads(lines[1])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LedgerError) as err:
        ledger.read(TaskVersion)
    assert "ledger/tasks.jsonl:2" in str(err.value)


@pytest.mark.parametrize("bad", ['{"task_id": ', "not json", '{"unexpected": 1}'])
def test_a_line_that_is_not_a_record_is_an_error_naming_file_and_line(ledger, bad):
    ledger.append(SourceVersion, [make_source_version()])
    path = ledger.path(SourceVersion)
    path.write_bytes(path.read_bytes() + b"\n" + bad.encode() + b"\n")  # a blank line 2 is skipped
    with pytest.raises(LedgerError) as err:
        ledger.read(SourceVersion)
    assert "ledger/sources.jsonl:3" in str(err.value)


def test_append_refuses_after_an_incomplete_last_line(ledger):
    ledger.append(TaskVersion, [make_task_version()])
    path = ledger.path(TaskVersion)
    damaged = path.read_bytes()[:-10]
    path.write_bytes(damaged)
    with pytest.raises(LedgerError):
        ledger.append(TaskVersion, [make_task_version(task_id="1" * 16)])
    assert path.read_bytes() == damaged


@pytest.mark.parametrize(
    "text", ["line\u2028separator", "para\u2029separator", "next\x85line", "rec\x1eord", "tab\tcr\r"]
)
def test_records_with_unicode_line_breaks_round_trip(ledger, text):
    records = [make_task_version(instruction=text), make_task_version(task_id="1" * 16)]
    ledger.append(TaskVersion, records)
    assert ledger.read(TaskVersion) == linked(records)
    assert ledger.path(TaskVersion).read_bytes().count(b"\n") == 2


def test_line_numbers_count_newlines_only(ledger):
    ledger.append(
        TaskVersion, [make_task_version(instruction="a\u2028b"), make_task_version(task_id="1" * 16)]
    )
    path = ledger.path(TaskVersion)
    path.write_bytes(path.read_bytes().replace(b'"1111111111111111"', b'"2222222222222222"'))
    with pytest.raises(LedgerError) as err:
        ledger.read(TaskVersion)
    assert "ledger/tasks.jsonl:2" in str(err.value)


# --- canonical lines ---------------------------------------------------------------------------------


def test_lines_are_canonical_json_with_utf8_kept(ledger):
    ledger.append(TaskVersion, [make_task_version(instruction="Résumé the 日本語 review.")])
    data = ledger.path(TaskVersion).read_bytes()
    assert "Résumé the 日本語".encode() in data
    for line in data.decode("utf-8").splitlines():
        assert line == canonical(json.loads(line))
        assert list(json.loads(line)) == sorted(json.loads(line))


def test_the_same_records_give_byte_identical_files(tmp_path):
    records = [make_source_version(), make_source_version(source_id="news", license=None)]
    one, two = Ledger(tmp_path / "one"), Ledger(tmp_path / "two")
    one.append(SourceVersion, records)
    for record in records:  # one at a time: same bytes
        two.append(SourceVersion, [record])
    assert one.path(SourceVersion).read_bytes() == two.path(SourceVersion).read_bytes()


# --- releases ----------------------------------------------------------------------------------------


def _two_releases(ledger: Ledger) -> tuple[Release, Release]:
    first = make_release(1).sealed()
    second = make_release(2, parent=first.hash).sealed()
    ledger.append(Release, [first])
    ledger.append(Release, [second])
    return first, second


@pytest.mark.parametrize("version", ["v2", 2, "V2", "2", " v2 "])
def test_release_is_found_by_any_spelling(ledger, version):
    _, second = _two_releases(ledger)
    assert ledger.release(version) == second


def test_unknown_version_lists_the_known_ones(ledger):
    _two_releases(ledger)
    with pytest.raises(NotFound) as err:
        ledger.release("v3")
    assert "v1" in str(err.value) and "v2" in str(err.value)


def test_unknown_version_in_an_empty_ledger(ledger):
    with pytest.raises(NotFound):
        ledger.release(1)


@pytest.mark.parametrize(
    "text", ["latest", "v0", "0", "-1", "v-1", "", "v", "vv2", "2.0", "v²", "v 2", "+2", "v1e3"]
)
def test_parse_version_rejects(text):
    with pytest.raises(NotFound):
        parse_version(text)


@pytest.mark.parametrize("text, number", [("v1", 1), ("V10", 10), (3, 3), ("007", 7), ("v12 ", 12)])
def test_parse_version_accepts(text, number):
    assert parse_version(text) == number


# --- manifests ---------------------------------------------------------------------------------------


def test_write_manifest_sorts_by_task_id_and_returns_the_digest_of_its_bytes(ledger):
    entries = [make_entry("c" * 16), make_entry("a" * 16), make_entry("b" * 16, license="Ünïcode")]
    digest = ledger.write_manifest(1, entries)
    path = ledger.manifest_path(1)
    assert path == ledger.dir / "manifests" / "v1.jsonl"
    data = path.read_bytes()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    lines = data.decode("utf-8").splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["a" * 16, "b" * 16, "c" * 16]
    assert all(line == canonical(json.loads(line)) for line in lines)
    assert ledger.write_manifest(1, list(reversed(entries))) == digest  # order in, not order out


def test_read_manifest_round_trips(ledger):
    entries = [make_entry("b" * 16, license="a\u2028b"), make_entry("a" * 16, shard_md5="0" * 32)]
    release = make_release(1, manifest_digest=ledger.write_manifest(1, entries))
    assert ledger.read_manifest(release) == sorted(entries, key=lambda e: e.task_id)


def test_read_manifest_of_an_empty_release(ledger):
    release = make_release(1, manifest_digest=ledger.write_manifest(1, []))
    assert ledger.read_manifest(release) == []


def test_a_tampered_manifest_is_an_error_naming_it(ledger):
    release = make_release(1, manifest_digest=ledger.write_manifest(1, [make_entry(instances=10)]))
    path = ledger.manifest_path(1)
    path.write_bytes(path.read_bytes().replace(b'"instances":10', b'"instances":11'))
    with pytest.raises(LedgerError) as err:
        ledger.read_manifest(release)
    assert "ledger/manifests/v1.jsonl" in str(err.value)


def test_a_missing_manifest_is_an_error_naming_it(ledger):
    with pytest.raises(LedgerError) as err:
        ledger.read_manifest(make_release(4))
    assert "ledger/manifests/v4.jsonl" in str(err.value)


# --- schema changes ----------------------------------------------------------------------------------


def test_sealed_lines_still_verify_after_a_field_is_added(tmp_path: Path, monkeypatch):
    """Hashes cover the line as stored: a new optional field on the model leaves old lines valid."""
    from pydantic import create_model

    from dynosaur.registry import ledger as ledger_mod
    from dynosaur.registry import verify as verify_mod

    ledger = Ledger(tmp_path)
    ledger.append(SourceVersion, [make_source_version(), make_source_version(source_id="other")])
    ledger.append(TaskVersion, [make_task_version()])
    ledger.append(Retraction, [make_retraction()])

    SourceVersionV2 = create_model("SourceVersion", __base__=SourceVersion, homepage=(str | None, None))
    files = {SourceVersionV2 if m is SourceVersion else m: name for m, name in ledger_mod.FILES.items()}
    monkeypatch.setattr(verify_mod, "FILES", files)
    monkeypatch.setattr(ledger_mod, "FILES", files)

    records = ledger_mod.read_records(ledger.path(SourceVersionV2), SourceVersionV2)
    assert [r.source_id for r in records] == ["reviews", "other"]
    assert all(r.homepage is None for r in records)
    # a re-dump of the parsed model now includes `homepage`: hashing that (the old way) would fail every line
    assert all(r.content_hash() != r.hash for r in records)
    report = verify_mod.verify(tmp_path)
    assert report.problems == [] and report.ok


def test_an_edited_stored_line_is_caught_even_if_the_model_ignores_the_change(tmp_path: Path):
    ledger = Ledger(tmp_path)
    ledger.append(SourceVersion, [make_source_version()])
    path = ledger.path(SourceVersion)
    stored = json.loads(path.read_text())
    stored["license"] = "apache-2.0"
    path.write_text(canonical(stored) + "\n")
    with pytest.raises(LedgerError, match="hash mismatch"):
        ledger.read(SourceVersion)


def test_migrations_run_in_order_after_the_hash_check(monkeypatch):
    from dynosaur.registry import migrations

    steps = {
        1: lambda d: {**d, "license": (d.get("license") or "").upper()},
        2: lambda d: {**d, "origin": "moved:" + d["origin"]},
    }
    monkeypatch.setitem(migrations.MIGRATIONS, "SourceVersion", steps)
    data = make_source_version().sealed().model_dump(mode="json")
    out = migrations.migrate("SourceVersion", data, current=3)
    assert out["schema_version"] == 3 and out["license"] == "MIT" and out["origin"].startswith("moved:local:")
    assert data["schema_version"] == 1  # the stored dict is not touched
    with pytest.raises(migrations.SchemaError, match="newer than this dynosaur"):
        migrations.migrate("SourceVersion", {**data, "schema_version": 4}, current=3)
    with pytest.raises(migrations.SchemaError, match="no migration from schema_version 1"):
        migrations.migrate("TaskVersion", data, current=2)


def test_a_line_from_a_newer_schema_is_one_clear_problem(tmp_path: Path):
    ledger = Ledger(tmp_path)
    ledger.append(SourceVersion, [make_source_version()])
    path = ledger.path(SourceVersion)
    stored = json.loads(path.read_text())
    stored["schema_version"] = 99
    body = {k: v for k, v in stored.items() if k != "hash"}
    stored["hash"] = "sha256:" + hashlib.sha256(canonical(body).encode()).hexdigest()
    path.write_text(canonical(stored) + "\n")
    with pytest.raises(LedgerError, match="schema_version 99 is newer"):
        ledger.read(SourceVersion)


# --- the chain: each line names the previous line's hash ----------------------------------------------


def _three_tasks(ledger: Ledger) -> list[str]:
    ledger.append(TaskVersion, [make_task_version(task_id=c * 16) for c in "123"])
    return ledger.path(TaskVersion).read_text(encoding="utf-8").splitlines(keepends=True)


def test_appended_lines_name_the_previous_lines_hash(ledger):
    ledger.append(TaskVersion, [make_task_version(task_id="1" * 16)])
    ledger.append(TaskVersion, [make_task_version(task_id=c * 16) for c in "23"])
    stored = [json.loads(line) for line in ledger.path(TaskVersion).read_text().splitlines()]
    assert [s["prev"] for s in stored] == [None, stored[0]["hash"], stored[1]["hash"]]


@pytest.mark.parametrize(
    "tamper, line",
    [
        (lambda lines: [lines[0], lines[2]], 2),  # a middle line deleted
        (lambda lines: [lines[1], lines[2]], 1),  # the first line deleted
        (lambda lines: [lines[0], lines[2], lines[1]], 2),  # two lines swapped
        (lambda lines: [lines[0], lines[1], lines[1], lines[2]], 3),  # a line repeated
    ],
    ids=["middle-deleted", "first-deleted", "reordered", "repeated"],
)
def test_deleting_or_reordering_a_line_breaks_the_chain_naming_file_and_line(ledger, tamper, line):
    path = ledger.path(TaskVersion)
    path.write_text("".join(tamper(_three_tasks(ledger))), encoding="utf-8")
    with pytest.raises(LedgerError) as err:
        ledger.read(TaskVersion)
    assert str(err.value).startswith(f"ledger/tasks.jsonl:{line}: ")


def test_a_line_without_its_link_after_the_chain_began_is_an_error(ledger):
    lines = _three_tasks(ledger)
    stored = json.loads(lines[2])
    del stored["prev"]
    stored["hash"] = (
        "sha256:"
        + hashlib.sha256(canonical({k: v for k, v in stored.items() if k != "hash"}).encode()).hexdigest()
    )
    ledger.path(TaskVersion).write_text(lines[0] + lines[1] + canonical(stored) + "\n", encoding="utf-8")
    with pytest.raises(LedgerError, match=r"^ledger/tasks.jsonl:3: TaskVersion has no prev"):
        ledger.read(TaskVersion)


def _unchained(record: LedgerRecord) -> str:
    """A line as dynosaur wrote it before the chain existed: no `prev` key, hashed as stored."""
    body = {k: v for k, v in record.model_dump(mode="json").items() if k not in ("hash", "prev")}
    return canonical({**body, "hash": "sha256:" + hashlib.sha256(canonical(body).encode()).hexdigest()})


def test_lines_written_before_the_chain_still_read_and_the_chain_starts_after_them(ledger):
    old = [make_retraction(target=c * 16) for c in "12"]
    path = ledger.path(Retraction)
    path.parent.mkdir(parents=True)
    path.write_text("".join(_unchained(r) + "\n" for r in old), encoding="utf-8")
    assert [r.target for r in ledger.read(Retraction)] == ["1" * 16, "2" * 16]
    ledger.append(Retraction, [make_retraction(target="3" * 16)])
    stored = [json.loads(line) for line in path.read_text().splitlines()]
    assert "prev" not in stored[0] and "prev" not in stored[1] and stored[2]["prev"] == stored[1]["hash"]
    assert [r.target for r in Ledger(ledger.dir.parent).read(Retraction)] == [c * 16 for c in "123"]
