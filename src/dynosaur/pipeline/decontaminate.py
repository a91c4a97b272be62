"""Decontamination: evaluation data never enters the corpus.

Two guards:
- **Sources.** A dataset on `collect.eval_benchmarks` (MMLU, HellaSwag, ARC, GSM8K, Super-NI, ...) is never a
  source: collect records it as `skipped` with reason `eval_benchmark` before reading it (`eval_benchmark`).
- **Instances.** An instance whose text (input, then output) shares a word n-gram with an evaluation set is
  removed by organize and counted per task shard and per source. Words are counted as GPT-3 and lm-eval's
  decontamination count them: the text lower-cased, punctuation deleted, split on whitespace; n = 13 by
  default (`organize.decontaminate.ngram`). An evaluation text shorter than n words removes an instance whose
  whole text is those words.

Evaluation sets are the Super-NI task files in `evaluate.superni_dir` (each instance's and positive example's
input with its outputs) and the parquet or jsonl files in `organize.decontaminate.files` (every string value
of a row, in column order, is that row's text).

The index maps each evaluation word to an integer and keeps every n-gram as a 64-bit hash of its word ids,
so the check is vectorised (Arrow for words, numpy for hashes) and the same on every run and machine. A
window through a word the evaluation texts don't have can't match and is skipped. Two different n-grams
share a hash with odds of about 2⁻⁶⁴ per pair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynosaur.core.errors import InputFileError, ParamsError
from dynosaur.core.io import file_sha256
from dynosaur.core.params import DecontaminateParams, SourceSpec
from dynosaur.core.records import digest, splitmix64

_NOT_WORD = r"[^\pL\pM\pN\pZ\s]"  # RE2 (pyarrow): anything but letters, marks, digits and spaces
_UNKNOWN = np.uint64(0xFFFFFFFFFFFFFFFF)  # a word the evaluation texts don't have: no n-gram through it
_PAD = np.uint64(0xFFFFFFFFFFFFFFFE)  # past the end of a text shorter than n words
CHUNK = 8192  # texts hashed at a time: bounds memory whatever the batch size
_SEPARATORS = re.compile(r"[-_.\s]")
SUPERNI_TASK = re.compile(r"^task\d+_.+\.json$")


# --- sources ---------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


def eval_benchmark(spec: SourceSpec, deny: Iterable[str]) -> str | None:
    """The deny-list entry that `spec` is, or None. `owner/name` entries match that Hub id; bare names match
    any owner's dataset of that name, and a local source's id or folder name."""
    if spec.hub is not None:
        name = spec.hub.partition("/")[2]
        full, names = _norm(spec.hub), {_norm(name)}
    else:
        full, names = "", {_norm(spec.id), _norm(Path(spec.path or "").name)}
    for entry in deny:
        wanted = _norm(entry)
        if ("/" in entry and full and wanted == full) or ("/" not in entry and wanted in names):
            return entry
    return None


# --- instances -------------------------------------------------------------------------------------------


def word_lists(texts: pa.Array) -> pa.Array:
    """Each text's words: lower-cased, every character that is not a letter, mark, digit or space deleted
    (so punctuation and `_` go, and "well-known" is one word), split on whitespace; null for no words."""
    kept = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), _NOT_WORD, ""))
    return pc.utf8_split_whitespace(pc.if_else(pc.equal(kept, ""), pa.scalar(None, pa.string()), kept))


def words(text: str) -> list[str]:
    return word_lists(pa.array([text], pa.string()))[0].as_py() or []


def _chain(columns: list[np.ndarray]) -> np.ndarray:
    """One 64-bit hash per row of word ids (one array per position), order-sensitive."""
    h = np.zeros(len(columns[0]), np.uint64)
    for column in columns:
        h = splitmix64(h ^ column)
    return h


@dataclass
class _Hashes:
    """The n-gram hashes of a chunk of texts, with the row each comes from; whole texts under n words apart."""

    grams: np.ndarray
    gram_rows: np.ndarray
    short: np.ndarray
    short_rows: np.ndarray


def _hashes(lists: pa.Array, vocab: pa.Array, n: int) -> _Hashes:
    offsets = np.asarray(lists.offsets, np.int64)
    offsets = offsets - offsets[0]  # a slice's offsets start where its flattened words do
    lengths = np.diff(offsets)
    ids = pc.index_in(pc.list_flatten(lists), value_set=vocab)
    ids = np.asarray(pc.fill_null(pc.cast(ids, pa.int64()), -1), np.int64).astype(np.uint64)  # -1 → _UNKNOWN
    rows = np.repeat(np.arange(len(lengths)), lengths)
    total = len(ids)
    grams = gram_rows = np.zeros(0, np.uint64)
    if total >= n:
        starts = np.arange(total - n + 1)
        row = rows[: total - n + 1]
        unknown = np.concatenate([[0], np.cumsum(ids == _UNKNOWN)])
        whole = (starts + n <= offsets[1:][row]) & (unknown[starts + n] == unknown[starts])
        windows = _chain([ids[k : total - n + 1 + k] for k in range(n)])
        grams, gram_rows = windows[whole], row[whole]
    short_rows = np.flatnonzero((lengths >= 1) & (lengths < n))
    matrix = np.full((len(short_rows), n), _PAD, np.uint64)
    inside = np.arange(n)[None, :] < lengths[short_rows][:, None]
    matrix[inside] = ids[(offsets[short_rows][:, None] + np.arange(n)[None, :])[inside]]
    clean = ~(matrix == _UNKNOWN).any(axis=1)
    short = _chain(list(matrix.T)) if len(short_rows) else np.zeros(0, np.uint64)
    return _Hashes(grams, gram_rows, short[clean], short_rows[clean])


def _chunks(texts: Iterable[str], size: int = CHUNK) -> Iterator[pa.Array]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield pa.array(chunk, pa.string())
            chunk = []
    if chunk:
        yield pa.array(chunk, pa.string())


class EvalIndex:
    """The word n-grams of a set of evaluation texts (see the module docstring).

    Built in two passes over the texts: their vocabulary (word → id, by `pyarrow.compute.index_in`), then the
    hash of every n-gram of ids (SplitMix64 chained over the n ids) in one sorted array. Instances are checked
    the same way, a chunk of rows at a time, all vectorised."""

    def __init__(self, read: Callable[[], Iterable[str]] = tuple, n: int = 13) -> None:
        self.n = n
        uniques = [pc.unique(pc.list_flatten(word_lists(c))) for c in _chunks(read())]
        self._vocab = pc.unique(pa.concat_arrays(uniques)) if uniques else pa.array([], pa.string())
        grams, short, self.texts = [], [], 0
        for chunk in _chunks(read()):
            lists = word_lists(chunk)
            self.texts += len(lists) - lists.null_count
            found = _hashes(lists, self._vocab, n)
            grams.append(found.grams)
            short.append(found.short)
        self._grams = np.unique(np.concatenate([np.zeros(0, np.uint64), *grams]))
        self._short = np.unique(np.concatenate([np.zeros(0, np.uint64), *short]))

    def __len__(self) -> int:
        return len(self._grams) + len(self._short)

    def overlaps(self, text: str) -> bool:
        """Whether `text` shares an n-gram with the evaluation texts (or is a whole short one)."""
        return bool(self._rows_hit(pa.array([text], pa.string()))[0])

    def mask(self, inputs: pa.Array | list[str | None], outputs: pa.Array | list[str | None]) -> np.ndarray:
        """Per instance, whether its input and output (read as one text) overlap the evaluation texts."""
        inputs, outputs = (
            v if isinstance(v, pa.Array) else pa.array(v, pa.string()) for v in (inputs, outputs)
        )
        if not len(self):
            return np.zeros(len(inputs), bool)
        texts = pc.binary_join_element_wise(pc.fill_null(inputs, ""), pc.fill_null(outputs, ""), "\n")
        hit = np.zeros(len(texts), bool)
        for start in range(0, len(texts), CHUNK):
            hit[start : start + CHUNK] = self._rows_hit(texts.slice(start, CHUNK))
        return hit

    def _rows_hit(self, texts: pa.Array) -> np.ndarray:
        found = _hashes(word_lists(texts), self._vocab, self.n)
        hit = np.zeros(len(texts), bool)
        hit[found.gram_rows[_isin_sorted(found.grams, self._grams)]] = True
        hit[found.short_rows[_isin_sorted(found.short, self._short)]] = True
        return hit


def _isin_sorted(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    if not len(table) or not len(values):
        return np.zeros(len(values), bool)
    order = np.argsort(values)  # sorted needles: searchsorted walks the table once, cache-friendly
    at = np.empty(len(values), np.int64)
    at[order] = np.searchsorted(table, values[order])
    return table[np.minimum(at, len(table) - 1)] == values


# --- evaluation sets -------------------------------------------------------------------------------------


def eval_files(params: DecontaminateParams, superni_dir: str | None, root: Path = Path(".")) -> list[Path]:
    """The evaluation files to check against, in a fixed order; a missing one is a one-line ParamsError."""
    found: list[Path] = []
    if params.superni and superni_dir:
        folder = root / superni_dir
        if not folder.is_dir():
            raise ParamsError(f"evaluate.superni_dir: {superni_dir} is not a folder")
        found += sorted(p for p in folder.iterdir() if SUPERNI_TASK.match(p.name) and p.is_file())
    for name in params.files:
        path = root / name
        if not path.is_file():
            raise ParamsError(f"organize.decontaminate.files: {name} not found")
        found.append(path)
    return found


def eval_fingerprint(files: list[Path], n: int) -> str | None:
    """Over the n-gram size and every evaluation file's bytes: shards are rebuilt when these change."""
    if not files:
        return None
    return digest([n, [[p.as_posix(), file_sha256(p)] for p in files]])


