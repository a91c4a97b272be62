"""Evaluation on Super-NaturalInstructions: metrics, per-task scores and a reader for the task files.

Metrics follow Super-NI's evaluation (Wang et al., 2022), as fractions in [0, 1], not percentages:
- ROUGE-L F-measure on every task. Tokens are runs of letters and digits of the lower-cased text
  (punctuation and whitespace separate them; no stemming), scored by the longest common subsequence:
  P = lcs/len(prediction), R = lcs/len(reference), F = 2PR/(P+R), 0 when either side has no tokens.
  On ASCII text this is what `rouge-score`'s `RougeScorer(["rougeL"], use_stemmer=False)` reports (a test
  compares them when it is installed); unlike it, letters outside a-z (accents, CJK) are kept, not dropped.
- Exact match only on classification-like tasks (label options, or few distinct short references), after
  SQuAD's normalisation: lower case, punctuation and the articles a/an/the removed, whitespace collapsed.
An instance with several references scores its best one (Super-NI's `metric_max_over_ground_truths`). A
summary macro-averages over tasks, so a big task counts as much as a small one.

Task files are Super-NI's `tasks/taskNNN_name.json`: `Definition` (list of str), `Instances` (list of
{id, input, output: list of str}), optionally `Positive Examples` and `Categories`. Other files are skipped.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dynosaur.core.errors import InputFileError, NotFound, ParamsError
from dynosaur.core.records import Record

MAX_LABELS = 10  # at most this many distinct references makes a task classification-like
MAX_LABEL_WORDS = 3  # ... when each of them has at most this many words
TASK_FILE = re.compile(r"^task(\d+)_.+\.json$")
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits: "_" separates tokens, as in rouge-score
_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

Reference = str | Sequence[str]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure between two texts (see the module docstring)."""
    pred, ref = tokenize(prediction), tokenize(reference)
    if not pred or not ref:
        return 0.0
    prev = [0] * (len(ref) + 1)  # one DP row at a time: lcs of pred[:i] and ref[:j]
    for p in pred:
        row = [0]
        for j, r in enumerate(ref):
            row.append(prev[j] + 1 if p == r else max(prev[j + 1], row[j]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    """SQuAD's normaliser: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _options(reference: Reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def is_classification(references: Sequence[Reference], label_options: list[str] | None) -> bool:
    """Label options given, or at most 10 distinct references of at most 3 words each."""
    if label_options:
        return True
    distinct = {normalize_answer(r) for ref in references for r in _options(ref)}
    return 0 < len(distinct) <= MAX_LABELS and all(len(d.split()) <= MAX_LABEL_WORDS for d in distinct)


class TaskScore(Record):
    n: int
    rouge_l: float
    exact_match: float | None = None  # None when the task is not classification-like


class EvalSummary(Record):
    tasks: int
    instances: int
    rouge_l: float | None  # macro average over tasks; None when there are none
    exact_match: float | None  # macro average over classification-like tasks; None when there are none
    per_task: dict[str, TaskScore] = {}


def score_task(
    predictions: Sequence[str], references: Sequence[Reference], label_options: list[str] | None = None
) -> TaskScore:
    """Mean ROUGE-L (and exact match, when classification-like) of one task's predictions.

    Each reference is one string or a list of acceptable strings; an instance scores its best one.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    pairs = list(zip(predictions, references, strict=True))
    rouge = sum(max(rouge_l(p, r) for r in _options(ref)) for p, ref in pairs) / len(pairs)
    em = None
    if is_classification(references, label_options):
        em = sum(max(exact_match(p, r) for r in _options(ref)) for p, ref in pairs) / len(pairs)
    return TaskScore(n=len(pairs), rouge_l=rouge, exact_match=em)


def aggregate(scores: dict[str, TaskScore]) -> EvalSummary:
    """Macro averages over tasks, with the per-task breakdown in task-id order."""
    rouge = [s.rouge_l for s in scores.values()]
    em = [s.exact_match for s in scores.values() if s.exact_match is not None]
    return EvalSummary(
        tasks=len(scores),
        instances=sum(s.n for s in scores.values()),
        rouge_l=sum(rouge) / len(rouge) if rouge else None,
        exact_match=sum(em) / len(em) if em else None,
        per_task={k: scores[k] for k in sorted(scores)},
    )


# --- Super-NaturalInstructions task files -----------------------------------------------------------------


class SuperNIInstance(Record):
    id: str
    input: str
    outputs: list[str]


class SuperNIExample(Record):
    input: str
    output: str
    explanation: str = ""


class SuperNITask(Record):
    name: str  # the file's stem, e.g. "task001_quoref_question_generation"
    definition: str  # the `Definition` strings joined by newlines
    categories: list[str] = []
    positive_examples: list[SuperNIExample] = []
    instances: list[SuperNIInstance]


class _RawInstance(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    id: str
    input: str
    output: list[str]


class _RawExample(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    input: str
    output: str
    explanation: str = ""


class _RawTask(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    definition: list[str] = Field(alias="Definition")
    instances: list[_RawInstance] = Field(alias="Instances")
    positive_examples: list[_RawExample] = Field(default=[], alias="Positive Examples")
    categories: list[str] = Field(default=[], alias="Categories")


def _read_task(path: Path, max_instances: int | None) -> SuperNITask:
    try:
        raw = _RawTask.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable Super-NI task file ({exc})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "top level"
        raise InputFileError(f"{path}: not a Super-NI task file ({where}: {err['msg']})") from None
    instances = raw.instances if max_instances is None else raw.instances[:max_instances]
    return SuperNITask(
        name=path.stem,
        definition="\n".join(raw.definition),
        categories=raw.categories,
        positive_examples=[SuperNIExample(**e.model_dump()) for e in raw.positive_examples],
        instances=[SuperNIInstance(id=i.id, input=i.input, outputs=i.output) for i in instances],
    )


def read_superni_tasks(folder: Path, *, max_instances: int | None = None) -> list[SuperNITask]:
    """Every `taskNNN_*.json` in `folder`, in task-number order, with at most `max_instances` each.

    Other files (README.md, splits) are skipped; a malformed task file is a one-line DynoError naming it.
    """
    if max_instances is not None and max_instances < 0:
        raise ParamsError(f"max_instances {max_instances} is negative; use None for all, or 0 or more")
    if not folder.is_dir():
        raise NotFound(f"{folder}: no such folder of Super-NI tasks")
    found = [
        (int(m.group(1)), p.name, p)
        for p in folder.iterdir()
        if (m := TASK_FILE.match(p.name)) and p.is_file()
    ]
    return [_read_task(path, max_instances) for _, _, path in sorted(found)]
