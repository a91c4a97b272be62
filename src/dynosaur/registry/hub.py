"""Publishing releases to the Hugging Face Hub (pulling them back: `dynosaur.registry.hub_pull`).

`publish` puts release N on the Hub as ONE commit, then tags that commit `vN`. The commit holds the release's
new or changed shards (`data/<source>/<task>.parquet`; shards the Hub already has with the same digest are not
re-uploaded, and every uploaded file is first checked against the manifest's sha256), deletes the shards the
release no longer has, and writes `manifest.jsonl`, `CHANGELOG.md` and a `README.md` dataset card
(`dynosaur.registry.card`). So at tag vN the repo's data is exactly release N:
`load_dataset(repo, revision="vN")` returns its instances.

Other people may push to the repo too. The commit's parent is the repo's current head (`parent_commit`, so a
push in between makes it fail rather than be overwritten). What others changed since the last published tag
is listed: files that do not collide with the release's own (its shards, the data files it deletes, the
manifest, the card, the changelog) are kept; colliding ones make publish refuse, naming them, unless
`force`, which replaces them and says so in the commit message. `dry_run` computes all that and commits
nothing. A fault before the commit leaves the Hub as it was; one between the commit and the tag is
finished by running publish again (it recognises its own commit by the manifest). Tags are never moved.

The token comes from `HF_TOKEN` or the usual `huggingface_hub` login; it is never printed or written.
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dynosaur.core.errors import DamagedCopy, HubError, PublishConflict, first_line
from dynosaur.core.records import ManifestEntry, Release, SourceVersion
from dynosaur.core.shards import SUFFIX, shard_digest
from dynosaur.core.transport import check_hub_token_transport
from dynosaur.registry.audit_report import quality_lines
from dynosaur.registry.card import changelog_md, dataset_card
from dynosaur.registry.hub_client import MANIFEST, _check_repo_id, _hub_call
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.lock import registry_lock
from dynosaur.registry.manifest import file_sha256
from dynosaur.registry.pull import local_shards

VERSION_TAG = re.compile(r"^v(\d+)$")
OWN_FILES = (MANIFEST, "CHANGELOG.md", "README.md")


class PublishOutcome(BaseModel):
    repo: str
    tag: str
    commit: str | None
    uploaded: int = 0
    reused: int = 0
    deleted: int = 0
    message: str
    dry_run: bool = False
    parent: str | None = None  # the commit published on top of (the repo's head)
    others: list[str] = []  # paths others changed since the last published tag (kept unless replaced)
    replaced: list[str] = []  # those of them this commit overwrites or deletes (--force)
    uploads: list[str] = []  # paths in the repo this commit writes
    deletes: list[str] = []  # paths in the repo this commit deletes


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
    force: bool = False,
    dry_run: bool = False,
    pretty_name: str | None = None,
    allow_insecure_http: bool = False,
) -> PublishOutcome:
    """Publish release VERSION to the Hub dataset repo REPO_ID (see the module docstring). The token is
    refused over plain http to a host that is not loopback unless `allow_insecure_http`."""
    _check_repo_id(repo_id)
    # One publish per Hub repo at a time from this clone: a second one waits, then says who holds it.
    with registry_lock(
        root, f"publish {release_name(version)} --repo {repo_id}", name=publish_lock_name(repo_id)
    ):
        shutil.rmtree(publish_staging(root, repo_id), ignore_errors=True)  # a killed publish's leftovers
        return _publish(
            root,
            version,
            repo_id,
            private=private,
            message=message,
            token=token,
            force=force,
            dry_run=dry_run,
            pretty_name=pretty_name,
            allow_insecure_http=allow_insecure_http,
        )


def publish_lock_name(repo_id: str) -> str:
    """The lock file (in the git directory) that one publish to `repo_id` holds."""
    return "dyno-publish-" + re.sub(r"[^A-Za-z0-9._-]", "--", repo_id) + ".lock"


def publish_staging(root: Path, repo_id: str) -> Path:
    """Where one publish to `repo_id` stages the shards it uploads (links into the DVC cache, or a pulled
    release): DVC's scratch folder, so that a killed publish's leftovers are removed by the next publish to
    the same repo (which holds the same lock), not left in the system's temporary folder."""
    return root / ".dvc" / "tmp" / publish_lock_name(repo_id).removesuffix(".lock")


