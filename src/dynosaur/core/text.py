"""Untrusted text (LLM answers, dataset cards and rows) made safe for records and for terminals (issue 11).

Two places, two treatments:
- Where text enters a record it is cleaned. `clean_line` (instructions, names, class names): line breaks and
  tabs become a space, every other control character goes. `clean_value` (field values, descriptions):
  newline and tab stay, CRLF and a lone CR become LF, every other control character goes. Terminal escape
  sequences (CSI `ESC [ 31 m`, OSC `ESC ] 0 ; title BEL`, ...) go whole, so no `[31m` is left behind.
  "Control characters" are Unicode's Cc (C0, DEL, C1) plus the bidirectional embeddings, overrides and
  isolates, which reorder what a reader sees.
- Where text reaches a terminal, `printable` shows whatever is left (records written before this, field
  names, error messages quoting a file) as a visible escape, `\\x1b`, never raw.

Text without control characters is returned unchanged (the same object), so ids computed from clean text
never move. The patterns are also given in RE2 syntax (`*_RE2`) for `pyarrow.compute`, which organize uses
to clean millions of values at once.
"""

from __future__ import annotations

import re
from typing import Any

# (first, last) code points of every character removed or escaped.
_CONTROL_RANGES = (
    (0x00, 0x1F),  # C0 (newline, tab and CR are treated apart by each function)
    (0x7F, 0x9F),  # DEL, C1 (0x9B is an 8-bit CSI on some terminals)
    (0x200E, 0x200F),  # left-to-right / right-to-left marks
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2066, 0x2069),  # bidirectional isolates
)


def _class(ranges: tuple[tuple[int, int], ...], *, re2: bool, keep: str = "") -> str:
    def char(cp: int) -> str:
        return f"\\x{{{cp:x}}}" if re2 else f"\\u{cp:04x}"

    parts = []
    for first, last in ranges:
        points = [cp for cp in range(first, last + 1) if chr(cp) not in keep]
        start = prev = None
        for cp in points:  # split a range around the kept characters
            if start is None:
                start = prev = cp
            elif cp == prev + 1:  # type: ignore[operator]
                prev = cp
            else:
                parts.append(f"{char(start)}-{char(prev)}")  # type: ignore[arg-type]
                start = prev = cp
        if start is not None:
            parts.append(f"{char(start)}-{char(prev)}")  # type: ignore[arg-type]
    return "[" + "".join(parts) + "]"


# A whole terminal escape sequence: CSI (`ESC [` or 8-bit 0x9B), OSC (`ESC ]` or 0x9D, ended by BEL or ST;
# unterminated, it runs to the end), DCS/PM/APC/SOS strings, and two-character escapes (`ESC c`, `ESC (B`).
_SEQUENCE = (
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]"
)

CONTROL = _class(_CONTROL_RANGES, re2=False)  # any character `clean_*` removes or `printable` escapes
CONTROL_RE2 = _class(_CONTROL_RANGES, re2=True)
VALUE_DROP_RE2 = f"{_SEQUENCE}|{_class(_CONTROL_RANGES, re2=True, keep=chr(9) + chr(10) + chr(13))}"

_ANY = re.compile(CONTROL)
_LINE_DROP = re.compile(f"{_SEQUENCE}|{_class(_CONTROL_RANGES, re2=False, keep=chr(9) + chr(10) + chr(13))}")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")
_CR = re.compile(r"\r\n?")
_TERMINAL = re.compile(_class(_CONTROL_RANGES, re2=False, keep="\t\n"))


def has_control(text: str) -> bool:
    return _ANY.search(text) is not None


def clean_line(text: str) -> str:
    """One line of text for a record: escape sequences and control characters go, line breaks and tabs
    become a space. Text without control characters is returned as is."""
    if not has_control(text):
        return text
    return _LINE_BREAKS.sub(" ", _LINE_DROP.sub("", text))


def clean_value(text: str) -> str:
    """A field value or a description for a record: like `clean_line`, but newline and tab stay and CRLF or
    a lone CR becomes LF."""
    if not has_control(text):
        return text
    return _CR.sub("\n", _LINE_DROP.sub("", text))


def clean_values(value: Any) -> Any:
    """`clean_value` on every string inside lists and dicts (dict keys are names: left as they are)."""
    if isinstance(value, str):
        return clean_value(value)
    if isinstance(value, list):
        return [clean_values(v) for v in value]
    if isinstance(value, dict):
        return {k: clean_values(v) for k, v in value.items()}
    return value


def printable(text: str) -> str:
    """Text for a terminal: every control character but newline and tab shown as an escape (`\\x1b`,
    `\\u202e`), so nothing in it can move the cursor, set a title or reorder the line."""
    if not has_control(text):
        return text
    return _TERMINAL.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    cp = ord(char)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def clean_value_array(values: Any) -> Any:
    """`clean_value` over a pyarrow string array, vectorised; an array without control characters is
    returned as is after one scan."""
    import pyarrow.compute as pc

    if not pc.any(pc.match_substring_regex(values, CONTROL_RE2)).as_py():
        return values
    values = pc.replace_substring_regex(values, VALUE_DROP_RE2, "")
    return pc.replace_substring_regex(values, "\r\n?", "\n")
