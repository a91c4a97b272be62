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

The index maps each evaluation word to an integer and keeps every n-gram as the hash of its tuple of word
ids (`hash` of a tuple of ints is not salted, so the result is the same on every run and machine). An
instance's words outside the evaluation vocabulary can't be part of a match, so most windows cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dynosaur.core.errors import DynoError, ParamsError
from dynosaur.core.params import DecontaminateParams, SourceSpec
from dynosaur.core.records import digest

_PUNCTUATION = re.compile(r"[^\w\s]|_")
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


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation deleted, as GPT-3 and lm-eval's decontamination count them."""
    return _PUNCTUATION.sub("", text.lower()).split()


class EvalIndex:
    """The word n-grams of a set of evaluation texts (see the module docstring)."""

    def __init__(self, n: int = 13) -> None:
        self.n = n
        self.texts = 0
        self._vocab: dict[str, int] = {}
        self._grams: set[int] = set()
        self._short: set[int] = set()  # whole texts shorter than n words

    def add(self, text: str) -> None:
        ids = [self._vocab.setdefault(w, len(self._vocab)) for w in words(text)]
        if not ids:
            return
        self.texts += 1
        n = self.n
        if len(ids) < n:
            self._short.add(hash(tuple(ids)))
        else:
            self._grams.update(hash(tuple(ids[i : i + n])) for i in range(len(ids) - n + 1))

    def __len__(self) -> int:
        return len(self._grams) + len(self._short)

    def overlaps(self, text: str) -> bool:
        """Whether `text` shares an n-gram with the evaluation texts (or is a whole short one)."""
        ids = [self._vocab.get(w, -1) for w in words(text)]
        n = self.n
        if len(ids) < n:
            return bool(ids) and -1 not in ids and hash(tuple(ids)) in self._short
        known = 0  # words in a row that the evaluation texts have: only such windows can match
        for end, word in enumerate(ids, 1):
            known = known + 1 if word >= 0 else 0
            if known >= n and hash(tuple(ids[end - n : end])) in self._grams:
                return True
        return False

    def mask(self, inputs: list[str | None], outputs: list[str | None]) -> np.ndarray:
        """Per instance, whether its input and output (read as one text) overlap the evaluation texts."""
        if not len(self):
            return np.zeros(len(inputs), bool)
        return np.fromiter(
            (self.overlaps(f"{i or ''}\n{o or ''}") for i, o in zip(inputs, outputs, strict=True)),
            bool,
            len(inputs),
        )


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
    return digest([n, [[p.as_posix(), _file_sha256(p)] for p in files]])


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_index(files: list[Path], n: int) -> EvalIndex:
    index = EvalIndex(n)
    for path in files:
        for text in eval_texts(path):
            index.add(text)
    return index


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
        raise DynoError(f"{path}: not a readable evaluation file ({first})") from None


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
