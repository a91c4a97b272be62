"""Pulling a release back from the Hub at its tag, checked against the ledger's manifest and digests."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from pydantic import BaseModel

from dynosaur.core.errors import DamagedCopy, NotFound
from dynosaur.core.shards import GLOB, shard_digest
from dynosaur.registry.hub_client import MANIFEST, _check_repo_id, _hub_error, _transport_errors
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.pull import staging_dir


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
                allow_patterns=[f"data/{GLOB}", MANIFEST],
            )
        except RevisionNotFoundError:
            raise NotFound(
                f"{repo_id} has no {release.tag}: publish it first (`dyno publish {release.tag}`)"
            ) from None
        except _transport_errors() as exc:
            raise _hub_error(exc, repo_id, f"downloading {release.tag}") from None
        hub_manifest = (tmp / MANIFEST).read_bytes() if (tmp / MANIFEST).exists() else b""
        if hashlib.sha256(hub_manifest).hexdigest() != release.manifest_digest.removeprefix("sha256:"):
            raise DamagedCopy(f"{repo_id}@{release.tag}: the Hub's manifest differs from the ledger's")
        data = tmp / "data"
        found = {p.relative_to(data).as_posix() for p in data.glob(GLOB)} if data.exists() else set()
        expected = {e.shard for e in entries}
        if found != expected:
            odd = sorted(found ^ expected)[0]
            raise DamagedCopy(
                f"{repo_id}@{release.tag}: shard {odd} {'missing' if odd in expected else 'unexpected'}"
            )
        for e in entries:
            if shard_digest(data / e.shard) != (e.instances, e.digest):
                raise DamagedCopy(
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
