"""A real git + DVC repository with a local directory remote and two releases, built by hand, for the
registry's unit tests (pull, verify, publish).

`built` makes it once per module (v2 keeps v1's shards and adds one); `base` copies it for each test, remote
included: the remote's URL in `.dvc/config` is relative, so a copy points at its own remote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dynosaur.core.records import ManifestEntry
from dynosaur.core.shards import InstanceDigest, schema
from dynosaur.registry.ledger import Ledger
from dynosaur.registry.manifest import file_sha256
from tests.factories import record_release

DVC = str(Path(sys.executable).parent / "dvc")
V1 = {"alpha": {"a1" * 8: 5, "a2" * 8: 3}, "beta": {"b1" * 8: 4}}  # source → task id → instances
V2 = {**V1, "beta": {**V1["beta"], "b2" * 8: 2}}
CORPUS = "data/corpus"


ISOLATED = {"DVC_NO_ANALYTICS": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def sh(cwd: Path, *args: str) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **ISOLATED})
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def shard_table(task_id: str, source_id: str, n: int, first_id: int = 0) -> pa.Table:
    rows = {c: [f"{c} {task_id} {i}" for i in range(n)] for c in schema().names if c != "row"}
    rows.update(
        task_id=[task_id] * n,
        source_id=[source_id] * n,
        row=list(range(n)),
        instance_id=[f"{task_id[:8]}{i:08x}" for i in range(first_id, first_id + n)],
    )
    return pa.Table.from_pydict(rows, schema=schema())


def dvc_objects(repo: Path) -> dict[str, str]:
    """shard path → md5, from the `.dir` object that `data/corpus.dvc` names."""
    oid = corpus_md5(repo).removesuffix(".dir")
    listing = repo / ".dvc/cache/files/md5" / oid[:2] / f"{oid[2:]}.dir"
    return {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}


def corpus_md5(repo: Path) -> str:
    return yaml.safe_load((repo / f"{CORPUS}.dvc").read_text())["outs"][0]["md5"]


def cut(
    repo: Path, version: int, tasks: dict[str, dict[str, int]], first_ids: dict[str, int] | None = None
) -> None:
    """What `dyno release` does, by hand: shards, dvc add + push, manifest + release record, commit, tag."""
    for source_id, shards in tasks.items():
        for task_id, n in shards.items():
            path = repo / CORPUS / source_id / f"{task_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(shard_table(task_id, source_id, n, (first_ids or {}).get(task_id, 0)), path)
    sh(repo, DVC, "add", "-q", CORPUS)
    sh(repo, DVC, "push", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", f"corpus for v{version}")
    md5s, entries = dvc_objects(repo), []
    for source_id, shards in tasks.items():
        for task_id in shards:
            shard = f"{source_id}/{task_id}.parquet"
            digest = InstanceDigest()
            digest.update(pq.read_table(repo / CORPUS / shard))
            entries.append(
                ManifestEntry(
                    task_id=task_id,
                    source_id=source_id,
                    source_revision="rev1",
                    identity=task_id,
                    license="mit",
                    instances=digest.count,
                    digest=digest.hexdigest(),
                    shard=shard,
                    shard_md5=md5s[shard],
                    shard_sha256=file_sha256(repo / CORPUS / shard),
                )
            )
    record_release(Ledger(repo), version, entries, corpus_md5=corpus_md5(repo))
    sh(repo, "git", "add", "ledger")
    sh(repo, "git", "commit", "-qm", f"release v{version}")
    sh(repo, "git", "tag", "-a", f"v{version}", "-m", f"v{version}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("registry")
    repo = base / "repo"
    repo.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_SITE_CACHE_DIR", str(tmp_path_factory.mktemp("dvc-site")))
        sh(repo, "git", "init", "-q", "-b", "main")
        sh(repo, "git", "config", "user.email", "test@example.com")
        sh(repo, "git", "config", "user.name", "Test")
        sh(repo, DVC, "init", "-q")
        sh(repo, DVC, "remote", "add", "-q", "-d", "store", "../remote")  # relative: stored relative to .dvc/
        assert "../../remote" in (repo / ".dvc/config").read_text()  # each copy tampers with its own remote
        sh(repo, "git", "commit", "-qm", "dvc init")
        cut(repo, 1, V1)
        cut(repo, 2, V2)
    return base


@pytest.fixture
def base(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the repository and its remote; DVC's site cache (it keeps directory listings) too."""
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    shutil.copytree(built, tmp_path / "w", symlinks=True)
    return tmp_path / "w"


def clone(base: Path, name: str = "clone") -> Path:
    """A fresh clone beside the remote: ledger and .dvc files from git, no DVC cache."""
    sh(base, "git", "clone", "-q", str(base / "repo"), name)
    return base / name


def remote_object(base: Path, md5: str) -> Path:
    return base / "remote/files/md5" / md5[:2] / md5[2:]


def cache_object(repo: Path, md5: str) -> Path:
    return repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]


def overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # DVC leaves objects read-only
    path.write_bytes(data)


def entry(base: Path, version: int, task_id: str) -> ManifestEntry:
    ledger = Ledger(base / "repo")
    return next(e for e in ledger.read_manifest(ledger.release(version)) if e.task_id == task_id)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".pull-" in p.name)
