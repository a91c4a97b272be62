"""Build the four demo sources under `data/sources/<id>/`, each laid out like a Hugging Face Hub dataset repo.

- vader-tweets, vader-movie-reviews, vader-amazon-reviews: human-rated sentiment valence from the ground-truth
  TSVs in `additional_resources/hutto_ICWSM_2014.tar.gz` of the `vaderSentiment==3.3.2` sdist (MIT).
- chatterbot-conversations: first question/answer turns of the English YAML files in the
  `chatterbot-corpus==1.3.3` wheel (BSD-3-Clause).

Both packages are fetched with `pip download` into a temporary folder; sampling is seeded, so a re-run writes
byte-identical files. A developer runs this by hand (`python scripts/build_demo_sources.py`), never the pipeline.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

Row = dict[str, Any]
Splits = dict[str, list[Row]]
SEED, MAX_ROWS = 0, 2000
VADER_PKG, CHATTERBOT_PKG = "vaderSentiment==3.3.2", "chatterbot-corpus==1.3.3"
VADER_TARBALL = "additional_resources/hutto_ICWSM_2014.tar.gz"
SENTIMENTS = ["negative", "neutral", "positive"]
VADER_SOURCES = {  # id -> file inside the inner tarball, card title, what one row is
    "vader-tweets": {
        "member": "tweets_GroundTruth.txt",
        "pretty_name": "VADER tweets with human sentiment ratings (demo subset)",
        "what": "tweet-like texts modelled on 4,000 tweets from Twitter's public timeline, plus 200 contrived "
        "texts that test how syntax and grammar shift sentiment intensity (usernames appear as @anonymous, "
        "links as http://url_removed)",
    },
    "vader-movie-reviews": {
        "member": "movieReviewSnippets_GroundTruth.txt",
        "pretty_name": "VADER movie-review snippets with human sentiment ratings (demo subset)",
        "what": "sentence-level snippets of rottentomatoes.com movie reviews, cut with the NLTK tokenizer from "
        "the 2,000 reviews of Pang & Lee (2004)",
    },
    "vader-amazon-reviews": {
        "member": "amazonReviewSnippets_GroundTruth.txt",
        "pretty_name": "VADER Amazon review snippets with human sentiment ratings (demo subset)",
        "what": "sentence-level snippets of 309 Amazon customer reviews of 5 products, from Hu & Liu (2004)",
    },
}
VADER_CARD = """
# {pretty_name}

Each row is one of the {what}. `score` is the mean sentiment valence given by at least 20 pre-screened,
trained human raters on a scale from -4 (extremely negative) to +4 (extremely positive); `id` is the row's id
in the original ground-truth file. The ratings were collected for the VADER sentiment lexicon and rule-based
model (Hutto & Gilbert, ICWSM 2014).

This demo subset holds {kept:,} of the {total:,} rated texts, drawn with `random.Random({seed})` after sorting
by id and split 80/10/10 into train, validation and test. `sentiment` is derived from `score`: negative at or
below -0.5, positive at or above 0.5, neutral in between. Texts are kept as distributed, HTML entities such as
`&amp;` included.

The data ships in the `{vader}` package under the MIT licence, copyright (c) 2016 C.J. Hutto.
Please cite: Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment
Analysis of Social Media Text. Eighth International Conference on Weblogs and Social Media (ICWSM-14).
"""
CARD_VARS = {"seed": SEED, "vader": VADER_PKG, "chatterbot": CHATTERBOT_PKG}
CHATTERBOT_CARD = """
# {pretty_name}

Each row is the opening exchange of one conversation in the English part of the ChatterBot language training
corpus, a community-contributed set of short dialogues used to prime the ChatterBot chatbot: `question` is the
first turn, `answer` the second, and `topic` the category of the corpus file ({n_topics} topics). Later turns
of the few longer conversations are dropped.

This demo subset holds {kept:,} of the {total:,} English conversations, drawn with `random.Random({seed})` in
corpus order (files sorted by name) and split 90/10 into train and validation.

The corpus ships in the `{chatterbot}` package under the BSD 3-Clause licence, copyright Gunther Cox and the
ChatterBot corpus contributors. Please cite: Gunther Cox, ChatterBot Language Training Corpus,
https://github.com/gunthercox/chatterbot-corpus.
"""


def pip_download(spec: str, dest: Path, sdist: bool, extra: tuple[str, ...] = ()) -> Path:
    """Fetch one distribution file (sdist or wheel, no dependencies) and return its path.

    `extra` goes to pip as is, e.g. `--platform` and `--python-version` to pin one wheel of a binary package.
    """
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, *extra, spec, "-d", str(dest)]
    subprocess.run([*cmd, "--quiet", "--disable-pip-version-check"], check=True)
    prefix = spec.split("==")[0].replace("-", "_").lower()
    (found,) = [p for p in dest.iterdir() if p.name.replace("-", "_").lower().startswith(prefix)]
    return found


def sentiment(score: float) -> int:
    return 0 if score <= -0.5 else 2 if score >= 0.5 else 1


def tar_member(tar: tarfile.TarFile, name: str) -> bytes:
    """A regular file's bytes (`extractfile` gives None for a directory or link)."""
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a regular file in {tar.name!s}")
    return member.read()


