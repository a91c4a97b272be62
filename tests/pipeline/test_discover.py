"""`dyno discover` and `dyno refresh` against the Hub-compatible test server (real huggingface_hub client)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import parse_params
from dynosaur.core.records import Retraction
from dynosaur.core.source_list import (
    SourcesLock,
    read_lock,
    read_sources_file,
    write_lock,
)
from dynosaur.pipeline.discover import Query, discover, refresh, source_id_for
from dynosaur.registry.ledger import Ledger
from dynosaur.testing.hub_server import HubServer

ROWS = "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(4))


def card(**meta) -> str:
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\nA dataset for tests.\n"


def host(hub: HubServer, repo: str, configs: tuple[str, ...] = (), downloads: int = 100, **meta) -> str:
    """A dataset repo with a card (`meta` + a `configs:` block when `configs`) and small jsonl files."""
    hub.create_repo(repo, exist_ok=True)
    files = {"README.md": card(**meta)}
    if configs:
        meta["configs"] = [{"config_name": c, "data_files": f"{c}/train.jsonl"} for c in configs]
        files = {"README.md": card(**meta), **{f"{c}/train.jsonl": ROWS for c in configs}}
    else:
        files["data/train.jsonl"] = ROWS
    hub.downloads[repo] = downloads
    return hub.commit(repo, files)


def classification(**extra) -> dict:
    return {"license": "mit", "task_categories": ["text-classification"], "language": ["en"], **extra}


@pytest.fixture
def hub(hub_server: HubServer) -> HubServer:
    host(hub_server, "tester/reviews", configs=("books", "films"), **classification())
    host(hub_server, "tester/french", **classification(language=["fr"]))
    host(hub_server, "tester/gpl", **classification(license="gpl-3.0"))
    host(hub_server, "tester/tiny", downloads=3, **classification())
    host(hub_server, "tester/qa", **classification(task_categories=["question-answering"]))
    host(hub_server, "tester/gone", **classification())
    host(hub_server, "tester/hellaswag", **classification())  # an evaluation benchmark's name
    return hub_server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "ledger").mkdir(parents=True)
    return root


PARAMS = parse_params({"licenses": {"deny": ["gpl-3.0"]}})
QUERY = Query(task_categories=["text-classification"], languages=["en"], min_downloads=10)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_source_ids_are_safe_and_stable():
    assert source_id_for("nyu-mll/glue", "sst2") == "nyu-mll__glue__sst2"
    assert source_id_for("Org/My.Data", None) == "org__my.data"
    long = source_id_for("o" * 60 + "/" + "n" * 60, "c" * 30)
    assert len(long) == 100 and long == source_id_for("o" * 60 + "/" + "n" * 60, "c" * 30)
    parse_params({"sources": [{"id": long, "hub": "a/b"}]})  # a valid source id


def test_discover_filters_expands_configs_and_records_the_query(hub: HubServer, root: Path):
    Ledger(root).append(
        Retraction, [Retraction(kind="source", target="tester__gone", reason="bad labels", created_at="2026")]
    )
    report = discover(root, PARAMS, QUERY, now=NOW)

    assert [e.id for e in report.added] == ["tester__reviews__books", "tester__reviews__films"]
    # One task category and one language are the Hub's filters: tester/french and tester/qa are not listed.
    assert report.skipped == {"eval_benchmark": 1, "license_denied": 1, "min_downloads": 1, "retracted": 1}
    assert report.listed == 5
    written = read_sources_file(root / "sources.yaml")
    assert [(e.id, e.hub, e.config, e.revision) for e in written.sources] == [
        ("tester__reviews__books", "tester/reviews", "books", "main"),
        ("tester__reviews__films", "tester/reviews", "films", "main"),
    ]
    assert {e.found_at for e in written.sources} == {NOW.isoformat(timespec="seconds")}
    assert {e.query for e in written.sources} == {QUERY.text}
    assert written.discoveries == {QUERY.text: NOW.isoformat(timespec="seconds")}
    # the spec collect reads leaves out how the source was found
    assert "found_at" not in written.sources[0].spec().model_dump()

    # Again, everything this time: what is there already is skipped, nothing is added twice.
    again = discover(root, PARAMS, QUERY, since=None, now=NOW + timedelta(days=1))
    assert again.added == [] and again.skipped["exists"] == 2
    assert len(read_sources_file(root / "sources.yaml").sources) == 2


HAND_WRITTEN = """\
# My sources. Keep this comment.
sources:
  # a hand-written block, with its own comments
  - id: mine
    hub: someone/mine   # pinned by hand
    revision: 'v1.0'
  - {id: local-one, path: data/sources/local-one}

