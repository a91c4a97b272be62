"""`dynosaur.cli.tables`: fitting columns to a width, shortening values, and the diff's licence cell."""

from __future__ import annotations

import pytest

from dynosaur.cli.tables import (
    Col,
    fit,
    licence_change,
    licence_shares,
    middle_ellipsis,
    short_origin,
    source_detail,
)
from dynosaur.core.errors import Ambiguous, NotFound
from dynosaur.registry.status import resolve_prefix


@pytest.mark.parametrize(
    ("before", "after", "sides", "shown"),
    [
        (None, "cc-by-4.0", {}, "(none) → cc-by-4.0"),
        ("mit", None, {}, "mit → (none)"),
        ("mit", "apache-2.0", {}, "mit → apache-2.0"),
        ("mit", "mit", {}, "mit"),
        (None, None, {}, ""),
        (None, "cc-by-4.0", {"in_before": False}, "cc-by-4.0"),  # a new source: just its licence
        ("mit", None, {"in_after": False}, "mit"),  # a removed source
    ],
)
def test_licence_change_never_shows_none(before, after, sides, shown):
    assert licence_change(before, after, **sides) == shown
    assert "None" not in licence_change(before, after, **sides)


def test_middle_ellipsis_keeps_both_ends_within_the_width():
    assert middle_ellipsis("short", 10) == "short"
    cut = middle_ellipsis("data/sources/vader-amazon-reviews", 16)
    assert len(cut) == 16 and cut.startswith("data") and cut.endswith("reviews") and "…" in cut


def test_short_origin_keeps_the_kind():
    assert short_origin("hub:stanfordnlp/imdb", 40) == "hub:stanfordnlp/imdb"
    cut = short_origin("local:data/sources/chatterbot-conversations", 20)
    assert len(cut) == 20 and cut.startswith("local:data")
    assert "chatterbot-conversations".endswith(cut.split("…")[1])


def test_source_detail_fits_its_width():
    line = source_detail("hub:allenai/ai2_arc", "sha256:" + "ab" * 32, "cc-by-sa-4.0", 40)
    assert len(line) <= 40
    assert line.startswith("hub:") and "@abababa · cc-by-sa-4.0" in line
    narrow = source_detail("hub:allenai/ai2_arc", "sha256:" + "ab" * 32, "cc-by-sa-4.0", 28)
    assert len(narrow) <= 28 and narrow.startswith("hub:") and "@abababa · " in narrow


def test_licence_shares_are_ranked_and_capped():
    assert licence_shares({"mit": 1, "other": 3}) == "other 75%\nmit 25%"
    assert licence_shares({"a": 4, "b": 3, "c": 2, "d": 1}).splitlines() == [
        "a 40%",
        "b 30%",
        "c 20%",
        "+1 more",
    ]


COLS = [Col("id", "id"), Col("origin", "cut", min_width=10, drop=1), Col("text", "wrap", min_width=12)]
ROW = ["owner__dataset__config", "hub:owner/dataset", "a long instruction " * 5]


def test_fit_uses_natural_widths_when_they_fit():
    fitted = fit(COLS, [ROW], 200)
    assert fitted.widths == [len(ROW[0]), len(ROW[1]), len(ROW[2])] and fitted.hidden == []


def test_fit_shrinks_wrap_columns_first_and_never_the_id():
    fitted = fit(COLS, [ROW], 60)
    assert fitted.hidden == []
    assert fitted.widths[0] == len(ROW[0]) and fitted.widths[1] == len(ROW[1])  # the short one gets its all
    assert sum(fitted.widths) + 2 * 2 == 60


def test_fit_drops_droppable_columns_when_minimums_do_not_fit():
    fitted = fit(COLS, [ROW], 40)
    assert fitted.hidden == ["origin"] and fitted.columns == [0, 2]
    assert fitted.widths[0] == len(ROW[0]) and sum(fitted.widths) + 2 <= 40


def test_resolve_prefix():
    assert resolve_prefix("ab", {"abc": 1}, "task") == 1
    with pytest.raises(NotFound, match="unknown task 'ab'"):
        resolve_prefix("ab", {}, "task")
    with pytest.raises(Ambiguous, match="matches 4 tasks: ab1, ab2, ab3 and 1 more") as exc:
        resolve_prefix("ab", {f"ab{i}": i for i in range(1, 5)}, "task")
    assert exc.value.exit_code == 2
