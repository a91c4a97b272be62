"""What a source's fields are, judged once for every stage: bookkeeping (ids, timestamps, addresses, file
and repository metadata, who made a record), and fields whose values no reader can work out from the rest of
a row (popularity counts, when a record was posted). Generate never asks for a mapping onto such a field and
the filter rejects one (`meta_field`), from the same definition (issue 23: two lists that disagreed meant
paying for mappings the filter then rejected).
"""

from __future__ import annotations

import re
from typing import Literal

from dynosaur.core.records import Feature, SourceMeta

# Identifier and bookkeeping columns: predicting them teaches nothing (the paper's corpus has hundreds of
# tasks predicting a code file's size, path or licence). Matched against `snake_name(name)`, so camelCase
# (`conversationId`) and punctuation (`Unnamed: 0`, `__index_level_0__`) read as snake_case words.
META_NAME = re.compile(
    r"^(id|idx|index|key|uuid|guid|url|uri|link|href|path|file|filename|file_name|filepath|file_path|fname|"
    r"hash|sha|sha1|sha256|md5|checksum|size|bytes|length|license|licence|licenses|repo|repo_name|"
    r"repository|forks|copies|timestamp|ts|utc|epoch|created|created_at|updated_at|date_added|split|"
    r"source|row|fold|permalink|index_level_\d+|unnamed_\d+)$"
    r"|(_id|_ids|_idx|_url|_uri|_path|_hash|_uuid|_md5|_sha|_timestamp|_ts|_at|_utc|_file|_filename)$"
    r"|^(id_|url_|path_)"
    # when a record was made, fetched or changed, and who made it: the collection, not the content
    r"|^(created|creation|updated|modified|last_modified|downloaded|crawled|scraped|retrieved)(_|$)"
    r"|(^|_)(annotator|worker|turker|rater)(_|$)",
)
# Epoch seconds or milliseconds between 2000-01-01 and 2040-01-01.
EPOCH_SECONDS = (946_684_800, 2_208_988_800)
NUMBER = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?([eE][-+]?\d+)?$")
PLAIN_WORD = re.compile(r"^[^\W\d_]+(['’-][^\W\d_]+)*$")

# How many people reacted to a record, and when it was posted: facts about its life, not its content, so no
# input determines them (issue 19: a tweet's `retweet_count`, a comment's `createddatetimeutc`).
UNDETERMINABLE_NAME = re.compile(
    r"(^|_)(retweets|favou?rites|likes|views|shares|replies|votes|upvotes|downvotes|downloads|followers)$"
    r"|(^|_)(retweets?|favou?rites?|likes?|views?|shares?|repl(y|ies)|votes?|upvotes?|downvotes?|downloads?|"
    r"followers?|clicks?|reactions?|comments?|impressions)_(count|counts|num|total)$"
    r"|(^|_)(count|num|number)_(of_)?(retweets|likes|views|shares|replies|votes|followers|comments)$"
    r"|^(time|date|datetime|posted|posted_at|published|published_at|createddatetimeutc|createddatetime|"
    r"created_date|publish_date|post_date|date_time|timestamp_utc)$"
    r"|^(sourceuri|source_uri|username|user_name|screen_name|userid)$"
    # where a record sits in a series, and how often a word occurs in some corpus
    r"|^(season|episode|season_episode|episode_number|episode_num|page|page_number|line_number|turn|turn_id)$"
    r"|^(frequency|freq|count|counts|occurrences)$"
)
# Who wrote or said a record: a label when there are a few (two candidates' accounts), otherwise a handle that
# nothing in the text determines (a comment's user, a sitcom line's speaker).
HANDLE_NAME = re.compile(r"^(user|author|speaker|nickname|poster|commenter|character)$")
HANDLE_MAX_DISTINCT = 10