def read_vader(sdist: Path, member: str) -> list[Row]:
    """Rows of one ground-truth TSV (`id<TAB>mean rating<TAB>text`), sorted by id (`12`, `3_7` numerically)."""
    with tarfile.open(sdist) as outer:
        (inner_name,) = [n for n in outer.getnames() if n.endswith(VADER_TARBALL)]
        inner_bytes = tar_member(outer, inner_name)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        text = tar_member(inner, f"hutto_ICWSM_2014/{member}").decode("utf-8")
    rows = []
    for row_id, score, snippet in (line.split("\t") for line in text.splitlines() if line.strip()):
        value = float(score)
        rows.append({"id": row_id, "text": snippet.strip(), "score": value, "sentiment": sentiment(value)})
    return sorted(rows, key=lambda r: [int(part) for part in re.findall(r"\d+", r["id"])])


def read_chatterbot(wheel: Path) -> tuple[list[Row], list[str]]:
    """First two turns and topic of every English conversation, in corpus order, and the sorted topics."""
    pairs: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(n for n in zf.namelist() if re.fullmatch(r".*/data/english/[^/]+\.yml", n)):
            doc = yaml.safe_load(zf.read(name).decode("utf-8"))
            topic = doc["categories"][0]  # ai.yml also lists "artificial intelligence": one topic per file
            turns = [c for c in doc["conversations"] if len(c) > 1]
            pairs += [(str(c[0]).strip(), str(c[1]).strip(), topic) for c in turns]
    topics = sorted({t for _, _, t in pairs})
    return [{"question": q, "answer": a, "topic": topics.index(t)} for q, a, t in pairs], topics


def sample_splits(rows: list[Row], fractions: dict[str, float]) -> Splits:
    """A seeded sample of at most MAX_ROWS rows, cut into splits; the first split absorbs rounding."""
    picked = random.Random(SEED).sample(rows, min(MAX_ROWS, len(rows)))
    first, *rest = fractions
    sizes = {name: round(len(picked) * fractions[name]) for name in rest}
    sizes = {first: len(picked) - sum(sizes.values()), **sizes}
    splits, start = {}, 0
    for name, size in sizes.items():
        splits[name], start = picked[start : start + size], start + size
    return splits


def feature(name: str, dtype: str | list[str]) -> dict[str, Any]:
    """A `dataset_info.features` entry; a list of names makes a class_label."""
    if isinstance(dtype, list):
        return {"name": name, "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(dtype)}}}}
    return {"name": name, "dtype": dtype}


def card_meta(license: str, pretty_name: str, task: str, package: str, source_file: str) -> Row:
    """The card's front matter before `configs` and `dataset_info`."""
    return {
        "license": license,
        "pretty_name": pretty_name,
        "language": ["en"],
        "task_categories": [task],
        "size_categories": ["1K<n<10K"],
        "source_package": package,
        "source_file": source_file,
    }


def unwrap(body: str) -> str:
    """One line per markdown paragraph: join the lines that the templates wrap."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", body.strip()) + "\n"


def write_source(folder: Path, meta: Row, features: list[Row], splits: Splits, body: str) -> None:
    """data/<split>.jsonl plus a README.md dataset card whose YAML front matter describes them."""
    shutil.rmtree(folder / "data", ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    keys, split_info = [f["name"] for f in features], []
    for split, rows in splits.items():
        jsonl = "".join(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n" for row in rows)
        size = (folder / "data" / f"{split}.jsonl").write_bytes(jsonl.encode("utf-8"))
        split_info.append({"name": split, "num_bytes": size, "num_examples": len(rows)})  # bytes: the file
    data_files = [{"split": s, "path": f"data/{s}.jsonl"} for s in splits]
    front = {
        **meta,
        "configs": [{"config_name": "default", "data_files": data_files}],
        "dataset_info": {"features": features, "splits": split_info},
    }
    card = f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n\n{unwrap(body)}"
    (folder / "README.md").write_text(card, encoding="utf-8", newline="\n")


def build_vader(out: Path, sdist: Path) -> None:
    features = [feature("id", "string"), feature("text", "string"), feature("score", "float64")]
    features.append(feature("sentiment", SENTIMENTS))
    for source_id, spec in VADER_SOURCES.items():
        rows = read_vader(sdist, spec["member"])
        splits = sample_splits(rows, {"train": 0.8, "validation": 0.1, "test": 0.1})
        source_file = f"{VADER_TARBALL}/hutto_ICWSM_2014/{spec['member']}"
        meta = card_meta("mit", spec["pretty_name"], "text-classification", VADER_PKG, source_file)
        counts = {"kept": sum(map(len, splits.values())), "total": len(rows)}
        body = VADER_CARD.format(**spec, **counts, **CARD_VARS)
        write_source(out / source_id, meta, features, splits, body)


def build_chatterbot(out: Path, wheel: Path) -> None:
    rows, topics = read_chatterbot(wheel)
    splits = sample_splits(rows, {"train": 0.9, "validation": 0.1})
    features = [feature("question", "string"), feature("answer", "string"), feature("topic", topics)]
    pretty_name = "ChatterBot English conversations (demo subset)"
    source_file = "chatterbot_corpus/data/english/*.yml"
    meta = card_meta("bsd-3-clause", pretty_name, "text-generation", CHATTERBOT_PKG, source_file)
    counts = {"kept": sum(map(len, splits.values())), "total": len(rows), "n_topics": len(topics)}
    body = CHATTERBOT_CARD.format(pretty_name=pretty_name, **counts, **CARD_VARS)
    write_source(out / "chatterbot-conversations", meta, features, splits, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sources"), help="folder to write <id>/ into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_vader(args.out, pip_download(VADER_PKG, Path(tmp), sdist=True))
        build_chatterbot(args.out, pip_download(CHATTERBOT_PKG, Path(tmp), sdist=False))
    print(f"wrote {len(VADER_SOURCES) + 1} sources under {args.out}")


if __name__ == "__main__":
    main()
