"""What a source's fields are, judged once for every stage: bookkeeping (ids, timestamps, addresses, file
and repository metadata, who made a record), and fields whose values no reader can work out from the rest of
a row (popularity counts, when a record was posted). Generate never asks for a mapping onto such a field and
the filter rejects one (`meta_field`), from the same definition (issue 23: two lists that disagreed meant
paying for mappings the filter then rejected).
"""

from __future__ import annotations

import re

from dynosaur.core.records import SourceMeta

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