def snake_name(name: str) -> str:
    """`conversationId` → `conversation_id`, `Unnamed: 0` → `unnamed_0`, `meta.created_utc` → `meta_created_utc`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")


def _sample_values(name: str, meta: SourceMeta) -> list[str]:
    values = (row.get(name) for row in meta.samples)
    return [
        str(v).strip() for v in values if v is not None and not isinstance(v, (dict, list)) and str(v).strip()
    ]


def _epoch_like(name: str, meta: SourceMeta) -> bool:
    """Integers that read as epoch seconds or milliseconds in every sample row."""
    values = _sample_values(name, meta)
    if not values or not all(re.fullmatch(r"\d{9,13}(\.0+)?", v) for v in values):
        return False
    low, high = EPOCH_SECONDS
    return all(low <= float(v) < high or low * 1000 <= float(v) < high * 1000 for v in values)


def _unique_tokens(name: str, meta: SourceMeta) -> bool:
    """Short one-token values, a different one on every row, that are neither plain words nor numbers: user
    names, hashes, keys. (Unique plain words are a vocabulary: "give the correctly spelled word" is a task.)"""
    feature = meta.feature(name)
    stats = feature.stats if feature else None
    values = _sample_values(name, meta)
    if stats is None or not values or stats.scanned < 2 or stats.mean_chars > 40:
        return False
    if stats.distinct < stats.scanned - stats.empty:
        return False
    if any(" " in v for v in values) or all(NUMBER.match(v) for v in values):
        return False  # numbers are measurements; epoch-like ones are caught on their own
    return not all(PLAIN_WORD.match(v) for v in values)


def is_bookkeeping(name: str, meta: SourceMeta) -> bool:
    """A field that records how a row was stored or collected (ids, timestamps, addresses, file and
    repository metadata) rather than what it says: by name, by dtype, and by its statistics."""
    if META_NAME.search(snake_name(name)):
        return True
    feature = meta.feature(name)
    if feature is None:
        return False
    if feature.dtype.startswith("timestamp"):
        return True
    return (
        bool(feature.stats and feature.stats.id_like) or _epoch_like(name, meta) or _unique_tokens(name, meta)
    )


def is_undeterminable(name: str, meta: SourceMeta | None = None) -> bool:
    """A field whose value no content determines: popularity counts, posting times, places in a series,
    corpus frequencies, and (with `meta`'s statistics) the handles of many different writers."""
    snake = snake_name(name)
    if UNDETERMINABLE_NAME.search(snake):
        return True
    feature = meta.feature(name) if meta is not None else None
    stats = feature.stats if feature is not None else None
    return bool(HANDLE_NAME.match(snake) and stats is not None and stats.distinct > HANDLE_MAX_DISTINCT)


def _tokens(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else str(value or "").split()


def annotates(annotation: str, text: str, meta: SourceMeta) -> bool:
    """`annotation` labels `text` token by token (POS tags of a sentence): the same number of tokens, at
    least two, in every sample row, from a smaller vocabulary (tags repeat, words less). Text can't be
    recovered from such labels; the labels from the text are the task."""
    rows = [  # values collect cut short ("…") can't be counted
        r
        for r in meta.samples
        if r.get(annotation) is not None
        and r.get(text) is not None
        and not any(str(r[f]).endswith("…") for f in (annotation, text))
    ]
    aligned = bool(rows) and all(
        len(_tokens(r[annotation])) == len(_tokens(r[text])) >= 2 and r[annotation] != r[text] for r in rows
    )
    vocabulary = {t for r in rows for t in _tokens(r.get(annotation))}
    words = {t.lower() for r in rows for t in _tokens(r.get(text))}
    return aligned and len(vocabulary) < len(words)


# --- roles and mappings: what a field can be in a task (fields-first mode) ------------------------------

FieldMapping = tuple[list[str], str]  # (input fields, output field)


Role = Literal["label", "score", "text"]
LABEL_MAX_DISTINCT = 20  # a short field with at most this many values is a label
LONG_TEXT_CHARS = 100  # mean length from which a field carries content of its own (a passage, a summary)
LABEL_TO_TEXT_CHARS = 300  # from labels alone, ask for at most a sentence or two
MAX_TARGET_CHARS = 1500  # a longer target is a document, not an answer
ROW_SPECIFIC_SHARE = 0.5  # a target must differ between rows: distinct values ≥ this share of the rows


def field_role(feature: Feature) -> Role | None:
    """What a field can be in a task, from its dtype and statistics; None: leave it out."""
    stats = feature.stats
    if feature.is_media or stats is None or META_NAME.search(snake_name(feature.name)):
        return None
    non_empty = stats.scanned - stats.empty
    if stats.id_like or stats.distinct <= 1 or non_empty < stats.scanned / 2 or stats.top_share >= 0.95:
        return None
    if feature.class_names or feature.dtype == "bool":
        return "label"
    if feature.dtype.startswith(("int", "uint")):
        return "label" if stats.distinct <= LABEL_MAX_DISTINCT else "score"
    if feature.dtype.startswith("float"):
        return "score"
    if stats.distinct <= LABEL_MAX_DISTINCT and stats.mean_chars <= 40 and non_empty >= 2 * stats.distinct:
        return "label"
    return "text"


def enumerate_mappings(meta: SourceMeta, max_mappings: int = 10) -> list[FieldMapping]:
    """Plausible (inputs → output) mappings of one source, most useful first, at most `max_mappings`.

    - A label or score is predicted from all the content fields of the row together, and from each long,
      row-specific text alone when there are two or more of them (a tale's text, its summary).
    - A text is produced from every other field but scores, unless it is too long to be an answer, is
      shared by many rows, or would come from labels alone while longer than a sentence or two. When the row
      carries a score, short texts are the items being scored, not answers to one another.
    """
    roles = {  # bookkeeping and undeterminable fields are neither asked for nor given (dynosaur.pipeline.fields)
        f.name: role
        for f in meta.features
        if (role := field_role(f)) is not None
        and not is_bookkeeping(f.name, meta)
        and not is_undeterminable(f.name, meta)
    }
    stats = {f.name: f.stats for f in meta.features if f.stats is not None}

    def chars(name: str) -> float:
        return stats[name].mean_chars

    def row_specific(name: str) -> bool:
        s = stats[name]
        return s.distinct >= ROW_SPECIFIC_SHARE * (s.scanned - s.empty)

    texts = [n for n, r in roles.items() if r == "text"]
    long_texts = [n for n in texts if chars(n) >= LONG_TEXT_CHARS and row_specific(n)]
    has_score = "score" in roles.values()
    mappings: list[FieldMapping] = []
    for output, role in roles.items():
        if role in ("label", "score") and texts:
            mappings.append((texts, output))
            if len(long_texts) >= 2:
                mappings += [([t], output) for t in long_texts]
    for output in texts:
        inputs = [n for n, r in roles.items() if n != output and r != "score"]
        if not inputs or chars(output) > MAX_TARGET_CHARS or not row_specific(output):
            continue
        from_content = any(chars(n) >= LONG_TEXT_CHARS and roles[n] == "text" for n in inputs)
        if all(roles[n] == "label" for n in inputs) and chars(output) > LABEL_TO_TEXT_CHARS:
            continue
        if has_score and not from_content:
            continue
        if any(annotates(n, output, meta) for n in inputs):  # a sentence from its POS tags
            continue
        mappings.append((inputs, output))
    unique = list({(tuple(i), o): (i, o) for i, o in mappings}.values())
    return unique[:max_mappings]