def release_name(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def _publish(
    root: Path,
    version: str,
    repo_id: str,
    *,
    private: bool,
    message: str | None,
    token: str | None,
    force: bool,
    dry_run: bool,
    pretty_name: str | None,
    allow_insecure_http: bool,
) -> PublishOutcome:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import RepositoryNotFoundError

    ledger = Ledger(root)
    release = ledger.release(version)
    entries = ledger.read_manifest(release)
    manifest = _manifest_bytes(root, release)
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    check_hub_token_transport(api.endpoint, True, allow_insecure_http)
    with _hub_call(repo_id, "creating the repo"):
        try:
            if not dry_run:
                api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            refs = api.list_repo_refs(repo_id, repo_type="dataset")
            tags = {t.name: t.target_commit for t in refs.tags if VERSION_TAG.match(t.name)}
            head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
        except RepositoryNotFoundError:
            if not dry_run:
                raise
            tags, head = {}, None  # a dry run against a repo that does not exist yet
    done = PublishOutcome(repo=repo_id, tag=release.tag, commit=tags.get(release.tag), message="")
    if release.tag in tags:
        return done.model_copy(update={"message": f"{release.tag} is already on {repo_id}: nothing to do"})
    newest = max(tags, key=lambda t: int(t[1:]), default=None)
    if newest and int(newest[1:]) > release.version:
        raise HubError(
            f"{repo_id} already has {newest}; publishing the older {release.tag} after it is refused"
        )

    with _hub_call(repo_id, "reading the repo"):
        base = tags[newest] if newest else None
        own = _own_commit(api, repo_id, head, base, release, manifest)
        if own is not None:
            # Our own commit of this release, made by a publish that stopped (was killed, or lost the Hub's
            # answer) before tagging: tag that very commit, never a second one.
            return _finish(api, repo_id, release, own, done, dry_run)
        at_head = _files(api, repo_id, head)
        at_base = _files(api, repo_id, base) if base else {}
        published = _published_digests(api, repo_id, base)
        languages = source_languages(ledger.read(SourceVersion), entries)

    # Everything at head that is not as our last published tag left it is someone else's change.
    others = sorted(p for p in at_head.keys() | at_base.keys() if at_head.get(p) != at_base.get(p))
    wanted = {f"data/{e.shard}": e for e in entries}
    upload = [
        e
        for path, e in wanted.items()
        if not (published.get(e.task_id) == e.digest and path in at_head and path not in others)
    ]
    stale = sorted(p for p in at_head if p.startswith("data/") and p.endswith(SUFFIX) and p not in wanted)
    writes = sorted([f"data/{e.shard}" for e in upload] + list(OWN_FILES))
    replaced = sorted(set(others) & (set(writes) | set(stale)))
    plan = done.model_copy(
        update={
            "parent": head,
            "others": others,
            "replaced": replaced,
            "uploads": writes,
            "deletes": stale,
            "uploaded": len(upload),
            "reused": len(entries) - len(upload),
            "deleted": len(stale),
            "dry_run": dry_run,
        }
    )
    if replaced and not force:
        shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
        refusal = (
            f"{repo_id}: since {newest or 'it was created'}, others changed {shown}, which publishing"
            f" {release.tag} would overwrite; nothing was published: look at the repo, then publish with"
            " --force to replace them"
        )
        if dry_run:
            return plan.model_copy(update={"message": f"would refuse: {refusal}"})
        raise PublishConflict(refusal, repo_id=repo_id, version=release.tag)
    if dry_run:
        return plan.model_copy(update={"message": f"would publish {release.tag} to {repo_id}"})

    sources = ledger.read(SourceVersion)
    releases = ledger.releases()
    card = dataset_card(
        repo_id,
        release,
        entries,
        sources,
        sorted(tags),
        pretty_name=pretty_name,
        languages=languages,
        quality=quality_lines(root, [release.tag])[release.tag],
    )
    staging = publish_staging(root, repo_id)
    staging.mkdir(parents=True)
    try:
        shards = local_shards(root, release, entries, staging)
        check_shards(release, upload, shards)
        ops: list[Any] = [
            CommitOperationAdd(path_in_repo=f"data/{e.shard}", path_or_fileobj=str(shards[e.shard]))
            for e in upload
        ]
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        ops += [
            CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=manifest),
            CommitOperationAdd(
                path_in_repo="CHANGELOG.md", path_or_fileobj=changelog_md(releases, release.version).encode()
            ),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()),
        ]
        note = f"\n\nReplaces changes made by others to: {', '.join(replaced)} (--force)" if replaced else ""
        with _hub_call(repo_id, f"publishing {release.tag}"):
            # The head again, right before committing: a publish elsewhere may have committed this release
            # meanwhile (then tag that), or someone pushed (then `parent_commit` would refuse: say so first).
            now = _head(api, repo_id)
            if now != head:
                own = _own_commit(api, repo_id, now, base, release, manifest)
                if own is not None:
                    return _finish(api, repo_id, release, own, done, dry_run)
                raise HubError(
                    f"{repo_id}: its head moved from {str(head)[:12]} to {str(now)[:12]} while {release.tag}"
                    " was being prepared; nothing was published: run publish again"
                )
            commit = api.create_commit(
                repo_id,
                ops,
                repo_type="dataset",
                parent_commit=head,
                commit_message=f"{release.tag}: {message or release.message or 'Dynosaur release'}",
                commit_description=note.strip() or None,
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
    kept = (
        f", keeping {len(others) - len(replaced)} files others changed" if len(others) > len(replaced) else ""
    )
    forced = f", replacing {len(replaced)} others changed" if replaced else ""
    return plan.model_copy(
        update={"commit": commit.oid, "message": f"published {release.tag} to {repo_id}{kept}{forced}"}
    )


def _head(api: Any, repo_id: str) -> str | None:
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    return next((b.target_commit for b in refs.branches if b.name == "main"), None)


def _own_commit(
    api: Any, repo_id: str, head: str | None, base: str | None, release: Release, manifest: bytes
) -> str | None:
    """The commit of `release` that an earlier publish made and did not tag, among the commits after `base`
    (the last published tag) up to `head`: its title names the release and its manifest is the release's.
    Newest first, so a commit others pushed on top of it is passed over, not tagged."""
    if head is None:
        return None
    for commit in api.list_repo_commits(repo_id, repo_type="dataset", revision=head):
        if commit.commit_id == base:
            return None
        if commit.title.startswith(f"{release.tag}:") and _file_at(
            api, repo_id, commit.commit_id, MANIFEST
        ) == (manifest):
            return commit.commit_id
    return None


def _finish(
    api: Any, repo_id: str, release: Release, commit: str, done: PublishOutcome, dry_run: bool
) -> PublishOutcome:
    """Tag `commit`, the release's own commit that is already on the Hub."""
    if not dry_run:
        api.create_tag(
            repo_id, tag=release.tag, revision=commit, tag_message=release.message, repo_type="dataset"
        )
    return done.model_copy(
        update={
            "commit": commit,
            "dry_run": dry_run,
            "message": f"{'would tag' if dry_run else 'tagged'} {release.tag} (its commit was already on {repo_id})",
        }
    )


def _files(api: Any, repo_id: str, revision: str | None) -> dict[str, str]:
    """path → git blob id of every file at `revision` (empty for none)."""
    from huggingface_hub.hf_api import RepoFile

    if revision is None:
        return {}
    tree = api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
    return {f.path: f.blob_id for f in tree if isinstance(f, RepoFile)}


def source_languages(sources: list[SourceVersion], entries: list[ManifestEntry]) -> list[str]:
    """The union of the `language` fields of the released sources' own cards, as collect read them and the
    ledger's SourceVersion records keep them: nothing is downloaded. A record released before they were
    kept says nothing."""
    released = {(e.source_id, e.source_revision) for e in entries}
    return sorted({lang for s in sources if (s.source_id, s.revision) in released for lang in s.languages})


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
            raise DamagedCopy(
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
