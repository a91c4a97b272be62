"""The dataset card (`README.md`) and `CHANGELOG.md` that `dyno publish` puts on the Hub.

The card's metadata is what the Hub and its readers trust, so it says only what is known:

- `license`: the sources' licence ids, as the Hub spells them (one id, or a list when the sources differ);
  an id outside the Hub's list (`dynosaur.core.licenses.HUB_LICENSES`) is published as `other`, named in
  `license_name`, with `license_link` pointing at the card's licence table.
- `language`: the union of the `language` fields of the sources' own cards; left out when none says.
- `pretty_name`: the caller's, or one made from the repo name (never "… corpus corpus").
- the versions listed as loadable are the tags the repo holds, plus the one being published.
"""

from __future__ import annotations

from typing import Any

from dynosaur.core.licenses import HUB_LICENSES
from dynosaur.core.records import ManifestEntry, Release, SourceVersion

CITATION = """@inproceedings{yin2023dynosaur,
  title     = {Dynosaur: A Dynamic Growth Paradigm for Instruction-Tuning Data Curation},
  author    = {Yin, Da and Liu, Xiao and Yin, Fan and Zhong, Ming and Bansal, Hritik and Han, Jiawei and Chang, Kai-Wei},
  booktitle = {Proceedings of EMNLP},
  year      = {2023}
}"""


def size_category(n: int) -> str:
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
    ):
        if n < bound:
            return name
    return "100M<n<1B"


def default_pretty_name(repo_id: str) -> str:
    """`owner/dynosaur-corpus` → "Dynosaur corpus"; a name that does not say Dynosaur gets it in brackets."""
    words = " ".join(repo_id.split("/")[-1].replace("_", " ").replace("-", " ").split())
    name = words[:1].upper() + words[1:] if words else "Corpus"
    return name if "dynosaur" in name.lower() else f"{name} (Dynosaur)"


def license_metadata(entries: list[ManifestEntry]) -> dict[str, Any]:
    """`license` (and, for ids the Hub does not know, `license_name` and `license_link`) for the card."""
    ids = sorted({(e.license or "unknown").strip().lower() for e in entries}) or ["unknown"]
    known = [i for i in ids if i in HUB_LICENSES]
    foreign = [i for i in ids if i not in HUB_LICENSES]
    meta: dict[str, Any] = {}
    listed = known + (["other"] if foreign and "other" not in known else [])
    meta["license"] = listed[0] if len(listed) == 1 else listed
    if foreign:
        meta["license_name"] = ", ".join(foreign)
        meta["license_link"] = "README.md#licences"
    return meta


def dataset_card(
    repo_id: str,
    release: Release,
    entries: list[ManifestEntry],
    sources: list[SourceVersion],
    versions: list[str],
    *,
    pretty_name: str | None = None,
    languages: list[str] | None = None,
    quality: str = "not audited",
) -> str:
    """README.md for the Hub: metadata a reader (and the Hub's viewer) trusts, then what is inside.

    Args:
        versions: the tags the repo holds once this release is published (what the card calls loadable).
        languages: from the sources' cards (see `dynosaur.registry.hub.source_languages`).
        quality: the release's audited quality line (`dynosaur.registry.audit_report.quality_line`).
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    title = pretty_name or default_pretty_name(repo_id)
    licenses = license_metadata(entries)
    data = DatasetCardData(
        pretty_name=title,
        language=sorted(set(languages)) if languages else None,
        task_categories=["text-generation"],
        size_categories=[size_category(release.totals.instances)],
        tags=["instruction-tuning", "dynosaur"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*/*.parquet"}]}],
        **licenses,
    )
    by_source: dict[str, list[ManifestEntry]] = {}
    for e in entries:
        by_source.setdefault(e.source_id, []).append(e)
    origin = {(s.source_id, s.revision): s.origin for s in sources}
    rows = "\n".join(
        f"| {sid} | {origin.get((es[0].source_id, es[0].source_revision), '')} | "
        f"`{es[0].source_revision.removeprefix('sha256:')[:12]}` | {es[0].license or 'unknown'} | {len(es)} | "
        f"{sum(e.instances for e in es):,} |"
        for sid, es in sorted(by_source.items())
    )
    changes = "\n".join(f"- {line}" for line in release.changelog) or "- (no changes listed)"
    ordered = sorted(set(versions) | {release.tag}, key=lambda t: int(t[1:]))
    body = f"""# {title}: {release.tag}

Instruction-tuning data grown from annotated datasets with the Dynosaur method: an LLM read each dataset's
metadata and proposed tasks (an instruction, input fields, one output field); rule-based filters removed the
invalid ones; every row of the dataset became an `{{instruction, input, output}}` instance.

**{release.tag}**: {release.totals.instances:,} instances, {release.totals.tasks:,} tasks, {release.totals.sources}
sources. {("Release note: " + release.message) if release.message else ""}

**Quality**: {quality}.

| source | origin | revision | licence | tasks | instances |
|---|---|---|---|---|---|
{rows}

## Changes in {release.tag}

{changes}

Excluded sources: {", ".join(f"{x.source_id} ({x.reason})" for x in release.excluded) or "none"}.

## Load a version

```python
from datasets import load_dataset
ds = load_dataset("{repo_id}", revision="{release.tag}", split="train")
```

Each version published here stays loadable by its tag ({", ".join(ordered)}). Each instance carries its
provenance: `source_id`, `source_revision`, `config`, `split`, `row`, `task_id`, `prompt_version`, `model`,
`instance_id`. `manifest.jsonl` lists every task with its instance count and content digest.

## Licences

Instances inherit their source dataset's licence (column `source_id`, table above).

## Citation

```bibtex
{CITATION}
```
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def changelog_md(releases: list[Release], upto: int) -> str:
    parts = ["# Changelog\n"]
    for r in sorted((r for r in releases if r.version <= upto), key=lambda r: -r.version):
        lines = "\n".join(f"- {line}" for line in r.changelog) or "- (no changes)"
        parts.append(f"## {r.tag} ({r.created_at[:10]})\n\n{r.message}\n\n{lines}\n")
    return "\n".join(parts)