# what discover has run
discoveries:
  "search=old": '2025-01-01T00:00:00+00:00'
"""


def test_discover_edits_the_sources_file_in_place(hub: HubServer, root: Path):
    """The file stays byte for byte as written, comments, quotes and flow entries included; discover only
    adds lines (issue 21 F2)."""
    import difflib

    path = root / "sources.yaml"
    path.write_text(HAND_WRITTEN)
    report = discover(root, PARAMS, QUERY, now=NOW)
    assert len(report.added) == 3
    after = path.read_text()
    before_lines, after_lines = HAND_WRITTEN.splitlines(True), after.splitlines(True)
    ops = difflib.SequenceMatcher(None, before_lines, after_lines, autojunk=False).get_opcodes()
    assert {op for op, *_ in ops} <= {"equal", "insert"}, after
    kept = [line for op, i1, i2, _, _ in ops if op == "equal" for line in before_lines[i1:i2]]
    assert kept == before_lines
    written = read_sources_file(path)
    assert [e.id for e in written.sources] == ["mine", "local-one", *(e.id for e in report.added)]
    assert written.sources[0].revision == "v1.0"
    assert written.discoveries == {
        "search=old": "2025-01-01T00:00:00+00:00",
        QUERY.text: NOW.isoformat(timespec="seconds"),
    }
    # two `sources:` keys: discover stops on the line numbers before writing, so no block is lost
    twice = HAND_WRITTEN + "sources:\n  - {id: other, hub: o/other}\n"
    path.write_text(twice)
    with pytest.raises(ParamsError, match="duplicate key 'sources' on line 12 \\(first on line 2\\)"):
        discover(root, PARAMS, QUERY, now=NOW)
    assert path.read_text() == twice
    # the shipped file (`sources: []`, `discoveries: {}`) takes block entries; its comments stay
    shipped = Path(__file__).resolve().parents[2] / "sources.yaml"
    path.write_text(shipped.read_text())
    discover(root, PARAMS, QUERY, now=NOW)
    text = path.read_text()
    assert (
        text.startswith(shipped.read_text().split("sources:")[0]) and "- id: tester__reviews__books" in text
    )
    assert [e.id for e in read_sources_file(path).sources] == [e.id for e in report.added]


def test_several_categories_or_languages_are_filtered_here(hub: HubServer, root: Path):
    """The Hub ANDs its tag filters; a query naming two languages wants either, so it filters itself."""
    query = Query(task_categories=["text-classification", "summarization"], languages=["en", "de"])
    report = discover(root, PARAMS, query, dry_run=True, now=NOW)
    assert report.listed == 7
    assert report.skipped["language"] == 1 and report.skipped["task_category"] == 1
    assert {e.hub for e in report.added} == {"tester/reviews", "tester/tiny", "tester/gone"}


def test_discover_dry_run_and_limit(hub: HubServer, root: Path):
    report = discover(root, PARAMS, QUERY, dry_run=True, now=NOW)
    assert len(report.added) == 3 and report.dry_run  # reviews (2 configs) and gone (not retracted here)
    assert not (root / "sources.yaml").exists()
    capped = discover(root, PARAMS, QUERY, limit=1, now=NOW)
    assert len(capped.added) == 1 and capped.added[0] in report.added
    assert read_sources_file(root / "sources.yaml").sources == capped.added


def test_discover_since_last_lists_only_what_changed_and_says_what_moved(hub: HubServer, root: Path):
    time.sleep(1.1)  # commit times have whole seconds: the discovery runs after the fixture's commits...
    first = discover(root, PARAMS, QUERY)
    refresh(root, PARAMS)
    time.sleep(1.1)  # ... and before these

    old = read_lock(root / "sources.lock").sources["tester__reviews__books"].sha
    new_sha = host(hub, "tester/reviews", configs=("books", "films", "poems"), **classification())
    host(hub, "tester/fresh", **classification())

    second = discover(root, PARAMS, QUERY)
    assert second.since == first.at
    assert second.listed == 2  # the two datasets modified since the first discovery, no more
    assert [e.id for e in second.added] == ["tester__fresh", "tester__reviews__poems"]
    assert {(m.source_id, m.old, m.new) for m in second.moved} == {
        ("tester__reviews__books", old, new_sha),
        ("tester__reviews__films", old, new_sha),
    }


def test_refresh_pins_and_reports_a_moved_branch(hub: HubServer, root: Path):
    tag_sha = hub.create_tag("tester/french", "v1.0")
    params = parse_params(
        {
            "sources": [
                {"id": "reviews-books", "hub": "tester/reviews", "config": "books"},
                {"id": "reviews-films", "hub": "tester/reviews", "config": "films", "revision": "main"},
                {"id": "french", "hub": "tester/french", "revision": "v1.0"},
                {"id": "qa-at-sha", "hub": "tester/qa", "revision": hub.head("tester/qa")},
            ]
        }
    )
    hub.reset_log()
    first = refresh(root, params)
    assert (
        first.requests == 2
    )  # (tester/reviews, main) once for both configs, (tester/french, v1.0); a sha: none
    assert len(hub.calls("GET", r"^/api/datasets/")) == 2
    assert {m.source_id for m in first.added} == {"reviews-books", "reviews-films", "french", "qa-at-sha"}
    lock = read_lock(root / "sources.lock")
    assert lock.sources["french"].sha == tag_sha
    assert lock.sources["reviews-books"].sha == hub.head("tester/reviews")

    # Nothing moved: nothing to say, the lock is rewritten byte for byte.
    before = (root / "sources.lock").read_bytes()
    assert refresh(root, params).moved == [] and (root / "sources.lock").read_bytes() == before

    # main moves; the tag does not.
    old = hub.head("tester/reviews")
    new = host(hub, "tester/reviews", configs=("books", "films"), **classification(pretty_name="v2"))
    dry = refresh(root, params, dry_run=True)
    assert {(m.source_id, m.old, m.new) for m in dry.moved} == {
        ("reviews-books", old, new),
        ("reviews-films", old, new),
    }
    assert (root / "sources.lock").read_bytes() == before  # a dry run writes nothing
    moved = refresh(root, params)
    assert {m.source_id for m in moved.moved} == {"reviews-books", "reviews-films"} and moved.unchanged == 2
    assert read_lock(root / "sources.lock").sources["reviews-books"].sha == new

    # A source that is gone from the sources is unpinned; one that fails keeps its pin and is reported.
    fewer = parse_params({"sources": [s.model_dump() for s in params.sources if s.id != "qa-at-sha"]})
    hub.fail_next("GET", r"^/api/datasets/tester/french/", status=500, times=10)
    report = refresh(root, fewer)
    assert report.removed == ["qa-at-sha"]
    assert list(report.failed) == ["french"] and "Hub unreachable" in report.failed["french"]
    assert read_lock(root / "sources.lock").sources["french"].sha == tag_sha


def test_lock_pins_only_the_spec_it_was_made_for():
    lock = SourcesLock.model_validate({"sources": {"a": {"hub": "o/a", "revision": "main", "sha": "1" * 40}}})
    spec = parse_params({"sources": [{"id": "a", "hub": "o/a"}]}).sources[0]
    assert lock.sha(spec) == "1" * 40
    other_branch = spec.model_copy(update={"revision": "dev"})
    assert lock.sha(other_branch) is None
    at_sha = spec.model_copy(update={"revision": "2" * 40})
    assert lock.sha(at_sha) == "2" * 40


def test_a_key_given_twice_in_the_sources_file_names_both_lines(tmp_path: Path):
    """Two `sources:` keys: the last would win and the hand-written block be lost (issue 21 F2)."""
    path = tmp_path / "sources.yaml"
    path.write_text(
        "# mine\nsources:\n  - {id: mine, hub: o/mine}\ndiscoveries: {}\nsources:\n  - {id: found, hub: o/f}\n"
    )
    with pytest.raises(ParamsError) as err:
        read_sources_file(path)
    message = str(err.value)
    assert err.value.exit_code == 2 and "\n" not in message
    assert f"{path}: duplicate key 'sources' on line 5 (first on line 2)" == message
    path.write_text("sources:\n  - id: a\n    hub: o/a\n    hub: o/b\n")
    with pytest.raises(ParamsError, match="duplicate key 'hub' on line 4 \\(first on line 3\\)"):
        read_sources_file(path)


def test_bad_sources_file_and_lock_fail_with_one_line(tmp_path: Path):
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: a\n    hub: o/a\n    colour: red\n")
    with pytest.raises(ParamsError, match=r"sources\['a'\]\.colour: unknown key"):
        read_sources_file(path)
    path.write_text("sources:\n  - {id: a, hub: o/a}\n  - {id: a, hub: o/b}\n")
    with pytest.raises(ParamsError, match="duplicate source id 'a'"):
        read_sources_file(path)
    path.write_text("sources: [\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        read_sources_file(path)
    lock = tmp_path / "sources.lock"
    write_lock(lock, SourcesLock())
    assert read_lock(lock) == SourcesLock()
    lock.write_text('{"sources": {"a": {"hub": "o/a", "revision": "main", "sha": "nope"}}}')
    with pytest.raises(ParamsError) as err:
        read_lock(lock)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


# --- odd Hub answers (issue 21 F3) ----------------------------------------------------------------------


def test_discover_takes_what_mirrors_send_and_skips_a_malformed_dataset_in_one_line(
    hub: HubServer, root: Path
):
    from dynosaur.testing.hub_server import DROP

    hub.answer_fields["tester/reviews"] = {"lastModified": "Sun, 30 Nov 2025 10:00:00 GMT", "gated": "auto"}
    hub.answer_fields["tester/gone"] = {"lastModified": "yesterday"}
    hub.answer_fields["tester/tiny"] = {"cardData": DROP, "siblings": None, "downloads": 50}
    report = discover(root, PARAMS, QUERY, dry_run=True, now=NOW)
    assert report.skipped["malformed"] == 1
    assert report.malformed == [
        "tester/gone: the Hub's answer has a bad lastModified"
        " (neither ISO 8601 nor RFC 1123: 'yesterday'): skipped"
    ]
    assert report.skipped["unavailable"] == 1  # gated: "auto" reads as gated, not as an error
    # no cardData is no card: the licence comes from the tags
    assert "tester__tiny" in {e.id for e in report.added}
    # a bare string of tags is one tag; null tags, downloads and card are none
    from dynosaur.pipeline.hub_catalog import ListedDataset

    assert ListedDataset.model_validate({"id": "o/n", "tags": "license:mit"}).tags == ["license:mit"]
    empty = ListedDataset.model_validate({"id": "o/n", "tags": None, "downloads": None, "cardData": None})
    assert (empty.tags, empty.downloads, empty.cardData, empty.unavailable) == ([], 0, {}, False)


def test_discover_given_an_html_page_fails_in_one_line(hub: HubServer, root: Path):
    from dynosaur.core.errors import DynoError

    hub.fail_next(
        "GET", r"^/api/datasets$", status=200, body=b"<html>Sign in</html>", content_type="text/html"
    )
    with pytest.raises(DynoError) as err:
        discover(root, PARAMS, QUERY, now=NOW)
    assert str(err.value) == (
        "listing Hub datasets: the Hub answered 200 with text/html, not JSON (is HF_ENDPOINT a Hub?)"
    )
    assert not (root / "sources.yaml").exists()


def test_refresh_skips_an_answer_without_sha_or_not_json_in_one_line_each(hub: HubServer, root: Path):
    from dynosaur.testing.hub_server import DROP

    (root / "sources.yaml").write_text(
        "sources:\n" + "".join(f"  - {{id: {n}, hub: tester/{n}}}\n" for n in ("reviews", "tiny", "gpl"))
    )
    hub.answer_fields["tester/tiny"] = {"sha": DROP}
    hub.fail_next(
        "GET", r"^/api/datasets/tester/gpl/revision/", status=200, body=b"<html/>", content_type="text/html"
    )
    report = refresh(root, PARAMS)
    assert report.failed == {
        "tiny": "tester/tiny@main: the Hub's answer has a bad sha (missing)",
        "gpl": "tester/gpl: the Hub answered 200 with text/html, not JSON (is HF_ENDPOINT a Hub?)",
    }
    assert set(read_lock(root / "sources.lock").sources) == {"reviews"}
