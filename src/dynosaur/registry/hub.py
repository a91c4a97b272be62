"""Publishing releases to the Hugging Face Hub, and pulling them back through the registry's checks.

`publish` puts release N on the Hub as ONE commit (`HfApi.create_commit` with `parent_commit` = the commit
of the last published version, so a push by anyone else in between makes it fail instead of being
overwritten), then tags that commit `vN`. The commit holds the release's new or changed shards
(`data/<source>/<task>.parquet`; shards the Hub already has with the same digest are not re-uploaded),
deletes the shards the release no longer has, and writes `manifest.jsonl`, `CHANGELOG.md` and a `README.md`
dataset card. So at tag vN the repo holds exactly release N: `load_dataset(repo, revision="vN")` returns its
instances. A fault before the commit leaves the Hub as it was; one between the commit and the tag is finished
by running publish again (it recognises its own commit by the manifest). Tags are never moved.

The token comes from `HF_TOKEN` or the usual `huggingface_hub` login; it is never printed or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dynosaur.core.errors import DynoError, NotFound, ParamsError, PublishConflict, first_line
from dynosaur.core.records import ManifestEntry, Release, SourceVersion
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.manifest import file_sha256, shard_digest
from dynosaur.registry.pull import staging_dir
from dynosaur.registry.vcs import ObjectStore

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
VERSION_TAG = re.compile(r"^v(\d+)$")
MANIFEST = "manifest.jsonl"
CITATION = """@inproceedings{yin2023dynosaur,
  title     = {Dynosaur: A Dynamic Growth Paradigm for Instruction-Tuning Data Curation},
  author    = {Yin, Da and Liu, Xiao and Yin, Fan and Zhong, Ming and Bansal, Hritik and Han, Jiawei and Chang, Kai-Wei},
  booktitle = {Proceedings of EMNLP},
  year      = {2023}
}"""


class PublishOutcome(BaseModel):
    repo: str
    tag: str
    commit: str | None
    uploaded: int = 0
    reused: int = 0
    deleted: int = 0
    message: str


def _check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id):
        raise ParamsError(f"{repo_id!r} is not a Hub repo id of the form owner/name")


def _hub_error(exc: BaseException, repo_id: str, doing: str) -> DynoError:
    """A one-line error for a huggingface_hub exception (the token never appears in it)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RepositoryNotFoundError):
        return NotFound(f"{repo_id}: dataset repo not found on the Hub (or no access)")
    if status == 401:
        return DynoError(f"{repo_id}: the Hub refused the token (set HF_TOKEN or run `hf auth login`)")
    if status == 403:
        return DynoError(f"{repo_id}: not allowed to write to this repo with this token")
    if status in (409, 412):
        return PublishConflict(
            f"{repo_id}: the repo changed on the Hub since the last publish (someone else "
            "pushed?); nothing was published: inspect it and publish again"
        )
    if isinstance(exc, HfHubHTTPError) and status:
        return DynoError(f"{repo_id}: Hub error {status} while {doing}; nothing half-published: run again")
    from huggingface_hub import constants

    return DynoError(
        f"{repo_id}: cannot reach the Hub at {constants.ENDPOINT} while {doing} ({type(exc).__name__}):"
        " check the network or HF_ENDPOINT, then run again"
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises for HTTP statuses and for connections that fail (its HTTP library's
    base error: huggingface_hub's HfHubHTTPError derives from it)."""
    from huggingface_hub.errors import HfHubHTTPError

    bases = {base for base in HfHubHTTPError.__mro__[1:] if base.__name__ == "HTTPError"}
    return (HfHubHTTPError, OSError, *bases)


@contextlib.contextmanager
def _hub_call(repo_id: str, doing: str) -> Iterator[None]:
    """Turn what the Hub client raises into one line: an HTTP status, an unreachable endpoint, or an answer
    that is not what the Hub's API returns (a missing key, a body that is not JSON)."""
    try:
        yield
    except DynoError:
        raise
    except _transport_errors() as exc:
        raise _hub_error(exc, repo_id, doing) from None
    except (KeyError, TypeError, ValueError) as exc:  # a JSON body without the fields the client reads
        raise DynoError(
            f"{repo_id}: the Hub answered with a malformed response while {doing}"
            f" ({first_line(exc, typed=True)}): check HF_ENDPOINT, then run again"
        ) from None


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


def dataset_card(
    repo_id: str,
    release: Release,
    entries: list[ManifestEntry],
    sources: list[SourceVersion],
    releases: list[Release],
) -> str:
    """README.md for the Hub: metadata a reader (and the Hub's viewer) trusts, then what is inside."""
    from huggingface_hub import DatasetCard, DatasetCardData

    licenses = sorted({e.license or "unknown" for e in entries})
    data = DatasetCardData(
        license=licenses[0] if len(licenses) == 1 and licenses[0] != "unknown" else "other",
        pretty_name=f"Dynosaur corpus {repo_id.split('/')[1]}",
        task_categories=["text-generation"],
        size_categories=[size_category(release.totals.instances)],
        tags=["instruction-tuning", "dynosaur"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*/*.parquet"}]}],
    )
    if len(licenses) > 1 or licenses == ["unknown"]:
        # DatasetCardData keeps extra card fields as attributes, which its stubs do not declare
        data.license_name = "mixed"  # type: ignore[attr-defined]
        data.license_details = (  # type: ignore[attr-defined]
            "Each instance keeps its source dataset's licence: " + ", ".join(licenses)
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
    versions = ", ".join(r.tag for r in releases if r.version <= release.version)
    body = f"""# Dynosaur corpus: {release.tag}

Instruction-tuning data grown from annotated datasets with the Dynosaur method: an LLM read each dataset's
metadata and proposed tasks (an instruction, input fields, one output field); rule-based filters removed the
invalid ones; every row of the dataset became an `{{instruction, input, output}}` instance.

**{release.tag}**: {release.totals.instances:,} instances, {release.totals.tasks:,} tasks, {release.totals.sources}
sources. {("Release note: " + release.message) if release.message else ""}

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

Every version stays loadable by its tag ({versions}). Each instance carries its provenance: `source_id`,
`source_revision`, `config`, `split`, `row`, `task_id`, `prompt_version`, `model`, `instance_id`.
`manifest.jsonl` lists every task with its instance count and content digest.

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


def _manifest_bytes(root: Path, release: Release) -> bytes:
    return (root / release.manifest).read_bytes()


def publish(
    root: Path,
    version: str,
    repo_id: str,
    *,
    private: bool = False,
    message: str | None = None,
    token: str | None = None,
) -> PublishOutcome:
    """Publish release VERSION to the Hub dataset repo REPO_ID (see the module docstring)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    _check_repo_id(repo_id)
    ledger = Ledger(root)
    release = ledger.release(version)
    entries = ledger.read_manifest(release)
    manifest = _manifest_bytes(root, release)
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise DynoError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    with _hub_call(repo_id, "creating the repo"):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        refs = api.list_repo_refs(repo_id, repo_type="dataset")

    tags = {t.name: t.target_commit for t in refs.tags if VERSION_TAG.match(t.name)}
    head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    if release.tag in tags:
        return PublishOutcome(
            repo=repo_id,
            tag=release.tag,
            commit=tags[release.tag],
            message=f"{release.tag} is already on {repo_id}: nothing to do",
        )
    newest = max(tags, key=lambda t: int(t[1:]), default=None)
    if newest and int(newest[1:]) > release.version:
        raise DynoError(
            f"{repo_id} already has {newest}; publishing the older {release.tag} after it is refused"
        )

    with _hub_call(repo_id, "reading the repo"):
        if head and _file_at(api, repo_id, head, MANIFEST) == manifest:
            # Our own commit of this release, made by a publish that stopped before tagging: finish it.
            api.create_tag(
                repo_id, tag=release.tag, revision=head, tag_message=release.message, repo_type="dataset"
            )
            return PublishOutcome(
                repo=repo_id,
                tag=release.tag,
                commit=head,
                message=f"tagged {release.tag} (its commit was already on {repo_id})",
            )
        parent = tags[newest] if newest else head
        published = _published_digests(api, repo_id, parent)
        existing = (
            set(api.list_repo_files(repo_id, repo_type="dataset", revision=parent)) if parent else set()
        )

    staging = Path(tempfile.mkdtemp(prefix="dyno-publish-"))
    try:
        shards = _local_shards(root, release, entries, staging)
        ops: list[Any] = []
        reused = 0
        wanted = {f"data/{e.shard}" for e in entries}
        upload = []
        for e in entries:
            path = f"data/{e.shard}"
            if published.get(e.task_id) == e.digest and path in existing:
                reused += 1
                continue
            upload.append(e)
        check_shards(release, upload, shards)
        ops += [
            CommitOperationAdd(path_in_repo=f"data/{e.shard}", path_or_fileobj=str(shards[e.shard]))
            for e in upload
        ]
        stale = sorted(
            p for p in existing if p.startswith("data/") and p.endswith(".parquet") and p not in wanted
        )
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        sources = ledger.read(SourceVersion)
        releases = ledger.releases()
        ops += [
            CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=manifest),
            CommitOperationAdd(
                path_in_repo="CHANGELOG.md", path_or_fileobj=changelog_md(releases, release.version).encode()
            ),
            CommitOperationAdd(
                path_in_repo="README.md",
                path_or_fileobj=dataset_card(repo_id, release, entries, sources, releases).encode(),
            ),
        ]
        with _hub_call(repo_id, f"publishing {release.tag}"):
            commit = api.create_commit(
                repo_id,
                ops,
                repo_type="dataset",
                parent_commit=parent,
                commit_message=f"{release.tag}: {message or release.message or 'Dynosaur release'}",
            )
            api.create_tag(
                repo_id,
                tag=release.tag,
                revision=commit.oid,
                tag_message=release.message,
                repo_type="dataset",
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    uploaded = len(entries) - reused
    return PublishOutcome(
        repo=repo_id,
        tag=release.tag,
        commit=commit.oid,
        uploaded=uploaded,
        reused=reused,
        deleted=len(stale),
        message=f"published {release.tag} to {repo_id}",
    )


def check_shards(release: Release, entries: list[ManifestEntry], files: dict[str, Path]) -> None:
    """Each file is exactly the released shard: its sha256 as the manifest records it (or, for manifests
    older than file hashes, its instances and digest recomputed). A DVC cache object replaced or damaged,
    or a manifest naming some other file, is refused before anything is uploaded."""

    def actual(e: ManifestEntry) -> str:
        path = files[e.shard]
        if e.shard_sha256:
            return file_sha256(path)
        try:
            count, digest = shard_digest(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            return f"not a readable parquet file ({first_line(exc)})"
        return f"{count} instances ({digest})"

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        found = list(pool.map(actual, entries))
    for e, got in zip(entries, found, strict=True):
        expected = e.shard_sha256 or f"{e.instances} instances ({e.digest})"
        if got != expected:
            raise DynoError(
                f"publish {release.tag}: shard {e.shard} (task {e.task_id}, md5 {e.shard_md5}) is not the"
                f" released file: {got}, but {release.manifest} records {expected}; nothing was uploaded"
            )


def _file_at(api: Any, repo_id: str, revision: str, path: str) -> bytes | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        local = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision, token=api.token)
    except EntryNotFoundError:
        return None
    return Path(local).read_bytes()


def _published_digests(api: Any, repo_id: str, revision: str | None) -> dict[str, str]:
    """task id → digest of what the Hub holds at `revision` (from its manifest)."""
    if revision is None:
        return {}
    data = _file_at(api, repo_id, revision, MANIFEST)
    if data is None:
        return {}
    entries = [ManifestEntry.model_validate_json(line) for line in data.decode().split("\n") if line.strip()]
    return {e.task_id: e.digest for e in entries}


def _local_shards(
    root: Path, release: Release, entries: list[ManifestEntry], staging: Path
) -> dict[str, Path]:
    """shard → a local file with exactly the released bytes: the DVC cache, else pulled from the remote."""
    store = ObjectStore(root)
    found = {e.shard: store.path(e.shard_md5) for e in entries if e.shard_md5}
    if all(p.exists() for p in found.values()) and len(found) == len(entries):
        return found
    from dynosaur.registry.pull import pull_release

    out = staging / "pulled"
    pull_release(root, release.tag, out)
    return {e.shard: out / e.shard for e in entries}


# --- pulling from the Hub ------------------------------------------------------------------------------


class HubPullReport(BaseModel):
    version: str
    repo: str
    shards: int
    instances: int
    out: str


def pull_from_hub(
    root: Path, version: str, repo_id: str, out: Path, *, token: str | None = None
) -> HubPullReport:
    """Download release VERSION from the Hub at its tag and check it against the ledger's manifest."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RevisionNotFoundError

    _check_repo_id(repo_id)
    ledger = Ledger(root)
    release = ledger.release(version)
    entries = ledger.read_manifest(release)
    tmp = staging_dir(out, release.tag)
    try:
        try:
            snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=release.tag,
                local_dir=tmp,
                token=token,
                allow_patterns=["data/*/*.parquet", MANIFEST],
            )
        except RevisionNotFoundError:
            raise NotFound(
                f"{repo_id} has no {release.tag}: publish it first (`dyno publish {release.tag}`)"
            ) from None
        except _transport_errors() as exc:
            raise _hub_error(exc, repo_id, f"downloading {release.tag}") from None
        hub_manifest = (tmp / MANIFEST).read_bytes() if (tmp / MANIFEST).exists() else b""
        if hashlib.sha256(hub_manifest).hexdigest() != release.manifest_digest.removeprefix("sha256:"):
            raise DynoError(f"{repo_id}@{release.tag}: the Hub's manifest differs from the ledger's")
        data = tmp / "data"
        found = {p.relative_to(data).as_posix() for p in data.glob("*/*.parquet")} if data.exists() else set()
        expected = {e.shard for e in entries}
        if found != expected:
            odd = sorted(found ^ expected)[0]
            raise DynoError(
                f"{repo_id}@{release.tag}: shard {odd} {'missing' if odd in expected else 'unexpected'}"
            )
        for e in entries:
            if shard_digest(data / e.shard) != (e.instances, e.digest):
                raise DynoError(
                    f"{repo_id}@{release.tag}: shard {e.shard} (task {e.task_id}) fails its digest"
                )
        if out.exists():
            out.rmdir()
        data.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return HubPullReport(
        version=release.tag,
        repo=repo_id,
        shards=len(entries),
        instances=sum(e.instances for e in entries),
        out=str(out),
    )
