"""`dynosaur.core.text`: control characters cleaned where text enters a record, escaped where it is shown."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dynosaur.core.text import (
    clean_line,
    clean_value,
    clean_value_array,
    clean_values,
    has_control,
    printable,
)

HOSTILE = [
    ("\x1b[31mred\x1b[0m", "red"),  # CSI colours: the whole sequence goes, no "[31m" left
    ("a\x1b]0;pwned title\x07b", "ab"),  # OSC window title, BEL-terminated
    ("a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink, ST-terminated
    ("nul\x00byte", "nulbyte"),
    ("bell\x07 backspace\x08", "bell backspace"),
    ("\u202eevil\u202c", "evil"),  # bidi override
    ("x\x9b2Jy", "xy"),  # 8-bit CSI
    ("del\x7f", "del"),
    ("\x1bcreset", "reset"),  # two-character escape
]


@pytest.mark.parametrize(("text", "clean"), HOSTILE)
def test_escape_sequences_and_controls_are_removed_whole(text: str, clean: str):
    assert clean_line(text) == clean
    assert clean_value(text) == clean
    assert not has_control(clean_line(text))


def test_a_line_turns_breaks_and_tabs_into_spaces():
    assert clean_line("Classify the\nreview.\r\n\tNow") == "Classify the review. Now"


def test_a_value_keeps_newline_and_tab_and_normalises_cr():
    assert clean_value("a\tb\r\nc\rd\ne\x00") == "a\tb\nc\nd\ne"


def test_clean_text_is_returned_unchanged():
    for text in ("Plain words, é and 中文 and emoji 👍🏽 (with a ZWJ: 👩‍💻).", "", "a\nb\tc"):
        assert clean_value(text) is text
    assert clean_line("Classify the review.") == "Classify the review."


def test_clean_values_walks_lists_and_dicts_but_not_keys():
    row = {"k\x1b": ["a\x00", {"b": "c\x07"}], "n": 3}
    assert clean_values(row) == {"k\x1b": ["a", {"b": "c"}], "n": 3}


def test_the_arrow_version_agrees_with_the_python_one():
    texts = [t for t, _ in HOSTILE] + ["a\tb\r\nc\rd", "plain", None]
    got = clean_value_array(pa.array(texts)).to_pylist()
    assert got == [None if t is None else clean_value(t) for t in texts]
    plain = pa.array(["a", "b"])
    assert clean_value_array(plain) is plain


def test_printable_shows_controls_as_escapes_and_keeps_lines():
    assert printable("a\x1b[31mb\u202ec\rd\ne\tf") == "a\\x1b[31mb\\u202ec\\x0dd\ne\tf"
    assert not has_control(printable("".join(t for t, _ in HOSTILE)))