def load_index(files: list[Path], n: int) -> EvalIndex:
    return EvalIndex(lambda: (text for path in files for text in eval_texts(path)), n)


def eval_texts(path: Path) -> Iterator[str]:
    """The texts of one evaluation file: a Super-NI task file, a parquet file or a jsonl file."""
    try:
        if path.suffix == ".parquet":
            yield from _parquet_texts(path)
        elif path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield _row_text(json.loads(line))
        else:
            yield from _superni_texts(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{path}: not a readable evaluation file ({first})") from None


def _superni_texts(task: dict) -> Iterator[str]:
    """Super-NI's `Instances` ({input, output: [str]}) and `Positive Examples` ({input, output: str})."""
    for item in [*task.get("Positive Examples", []), *task["Instances"]]:
        outputs = item["output"] if isinstance(item["output"], list) else [item["output"]]
        yield "\n".join([item["input"], *map(str, outputs)])


def _row_text(row: object) -> str:
    """Every string in a row (nested ones too), one per line; numbers and other values are not text."""
    if isinstance(row, str):
        return row
    values = row.values() if isinstance(row, dict) else row if isinstance(row, list) else []
    return "\n".join(text for v in values if (text := _row_text(v)))


def _parquet_texts(path: Path) -> Iterator[str]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        yield from (_row_text(row) for row in batch.to_pylist())
